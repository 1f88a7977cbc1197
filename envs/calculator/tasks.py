"""Calculator tasks: a seeded generator of arithmetic questions with follow-up operations."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from agentgym.core.parsing import ToolCall
from agentgym.core.tool_env import ToolTask

__all__ = ["DIFFICULTIES", "SPLITS", "make_calculator_task"]

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
