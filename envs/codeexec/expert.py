"""The CodeExec expert: reference solutions, with injected bugs that it then repairs.

With probability ``error_rate`` an episode's first attempt is a mutant of the reference
solution (one change inside the entry-point function: an arithmetic or comparison operator
swapped, a constant off by one, a boolean operator flipped, or, when none applies, the
result replaced by ``None``); the next attempt is the correct solution. Such episodes are
repair demonstrations with real execution feedback in between, and their failed attempts
are the "bad" samples LeTI trains on.

Example:
    >>> import numpy as np
    >>> print(inject_bug("def f(x):\\n    return x + 1\\n", "f", np.random.default_rng(1)), end="")
    def f(x):
        return x - 1
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from agentgym.core.policy import ErrorInjectingExpert

__all__ = ["CodeExecExpert", "inject_bug", "mutation_sites"]

_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mod,
    ast.Mod: ast.FloorDiv, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.And: ast.Or, ast.Or: ast.And, ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}  # fmt: skip


def _entry_function(module: ast.Module, entry_point: str) -> ast.FunctionDef | None:
    return next(
        (
            node
            for node in module.body
            if isinstance(node, ast.FunctionDef) and node.name == entry_point
        ),
        None,
    )


def mutation_sites(function: ast.FunctionDef) -> list[tuple[ast.AST, str]]:
    """Where a single change can be made: ``(node, kind)`` in source order."""
    sites: list[tuple[ast.AST, str]] = []
    for node in ast.walk(function):
        if isinstance(node, ast.BinOp | ast.BoolOp) and type(node.op) in _SWAPS:
            sites.append((node, "operator"))
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in _SWAPS:
            sites.append((node, "comparison"))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int)
            and not isinstance(node.value, bool)
        ):
            sites.append((node, "constant"))
    return sites


def inject_bug(solution: str, entry_point: str, rng: np.random.Generator) -> str:
    """``solution`` with one bug in ``entry_point`` (chosen with ``rng``)."""
    module = ast.parse(solution)
    function = _entry_function(module, entry_point)
    if function is None:
        return solution + f"\n\ndef {entry_point}(*args, **kwargs):\n    return None\n"
    sites = mutation_sites(function)
    if not sites:
        function.body = [ast.Return(value=ast.Constant(value=None))]
        return ast.unparse(module) + "\n"
    node, kind = sites[int(rng.integers(len(sites)))]
    if kind == "operator":
        node.op = _SWAPS[type(node.op)]()  # type: ignore[attr-defined]
    elif kind == "comparison":
        node.ops[0] = _SWAPS[type(node.ops[0])]()  # type: ignore[attr-defined]
    else:
        node.value += 1  # type: ignore[attr-defined]
    return ast.unparse(module) + "\n"


def _answer(code: str, note: str) -> str:
    return f"{note}\n\n```python\n{code.rstrip()}\n```"


class CodeExecExpert(ErrorInjectingExpert):
    """Answers with the reference solution; with ``error_rate``, a buggy one first.

    The error draws (RNG seeded per episode) are :class:`ErrorInjectingExpert`'s; the one
    kind of error is ``"bug"`` (see :func:`inject_bug`).

    Args:
        error_rate: Probability that an episode's first attempt has an injected bug.
        seed: Seed of the expert's choices (combined with the episode seed).
    """

    name: ClassVar[str] = "codeexec-expert"
    ERROR_KINDS = ("bug",)

    def __init__(self, *, error_rate: float = 0.0, seed: int = 0) -> None:
        super().__init__(error_rate=error_rate, seed=seed)
        self._answers: list[str] = []
        self._problem: Any = None

    def plan_episode(self, env: Any, observation: str, info: Mapping[str, Any]) -> None:
        problem = self._problem = env.unwrapped.task
        if problem.solution is None:
            # Nothing to imitate: an honest failure, so rollouts still run.
            self._answers = [
                _answer(
                    f"def {problem.entry_point}(*args, **kwargs):\n    raise NotImplementedError",
                    "I do not know a solution.",
                )
            ]
            return
        self._answers = [_answer(problem.solution, "Here is my solution.")]

    def inject_error(self) -> str | None:
        problem = self._problem
        if problem.solution is None:
            return None
        buggy = inject_bug(problem.solution, problem.entry_point, self.rng)
        repaired = _answer(problem.solution, "I fixed the bug; here is the corrected solution.")
        self._answers = [_answer(buggy, "Here is my solution."), repaired]
        return "bug"

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        # Answers in order; the last one repeats if the episode goes on.
        return self._answers.pop(0) if len(self._answers) > 1 else self._answers[-1]
