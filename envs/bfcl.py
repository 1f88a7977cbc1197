"""BFCL multi-turn: the Berkeley Function Calling Leaderboard's stateful multi-turn tasks.

The data, the function docs and the stateful backends (a file system, a math API,
messaging, a posting API, ticketing, a trading bot, travel booking, vehicle control) come
from the ``bfcl-eval`` package, which must be installed without its (heavy) declared
dependencies::

    pip install --no-deps bfcl-eval==2026.3.23 mpmath

This module only reads the package: the entries are loaded once per process and shared by
every environment copy; each episode gets its own backend instances, so env copies never
share state. Nothing is ``eval``-ed: calls are parsed by the tool-call parser, checked
against the function docs, and dispatched by attribute lookup on the backend instance that
owns the function.

The checker follows BFCL's multi-turn checker. For every turn whose ground truth is not
empty: (1) state: every public attribute of every backend after the agent's calls equals
the one after replaying the ground truth (turn by turn, on a parallel set of backends);
(2) response: every ground-truth call's result appears among the results the agent obtained
so far (as a multiset); (3) the agent made at least one call in that turn.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import decimal
import difflib
import importlib
import inspect
import json
import threading
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.core.env import Evaluation, TextEnv, Transition
from agentgym.core.parsing import (
    PythonCallParser,
    ToolCall,
    ToolCallParser,
    _json_tool_list,
    _signature_tool_list,
    get_parser,
)
from agentgym.core.registry import check_choice
from agentgym.core.tasks import TaskSet
from agentgym.core.tool_env import ToolEnvExpert, final_transition, normalize_evaluation
from agentgym.core.tools import _check_value, _short

__all__ = [
    "CATEGORIES",
    "INSTALL_COMMAND",
    "BFCLExpert",
    "BFCLMultiTurnEnv",
    "BFCLTask",
    "load_category",
]

#: The four multi-turn categories of BFCL v4, 200 entries each.
CATEGORIES = ("base", "miss_param", "miss_func", "long_context")
PARSERS = ("python", "hermes")
INSTALL_COMMAND = "pip install --no-deps bfcl-eval==2026.3.23 mpmath"

_DATA_PREFIX = "BFCL_v4_multi_turn_"
# Parameters whose doc type is narrower than the data: TicketAPI documents ``ticket_id`` as
# an integer, but some initial states use string ids ("ticket_001") and the ground truth of
# multi_turn_*_173 calls close_ticket(ticket_id='ticket_001'). A string is accepted too.
_ALSO_STRING = frozenset(("close_ticket", "edit_ticket", "get_ticket", "resolve_ticket"))
# Guards for arguments that would make a backend compute for minutes (BFCL has none).
_MAX_PRECISION = 1_000
_MAX_INT_EXPONENT = 10_000

SYSTEM_PROMPT = (
    "You are an assistant that carries out the user's requests by calling the functions "
    "below, which act on a live system. In each turn, keep calling functions until the "
    "request is fulfilled as far as the functions allow; each call's result comes back to "
    "you. Then reply in plain text without any function call: that ends the turn and the "
    "user speaks next. If no function fits the request, or the request lacks a value a "
    "function needs, do not guess: say so in your reply."
)

# Replies of the expert: after solving a turn, and in turns BFCL expects no call (a
# parameter or function is missing).
_EXPERT_DONE = "Done."
_EXPERT_CANNOT = (
    "I cannot do that yet: a value or a function I need is missing. "
    "Please tell me what is missing or give me the means to do it."
)


# --------------------------------------------------------------------------------------
# Loading the package's data (once per process, shared read-only)
# --------------------------------------------------------------------------------------


def _require_bfcl() -> Any:
    """Import ``bfcl_eval`` or raise ImportError with the exact install command."""
    try:
        import bfcl_eval
    except ImportError as exc:
        raise ImportError(
            "agentgym/BFCL-MultiTurn-v0 needs the bfcl-eval package (its data and backends). "
            f"Install it without its heavy dependencies: {INSTALL_COMMAND}"
        ) from exc
    return bfcl_eval


@dataclass(frozen=True)
class FunctionInfo:
    """One backend function: its owner class, OpenAI schema and parameter order."""

    name: str
    owner: str
    schema: dict[str, Any]
    parameters: tuple[str, ...]
    nullable: frozenset[str]
    signature_text: str


@dataclass(frozen=True)
class BFCLTask:
    """One BFCL multi-turn entry, ready for the environment. Shared: never mutate it.

    Attributes:
        id: BFCL's id, e.g. ``multi_turn_base_0``.
        category: One of :data:`CATEGORIES`.
        turns: The user's text per turn (``""`` for a miss_func turn that only reveals
            functions).
        ground_truth: Per turn, the ground-truth calls (positional arguments named).
        ground_truth_source: Per turn, BFCL's call strings, verbatim.
        involved_classes: Backend classes of the entry, in BFCL's order.
        initial_config: ``{class name: state}``, loaded into fresh backends per episode.
        functions: Names of the functions available from the first turn.
        revealed: ``{turn: names}`` of functions withheld until that turn (miss_func).
        long_context: Whether the backends add their long, noisy extensions.
        metadata: BFCL's other fields (``path``, ``excluded_function``, ...).
    """

    id: str
    category: str
    turns: tuple[str, ...]
    ground_truth: tuple[tuple[ToolCall, ...], ...]
    ground_truth_source: tuple[tuple[str, ...], ...]
    involved_classes: tuple[str, ...]
    initial_config: Mapping[str, Any]
    functions: tuple[str, ...]
    revealed: Mapping[int, tuple[str, ...]]
    long_context: bool
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def checked_turns(self) -> tuple[int, ...]:
        """Turns with a non-empty ground truth (the only ones BFCL checks)."""
        return tuple(t for t, calls in enumerate(self.ground_truth) if calls)


_LOCK = threading.RLock()
_FUNCTIONS: dict[str, FunctionInfo] = {}
_CLASS_FUNCTIONS: dict[str, tuple[str, ...]] = {}
_CLASSES: dict[str, type] = {}
_CATEGORY_CACHE: dict[str, tuple[BFCLTask, ...]] = {}
_TASKSET_CACHE: dict[tuple[str, ...], TaskSet[BFCLTask]] = {}
_TEMPLATES: dict[str, dict[str, Any]] = {}

# BFCL's parameter types -> JSON schema types ("any" has no type).
_TYPE_NAMES = {
    "dict": "object",
    "object": "object",
    "float": "number",
    "number": "number",
    "integer": "integer",
    "int": "integer",
    "string": "string",
    "str": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "tuple": "array",
}


def convert_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A BFCL parameter schema as JSON schema (``dict`` -> ``object``, ``float`` -> ...)."""
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            if value != "any":
                converted["type"] = _TYPE_NAMES.get(value, value)
        elif key == "properties" and isinstance(value, Mapping):
            converted[key] = {name: convert_schema(sub) for name, sub in value.items()}
        elif key == "items" and isinstance(value, Mapping):
            converted[key] = convert_schema(value)
        else:
            converted[key] = copy.deepcopy(value)
    return converted


def _signature_text(name: str, parameters: Mapping[str, Any]) -> str:
    parts = []
    for pname, schema in parameters.get("properties", {}).items():
        text = f"{pname}: {schema.get('type', 'any')}"
        if pname not in parameters.get("required", []):
            text += f" = {json.dumps(schema.get('default'), ensure_ascii=False)}"
        parts.append(text)
    return f"{name}({', '.join(parts)})"


def _load_functions() -> None:
    """Read every function doc and backend class once (under the lock)."""
    if _FUNCTIONS:
        return
    _require_bfcl()
    from importlib.resources import files

    from bfcl_eval.constants.executable_backend_config import (
        CLASS_FILE_PATH_MAPPING,
        MULTI_TURN_FUNC_DOC_FILE_MAPPING,
    )

    doc_dir = files("bfcl_eval") / "data" / "multi_turn_func_doc"
    functions: dict[str, FunctionInfo] = {}
    for class_name, doc_file in MULTI_TURN_FUNC_DOC_FILE_MAPPING.items():
        if class_name not in CLASS_FILE_PATH_MAPPING or not (doc_dir / doc_file).is_file():
            continue
        try:
            module = importlib.import_module(CLASS_FILE_PATH_MAPPING[class_name])
        except ImportError:
            # Backends outside the multi-turn suite (web search, memory) need extra packages.
            continue
        cls = getattr(module, class_name)
        names = []
        for line in (doc_dir / doc_file).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            doc = json.loads(line)
            method = getattr(cls, doc["name"], None)
            if method is None or doc["name"].startswith("_"):
                continue
            signature = inspect.signature(method)
            params = tuple(p for p in signature.parameters if p != "self")
            nullable = frozenset(
                p for p, v in signature.parameters.items() if p != "self" and v.default is None
            )
            raw_parameters = doc.get("parameters") or {}
            parameters = convert_schema(raw_parameters)
            parameters["type"] = "object"
            parameters.setdefault("properties", {})
            parameters["required"] = list(raw_parameters.get("required", []))
            schema = {
                "type": "function",
                "function": {
                    "name": doc["name"],
                    "description": doc.get("description", ""),
                    "parameters": parameters,
                },
            }
            functions[doc["name"]] = FunctionInfo(
                name=doc["name"],
                owner=class_name,
                schema=schema,
                parameters=params,
                nullable=nullable,
                signature_text=_signature_text(doc["name"], parameters),
            )
            names.append(doc["name"])
        _CLASSES[class_name] = cls
        _CLASS_FUNCTIONS[class_name] = tuple(names)
    _FUNCTIONS.update(functions)


def _literal(node: ast.expr) -> Any:
    value = ast.literal_eval(node)
    if isinstance(value, tuple):
        return list(value)
    return value


def parse_ground_truth_call(source: str) -> ToolCall:
    """One of BFCL's ground-truth call strings as a :class:`ToolCall` (never evaluated).

    Positional arguments (BFCL writes e.g. ``sort('final_report.pdf')``) are named after
    the backend method's signature.
    """
    node = ast.parse(source.strip(), mode="eval").body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"not a plain function call: {source!r}")
    name = node.func.id
    info = _FUNCTIONS.get(name)
    if info is None:
        raise ValueError(f"unknown function in ground truth: {source!r}")
    arguments: dict[str, Any] = {}
    if len(node.args) > len(info.parameters):
        raise ValueError(f"too many positional arguments: {source!r}")
    for pname, arg in zip(info.parameters, node.args, strict=False):
        arguments[pname] = _literal(arg)
    for keyword in node.keywords:
        if keyword.arg is None:
            raise ValueError(f"**-unpacking in ground truth: {source!r}")
        arguments[keyword.arg] = _literal(keyword.value)
    return ToolCall(name, arguments)


def _read_jsonl(path: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _build_task(category: str, entry: Mapping[str, Any], answer: Mapping[str, Any]) -> BFCLTask:
    if entry["id"] != answer["id"]:
        raise ValueError(f"BFCL data: entry {entry['id']} has ground truth {answer['id']}")
    involved = tuple(entry["involved_classes"])
    sources = tuple(tuple(calls) for calls in answer["ground_truth"])
    if len(sources) != len(entry["question"]):
        raise ValueError(f"BFCL data: {entry['id']} has a ground truth per turn mismatch")
    ground_truth = tuple(tuple(parse_ground_truth_call(s) for s in calls) for calls in sources)
    turns = tuple(
        "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
        for messages in entry["question"]
    )
    all_functions = [name for cls in involved for name in _CLASS_FUNCTIONS[cls]]
    # miss_func: {"turn": [names]}. A name the ground truth calls before its reveal turn is
    # not really missing (one entry does this, multi_turn_miss_func_49 with 'tail'), so it
    # stays available from the start.
    revealed: dict[int, tuple[str, ...]] = {}
    kept: list[str] = []
    for turn_key, names in (entry.get("missed_function") or {}).items():
        turn = int(turn_key)
        called_before = {c.name for t in range(turn) for c in ground_truth[t]}
        withheld = [n for n in names if n in all_functions and n not in called_before]
        kept.extend(n for n in names if n in called_before)
        if withheld:
            revealed[turn] = tuple(withheld)
    hidden = {n for names in revealed.values() for n in names}
    metadata = {
        key: copy.deepcopy(value)
        for key, value in entry.items()
        if key not in ("id", "question", "initial_config", "involved_classes")
    }
    if kept:
        metadata["not_withheld"] = kept
    # Evaluation groups results by the task's metadata (agentgym.evaluation.summarize).
    metadata["category"] = category
    return BFCLTask(
        id=entry["id"],
        category=category,
        turns=turns,
        ground_truth=ground_truth,
        ground_truth_source=sources,
        involved_classes=involved,
        initial_config=entry.get("initial_config") or {},
        functions=tuple(n for n in all_functions if n not in hidden),
        revealed=revealed,
        long_context=category == "long_context",
        metadata=metadata,
    )


def load_category(category: str) -> tuple[BFCLTask, ...]:
    """All entries of one category (loaded once per process; shared, never mutate them)."""
    check_choice("category", category, CATEGORIES)
    with _LOCK:
        cached = _CATEGORY_CACHE.get(category)
        if cached is not None:
            return cached
        _load_functions()
        from importlib.resources import files

        data = files("bfcl_eval") / "data"
        entries = _read_jsonl(data / f"{_DATA_PREFIX}{category}.json")
        answers = _read_jsonl(data / "possible_answer" / f"{_DATA_PREFIX}{category}.json")
        if len(entries) != len(answers):
            raise ValueError(
                f"BFCL data: {category} has {len(entries)} entries but {len(answers)} ground truths"
            )
        tasks = tuple(_build_task(category, e, a) for e, a in zip(entries, answers, strict=True))
        _CATEGORY_CACHE[category] = tasks
        return tasks


def _task_set(categories: tuple[str, ...]) -> TaskSet[BFCLTask]:
    with _LOCK:
        cached = _TASKSET_CACHE.get(categories)
        if cached is None:
            tasks = [task for category in categories for task in load_category(category)]
            cached = TaskSet(tasks, [task.id for task in tasks])
            _TASKSET_CACHE[categories] = cached
        return cached


def _templates(task: BFCLTask) -> dict[str, Any]:
    """Backends loaded with the task's initial state; deep-copied for every episode.

    The templates are deep copies themselves: long-context loading inserts module-level
    objects by reference, and no episode may write into (or see writes to) shared objects.
    """
    with _LOCK:
        cached = _TEMPLATES.get(task.id)
        if cached is not None:
            return cached
        from bfcl_eval.constants.executable_backend_config import STATELESS_CLASSES

        instances = {}
        for class_name in task.involved_classes:
            instance = _CLASSES[class_name]()
            if class_name not in STATELESS_CLASSES:
                config = copy.deepcopy(task.initial_config.get(class_name, {}))
                instance._load_scenario(config, long_context=task.long_context)
            instances[class_name] = instance
        # Long-context loading inserts module-level objects by reference; cut those links.
        instances = copy.deepcopy(instances)
        _TEMPLATES[task.id] = instances
        return instances


def fresh_backends(task: BFCLTask) -> dict[str, Any]:
    """A new, private set of backend instances in the task's initial state."""
    return copy.deepcopy(_templates(task))


# --------------------------------------------------------------------------------------
# Executing calls
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """One call's result text and how it went.

    ``kind`` is ``"ok"`` (the backend ran and returned), ``"exception"`` (the backend
    raised; state rolled back), ``"invalid_arguments"``, ``"unknown_function"`` or
    ``"withheld_function"`` (the latter three never reach the backend).
    """

    call: ToolCall
    content: str
    kind: str

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def executed(self) -> bool:
        """Whether the backend ran (its result counts for BFCL's response check)."""
        return self.kind in ("ok", "exception")


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


def validate_arguments(info: FunctionInfo, arguments: Mapping[str, Any]) -> list[str]:
    """Problems with ``arguments`` against the function doc (required, unknown, types)."""
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
        if value is None and name in info.nullable and name not in parameters["required"]:
            continue
        if name == "ticket_id" and info.name in _ALSO_STRING and isinstance(value, str):
            continue
        schema = properties[name]
        error = _check_value(value, schema, name)
        if error is None and isinstance(value, dict) and isinstance(schema.get("properties"), dict):
            for key, item in value.items():
                sub = schema["properties"].get(key)
                if sub is not None and item is not None:
                    error = _check_value(item, sub, f"{name}.{key}")
                    if error:
                        break
        if error:
            problems.append(error)
    return problems


def _guard(name: str, arguments: Mapping[str, Any]) -> str | None:
    """Refuse arguments that would keep a backend busy for minutes."""
    precision = arguments.get("precision")
    if (
        name in ("logarithm", "square_root")
        and isinstance(precision, int)
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


def _call_backend(instance: Any, name: str, arguments: Mapping[str, Any]) -> str:
    """Run one method and format its result, keeping process-wide math settings intact."""
    import mpmath

    dps = mpmath.mp.dps
    context = decimal.getcontext()
    precision = context.prec
    try:
        return format_result(getattr(instance, name)(**arguments))
    finally:
        # MathAPI sets mpmath's and decimal's global precision; restore them for other code.
        mpmath.mp.dps = dps
        context.prec = precision


def execute_call(
    backends: dict[str, Any],
    call: ToolCall,
    available: Collection[str],
    withheld: set[str] | frozenset[str] = frozenset(),
) -> CallOutcome:
    """Validate and run ``call`` on ``backends``; every failure becomes an error outcome.

    A backend exception is reported as BFCL does (``Error during execution: ...``) and the
    owning backend is restored to its state before the call.
    """
    info = _FUNCTIONS.get(call.name)
    if call.name not in available or info is None or info.owner not in backends:
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
    problems = validate_arguments(info, call.arguments)
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
    snapshot = copy.deepcopy(instance)
    # Backends keep argument objects in their state (post_tweet stores its `mentions` list,
    # which mention() later extends): pass copies, so neither the call nor shared ground
    # truth is ever changed by an episode.
    arguments = copy.deepcopy(call.arguments)
    try:
        content = _call_backend(instance, call.name, arguments)
    except Exception as exc:
        backends[info.owner] = snapshot
        return CallOutcome(call, f"Error during execution: {exc}", "exception")
    return CallOutcome(call, content, "ok")


# --------------------------------------------------------------------------------------
# State comparison
# --------------------------------------------------------------------------------------


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
        return f"{path} is {_short(got)}, expected {_short(expected)}"
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


# --------------------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------------------


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
    Text. With ``parser="python"`` (BFCL's prompt format) a Python list of calls with
    keyword arguments, ``[cd(folder='document'), ls(a=True)]``; with ``"hermes"``
    ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks. Anything that is
    not a call (plain text) is the reply that ends the turn.

    ## Observation Space
    Text: the user's turn; the results of the calls (one call: its result; several: one
    JSON line ``{"name", "result"}`` each), formatted as BFCL does (dicts as JSON); or an
    error (``Error during execution: ...``) for a malformed action, an unknown or withheld
    function, arguments that do not match the function doc, or an exception in the
    backend. Errors never change the state. In miss_func, the turn that reveals functions
    lists them and ``info["tools"]`` carries the new tool list.

    ## Rewards
    1.0 at the end if every checked turn passes, else 0.0. A turn with a ground truth
    passes when (1) every public attribute of every backend equals that after replaying
    the ground truth, (2) every ground-truth call's result is among the results the agent
    obtained so far and (3) the agent made at least one call. ``info["progress"]`` is the
    fraction of checked turns that passed (Environment Tuning's progress reward) and
    ``info["verdicts"]`` has ``turn_k_state``, ``turn_k_response`` and ``turn_k_called``.

    ## Episode End
    Terminates after the reply to the last turn. A turn with more than
    ``max_steps_per_turn`` actions that are not a reply is ended for the agent and the
    episode cannot succeed (BFCL force-quits the entry). Truncated at
    ``max_episode_steps`` (200).

    ## Arguments
    * ``categories``: a subset of ``"base"``, ``"miss_param"``, ``"miss_func"``,
      ``"long_context"`` (default all four).
    * ``parser``: ``"python"`` (default) or ``"hermes"``.
    * ``max_steps_per_turn``: non-reply actions allowed in one turn (20, as BFCL).
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
        parser: str = "python",
        max_steps_per_turn: int = 20,
        max_observation_length: int = 65_536,
        max_action_length: int = 16_384,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            max_observation_length=max_observation_length,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        selected = (categories,) if isinstance(categories, str) else tuple(categories)
        if not selected:
            raise ValueError(f"categories must not be empty; valid: {', '.join(CATEGORIES)}")
        for category in selected:
            check_choice("categories", category, CATEGORIES)
        check_choice("parser", parser, PARSERS)
        if max_steps_per_turn < 1:
            raise ValueError(f"max_steps_per_turn must be >= 1, got {max_steps_per_turn}")
        _require_bfcl()
        self.categories = tuple(dict.fromkeys(selected))
        self.parser: ToolCallParser = get_parser(parser)
        self.max_steps_per_turn = max_steps_per_turn
        self.tasks = _task_set(self.categories)
        self.task: BFCLTask | None = None
        self.backends: dict[str, Any] = {}
        self.expected_backends: dict[str, Any] = {}
        self.available: list[str] = []
        self.withheld: set[str] = set()
        self.call_log: list[tuple[int, CallOutcome]] = []
        self._results: list[str] = []
        self._calls_in_turn = 0
        self._steps_in_turn = 0
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
        }

    def _act(self, action: str) -> Transition:
        parsed = self.parser.parse(action)
        if parsed.error is None and not parsed.tool_calls:
            return self._end_turn()
        self._steps_in_turn += 1
        if parsed.error is not None:
            transition = self._invalid(parsed.error)
        else:
            transition = self._run_calls(parsed.tool_calls)
        if self._steps_in_turn > self.max_steps_per_turn:
            forced = self._end_turn(forced=True)
            forced.observation = f"{transition.observation}\n\n{forced.observation}"
            forced.info = {**transition.info, **forced.info}
            return forced
        return transition

    def evaluate(self) -> Evaluation:
        """The final evaluation, or for an unfinished episode the verdicts so far."""
        if self._evaluation is not None:
            return dataclasses.replace(self._evaluation, verdicts=dict(self._evaluation.verdicts))
        assert self.task is not None
        evaluation = self._evaluate(finished=False)
        return evaluation

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
            listing = _signature_tool_list([s["function"] for s in schemas], "(", ")")
        else:
            listing = _json_tool_list(schemas)
        text = self.task.turns[turn].strip()
        parts = [f"New functions are available:\n{listing}", text or ""]
        parts.append(DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC)
        return "\n\n".join(p for p in parts if p)

    def _run_calls(self, calls: Sequence[ToolCall]) -> Transition:
        outcomes = []
        for call in calls:
            outcome = execute_call(self.backends, call, self.available, self.withheld)
            outcomes.append(outcome)
            self.call_log.append((self._turn, outcome))
            if outcome.executed:
                self._results.append(outcome.content)
        self._calls_in_turn += len(calls)
        if len(outcomes) == 1:
            observation = outcomes[0].content
        else:
            observation = "\n".join(
                json.dumps({"name": o.call.name, "result": o.content}, ensure_ascii=False)
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

    def _check_turn(self, turn: int) -> TurnRecord | None:
        """Replay the turn's ground truth on the parallel backends and judge the turn."""
        assert self.task is not None
        expected_calls = self.task.ground_truth[turn]
        expected_results = []
        for call in expected_calls:
            outcome = execute_call(self.expected_backends, call, _FUNCTIONS.keys())
            expected_results.append(outcome.content)
        if not expected_calls:
            return None
        problems = []
        differences = state_differences(self.backends, self.expected_backends)
        if differences:
            more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
            problems.append(f"the state differs from the expected one at {differences[0]}{more}")
        missing = missing_results(expected_results, self._results)
        if missing:
            names = ", ".join(dict.fromkeys(expected_calls[i].name for i in missing))
            problems.append(f"{len(missing)} expected result(s) were never obtained (from {names})")
        called = self._calls_in_turn > 0
        if not called:
            problems.append("no function was called")
        return TurnRecord(turn, not differences, not missing, called, problems)

    def _end_turn(self, *, forced: bool = False) -> Transition:
        assert self.task is not None
        record = self._check_turn(self._turn)
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

    def _progress(self) -> float:
        assert self.task is not None
        checked = len(self.task.checked_turns)
        passed = sum(r.passed and r.turn not in self._forced_turns for r in self._records)
        return passed / checked if checked else 0.0

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
            reward=float(success),
            verdicts=verdicts,
            feedback="Every turn passed the state and response checks."
            if success
            else "; ".join(problems) + ".",
            progress=self._progress(),
        )


class BFCLExpert(ToolEnvExpert):
    """The oracle: per turn, the ground-truth calls in one action, then a short reply.

    It reads the environment's progress (turn index, calls already made in the turn), so
    it stays correct when an episode is restarted from the middle of another trajectory:
    it issues the turn's remaining ground-truth calls, then the reply. Turns without a
    ground truth (a missing parameter or function) get a reply that says something is
    missing. ``error_rate`` and ``error_kinds`` inject one error per episode with that
    probability, as in :class:`~agentgym.ToolEnvExpert` (``wrong_argument``, ``skip_call``,
    ``wrong_order``); the draws come from the episode's seed
    (:class:`~agentgym.core.policy.ErrorInjectingExpert`).
    """

    name = "bfcl-oracle"

    def plan_episode(self, env: Any, observation: str, info: Mapping[str, Any]) -> None:
        bfcl_env = env.unwrapped
        if not isinstance(bfcl_env, BFCLMultiTurnEnv):
            raise TypeError(f"BFCLExpert needs a BFCLMultiTurnEnv, got {type(bfcl_env).__name__}")
        task = bfcl_env.task
        if task is None:
            raise ValueError("reset() the environment before the expert.")
        self._bfcl_env = bfcl_env
        self._planned = [list(calls) for calls in task.ground_truth]
        self._replies = [_EXPERT_DONE if calls else _EXPERT_CANNOT for calls in task.ground_truth]

    def inject_error(self) -> str | None:
        return self._inject(self._planned)

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        env = getattr(self, "_bfcl_env", None)
        if env is None:
            raise RuntimeError("reset() the expert after the environment.")
        turn = env._turn
        if turn >= len(self._planned):
            return env.parser.format_answer(_EXPERT_DONE)
        remaining = self._planned[turn][len(env.calls_in_turn(turn)) :]
        if remaining:
            return env.parser.format_calls(remaining)
        return env.parser.format_answer(self._replies[turn])
