"""Loading BFCL's multi-turn data from the ``bfcl-eval`` package, and choosing entries.

Everything here is read once per process and shared read-only by every environment copy:
the function docs and backend classes (:func:`load_functions`), the entries of each
category (:func:`load_category`), the selections of entries (:func:`select_tasks`: split,
backends, caps) and the backends loaded with each entry's initial state, which
:func:`fresh_backends` deep-copies for every episode.
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.core.parsing import ToolCall
from agentgym.core.registry import check_choice
from agentgym.core.tasks import TaskSet

__all__ = [
    "BACKENDS",
    "CATEGORIES",
    "INSTALL_COMMAND",
    "SPLITS",
    "BFCLTask",
    "FunctionInfo",
    "convert_schema",
    "fresh_backends",
    "load_category",
    "load_functions",
    "parameter_order",
    "parse_ground_truth_call",
    "select_tasks",
    "split_of",
]

#: The four multi-turn categories of BFCL v4, 200 entries each.
CATEGORIES = ("base", "miss_param", "miss_func", "long_context")
#: ``"all"`` is the benchmark as published; ``"train"``/``"test"`` are disjoint halves.
SPLITS = ("all", "train", "test")
#: The backend classes of the multi-turn entries (``involved_classes``), for filters.
BACKENDS = (
    "GorillaFileSystem",
    "MathAPI",
    "MessageAPI",
    "TicketAPI",
    "TradingBot",
    "TravelAPI",
    "TwitterAPI",
    "VehicleControlAPI",
)
INSTALL_COMMAND = "pip install --no-deps bfcl-eval==2026.3.23 mpmath"

_DATA_PREFIX = "BFCL_v4_multi_turn_"


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
_TASKSET_CACHE: dict[tuple[Any, ...], TaskSet[BFCLTask]] = {}
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


def load_functions() -> None:
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
        load_functions()
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


def entry_index(task: BFCLTask) -> int:
    """The entry's number within its category (``multi_turn_base_17`` -> 17)."""
    return int(task.id.rsplit("_", 1)[1])


def split_of(task: BFCLTask) -> str:
    """``"train"`` or ``"test"``: even entry numbers train, odd ones test.

    The four categories are variants of the same 200 scenarios (entry ``i`` of every
    category starts from the same conversation and state), so the split goes by entry
    number: a scenario is either trained on in all its variants or held out in all of
    them. Each split gets 100 entries per category, and since the data lists scenarios
    grouped by backends, alternating numbers keep every backend in both splits.
    """
    return "train" if entry_index(task) % 2 == 0 else "test"


def select_tasks(
    categories: Sequence[str] = CATEGORIES,
    *,
    split: str = "all",
    backends: Sequence[str] | None = None,
    exclude_backends: Sequence[str] = (),
    num_tasks: int | None = None,
) -> TaskSet[BFCLTask]:
    """The entries of ``categories`` in ``split`` that pass the backend filters.

    ``backends`` keeps entries that involve at least one of the named backend classes;
    ``exclude_backends`` drops entries that involve any of them (hold a backend out of
    training, then evaluate on it with ``backends``). ``num_tasks`` keeps the first ones,
    in category order then entry number. Task sets are cached and shared (read-only).

    Example:
        >>> train = select_tasks(split="train", exclude_backends=["TravelAPI"])  # doctest: +SKIP
        >>> held_out = select_tasks(split="test", backends=["TravelAPI"])  # doctest: +SKIP
    """
    categories = tuple(dict.fromkeys(categories))
    if not categories:
        raise ValueError(f"categories must not be empty; valid: {', '.join(CATEGORIES)}")
    for category in categories:
        check_choice("categories", category, CATEGORIES)
    check_choice("split", split, SPLITS)
    wanted = None if backends is None else tuple(dict.fromkeys(backends))
    excluded = tuple(dict.fromkeys(exclude_backends))
    if wanted is not None and not wanted:
        raise ValueError(
            f"backends must not be empty (None means all); valid: {', '.join(BACKENDS)}"
        )
    for name in (*(wanted or ()), *excluded):
        check_choice("backends", name, BACKENDS)
    key = (categories, split, wanted, excluded, num_tasks)
    with _LOCK:
        cached = _TASKSET_CACHE.get(key)
        if cached is not None:
            return cached
        tasks = [
            task
            for category in categories
            for task in load_category(category)
            if (split == "all" or split_of(task) == split)
            and (wanted is None or any(c in wanted for c in task.involved_classes))
            and not any(c in excluded for c in task.involved_classes)
        ]
        if not tasks:
            raise ValueError(
                f"No BFCL entry matches categories={list(categories)}, split={split!r}, "
                f"backends={None if wanted is None else list(wanted)}, "
                f"exclude_backends={list(excluded)}."
            )
        if num_tasks is not None:
            if not 1 <= num_tasks <= len(tasks):
                raise ValueError(
                    f"num_tasks must be in [1, {len(tasks)}] for this selection, got {num_tasks}"
                )
            tasks = tasks[:num_tasks]
        cached = TaskSet(tasks, [task.id for task in tasks])
        _TASKSET_CACHE[key] = cached
        return cached


def parameter_order() -> dict[str, tuple[str, ...]]:
    """``{function: parameters in the backend method's order}``, for positional arguments.

    BFCL's executor calls the method, so positional arguments bind in the order of the
    Python signature (which for ``purchase_insurance`` differs from the doc's order).
    """
    with _LOCK:
        load_functions()
        return {name: info.parameters for name, info in _FUNCTIONS.items()}


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
