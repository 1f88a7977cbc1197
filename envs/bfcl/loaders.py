"""Loading BFCL's multi-turn data from the ``bfcl-eval`` package.

Everything here is read once per process and shared read-only by every environment copy:
the function docs and backend classes (:func:`load_functions`), the entries of each
category (:func:`load_category`) and the backends loaded with each entry's initial state,
which :func:`fresh_backends` deep-copies for every episode. Choosing entries (split,
backends, caps) is :func:`agentgym.envs.bfcl.tasks.select_tasks`.
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentgym.core.parsing import ToolCall
from agentgym.core.registry import check_choice
from agentgym.envs.bfcl.tasks import CATEGORIES, BFCLTask

__all__ = [
    "INSTALL_COMMAND",
    "FunctionInfo",
    "convert_schema",
    "fresh_backends",
    "load_category",
    "load_functions",
    "parameter_order",
    "parse_ground_truth_call",
]

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


_LOCK = threading.RLock()
_FUNCTIONS: dict[str, FunctionInfo] = {}
_CLASS_FUNCTIONS: dict[str, tuple[str, ...]] = {}
_CLASSES: dict[str, type] = {}
_CATEGORY_CACHE: dict[str, tuple[BFCLTask, ...]] = {}
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
