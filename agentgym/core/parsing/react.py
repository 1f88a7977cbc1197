"""The ``react`` format: ``Thought: ...`` then ``Action: Name[arguments]`` (WebShop,
TravelPlanner)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from agentgym.core.parsing.base import (
    ParsedAction,
    ToolCall,
    ToolCallParser,
)
from agentgym.core.parsing.common import (
    example_tool_call,
    signature_tool_list,
    snippet,
    tool_functions,
)

__all__ = ["ReActParser"]


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
                error=f"The action {snippet(action_text)} {problem}. " + _REACT_EXPECTED,
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
        functions = tool_functions(tools)
        example = self.format_calls(
            [example_tool_call(functions)], thought="what to do next and why"
        )
        text = (
            "# Actions\n\n"
            "Available actions:\n"
            f"{signature_tool_list(functions, '[', ']')}\n\n"
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
