"""Helpers shared by the format modules: think blocks, tag extraction, JSON with
agent-facing errors, tool lists and example calls for the instructions (internal)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from agentgym.core.parsing.base import (
    ToolCall,
)


class ParseError(Exception):
    """Internal control flow: carries an agent-facing message up to ``parse``."""


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

# Error messages quote the offending text; a short quote is enough to locate the problem and
# keeps feedback small even when the model produced megabytes of garbage.
_SNIPPET_CHARS = 60

_JSON_TYPE_NAMES: dict[type, str] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def snippet(text: str, limit: int = _SNIPPET_CHARS) -> str:
    """A short, quoted excerpt of ``text`` for error messages."""
    text = text.strip()
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def _json_type(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


_LEADING_THINK = re.compile(r"\s*<think>")


def split_think(text: str) -> tuple[str | None, str]:
    """Split off the first ``<think>...</think>`` block: return ``(thought, rest)``.

    Reasoning models often get the opening ``<think>`` from the chat template, so their output
    starts inside the block and only the closing tag appears; text before it is then the thought.
    A leading ``<think>`` that is never closed raises ``ParseError``.
    """
    close = text.find(THINK_CLOSE)
    if close == -1:
        # Only a leading <think> opens a block: elsewhere the tag may be plain text (a value).
        if _LEADING_THINK.match(text):
            raise ParseError(
                f"The {THINK_OPEN} block is not closed: add {THINK_CLOSE} after your reasoning."
            )
        return None, text
    before = text[:close]
    after = text[close + len(THINK_CLOSE) :]
    open_at = before.find(THINK_OPEN)
    if open_at == -1:
        return before.strip(), after
    return before[open_at + len(THINK_OPEN) :].strip(), before[:open_at] + after


# A format tag inside a string value (say an argument "</think>") would be read as markup when
# the output is parsed back; writing its `<` as an escape keeps the value and hides the tag.
TAG_START = re.compile(r"<(?=/?(?:tool_call|think|answer)>)")


def dump_json(value: Any) -> str:
    """JSON for use between tags: readable unicode, and no format tags inside strings."""
    # `<` only ever occurs inside JSON strings, where \u003c is an equivalent escape.
    return TAG_START.sub(r"\\u003c", json.dumps(value, ensure_ascii=False))


def think_prefix(thought: str | None) -> str:
    return "" if thought is None else f"{THINK_OPEN}\n{thought}\n{THINK_CLOSE}\n\n"


def extract_blocks(text: str, open_tag: str, close_tag: str) -> tuple[list[str], str]:
    """Cut every ``open_tag ... close_tag`` block out of ``text``: return (bodies, outside text).

    A block still open at the end of the text runs to the end: generation commonly stops *at*
    the closing tag (it is a stop string), so it is missing from the output. A closing tag
    without an opening one raises ``ParseError``, since it means the opening tag was forgotten.
    """
    bodies: list[str] = []
    outside: list[str] = []
    position = 0
    while True:
        start = text.find(open_tag, position)
        if start == -1:
            outside.append(text[position:])
            break
        outside.append(text[position:start])
        body_start = start + len(open_tag)
        end = text.find(close_tag, body_start)
        if end == -1:
            bodies.append(text[body_start:])
            break
        bodies.append(text[body_start:end])
        position = end + len(close_tag)
    outside_text = "".join(outside)
    if close_tag in outside_text:
        raise ParseError(f"Found {close_tag} without a matching {open_tag} before it.")
    return bodies, outside_text


def _reject_json_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not allowed in JSON (use a number or null)")


# Built once: `json.loads(text, **options)` would construct a new decoder on every call.
# NaN/Infinity are Python extensions of JSON that other tools (and `to_openai` readers) reject.
_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_json_constant)


def load_json(body: str, where: str) -> Any:
    """``json.loads`` with agent-facing errors (message, line/column and a quote)."""
    try:
        return _JSON_DECODER.decode(body)
    except json.JSONDecodeError as exc:
        near = body[max(0, exc.pos - _SNIPPET_CHARS // 2) : exc.pos + _SNIPPET_CHARS // 2]
        raise ParseError(
            f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}, "
            f"near {snippet(near)}."
        ) from None
    except RecursionError:
        raise ParseError(f"{where} is nested too deeply to be parsed.") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python will convert
        raise ParseError(f"{where} is not valid JSON: {exc}.") from None


def tool_call_from_json(obj: Any, where: str) -> ToolCall:
    """Validate one ``{"name": ..., "arguments": {...}}`` object and build the ToolCall.

    Accepts ``arguments`` as a JSON-encoded string (OpenAI style) and ``parameters`` as a
    synonym; missing or null arguments mean no arguments.
    """
    if not isinstance(obj, dict):
        raise ParseError(
            f'{where} must be a JSON object with "name" and "arguments", got {_json_type(obj)}.'
        )
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        got = "nothing" if name is None else _json_type(name)
        raise ParseError(f'{where} needs "name": a non-empty string with the tool name, got {got}.')
    arguments = obj["arguments"] if "arguments" in obj else obj.get("parameters")
    if arguments is None:
        arguments = {}
    elif isinstance(arguments, str):
        arguments = (
            load_json(arguments, f'The "arguments" string of {where}') if arguments.strip() else {}
        )
    if not isinstance(arguments, dict):
        raise ParseError(
            f'"arguments" of {where} must be a JSON object mapping parameter names to values, '
            f"got {_json_type(arguments)}."
        )
    call_id = obj.get("id")
    return ToolCall(
        name=name.strip(),
        arguments=arguments,
        id=call_id if isinstance(call_id, str) else None,
    )


def tool_functions(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``function`` part of each OpenAI tool schema (bare function schemas also accepted)."""
    return [tool.get("function", tool) for tool in tools]


def _parameter_properties(function: dict[str, Any]) -> dict[str, Any]:
    properties = (function.get("parameters") or {}).get("properties") or {}
    return properties if isinstance(properties, dict) else {}


# Placeholder argument values for the example call shown in the instructions.
_EXAMPLE_VALUES: dict[str, Any] = {
    "string": "...",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "array": [],
    "object": {},
}


def example_tool_call(functions: list[dict[str, Any]]) -> ToolCall:
    """A plausible call of the first tool, so the example in the prompt uses a real name."""
    if not functions:
        return ToolCall("tool_name", {"argument": "value"})
    function = functions[0]
    required = (function.get("parameters") or {}).get("required") or []
    arguments: dict[str, Any] = {}
    for parameter, schema in _parameter_properties(function).items():
        if len(arguments) == 2 or (required and parameter not in required):
            continue
        schema = schema if isinstance(schema, dict) else {}
        if schema.get("enum"):
            arguments[parameter] = schema["enum"][0]
        else:
            arguments[parameter] = _EXAMPLE_VALUES.get(schema.get("type"), "...")
    return ToolCall(str(function.get("name", "tool_name")), arguments)


def json_tool_list(tools: Sequence[dict[str, Any]]) -> str:
    lines = [json.dumps(tool, ensure_ascii=False) for tool in tools]
    return "<tools>\n" + "\n".join(lines) + "\n</tools>"


def signature_tool_list(
    functions: list[dict[str, Any]], open_bracket: str, close_bracket: str
) -> str:
    """One line per tool: ``- name(param: type, other: type (optional)): description``."""
    lines = []
    for function in functions:
        required = (function.get("parameters") or {}).get("required") or []
        parameters = []
        for parameter, schema in _parameter_properties(function).items():
            kind = schema.get("type", "any") if isinstance(schema, dict) else "any"
            optional = "" if parameter in required else " (optional)"
            parameters.append(f"{parameter}: {kind}{optional}")
        signature = (
            f"{function.get('name', '?')}{open_bracket}{', '.join(parameters)}{close_bracket}"
        )
        description = str(function.get("description") or "").strip()
        lines.append(f"- {signature}: {description}" if description else f"- {signature}")
    return "\n".join(lines) if lines else "(no tools)"
