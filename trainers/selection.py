"""Choosing what to train on: rejection sampling (RFT) and Exploring Expert Failures (EEF).

Pure functions over trajectories, shared by the trainers and tested on constructed data.

* :func:`select_successes`: RFT's filter: keep trajectories whose reward reaches a
  threshold, drop duplicates (same action sequence for the same task), keep at most ``M``
  per task, deterministically.
* :func:`restart_points`: where EEF restarts the agent inside a failed expert trajectory
  (every ``skip`` actions, at most ``budget`` restarts).
* :func:`beneficial_segments`: from the agent's outcome at each restart point, the expert
  action ranges that turned a failing start into a succeeding one (fail from ``s_kl``,
  success from ``s_(k+1)l``): those actions are worth learning.
* :func:`mark_beneficial`: the agent's successful continuation from ``s_(k+1)l`` with the
  beneficial expert actions made trainable; every other expert action stays in context
  with its loss masked (it may be harmful).

Example:
    >>> beneficial_segments({0: False, 2: False, 4: True, 6: True}, skip=2)
    [(2, 4)]
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from agentgym.core.trajectory import Trajectory

__all__ = ["beneficial_segments", "mark_beneficial", "restart_points", "select_successes"]


def _normalised_actions(trajectory: Trajectory) -> tuple[str, ...]:
    return tuple(" ".join(action.split()) for action in trajectory.actions)


def select_successes(
    trajectories: Iterable[Trajectory],
    *,
    min_reward: float = 1.0,
    max_per_task: int | None = None,
    deduplicate: bool = True,
) -> list[Trajectory]:
    """Trajectories worth imitating: reward >= ``min_reward``, distinct, capped per task.

    Within a task the highest rewards come first, then the shortest, then by id, so the
    choice does not depend on collection order.

    >>> good = [Trajectory("e", "a", id=str(i), reward=1.0) for i in range(3)]
    >>> [t.id for t in select_successes(good, max_per_task=2, deduplicate=False)]
    ['0', '1']
    """
    by_task: dict[str, list[Trajectory]] = defaultdict(list)
    for trajectory in trajectories:
        if trajectory.reward >= min_reward and trajectory.error is None:
            by_task[trajectory.task_id].append(trajectory)
    selected = []
    for task_id in sorted(by_task):
        candidates = sorted(by_task[task_id], key=lambda t: (-t.reward, t.num_steps, t.id))
        seen: set[tuple[str, ...]] = set()
        kept = []
        for trajectory in candidates:
            key = _normalised_actions(trajectory)
            if deduplicate and key in seen:
                continue
            seen.add(key)
            kept.append(trajectory)
            if max_per_task is not None and len(kept) >= max_per_task:
                break
        selected += kept
    return selected


def restart_points(num_actions: int, *, skip: int, budget: int | None = None) -> list[int]:
    """Action counts to restart from: ``0, skip, 2*skip, ... < num_actions`` (at most ``budget``).

    >>> restart_points(7, skip=2), restart_points(7, skip=2, budget=2)
    ([0, 2, 4, 6], [0, 2])
    """
    if skip < 1:
        raise ValueError(f"skip must be >= 1, got {skip}")
    points = list(range(0, num_actions, skip))
    return points if budget is None else points[:budget]


def beneficial_segments(outcomes: Mapping[int, bool], *, skip: int) -> list[tuple[int, int]]:
    """Expert action ranges ``[start, end)`` after which the agent starts to succeed.

    Args:
        outcomes: Restart point (number of expert actions replayed) -> whether the agent
            succeeded from there.
        skip: Distance between restart points.
    """
    return [
        (point, point + skip)
        for point in sorted(outcomes)
        if not outcomes[point] and outcomes.get(point + skip) is True
    ]


def mark_beneficial(continuation: Trajectory, segment: tuple[int, int]) -> Trajectory:
    """A copy of ``continuation`` with the expert actions of ``segment`` made trainable.

    ``continuation`` is the agent's episode restarted after ``segment[1]`` expert actions
    (``restart_step == segment[1]``); its first ``restart_step`` assistant messages are the
    replayed expert actions (untrained), followed by the agent's own (trained) actions.
    """
    start, end = segment
    if continuation.restart_step != end:
        raise ValueError(
            f"the continuation restarts after {continuation.restart_step} actions, but the "
            f"segment ends at {end}"
        )
    messages = []
    action_index = 0
    for message in continuation.messages:
        if message.role == "assistant":
            if start <= action_index < end:
                message = dataclasses.replace(message, trainable=True)
            action_index += 1
        messages.append(message)
    metadata = {**continuation.metadata, "eef_segment": [start, end]}
    return dataclasses.replace(
        continuation,
        id=f"{continuation.id}-eef-{start}-{end}",
        messages=messages,
        metadata=metadata,
    )


def assistant_trainable_flags(trajectory: Trajectory) -> Sequence[bool]:
    """The ``trainable`` flag of each assistant message, in order (for inspection and tests)."""
    return [m.trainable for m in trajectory.messages if m.role == "assistant"]
