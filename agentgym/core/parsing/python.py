"""The ``python`` format: a Python list of calls, ``[f(a=1), g(b='x')]`` (BFCL style),
parsed with ``ast`` and never evaluated."""

from __future__ import annotations

import ast
import keyword
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from agentgym.core.parsing.base import (
    ParsedAction,
    ToolCall,
    ToolCallParser,
)
from agentgym.core.parsing.common import (
    TAG_START,
    ParseError,
    example_tool_call,
    signature_tool_list,
    snippet,
    split_think,
    think_prefix,
    tool_functions,
)

__all__ = ["PythonCallParser"]


_PYTHON_EXPECTED = (
    "Expected format: a Python list of function calls with keyword arguments and literal "
    "values, e.g. [get_weather(city='Paris', days=3), get_time(zone='CET')]; to finish, "
    "reply with plain text instead."
)
# What an attempted call list starts with: `[` or `name(` / `module.name(`.
_PYTHON_CALL_START = re.compile(r"[A-Za-z_][\w.]*\s*\(")
# Beyond this, handing the text to `ast` risks long parse times and memory blow-ups.
_PYTHON_MAX_CHARS = 100_000
_JSON_SCALARS = (str, int, float, bool, type(None))


class _ParameterOrder(dict[str, tuple[str, ...]]):
    """Function name -> parameter names; hashable (never mutated after construction), so
    parsers with equal settings compare and hash equal, as caches keyed by settings need."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))


class _NotJsonLike(Exception):
    """A literal with no JSON counterpart (set, bytes, complex, ...)."""


def _json_like(value: Any) -> Any:
    """Convert a ``literal_eval`` result to JSON-like values (tuples become lists)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _NotJsonLike  # 1e999 overflows to inf, which JSON cannot carry
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, list | tuple):
        return [_json_like(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, _JSON_SCALARS) for key in value):
            raise _NotJsonLike
        return {key: _json_like(item) for key, item in value.items()}
    raise _NotJsonLike


def _python_literal(value: Any) -> str:
    """Write a JSON-like value as Python source that ``ast.literal_eval`` reads back equal."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} has no Python literal form")
    if isinstance(value, str):
        # `<` becomes \x3c when it starts a tag, so that "</think>" in a value is not markup.
        return TAG_START.sub(r"\\x3c", repr(value))
    if isinstance(value, _JSON_SCALARS):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_python_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{_python_literal(key)}: {_python_literal(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    raise ValueError(f"cannot write {type(value).__name__} value {value!r} as a literal")


def _is_python_identifier(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and name != "__debug__"


def _dotted_name(node: ast.expr) -> str | None:
    """``f`` or ``math.add`` as a string; None for any other call target."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


class PythonCallParser(ToolCallParser):
    """BFCL-style format: a Python list of calls, parsed with ``ast`` and never evaluated.

    A single bare call, dotted names and a surrounding markdown code fence are accepted;
    argument values must be literals. Text that does not look like a call attempt is a final
    message.

    Positional arguments need to know the function's parameters: give ``parameter_order``
    (``{function name: parameter names in signature order}``, as the environment that owns
    the functions knows them) and they are bound to those names in order, as Python would
    call the function; too many of them, or a parameter given both by position and by
    name, is an error that shows the signature. Without an entry for the function,
    positional arguments are an error that asks for keyword arguments.

    >>> parser = PythonCallParser()
    >>> action = parser.parse("[math.add(a=1, b=-2), lookup(keys=('x', 'y'), strict=None)]")
    >>> [(call.name, call.arguments) for call in action.tool_calls]
    [('math.add', {'a': 1, 'b': -2}), ('lookup', {'keys': ['x', 'y'], 'strict': None})]
    >>> parser.parse("The answer is 42.").content
    'The answer is 42.'
    >>> print(parser.parse("[add(1, 2)]").error)  # doctest: +ELLIPSIS
    Call 1 (add) has positional arguments: use keyword arguments ...
    >>> parser.format_calls([ToolCall("add", {"a": 1, "b": [True, "x"]})])
    "[add(a=1, b=[True, 'x'])]"
    >>> bound = PythonCallParser(parameter_order={"add": ("a", "b")})
    >>> bound.parse("[add(1, b=2)]").tool_calls[0].arguments
    {'a': 1, 'b': 2}
    >>> print(bound.parse("[add(1, 2, 3)]").error)  # doctest: +ELLIPSIS
    Call 1 (add) has 3 positional arguments, but add takes at most 2: add(a, b). ...
    """

    name: ClassVar[str] = "python"

    def __init__(self, parameter_order: Mapping[str, Sequence[str]] | None = None) -> None:
        self.parameter_order = _ParameterOrder(
            (str(function), tuple(parameters))
            for function, parameters in (parameter_order or {}).items()
        )

    def parse(self, text: str) -> ParsedAction:
        thought: str | None = None
        content = text.strip()
        try:
            thought, rest = split_think(text)
            source = content = rest.strip()
            if source.startswith("```") and source.endswith("```") and len(source) >= 6:
                # Drop the fence lines; the first line may carry a language tag (```python).
                first_newline = source.find("\n")
                source = source[first_newline + 1 : -3].strip() if first_newline != -1 else ""
            if not source.startswith("[") and not _PYTHON_CALL_START.match(source):
                return ParsedAction(text, content=content, thought=thought)
            calls = self._parse_calls(source)
        except ParseError as exc:
            return ParsedAction(
                text, content=content, thought=thought, error=f"{exc} {_PYTHON_EXPECTED}"
            )
        return ParsedAction(text, calls, thought=thought)

    def _parse_calls(self, source: str) -> tuple[ToolCall, ...]:
        if len(source) > _PYTHON_MAX_CHARS:
            raise ParseError(
                f"The call list is too long ({len(source)} characters, at most "
                f"{_PYTHON_MAX_CHARS})."
            )
        try:
            expression = ast.parse(source, mode="eval").body
        except SyntaxError as exc:
            line = (exc.text or "").strip()
            where = f" near {snippet(line)}" if line else ""
            raise ParseError(
                f"Could not parse the function calls: {exc.msg} (line {exc.lineno}, column "
                f"{exc.offset}){where}."
            ) from None
        except (RecursionError, MemoryError, ValueError) as exc:
            # ValueError covers e.g. lone surrogates, which cannot be encoded for the parser.
            raise ParseError(f"Could not parse the function calls: {exc}.") from None
        if isinstance(expression, ast.Call):
            call_nodes: list[ast.expr] = [expression]
        elif isinstance(expression, ast.List):
            call_nodes = expression.elts
        else:
            raise ParseError(f"Expected a list of function calls, got {snippet(source)}.")
        return tuple(
            self._call_from_node(node, index, source)
            for index, node in enumerate(call_nodes, start=1)
        )

    def _call_from_node(self, node: ast.expr, index: int, source: str) -> ToolCall:
        segment = ast.get_source_segment(source, node) or ""
        if not isinstance(node, ast.Call):
            raise ParseError(
                f"Item {index} of the list is not a function call: {snippet(segment)}."
            )
        name = _dotted_name(node.func)
        if name is None:
            raise ParseError(
                f"Call {index} must call a function by name (like f or module.f): "
                f"{snippet(segment)}."
            )
        arguments: dict[str, Any] = {}
        for parameter, value_node in self._bind_positional(node, name, index):
            arguments[parameter] = self._literal(value_node, parameter, name, index, source)
        for argument in node.keywords:
            if argument.arg is None:
                raise ParseError(
                    f"Call {index} ({name}) uses **-unpacking: write each argument as param=value."
                )
            if argument.arg in arguments:
                if argument.arg in self.parameter_order.get(name, ())[: len(node.args)]:
                    raise ParseError(
                        f"Call {index} ({name}) gives {argument.arg!r} both by position and by "
                        f"name: {self._signature(name)}."
                    )
                raise ParseError(f"Call {index} ({name}) repeats the argument {argument.arg!r}.")
            arguments[argument.arg] = self._literal(
                argument.value, argument.arg, name, index, source
            )
        return ToolCall(name=name, arguments=arguments)

    def _bind_positional(self, node: ast.Call, name: str, index: int) -> list[tuple[str, ast.expr]]:
        """Pair positional argument nodes with parameter names, in signature order."""
        if not node.args:
            return []
        parameters = self.parameter_order.get(name)
        if parameters is None or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ParseError(
                f"Call {index} ({name}) has positional arguments: use keyword arguments "
                f"instead, e.g. {name}(param=value)."
            )
        if len(node.args) > len(parameters):
            raise ParseError(
                f"Call {index} ({name}) has {len(node.args)} positional arguments, but {name} "
                f"takes at most {len(parameters)}: {self._signature(name)}. Name the arguments, "
                f"e.g. {name}(param=value)."
            )
        return list(zip(parameters, node.args, strict=False))

    def _signature(self, name: str) -> str:
        return f"{name}({', '.join(self.parameter_order.get(name, ()))})"

    @staticmethod
    def _literal(node: ast.expr, parameter: str, name: str, index: int, source: str) -> Any:
        try:
            return _json_like(ast.literal_eval(node))
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError, _NotJsonLike):
            value_source = ast.get_source_segment(source, node) or ""
            raise ParseError(
                f"Argument {parameter!r} of call {index} ({name}) is not a literal "
                f"value: {snippet(value_source)}. Use only strings, numbers, True/False/None, "
                "and lists or dicts of those; no variables, expressions or function calls."
            ) from None

    def format_calls(self, calls: Sequence[ToolCall], *, thought: str | None = None) -> str:
        rendered = []
        for call in calls:
            if not all(_is_python_identifier(part) for part in call.name.split(".")):
                raise ValueError(f"{call.name!r} is not a valid Python function name")
            arguments = []
            for parameter, value in call.arguments.items():
                if not _is_python_identifier(parameter):
                    raise ValueError(f"{parameter!r} is not a valid Python keyword argument name")
                arguments.append(f"{parameter}={_python_literal(value)}")
            rendered.append(f"{call.name}({', '.join(arguments)})")
        return think_prefix(thought) + "[" + ", ".join(rendered) + "]"

    def format_answer(self, text: str, *, thought: str | None = None) -> str:
        stripped = text.strip()
        if stripped.startswith("[") or _PYTHON_CALL_START.match(stripped):
            raise ValueError(
                f"{snippet(text)} would be read as a function call list, not a final message"
            )
        return think_prefix(thought) + text

    def instructions(self, tools: Sequence[dict[str, Any]]) -> str:
        functions = tool_functions(tools)
        example = self.format_calls([example_tool_call(functions)])
        return (
            "# Tools\n\n"
            "You may call these functions:\n"
            f"{signature_tool_list(functions, '(', ')')}\n\n"
            "To call functions, reply with only a Python list of calls, using keyword arguments "
            "and literal values (strings, numbers, True/False/None, lists, dicts), for example:\n"
            f"{example}\n\n"
            "When you are done, reply with plain text instead of a list of calls."
        )
