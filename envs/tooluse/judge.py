"""BFCL multi-turn checking: per turn, the state check and the response check.

:class:`MultiTurnChecker` keeps *reference* backends, built from the same initial
configuration as the agent's, and replays each turn's ground-truth calls on them when the
turn ends. A turn passes when

1. **state**: the public state of every backend after the agent's calls equals the state
   after the ground truth (the state is checked on every turn, so a turn whose ground
   truth is empty, as in miss_param and miss_func, fails if the agent changed anything);
2. **response**: every ground-truth call's result is among the results of the agent's
   successful calls so far (results are compared as canonical JSON of the returned
   values, so long-context padding of the text the agent reads does not matter), and the
   agent made at least one call in a turn whose ground truth is not empty.

An episode succeeds when every turn passes. :func:`replay_calls` runs given call lists
as an agent would (tool availability included) and checks them, which the expert uses to
verify that an injected error really breaks the episode.

Example:
    >>> from agentgym.core.parsing import ToolCall
    >>> from agentgym.core.tool_env import ToolTask
    >>> task = ToolTask(
    ...     id="t", turns=("Turn the headlights on.",),
    ...     initial_state={"vehicle": {"headlights": "off"}},
    ...     ground_truth=((ToolCall("set_headlights", {"mode": "on"}),),))
    >>> [v.passed for v in replay_calls(task, [[ToolCall("set_headlights", {"mode": "on"})]])]
    [True]
    >>> print(replay_calls(task, [[ToolCall("set_headlights", {"mode": "auto"})]])[0].message)
    turn 1: the VehicleControl state differs from the expected one: headlights is 'auto', \
expected 'on'; the result of set_headlights(mode='on') was never obtained
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentgym.core.parsing import ToolCall
from agentgym.core.tool_env import CallRecord, ToolTask
from agentgym.core.tools import Tool, ToolResult
from agentgym.envs.tooluse.backends import BACKENDS, Backend, clone, tool_index

__all__ = [
    "MultiTurnChecker",
    "TurnVerdict",
    "build_backends",
    "canonical",
    "describe_call",
    "invoke_on",
    "replay_calls",
]


@dataclass(frozen=True, slots=True)
class TurnVerdict:
    """The checker's judgement of one turn.

    Attributes:
        turn: The turn's index.
        state_ok: The backends' public states equal the ground truth's.
        response_ok: Every ground-truth result was obtained (and a call was made when the
            turn needed calls).
        message: What failed, for people and agents ("" when the turn passed).
    """

    turn: int
    state_ok: bool
    response_ok: bool
    message: str = ""

    @property
    def passed(self) -> bool:
        """Both checks passed."""
        return self.state_ok and self.response_ok


def canonical(value: Any) -> str:
    """A canonical text of a tool's return value, for comparing results."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def describe_call(call: ToolCall) -> str:
    """``get_stock_price(symbol='NVTX')``."""
    arguments = ", ".join(f"{key}={value!r}" for key, value in call.arguments.items())
    return f"{call.name}({arguments})"


def build_backends(task: ToolTask, *, long_context: bool = False) -> dict[str, Backend]:
    """Fresh backends of every domain in ``task.initial_state``."""
    return {
        domain: BACKENDS[domain](config, long_context=long_context)
        for domain, config in task.initial_state.items()
    }


def invoke_on(unbound: Tool, backend: Backend, call: ToolCall) -> ToolResult:
    """Run an unbound backend tool on ``backend``. The result's value is a snapshot (a copy),
    so later calls that change the backend cannot change a result already obtained."""
    backend.clear_error()
    result = unbound.__get__(backend).invoke(call)
    if result.ok and isinstance(result.value, dict | list):
        return ToolResult(True, result.content, clone(result.value))
    return result


class MultiTurnChecker:
    """Judges the turns of one episode against the ground truth (BFCL semantics).

    Args:
        task: The episode's task (its ``ground_truth`` is required).
        reference: Backends in the task's initial state; the checker owns and advances them.
    """

    def __init__(self, task: ToolTask, reference: Mapping[str, Backend]) -> None:
        if task.ground_truth is None:
            raise ValueError(f"Task {task.id!r} has no ground truth to check against.")
        self.task = task
        self.reference = dict(reference)
        self._index = tool_index(list(self.reference))
        self.verdicts: list[TurnVerdict] = []
        self._obtained: set[str] = set()
        self._seen = 0

    def check_turn(
        self, turn: int, backends: Mapping[str, Backend], calls: Sequence[CallRecord]
    ) -> TurnVerdict:
        """Judge ``turn`` (turns are checked in order, each once) after the agent's calls.

        ``calls`` are all of the episode's call records so far (earlier turns included).
        """
        if turn != len(self.verdicts):
            raise ValueError(f"expected turn {len(self.verdicts)} next, got turn {turn}")
        assert self.task.ground_truth is not None
        truth = self.task.ground_truth[turn]
        expected: list[tuple[ToolCall, str]] = []
        for call in truth:
            domain, unbound = self._index[call.name]
            result = invoke_on(unbound, self.reference[domain], call)
            if not result.ok:
                raise RuntimeError(
                    f"Ground truth of task {self.task.id!r}, turn {turn}, fails: {result.content}"
                )
            expected.append((call, canonical(result.value)))
        for record in calls[self._seen :]:
            if record.result.ok:
                self._obtained.add(canonical(record.result.value))
        self._seen = len(calls)

        problems = []
        state_ok = True
        for domain, reference in self.reference.items():
            difference = backends[domain].state_difference(reference)
            if difference is not None:
                state_ok = False
                problems.append(
                    f"the {type(reference).__name__} state differs from the expected one: "
                    f"{difference}"
                )
        response_ok = True
        if truth:
            if not calls or calls[-1].turn != turn:  # records are in order
                response_ok = False
                problems.append("no tool was called, but this turn needed tool calls")
            else:
                missing = [call for call, value in expected if value not in self._obtained]
                if missing:
                    response_ok = False
                    problems.append(
                        "the result of "
                        + ", ".join(describe_call(call) for call in missing[:3])
                        + (f" (and {len(missing) - 3} more)" if len(missing) > 3 else "")
                        + " was never obtained"
                    )
        message = f"turn {turn + 1}: " + "; ".join(problems) if problems else ""
        verdict = TurnVerdict(turn, state_ok, response_ok, message)
        self.verdicts.append(verdict)
        return verdict


def replay_calls(task: ToolTask, turns: Sequence[Sequence[ToolCall]]) -> list[TurnVerdict]:
    """Run ``turns`` (one call list per user turn) as an agent would, and check each turn.

    Tool availability follows the task: a withheld tool fails until its reveal turn, and
    tools of domains the task does not involve are unknown.
    """
    if task.ground_truth is None or len(turns) != len(task.turns):
        raise ValueError("replay_calls needs the task's ground truth and one call list per turn")
    backends = build_backends(task)
    checker = MultiTurnChecker(task, build_backends(task))
    index = tool_index(list(backends))
    withheld = task.metadata.get("withheld_tool")
    reveal = task.metadata.get("reveal_turn")
    records: list[CallRecord] = []
    for turn, calls in enumerate(turns):
        for call in calls:
            entry = index.get(call.name)
            if entry is None or (call.name == withheld and turn < reveal):
                result = ToolResult(
                    False, f"Error: '{call.name}' is not available", None, "unknown"
                )
            else:
                result = invoke_on(entry[1], backends[entry[0]], call)
            records.append(CallRecord(turn, call, result))
        checker.check_turn(turn, backends, records)
    return checker.verdicts
