"""Tool-call parsers: turn an LLM's raw output text into structured tool calls.

Every environment step hands the model's text to a :class:`ToolCallParser`, which returns a
:class:`ParsedAction`: the tool calls, the free text around them, the model's thought and an
explicit final answer when the format has them, or an ``error`` written *for the agent* (what was
wrong and what the expected format looks like), so that a malformed turn becomes feedback instead
of a crash. Parsers never raise on any input string.

Four formats are built in and registered by name:

* ``"hermes"``: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (Qwen/Hermes).
* ``"think_answer"``: ``<think>...</think>`` then a ``<tool_call>[...]</tool_call>`` JSON list or
  an ``<answer>...</answer>`` (the Environment Tuning format).
* ``"python"``: a Python list of calls, ``[f(a=1), g(b='x')]`` (BFCL style), parsed with ``ast``.
* ``"react"``: ``Thought: ...`` then ``Action: Name[arguments]`` (WebShop, TravelPlanner).

Every parser can also write its own format (:meth:`ToolCallParser.format_calls`,
:meth:`ToolCallParser.format_answer`, for demonstrations and tests) and explain it in a system
prompt (:meth:`ToolCallParser.instructions`).

>>> parser = get_parser("hermes")
>>> action = parser.parse('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>')
>>> action.tool_calls
(ToolCall(name='add', arguments={'a': 1, 'b': 2}, raw_arguments=None, id=None),)
>>> parser.parse("The sum is 3.").is_final
True
>>> get_parser("python").parse("[add(a=1, b=2)]").tool_calls[0].arguments
{'a': 1, 'b': 2}
>>> list_parsers()
['hermes', 'python', 'react', 'think_answer']
"""

from __future__ import annotations

import ast
import difflib
import json
import keyword
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "HermesParser",
    "ParsedAction",
    "PythonCallParser",
    "ReActParser",
    "ThinkAnswerParser",
    "ToolCall",
    "ToolCallParser",
    "get_parser",
    "list_parsers",
    "register_parser",
]


# --------------------------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    """One tool call requested by the model.

    ``arguments`` holds keyword arguments with JSON-like values. ReAct-style formats cannot name
    their arguments (``search[red shoes]``); they leave ``arguments`` empty and put the unsplit
    bracket text in ``raw_arguments``, which the tool itself maps onto its parameters.

    >>> call = ToolCall("get_weather", {"city": "Paris"}, id="call_1")
    >>> call.to_openai()
    {'id': 'call_1', 'type': 'function', 'function': {'name': 'get_weather', \
'arguments': '{"city": "Paris"}'}}
    >>> ToolCall("search", raw_arguments="red shoes").arguments
    {}
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw_arguments: str | None = None
    id: str | None = None

    def to_openai(self) -> dict[str, Any]:
        """Return the call as an OpenAI chat-completions ``tool_calls`` entry.

        The arguments are a JSON *string*, as in the OpenAI API; ``id`` is left out when unset.
        """
        message: dict[str, Any] = {} if self.id is None else {"id": self.id}
        message["type"] = "function"
        message["function"] = {
            "name": self.name,
            "arguments": json.dumps(self.arguments, ensure_ascii=False),
        }
        return message


@dataclass(frozen=True)
class ParsedAction:
    """The result of parsing one model output.

    ``text`` is the raw output, unchanged. ``content`` is the free text outside the tool calls
    (stripped): the message to the user when there are no calls. ``thought`` and ``answer`` are
    filled when the format has them. ``error`` is a parse-error message addressed to the agent;
    when it is set, ``tool_calls`` is empty, so that no half-understood call is ever executed.

    >>> ParsedAction("Hello!", content="Hello!").is_final
    True
    >>> bad = ParsedAction("<tool_call>{", error="Invalid JSON ...")
    >>> bad.is_valid, bad.is_final
    (False, False)
    """

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    content: str = ""
    thought: str | None = None
    answer: str | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        # Callers naturally pass lists; a tuple keeps the frozen dataclass truly immutable.
        if not isinstance(self.tool_calls, tuple):
            object.__setattr__(self, "tool_calls", tuple(self.tool_calls))

    @property
    def is_valid(self) -> bool:
        """True when the output followed the format (``error`` is None)."""
        return self.error is None

    @property
    def is_final(self) -> bool:
        """True for a valid output without tool calls: the agent's turn-ending message."""
        return self.error is None and not self.tool_calls


# --------------------------------------------------------------------------------------------
# Parser interface and registry
# --------------------------------------------------------------------------------------------


class ToolCallParser(ABC):
    """Base class of the tool-call formats.

    Subclasses set ``name`` and implement the four methods below. :meth:`parse` must never raise
    for any ``str``: problems go into :attr:`ParsedAction.error`. :meth:`format_calls` is its
    inverse (``parse(format_calls(calls)).tool_calls`` has the same names and arguments).

    >>> class LineParser(ToolCallParser):
    ...     name = "line"
    ...     def parse(self, text):
    ...         name, _, rest = text.strip().partition(" ")
    ...         return ParsedAction(text, (ToolCall(name, raw_arguments=rest),))
    ...     def format_calls(self, calls, *, thought=None):
    ...         return "\\n".join(f"{c.name} {c.raw_arguments}" for c in calls)
    ...     def format_answer(self, text, *, thought=None):
    ...         raise ValueError("this format has no final message")
    ...     def instructions(self, tools):
    ...         return "Write: tool_name arguments"
    >>> LineParser().parse("search red shoes").tool_calls[0].raw_arguments
    'red shoes'
    """

    name: ClassVar[str]

    @abstractmethod
    def parse(self, text: str) -> ParsedAction:
        """Parse one model output. Never raises; malformed output gives ``error``."""

    @abstractmethod
    def format_calls(self, calls: Sequence[ToolCall], *, thought: str | None = None) -> str:
        """Write ``calls`` (and optionally a thought) as a model output in this format."""

    @abstractmethod
    def format_answer(self, text: str, *, thought: str | None = None) -> str:
        """Write a final, call-free message; parsing it gives ``is_final`` with this text."""

    @abstractmethod
    def instructions(self, tools: Sequence[dict[str, Any]]) -> str:
        """System-prompt text: how to call tools in this format, an example, and the tools.

        ``tools`` are OpenAI function schemas,
        ``{"type": "function", "function": {"name", "description", "parameters"}}``.
        """


_PARSERS: dict[str, type[ToolCallParser]] = {}


def register_parser(name: str, parser_cls: type[ToolCallParser]) -> None:
    """Make ``parser_cls`` available to :func:`get_parser` under ``name``.

    >>> register_parser("hermes", HermesParser)
    Traceback (most recent call last):
    ...
    ValueError: a tool-call parser named 'hermes' is already registered
    """
    if not (isinstance(parser_cls, type) and issubclass(parser_cls, ToolCallParser)):
        raise TypeError(f"parser_cls must be a ToolCallParser subclass, got {parser_cls!r}")
    if name in _PARSERS:
        raise ValueError(f"a tool-call parser named {name!r} is already registered")
    _PARSERS[name] = parser_cls


def get_parser(parser: str | ToolCallParser) -> ToolCallParser:
    """Return a parser instance: a registered name is instantiated, an instance passes through.

    >>> get_parser("react").name
    'react'
    >>> get_parser("hermse")
    Traceback (most recent call last):
    ...
    ValueError: unknown tool-call parser 'hermse'; valid names: hermes, python, react, \
think_answer. Did you mean 'hermes'?
    """
    if isinstance(parser, ToolCallParser):
        return parser
    if not isinstance(parser, str):
        raise TypeError(f"expected a parser name or ToolCallParser, got {type(parser).__name__}")
    parser_cls = _PARSERS.get(parser)
    if parser_cls is None:
        valid = list_parsers()
        message = f"unknown tool-call parser {parser!r}; valid names: {', '.join(valid)}."
        close = difflib.get_close_matches(parser, valid, n=1)
        if close:
            message += f" Did you mean {close[0]!r}?"
        raise ValueError(message)
    return parser_cls()


def list_parsers() -> list[str]:
    """Names of the registered parsers, sorted."""
    return sorted(_PARSERS)


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


class _ParseError(Exception):
    """Internal control flow: carries an agent-facing message up to ``parse``."""


_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_CALL_OPEN, _CALL_CLOSE = "<tool_call>", "</tool_call>"
_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"

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


def _snippet(text: str, limit: int = _SNIPPET_CHARS) -> str:
    """A short, quoted excerpt of ``text`` for error messages."""
    text = text.strip()
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def _json_type(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


_LEADING_THINK = re.compile(r"\s*<think>")


def _split_think(text: str) -> tuple[str | None, str]:
    """Split off the first ``<think>...</think>`` block: return ``(thought, rest)``.

    Reasoning models often get the opening ``<think>`` from the chat template, so their output
    starts inside the block and only the closing tag appears; text before it is then the thought.
    A leading ``<think>`` that is never closed raises ``_ParseError``.
    """
    close = text.find(_THINK_CLOSE)
    if close == -1:
        # Only a leading <think> opens a block: elsewhere the tag may be plain text (a value).
        if _LEADING_THINK.match(text):
            raise _ParseError(
                f"The {_THINK_OPEN} block is not closed: add {_THINK_CLOSE} after your reasoning."
            )
        return None, text
    before = text[:close]
    after = text[close + len(_THINK_CLOSE) :]
    open_at = before.find(_THINK_OPEN)
    if open_at == -1:
        return before.strip(), after
    return before[open_at + len(_THINK_OPEN) :].strip(), before[:open_at] + after


# A format tag inside a string value (say an argument "</think>") would be read as markup when
# the output is parsed back; writing its `<` as an escape keeps the value and hides the tag.
_TAG_START = re.compile(r"<(?=/?(?:tool_call|think|answer)>)")


def _dump_json(value: Any) -> str:
    """JSON for use between tags: readable unicode, and no format tags inside strings."""
    # `<` only ever occurs inside JSON strings, where \u003c is an equivalent escape.
    return _TAG_START.sub(r"\\u003c", json.dumps(value, ensure_ascii=False))


def _think_prefix(thought: str | None) -> str:
    return "" if thought is None else f"{_THINK_OPEN}\n{thought}\n{_THINK_CLOSE}\n\n"


def _extract_blocks(text: str, open_tag: str, close_tag: str) -> tuple[list[str], str]:
    """Cut every ``open_tag ... close_tag`` block out of ``text``: return (bodies, outside text).

    A block still open at the end of the text runs to the end: generation commonly stops *at*
    the closing tag (it is a stop string), so it is missing from the output. A closing tag
    without an opening one raises ``_ParseError``, since it means the opening tag was forgotten.
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
        raise _ParseError(f"Found {close_tag} without a matching {open_tag} before it.")
    return bodies, outside_text


def _reject_json_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not allowed in JSON (use a number or null)")


# Built once: `json.loads(text, **options)` would construct a new decoder on every call.
# NaN/Infinity are Python extensions of JSON that other tools (and `to_openai` readers) reject.
_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_json_constant)


def _load_json(body: str, where: str) -> Any:
    """``json.loads`` with agent-facing errors (message, line/column and a quote)."""
    try:
        return _JSON_DECODER.decode(body)
    except json.JSONDecodeError as exc:
        near = body[max(0, exc.pos - _SNIPPET_CHARS // 2) : exc.pos + _SNIPPET_CHARS // 2]
        raise _ParseError(
            f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}, "
            f"near {_snippet(near)}."
        ) from None
    except RecursionError:
        raise _ParseError(f"{where} is nested too deeply to be parsed.") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python will convert
        raise _ParseError(f"{where} is not valid JSON: {exc}.") from None


def _tool_call_from_json(obj: Any, where: str) -> ToolCall:
    """Validate one ``{"name": ..., "arguments": {...}}`` object and build the ToolCall.

    Accepts ``arguments`` as a JSON-encoded string (OpenAI style) and ``parameters`` as a
    synonym; missing or null arguments mean no arguments.
    """
    if not isinstance(obj, dict):
        raise _ParseError(
            f'{where} must be a JSON object with "name" and "arguments", got {_json_type(obj)}.'
        )
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        got = "nothing" if name is None else _json_type(name)
        raise _ParseError(
            f'{where} needs "name": a non-empty string with the tool name, got {got}.'
        )
    arguments = obj["arguments"] if "arguments" in obj else obj.get("parameters")
    if arguments is None:
        arguments = {}
    elif isinstance(arguments, str):
        arguments = (
            _load_json(arguments, f'The "arguments" string of {where}') if arguments.strip() else {}
        )
    if not isinstance(arguments, dict):
        raise _ParseError(
            f'"arguments" of {where} must be a JSON object mapping parameter names to values, '
            f"got {_json_type(arguments)}."
        )
    call_id = obj.get("id")
    return ToolCall(
        name=name.strip(),
        arguments=arguments,
        id=call_id if isinstance(call_id, str) else None,
    )


def _tool_functions(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
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


def _example_call(functions: list[dict[str, Any]]) -> ToolCall:
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


def _json_tool_list(tools: Sequence[dict[str, Any]]) -> str:
    lines = [json.dumps(tool, ensure_ascii=False) for tool in tools]
    return "<tools>\n" + "\n".join(lines) + "\n</tools>"


def _signature_tool_list(
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


# --------------------------------------------------------------------------------------------
# Hermes: <tool_call>{"name": ..., "arguments": {...}}</tool_call>
# --------------------------------------------------------------------------------------------

_HERMES_EXPECTED = (
    'Expected format: <tool_call>{"name": "tool_name", "arguments": {"arg": "value"}}'
    "</tool_call>, one block per call; to finish, reply without any <tool_call> block."
)


class HermesParser(ToolCallParser):
    """Hermes/Qwen format: one ``<tool_call>`` block of JSON per call.

    Text outside the blocks is the ``content``; an optional leading ``<think>`` block is the
    ``thought``. A missing final ``</tool_call>`` is tolerated (it is usually the stop string).

    >>> parser = HermesParser()
    >>> text = 'Let me check.\\n<tool_call>{"name": "weather", "arguments": {"city": "Paris"}}'
    >>> action = parser.parse(text)
    >>> action.tool_calls[0].name, action.tool_calls[0].arguments, action.content
    ('weather', {'city': 'Paris'}, 'Let me check.')
    >>> print(parser.format_calls([ToolCall("weather", {"city": "Zürich"})]))
    <tool_call>
    {"name": "weather", "arguments": {"city": "Zürich"}}
    </tool_call>
    >>> print(parser.parse('<tool_call>{"name": "weather"]</tool_call>').error)
    ... # doctest: +ELLIPSIS
    <tool_call> block 1 is not valid JSON: Expecting ',' delimiter at line 1 column 19, near ...
    """

    name: ClassVar[str] = "hermes"

    def parse(self, text: str) -> ParsedAction:
        thought: str | None = None
        content = text.strip()
        try:
            thought, rest = _split_think(text)
            # Fast path: most final messages contain no tag at all.
            if _CALL_OPEN not in rest and _CALL_CLOSE not in rest:
                return ParsedAction(text, content=rest.strip(), thought=thought)
            bodies, outside = _extract_blocks(rest, _CALL_OPEN, _CALL_CLOSE)
            content = outside.strip()
            calls = []
            for index, body in enumerate(bodies, start=1):
                where = f"{_CALL_OPEN} block {index}"
                if _CALL_OPEN in body:
                    raise _ParseError(f"{where} is missing its closing {_CALL_CLOSE}.")
                calls.append(_tool_call_from_json(_load_json(body, where), where))
        except _ParseError as exc:
            return ParsedAction(
                text, content=content, thought=thought, error=f"{exc} {_HERMES_EXPECTED}"
            )
        return ParsedAction(text, tuple(calls), content=content, thought=thought)

    def format_calls(self, calls: Sequence[ToolCall], *, thought: str | None = None) -> str:
        blocks = [
            _CALL_OPEN
            + "\n"
            + _dump_json({"name": call.name, "arguments": call.arguments})
            + "\n"
            + _CALL_CLOSE
            for call in calls
        ]
        return _think_prefix(thought) + "\n".join(blocks)

    def format_answer(self, text: str, *, thought: str | None = None) -> str:
        if _CALL_OPEN in text or _CALL_CLOSE in text:
            raise ValueError(f"a final message cannot contain {_CALL_OPEN} or {_CALL_CLOSE}")
        return _think_prefix(thought) + text

    def instructions(self, tools: Sequence[dict[str, Any]]) -> str:
        example = self.format_calls([_example_call(_tool_functions(tools))])
        return (
            "# Tools\n\n"
            "You may call one or more tools to help with the task. "
            "The available tools, as JSON schemas:\n"
            f"{_json_tool_list(tools)}\n\n"
            "To call a tool, write a JSON object with its name and arguments inside "
            f"{_CALL_OPEN}{_CALL_CLOSE} tags, one block per call, for example:\n"
            f"{example}\n\n"
            f"When you are done, reply with your final message and no {_CALL_OPEN} block."
        )


# --------------------------------------------------------------------------------------------
# Think/answer: <think>...</think> then <tool_call>[...]</tool_call> or <answer>...</answer>
# --------------------------------------------------------------------------------------------

_THINK_ANSWER_EXPECTED = (
    "Expected format: <think>your reasoning</think> followed by EITHER "
    '<tool_call>[{"name": "tool_name", "arguments": {"arg": "value"}}]</tool_call> '
    "(a JSON list of calls) OR <answer>your final answer</answer>, not both."
)


class ThinkAnswerParser(ToolCallParser):
    """The Environment Tuning format: reasoning, then a JSON list of calls or a final answer.

    ``<think>...</think>`` is optional unless ``require_think`` is set. Exactly one of
    ``<tool_call>[...]</tool_call>`` (a single object is accepted too) and
    ``<answer>...</answer>`` must follow; an answer sets both ``answer`` and ``content``.

    >>> parser = ThinkAnswerParser()
    >>> action = parser.parse('<think>Add them.</think><tool_call>[{"name": "add", '
    ...                       '"arguments": {"a": 1, "b": 2}}]</tool_call>')
    >>> action.thought, [call.name for call in action.tool_calls]
    ('Add them.', ['add'])
    >>> final = parser.parse("<think>Done.</think><answer>3</answer>")
    >>> final.is_final, final.answer, final.content
    (True, '3', '3')
    >>> ThinkAnswerParser(require_think=True).parse("<answer>3</answer>").is_valid
    False
    """

    name: ClassVar[str] = "think_answer"

    def __init__(self, require_think: bool = False) -> None:
        self.require_think = require_think

    def parse(self, text: str) -> ParsedAction:
        thought: str | None = None
        content = text.strip()
        try:
            thought, rest = _split_think(text)
            if self.require_think and thought is None:
                raise _ParseError(f"Start with your reasoning inside {_THINK_OPEN}{_THINK_CLOSE}.")
            call_bodies, outside = _extract_blocks(rest, _CALL_OPEN, _CALL_CLOSE)
            answer_bodies, outside = _extract_blocks(outside, _ANSWER_OPEN, _ANSWER_CLOSE)
            content = outside.strip()
            if call_bodies and answer_bodies:
                raise _ParseError(
                    f"Found both {_CALL_OPEN} and {_ANSWER_OPEN}: either call tools or answer, "
                    "not both in one turn."
                )
            if len(call_bodies) > 1 or len(answer_bodies) > 1:
                raise _ParseError(
                    f"Found {len(call_bodies) or len(answer_bodies)} blocks; write exactly one "
                    f"(put all calls in one {_CALL_OPEN} list)."
                )
            if answer_bodies:
                answer = answer_bodies[0].strip()
                return ParsedAction(text, content=answer, thought=thought, answer=answer)
            if not call_bodies:
                raise _ParseError(
                    f"No {_CALL_OPEN} or {_ANSWER_OPEN} block found in {_snippet(rest)}."
                )
            body = call_bodies[0]
            where = f"The {_CALL_OPEN} block"
            if _CALL_OPEN in body:
                raise _ParseError(f"{where} is missing its closing {_CALL_CLOSE}.")
            payload = _load_json(body, where)
            items = payload if isinstance(payload, list) else [payload]
            if not items:
                raise _ParseError(
                    f"The {_CALL_OPEN} list is empty; to finish, use {_ANSWER_OPEN} instead."
                )
            calls = tuple(
                _tool_call_from_json(item, f"Call {index} in the {_CALL_OPEN} list")
                for index, item in enumerate(items, start=1)
            )
        except _ParseError as exc:
            return ParsedAction(
                text, content=content, thought=thought, error=f"{exc} {_THINK_ANSWER_EXPECTED}"
            )
        return ParsedAction(text, calls, content=content, thought=thought)

    def _prefix(self, thought: str | None) -> str:
        # An empty block keeps format_* output parseable when the parser demands reasoning.
        if thought is None and self.require_think:
            thought = ""
        return "" if thought is None else f"{_THINK_OPEN}{thought}{_THINK_CLOSE}\n"

    def format_calls(self, calls: Sequence[ToolCall], *, thought: str | None = None) -> str:
        if not calls:
            raise ValueError("the think_answer format has no empty call list; use format_answer")
        payload = [{"name": call.name, "arguments": call.arguments} for call in calls]
        body = _dump_json(payload)
        return f"{self._prefix(thought)}{_CALL_OPEN}{body}{_CALL_CLOSE}"

    def format_answer(self, text: str, *, thought: str | None = None) -> str:
        return f"{self._prefix(thought)}{_ANSWER_OPEN}{text}{_ANSWER_CLOSE}"

    def instructions(self, tools: Sequence[dict[str, Any]]) -> str:
        example_call = self.format_calls(
            [_example_call(_tool_functions(tools))], thought="reasoning about what to do next"
        )
        example_answer = self.format_answer("your final answer", thought="reasoning")
        think_rule = "must" if self.require_think else "should"
        return (
            "# Tools\n\n"
            "You may call tools to help with the task. The available tools, as JSON schemas:\n"
            f"{_json_tool_list(tools)}\n\n"
            f"Each reply {think_rule} start with your reasoning inside "
            f"{_THINK_OPEN}{_THINK_CLOSE}. Then EITHER call tools with a JSON list of "
            f"calls inside {_CALL_OPEN}{_CALL_CLOSE}:\n"
            f"{example_call}\n"
            f"OR give your final answer inside {_ANSWER_OPEN}{_ANSWER_CLOSE}:\n"
            f"{example_answer}\n"
            f"Never write both {_CALL_OPEN} and {_ANSWER_OPEN} in the same reply."
        )


# --------------------------------------------------------------------------------------------
# Python: [f(a=1), g(b='x')]
# --------------------------------------------------------------------------------------------

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
        return _TAG_START.sub(r"\\x3c", repr(value))
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
            thought, rest = _split_think(text)
            source = content = rest.strip()
            if source.startswith("```") and source.endswith("```") and len(source) >= 6:
                # Drop the fence lines; the first line may carry a language tag (```python).
                first_newline = source.find("\n")
                source = source[first_newline + 1 : -3].strip() if first_newline != -1 else ""
            if not source.startswith("[") and not _PYTHON_CALL_START.match(source):
                return ParsedAction(text, content=content, thought=thought)
            calls = self._parse_calls(source)
        except _ParseError as exc:
            return ParsedAction(
                text, content=content, thought=thought, error=f"{exc} {_PYTHON_EXPECTED}"
            )
        return ParsedAction(text, calls, thought=thought)

    def _parse_calls(self, source: str) -> tuple[ToolCall, ...]:
        if len(source) > _PYTHON_MAX_CHARS:
            raise _ParseError(
                f"The call list is too long ({len(source)} characters, at most "
                f"{_PYTHON_MAX_CHARS})."
            )
        try:
            expression = ast.parse(source, mode="eval").body
        except SyntaxError as exc:
            line = (exc.text or "").strip()
            where = f" near {_snippet(line)}" if line else ""
            raise _ParseError(
                f"Could not parse the function calls: {exc.msg} (line {exc.lineno}, column "
                f"{exc.offset}){where}."
            ) from None
        except (RecursionError, MemoryError, ValueError) as exc:
            # ValueError covers e.g. lone surrogates, which cannot be encoded for the parser.
            raise _ParseError(f"Could not parse the function calls: {exc}.") from None
        if isinstance(expression, ast.Call):
            call_nodes: list[ast.expr] = [expression]
        elif isinstance(expression, ast.List):
            call_nodes = expression.elts
        else:
            raise _ParseError(f"Expected a list of function calls, got {_snippet(source)}.")
        return tuple(
            self._call_from_node(node, index, source)
            for index, node in enumerate(call_nodes, start=1)
        )

    def _call_from_node(self, node: ast.expr, index: int, source: str) -> ToolCall:
        segment = ast.get_source_segment(source, node) or ""
        if not isinstance(node, ast.Call):
            raise _ParseError(
                f"Item {index} of the list is not a function call: {_snippet(segment)}."
            )
        name = _dotted_name(node.func)
        if name is None:
            raise _ParseError(
                f"Call {index} must call a function by name (like f or module.f): "
                f"{_snippet(segment)}."
            )
        arguments: dict[str, Any] = {}
        for parameter, value_node in self._bind_positional(node, name, index):
            arguments[parameter] = self._literal(value_node, parameter, name, index, source)
        for argument in node.keywords:
            if argument.arg is None:
                raise _ParseError(
                    f"Call {index} ({name}) uses **-unpacking: write each argument as param=value."
                )
            if argument.arg in arguments:
                if argument.arg in self.parameter_order.get(name, ())[: len(node.args)]:
                    raise _ParseError(
                        f"Call {index} ({name}) gives {argument.arg!r} both by position and by "
                        f"name: {self._signature(name)}."
                    )
                raise _ParseError(f"Call {index} ({name}) repeats the argument {argument.arg!r}.")
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
            raise _ParseError(
                f"Call {index} ({name}) has positional arguments: use keyword arguments "
                f"instead, e.g. {name}(param=value)."
            )
        if len(node.args) > len(parameters):
            raise _ParseError(
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
            raise _ParseError(
                f"Argument {parameter!r} of call {index} ({name}) is not a literal "
                f"value: {_snippet(value_source)}. Use only strings, numbers, True/False/None, "
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
        return _think_prefix(thought) + "[" + ", ".join(rendered) + "]"

    def format_answer(self, text: str, *, thought: str | None = None) -> str:
        stripped = text.strip()
        if stripped.startswith("[") or _PYTHON_CALL_START.match(stripped):
            raise ValueError(
                f"{_snippet(text)} would be read as a function call list, not a final message"
            )
        return _think_prefix(thought) + text

    def instructions(self, tools: Sequence[dict[str, Any]]) -> str:
        functions = _tool_functions(tools)
        example = self.format_calls([_example_call(functions)])
        return (
            "# Tools\n\n"
            "You may call these functions:\n"
            f"{_signature_tool_list(functions, '(', ')')}\n\n"
            "To call functions, reply with only a Python list of calls, using keyword arguments "
            "and literal values (strings, numbers, True/False/None, lists, dicts), for example:\n"
            f"{example}\n\n"
            "When you are done, reply with plain text instead of a list of calls."
        )


# --------------------------------------------------------------------------------------------
# ReAct: Thought: ... / Action: Name[arguments]
# --------------------------------------------------------------------------------------------

_REACT_EXPECTED = (
    "Expected format: an optional 'Thought: ...' line, then exactly one "
    "'Action: ToolName[arguments]', e.g. 'Action: search[red shoes]' or "
    "'Action: FlightSearch[New York, London, 2022-03-16]'."
)
# Labels may be numbered ("Action 2:") as in the original ReAct prompts, any case.
_REACT_ACTION_LABEL = re.compile(r"^[ \t]*(?i:action)(?:[ \t]*\d+)?[ \t]*:[ \t]*", re.MULTILINE)
_REACT_THOUGHT_LABEL = re.compile(r"^[ \t]*(?i:thought)(?:[ \t]*\d+)?[ \t]*:", re.MULTILINE)
# Where an action's text ends: the next labelled section (often a hallucinated Observation).
_REACT_SECTION_LABEL = re.compile(
    r"^[ \t]*(?i:thought|action|observation)(?:[ \t]*\d+)?[ \t]*:", re.MULTILINE
)
# `Name[`. The name is matched up to the bracket and right-stripped afterwards: a trailing `\s*`
# would overlap with the spaces the name may contain and backtrack quadratically on long input.
_REACT_NAME_BRACKET = re.compile(r"([A-Za-z_][A-Za-z0-9_ ]*)\[")
_REACT_NAME = re.compile(r"[A-Za-z_](?:[A-Za-z0-9_ ]*[A-Za-z0-9_])?")


class ReActParser(ToolCallParser):
    """ReAct format: ``Thought: ...`` then one ``Action: Name[arguments]`` per turn.

    The whole output may also be just ``Name[arguments]`` (WebShop style). The arguments are
    everything up to the action's last ``]``, kept unsplit in ``ToolCall.raw_arguments``. With
    ``answer_action`` set (e.g. ``"Finish"``), that action ends the episode: it yields a final
    message whose ``answer`` and ``content`` are its argument text.

    >>> parser = ReActParser(answer_action="Finish")
    >>> action = parser.parse("Thought: I need flights.\\n"
    ...                       "Action: FlightSearch[New York, London, 2022-03-16]")
    >>> action.thought, action.tool_calls[0].name, action.tool_calls[0].raw_arguments
    ('I need flights.', 'FlightSearch', 'New York, London, 2022-03-16')
    >>> parser.parse("click[Buy Now]").tool_calls[0].raw_arguments
    'Buy Now'
    >>> final = parser.parse("Action: Finish[Paris]")
    >>> final.is_final, final.answer
    (True, 'Paris')
    >>> parser.format_calls([ToolCall("search", raw_arguments="red shoes")], thought="Look.")
    'Thought: Look.\\nAction: search[red shoes]'
    """

    name: ClassVar[str] = "react"

    def __init__(self, answer_action: str | None = None) -> None:
        if answer_action is not None and not _REACT_NAME.fullmatch(answer_action):
            raise ValueError(f"{answer_action!r} is not a valid ReAct action name")
        self.answer_action = answer_action
        self._answer_key = None if answer_action is None else answer_action.casefold()

    def parse(self, text: str) -> ParsedAction:
        thought: str | None = None
        labels = list(_REACT_ACTION_LABEL.finditer(text))
        if len(labels) > 1:
            return ParsedAction(
                text,
                content=text.strip(),
                error=f"Found {len(labels)} 'Action:' lines; write exactly one action per turn "
                "and wait for its observation. " + _REACT_EXPECTED,
            )
        if labels:
            label = labels[0]
            section = _REACT_SECTION_LABEL.search(text, label.end())
            action_end = len(text) if section is None else section.start()
            action_text = text[label.end() : action_end].strip()
            thought_label = _REACT_THOUGHT_LABEL.search(text, 0, label.start())
            if thought_label is None:
                content = text[: label.start()] + "\n" + text[action_end:]
            else:
                thought = text[thought_label.end() : label.start()].strip()
                content = text[: thought_label.start()] + "\n" + text[action_end:]
        else:
            action_text = text.strip()
            content = ""
            if not (_REACT_NAME_BRACKET.match(action_text) and action_text.endswith("]")):
                return ParsedAction(
                    text, content=action_text, error="No action found. " + _REACT_EXPECTED
                )

        name_match = _REACT_NAME_BRACKET.match(action_text)
        closing = action_text.rfind("]")
        if name_match is None or closing < name_match.end():
            problem = (
                "is not of the form ToolName[arguments]"
                if name_match is None
                else "is missing its closing ]"
            )
            return ParsedAction(
                text,
                content=content.strip(),
                thought=thought,
                error=f"The action {_snippet(action_text)} {problem}. " + _REACT_EXPECTED,
            )
        name = name_match.group(1).rstrip()
        raw_arguments = action_text[name_match.end() : closing].strip()
        # Text after the action's last bracket is not part of the call: keep it as content.
        content = (content + "\n" + action_text[closing + 1 :]).strip()
        if self._answer_key is not None and name.casefold() == self._answer_key:
            return ParsedAction(text, content=raw_arguments, thought=thought, answer=raw_arguments)
        call = ToolCall(name=name, raw_arguments=raw_arguments)
        return ParsedAction(text, (call,), content=content, thought=thought)

    @staticmethod
    def _action_line(name: str, raw_arguments: str, thought: str | None) -> str:
        if not _REACT_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid ReAct action name")
        action = f"Action: {name}[{raw_arguments}]"
        return action if thought is None else f"Thought: {thought}\n{action}"

    def format_calls(self, calls: Sequence[ToolCall], *, thought: str | None = None) -> str:
        if len(calls) != 1:
            raise ValueError(f"the react format takes exactly one call per turn, got {len(calls)}")
        call = calls[0]
        if call.raw_arguments is not None:
            raw_arguments = call.raw_arguments
        else:
            raw_arguments = ", ".join(
                value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                for value in call.arguments.values()
            )
        return self._action_line(call.name, raw_arguments, thought)

    def format_answer(self, text: str, *, thought: str | None = None) -> str:
        if self.answer_action is None:
            raise ValueError(
                "this ReActParser has no answer action; create it with answer_action='Finish' "
                "(or the environment's final action) to write final answers"
            )
        return self._action_line(self.answer_action, text, thought)

    def instructions(self, tools: Sequence[dict[str, Any]]) -> str:
        functions = _tool_functions(tools)
        example = self.format_calls([_example_call(functions)], thought="what to do next and why")
        text = (
            "# Actions\n\n"
            "Available actions:\n"
            f"{_signature_tool_list(functions, '[', ']')}\n\n"
            "Reply with a short thought and then exactly one action per turn, "
            "then wait for the observation:\n"
            f"{example}"
        )
        if self.answer_action is not None:
            text += (
                "\n\nWhen you have the final answer, finish with:\n"
                f"{self.format_answer('your final answer')}"
            )
        return text


for _parser_cls in (HermesParser, ThinkAnswerParser, PythonCallParser, ReActParser):
    register_parser(_parser_cls.name, _parser_cls)
del _parser_cls
