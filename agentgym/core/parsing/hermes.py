"""The ``hermes`` format: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from agentgym.core.parsing.base import (
    ParsedAction,
    ToolCall,
    ToolCallParser,
)
from agentgym.core.parsing.common import (
    CALL_CLOSE,
    CALL_OPEN,
    ParseError,
    dump_json,
    example_tool_call,
    extract_blocks,
    json_tool_list,
    load_json,
    split_think,
    think_prefix,
    tool_call_from_json,
    tool_functions,
)

__all__ = ["HermesParser"]


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
            thought, rest = split_think(text)
            # Fast path: most final messages contain no tag at all.
            if CALL_OPEN not in rest and CALL_CLOSE not in rest:
                return ParsedAction(text, content=rest.strip(), thought=thought)
            bodies, outside = extract_blocks(rest, CALL_OPEN, CALL_CLOSE)
            content = outside.strip()
            calls = []
            for index, body in enumerate(bodies, start=1):
                where = f"{CALL_OPEN} block {index}"
                if CALL_OPEN in body:
                    raise ParseError(f"{where} is missing its closing {CALL_CLOSE}.")
                calls.append(tool_call_from_json(load_json(body, where), where))
        except ParseError as exc:
            return ParsedAction(
                text, content=content, thought=thought, error=f"{exc} {_HERMES_EXPECTED}"
            )
        return ParsedAction(text, tuple(calls), content=content, thought=thought)

    def format_calls(self, calls: Sequence[ToolCall], *, thought: str | None = None) -> str:
        blocks = [
            CALL_OPEN
            + "\n"
            + dump_json({"name": call.name, "arguments": call.arguments})
            + "\n"
            + CALL_CLOSE
            for call in calls
        ]
        return think_prefix(thought) + "\n".join(blocks)

    def format_answer(self, text: str, *, thought: str | None = None) -> str:
        if CALL_OPEN in text or CALL_CLOSE in text:
            raise ValueError(f"a final message cannot contain {CALL_OPEN} or {CALL_CLOSE}")
        return think_prefix(thought) + text

    def instructions(self, tools: Sequence[dict[str, Any]]) -> str:
        example = self.format_calls([example_tool_call(tool_functions(tools))])
        return (
            "# Tools\n\n"
            "You may call one or more tools to help with the task. "
            "The available tools, as JSON schemas:\n"
            f"{json_tool_list(tools)}\n\n"
            "To call a tool, write a JSON object with its name and arguments inside "
            f"{CALL_OPEN}{CALL_CLOSE} tags, one block per call, for example:\n"
            f"{example}\n\n"
            f"When you are done, reply with your final message and no {CALL_OPEN} block."
        )
