"""Rebuild any intermediate state of an episode by deterministic replay.

Every agentgym episode is a pure function of (environment id and arguments, task id,
episode seed, actions): the environment draws all randomness from an RNG seeded with the
episode seed. Replaying a prefix of a trajectory's actions therefore reaches exactly the
state the original episode was in after those actions, for every environment, with no
per-environment snapshot code. Exploring Expert Failures (EEF) restarts from these states.

Example:
    >>> import agentgym
    >>> env, observation, info = agentgym.replay(
    ...     "agentgym/Calculator-v0", task_id="calc-easy-3", episode_seed=7, actions=[])
    >>> info["task_id"]
    'calc-easy-3'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym

__all__ = ["ReplayDivergence", "replay", "restore"]


class ReplayDivergence(RuntimeError):
    """Replaying recorded actions produced different observations: the env is not deterministic."""


def replay(
    env: str | gym.Env,
    *,
    task_id: str,
    episode_seed: int,
    actions: Sequence[str],
    env_kwargs: Mapping[str, Any] | None = None,
    expected_observations: Sequence[str] | None = None,
) -> tuple[gym.Env, str, dict[str, Any]]:
    """Reset to ``task_id`` with ``episode_seed`` and apply ``actions``.

    Args:
        env: A registered id (a fresh environment is made with ``env_kwargs``) or an
            environment to reuse.
        task_id: The task to start.
        episode_seed: The episode's seed (``info["episode_seed"]`` of the original run).
        actions: The actions to apply, in order.
        env_kwargs: Constructor arguments when ``env`` is an id.
        expected_observations: If given, the observation after each action is compared
            with it and :class:`ReplayDivergence` is raised at the first difference.

    Returns:
        The environment, positioned after the last action, with the last observation and
        info (those of ``reset`` when ``actions`` is empty).

    Raises:
        ValueError: When the episode ends before all actions were applied.
    """
    if isinstance(env, str):
        env = gym.make(env, **dict(env_kwargs or {}))
    observation, info = env.reset(options={"task_id": task_id, "episode_seed": episode_seed})
    for index, action in enumerate(actions):
        observation, _, terminated, truncated, info = env.step(action)
        expected = expected_observations
        if expected is not None and index < len(expected) and observation != expected[index]:
            raise ReplayDivergence(
                f"Replay of task {task_id!r} diverged at action {index}: expected "
                f"{expected[index][:200]!r}, got {observation[:200]!r}."
            )
        if (terminated or truncated) and index < len(actions) - 1:
            raise ValueError(
                f"The episode ended after action {index} of {len(actions)}; a replay prefix "
                "must stop before the end of the episode."
            )
    return env, observation, info


def restore(
    trajectory: Any, num_actions: int, *, verify: bool = True
) -> tuple[gym.Env, str, dict[str, Any]]:
    """The environment in the state a stored trajectory reached after ``num_actions`` actions.

    Args:
        trajectory: A :class:`~agentgym.core.trajectory.Trajectory`.
        num_actions: How many of its actions to replay (0 = just after reset).
        verify: Check each replayed observation against the recorded one.
    """
    if trajectory.episode_seed is None:
        raise ValueError(f"Trajectory {trajectory.id} has no episode_seed; it cannot be replayed.")
    steps = trajectory.steps
    if not 0 <= num_actions <= len(steps):
        raise ValueError(
            f"num_actions={num_actions} is out of range for a trajectory of {len(steps)} steps."
        )
    return replay(
        trajectory.env_id,
        task_id=trajectory.task_id,
        episode_seed=trajectory.episode_seed,
        actions=[step.action for step in steps[:num_actions]],
        env_kwargs=trajectory.env_kwargs,
        expected_observations=[step.observation for step in steps[:num_actions]]
        if verify
        else None,
    )
