"""BFCL's per-turn checks: the state after the agent's calls, the results it obtained, and
whether it called anything; :func:`plan_passes` plays a whole plan and judges it.

For every turn whose ground truth is not empty: (1) state: every public attribute of every
backend after the agent's calls equals the one after replaying the ground truth (turn by
turn, on a parallel set of backends); (2) response: every ground-truth call's result
appears among the results the agent obtained so far (as a multiset); (3) the agent made at
least one call in that turn.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentgym.core.parsing import ToolCall
from agentgym.core.tool_schema import short_repr
from agentgym.envs.bfcl.execution import execute_call
from agentgym.envs.bfcl.loaders import _FUNCTIONS, fresh_backends
from agentgym.envs.bfcl.tasks import BFCLTask

__all__ = [
    "TurnRecord",
    "judge_turn",
    "missing_results",
    "plan_passes",
    "public_state",
    "state_differences",
]


def public_state(instance: Any) -> dict[str, Any]:
    """The attributes BFCL's state check compares (public instance attributes)."""
    return {k: v for k, v in vars(instance).items() if not k.startswith("_")}


def _first_difference(got: Any, expected: Any, path: str, depth: int = 0) -> str:
    """A short path to where two values differ (dict keys and list positions)."""
    if depth >= 4:
        return path
    if isinstance(got, dict) and isinstance(expected, dict):
        for key in expected:
            if key not in got:
                return f"{path}[{key!r}] (missing)"
            if got[key] != expected[key]:
                return _first_difference(got[key], expected[key], f"{path}[{key!r}]", depth + 1)
        for key in got:
            if key not in expected:
                return f"{path}[{key!r}] (unexpected)"
        return path
    if isinstance(got, list) and isinstance(expected, list):
        if len(got) != len(expected):
            return f"{path} (length {len(got)}, expected {len(expected)})"
        for index, (a, b) in enumerate(zip(got, expected, strict=True)):
            if a != b:
                return _first_difference(a, b, f"{path}[{index}]", depth + 1)
        return path
    if hasattr(got, "contents") and hasattr(expected, "contents"):
        # The file system's directories: compare their entries by name.
        return _first_difference(got.contents, expected.contents, path, depth + 1)
    if isinstance(got, int | float | str | bool) and isinstance(expected, int | float | str | bool):
        return f"{path} is {short_repr(got)}, expected {short_repr(expected)}"
    return path


def state_differences(backends: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """Every public attribute that differs, as ``Class.attr...`` paths (BFCL's state check)."""
    missing = object()
    differences = []
    for class_name, reference in expected.items():
        instance = backends.get(class_name)
        for attr, value in public_state(reference).items():
            got = getattr(instance, attr, missing)
            if got is missing:
                differences.append(f"{class_name}.{attr} (missing)")
            elif got != value:
                differences.append(_first_difference(got, value, f"{class_name}.{attr}"))
    return differences


def missing_results(expected: Sequence[str], obtained: Sequence[str]) -> list[int]:
    """Indices of ``expected`` results not found in ``obtained`` (multiset, any order)."""
    pool = Counter(obtained)
    missing = []
    for index, item in enumerate(expected):
        if pool[item] > 0:
            pool[item] -= 1
        else:
            missing.append(index)
    return missing


@dataclass
class TurnRecord:
    """The checker's verdicts on one turn with a ground truth."""

    turn: int
    state: bool
    response: bool
    called: bool
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.state and self.response and self.called


def judge_turn(
    turn: int,
    expected_calls: Sequence[ToolCall],
    backends: Mapping[str, Any],
    expected_backends: dict[str, Any],
    obtained_results: Sequence[str],
    calls_made: int,
) -> TurnRecord | None:
    """Replay the turn's ground truth on ``expected_backends``, then judge the turn.

    BFCL's three checks: (1) state: every public attribute of every backend equals the
    replay's; (2) response: every ground-truth result is among ``obtained_results`` (all
    the agent's results so far); (3) the agent made a call (``calls_made`` in this turn).
    ``None`` for a turn without ground truth, which BFCL does not check.
    """
    expected_results = [
        execute_call(expected_backends, call, _FUNCTIONS.keys()).content for call in expected_calls
    ]
    if not expected_calls:
        return None
    problems = []
    differences = state_differences(backends, expected_backends)
    if differences:
        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
        problems.append(f"the state differs from the expected one at {differences[0]}{more}")
    missing = missing_results(expected_results, obtained_results)
    if missing:
        names = ", ".join(dict.fromkeys(expected_calls[i].name for i in missing))
        problems.append(f"{len(missing)} expected result(s) were never obtained (from {names})")
    if calls_made == 0:
        problems.append("no function was called")
    return TurnRecord(turn, not differences, not missing, calls_made > 0, problems)


def plan_passes(
    task: BFCLTask, turns: Sequence[Sequence[ToolCall]], *, strict: bool = False
) -> bool:
    """Whether making ``turns[t]``'s calls in turn ``t`` (one action per turn) solves ``task``.

    Runs on private backends, with the functions each turn reveals, and judges every
    checked turn as the environment does. The expert uses it to make sure an injected
    error really fails the entry.
    """
    backends, expected = fresh_backends(task), fresh_backends(task)
    available = list(task.functions)
    withheld = {name for names in task.revealed.values() for name in names}
    results: list[str] = []
    for turn, calls in enumerate(turns):
        new = task.revealed.get(turn, ())
        available.extend(new)
        withheld.difference_update(new)
        for call in calls:
            outcome = execute_call(backends, call, available, withheld, strict=strict)
            if outcome.executed:
                results.append(outcome.content)
        record = judge_turn(turn, task.ground_truth[turn], backends, expected, results, len(calls))
        if record is not None and not record.passed:
            return False
    return True
