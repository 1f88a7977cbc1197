"""Tests of the tools API: ``@tool`` schemas, validation, invocation and ``ToolSet``."""

from __future__ import annotations

import enum
from typing import Any, Literal, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentgym import State, Tool, ToolCall, ToolError, ToolResult, ToolSet, tool


class Color(enum.Enum):
    """A string-valued enum used as a parameter type."""

    RED = "red"
    BLUE = "blue"


class Level(enum.Enum):
    """An int-valued enum used as a parameter type."""

    LOW = 1
    HIGH = 2


@tool
def everything(
    text: str,
    count: int,
    ratio: float,
    flag: bool,
    ids: list[int],
    weights: dict[str, float],
    mode: Literal["fast", "slow"],
    color: Color,
    limit: Optional[int] = None,  # noqa: UP045 - Optional[...] is part of what is tested
    retries: int = 3,
    shade: Color = Color.BLUE,
    level: Level | None = None,
) -> str:
    """Exercise every supported parameter type.

    A second paragraph of the description.

    Args:
        text: Some text
            that continues on a second line
            and a third.
        count: How many.
        ratio (float): A ratio in [0, 1].
        flag: Whether to do it.
        ids: Record ids.
        weights: Weight per name.
        mode: How to run.
        color: A color.
        limit: Optional limit.
        retries: How often to retry.
        shade: The shade.
        level: The level.

    Returns:
        count: not a parameter, just text in the Returns section.
    """
    return f"{text}|{count}|{color!r}|{shade!r}|{level!r}|{limit!r}"


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: First.
        b: Second.
    """
    return a + b


@tool
def scale(x: float, factor: float = 2.0) -> float:
    """Scale a number.

    Args:
        x: The number.
        factor: The factor.
    """
    return x * factor


@tool
def search(query: str) -> str:
    """Search for a text.

    Args:
        query: What to look for.
    """
    return f"results for {query}"


@tool
def fail_with_tool_error(reason: str) -> str:
    """Always fail with a ToolError.

    Args:
        reason: The message.
    """
    raise ToolError(reason)


@tool
def crash(n: int) -> float:
    """Divide one by n.

    Args:
        n: The divisor.
    """
    return 1 / n


@tool
def remember(note: str, memory: State) -> int:
    """Store a note and return how many are stored.

    Args:
        note: Text to remember.
    """
    memory.setdefault("notes", []).append(note)
    return len(memory["notes"])


def props(t: Tool) -> dict[str, Any]:
    """The ``properties`` of a tool's parameter schema."""
    return t.parameters["properties"]


# ----------------------------------------------------------------------- schema derivation --


def test_schema_for_scalar_types() -> None:
    p = props(everything)
    assert p["text"]["type"] == "string"
    assert p["count"]["type"] == "integer"
    assert p["ratio"]["type"] == "number"
    assert p["flag"]["type"] == "boolean"


def test_schema_for_containers() -> None:
    p = props(everything)
    assert p["ids"] == {"type": "array", "items": {"type": "integer"}, "description": "Record ids."}
    assert p["weights"] == {
        "type": "object",
        "additionalProperties": {"type": "number"},
        "description": "Weight per name.",
    }


def test_schema_for_literal_and_enum() -> None:
    p = props(everything)
    assert p["mode"] == {"type": "string", "enum": ["fast", "slow"], "description": "How to run."}
    assert p["color"] == {"type": "string", "enum": ["red", "blue"], "description": "A color."}
    # Enum defaults appear as their values; int enums are integer-typed.
    assert p["shade"]["default"] == "blue"
    assert p["level"] == {"type": "integer", "enum": [1, 2], "description": "The level."}


def test_schema_optional_and_defaults() -> None:
    p = props(everything)
    assert p["limit"] == {"type": "integer", "description": "Optional limit."}  # no null default
    assert p["retries"] == {"type": "integer", "description": "How often to retry.", "default": 3}
    assert everything.parameters["required"] == [
        "text",
        "count",
        "ratio",
        "flag",
        "ids",
        "weights",
        "mode",
        "color",
    ]


def test_schema_mixed_literal_has_no_single_type() -> None:
    @tool
    def pick(value: Literal[1, "one"]) -> str:
        """Pick.

        Args:
            value: A value.
        """
        return str(value)

    assert props(pick)["value"] == {"enum": [1, "one"], "description": "A value."}


def test_union_becomes_any_of() -> None:
    @tool
    def either(value: int | str) -> str:
        """Either.

        Args:
            value: A number or a name.
        """
        return str(value)

    assert props(either)["value"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert either.validate({"value": 3}) == either.validate({"value": "x"}) == []
    assert either.validate({"value": 1.5}) == ["'value' has the wrong type (number 1.5)"]


def test_descriptions_from_docstring() -> None:
    assert everything.description == (
        "Exercise every supported parameter type.\n\nA second paragraph of the description."
    )
    p = props(everything)
    assert p["text"]["description"] == "Some text that continues on a second line and a third."
    # A type in parentheses after the name is not part of the description.
    assert p["ratio"]["description"] == "A ratio in [0, 1]."
    # The Returns section is not read as parameters.
    assert p["count"]["description"] == "How many."
    assert everything.returns == "count: not a parameter, just text in the Returns section."


def test_undocumented_parameter_has_no_description() -> None:
    @tool
    def bare(x: int) -> int:
        """No Args section."""
        return x

    assert bare.description == "No Args section."
    assert props(bare)["x"] == {"type": "integer"}


def test_schema_is_openai_format() -> None:
    assert add.schema == {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers.",
            "parameters": {
                "type": "object",
                "properties": {
                    "a": {"type": "integer", "description": "First."},
                    "b": {"type": "integer", "description": "Second."},
                },
                "required": ["a", "b"],
            },
        },
    }


def test_decorator_options_override_name_and_description() -> None:
    @tool(name="web.search", description="Search the web.")
    def _search(q: str) -> str:
        """Ignored summary.

        Args:
            q: Query.
        """
        return q

    assert _search.name == "web.search"
    assert _search.description == "Search the web."
    assert _search("x") == "x"  # calling the tool calls the function unchanged


def test_signature_text() -> None:
    assert scale.signature_text == "scale(x: number, factor: number = 2.0)"
    assert repr(add) == "Tool(add(a: integer, b: integer))"


# ----------------------------------------------------------------- decoration-time errors --


def test_missing_annotation_is_a_type_error() -> None:
    with pytest.raises(TypeError) as info:

        @tool
        def untyped(x, y: int) -> int:  # type: ignore[no-untyped-def]
            """Untyped."""
            return y

    message = str(info.value)
    assert message.startswith("@tool untyped: parameter 'x' has no type annotation")
    assert "(e.g. `x: str`)" in message


@pytest.mark.parametrize("signature", ["*args: int", "**kwargs: int"])
def test_var_args_are_a_type_error(signature: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def varargs({signature}) -> int:\n    '''V.'''\n    return 0", namespace)
    name = signature.strip("*").split(":")[0]
    with pytest.raises(TypeError, match=rf"\*args/\*\*kwargs are not allowed in tools \({name}\)"):
        tool(namespace["varargs"])


def test_documented_unknown_parameter_is_a_type_error() -> None:
    with pytest.raises(TypeError) as info:

        @tool
        def documented(x: int) -> int:
            """Doc.

            Args:
                x: Real.
                y: Not a parameter.
            """
            return x

    assert str(info.value) == (
        "@tool documented: the docstring documents ['y'] which are not parameters "
        "(parameters: ['x']). Fix the Args section."
    )


@pytest.mark.parametrize("annotation", [set, bytes, complex, set[int]])
def test_unsupported_type_is_a_type_error(annotation: Any) -> None:
    def weird(x: Any) -> None:
        """Weird."""

    weird.__annotations__["x"] = annotation
    with pytest.raises(TypeError) as info:
        tool(weird)
    message = str(info.value)
    assert message.startswith("@tool weird, parameter 'x': unsupported type annotation")
    assert "Use str, int, float, bool, list[...], dict[str, ...], Literal[...]" in message


def test_invalid_tool_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="Tool name '1bad' is not valid"):
        tool(name="1bad")(lambda: None)


# --------------------------------------------------------------------------- validate() --


def test_validate_accepts_valid_arguments() -> None:
    assert add.validate({"a": 1, "b": 2}) == []


def test_validate_missing_required() -> None:
    assert add.validate({"a": 1}) == ["missing required argument 'b'"]


def test_validate_unknown_argument_with_suggestion() -> None:
    assert add.validate({"a": 1, "b": 2, "bb": 3}) == [
        "unknown argument 'bb'. Did you mean 'b'? Valid: a, b"
    ]
    assert add.validate({"a": 1, "b": 2, "zzz": 3}) == ["unknown argument 'zzz'. Valid: a, b"]


def test_validate_wrong_types() -> None:
    assert add.validate({"a": "1", "b": 2}) == ["'a' must be an integer, got string '1'"]
    assert add.validate({"a": 1.5, "b": 2}) == ["'a' must be an integer, got number 1.5"]


def test_bool_is_not_an_integer_but_int_is_a_number() -> None:
    assert add.validate({"a": True, "b": 2}) == ["'a' must be an integer, got boolean True"]
    assert scale.validate({"x": 3}) == []
    assert scale.validate({"x": False}) == ["'x' must be a number, got boolean False"]


def test_validate_enum_violations() -> None:
    base = {
        "text": "t",
        "count": 1,
        "ratio": 0.5,
        "flag": True,
        "ids": [],
        "weights": {},
        "mode": "fast",
        "color": "red",
    }
    assert everything.validate(base) == []
    assert everything.validate({**base, "mode": "medium"}) == [
        "'mode' must be one of \"fast\", \"slow\"; got 'medium'"
    ]
    assert everything.validate({**base, "color": "RED"}) == [
        "'color' must be one of \"red\", \"blue\"; got 'RED'"
    ]
    assert everything.validate({**base, "level": 3}) == ["'level' must be one of 1, 2; got 3"]


def test_validate_nested_item_errors() -> None:
    base = {
        "text": "t",
        "count": 1,
        "ratio": 0.5,
        "flag": True,
        "mode": "fast",
        "color": "red",
    }
    assert everything.validate({**base, "ids": [1, 2, "3"], "weights": {}}) == [
        "'ids[2]' must be an integer, got string '3'"
    ]
    assert everything.validate({**base, "ids": [], "weights": {"w": "heavy"}}) == [
        "'weights.w' must be a number, got string 'heavy'"
    ]
    assert everything.validate({**base, "ids": 5, "weights": []}) == [
        "'ids' must be an array, got integer 5",
        "'weights' must be an object, got array []",
    ]


def test_validate_reports_every_problem() -> None:
    assert add.validate({"c": 1}) == [
        "missing required argument 'a'",
        "missing required argument 'b'",
        "unknown argument 'c'. Valid: a, b",
    ]


def test_optional_parameter_accepts_explicit_null() -> None:
    # An agent sending null for an optional argument means "not given".
    result = everything.invoke(
        {
            "text": "t",
            "count": 1,
            "ratio": 0.5,
            "flag": True,
            "ids": [],
            "weights": {},
            "mode": "fast",
            "color": "red",
            "limit": None,
            "level": None,
        }
    )
    assert result.ok, result.content
    assert result.value == "t|1|<Color.RED: 'red'>|<Color.BLUE: 'blue'>|None|None"
    assert add.validate({"a": None, "b": 1}) == ["'a' must be an integer, got null None"]


# ----------------------------------------------------------------------------- invoke() --


def test_invoke_success_formats_json() -> None:
    result = add.invoke({"a": 2, "b": 3})
    assert result == ToolResult(ok=True, content="5", value=5)
    assert search.invoke({"query": "x"}).content == "results for x"  # strings verbatim


def test_invoke_invalid_arguments_message() -> None:
    result = add.invoke({"a": "two", "b": 2})
    assert result == ToolResult(
        ok=False,
        content=(
            "Error: invalid arguments for add: 'a' must be an integer, got string 'two'. "
            "Expected: add(a: integer, b: integer)."
        ),
        error_kind="invalid_arguments",
    )


def test_invoke_tool_error_is_verbatim() -> None:
    result = fail_with_tool_error.invoke({"reason": "the item 'x' does not exist"})
    assert result == ToolResult(
        ok=False, content="Error: the item 'x' does not exist", error_kind="tool_error"
    )


def test_invoke_other_exception_becomes_execution_error() -> None:
    result = crash.invoke({"n": 0})
    assert not result.ok
    assert result.error_kind == "execution_error"
    assert result.value is None
    assert result.content == "Error during execution of crash: ZeroDivisionError: division by zero"


def test_invoke_converts_enum_arguments() -> None:
    result = everything.invoke(
        {
            "text": "t",
            "count": 1,
            "ratio": 0.5,
            "flag": True,
            "ids": [],
            "weights": {},
            "mode": "fast",
            "color": "red",
            "shade": "red",
            "level": 2,
        }
    )
    assert result.ok, result.content
    assert result.value == "t|1|<Color.RED: 'red'>|<Color.RED: 'red'>|<Level.HIGH: 2>|None"


def test_invoke_state_injection_hidden_from_schema() -> None:
    assert list(props(remember)) == ["note"]
    assert remember.parameters["required"] == ["note"]
    memory = State(notes=["a"])
    assert remember.invoke({"note": "b"}, state=memory).content == "2"
    assert memory == {"notes": ["a", "b"]}
    # Without a state, the tool gets a fresh one.
    assert remember.invoke({"note": "c"}).content == "1"
    # The agent cannot pass the state itself.
    result = remember.invoke({"note": "x", "memory": {}}, state=memory)
    assert result.error_kind == "invalid_arguments"
    assert "unknown argument 'memory'" in result.content
    assert memory == {"notes": ["a", "b"]}


def test_invoke_unprintable_values_never_raise() -> None:
    @tool
    def power(n: int) -> int:
        """Ten to the n.

        Args:
            n: Exponent.
        """
        return 10**n

    huge = power.invoke({"n": 5000})
    assert huge.ok and huge.content == "<int value that cannot be shown as text>"
    wrong = search.invoke({"query": 10**5000})
    assert wrong.error_kind == "invalid_arguments"
    assert "'query' must be a string, got integer <int>" in wrong.content


def test_invoke_with_tool_call() -> None:
    assert add.invoke(ToolCall("add", {"a": 1, "b": 1})).value == 2


# ------------------------------------------------------------------------------ ToolSet --


def test_toolset_dispatch_and_unknown_tool() -> None:
    tools = ToolSet([add, search])
    assert list(tools) == ["add", "search"]
    assert len(tools) == 2 and tools["add"] is add
    assert tools.call(ToolCall("add", {"a": 1, "b": 2})).value == 3
    result = tools.call(ToolCall("serach", {"query": "x"}))
    assert result == ToolResult(
        ok=False,
        content="Error: unknown tool 'serach'. Did you mean 'search'? Available tools: add, search",
        error_kind="unknown_tool",
    )
    assert tools.call(ToolCall("zzz")).content == (
        "Error: unknown tool 'zzz'. Available tools: add, search"
    )
    assert (
        ToolSet().call(ToolCall("x")).content == "Error: unknown tool 'x'. Available tools: (none)"
    )


def test_toolset_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match=r"Duplicate tool name 'add' in ToolSet\."):
        ToolSet([add, scale, add])


def test_toolset_wraps_plain_functions_and_lists_schemas() -> None:
    def shout(text: str) -> str:
        """Upper-case a text.

        Args:
            text: What to shout.
        """
        return text.upper()

    tools = ToolSet([shout, add])
    assert isinstance(tools["shout"], Tool)
    assert [s["function"]["name"] for s in tools.schemas] == ["shout", "add"]
    assert tools.schemas[1] == add.schema


def test_toolset_subset() -> None:
    tools = ToolSet([add, scale, search])
    sub = tools.subset(["search", "add"])
    assert list(sub) == ["search", "add"]
    with pytest.raises(KeyError, match="Unknown tool 'nope'; valid: add, scale, search"):
        tools.subset(["nope"])


class Counter:
    """A stateful backend: each instance keeps its own counts."""

    def __init__(self, start: int = 0) -> None:
        self.value = start
        self.history: list[int] = []

    @tool
    def increment(self, by: int = 1) -> int:
        """Increase the counter.

        Args:
            by: How much to add.
        """
        self.value += by
        self.history.append(by)
        return self.value

    @tool
    def read(self) -> int:
        """The current value."""
        return self.value

    @tool
    def reset_to(self, value: int) -> str:
        """Set the counter.

        Args:
            value: The new value.
        """
        if value < 0:
            raise ToolError(f"value must be >= 0, got {value}")
        self.value = value
        return "ok"

    def helper(self) -> str:
        """Not a tool."""
        return "no"


def test_from_object_binds_methods_to_the_instance() -> None:
    first, second = Counter(), Counter(start=10)
    tools_a, tools_b = ToolSet.from_object(first), ToolSet.from_object(second)
    assert sorted(tools_a) == ["increment", "read", "reset_to"]
    assert "self" not in props(tools_a["increment"])
    assert tools_a.call(ToolCall("increment", {"by": 5})).content == "5"
    assert tools_a.call(ToolCall("increment", {})).content == "6"
    assert first.value == 6 and first.history == [5, 1]
    # The two instances are independent.
    assert second.value == 10 and second.history == []
    assert tools_b.call(ToolCall("read")).content == "10"
    bad = tools_b.call(ToolCall("reset_to", {"value": -1}))
    assert (bad.content, bad.error_kind) == ("Error: value must be >= 0, got -1", "tool_error")
    assert second.value == 10
    # The class attribute is the unbound tool; calling through the instance binds it.
    assert isinstance(Counter.increment, Tool)
    assert first.increment(by=2) == 8


# --------------------------------------------------------------------------- ReAct text --


def test_raw_arguments_one_parameter_gets_whole_text() -> None:
    call = ToolCall("search", raw_arguments="red shoes, size 42, cheap")
    assert search.resolve_arguments(call) == {"query": "red shoes, size 42, cheap"}
    assert search.invoke(call).content == "results for red shoes, size 42, cheap"


def test_raw_arguments_split_and_coerced() -> None:
    assert add.resolve_arguments(ToolCall("add", raw_arguments="12, -4")) == {"a": 12, "b": -4}
    assert add.invoke(ToolCall("add", raw_arguments="12, -4")).value == 8
    resolved = scale.resolve_arguments(ToolCall("scale", raw_arguments=" 1.5 , 3"))
    assert resolved == {"x": 1.5, "factor": 3.0}
    assert isinstance(resolved["factor"], float)
    # An optional parameter may be left out; a missing required one is reported.
    assert scale.resolve_arguments(ToolCall("scale", raw_arguments="4")) == {"x": 4.0}
    missing = add.invoke(ToolCall("add", raw_arguments="7"))
    assert missing.error_kind == "invalid_arguments"
    assert "missing required argument 'b'" in missing.content


def test_raw_arguments_uncoercible_text_is_a_type_error() -> None:
    result = add.invoke(ToolCall("add", raw_arguments="one, 2"))
    assert result.content == (
        "Error: invalid arguments for add: 'a' must be an integer, got string 'one'. "
        "Expected: add(a: integer, b: integer)."
    )


def test_raw_arguments_for_parameterless_tool() -> None:
    @tool
    def ping() -> str:
        """Answer pong."""
        return "pong"

    assert ping.invoke(ToolCall("ping", raw_arguments="")).content == "pong"
    assert ping.invoke(ToolCall("ping", raw_arguments="x")).error_kind == "invalid_arguments"


# ---------------------------------------------------------------------------- hypothesis --

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
names = st.sampled_from(["add", "scale", "search", "everything", "remember", "crash"]) | st.text(
    max_size=12
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=names,
    arguments=st.dictionaries(st.text(max_size=8), json_values, max_size=6)
    | st.fixed_dictionaries({"a": json_values, "b": json_values}),
    raw=st.none() | st.text(max_size=30),
)
def test_toolset_call_never_raises(name: str, arguments: dict[str, Any], raw: str | None) -> None:
    tools = ToolSet([add, scale, search, everything, remember, crash])
    result = tools.call(ToolCall(name, arguments, raw_arguments=raw), state=State())
    assert isinstance(result, ToolResult)
    assert isinstance(result.content, str)
    if result.ok:
        assert result.error_kind is None
    else:
        assert result.content.startswith("Error")
        assert result.error_kind in {
            "unknown_tool",
            "invalid_arguments",
            "tool_error",
            "execution_error",
        }
