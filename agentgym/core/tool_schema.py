"""Schemas and validation for tools: docstrings and type hints to JSON schema, and values
checked against a schema with error messages written for the agent.

Used by :mod:`agentgym.core.tools` (the ``@tool`` decorator) and by environments that
validate arguments against published function docs (BFCL).

>>> schema_for(list[int], "xs")
{'type': 'array', 'items': {'type': 'integer'}}
>>> check_value("two", {"type": "number"}, "amount")
"'amount' must be a number, got string 'two'"
"""

from __future__ import annotations

import difflib
import enum
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin

__all__ = [
    "check_value",
    "coerce_text",
    "did_you_mean",
    "is_tuple",
    "parse_docstring",
    "schema_for",
    "short_repr",
]

_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$")
_SECTION_HEADER = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")
_ARG_LINE = re.compile(r"^(\s*)(\*{0,2}\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_RETURNS_HEADER = re.compile(r"^\s*(Returns|Yields)\s*:\s*$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str], str]:
    """Split a Google-style docstring into (description, {arg: text}, returns text)."""
    lines = inspect.cleandoc(doc).splitlines() if doc else []
    description: list[str] = []
    arg_docs: dict[str, str] = {}
    returns: list[str] = []
    section = "description"
    current: str | None = None
    arg_indent: int | None = None
    for line in lines:
        if _ARGS_HEADER.match(line):
            section, current, arg_indent = "args", None, None
            continue
        if _RETURNS_HEADER.match(line):
            section = "returns"
            continue
        if _SECTION_HEADER.match(line) and section != "description":
            section = "other"
            continue
        if section == "description":
            if _SECTION_HEADER.match(line):
                section = "other"
                continue
            description.append(line)
        elif section == "args":
            match = _ARG_LINE.match(line)
            indent = len(line) - len(line.lstrip())
            if match and (arg_indent is None or indent <= arg_indent):
                arg_indent = indent
                current = match.group(2).lstrip("*")
                arg_docs[current] = match.group(4).strip()
            elif current is not None and line.strip():
                arg_docs[current] = f"{arg_docs[current]} {line.strip()}".strip()
        elif section == "returns" and line.strip():
            returns.append(line.strip())
    # The description is the text up to the first blank line after content: the summary
    # plus any following paragraph before the sections.
    text = "\n".join(description).strip()
    return text, arg_docs, " ".join(returns)


def _json_type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    if value is None:
        return "null"
    return type(value).__name__


def schema_for(annotation: Any, where: str) -> dict[str, Any]:
    """JSON schema for one type annotation; raises TypeError for unsupported types."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if annotation is str:
        return {"type": "string"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation is Any:
        return {}
    if annotation in (list, tuple, Sequence):
        return {"type": "array"}
    if annotation in (dict, Mapping):
        return {"type": "object"}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = [member.value for member in annotation]
        return {"type": _json_type_name(values[0]), "enum": values}
    if origin is Literal:
        values = list(args)
        kinds = {_json_type_name(v) for v in values}
        schema: dict[str, Any] = {"enum": values}
        if len(kinds) == 1:
            schema = {"type": kinds.pop(), "enum": values}
        return schema
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            return schema_for(members[0], where)
        return {"anyOf": [schema_for(m, where) for m in members]}
    if origin is tuple and args and args[-1] is not Ellipsis and args != ((),):
        # A fixed-length tuple: the length is part of the type (tuple[int, int] is a pair).
        schema = {"type": "array", "minItems": len(args), "maxItems": len(args)}
        if len(set(args)) == 1:
            schema["items"] = schema_for(args[0], where)
        else:
            schema["prefixItems"] = [schema_for(a, where) for a in args]
        return schema
    if origin in (list, tuple, Sequence, typing.Sequence) or origin is Iterable:
        item_types = [a for a in args if a is not Ellipsis]
        schema = {"type": "array"}
        if len(set(item_types)) == 1:
            schema["items"] = schema_for(item_types[0], where)
        return schema
    if origin in (dict, Mapping, typing.Mapping):
        schema = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = schema_for(args[1], where)
        return schema
    raise TypeError(
        f"{where}: unsupported type annotation {annotation!r}. Use str, int, float, bool, "
        "list[...], dict[str, ...], Literal[...], an Enum, or X | None."
    )


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def is_tuple(annotation: Any) -> bool:
    """``tuple``, ``tuple[...]`` or an optional one (the tool receives a tuple, not a list)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return any(is_tuple(member) for member in get_args(annotation))
    return annotation is tuple or get_origin(annotation) is tuple


def check_value(value: Any, schema: Mapping[str, Any], path: str) -> str | None:
    """Return an error text when ``value`` does not match ``schema`` (a JSON-schema subset)."""
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN or infinity (1e999 parses to inf): refused whatever the type.
        return f"'{path}' must be a finite number, got {value!r}"
    if "anyOf" in schema:
        if any(check_value(value, option, path) is None for option in schema["anyOf"]):
            return None
        return f"'{path}' has the wrong type ({_json_type_name(value)} {short_repr(value)})"
    expected = schema.get("type")
    if expected is not None and not _type_matches(value, expected):
        got = f"{_json_type_name(value)} {short_repr(value)}"
        return f"'{path}' must be {_article(expected)}, got {got}"
    if "enum" in schema and value not in schema["enum"]:
        options = ", ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
        return f"'{path}' must be one of {options}; got {short_repr(value)}"
    if expected == "array" and not schema.get("minItems", 0) <= len(value) <= schema.get(
        "maxItems", len(value)
    ):
        size = schema["minItems"] if schema.get("minItems") == schema.get("maxItems") else None
        wanted = f"exactly {size}" if size is not None else "a different number of"
        return f"'{path}' must have {wanted} items, got {len(value)}"
    if expected == "array" and "prefixItems" in schema:
        # The lengths are equal here: min/maxItems were checked above.
        for index, (item, item_schema) in enumerate(zip(value, schema["prefixItems"], strict=True)):
            error = check_value(item, item_schema, f"{path}[{index}]")
            if error:
                return error
    if expected == "array" and "items" in schema:
        for index, item in enumerate(value):
            error = check_value(item, schema["items"], f"{path}[{index}]")
            if error:
                return error
    if expected == "object" and isinstance(schema.get("additionalProperties"), Mapping):
        for key, item in value.items():
            error = check_value(item, schema["additionalProperties"], f"{path}.{key}")
            if error:
                return error
    return None


def _type_matches(value: Any, expected: str) -> bool:
    # bool is a subclass of int in Python but not an integer in JSON schema.
    if expected == "string":
        return isinstance(value, str)
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "array":
        return isinstance(value, list | tuple)
    if expected == "object":
        return isinstance(value, dict)
    if expected == "null":
        return value is None
    return True


def _article(type_name: str) -> str:
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"


def short_repr(value: Any, limit: int = 40) -> str:
    try:
        text = repr(value)
    except Exception:  # e.g. an int too long to convert to text
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def coerce_text(text: str, schema: Mapping[str, Any]) -> Any:
    """Best-effort conversion of a ReAct text argument to the declared JSON type."""
    expected = schema.get("type")
    stripped = text.strip()
    try:
        if expected == "integer":
            return int(stripped)
        if expected == "number":
            return float(stripped)
        if expected == "boolean" and stripped.lower() in ("true", "false"):
            return stripped.lower() == "true"
        if expected in ("array", "object"):
            return json.loads(stripped)
    except (ValueError, json.JSONDecodeError):
        return stripped
    return stripped


def did_you_mean(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""
