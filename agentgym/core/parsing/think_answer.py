"""The ``think_answer`` format: ``<think>...</think>`` then ``<tool_call>[...]</tool_call>``
or ``<answer>...</answer>`` (the Environment Tuning format)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from agentgym.core.parsing.base import (
    ParsedAction,
    ToolCall,
    ToolCallParser,
)
from agentgym.core.parsing.common import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    CALL_CLOSE,
    CALL_OPEN,
    THINK_CLOSE,
    THINK_OPEN,
    ParseError,
    dump_json,
    example_tool_call,
    extract_blocks,
    json_tool_list,
    load_json,
    snippet,
    split_think,
    tool_call_from_json,
    tool_functions,
)

__all__ = ["ThinkAnswerParser"]


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
            thought, rest = split_think(text)
            if self.require_think and thought is None:
                raise ParseError(f"Start with your reasoning inside {THINK_OPEN}{THINK_CLOSE}.")
            call_bodies, outside = extract_blocks(rest, CALL_OPEN, CALL_CLOSE)
            answer_bodies, outside = extract_blocks(outside, ANSWER_OPEN, ANSWER_CLOSE)
            content = outside.strip()
            if call_bodies and answer_bodies:
                raise ParseError(
                    f"Found both {CALL_OPEN} and {ANSWER_OPEN}: either call tools or answer, "
                    "not both in one turn."
                )
            if len(call_bodies) > 1 or len(answer_bodies) > 1:
                raise ParseError(
                    f"Found {len(call_bodies) or len(answer_bodies)} blocks; write exactly one "
                    f"(put all calls in one {CALL_OPEN} list)."
                )
            if answer_bodies:
                answer = answer_bodies[0].strip()
                return ParsedAction(text, content=answer, thought=thought, answer=answer)
            if not call_bodies:
                raise ParseError(f"No {CALL_OPEN} or {ANSWER_OPEN} block found in {snippet(rest)}.")
            body = call_bodies[0]
            where = f"The {CALL_OPEN} block"
            if CALL_OPEN in body:
                raise ParseError(f"{where} is missing its closing {CALL_CLOSE}.")
            payload = load_json(body, where)
            items = payload if isinstance(payload, list) else [payload]
            if not items:
                raise ParseError(
                    f"The {CALL_OPEN} list is empty; to finish, use {ANSWER_OPEN} instead."
                )
            calls = tuple(
                tool_call_from_json(item, f"Call {index} in the {CALL_OPEN} list")
                for index, item in enumerate(items, start=1)
            )
        except ParseError as exc:
            return ParsedAction(
                text, content=content, thought=thought, error=f"{exc} {_THINK_ANSWER_EXPECTED}"
            )
        return ParsedAction(text, calls, content=content, thought=thought)

    def _prefix(self, thought: str | None) -> str:
        # An empty block keeps format_* output parseable when the parser demands reasoning.
        if thought is None and self.require_think:
            thought = ""
        return "" if thought is None else f"{THINK_OPEN}{thought}{THINK_CLOSE}\n"

    def format_calls(self, calls: Sequence[ToolCall], *, thought: str | None = None) -> str:
        if not calls:
            raise ValueError("the think_answer format has no empty call list; use format_answer")
        payload = [{"name": call.name, "arguments": call.arguments} for call in calls]
        body = dump_json(payload)
        return f"{self._prefix(thought)}{CALL_OPEN}{body}{CALL_CLOSE}"

    def format_answer(self, text: str, *, thought: str | None = None) -> str:
        return f"{self._prefix(thought)}{ANSWER_OPEN}{text}{ANSWER_CLOSE}"

    def instructions(self, tools: Sequence[dict[str, Any]]) -> str:
        example_call = self.format_calls(
            [example_tool_call(tool_functions(tools))], thought="reasoning about what to do next"
        )
        example_answer = self.format_answer("your final answer", thought="reasoning")
        think_rule = "must" if self.require_think else "should"
        return (
            "# Tools\n\n"
            "You may call tools to help with the task. The available tools, as JSON schemas:\n"
            f"{json_tool_list(tools)}\n\n"
            f"Each reply {think_rule} start with your reasoning inside "
            f"{THINK_OPEN}{THINK_CLOSE}. Then EITHER call tools with a JSON list of "
            f"calls inside {CALL_OPEN}{CALL_CLOSE}:\n"
            f"{example_call}\n"
            f"OR give your final answer inside {ANSWER_OPEN}{ANSWER_CLOSE}:\n"
            f"{example_answer}\n"
            f"Never write both {CALL_OPEN} and {ANSWER_OPEN} in the same reply."
        )
