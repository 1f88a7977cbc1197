"""Tests for agentgym.core.parsing: the four built-in tool-call formats and the registry."""

from __future__ import annotations

import json
import keyword
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentgym.core.parsing import (
    HermesParser,
    ParsedAction,
    PythonCallParser,
    ReActParser,
    ThinkAnswerParser,
    ToolCall,
    ToolCallParser,
    get_parser,
    list_parsers,
    register_parser,
)
from agentgym.core.parsing import base as parsing_base

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Every built-in format, including the constructor variants, so that the "never raises"
# properties cover all code paths.
ALL_PARSERS: list[ToolCallParser] = [
    HermesParser(),
    ThinkAnswerParser(),
    ThinkAnswerParser(require_think=True),
    PythonCallParser(),
    ReActParser(),
    ReActParser(answer_action="Finish"),
]
PARSER_IDS = [f"{p.name}-{i}" for i, p in enumerate(ALL_PARSERS)]

# One value of every JSON type, nested, with unicode.
EVERY_JSON_TYPE: dict[str, Any] = {
    "string": "héllo wörld ✓ 日本語 🙂",
    "integer": -42,
    "big_integer": 2**62,
    "number": 3.25,
    "small_number": -1.5e-7,
    "true": True,
    "false": False,
    "null": None,
    "array": [1, "two", [3.0, None], {"four": 4}],
    "object": {"nested": {"deeper": ["x", False]}, "empty": {}},
    "empty_array": [],
    "empty_string": "",
    "quotes": 'it\'s "quoted" and \\ backslashed\nnewline',
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name."},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the shop.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
}


def calls_summary(action: ParsedAction) -> list[tuple[str, dict[str, Any]]]:
    return [(call.name, call.arguments) for call in action.tool_calls]


def assert_error(action: ParsedAction, *phrases: str) -> None:
    """The action is a parse error, carries no calls, and its message mentions every phrase."""
    assert action.error is not None, action
    assert not action.is_valid
    assert not action.is_final
    assert action.tool_calls == ()
    for phrase in phrases:
        assert phrase in action.error, (phrase, action.error)


# --------------------------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------------------------


class TestDataTypes:
    def test_to_openai_with_id(self) -> None:
        call = ToolCall("get_weather", {"city": "Zürich", "days": 2}, id="call_7")
        message = call.to_openai()
        assert message == {
            "id": "call_7",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Zürich", "days": 2}'},
        }
        assert json.loads(message["function"]["arguments"]) == call.arguments

    def test_to_openai_without_id_omits_it(self) -> None:
        message = ToolCall("noop").to_openai()
        assert "id" not in message
        assert message["function"]["arguments"] == "{}"

    def test_tool_call_defaults(self) -> None:
        call = ToolCall("search", raw_arguments="red shoes")
        assert call.arguments == {}
        assert call.id is None

    def test_parsed_action_properties(self) -> None:
        final = ParsedAction("hi", content="hi")
        assert final.is_valid and final.is_final
        with_call = ParsedAction("x", (ToolCall("f"),))
        assert with_call.is_valid and not with_call.is_final
        broken = ParsedAction("x", error="bad")
        assert not broken.is_valid and not broken.is_final

    def test_parsed_action_converts_list_to_tuple(self) -> None:
        action = ParsedAction("x", [ToolCall("f")])  # type: ignore[arg-type]
        assert action.tool_calls == (ToolCall("f"),)

    def test_frozen(self) -> None:
        with pytest.raises(AttributeError):
            ToolCall("f").name = "g"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


class TestRegistry:
    def test_builtins_listed(self) -> None:
        assert list_parsers() == ["hermes", "python", "react", "think_answer"]

    @pytest.mark.parametrize(
        ("name", "cls"),
        [
            ("hermes", HermesParser),
            ("think_answer", ThinkAnswerParser),
            ("python", PythonCallParser),
            ("react", ReActParser),
        ],
    )
    def test_get_parser_by_name(self, name: str, cls: type[ToolCallParser]) -> None:
        parser = get_parser(name)
        assert type(parser) is cls
        assert parser.name == name

    def test_instance_passes_through(self) -> None:
        parser = ReActParser(answer_action="Finish")
        assert get_parser(parser) is parser

    def test_unknown_name_lists_valid_names_and_suggests(self) -> None:
        with pytest.raises(ValueError) as excinfo:
            get_parser("hermez")
        message = str(excinfo.value)
        for name in list_parsers():
            assert name in message
        assert "Did you mean 'hermes'?" in message

    def test_unknown_name_without_close_match(self) -> None:
        with pytest.raises(ValueError, match="valid names: hermes, python, react, think_answer"):
            get_parser("zzzzzzzz")

    def test_wrong_type(self) -> None:
        with pytest.raises(TypeError):
            get_parser(42)  # type: ignore[arg-type]

    def test_register_custom_and_duplicate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Work on a copy so the global registry is untouched for other tests.
        monkeypatch.setattr(parsing_base, "_PARSERS", dict(parsing_base._PARSERS))

        class Shout(HermesParser):
            name = "shout"

        register_parser("shout", Shout)
        assert "shout" in list_parsers()
        assert isinstance(get_parser("shout"), Shout)
        with pytest.raises(ValueError, match="already registered"):
            register_parser("shout", Shout)
        with pytest.raises(ValueError, match="already registered"):
            register_parser("hermes", Shout)

    def test_register_rejects_non_parser(self) -> None:
        with pytest.raises(TypeError):
            register_parser("nope", dict)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Hermes
# --------------------------------------------------------------------------------------------

HERMES_FORMAT = '<tool_call>{"name": "tool_name", "arguments": {"arg": "value"}}</tool_call>'


class TestHermes:
    parser = HermesParser()

    def test_single_call(self) -> None:
        text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
        action = self.parser.parse(text)
        assert action.is_valid and not action.is_final
        assert calls_summary(action) == [("get_weather", {"city": "Paris"})]
        assert action.text == text
        assert action.content == ""
        assert action.thought is None and action.answer is None

    def test_several_calls_and_content(self) -> None:
        text = (
            "I'll check both cities.\n"
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Tokyo"}}</tool_call>\n'
            "Done."
        )
        action = self.parser.parse(text)
        assert calls_summary(action) == [
            ("get_weather", {"city": "Paris"}),
            ("get_weather", {"city": "Tokyo"}),
        ]
        assert action.content.startswith("I'll check both cities.")
        assert action.content.endswith("Done.")
        assert "<tool_call>" not in action.content

    def test_every_json_type_and_unicode(self) -> None:
        body = json.dumps({"name": "f", "arguments": EVERY_JSON_TYPE}, ensure_ascii=False)
        action = self.parser.parse(f"<tool_call>{body}</tool_call>")
        assert calls_summary(action) == [("f", EVERY_JSON_TYPE)]

    def test_ascii_escaped_unicode(self) -> None:
        body = json.dumps({"name": "f", "arguments": {"s": "日本 🙂"}}, ensure_ascii=True)
        assert self.parser.parse(f"<tool_call>{body}</tool_call>").tool_calls[0].arguments == {
            "s": "日本 🙂"
        }

    def test_arguments_as_json_string(self) -> None:
        text = '<tool_call>{"name": "f", "arguments": "{\\"a\\": [1, 2]}"}</tool_call>'
        assert calls_summary(self.parser.parse(text)) == [("f", {"a": [1, 2]})]

    def test_parameters_synonym(self) -> None:
        text = '<tool_call>{"name": "f", "parameters": {"a": 1}}</tool_call>'
        assert calls_summary(self.parser.parse(text)) == [("f", {"a": 1})]

    @pytest.mark.parametrize(
        "arguments", ['"arguments": {}', '"arguments": null', '"arguments": ""', ""]
    )
    def test_no_arguments(self, arguments: str) -> None:
        sep = ", " if arguments else ""
        text = f'<tool_call>{{"name": "noop"{sep}{arguments}}}</tool_call>'
        assert calls_summary(self.parser.parse(text)) == [("noop", {})]

    def test_missing_final_closing_tag_tolerated(self) -> None:
        text = 'Sure.\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n'
        action = self.parser.parse(text)
        assert calls_summary(action) == [("f", {"a": 1})]
        assert action.content == "Sure."

    def test_id_kept(self) -> None:
        text = '<tool_call>{"name": "f", "arguments": {}, "id": "call_1"}</tool_call>'
        assert self.parser.parse(text).tool_calls[0].id == "call_1"

    def test_think_block_is_thought(self) -> None:
        text = '<think>\nNeed data.\n</think>\n<tool_call>{"name": "f"}</tool_call>'
        action = self.parser.parse(text)
        assert action.thought == "Need data."
        assert calls_summary(action) == [("f", {})]
        assert action.content == ""

    def test_think_opened_by_chat_template(self) -> None:
        # Qwen3-style: the template already wrote <think>, the output starts inside it.
        action = self.parser.parse("Need data.</think>\n\nThe answer is 4.")
        assert action.thought == "Need data."
        assert action.is_final and action.content == "The answer is 4."

    def test_tool_call_inside_thought_is_ignored(self) -> None:
        action = self.parser.parse("<think>maybe <tool_call>{</tool_call>?</think>No calls.")
        assert action.is_final
        assert action.content == "No calls."

    def test_final_message(self) -> None:
        action = self.parser.parse("  The weather in Paris is sunny.\n")
        assert action.is_final
        assert action.content == "The weather in Paris is sunny."
        assert action.tool_calls == ()

    def test_empty_output_is_final(self) -> None:
        action = self.parser.parse("")
        assert action.is_final and action.content == ""

    @pytest.mark.parametrize(
        ("text", "phrases"),
        [
            (
                '<tool_call>{"name": "f", "arguments": {"a": 1,}}</tool_call>',
                ["not valid JSON", "line 1 column"],
            ),
            ("<tool_call>not json</tool_call>", ["not valid JSON", "Expecting value"]),
            ('<tool_call>["f", {"a": 1}]</tool_call>', ["must be a JSON object", "array"]),
            ('<tool_call>"f"</tool_call>', ["must be a JSON object", "a string"]),
            ('<tool_call>{"arguments": {"a": 1}}</tool_call>', ['needs "name"', "got nothing"]),
            ('<tool_call>{"name": 3}</tool_call>', ['needs "name"', "a number"]),
            ('<tool_call>{"name": "  "}</tool_call>', ['needs "name"']),
            (
                '<tool_call>{"name": "f", "arguments": [1, 2]}</tool_call>',
                ['"arguments"', "must be a JSON object"],
            ),
            ('<tool_call>{"name": "f", "arguments": 5}</tool_call>', ['"arguments"', "a number"]),
            (
                '<tool_call>{"name": "f", "arguments": "{bad"}</tool_call>',
                ['"arguments" string', "not valid JSON"],
            ),
            (
                '<tool_call>{"name": "f", "arguments": "[1]"}</tool_call>',
                ['"arguments"', "an array"],
            ),
            (
                '<tool_call>{"name": "f", "arguments": {"x": NaN}}</tool_call>',
                ["NaN is not allowed"],
            ),
            ('{"name": "f", "arguments": {}}</tool_call>', ["without a matching <tool_call>"]),
            (
                '<tool_call>{"name": "f"}\n<tool_call>{"name": "g"}</tool_call>',
                ["block 1 is missing its closing"],
            ),
            ('<tool_call>{"name": "f"}</tool_call><tool_call>{"name": 1}</tool_call>', ["block 2"]),
            ("<think>I am still thinking", ["<think> block is not closed"]),
            ("<tool_call></tool_call>", ["not valid JSON"]),
        ],
    )
    def test_malformed(self, text: str, phrases: list[str]) -> None:
        action = self.parser.parse(text)
        assert_error(action, *phrases, "Expected format", HERMES_FORMAT)

    def test_json_error_quotes_the_problem(self) -> None:
        action = self.parser.parse(
            '<tool_call>{"name": "f", "arguments": {"a": 1 "b": 2}}</tool_call>'
        )
        assert_error(action, "Expecting ',' delimiter", "line 1 column 36", '"a": 1 "b": 2')

    def test_partial_calls_not_returned_on_error(self) -> None:
        text = '<tool_call>{"name": "ok"}</tool_call><tool_call>{oops}</tool_call>'
        assert_error(self.parser.parse(text), "block 2")

    def test_format_calls_layout(self) -> None:
        text = self.parser.format_calls([ToolCall("a", {"x": "é"}), ToolCall("b")], thought="Plan.")
        assert text == (
            "<think>\nPlan.\n</think>\n\n"
            '<tool_call>\n{"name": "a", "arguments": {"x": "é"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "b", "arguments": {}}\n</tool_call>'
        )

    def test_round_trip_every_json_type(self) -> None:
        calls = [ToolCall("f", EVERY_JSON_TYPE), ToolCall("g", {"x": 1})]
        action = self.parser.parse(self.parser.format_calls(calls, thought="why"))
        assert calls_summary(action) == [(c.name, c.arguments) for c in calls]
        assert action.thought == "why"

    def test_round_trip_values_that_look_like_tags(self) -> None:
        arguments = {"html": "</tool_call><think>x</think><answer>", "k</think>": "<tool_call>"}
        action = self.parser.parse(self.parser.format_calls([ToolCall("f", arguments)]))
        assert calls_summary(action) == [("f", arguments)]

    def test_format_answer(self) -> None:
        text = self.parser.format_answer("It is sunny.", thought="Checked.")
        action = self.parser.parse(text)
        assert action.is_final
        assert action.content == "It is sunny."
        assert action.thought == "Checked."
        with pytest.raises(ValueError):
            self.parser.format_answer("<tool_call>")

    def test_instructions(self) -> None:
        text = self.parser.instructions([WEATHER_TOOL, SEARCH_TOOL])
        assert "<tools>" in text and "</tools>" in text
        assert json.dumps(WEATHER_TOOL) in text
        assert "search" in text
        assert (
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "...", "unit": "celsius"}}'
            in text
        )


# --------------------------------------------------------------------------------------------
# Think/answer
# --------------------------------------------------------------------------------------------

THINK_ANSWER_PHRASES = ("Expected format", "<think>", "<tool_call>[", "<answer>")


class TestThinkAnswer:
    parser = ThinkAnswerParser()

    def test_single_call(self) -> None:
        text = (
            "<think>I need the weather.</think>\n"
            '<tool_call>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</tool_call>'
        )
        action = self.parser.parse(text)
        assert calls_summary(action) == [("get_weather", {"city": "Paris"})]
        assert action.thought == "I need the weather."
        assert action.answer is None
        assert action.is_valid and not action.is_final

    def test_several_calls(self) -> None:
        text = (
            '<think>two</think><tool_call>[{"name": "a", "arguments": {"x": 1}}, '
            '{"name": "b", "parameters": {"y": "z"}}, {"name": "c", "arguments": "{}"}]</tool_call>'
        )
        assert calls_summary(self.parser.parse(text)) == [
            ("a", {"x": 1}),
            ("b", {"y": "z"}),
            ("c", {}),
        ]

    def test_single_object_accepted(self) -> None:
        text = '<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>'
        assert calls_summary(self.parser.parse(text)) == [("a", {"x": 1})]

    def test_every_json_type_and_unicode(self) -> None:
        body = json.dumps([{"name": "f", "arguments": EVERY_JSON_TYPE}], ensure_ascii=False)
        action = self.parser.parse(f"<think>ok</think><tool_call>{body}</tool_call>")
        assert calls_summary(action) == [("f", EVERY_JSON_TYPE)]

    def test_missing_final_closing_tag_tolerated(self) -> None:
        action = self.parser.parse('<think>t</think><tool_call>[{"name": "a"}]')
        assert calls_summary(action) == [("a", {})]
        final = self.parser.parse("<think>t</think><answer>42")
        assert final.is_final and final.answer == "42"

    def test_answer(self) -> None:
        action = self.parser.parse("<think>Easy.</think>\n<answer>\n  Paris, 21 °C \n</answer>")
        assert action.is_final
        assert action.answer == "Paris, 21 °C"
        assert action.content == "Paris, 21 °C"
        assert action.thought == "Easy."

    def test_answer_without_think(self) -> None:
        action = self.parser.parse("<answer>4</answer>")
        assert action.is_final and action.thought is None and action.answer == "4"

    def test_answer_mentioned_in_think_is_ignored(self) -> None:
        action = self.parser.parse(
            '<think>I could <answer>guess</answer></think><tool_call>[{"name": "f"}]</tool_call>'
        )
        assert calls_summary(action) == [("f", {})]

    def test_require_think(self) -> None:
        strict = ThinkAnswerParser(require_think=True)
        assert_error(
            strict.parse("<answer>4</answer>"),
            "reasoning inside <think></think>",
            *THINK_ANSWER_PHRASES,
        )
        assert strict.parse("<think>2+2</think><answer>4</answer>").is_final

    @pytest.mark.parametrize(
        ("text", "phrases"),
        [
            ("The answer is 4.", ["No <tool_call> or <answer> block found", "The answer is 4."]),
            ("<think>only thinking</think>", ["No <tool_call> or <answer> block found"]),
            (
                '<tool_call>[{"name": "f"}]</tool_call><answer>4</answer>',
                ["both <tool_call> and <answer>"],
            ),
            (
                '<tool_call>[{"name": "f"}]</tool_call><tool_call>[{"name": "g"}]</tool_call>',
                ["exactly one"],
            ),
            ("<answer>1</answer><answer>2</answer>", ["exactly one"]),
            ("<tool_call>[]</tool_call>", ["list is empty", "<answer>"]),
            ('<tool_call>[{"name": "f",]</tool_call>', ["not valid JSON", "line 1 column"]),
            ('<tool_call>[{"name": "f"}, 3]</tool_call>', ["Call 2", "must be a JSON object"]),
            (
                '<tool_call>[{"name": "f", "arguments": [1]}]</tool_call>',
                ['"arguments"', "an array"],
            ),
            ("<tool_call>[" * 3, ["missing its closing </tool_call>"]),
            ("<think>unclosed <answer>4</answer>", ["<think> block is not closed"]),
            ("4</answer>", ["without a matching <answer>"]),
        ],
    )
    def test_malformed(self, text: str, phrases: list[str]) -> None:
        assert_error(self.parser.parse(text), *phrases, *THINK_ANSWER_PHRASES)

    def test_format_and_round_trip(self) -> None:
        calls = [ToolCall("f", EVERY_JSON_TYPE), ToolCall("g")]
        text = self.parser.format_calls(calls, thought="plan")
        assert text.startswith("<think>plan</think>\n<tool_call>[")
        action = self.parser.parse(text)
        assert calls_summary(action) == [(c.name, c.arguments) for c in calls]
        assert action.thought == "plan"

    def test_format_without_think_for_strict_parser_still_parses(self) -> None:
        strict = ThinkAnswerParser(require_think=True)
        assert calls_summary(strict.parse(strict.format_calls([ToolCall("f", {"a": 1})]))) == [
            ("f", {"a": 1})
        ]
        assert strict.parse(strict.format_answer("done")).answer == "done"

    def test_format_calls_empty_is_error(self) -> None:
        with pytest.raises(ValueError):
            self.parser.format_calls([])

    def test_format_answer(self) -> None:
        text = self.parser.format_answer("Paris", thought="Looked it up.")
        assert text == "<think>Looked it up.</think>\n<answer>Paris</answer>"
        action = self.parser.parse(text)
        assert action.is_final and action.answer == action.content == "Paris"

    def test_instructions(self) -> None:
        text = self.parser.instructions([SEARCH_TOOL])
        assert json.dumps(SEARCH_TOOL) in text
        assert '<tool_call>[{"name": "search", "arguments": {"query": "..."}}]</tool_call>' in text
        assert "<answer>your final answer</answer>" in text
        assert "must start" in ThinkAnswerParser(require_think=True).instructions([])


# --------------------------------------------------------------------------------------------
# Python (BFCL)
# --------------------------------------------------------------------------------------------

PYTHON_PHRASES = ("Expected format", "keyword arguments", "[get_weather(city='Paris'")


class TestPython:
    parser = PythonCallParser()

    def test_single_call_in_list(self) -> None:
        action = self.parser.parse("[get_weather(city='Paris', days=3)]")
        assert calls_summary(action) == [("get_weather", {"city": "Paris", "days": 3})]
        assert action.is_valid and action.content == ""

    def test_several_calls(self) -> None:
        action = self.parser.parse("[f(a=1), g(b='x'), h()]")
        assert calls_summary(action) == [("f", {"a": 1}), ("g", {"b": "x"}), ("h", {})]

    def test_bare_call(self) -> None:
        assert calls_summary(self.parser.parse("  f(a=1)\n")) == [("f", {"a": 1})]

    def test_dotted_name(self) -> None:
        action = self.parser.parse("[math.ops.add(a=1, b=2)]")
        assert calls_summary(action) == [("math.ops.add", {"a": 1, "b": 2})]

    @pytest.mark.parametrize("fence", ["```python\n{}\n```", "```\n{}\n```", "```py\n{}```"])
    def test_code_fence(self, fence: str) -> None:
        assert calls_summary(self.parser.parse(fence.format("[f(a=1)]"))) == [("f", {"a": 1})]

    def test_literal_values(self) -> None:
        text = (
            "[f(s='héllo 🙂', d=\"double\", i=-5, x=2.5e-3, neg=-0.5, t=True, fl=False, n=None, "
            "lst=[1, [2, 'three']], tup=(1, (2, 3)), dct={'k': {'n': [None]}}, "
            "multiline='''a\nb''', esc='tab\\there')]"
        )
        action = self.parser.parse(text)
        assert calls_summary(action) == [
            (
                "f",
                {
                    "s": "héllo 🙂",
                    "d": "double",
                    "i": -5,
                    "x": 2.5e-3,
                    "neg": -0.5,
                    "t": True,
                    "fl": False,
                    "n": None,
                    "lst": [1, [2, "three"]],
                    "tup": [1, [2, 3]],
                    "dct": {"k": {"n": [None]}},
                    "multiline": "a\nb",
                    "esc": "tab\there",
                },
            )
        ]

    def test_every_json_type_round_trip(self) -> None:
        calls = [ToolCall("f", EVERY_JSON_TYPE), ToolCall("pkg.g", {"x": 1})]
        action = self.parser.parse(self.parser.format_calls(calls))
        assert calls_summary(action) == [(c.name, c.arguments) for c in calls]

    def test_empty_list_is_final(self) -> None:
        action = self.parser.parse("[]")
        assert action.is_final and action.content == ""

    @pytest.mark.parametrize(
        "text",
        [
            "The weather is sunny.",
            "I can't help with that (sorry).",
            "42",
            "",
            "   ",
            "- bullet\n- list",
        ],
    )
    def test_plain_text_is_final(self, text: str) -> None:
        action = self.parser.parse(text)
        assert action.is_final
        assert action.content == text.strip()

    def test_think_block(self) -> None:
        action = self.parser.parse("<think>call f</think>\n[f(a=1)]")
        assert action.thought == "call f"
        assert calls_summary(action) == [("f", {"a": 1})]

    @pytest.mark.parametrize(
        ("text", "phrases"),
        [
            ("[f(1, 2)]", ["positional arguments", "f(param=value)"]),
            ("[f(*args)]", ["positional arguments"]),
            ("[f(**kwargs)]", ["**-unpacking"]),
            ("[f(a=x)]", ["Argument 'a'", "not a literal", "'x'"]),
            ("[f(a=1 + 2)]", ["Argument 'a'", "not a literal"]),
            ("[f(a=g(b=1))]", ["Argument 'a'", "not a literal"]),
            ("[f(a={1, 2})]", ["Argument 'a'", "not a literal"]),
            ("[f(a=b'bytes')]", ["Argument 'a'", "not a literal"]),
            ("[f(a=1j)]", ["Argument 'a'", "not a literal"]),
            ("[f(a=1e999)]", ["Argument 'a'", "not a literal"]),
            ("[f(a={(1, 2): 3})]", ["Argument 'a'", "not a literal"]),
            ("[f(a=__import__('os').system('echo hi'))]", ["Argument 'a'", "not a literal"]),
            ("[f(a=1, a=2)]", ["repeats the argument 'a'"]),
            ("[f(a=1)", ["Could not parse", "never closed"]),
            ("[f(a=1)] and then some text", ["Could not parse"]),
            ("f(a=1) f(b=2)", ["Could not parse"]),
            ("[f(a=1), 3]", ["Item 2", "not a function call"]),
            ("[f(a=1)()]", ["must call a function by name"]),
            ("['f'.upper()]", ["must call a function by name"]),
            ("[f(a=1)][0]", ["Expected a list of function calls"]),
            ("f(a=1)\x00", ["Could not parse"]),
            ("[f(a='\ud800')]", ["Could not parse"]),
            ("[f(a=" + "1" * 5000 + ")]", ["Could not parse"]),
            ("<think>[f(a=1)]", ["<think> block is not closed"]),
        ],
    )
    def test_malformed(self, text: str, phrases: list[str]) -> None:
        assert_error(self.parser.parse(text), *phrases, *PYTHON_PHRASES)

    def test_never_evaluates(self, tmp_path: Any) -> None:
        marker = tmp_path / "pwned"
        action = self.parser.parse(f"[f(a=open({str(marker)!r}, 'w'))]")
        assert_error(action, "not a literal")
        assert not marker.exists()

    def test_too_long_input(self) -> None:
        text = "[f(a='" + "x" * 100_001 + "')]"
        assert_error(self.parser.parse(text), "too long", *PYTHON_PHRASES)

    def test_format_calls(self) -> None:
        calls = [ToolCall("f", {"a": 1}), ToolCall("g", {"b": "x", "c": [True, None, {"d": 1.5}]})]
        assert self.parser.format_calls(calls) == "[f(a=1), g(b='x', c=[True, None, {'d': 1.5}])]"
        assert self.parser.format_calls([]) == "[]"

    def test_format_calls_escapes_tags_in_strings(self) -> None:
        calls = [ToolCall("f", {"a": "</think> <b>", "b": "\\</think>"})]
        text = self.parser.format_calls(calls)
        assert "</think>" not in text
        assert calls_summary(self.parser.parse(text)) == [("f", calls[0].arguments)]

    @pytest.mark.parametrize(
        "call",
        [
            ToolCall("not a name"),
            ToolCall("class"),
            ToolCall("f", {"class": 1}),
            ToolCall("f", {"bad key": 1}),
            ToolCall("f", {"a": float("nan")}),
            ToolCall("f", {"a": {1, 2}}),
        ],
    )
    def test_format_calls_rejects_unwritable(self, call: ToolCall) -> None:
        with pytest.raises(ValueError):
            self.parser.format_calls([call])

    def test_format_answer(self) -> None:
        text = self.parser.format_answer("It is sunny.", thought="checked")
        action = self.parser.parse(text)
        assert action.is_final and action.content == "It is sunny." and action.thought == "checked"
        with pytest.raises(ValueError, match="function call list"):
            self.parser.format_answer("[1, 2, 3]")

    def test_instructions(self) -> None:
        text = self.parser.instructions([WEATHER_TOOL])
        assert "get_weather(city: string, unit: string, days: integer (optional))" in text
        assert "Get the current weather for a city." in text
        assert "[get_weather(city='...', unit='celsius')]" in text


# --------------------------------------------------------------------------------------------
# ReAct
# --------------------------------------------------------------------------------------------

REACT_PHRASES = ("Expected format", "Action: ToolName[arguments]", "Action: search[red shoes]")


class TestReAct:
    parser = ReActParser()
    finishing = ReActParser(answer_action="Finish")

    def test_thought_and_action(self) -> None:
        action = self.parser.parse("Thought: I should search.\nAction: search[red shoes]")
        assert action.thought == "I should search."
        assert action.tool_calls == (ToolCall("search", {}, raw_arguments="red shoes"),)
        assert action.content == ""
        assert action.is_valid and not action.is_final

    def test_action_only(self) -> None:
        action = self.parser.parse("Action: click[Buy Now]")
        assert action.tool_calls[0].name == "click"
        assert action.tool_calls[0].raw_arguments == "Buy Now"
        assert action.thought is None

    @pytest.mark.parametrize(
        ("text", "name", "raw"),
        [
            ("search[red shoes]", "search", "red shoes"),
            ("  click[Buy Now]\n", "click", "Buy Now"),
            (
                "FlightSearch[New York, London, 2022-03-16]",
                "FlightSearch",
                "New York, London, 2022-03-16",
            ),
            ("NotebookWrite[Flights from A to B]", "NotebookWrite", "Flights from A to B"),
            ("click[< Prev]", "click", "< Prev"),
        ],
    )
    def test_bare_action(self, text: str, name: str, raw: str) -> None:
        action = self.parser.parse(text)
        assert [(c.name, c.raw_arguments, c.arguments) for c in action.tool_calls] == [
            (name, raw, {})
        ]

    def test_nested_brackets_up_to_last(self) -> None:
        action = self.parser.parse("Action: search[size [10] [wide]]")
        assert action.tool_calls[0].raw_arguments == "size [10] [wide]"

    def test_numbered_labels_and_hallucinated_observation(self) -> None:
        text = "Thought 2: look it up\nAction 2: Search[Paris [city]]\nObservation 2: [made up]"
        action = self.parser.parse(text)
        assert action.thought == "look it up"
        assert action.tool_calls == (ToolCall("Search", raw_arguments="Paris [city]"),)
        assert action.content == "Observation 2: [made up]"

    def test_multiline_thought_and_spaces_before_bracket(self) -> None:
        action = self.parser.parse("Thought: first\nsecond line\n  Action :  search [日本 🙂]  ")
        assert action.thought == "first\nsecond line"
        assert action.tool_calls == (ToolCall("search", raw_arguments="日本 🙂"),)

    def test_multiword_name(self) -> None:
        action = self.parser.parse("Action: Flight Search[NYC]")
        assert action.tool_calls[0].name == "Flight Search"

    def test_empty_arguments(self) -> None:
        assert self.parser.parse("Action: reset[]").tool_calls == (
            ToolCall("reset", raw_arguments=""),
        )

    def test_text_before_action_is_content(self) -> None:
        action = self.parser.parse("Okay.\nAction: search[x]")
        assert action.content == "Okay."

    def test_answer_action(self) -> None:
        action = self.finishing.parse("Thought: I know it.\nAction: Finish[Paris, France]")
        assert action.is_final
        assert action.tool_calls == ()
        assert action.answer == action.content == "Paris, France"
        assert action.thought == "I know it."
        # Case-insensitive, and in the bare form too.
        assert self.finishing.parse("finish[42]").answer == "42"

    def test_answer_action_is_a_normal_call_without_the_option(self) -> None:
        action = self.parser.parse("Action: Finish[Paris]")
        assert action.tool_calls == (ToolCall("Finish", raw_arguments="Paris"),)

    @pytest.mark.parametrize(
        ("text", "phrases"),
        [
            ("I think the answer is Paris.", ["No action found"]),
            ("", ["No action found"]),
            ("Thought: hmm", ["No action found"]),
            ("Action: search red shoes", ["not of the form ToolName[arguments]"]),
            ("Action: search[red shoes", ["missing its closing ]"]),
            ("Action: [red shoes]", ["not of the form"]),
            ("Action:", ["not of the form"]),
            ("Action: search]red[", ["not of the form"]),
            (
                "Action: search[a]\nAction: click[b]",
                ["Found 2 'Action:' lines", "one action per turn"],
            ),
            ("Thought: x\nAction 1: a[b]\nThought: y\nAction 2: c[d]", ["one action per turn"]),
        ],
    )
    def test_malformed(self, text: str, phrases: list[str]) -> None:
        assert_error(self.parser.parse(text), *phrases, *REACT_PHRASES)

    def test_format_calls(self) -> None:
        assert self.parser.format_calls([ToolCall("search", raw_arguments="red shoes")]) == (
            "Action: search[red shoes]"
        )
        text = self.parser.format_calls(
            [ToolCall("FlightSearch", {"origin": "New York", "dest": "London", "n": 2})],
            thought="Find flights.",
        )
        assert text == "Thought: Find flights.\nAction: FlightSearch[New York, London, 2]"

    def test_round_trip(self) -> None:
        call = ToolCall("NotebookWrite", raw_arguments="Hotels in [Paris], ünïcode")
        action = self.parser.parse(self.parser.format_calls([call], thought="save it"))
        assert action.tool_calls == (call,)
        assert action.thought == "save it"

    @pytest.mark.parametrize("count", [0, 2])
    def test_format_calls_requires_exactly_one(self, count: int) -> None:
        with pytest.raises(ValueError, match="exactly one"):
            self.parser.format_calls([ToolCall("a")] * count)

    def test_format_calls_rejects_bad_name(self) -> None:
        with pytest.raises(ValueError):
            self.parser.format_calls([ToolCall("math.add")])

    def test_format_answer(self) -> None:
        text = self.finishing.format_answer("Paris", thought="Known.")
        assert text == "Thought: Known.\nAction: Finish[Paris]"
        action = self.finishing.parse(text)
        assert action.is_final and action.answer == action.content == "Paris"
        with pytest.raises(ValueError, match="answer_action"):
            self.parser.format_answer("Paris")

    def test_invalid_answer_action(self) -> None:
        with pytest.raises(ValueError):
            ReActParser(answer_action="Finish[")

    def test_instructions(self) -> None:
        text = self.finishing.instructions([SEARCH_TOOL])
        assert "- search[query: string]: Search the shop." in text
        assert "Action: search[...]" in text
        assert "Action: Finish[your final answer]" in text
        assert "Finish" not in self.parser.instructions([SEARCH_TOOL])


# --------------------------------------------------------------------------------------------
# Round-trip properties
# --------------------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
# Built from characters rather than st.from_regex, which is several times slower to draw.
IDENTIFIER_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
identifiers = st.builds(
    str.__add__,
    st.sampled_from(IDENTIFIER_START),
    st.text(alphabet=IDENTIFIER_START + "0123456789", max_size=7),
).filter(lambda name: not keyword.iskeyword(name) and name != "__debug__")
python_calls = st.builds(
    ToolCall,
    name=st.lists(identifiers, min_size=1, max_size=2).map(".".join),
    arguments=st.dictionaries(identifiers, json_values, max_size=3),
)
json_calls = st.builds(
    ToolCall,
    name=identifiers,
    arguments=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
)
single_line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30
).map(str.strip)


@FAST
@given(calls=st.lists(json_calls, min_size=1, max_size=3), thought=st.none() | single_line_text)
def test_json_formats_round_trip(calls: list[ToolCall], thought: str | None) -> None:
    # One draw checks both JSON formats: drawing the nested values is the expensive part.
    expected = [(call.name, call.arguments) for call in calls]
    for parser in (HermesParser(), ThinkAnswerParser(require_think=True)):
        action = parser.parse(parser.format_calls(calls, thought=thought))
        assert action.is_valid, action.error
        assert calls_summary(action) == expected
        assert action.thought == (thought if thought is not None or parser.name == "hermes" else "")


@FAST
@given(calls=st.lists(python_calls, max_size=3))
def test_python_round_trip(calls: list[ToolCall]) -> None:
    parser = PythonCallParser()
    action = parser.parse(parser.format_calls(calls))
    assert action.is_valid
    assert calls_summary(action) == [(call.name, call.arguments) for call in calls]


@FAST
@given(name=identifiers, raw=single_line_text, thought=st.none() | single_line_text)
def test_react_round_trip(name: str, raw: str, thought: str | None) -> None:
    parser = ReActParser()
    action = parser.parse(parser.format_calls([ToolCall(name, raw_arguments=raw)], thought=thought))
    assert action.tool_calls == (ToolCall(name, raw_arguments=raw),)
    assert action.thought == thought


# --------------------------------------------------------------------------------------------
# Robustness: parse never raises
# --------------------------------------------------------------------------------------------

FRAGMENTS = [
    "<tool_call>",
    "</tool_call>",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    '"',
    "'",
    '"""',
    ":",
    ",",
    "=",
    "**",
    "Action:",
    "Action 1:",
    "Thought:",
    "Observation:",
    "\n",
    " ",
    "```",
    "```python\n",
    '"name"',
    '"arguments"',
    '"parameters"',
    "f",
    "math.add",
    "search",
    "Finish",
    "a=",
    "1",
    "-1.5e3",
    "1e999",
    "NaN",
    "null",
    "None",
    "True",
    "\\",
    "\x00",
    "\ud800",
    "é",
    "🙂",
    "日本",
]
adversarial_text = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)


def check_parse_contract(text: str) -> None:
    """Every parser returns a coherent ParsedAction for ``text`` without raising."""
    for parser in ALL_PARSERS:
        action = parser.parse(text)
        assert isinstance(action, ParsedAction)
        assert action.text is text
        assert isinstance(action.content, str)
        if action.error is not None:
            assert isinstance(action.error, str) and action.error
            assert action.tool_calls == ()
            assert "Expected format" in action.error
        for call in action.tool_calls:
            assert isinstance(call.name, str) and call.name
            assert isinstance(call.arguments, dict)


@FAST
@given(text=st.text())
def test_parse_never_raises_on_arbitrary_text(text: str) -> None:
    check_parse_contract(text)


@FAST
@given(text=adversarial_text)
def test_parse_never_raises_on_adversarial_text(text: str) -> None:
    check_parse_contract(text)


@FAST
@given(
    prefix=st.sampled_from(["<tool_call>", "<tool_call>[", "[", "f(a=", "Action: a[", ""]),
    body=json_values,
    cut=st.integers(min_value=0, max_value=200),
)
def test_parse_never_raises_on_truncated_calls(prefix: str, body: Any, cut: int) -> None:
    # Generation often stops mid-call: cut a well-formed payload at an arbitrary point.
    text = prefix + json.dumps(body, ensure_ascii=False)
    check_parse_contract(text[:cut])


PATHOLOGICAL = [
    "[" * 100_000,
    "(" * 100_000,
    "{" * 100_000,
    "f" + "(" * 100_000,
    "<tool_call>" + "[" * 100_000 + "</tool_call>",
    "<tool_call>" + "[" * 100_000,
    '<tool_call>{"name": "f", "arguments": ' + "[" * 100_000 + "]" * 100_000 + "}</tool_call>",
    "<tool_call>" * 10_000,
    "[f(a=" + "[" * 150 + "]" * 150 + ")]",
    "[f(a=" + "[" * 199 + "]" * 199 + ")]",
    "[" + "f(a=1), " * 20_000 + "]",
    "Action: " * 20_000,
    "Action: a[" + "[" * 100_000,
    "Thought: " + "x " * 100_000 + "\nAction: a" + " " * 100_000,
    "a" + " " * 200_000,
    "x" * 1_000_000,
    "\ud800\udfff\x00\x7f\u2028\u2029\ufeff",
    "".join(chr(i) for i in range(0x20, 0x3000)),
]


@pytest.mark.parametrize("text", PATHOLOGICAL, ids=[f"case{i}" for i in range(len(PATHOLOGICAL))])
def test_pathological_input_is_handled(text: str) -> None:
    # Speed on such inputs is a benchmark concern; here: no exception, contract holds.
    check_parse_contract(text)


def test_deeply_nested_brackets_give_errors() -> None:
    text = "[" * 100_000
    assert_error(PythonCallParser().parse(text), "Could not parse", "Expected format")
    assert_error(HermesParser().parse("<tool_call>" + text), "nested too deeply", "Expected format")
    assert_error(ThinkAnswerParser().parse("<tool_call>" + text), "nested too deeply")
    assert_error(ReActParser().parse(text), "No action found")


@pytest.mark.parametrize("parser", ALL_PARSERS, ids=PARSER_IDS)
def test_instructions_with_no_tools_and_bare_schemas(parser: ToolCallParser) -> None:
    assert "Expected" not in parser.instructions([])  # renders without errors
    bare = {"name": "lookup", "description": "Look up.", "parameters": {"type": "object"}}
    assert "lookup" in parser.instructions([bare])


@pytest.mark.parametrize("parser", ALL_PARSERS, ids=PARSER_IDS)
def test_instructions_example_parses(parser: ToolCallParser) -> None:
    # The example call shown to the model must itself be valid in the format it teaches.
    example = parser.format_calls([ToolCall("get_weather", {"city": "...", "unit": "celsius"})])
    # Compare the call itself: the instructions add a thought, which a strict parser requires.
    assert example.split("</think>")[-1].strip() in parser.instructions([WEATHER_TOOL])
    assert [call.name for call in parser.parse(example).tool_calls] == ["get_weather"]


class TestPythonPositionalArguments:
    """Positional arguments bind to parameters in signature order (BFCL writes sort('x'))."""

    parser = PythonCallParser(
        parameter_order={"sort": ("file_name",), "mv": ("source", "destination"), "pwd": ()}
    )

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("[sort('final_report.pdf')]", {"file_name": "final_report.pdf"}),
            ("[mv('a.txt', 'temp')]", {"source": "a.txt", "destination": "temp"}),
            ("[mv('a.txt', destination='temp')]", {"source": "a.txt", "destination": "temp"}),
            (
                "[mv(destination='temp', source='a.txt')]",
                {"destination": "temp", "source": "a.txt"},
            ),
            ("[mv('a.txt')]", {"source": "a.txt"}),  # a missing one is the tool's to report
        ],
    )
    def test_bound_in_signature_order(self, text: str, expected: dict[str, Any]) -> None:
        action = self.parser.parse(text)
        assert action.error is None, action.error
        assert action.tool_calls[0].arguments == expected

    @pytest.mark.parametrize(
        ("text", "phrases"),
        [
            (
                "[mv('a', 'b', 'c')]",
                ["3 positional arguments", "mv takes at most 2", "mv(source, destination)"],
            ),
            ("[pwd('here')]", ["1 positional arguments", "pwd takes at most 0", "pwd()"]),
            ("[mv('a', source='b')]", ["gives 'source' both by position and by name"]),
            ("[mv(*files)]", ["positional arguments: use keyword arguments"]),
            ("[mv(x, 'b')]", ["Argument 'source'", "not a literal"]),
            # An unknown function's parameters are unknown: ask for names instead.
            ("[teleport('x')]", ["positional arguments: use keyword arguments", "teleport("]),
            ("[fs.sort('x')]", ["positional arguments: use keyword arguments"]),
        ],
    )
    def test_errors_name_the_signature(self, text: str, phrases: list[str]) -> None:
        assert_error(self.parser.parse(text), *phrases, *PYTHON_PHRASES)

    def test_format_round_trip_and_settings_hash(self) -> None:
        call = self.parser.parse("[mv('a.txt', 'temp')]").tool_calls[0]
        assert self.parser.format_calls([call]) == "[mv(source='a.txt', destination='temp')]"
        same = PythonCallParser(parameter_order={"pwd": [], "mv": ["source", "destination"],
                                                 "sort": ["file_name"]})  # fmt: skip
        # Caches keyed by parser settings (ToolUse's shared prompts) must see equal parsers.
        assert hash(same.parameter_order) == hash(self.parser.parameter_order)
        assert same.parameter_order == self.parser.parameter_order
