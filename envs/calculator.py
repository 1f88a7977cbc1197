"""Calculator: multi-turn arithmetic with calculator tools, built on the public tools API.

This environment is written exactly as a user would write their own: ``@tool`` functions,
:class:`~agentgym.ToolTask` records from a seeded generator, and a checker, handed to
:class:`~agentgym.ToolEnv`. It is small enough for SmolLM2-135M to make progress on a CPU,
and it exercises every piece of the tool-use machinery (parsing, validation, multi-turn
episodes, per-turn verdicts, the ground-truth expert).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from agentgym.core.env import Evaluation
from agentgym.core.parsing import ToolCall, ToolCallParser
from agentgym.core.registry import check_choice
from agentgym.core.tasks import GeneratedTaskSet
from agentgym.core.tool_env import ToolEnv, ToolEpisode, ToolTask
from agentgym.core.tools import ToolError, ToolSet, tool

__all__ = ["CalculatorEnv", "calculator_tools", "make_calculator_task"]

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def _as_number(value: float) -> int | float:
    """Integers print as integers (``95``, not ``95.0``)."""
    return int(value) if float(value).is_integer() else round(value, 6)


@tool
def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return _as_number(a + b)


@tool
def subtract(a: float, b: float) -> float:
    """Subtract b from a.

    Args:
        a: The number to subtract from.
        b: The number to subtract.
    """
    return _as_number(a - b)


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers.

    Args:
        a: The first factor.
        b: The second factor.
    """
    return _as_number(a * b)


@tool
def divide(a: float, b: float) -> float:
    """Divide a by b.

    Args:
        a: The dividend.
        b: The divisor (not zero).
    """
    if b == 0:
        raise ToolError("division by zero: b must not be 0.")
    return _as_number(a / b)


calculator_tools = ToolSet([add, subtract, multiply, divide])

_OPS: dict[str, tuple[str, str, Callable[[int, int], int]]] = {
    "add": ("plus", "Add {b} to the result.", lambda a, b: a + b),
    "subtract": ("minus", "Now subtract {b} from the result.", lambda a, b: a - b),
    "multiply": ("times", "Multiply the result by {b}.", lambda a, b: a * b),
    "divide": ("divided by", "Now divide the result by {b}.", lambda a, b: a // b),
}

#: difficulty -> (number of turns, largest operand)
DIFFICULTIES: dict[str, tuple[int, int]] = {"easy": (1, 99), "medium": (2, 999), "hard": (3, 9999)}
SPLITS: dict[str, tuple[int, int]] = {"train": (0, 10_000), "test": (10_000, 1_000)}


def _operand(op: str, current: int, rng: np.random.Generator, largest: int) -> int:
    if op == "divide":
        # Only exact divisions, so answers are integers.
        divisors = [d for d in range(2, 13) if current % d == 0] or [1]
        return int(rng.choice(divisors))
    if op == "multiply":
        return int(rng.integers(2, 13))
    return int(rng.integers(1, largest + 1))


def make_calculator_task(index: int, rng: np.random.Generator, difficulty: str) -> ToolTask:
    """Task ``index`` of a difficulty: a first question and follow-up operations."""
    num_turns, largest = DIFFICULTIES[difficulty]
    first = int(rng.integers(1, largest + 1))
    op = str(rng.choice(["add", "subtract", "multiply"]))
    second = _operand(op, first, rng, largest)
    value = _OPS[op][2](first, second)
    turns = [f"What is {first} {_OPS[op][0]} {second}?"]
    ground_truth: list[tuple[ToolCall, ...]] = [(ToolCall(op, {"a": first, "b": second}),)]
    answers = [f"The answer is {value}."]
    for _ in range(num_turns - 1):
        op = str(rng.choice(list(_OPS)))
        operand = _operand(op, value, rng, largest)
        turns.append(_OPS[op][1].format(b=operand))
        ground_truth.append((ToolCall(op, {"a": value, "b": operand}),))
        value = _OPS[op][2](value, operand)
        answers.append(f"The answer is {value}.")
    return ToolTask(
        id=f"calc-{difficulty}-{index}",
        turns=tuple(turns),
        ground_truth=tuple(ground_truth),
        answers=tuple(answers),
        metadata={"difficulty": difficulty},
    )


def _expected_values(task: ToolTask) -> list[float]:
    assert task.answers is not None
    return [float(_NUMBER.findall(answer)[-1]) for answer in task.answers]


def _reply_is_correct(reply: str, expected: float) -> bool:
    numbers = [float(n.replace(",", "")) for n in _NUMBER.findall(reply)]
    # The last number the agent states is its answer.
    return bool(numbers) and abs(numbers[-1] - expected) < 1e-6


def _turn_verdict(episode: ToolEpisode, turn: int, expected: float) -> bool:
    """The reply states the right number and a calculator call in this turn produced it."""
    computed = any(
        record.result.ok and _reply_is_correct(record.result.content, expected)
        for record in episode.calls_in_turn(turn)
    )
    return computed and _reply_is_correct(episode.responses[turn], expected)


def check_turn(episode: ToolEpisode, turn: int) -> bool:
    """A turn passes when a tool computed the right running result and the reply states it."""
    return _turn_verdict(episode, turn, _expected_values(episode.task)[turn])


def check_episode(episode: ToolEpisode) -> Evaluation:
    """Success when every turn passes; the feedback names the turns that did not."""
    expected = _expected_values(episode.task)
    verdicts: dict[str, bool] = {}
    problems = []
    for turn, reply in enumerate(episode.responses):
        replied = _reply_is_correct(reply, expected[turn])
        verdicts[f"turn_{turn}"] = _turn_verdict(episode, turn, expected[turn])
        if not replied:
            problems.append(f"turn {turn + 1}: the reply does not state the correct result")
        elif not verdicts[f"turn_{turn}"]:
            problems.append(f"turn {turn + 1}: the result was not computed with a tool")
    passed = sum(verdicts.values())
    success = passed == len(expected)
    return Evaluation(
        success=success,
        reward=float(success),
        verdicts=verdicts,
        feedback="All answers are correct." if success else "; ".join(problems) + ".",
        progress=passed / len(expected),
    )


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
