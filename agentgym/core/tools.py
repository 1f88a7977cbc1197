"""Tools an agent can call: the ``@tool`` decorator, JSON-schema derivation and validation.

A tool is a typed Python function (or method) whose docstring documents its arguments in a
Google-style ``Args:`` section. ``@tool`` turns it into a :class:`Tool` that knows its OpenAI
function schema, validates call arguments against it, and turns every failure (unknown
tool, missing or mistyped argument, exception inside the tool) into an error text written
for the agent instead of an exception.

Example:
    >>> from typing import Literal
    >>> @tool
    ... def convert(amount: float, unit: Literal["km", "mi"] = "km") -> float:
    ...     '''Convert a distance to metres.
    ...
    ...     Args:
    ...         amount: The distance.
    ...         unit: The unit of ``amount``.
    ...     '''
    ...     return amount * (1000.0 if unit == "km" else 1609.344)
    >>> convert.parameters["properties"]["unit"]  # doctest: +NORMALIZE_WHITESPACE
    {'type': 'string', 'enum': ['km', 'mi'], 'description': 'The unit of ``amount``.',
     'default': 'km'}
    >>> convert.invoke({"amount": 2}).content
    '2000.0'
    >>> print(convert.invoke({"amount": "two"}).content)
    Error: invalid arguments for convert: 'amount' must be a number, got string 'two'. \
Expected: convert(amount: number, unit: "km" | "mi" = "km").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import enum
import inspect
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, get_args, get_type_hints

from agentgym.core.parsing import ToolCall
from agentgym.core.tool_schema import (
    check_value,
    coerce_text,
    did_you_mean,
    is_tuple,
    parse_docstring,
    schema_for,
)

__all__ = [
    "State",
    "Tool",
    "ToolError",
    "ToolResult",
    "ToolSet",
    "tool",
]


class State(dict):
    """Per-episode mutable state handed to tools that declare a parameter of this type.

    The parameter is injected by the environment and hidden from the agent's schema, so
    plain functions can keep state without globals:

    >>> @tool
    ... def remember(note: str, memory: State) -> str:
    ...     '''Store a note.
    ...
    ...     Args:
    ...         note: Text to remember.
    ...     '''
    ...     memory.setdefault("notes", []).append(note)
    ...     return "ok"
    >>> memory = State()
    >>> remember.invoke({"note": "hi"}, state=memory).content, memory
    ('ok', {'notes': ['hi']})
    >>> list(remember.parameters["properties"])
    ['note']
    """


class ToolError(Exception):
    """Raised inside a tool to report an error to the agent verbatim (no traceback)."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of one tool call, as the agent sees it (``content``) and as checkers do.

    Attributes:
        ok: Whether the tool ran and returned normally.
        content: Text for the agent: the JSON-encoded return value or an error message.
        value: The raw Python return value (``None`` on error).
        error_kind: ``None`` when ok, else one of ``"unknown_tool"``,
            ``"invalid_arguments"``, ``"tool_error"`` (a :class:`ToolError`) or
            ``"execution_error"`` (any other exception).
    """

    ok: bool
    content: str
    value: Any = None
    error_kind: str | None = None


# --------------------------------------------------------------------------------------
# Tool
# --------------------------------------------------------------------------------------


class Tool:
    """A callable with an OpenAI function schema, argument validation and safe invocation.

    Build one with the :func:`tool` decorator. Calling the tool object directly calls the
    wrapped function unchanged; :meth:`invoke` is the agent-facing path that validates and
    never raises.

    Attributes:
        name: The name the agent calls.
        description: What the tool does (first part of the docstring).
        parameters: JSON schema (``{"type": "object", "properties", "required"}``).
        returns: Description of the return value, from the docstring.
    """

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> None:
        self.function = function
        self.name = name or function.__name__
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}", self.name):
            raise ValueError(
                f"Tool name {self.name!r} is not valid: use letters, digits, '_', '.', '-' "
                "(at most 64 characters, not starting with a digit)."
            )
        doc_description, arg_docs, returns = parse_docstring(function.__doc__ or "")
        self.description = description if description is not None else doc_description
        self.returns = returns
        self._bound_self: Any = None
        self._build_schema(arg_docs)

    # -- construction -------------------------------------------------------------------

    def _build_schema(self, arg_docs: Mapping[str, str]) -> None:
        where = f"@tool {self.name}"
        signature = inspect.signature(self.function)
        try:
            hints = get_type_hints(self.function)
        except Exception as exc:  # unresolved forward references
            raise TypeError(f"{where}: cannot resolve type hints ({exc}).") from exc
        properties: dict[str, dict[str, Any]] = {}
        required: list[str] = []
        self._state_parameter: str | None = None
        self._takes_self = False
        positional: list[str] = []
        for index, (pname, param) in enumerate(signature.parameters.items()):
            if index == 0 and pname in ("self", "cls"):
                self._takes_self = True
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"{where}: *args/**kwargs are not allowed in tools ({pname}).")
            annotation = hints.get(pname, inspect.Parameter.empty)
            if annotation is State:
                self._state_parameter = pname
                continue
            if annotation is inspect.Parameter.empty:
                raise TypeError(
                    f"{where}: parameter '{pname}' has no type annotation; annotate it "
                    f"(e.g. `{pname}: str`) so its JSON schema can be derived."
                )
            schema = dict(schema_for(annotation, f"{where}, parameter '{pname}'"))
            if arg_docs.get(pname):
                schema["description"] = arg_docs[pname]
            if param.default is inspect.Parameter.empty:
                required.append(pname)
            elif param.default is not None:
                default = param.default
                schema["default"] = default.value if isinstance(default, enum.Enum) else default
            properties[pname] = schema
            positional.append(pname)
        unknown_docs = sorted(set(arg_docs) - set(signature.parameters))
        if unknown_docs:
            raise TypeError(
                f"{where}: the docstring documents {unknown_docs} which are not parameters "
                f"(parameters: {list(signature.parameters)}). Fix the Args section."
            )
        self.parameters: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "required": required,
        }
        self._positional_names = tuple(positional)
        # `x: T | None` accepts an explicit null (agents often send one for optional args).
        self._nullable = frozenset(
            pname for pname in properties if type(None) in get_args(hints[pname])
        )
        self._tuple_parameters = tuple(pname for pname in properties if is_tuple(hints[pname]))
        self._enum_types: dict[str, type[enum.Enum]] = {}
        for pname in properties:
            members = [a for a in get_args(hints[pname]) if a is not type(None)]
            hint = members[0] if len(members) == 1 else hints[pname]
            if isinstance(hint, type) and issubclass(hint, enum.Enum):
                self._enum_types[pname] = hint

    def __get__(self, instance: Any, owner: type | None = None) -> Tool:
        # Tools defined as methods bind like methods, so a backend class's tools act on
        # that instance's state.
        if instance is None:
            return self
        bound = object.__new__(Tool)
        bound.__dict__.update(self.__dict__)
        bound._bound_self = instance
        return bound

    # -- public API -----------------------------------------------------------------------

    @property
    def schema(self) -> dict[str, Any]:
        """The OpenAI function-calling schema of this tool."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    @property
    def signature_text(self) -> str:
        """A one-line signature for error messages, e.g. ``add(a: integer, b: integer)``."""
        parts = []
        for pname, schema in self.parameters["properties"].items():
            if "enum" in schema:
                kind = " | ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
            else:
                kind = schema.get("type", "any")
            text = f"{pname}: {kind}"
            if pname not in self.parameters["required"]:
                default = schema.get("default")
                text += f" = {json.dumps(default, ensure_ascii=False)}"
            parts.append(text)
        return f"{self.name}({', '.join(parts)})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._bound_self is not None:
            return self.function(self._bound_self, *args, **kwargs)
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool({self.signature_text})"

    def validate(self, arguments: Mapping[str, Any]) -> list[str]:
        """Every problem with ``arguments`` as short texts (empty when they are valid).

        >>> @tool
        ... def add(a: int, b: int) -> int:
        ...     '''Add.
        ...
        ...     Args:
        ...         a: First.
        ...         b: Second.
        ...     '''
        ...     return a + b
        >>> add.validate({"a": 1, "bb": 2})
        ["missing required argument 'b'", "unknown argument 'bb'. Did you mean 'b'? Valid: a, b"]
        """
        properties = self.parameters["properties"]
        problems = [
            f"missing required argument '{name}'"
            for name in self.parameters["required"]
            if name not in arguments
        ]
        for name, value in arguments.items():
            if name not in properties:
                hint = did_you_mean(name, properties)
                valid = ", ".join(properties) or "(none)"
                problems.append(f"unknown argument '{name}'.{hint} Valid: {valid}")
                continue
            if value is None and name in self._nullable:
                continue
            error = check_value(value, properties[name], name)
            if error:
                problems.append(error)
        return problems

    def resolve_arguments(self, call: ToolCall) -> dict[str, Any]:
        """The keyword arguments of ``call``, mapping ReAct's raw text onto parameters.

        A tool with one parameter receives the whole bracket text; with several, the text is
        split on commas into at most that many parts, in parameter order.
        """
        if call.raw_arguments is None:
            return dict(call.arguments)
        names = self._positional_names
        if not names:
            return {} if not call.raw_arguments.strip() else {"": call.raw_arguments}
        pieces = (
            [call.raw_arguments]
            if len(names) == 1
            else [p.strip() for p in call.raw_arguments.split(",", len(names) - 1)]
        )
        properties = self.parameters["properties"]
        return {
            name: coerce_text(piece, properties[name])
            for name, piece in zip(names, pieces, strict=False)
            if piece != "" or name in self.parameters["required"]
        }

    def refuse_invalid(self, arguments: Mapping[str, Any]) -> ToolResult | None:
        """The error result for arguments that fail validation (every problem and the
        expected signature, for the agent), or ``None`` when they are valid."""
        problems = self.validate(arguments)
        if not problems:
            return None
        return ToolResult(
            ok=False,
            content=(
                f"Error: invalid arguments for {self.name}: {'; '.join(problems)}. "
                f"Expected: {self.signature_text}."
            ),
            error_kind="invalid_arguments",
        )

    def invoke(
        self, call: ToolCall | Mapping[str, Any], *, state: State | None = None
    ) -> ToolResult:
        """Validate and run one call; every failure becomes an error :class:`ToolResult`."""
        arguments = self.resolve_arguments(call) if isinstance(call, ToolCall) else dict(call)
        refusal = self.refuse_invalid(arguments)
        if refusal is not None:
            return refusal
        for name, enum_type in self._enum_types.items():
            if arguments.get(name) is not None:
                arguments[name] = enum_type(arguments[name])
        if self._state_parameter is not None:
            arguments[self._state_parameter] = state if state is not None else State()
        for name in self._tuple_parameters:
            if isinstance(arguments.get(name), list):  # JSON arrays arrive as lists
                arguments[name] = tuple(arguments[name])
        try:
            value = self(**arguments)
            if inspect.isawaitable(value):  # an async tool: run it to completion here
                value = _run_to_completion(value)
        except ToolError as exc:
            return ToolResult(ok=False, content=f"Error: {exc}", error_kind="tool_error")
        except Exception as exc:  # the agent sees the error; the episode goes on
            return ToolResult(
                ok=False,
                content=f"Error during execution of {self.name}: {type(exc).__name__}: {exc}",
                error_kind="execution_error",
            )
        return ToolResult(ok=True, content=format_tool_value(value), value=value)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _run_to_completion(awaitable: Any) -> Any:
    """The result of an async tool's awaitable, from synchronous code.

    Environments step synchronously, so each call runs on a fresh event loop; inside a
    running loop (a notebook, an async server) that loop cannot be blocked on, so the call
    runs on a private loop in a worker thread. Resources bound to another event loop (a
    client session created elsewhere) cannot be used from an async tool for that reason.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaited(awaitable))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _awaited(awaitable)).result()


def format_tool_value(value: Any) -> str:
    """Text the agent sees for a tool's return value (strings verbatim, else JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, enum.Enum):
        value = value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except Exception:
        pass
    try:
        return str(value)
    except Exception:  # e.g. an int too long to convert to text; invoke() must not raise
        return f"<{type(value).__name__} value that cannot be shown as text>"


def tool(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Any:
    """Turn a typed, documented function or method into a :class:`Tool`.

    Usable bare (``@tool``) or with options (``@tool(name="search")``). The schema comes
    from the type hints; descriptions from the docstring's summary and ``Args:`` section.
    Errors in the definition (missing annotation, documented parameter that does not exist,
    unsupported type) raise ``TypeError`` at decoration time, never during an episode.
    """

    def decorate(fn: Callable[..., Any]) -> Tool:
        return Tool(fn, name=name, description=description)

    return decorate(function) if function is not None else decorate


class ToolSet(Mapping[str, Tool]):
    """A named collection of tools with agent-safe dispatch.

    >>> @tool
    ... def ping() -> str:
    ...     '''Answer pong.'''
    ...     return "pong"
    >>> tools = ToolSet([ping])
    >>> tools.call(ToolCall("ping")).content
    'pong'
    >>> tools.call(ToolCall("pnig")).content
    "Error: unknown tool 'pnig'. Did you mean 'ping'? Available tools: ping"
    """

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            as_tool = item if isinstance(item, Tool) else Tool(item)
            if as_tool.name in self._tools:
                raise ValueError(f"Duplicate tool name {as_tool.name!r} in ToolSet.")
            self._tools[as_tool.name] = as_tool
        self._schemas = [t.schema for t in self._tools.values()]

    @classmethod
    def from_object(cls, backend: Any) -> ToolSet:
        """All ``@tool`` methods of ``backend``, bound to it (for stateful backend classes)."""
        found = [
            getattr(backend, attr)
            for attr, value in inspect.getmembers(type(backend))
            if isinstance(value, Tool)
        ]
        return cls(found)

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def schemas(self) -> list[dict[str, Any]]:
        """OpenAI function schemas of every tool, in insertion order."""
        return self._schemas

    def subset(self, names: Iterable[str]) -> ToolSet:
        """A ToolSet with only ``names`` (unknown names raise ``KeyError`` listing valid ones)."""
        chosen = []
        for name in names:
            if name not in self._tools:
                raise KeyError(f"Unknown tool {name!r}; valid: {', '.join(self._tools)}")
            chosen.append(self._tools[name])
        return ToolSet(chosen)

    def unknown_tool_result(self, name: str) -> ToolResult:
        """The error result for a call to a tool that is not in this set."""
        available = ", ".join(self._tools) or "(none)"
        return ToolResult(
            ok=False,
            content=(
                f"Error: unknown tool '{name}'.{did_you_mean(name, self._tools)} "
                f"Available tools: {available}"
            ),
            error_kind="unknown_tool",
        )

    def call(self, call: ToolCall, *, state: State | None = None) -> ToolResult:
        """Dispatch ``call`` by name; unknown tools and bad arguments become error results."""
        selected = self._tools.get(call.name)
        if selected is None:
            return self.unknown_tool_result(call.name)
        return selected.invoke(call, state=state)
