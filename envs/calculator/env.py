"""``agentgym/Calculator-v0``: the tools, tasks and judge handed to :class:`~agentgym.ToolEnv`."""

from __future__ import annotations

import numpy as np

from agentgym.core.parsing import ToolCallParser
from agentgym.core.registry import check_choice
from agentgym.core.tasks import GeneratedTaskSet
from agentgym.core.tool_env import ToolEnv, ToolTask
from agentgym.envs.calculator.judge import check_episode, check_turn
from agentgym.envs.calculator.tasks import DIFFICULTIES, SPLITS, make_calculator_task
from agentgym.envs.calculator.tools import calculator_tools

__all__ = ["CalculatorEnv"]


class CalculatorEnv(ToolEnv):
    """Arithmetic questions answered with calculator tools, over one or more turns.

    ## Description
    The user asks an arithmetic question and, at higher difficulty, follow-up operations
    on the running result. Tools: ``add``, ``subtract``, ``multiply``, ``divide``.

    ## Action Space
    Text: tool calls in the parser's format, or a plain reply that ends the turn.

    ## Observation Space
    Text: the user's question, a tool's result, or an error explaining a bad call.

    ## Rewards
    1.0 at the end when, in every turn, a calculator call produced the right result and the
    reply states it; else 0.0. ``info["progress"]`` is the fraction of turns that passed.

    ## Episode End
    After the reply to the last turn; truncated at ``max_episode_steps`` (24).

    ## Arguments
    * ``split``: ``"train"`` (10,000 tasks) or ``"test"`` (1,000 disjoint tasks).
    * ``difficulty``: ``"easy"`` (1 turn), ``"medium"`` (2 turns), ``"hard"`` (3 turns).
    * ``parser``: tool-call format (``"hermes"``, ``"python"``, ``"think_answer"``).
    * ``num_tasks``: use only the first ``num_tasks`` tasks of the split.
    * plus :class:`~agentgym.ToolEnv`'s ``max_steps_per_turn`` and text limits.

    ## Version History
    * v0: initial version.
    """

    def __init__(
        self,
        *,
        split: str = "train",
        difficulty: str = "easy",
        parser: str | ToolCallParser = "hermes",
        num_tasks: int | None = None,
        max_steps_per_turn: int = 6,
        max_observation_length: int = 4096,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        check_choice("split", split, list(SPLITS))
        check_choice("difficulty", difficulty, list(DIFFICULTIES))
        offset, size = SPLITS[split]
        if num_tasks is not None:
            if not 1 <= num_tasks <= size:
                raise ValueError(f"num_tasks must be in [1, {size}] for split={split!r}")
            size = num_tasks

        def generate(index: int, rng: np.random.Generator) -> ToolTask:
            return make_calculator_task(index, rng, difficulty)

        tasks = GeneratedTaskSet(
            size,
            generate,
            id_prefix=f"calc-{difficulty}-",
            base_seed=sorted(DIFFICULTIES).index(difficulty),
            offset=offset,
        )
        self.split = split
        self.difficulty = difficulty
        super().__init__(
            tools=calculator_tools,
            tasks=tasks,
            checker=check_episode,
            turn_checker=check_turn,
            system_prompt=(
                "You are a careful assistant with a calculator. Use the calculator tools for "
                "every arithmetic operation, then reply with the result in plain text, e.g. "
                "'The answer is 42.'"
            ),
            parser=parser,
            max_steps_per_turn=max_steps_per_turn,
            max_observation_length=max_observation_length,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
