"""Episodes cut short report ``success`` and ``verdicts`` like episodes that ended.

The ``info`` table promises both at the end of every episode. A time limit
(``max_episode_steps``) ends an episode from outside the environment, so the registry adds
:class:`~agentgym.core.wrappers.VerdictsAtTruncation` to every id; the collector's own
budgets (``max_turns``, ``max_context``) judge the state reached the same way. Both are
checked on every registered environment against an independent judgement: the state
rebuilt by replay and evaluated there.
"""

from __future__ import annotations

import pickle
from typing import Any

import gymnasium as gym
import pytest
from env_ids import standalone_env_ids

from agentgym import InfoKeys, replay, restore
from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.core.wrappers import VerdictsAtTruncation

ENV_IDS = standalone_env_ids()

# The expert solves CodeExec in one action; a buggy first attempt keeps the episode going.
EXPERT_KWARGS: dict[str, dict[str, Any]] = {"agentgym/CodeExec-v0": {"error_rate": 1.0}}


def _judged_by_replay(env_id: str, info: dict[str, Any], actions: list[Any]) -> Any:
    """The evaluation of the state ``actions`` reach, in a fresh environment."""
    env, _, _ = replay(
        env_id,
        task_id=info[InfoKeys.TASK_ID],
        episode_seed=info[InfoKeys.EPISODE_SEED],
        actions=actions,
        env_kwargs={"max_episode_steps": -1},  # no time limit in the judge's copy
    )
    return env.unwrapped.evaluate()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_time_limit_reports_success_and_verdicts(env_id: str) -> None:
    env = gym.make(env_id, max_episode_steps=3)
    observation, info = env.reset(seed=1)
    expert = env.unwrapped.make_expert(**EXPERT_KWARGS.get(env_id, {}))
    expert.reset(env, observation, info)
    actions: list[Any] = [expert.act(observation, info), 42, 42]  # 42: invalid everywhere
    for number, action in enumerate(actions, start=1):
        observation, _, terminated, truncated, step_info = env.step(action)
        assert not terminated, "pick actions that leave the episode open"
        assert truncated == (number == 3)
        assert (InfoKeys.SUCCESS in step_info) == truncated
    judged = _judged_by_replay(env_id, info, actions[:1])
    assert step_info[InfoKeys.SUCCESS] is judged.success is False
    assert step_info[InfoKeys.VERDICTS] == judged.verdicts
    if judged.progress is not None:
        assert step_info[InfoKeys.PROGRESS] == judged.progress


def test_verdicts_judge_the_state_reached() -> None:
    """A two-turn task cut after the first turn was solved: turn 0 passed, progress made."""
    env = gym.make("agentgym/Calculator-v0", difficulty="medium", max_episode_steps=2)
    observation, info = env.reset(seed=0)
    assert info["num_turns"] == 2
    expert = env.unwrapped.make_expert()
    expert.reset(env, observation, info)
    for _ in range(2):
        observation, _, terminated, truncated, info = env.step(expert.act(observation, info))
    assert (terminated, truncated) == (False, True)
    assert info[InfoKeys.VERDICTS] == {"turn_0": True}
    assert info[InfoKeys.SUCCESS] is False
    assert 0 < info[InfoKeys.PROGRESS] < 1


def test_terminated_steps_and_no_time_limit_are_left_alone() -> None:
    env = gym.make("agentgym/Calculator-v0", difficulty="easy", max_episode_steps=2)
    observation, info = env.reset(seed=0)
    expert = env.unwrapped.make_expert()
    expert.reset(env, observation, info)
    for _ in range(2):  # the expert finishes a one-turn task in exactly the last step
        observation, _, terminated, truncated, info = env.step(expert.act(observation, info))
    assert terminated and truncated and info[InfoKeys.SUCCESS] is True
    unlimited = gym.make("agentgym/Calculator-v0", max_episode_steps=-1)
    unlimited.reset(seed=0)
    assert all(InfoKeys.SUCCESS not in unlimited.step(42)[4] for _ in range(30))


def test_the_wrapper_is_part_of_every_spec_and_survives_pickling() -> None:
    env = gym.make("agentgym/Calculator-v0", max_episode_steps=1)
    assert isinstance(env, VerdictsAtTruncation)
    assert [w.name for w in env.spec.additional_wrappers] == ["VerdictsAtTruncation"]
    assert isinstance(gym.make(env.spec), VerdictsAtTruncation)  # remade from its spec
    env.reset(seed=0)
    twin = pickle.loads(pickle.dumps(env))
    assert twin.step(42)[4][InfoKeys.SUCCESS] is False


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_collector_budgets_record_the_judgement(env_id: str) -> None:
    collector = RolloutCollector(
        env_id, engine=None, max_turns=1, expert_kwargs=EXPERT_KWARGS.get(env_id, {})
    )
    [trajectory] = collector.run([EpisodeSpec("cut", seed=1)], progress=False)
    assert trajectory.error is None
    assert trajectory.truncated and trajectory.truncation_reason == "max_turns"
    judged = restore(trajectory, trajectory.num_steps)[0].unwrapped.evaluate()
    assert trajectory.success is judged.success is False
    assert trajectory.verdicts == judged.verdicts
