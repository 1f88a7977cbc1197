"""Tool-call data types (:class:`ToolCall`, :class:`ParsedAction`), the parser interface
and the registry of parsers by name."""

from __future__ import annotations

import difflib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "ParsedAction",
    "ToolCall",
    "ToolCallParser",
    "get_parser",
    "list_parsers",
    "register_parser",
]


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

    >>> from agentgym.core.parsing import HermesParser
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
