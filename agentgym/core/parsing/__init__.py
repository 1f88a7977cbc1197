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

from agentgym.core.parsing.base import (
    ParsedAction,
    ToolCall,
    ToolCallParser,
    get_parser,
    list_parsers,
    register_parser,
)
from agentgym.core.parsing.hermes import HermesParser
from agentgym.core.parsing.python import PythonCallParser
from agentgym.core.parsing.react import ReActParser
from agentgym.core.parsing.think_answer import ThinkAnswerParser

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

for _parser_cls in (HermesParser, ThinkAnswerParser, PythonCallParser, ReActParser):
    register_parser(_parser_cls.name, _parser_cls)
del _parser_cls
