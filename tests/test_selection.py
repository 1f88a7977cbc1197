"""RFT selection and EEF's beneficial/harmful split, on constructed and real trajectories."""

from __future__ import annotations

import pytest

from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.core.trajectory import Message, Step, Trajectory
from agentgym.trainers.selection import (
    assistant_trainable_flags,
    beneficial_segments,
    mark_beneficial,
    restart_points,
    select_successes,
)


def _trajectory(task: str, tid: str, reward: float, actions: list[str], **kw) -> Trajectory:
    steps = [Step(a, "obs", 0.0) for a in actions]
    return Trajectory("env", task, id=tid, reward=reward, steps=steps, **kw)


def test_select_successes_filters_dedupes_caps_and_orders() -> None:
    data = [
        _trajectory("b", "b1", 1.0, ["x", "y"]),
        _trajectory("a", "a1", 1.0, ["x", "y", "z"]),
        _trajectory("a", "a2", 1.0, ["x  ", "y"]),  # same actions as a3 after whitespace
        _trajectory("a", "a3", 1.0, ["x", "y"]),
        _trajectory("a", "a4", 0.5, ["q"]),
        _trajectory("a", "a5", 1.0, ["w"], error="crashed"),
    ]
    chosen = select_successes(data)
    assert [t.id for t in chosen] == ["a2", "a1", "b1"]
    assert [t.id for t in select_successes(data, max_per_task=1)] == ["a2", "b1"]
    assert [t.id for t in select_successes(data, min_reward=0.5)] == ["a2", "a1", "a4", "b1"]
    assert len(select_successes(data, deduplicate=False)) == 4


def test_restart_points_and_budget() -> None:
    assert restart_points(6, skip=1) == [0, 1, 2, 3, 4, 5]
    assert restart_points(6, skip=4) == [0, 4]
    assert restart_points(9, skip=2, budget=3) == [0, 2, 4]
    with pytest.raises(ValueError):
        restart_points(3, skip=0)


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ({0: False, 2: False, 4: True}, [(2, 4)]),  # actions 2..3 made the difference
        ({0: True, 2: True}, []),  # the agent succeeds anyway: plain RFT data
        ({0: False, 2: False, 4: False}, []),  # never succeeds: nothing learned
        ({0: False, 2: True, 4: False, 6: True}, [(0, 2), (4, 6)]),
        ({0: False, 4: True}, []),  # not adjacent restart points (skip=2)
    ],
)
def test_beneficial_segments(outcomes: dict[int, bool], expected: list[tuple[int, int]]) -> None:
    assert beneficial_segments(outcomes, skip=2) == expected


def test_mark_beneficial_trains_only_the_segment_and_the_agent() -> None:
    messages = [Message("user", "task")]
    for index in range(5):
        trainable = index >= 3  # 3 replayed expert actions, then 2 agent actions
        messages += [Message("assistant", f"a{index}", trainable=trainable), Message("user", "o")]
    continuation = Trajectory("env", "t", id="c", messages=messages, restart_step=3)
    marked = mark_beneficial(continuation, (1, 3))
    assert assistant_trainable_flags(marked) == [False, True, True, True, True]
    assert marked.id == "c-eef-1-3" and marked.metadata["eef_segment"] == [1, 3]
    assert assistant_trainable_flags(continuation) == [False, False, False, True, True]
    with pytest.raises(ValueError, match="restarts after 3 actions"):
        mark_beneficial(continuation, (0, 2))


def test_eef_on_a_real_failed_expert_trajectory() -> None:
    """A failed expert episode, explored by the (correct) expert from each restart point."""
    env_kwargs = {"difficulty": "hard"}
    failing = RolloutCollector(
        "agentgym/Calculator-v0", engine=None, env_kwargs=env_kwargs,
        expert_kwargs={"error_rate": 1.0, "error_kinds": ["wrong_argument"], "seed": 1},
    )  # fmt: skip
    [expert] = failing.run([EpisodeSpec("expert", seed=2)], progress=False)
    assert expert.success is False
    # Find where the injected error is: the action whose tool result is wrong.
    points = restart_points(expert.num_steps, skip=1)
    explorer = RolloutCollector("agentgym/Calculator-v0", engine=None, env_kwargs=env_kwargs)
    children = explorer.run(
        [EpisodeSpec(f"from-{k}", restart_from=expert, restart_step=k) for k in points],
        progress=False,
    )
    outcomes = {k: bool(child.success) for k, child in zip(points, children, strict=True)}
    segments = beneficial_segments(outcomes, skip=1)
    # Restarting after the wrong call cannot succeed (its result is already in the history
    # the checker reads); restarting before it can. So exactly one transition exists...
    assert len(segments) <= 1
    # ...and every restart before the error succeeds, every one after fails.
    assert outcomes[0] is True
    first_failure = min((k for k, ok in outcomes.items() if not ok), default=None)
    assert first_failure is not None
    assert all(outcomes[k] is (k < first_failure) for k in points)
