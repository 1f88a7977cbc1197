"""agentgym tools as an MCP server, and an MCP server's tools as an agentgym tool environment.

Two directions over the Model Context Protocol (the ``mcp`` package), stdio transport:

* ``agentgym serve-tools SPEC`` serves a tool set to any MCP client (an IDE agent, a
  verifiers or OpenEnv MCP environment, ...). ``SPEC`` is either a registered tool
  environment id (``agentgym/Calculator-v0``, ``agentgym/ToolUse-v0``: its tools act on one
  episode's state, chosen with ``--seed``/``--task-id``) or ``module:attribute`` naming a
  :class:`~agentgym.core.tools.ToolSet`, a list of ``@tool`` functions, or a function
  returning either. Calls are validated exactly as in the environment, and failures come
  back as MCP tool errors (``isError``) with agentgym's explanatory text.
* :class:`MCPToolEnv` is a :class:`~agentgym.core.tool_env.ToolEnv` whose tools are those
  of an MCP server started as a subprocess: the agent sees their schemas, every call is
  validated against the schema here and then forwarded over stdio. Your tasks and checker
  judge the episode as in any tool environment.

Example (the Calculator's tools, served and used back as a tool environment)::

    from agentgym.envs.calculator import CalculatorEnv, check_episode, check_turn
    env = MCPToolEnv(
        server_command=["agentgym", "serve-tools", "agentgym.envs.calculator:calculator_tools"],
        tasks=CalculatorEnv().tasks, checker=check_episode, turn_checker=check_turn)
    observation, info = env.reset(seed=0)     # info["tools"]: the server's tool schemas
    env.step('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>')
    env.close()                               # stops the server process
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from agentgym.core.parsing import ToolCall, ToolCallParser
from agentgym.core.tool_env import DEFAULT_SYSTEM_PROMPT, ToolEnv, TurnChecker
from agentgym.core.tools import State, Tool, ToolResult, ToolSet

__all__ = [
    "MCPClient",
    "MCPToolEnv",
    "ProxyTool",
    "ToolProvider",
    "build_mcp_server",
    "load_tool_provider",
    "main",
]


# ---------------------------------------------------------------------- server side --


class ToolProvider:
    """What an MCP server serves: tool schemas and a dispatcher that never raises.

    Args:
        schemas: OpenAI function schemas (``{"type": "function", "function": {...}}``).
        dispatch: ``dispatch(name, arguments) -> ToolResult``.
        description: One line for the server's instructions.
    """

    def __init__(
        self,
        schemas: Sequence[Mapping[str, Any]],
        dispatch: Callable[[str, dict[str, Any]], ToolResult],
        description: str,
    ) -> None:
        self.schemas = [dict(schema) for schema in schemas]
        self.dispatch = dispatch
        self.description = description
        # Tools may keep state (a ToolEnv episode, a State dict): one call at a time.
        self._lock = threading.Lock()

    def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run one call, serialised with every other call of this provider."""
        with self._lock:
            return self.dispatch(name, arguments)

    @classmethod
    def from_toolset(cls, toolset: ToolSet, description: str) -> ToolProvider:
        """Serve a :class:`ToolSet`; tools with a ``State`` parameter share one state."""
        state = State()
        return cls(
            toolset.schemas,
            lambda name, arguments: toolset.call(ToolCall(name, arguments), state=state),
            description,
        )


def load_tool_provider(
    spec: str,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    seed: int | None = None,
    task_id: str | None = None,
) -> ToolProvider:
    """The tools named by ``spec``: a registered tool environment id or ``module:attribute``.

    For an environment id, the environment is made with ``env_kwargs`` and reset with
    ``seed`` (and ``task_id``); its tools then act on that episode's state, through the
    environment's own ``call_tool`` (so backends and hidden tools behave as in training).

    >>> provider = load_tool_provider("agentgym.envs.calculator:calculator_tools")
    >>> [schema["function"]["name"] for schema in provider.schemas]
    ['add', 'subtract', 'multiply', 'divide']
    >>> provider.call("divide", {"a": 1, "b": 0}).content
    'Error: division by zero: b must not be 0.'
    """
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load {spec!r}: {exc}") from None
        if callable(target) and not isinstance(target, Tool | ToolSet):
            target = target()
        if isinstance(target, Tool):
            target = [target]
        if not isinstance(target, ToolSet):
            try:
                target = ToolSet(target)
            except TypeError:
                raise ValueError(
                    f"{spec!r} is a {type(target).__name__}; expected a ToolSet, a list of "
                    "@tool functions, or a function returning one"
                ) from None
        return ToolProvider.from_toolset(target, f"agentgym tools from {spec}")
    import agentgym  # noqa: F401  (registers the built-in environments)
    from agentgym.core.registry import make

    env = make(spec, **dict(env_kwargs or {}))
    base = env.unwrapped
    if not isinstance(base, ToolEnv):
        env.close()
        raise ValueError(
            f"{spec} is a {type(base).__name__}, not a tool environment (ToolEnv); serve it "
            "with `agentgym serve-env` instead"
        )
    _, info = env.reset(seed=seed, options={"task_id": task_id} if task_id else None)
    return ToolProvider(
        info.get("tools") or base.toolset.schemas,
        lambda name, arguments: base.call_tool(ToolCall(name, arguments)),
        f"tools of {spec}, task {info.get('task_id')} (episode seed {info.get('episode_seed')})",
    )


def build_mcp_server(provider: ToolProvider, name: str = "agentgym-tools") -> Any:
    """A low-level MCP ``Server`` answering ``tools/list`` and ``tools/call`` from ``provider``."""
    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server

    tools = [
        types.Tool(
            name=schema["function"]["name"],
            description=schema["function"].get("description") or None,
            input_schema=schema["function"].get("parameters") or {"type": "object"},
        )
        for schema in provider.schemas
    ]

    async def list_tools(context: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(context: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = dict(params.arguments or {})
        # Tools are synchronous and may be slow (a sandbox, a search): off the event loop.
        result = await anyio.to_thread.run_sync(provider.call, params.name, arguments)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=result.content)],
            is_error=not result.ok,
        )

    return Server(
        name,
        version=_version(),
        instructions=provider.description,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentgym")
    except PackageNotFoundError:
        return "unknown"


async def _serve_stdio(provider: ToolProvider) -> None:
    from mcp.server.stdio import stdio_server

    server = build_mcp_server(provider)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def main(argv: Sequence[str] | None = None) -> int:
    """``agentgym serve-tools SPEC``: an MCP server on stdin/stdout until stdin closes."""
    from agentgym.serving.env_server import parse_env_kwargs

    parser = argparse.ArgumentParser(
        prog="agentgym serve-tools",
        description="Serve agentgym tools as an MCP server over stdio.",
        epilog="SPEC: a tool environment id (agentgym/ToolUse-v0) or module:attribute "
        "(agentgym.envs.calculator:calculator_tools).",
    )
    parser.add_argument("spec")
    parser.add_argument("kwargs", nargs="*", help="environment arguments as key=value")
    parser.add_argument("--seed", type=int, default=0, help="episode seed (environment ids)")
    parser.add_argument("--task-id", default=None, help="task of the episode (environment ids)")
    args = parser.parse_args(argv)
    try:
        provider = load_tool_provider(
            args.spec,
            env_kwargs=parse_env_kwargs(args.kwargs),
            seed=args.seed,
            task_id=args.task_id,
        )
    except Exception as exc:
        # stdout belongs to the protocol: every message for people goes to stderr.
        print(f"agentgym serve-tools: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_stdio(provider))
    return 0


# ---------------------------------------------------------------------- client side --


class MCPClient:
    """A synchronous MCP client of a server run as a subprocess over stdio.

    The ``mcp`` SDK is asynchronous; this client keeps its session on an event loop in a
    background thread, so environments (which are synchronous) can call tools directly.

    Args:
        command: The server's command line, e.g. ``["agentgym", "serve-tools", "..."]``.
        env: Extra environment variables for the server process.
        call_timeout: Seconds to wait for one tool call (or the start) before failing.

    Raises:
        RuntimeError: The server did not start or failed the MCP handshake (with its reason).
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        call_timeout: float = 60.0,
    ) -> None:
        if not command:
            raise ValueError("command must name the MCP server's program")
        self.command = list(command)
        self.call_timeout = call_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._session: Any = None
        self._stop: asyncio.Event | None = None
        self._ready: Future[None] = Future()
        self._runner = asyncio.run_coroutine_threadsafe(self._run(dict(env or {})), self._loop)
        try:
            self._ready.result(timeout=call_timeout)
        except Exception as exc:
            self.close()
            raise RuntimeError(
                f"MCP server {' '.join(self.command)!r} did not start: {exc}"
            ) from exc
        self.tools: list[Any] = self._submit(self._session.list_tools()).tools

    async def _run(self, env: dict[str, str]) -> None:
        import os

        from mcp import ClientSession, StdioServerParameters, stdio_client

        self._stop = asyncio.Event()
        parameters = StdioServerParameters(
            command=self.command[0],
            args=self.command[1:],
            # The server inherits PATH and the virtualenv, like a shell would start it.
            env={**os.environ, **env},
        )
        try:
            async with (
                stdio_client(parameters) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                self._session = session
                self._ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise

    def _submit(self, coroutine: Any) -> Any:
        if self._session is None or self._runner.done():
            coroutine.close()
            raise RuntimeError(f"the MCP server {' '.join(self.command)!r} is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(self.call_timeout)

    def call_tool(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Call one tool; protocol failures and tool errors both become error results."""
        try:
            result = self._submit(self._session.call_tool(name, dict(arguments)))
        except Exception as exc:
            return ToolResult(
                ok=False,
                content=f"Error: the tool server failed on {name}: {type(exc).__name__}: {exc}",
                error_kind="execution_error",
            )
        text = "\n".join(
            getattr(block, "text", None) or f"[{getattr(block, 'type', 'content')}]"
            for block in result.content
        )
        if result.is_error:
            return ToolResult(ok=False, content=text, error_kind="tool_error")
        return ToolResult(ok=True, content=text, value=result.structured_content or text)

    def close(self) -> None:
        """Stop the server process (stdin closed, then terminated if it lingers)."""
        if self._stop is not None and not self._runner.done():
            self._loop.call_soon_threadsafe(self._stop.set)
            # It may have failed or be slow to stop; the loop is stopped either way.
            with contextlib.suppress(Exception):
                self._runner.result(timeout=10)
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def __enter__(self) -> MCPClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ProxyTool(Tool):
    """A :class:`Tool` defined by a JSON schema whose calls go to an MCP server.

    Argument validation is :class:`Tool`'s, against the server's input schema, so the agent
    gets the same explanatory errors as with local tools before anything is sent.
    """

    def __init__(
        self, client: MCPClient, name: str, description: str, schema: Mapping[str, Any]
    ) -> None:
        # Not Tool.__init__: that derives the schema from a Python signature; here the
        # schema is given, and the "function" forwards to the server.
        self.client = client
        self.function = lambda **arguments: client.call_tool(name, arguments)
        self.name = name
        self.description = description
        self.returns = ""
        self._bound_self = None
        self._state_parameter = None
        self._takes_self = False
        properties = dict(schema.get("properties") or {})
        self.parameters = {
            "type": "object",
            "properties": properties,
            "required": list(schema.get("required") or []),
        }
        self._positional_names = tuple(properties)
        self._nullable = frozenset(name for name, item in properties.items() if _allows_null(item))
        self._enum_types = {}

    def invoke(
        self, call: ToolCall | Mapping[str, Any], *, state: State | None = None
    ) -> ToolResult:
        """Validate against the server's schema, then forward the call."""
        arguments = self.resolve_arguments(call) if isinstance(call, ToolCall) else dict(call)
        refusal = self.refuse_invalid(arguments)
        if refusal is not None:
            return refusal
        return self.client.call_tool(self.name, arguments)


def _allows_null(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_allows_null(option) for option in schema.get("anyOf") or ())


def mcp_toolset(client: MCPClient) -> ToolSet:
    """The server's tools as a :class:`ToolSet` of :class:`ProxyTool`\\ s."""
    return ToolSet(
        ProxyTool(client, item.name, item.description or "", item.input_schema or {})
        for item in client.tools
    )


class MCPToolEnv(ToolEnv):
    """A tool environment whose tools are an MCP server's (started over stdio).

    ## Description
    As :class:`~agentgym.core.tool_env.ToolEnv`: the user's turns arrive one at a time and
    the agent calls tools until it replies without a call; the tools run in the MCP server.

    ## Action Space
    Text in the parser's format (default ``hermes``).

    ## Observation Space
    Text: user turns, tool results (the server's text content), or errors.

    ## Rewards
    The checker's, at the end of the episode.

    ## Episode End
    After the agent's reply to the last turn.

    ## Arguments
    ``server_command`` (the MCP server's command line), ``server_env``, ``call_timeout``,
    plus :class:`~agentgym.core.tool_env.ToolEnv`'s (``tasks``, ``checker``, ...). State kept
    by the server persists across episodes unless the server resets it itself.

    ## Version History
    * v0: initial version.
    """

    def __init__(
        self,
        *,
        server_command: Sequence[str],
        tasks: Sequence[Any],
        checker: Callable[..., Any],
        server_env: Mapping[str, str] | None = None,
        call_timeout: float = 60.0,
        turn_checker: TurnChecker | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        parser: str | ToolCallParser = "hermes",
        max_steps_per_turn: int = 20,
        max_observation_length: int = 32_768,
        max_action_length: int = 16_384,
        render_mode: str | None = None,
    ) -> None:
        self.mcp_client = MCPClient(server_command, env=server_env, call_timeout=call_timeout)
        try:
            super().__init__(
                tools=mcp_toolset(self.mcp_client),
                tasks=tasks,
                checker=checker,
                turn_checker=turn_checker,
                system_prompt=system_prompt,
                parser=parser,
                max_steps_per_turn=max_steps_per_turn,
                max_observation_length=max_observation_length,
                max_action_length=max_action_length,
                render_mode=render_mode,
            )
        except BaseException:
            self.mcp_client.close()
            raise

    def close(self) -> None:
        """Stop the MCP server process."""
        self.mcp_client.close()
        super().close()
