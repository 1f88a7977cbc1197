"""Wrappers that ``gymnasium.make`` applies to every registered agentgym environment.

:class:`VerdictsAtTruncation` gives an episode cut short by the time limit
(``max_episode_steps``, Gymnasium's ``TimeLimit`` wrapper) the same episode-end ``info`` as
one that terminated: ``success`` and ``verdicts``, the environment's judgement of the state
reached (:meth:`~agentgym.core.env.TextEnv.evaluate`), and its ``progress`` where defined.
``TimeLimit`` sits outside the environment, so the environment cannot know that a step was
its last; this wrapper, registered once for every id by
:func:`~agentgym.core.registry.register_env`, sits outside ``TimeLimit`` and adds them.

Example:
    >>> import gymnasium as gym
    >>> import agentgym
    >>> env = gym.make("agentgym/Calculator-v0", max_episode_steps=1)
    >>> _ = env.reset(seed=0)
    >>> call = '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'
    >>> *_, truncated, info = env.step(call)
    >>> truncated, info["success"], info["verdicts"]
    (True, False, {})
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import WrapperSpec

from agentgym.core.env import InfoKeys

__all__ = ["VERDICTS_AT_TRUNCATION", "VerdictsAtTruncation"]


class VerdictsAtTruncation(gym.Wrapper[str, str, str, str], gym.utils.RecordConstructorArgs):
    """Add ``success``, ``verdicts`` (and ``progress``) to the ``info`` of a truncated step.

    Only steps that end the episode by truncation alone and carry no verdicts yet are
    changed; the reward is left as it is (a time limit pays nothing extra). Environments
    without an ``evaluate`` method pass through untouched.
    """

    def __init__(self, env: gym.Env[str, str]) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def step(self, action: str) -> tuple[str, Any, bool, bool, dict[str, Any]]:
        """Step the wrapped environment; judge the state reached when the time limit hits."""
        observation, reward, terminated, truncated, info = self.env.step(action)
        evaluate = getattr(self.env.unwrapped, "evaluate", None)
        if truncated and not terminated and InfoKeys.SUCCESS not in info and evaluate:
            evaluation = evaluate()
            info = {
                **info,
                InfoKeys.VERDICTS: evaluation.verdicts,
                InfoKeys.SUCCESS: evaluation.success,
            }
            if evaluation.progress is not None:
                info[InfoKeys.PROGRESS] = evaluation.progress
        return observation, reward, terminated, truncated, info


#: How :func:`~agentgym.core.registry.register_env` lists the wrapper in every spec.
VERDICTS_AT_TRUNCATION = WrapperSpec(
    name="VerdictsAtTruncation",
    entry_point="agentgym.core.wrappers:VerdictsAtTruncation",
    kwargs={},
)
