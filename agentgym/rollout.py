"""Running episodes and recording them as trajectories.

:func:`run_episode` plays one episode of any agentgym environment with a
:class:`~agentgym.core.policy.ScriptedPolicy` and returns a
:class:`~agentgym.core.trajectory.Trajectory` in the chat format trainers consume: the
system prompt, the user's turns and tool results as context, the policy's actions as
trainable assistant messages, and the environment's closing message (the evaluator's
verdict, useful to feedback-conditioned trainers) as a last, untrained user message.

Example:
    >>> import gymnasium as gym
    >>> import agentgym
    >>> env = gym.make("agentgym/Calculator-v0")
    >>> trajectory = run_episode(env, env.unwrapped.make_expert(), seed=0,
    ...                          env_id="agentgym/Calculator-v0")
    >>> trajectory.success, [m.role for m in trajectory.messages]
    (True, ['system', 'user', 'assistant', 'tool', 'assistant', 'user'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from agentgym.core.env import InfoKeys
from agentgym.core.policy import ScriptedPolicy
from agentgym.core.trajectory import Message, Step, Trajectory

__all__ = ["run_episode"]

# info entries that are bulky or not JSON-safe and so are not copied into Step.info.
_STEP_INFO_SKIP = frozenset(
    {
        InfoKeys.FEEDBACK,
        InfoKeys.ACTION_VALID,
        InfoKeys.PROGRESS,
        InfoKeys.VERDICTS,
        InfoKeys.SUCCESS,
        InfoKeys.TASK_ID,
        InfoKeys.EPISODE_SEED,
        InfoKeys.SYSTEM_PROMPT,
        InfoKeys.TOOLS,
    }
)


def run_episode(
    env: gym.Env,
    policy: ScriptedPolicy,
    *,
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
    env_id: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    trajectory_id: str | None = None,
    iteration: int | None = None,
) -> Trajectory:
    """Play one episode of ``env`` with ``policy`` and record it.

    Args:
        env: An environment made with ``gymnasium.make`` (time limit included).
        policy: The scripted policy to run.
        seed: Seed for ``env.reset``.
        options: Reset options (``task_id``, ``task_index``, ``episode_seed``).
        env_id: Id recorded in the trajectory (default: ``env.spec.id``).
        env_kwargs: Constructor arguments recorded for replay.
        trajectory_id: A deterministic id (resumable runs use one); random if ``None``.
        iteration: Training iteration recorded in the trajectory.
    """
    observation, info = env.reset(seed=seed, options=dict(options or {}))
    policy.reset(env, observation, info)
    messages = []
    if info.get(InfoKeys.SYSTEM_PROMPT):
        messages.append(Message("system", info[InfoKeys.SYSTEM_PROMPT]))
    messages.append(Message("user", observation))
    trajectory = Trajectory(
        env_id=env_id or (env.spec.id if env.spec is not None else type(env.unwrapped).__name__),
        task_id=str(info[InfoKeys.TASK_ID]),
        messages=messages,
        episode_seed=info.get(InfoKeys.EPISODE_SEED),
        env_kwargs=dict(env_kwargs or {}),
        policy=policy.name,
        iteration=iteration,
    )
    if trajectory_id is not None:
        trajectory.id = trajectory_id
    while True:
        action = policy.act(observation, info)
        observation, reward, terminated, truncated, info = env.step(action)
        trajectory.messages.append(Message("assistant", action, trainable=True))
        trajectory.messages.append(
            Message(info.get(InfoKeys.OBSERVATION_ROLE, "user"), observation)
        )
        trajectory.steps.append(
            Step(
                action=action,
                observation=observation,
                reward=float(reward),
                terminated=terminated,
                truncated=truncated,
                action_valid=bool(info.get(InfoKeys.ACTION_VALID, True)),
                feedback=str(info.get(InfoKeys.FEEDBACK, "")),
                progress=info.get(InfoKeys.PROGRESS),
                info={k: v for k, v in info.items() if k not in _STEP_INFO_SKIP},
            )
        )
        trajectory.reward += float(reward)
        if terminated or truncated:
            break
    finish_trajectory(trajectory, env, terminated=terminated, truncated=truncated, info=info)
    return trajectory


def finish_trajectory(
    trajectory: Trajectory,
    env: gym.Env,
    *,
    terminated: bool,
    truncated: bool,
    info: Mapping[str, Any],
) -> None:
    """Record the outcome: the final verdicts, or an evaluation of a truncated episode."""
    trajectory.terminated = terminated
    trajectory.truncated = truncated
    if terminated:
        trajectory.success = bool(info.get(InfoKeys.SUCCESS, False))
        trajectory.verdicts = dict(info.get(InfoKeys.VERDICTS, {}))
        trajectory.feedback = str(info.get(InfoKeys.FEEDBACK, ""))
        return
    trajectory.truncation_reason = "max_episode_steps"
    evaluation = env.unwrapped.evaluate()
    trajectory.success = evaluation.success
    trajectory.verdicts = dict(evaluation.verdicts)
    trajectory.feedback = evaluation.feedback
