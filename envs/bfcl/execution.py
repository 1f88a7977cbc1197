"""Executing calls on BFCL's backends (the checks that judge them are in :mod:`.judge`).

Two execution semantics (the environment's ``strict`` argument):

* official (``strict=False``, the default), as BFCL's executor, which ``eval``-s each call
  on the backend instance: argument values reach the backend as given (a float where the
  doc declares an integer, a string id where it declares an integer); a function that the
  entry withholds until a later turn (miss_func) runs when called early; a backend that
  raises keeps whatever it changed before raising. Calls BFCL's executor would also refuse
  (unknown function, unknown or missing argument) are refused here with a clearer message;
  the outcome (an error string, no change) is the same.
* strict (``strict=True``): arguments are checked against the function doc (types
  included) before the backend runs, a withheld function is refused until its turn, and a
  backend that raises is restored to its state before the call, so errors never change
  the state.

In both, nothing is ``eval``-ed (calls arrive parsed), arguments are deep-copied before the
backend sees them, and two guards refuse arguments that would keep a backend busy for
minutes (``logarithm``/``square_root`` precision over 1,000 digits, integer powers with
exponents over 10,000), which BFCL's executor would run.
"""

from __future__ import annotations

import copy
import decimal
import difflib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from agentgym.core.parsing import ToolCall
from agentgym.core.tool_schema import check_value
from agentgym.envs.bfcl.loaders import _FUNCTIONS, FunctionInfo

__all__ = ["CallOutcome", "execute_call", "format_result", "validate_arguments"]

# Parameters whose doc type is narrower than the data: TicketAPI documents ``ticket_id`` as
# an integer, but some initial states use string ids ("ticket_001") and the ground truth of
# multi_turn_*_173 calls close_ticket(ticket_id='ticket_001'). A string is accepted too.
_ALSO_STRING = frozenset(("close_ticket", "edit_ticket", "get_ticket", "resolve_ticket"))
# Guards for arguments that would make a backend compute for minutes (BFCL has none).
_MAX_PRECISION = 1_000
_MAX_INT_EXPONENT = 10_000


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """One call's result text and how it went.

    ``kind`` is ``"ok"`` (the backend ran and returned), ``"exception"`` (the backend
    raised), ``"invalid_arguments"``, ``"unknown_function"`` or ``"withheld_function"``
    (the latter three never reach the backend). ``backend_error`` is the ``"error"`` entry
    of a result the backend returned (BFCL's backends report most failures that way; the
    result still counts for the response check). ``hint`` is the corrective hint the
    environment adds with ``augment=True`` (see :mod:`agentgym.envs.bfcl.hints`); it is
    shown to the agent but never part of ``content``, which the checker compares.
    """

    call: ToolCall
    content: str
    kind: str
    backend_error: str | None = None
    hint: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def executed(self) -> bool:
        """Whether the backend ran (its result counts for BFCL's response check)."""
        return self.kind in ("ok", "exception")

    @property
    def correct(self) -> bool:
        """Ran and returned without an error (a correct call of the format reward)."""
        return self.ok and self.backend_error is None

    @property
    def observation(self) -> str:
        """What the agent sees: the content, then the hint on its own line."""
        return f"{self.content}\nHint: {self.hint}" if self.hint else self.content


def format_result(value: Any) -> str:
    """A backend's return value as BFCL shows it: strings verbatim, dicts as JSON, else str."""
    if type(value) is str:
        return value
    if type(value) is dict:
        try:
            return json.dumps(value)
        except Exception:
            return str(value)
    return str(value)


def _backend_error(value: Any) -> str | None:
    """The error a backend returned as a value (``{"error": ...}``, or a list of one)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict) and "error" in value:
        return str(value["error"])
    return None


def validate_arguments(
    info: FunctionInfo, arguments: Mapping[str, Any], *, strict: bool = True
) -> list[str]:
    """Problems with ``arguments`` against the function doc.

    Always: missing required and unknown arguments (Python would refuse the call too).
    With ``strict``: also the declared types, including the fields of dict arguments.
    """
    parameters = info.schema["function"]["parameters"]
    properties = parameters["properties"]
    problems = [
        f"missing required argument '{name}'"
        for name in parameters["required"]
        if name not in arguments
    ]
    for name, value in arguments.items():
        if name not in properties:
            close = difflib.get_close_matches(name, list(properties), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            valid = ", ".join(properties) or "(none)"
            problems.append(f"unknown argument '{name}'.{hint} Valid: {valid}")
            continue
        if not strict:
            continue
        if value is None and name in info.nullable and name not in parameters["required"]:
            continue
        if name == "ticket_id" and info.name in _ALSO_STRING and isinstance(value, str):
            continue
        schema = properties[name]
        error = check_value(value, schema, name)
        if error is None and isinstance(value, dict) and isinstance(schema.get("properties"), dict):
            for key, item in value.items():
                sub = schema["properties"].get(key)
                if sub is not None and item is not None:
                    error = check_value(item, sub, f"{name}.{key}")
                    if error:
                        break
        if error:
            problems.append(error)
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _guard(name: str, arguments: Mapping[str, Any]) -> str | None:
    """Refuse arguments that would keep a backend busy for minutes.

    Types are not trusted (official semantics pass any value): a float precision of 1e9
    would hang mpmath as surely as an integer one.
    """
    precision = arguments.get("precision")
    if (
        name in ("logarithm", "square_root")
        and _is_number(precision)
        and precision > _MAX_PRECISION
    ):
        return f"precision must be at most {_MAX_PRECISION}, got {precision}"
    if name == "power":
        base, exponent = arguments.get("base"), arguments.get("exponent")
        if (
            isinstance(base, int)
            and isinstance(exponent, int)
            and abs(base) > 1
            and exponent > _MAX_INT_EXPONENT
        ):
            return f"exponent too large for an integer power (at most {_MAX_INT_EXPONENT})"
    return None


def _call_backend(instance: Any, name: str, arguments: Mapping[str, Any]) -> Any:
    """Run one method and return its value, keeping process-wide math settings intact."""
    import mpmath

    dps = mpmath.mp.dps
    context = decimal.getcontext()
    precision = context.prec
    try:
        return getattr(instance, name)(**arguments)
    finally:
        # MathAPI sets mpmath's and decimal's global precision; restore them for other code.
        mpmath.mp.dps = dps
        context.prec = precision


def execute_call(
    backends: dict[str, Any],
    call: ToolCall,
    available: Collection[str],
    withheld: Collection[str] = frozenset(),
    *,
    strict: bool = False,
    refuse_withheld: bool | None = None,
) -> CallOutcome:
    """Validate and run ``call`` on ``backends``; every failure becomes an error outcome.

    Args:
        backends: ``{class name: instance}`` of the episode (changed in place).
        call: The parsed call.
        available: Names the agent may call (and that error messages list).
        withheld: Names withheld until a later turn; they run (official semantics) unless
            ``refuse_withheld``.
        strict: Check argument types and roll a backend back when it raises (see the
            module docstring).
        refuse_withheld: Refuse withheld names (default: ``strict``).

    A backend exception is reported as BFCL does (``Error during execution: ...``).
    """
    refuse_withheld = strict if refuse_withheld is None else refuse_withheld
    info = _FUNCTIONS.get(call.name)
    callable_now = call.name in available or (call.name in withheld and not refuse_withheld)
    if not callable_now or info is None or info.owner not in backends:
        options = [n for n in available if n not in withheld]
        # `GorillaFileSystem.cd` (BFCL's "path" style) means `cd`.
        bare = call.name.rsplit(".", 1)[-1]
        close = [bare] if bare in options else difflib.get_close_matches(bare, options, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        kind = "withheld_function" if call.name in withheld else "unknown_function"
        return CallOutcome(
            call,
            f"Error during execution: function '{call.name}' is not available.{hint} "
            f"Available functions: {', '.join(options) or '(none)'}",
            kind,
        )
    if call.raw_arguments is not None:
        return CallOutcome(
            call,
            f"Error during execution: {call.name} needs named arguments.",
            "invalid_arguments",
        )
    problems = validate_arguments(info, call.arguments, strict=strict)
    guard = None if problems else _guard(call.name, call.arguments)
    if problems or guard:
        detail = "; ".join(problems) if problems else guard
        return CallOutcome(
            call,
            f"Error during execution: invalid arguments for {call.name}: {detail}. "
            f"Expected: {info.signature_text}.",
            "invalid_arguments",
        )
    instance = backends[info.owner]
    snapshot = copy.deepcopy(instance) if strict else None
    # Backends keep argument objects in their state (post_tweet stores its `mentions` list,
    # which mention() later extends): pass copies, so neither the call nor shared ground
    # truth is ever changed by an episode.
    arguments = copy.deepcopy(call.arguments)
    try:
        value = _call_backend(instance, call.name, arguments)
        content = format_result(value)
    except Exception as exc:
        if snapshot is not None:
            backends[info.owner] = snapshot
        return CallOutcome(call, f"Error during execution: {exc}", "exception")
    return CallOutcome(call, content, "ok", backend_error=_backend_error(value))
