"""Calculator: multi-turn arithmetic with calculator tools, built on the public tools API.

This environment is written exactly as a user would write their own: ``@tool`` functions,
:class:`~agentgym.ToolTask` records from a seeded generator, and a checker, handed to
:class:`~agentgym.ToolEnv`. It is small enough for SmolLM2-135M to make progress on a CPU,
and it exercises every piece of the tool-use machinery (parsing, validation, multi-turn
episodes, per-turn verdicts, the ground-truth expert).

Parts: :mod:`~agentgym.envs.calculator.env` (:class:`CalculatorEnv`),
:mod:`~agentgym.envs.calculator.tools`, :mod:`~agentgym.envs.calculator.tasks` and
:mod:`~agentgym.envs.calculator.judge`. The expert is :class:`~agentgym.ToolEnv`'s own: it
replays each task's ground-truth calls.
"""

from agentgym.envs.calculator.env import CalculatorEnv
from agentgym.envs.calculator.judge import check_episode, check_turn
from agentgym.envs.calculator.tasks import DIFFICULTIES, SPLITS, make_calculator_task
from agentgym.envs.calculator.tools import add, calculator_tools, divide, multiply, subtract

__all__ = [
    "DIFFICULTIES",
    "SPLITS",
    "CalculatorEnv",
    "add",
    "calculator_tools",
    "check_episode",
    "check_turn",
    "divide",
    "make_calculator_task",
    "multiply",
    "subtract",
]
