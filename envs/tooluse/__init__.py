"""``agentgym/ToolUse-v0``: multi-turn, stateful tool use in the style of BFCL multi-turn.

Parts, each usable on its own:

* :mod:`~agentgym.envs.tooluse.backends`: five stateful domain backends (file system,
  trading, messaging, travel, vehicle) whose ``@tool`` methods act on state loaded from a
  configuration; :func:`~agentgym.envs.tooluse.backends.register_backend` adds yours.
* :mod:`~agentgym.envs.tooluse.tasks`: the seeded task generator (categories base,
  miss_param, miss_func, long_context; difficulties easy, medium, hard).
* :mod:`~agentgym.envs.tooluse.judge`: BFCL's per-turn state and response checks.
* :mod:`~agentgym.envs.tooluse.expert`: the scripted oracle :class:`ToolUseExpert`.
* :mod:`~agentgym.envs.tooluse.augment`: actionable augmentation of tool errors.
* :mod:`~agentgym.envs.tooluse.rewards`: binary, progress and format rewards.
* :mod:`~agentgym.envs.tooluse.curriculum`: Environment Tuning's four-stage curriculum.
* :mod:`~agentgym.envs.tooluse.env`: :class:`ToolUseEnv`.
"""

from agentgym.envs.tooluse.env import ToolUseEnv
from agentgym.envs.tooluse.expert import ToolUseExpert

__all__ = ["ToolUseEnv", "ToolUseExpert"]
