"""``agentgym/BFCL-MultiTurn-v0``: the environment (its oracle is :mod:`.expert`)."""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
from collections.abc import Sequence
from typing import Any

from agentgym.core.env import Evaluation, TextEnv, Transition
from agentgym.core.parsing import PythonCallParser, ToolCall, ToolCallParser, get_parser
from agentgym.core.parsing.common import json_tool_list, signature_tool_list
from agentgym.core.registry import check_choice
from agentgym.core.rewards import REWARD_MODES, format_reward, progress_reward
from agentgym.core.tool_env import final_transition, normalize_evaluation
from agentgym.envs.bfcl.execution import CallOutcome, execute_call
from agentgym.envs.bfcl.expert import BFCLExpert
from agentgym.envs.bfcl.hints import hint_for
from agentgym.envs.bfcl.judge import TurnRecord, judge_turn
from agentgym.envs.bfcl.loaders import _FUNCTIONS, _require_bfcl, fresh_backends, parameter_order
from agentgym.envs.bfcl.tasks import CATEGORIES, BFCLTask, select_tasks

__all__ = ["PARSERS", "SYSTEM_PROMPT", "BFCLMultiTurnEnv"]

PARSERS = ("python", "hermes", "think_answer")

SYSTEM_PROMPT = (
    "You are an assistant that carries out the user's requests by calling the functions "
    "below, which act on a live system. In each turn, keep calling functions until the "
    "request is fulfilled as far as the functions allow; each call's result comes back to "
    "you. Then reply in plain text without any function call: that ends the turn and the "
    "user speaks next. If no function fits the request, or the request lacks a value a "
    "function needs, do not guess: say so in your reply."
)

_PARSER_LOCK = threading.Lock()
_PYTHON_PARSER: list[PythonCallParser] = []


def _make_parser(name: str) -> ToolCallParser:
    """``hermes``, or the ``python`` parser that knows every function's parameter order
    (positional arguments bind as BFCL's executor binds them); shared by env copies."""
    if name != "python":
        return get_parser(name)
    with _PARSER_LOCK:
        if not _PYTHON_PARSER:
            _PYTHON_PARSER.append(PythonCallParser(parameter_order=parameter_order()))
        return _PYTHON_PARSER[0]


def _names(argument: str, value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """A list argument given as a sequence or a comma-separated string (``None`` stays)."""
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if not all(isinstance(part, str) for part in value):
        raise TypeError(f"{argument} must be names (strings), got {list(value)!r}")
    return tuple(value)


class BFCLMultiTurnEnv(TextEnv):
    """BFCL v4 multi-turn function calling over stateful backends.

    ## Description
    Each task is one BFCL multi-turn entry: a conversation of 1 to 8 user turns over one
    to four stateful backends (a file system, math, messaging, a posting API, ticketing, a
    trading bot, travel booking, vehicle control) loaded from the entry's initial state.
    Within a turn the agent calls functions until it replies without a call, which ends
    the turn; the next user turn follows. Categories: ``base``; ``miss_param`` (a turn
    lacks a value, the agent should ask; a later turn supplies it); ``miss_func`` (a needed
    function is withheld until a later turn reveals it); ``long_context`` (backends return
    long, noisy results). 800 tasks, with BFCL's ids (``multi_turn_base_0``, ...).

    ## Action Space
    Text. With ``parser="python"`` (BFCL's prompt format) a Python list of calls,
    ``[cd(folder='document'), ls(a=True)]``; positional arguments bind in the backend
    method's parameter order, as BFCL's executor binds them (``sort('report.pdf')``).
    With ``"hermes"``, ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks;
    with ``"think_answer"`` (Environment Tuning's format), ``<think>...</think>`` then a
    ``<tool_call>[...]</tool_call>`` JSON list or an ``<answer>...</answer>``. A reply
    without a call (plain text; an ``<answer>`` in ``think_answer``) ends the turn.

    ## Observation Space
    Text: the user's turn; the results of the calls (one call: its result; several: one
    JSON line ``{"name", "result"}`` each), formatted as BFCL does (dicts as JSON); or an
    error (``Error during execution: ...``) for a malformed action, an unknown function,
    unknown or missing arguments, or an exception in the backend. Calls run with BFCL's
    own executor semantics by default (see ``strict``). In miss_func, the turn that
    reveals functions lists them and ``info["tools"]`` carries the new tool list. With
    ``augment=True`` a failed call's result ends with a corrective ``Hint: ...`` line.

    ## Rewards
    At the end, by ``reward_mode``: ``"binary"`` (default) 1.0 if the entry passes, else
    0.0 (BFCL's accuracy); ``"progress"`` the fraction of checked turns that pass
    (Environment Tuning's progress reward); ``"format"`` ``I_tool * (R_format + R_tool)``
    in [0, 2] (Environment Tuning's stage-1 reward: well-formed actions, calls that run
    without an error). A turn with a ground truth passes when (1) every public attribute
    of every backend equals that after replaying the ground truth, (2) every ground-truth
    call's result is among the results the agent obtained so far and (3) the agent made at
    least one call. ``info["success"]`` is whether the entry passed; every step's
    ``info["progress"]`` is the fraction of checked turns passed so far, and
    ``info["verdicts"]`` has ``turn_k_state``, ``turn_k_response`` and ``turn_k_called``.

    ## Episode End
    Terminates after the reply to the last turn. A turn with more than
    ``max_steps_per_turn`` actions that are not a reply is ended for the agent and the
    episode cannot succeed (BFCL force-quits the entry). Truncated at
    ``max_episode_steps`` (200).

    ## Arguments
    * ``categories``: a subset of ``"base"``, ``"miss_param"``, ``"miss_func"``,
      ``"long_context"`` (default all four).
    * ``split``: ``"all"`` (default: the benchmark as published), ``"train"`` or
      ``"test"``: disjoint halves, 100 entries per category each; an entry number goes to
      the same half in every category (the categories are variants of the same 200
      scenarios). See :func:`~agentgym.envs.bfcl.tasks.split_of`.
    * ``backends``: keep only entries that involve one of these backend classes;
      ``exclude_backends``: drop entries that involve any of them (an out-of-distribution
      hold-out). Names: ``GorillaFileSystem``, ``MathAPI``, ``MessageAPI``, ``TicketAPI``,
      ``TradingBot``, ``TravelAPI``, ``TwitterAPI``, ``VehicleControlAPI``.
    * ``num_tasks``: keep only the first entries of the selection.
    * ``parser``: ``"python"`` (default), ``"hermes"`` or ``"think_answer"``.
    * ``strict``: ``False`` (default) executes calls as BFCL's executor does, so scores
      compare with published ones: values of another type than documented reach the
      backend (a float where an integer is declared), a function withheld until a later
      turn runs when called early, and a backend that raises keeps what it changed.
      ``True`` checks argument types against the function docs, refuses withheld
      functions, and rolls a raising backend back. See :mod:`agentgym.envs.bfcl`.
    * ``reward_mode``: ``"binary"``, ``"progress"`` or ``"format"`` (see Rewards).
    * ``augment``: Environment Tuning's actionable augmentation: failed calls get a
      corrective hint (:mod:`agentgym.envs.bfcl.hints`), and a withheld function is
      refused with a warning to ask or wait instead of running.
    * ``max_steps_per_turn``: non-reply actions allowed in one turn (default 40, so that
      an agent calling one function per step can solve every entry: the longest
      ground-truth turn has 34 calls; BFCL's own inference allows 20 steps, each of which
      may carry several calls: pass 20 to match it).
    * ``max_observation_length``, ``max_action_length``, ``render_mode``: see
      :class:`~agentgym.TextEnv`.

    Needs ``bfcl-eval``: ``pip install --no-deps bfcl-eval==2026.3.23 mpmath``.

    ## Version History
    * v0: initial version (bfcl-eval 2026.3.23, BFCL v4 data).
    """

    def __init__(
        self,
        *,
        categories: str | Sequence[str] = CATEGORIES,
        split: str = "all",
        backends: str | Sequence[str] | None = None,
        exclude_backends: str | Sequence[str] = (),
        num_tasks: int | None = None,
        parser: str = "python",
        strict: bool = False,
        reward_mode: str = "binary",
        augment: bool = False,
        max_steps_per_turn: int = 40,
        max_observation_length: int = 65_536,
        max_action_length: int = 16_384,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            max_observation_length=max_observation_length,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        selected = _names("categories", categories) or ()
        check_choice("parser", parser, PARSERS)
        check_choice("reward_mode", reward_mode, REWARD_MODES)
        for name, flag in (("strict", strict), ("augment", augment)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        if max_steps_per_turn < 1:
            raise ValueError(f"max_steps_per_turn must be >= 1, got {max_steps_per_turn}")
        _require_bfcl()
        self.tasks = select_tasks(
            selected,
            split=split,
            backends=_names("backends", backends),
            exclude_backends=_names("exclude_backends", exclude_backends) or (),
            num_tasks=num_tasks,
        )
        self.categories = tuple(dict.fromkeys(selected))
        self.split = split
        self.backend_filter = _names("backends", backends)
        self.excluded_backends = _names("exclude_backends", exclude_backends) or ()
        self.parser: ToolCallParser = _make_parser(parser)
        self.strict = strict
        self.reward_mode = reward_mode
        self.augment = augment
        self.max_steps_per_turn = max_steps_per_turn
        self.task: BFCLTask | None = None
        self.backends: dict[str, Any] = {}
        self.expected_backends: dict[str, Any] = {}
        self.available: list[str] = []
        self.withheld: set[str] = set()
        self.call_log: list[tuple[int, CallOutcome]] = []
        self._results: list[str] = []
        self._calls_in_turn = 0
        self._steps_in_turn = 0
        self._num_actions = 0
        self._format_errors = 0
        self._records: list[TurnRecord] = []
        self._forced_turns: list[int] = []
        self._evaluation: Evaluation | None = None

    # ---------------------------------------------------------------- episode hooks --

    def _start(self, task: BFCLTask) -> tuple[str, dict[str, Any]]:
        self.backends = fresh_backends(task)
        self.expected_backends = fresh_backends(task)
        self.available = list(task.functions)
        self.withheld = {name for names in task.revealed.values() for name in names}
        self.call_log = []
        self._results = []
        self._calls_in_turn = 0
        self._steps_in_turn = 0
        self._num_actions = 0
        self._format_errors = 0
        self._records = []
        self._forced_turns = []
        self._evaluation = None
        tools = self.tool_schemas()
        system_prompt = f"{SYSTEM_PROMPT}\n\n{self.parser.instructions(tools)}"
        return self._turn_text(0), {
            "system_prompt": system_prompt,
            "tools": tools,
            "observation_role": "user",
            "num_turns": len(task.turns),
            "category": task.category,
            "progress": 0.0,
        }

    def _act(self, action: str) -> Transition:
        parsed = self.parser.parse(action)
        self._num_actions += 1
        if parsed.error is None and not parsed.tool_calls:
            return self._end_turn()
        self._steps_in_turn += 1
        if parsed.error is not None:
            self._format_errors += 1
            transition = self._invalid(parsed.error)
        else:
            transition = self._run_calls(parsed.tool_calls)
        if self._steps_in_turn > self.max_steps_per_turn:
            forced = self._end_turn(forced=True)
            forced.observation = f"{transition.observation}\n\n{forced.observation}"
            forced.info = {**transition.info, **forced.info}
            return forced
        return transition

    def _invalid(self, message: str) -> Transition:
        transition = super()._invalid(message)
        if self.task is not None:
            transition.progress = self._progress()
        return transition

    def evaluate(self) -> Evaluation:
        """The final evaluation, or for an unfinished episode the verdicts so far."""
        if self._evaluation is not None:
            return dataclasses.replace(self._evaluation, verdicts=dict(self._evaluation.verdicts))
        assert self.task is not None
        return self._evaluate(finished=False)

    def make_expert(self, **kwargs: Any) -> BFCLExpert:
        """The oracle: replays each turn's ground-truth calls (see :class:`BFCLExpert`)."""
        return BFCLExpert(**kwargs)

    # ---------------------------------------------------------------- helpers --

    def calls_in_turn(self, turn: int) -> list[CallOutcome]:
        """The calls the agent made in ``turn`` (valid or not), in order."""
        return [outcome for t, outcome in self.call_log if t == turn]

    def tool_schemas(self) -> list[dict[str, Any]]:
        """OpenAI schemas of the functions available now (copies; safe to modify)."""
        return [copy.deepcopy(_FUNCTIONS[name].schema) for name in self.available]

    def _turn_text(self, turn: int) -> str:
        assert self.task is not None
        new = self.task.revealed.get(turn)
        if not new:
            return self.task.turns[turn]
        from bfcl_eval.constants.default_prompts import (
            DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC,
        )

        schemas = [_FUNCTIONS[name].schema for name in new]
        if isinstance(self.parser, PythonCallParser):
            listing = signature_tool_list([s["function"] for s in schemas], "(", ")")
        else:
            listing = json_tool_list(schemas)
        text = self.task.turns[turn].strip()
        parts = [f"New functions are available:\n{listing}", text or ""]
        parts.append(DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC)
        return "\n\n".join(p for p in parts if p)

    def _execute(self, call: ToolCall) -> CallOutcome:
        outcome = execute_call(
            self.backends,
            call,
            self.available,
            self.withheld,
            strict=self.strict,
            refuse_withheld=self.strict or self.augment,
        )
        if self.augment:
            info = _FUNCTIONS.get(call.name)
            hint = hint_for(outcome, None if info is None else info.owner)
            if hint is not None:
                outcome = dataclasses.replace(outcome, hint=hint)
        return outcome

    def _run_calls(self, calls: Sequence[ToolCall]) -> Transition:
        outcomes = []
        for call in calls:
            outcome = self._execute(call)
            outcomes.append(outcome)
            self.call_log.append((self._turn, outcome))
            if outcome.executed:
                self._results.append(outcome.content)
        self._calls_in_turn += len(calls)
        if len(outcomes) == 1:
            observation = outcomes[0].observation
        else:
            observation = "\n".join(
                json.dumps({"name": o.call.name, "result": o.observation}, ensure_ascii=False)
                for o in outcomes
            )
        all_ok = all(o.ok for o in outcomes)
        return Transition(
            observation=observation,
            action_valid=all_ok,
            feedback="" if all_ok else "; ".join(o.content for o in outcomes if not o.ok),
            observation_role="tool",
            progress=self._progress(),
            info={"tool_results": [{"name": o.call.name, "kind": o.kind} for o in outcomes]},
        )

    def _end_turn(self, *, forced: bool = False) -> Transition:
        assert self.task is not None
        record = judge_turn(
            self._turn,
            self.task.ground_truth[self._turn],
            self.backends,
            self.expected_backends,
            self._results,
            self._calls_in_turn,
        )
        if record is not None:
            self._records.append(record)
        if forced:
            self._forced_turns.append(self._turn)
        self._turn += 1
        self._calls_in_turn = 0
        self._steps_in_turn = 0
        note = (
            f"[Turn ended: more than {self.max_steps_per_turn} steps without a final reply.]\n"
            if forced
            else ""
        )
        if self._turn < len(self.task.turns):
            info: dict[str, Any] = {}
            new = self.task.revealed.get(self._turn)
            if new:
                self.available.extend(new)
                self.withheld.difference_update(new)
                info = {"tools": self.tool_schemas(), "new_tools": list(new)}
            return Transition(
                observation=note + self._turn_text(self._turn),
                action_valid=not forced,
                feedback=note.strip(),
                progress=self._progress(),
                observation_role="user",
                info=info,
            )
        evaluation = self._evaluate(finished=True)
        self._evaluation = evaluation
        return final_transition(normalize_evaluation(evaluation), note=note, forced=forced)

    def _turns_passed(self) -> list[bool]:
        """Per checked turn judged so far: passed (a force-ended turn never passes)."""
        return [r.passed and r.turn not in self._forced_turns for r in self._records]

    def _progress(self) -> float:
        assert self.task is not None
        return progress_reward(self._turns_passed(), len(self.task.checked_turns))

    def _reward(self, success: bool) -> float:
        if self.reward_mode == "binary":
            return float(success)
        if self.reward_mode == "progress":
            return self._progress()
        calls = [outcome for _, outcome in self.call_log]
        correct = sum(outcome.correct for outcome in calls)
        return format_reward(
            num_actions=self._num_actions,
            format_errors=self._format_errors,
            correct_calls=correct,
            erroneous_calls=len(calls) - correct,
        )

    def _evaluate(self, *, finished: bool) -> Evaluation:
        assert self.task is not None
        verdicts: dict[str, Any] = {}
        problems = []
        for record in self._records:
            verdicts[f"turn_{record.turn}_state"] = record.state
            verdicts[f"turn_{record.turn}_response"] = record.response
            verdicts[f"turn_{record.turn}_called"] = record.called
            if record.problems:
                problems.append(f"turn {record.turn}: {'; '.join(record.problems)}")
        for turn in self._forced_turns:
            problems.append(
                f"turn {turn}: ended after more than {self.max_steps_per_turn} steps "
                "without a final reply"
            )
        verdicts["within_step_limit"] = not self._forced_turns
        if not finished:
            problems.append(f"the episode ended after {self._turn} of {len(self.task.turns)} turns")
        success = finished and not problems
        return Evaluation(
            success=success,
            reward=self._reward(success),
            verdicts=verdicts,
            feedback="Every turn passed the state and response checks."
            if success
            else "; ".join(problems) + ".",
            progress=self._progress(),
        )
