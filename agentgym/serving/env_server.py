"""Serve any registered environment over OpenEnv's protocol (``agentgym serve-env``).

``agentgym serve-env ENV_ID [key=value ...]`` starts an HTTP/WebSocket server on which every
WebSocket connection to ``/ws`` is one session with its own ``gymnasium.make(ENV_ID,
**kwargs)`` copy (message format: :mod:`agentgym.serving.protocol`). OpenEnv clients (TRL's
and SkyRL's integrations use them) and ``gymnasium.make("agentgym/Remote-v0", url=...,
token=...)`` connect to it.

Security and resource defaults:

* binds to ``127.0.0.1``; another host must be asked for with ``--host``;
* every route but ``/health`` needs ``Authorization: Bearer <token>``: ``--token``, the
  ``AGENTGYM_ENV_TOKEN`` variable, or a random token printed at start. ``--no-token`` is
  refused unless the server binds to a loopback address;
* at most ``--max-sessions`` sessions (64) at once: one more gets a ``CAPACITY_REACHED``
  error and is closed;
* a session idle for ``--idle-timeout`` seconds (300) is closed with ``SESSION_EXPIRED``
  and its environment released; a client that disconnects is released at once;
* a reset or step running longer than ``--step-timeout`` seconds (120) ends its session
  with ``TIMEOUT`` (the environment is closed when the stuck call returns).

Environment calls run on a thread pool, so slow environments (the code sandbox, search)
do not block other sessions; one session's calls run one at a time, in order.

Example:
    >>> server = EnvServer(ServerSettings("agentgym/Calculator-v0", token="secret"))
    >>> server.metadata()["max_episode_steps"]
    24
    >>> parse_env_kwargs(["difficulty=hard", "max_steps_per_turn=5"])
    {'difficulty': 'hard', 'max_steps_per_turn': 5}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import ipaddress
import json
import os
import secrets
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from agentgym.serving.protocol import (
    TOKEN_ENV_VAR,
    ErrorCode,
    action_schema,
    observation_schema,
    to_json,
)

__all__ = ["EnvServer", "ServerSettings", "main", "parse_env_kwargs"]

# WebSocket close codes: 1008 policy violation (bad token), 1011 server error,
# 1013 try again later (capacity), 4000 + an HTTP-like code for agentgym's session ends.
_CLOSE_POLICY = 1008
_CLOSE_ERROR = 1011
_CLOSE_TRY_LATER = 1013
_CLOSE_EXPIRED = 4408
_CLOSE_TIMEOUT = 4504


@dataclass
class ServerSettings:
    """What ``agentgym serve-env`` serves and its limits.

    Attributes:
        env_id: The registered environment id each session makes.
        env_kwargs: Constructor arguments of every session's environment.
        token: The bearer token clients must send; ``None`` disables the check.
        max_sessions: Most sessions open at once.
        idle_timeout: Seconds without a message after which a session is closed.
        step_timeout: Longest a reset or step may run before its session is closed.
        max_message_bytes: Largest WebSocket message the server accepts; ``None``: room for
            the longest action the environment accepts (6 bytes per character, JSON's worst
            case) plus 64 KiB, at least 1 MiB.
    """

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    token: str | None = None
    max_sessions: int = 64
    idle_timeout: float = 300.0
    step_timeout: float = 120.0
    max_message_bytes: int | None = None

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be > 0, got {getattr(self, name)}"
            for name in ("max_sessions", "idle_timeout", "step_timeout", "max_message_bytes")
            if getattr(self, name) is not None and not getattr(self, name) > 0
        ]
        if self.token is not None and not self.token.strip():
            problems.append("token must not be empty (pass None to disable the check)")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class _Session:
    """One client connection and its environment."""

    id: str
    env: gym.Env
    websocket: Any
    last_active: float
    created: float = field(default_factory=time.monotonic)
    steps: int = 0
    episodes: int = 0
    busy: bool = False
    ended: tuple[ErrorCode, str] | None = None
    last_info: dict[str, Any] = field(default_factory=dict)


class EnvServer:
    """The sessions, routes and limits of one served environment (a Starlette app).

    Args:
        settings: What to serve and the limits (:class:`ServerSettings`).

    Raises:
        gymnasium.error.Error, TypeError, ValueError: The environment cannot be made with
            ``settings.env_kwargs`` (checked once here, before any client connects).
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        if settings.env_id not in gym.registry:
            from agentgym.core.registry import make

            make(settings.env_id)  # raises, listing the registered ids and close matches
        self._render_kwargs = self._default_render_kwargs()
        probe = self._make_env()  # bad ids and kwargs fail here, not in the first session
        try:
            self._probe_metadata = self._describe(probe)
        finally:
            probe.close()
        if settings.max_message_bytes is None:
            # An over-long action must reach the environment (which answers it with
            # feedback), not be cut off by the transport.
            longest_action = self._probe_metadata["max_action_length"] or 16_384
            settings.max_message_bytes = max(1 << 20, 6 * longest_action + (1 << 16))
        self.sessions: dict[str, _Session] = {}
        self._opening = 0  # sessions whose environment is being made
        self._executor = ThreadPoolExecutor(
            max_workers=min(32, settings.max_sessions), thread_name_prefix="agentgym-env"
        )
        self._reaper: asyncio.Task[None] | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------------ environment --

    def _default_render_kwargs(self) -> dict[str, Any]:
        # Sessions render as text when the environment can, so the client's render() works.
        if "render_mode" in self.settings.env_kwargs:
            return {}
        spec = gym.spec(self.settings.env_id)
        modes = getattr(spec.entry_point, "metadata", {}).get("render_modes", [])
        return {"render_mode": "ansi"} if "ansi" in modes else {}

    def _make_env(self) -> gym.Env:
        return gym.make(self.settings.env_id, **self.settings.env_kwargs, **self._render_kwargs)

    def _describe(self, env: gym.Env) -> dict[str, Any]:
        from agentgym.core.registry import list_envs

        observation_space, action_space = env.observation_space, env.action_space
        spec = env.spec
        return {
            "name": self.settings.env_id,
            "description": list_envs().get(self.settings.env_id, ""),
            "version": _agentgym_version(),
            "env_kwargs": to_json(self.settings.env_kwargs),
            "max_observation_length": getattr(observation_space, "max_length", None),
            "max_action_length": getattr(action_space, "max_length", None),
            "max_episode_steps": spec.max_episode_steps if spec is not None else None,
            "render_modes": ["ansi", "human"] if self._render_kwargs else [],
        }

    def metadata(self) -> dict[str, Any]:
        """What ``GET /metadata`` returns: the environment, its spaces and the limits."""
        return {
            **self._probe_metadata,
            "max_sessions": self.settings.max_sessions,
            "active_sessions": len(self.sessions),
            "idle_timeout_s": self.settings.idle_timeout,
            "step_timeout_s": self.settings.step_timeout,
            "max_message_bytes": self.settings.max_message_bytes,
        }

    # ------------------------------------------------------------------ HTTP routes --

    def _build_app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route, WebSocketRoute

        return Starlette(
            routes=[
                Route("/health", self._health),
                Route("/metadata", self._metadata_route),
                Route("/schema", self._schema_route),
                WebSocketRoute("/ws", self._websocket),
            ],
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        self._reaper = asyncio.create_task(self._reap_idle_sessions())
        try:
            yield
        finally:
            self._reaper.cancel()
            for session in list(self.sessions.values()):
                await self._end(session, ErrorCode.SHUTDOWN, "the server is shutting down")
            self._executor.shutdown(wait=False, cancel_futures=True)

    def authorized(self, headers: Mapping[str, str]) -> bool:
        """Whether ``headers`` carry the server's bearer token (always, without a token)."""
        expected = self.settings.token
        if expected is None:
            return True
        scheme, _, given = headers.get("authorization", "").partition(" ")
        # compare_digest: the comparison time does not reveal how much of a guess matched.
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), expected.encode()
        )

    def _unauthorized(self) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse(
            {"detail": "missing or wrong bearer token: send 'Authorization: Bearer <token>'"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    async def _health(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({"status": "healthy"})

    async def _metadata_route(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        if not self.authorized(request.headers):
            return self._unauthorized()
        return JSONResponse(self.metadata())

    async def _schema_route(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        if not self.authorized(request.headers):
            return self._unauthorized()
        meta = self._probe_metadata
        return JSONResponse(
            {
                "action": action_schema(meta["max_action_length"] or 16_384),
                "observation": observation_schema(meta["max_observation_length"] or 32_768),
                "state": {
                    "title": "SessionState",
                    "type": "object",
                    "properties": {
                        name: {"type": kind}
                        for name, kind in (
                            ("session_id", "string"),
                            ("episode_id", "string"),
                            ("step_count", "integer"),
                            ("env_id", "string"),
                            ("task_id", ["string", "null"]),
                            ("episode_seed", ["integer", "null"]),
                        )
                    },
                },
            }
        )

    # ------------------------------------------------------------------ sessions --

    async def _websocket(self, websocket: Any) -> None:
        from starlette.websockets import WebSocketDisconnect

        if not self.authorized(websocket.headers):
            try:  # a plain HTTP 401 in the handshake, so clients can say what is wrong
                await websocket.send_denial_response(self._unauthorized())
            except RuntimeError:  # an ASGI server without the denial-response extension
                await websocket.close(code=_CLOSE_POLICY, reason="missing or wrong token")
            return
        await websocket.accept()
        if len(self.sessions) + self._opening >= self.settings.max_sessions:
            await self._send_error(
                websocket,
                ErrorCode.CAPACITY_REACHED,
                f"the server is at its limit of {self.settings.max_sessions} sessions; "
                "retry later or start the server with a larger --max-sessions",
            )
            await websocket.close(code=_CLOSE_TRY_LATER)
            return
        self._opening += 1
        try:
            env = await asyncio.get_running_loop().run_in_executor(self._executor, self._make_env)
        except Exception as exc:
            await self._send_error(
                websocket, ErrorCode.FACTORY_ERROR, f"could not make the environment: {exc}"
            )
            await websocket.close(code=_CLOSE_ERROR)
            return
        finally:
            self._opening -= 1
        now = time.monotonic()
        session = _Session(id=uuid.uuid4().hex, env=env, websocket=websocket, last_active=now)
        self.sessions[session.id] = session
        try:
            while session.ended is None:
                try:
                    raw = await websocket.receive_text()
                except (WebSocketDisconnect, RuntimeError):
                    break  # the client left (or the reaper closed the socket)
                session.last_active = time.monotonic()
                session.busy = True
                try:
                    reply = await self._handle(session, raw)
                finally:
                    session.busy = False
                    session.last_active = time.monotonic()
                if reply is None:  # "close"
                    break
                if session.ended is None:
                    await websocket.send_text(json.dumps(reply))
        except Exception:  # the socket broke while replying: the client is gone
            pass
        finally:
            await self._end(session, None, "")

    async def _handle(self, session: _Session, raw: str) -> dict[str, Any] | None:
        """The reply to one client message (``None``: the client closed the session)."""
        try:
            message = json.loads(raw)
        except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: deep nesting
            return _error(ErrorCode.INVALID_JSON, f"the message is not JSON: {exc}")
        if not isinstance(message, dict):
            return _error(ErrorCode.VALIDATION_ERROR, "a message must be a JSON object")
        kind, data = message.get("type"), message.get("data") or {}
        if not isinstance(data, dict):
            return _error(ErrorCode.VALIDATION_ERROR, "'data' must be a JSON object")
        if kind == "reset":
            return await self._reset(session, data)
        if kind == "step":
            return await self._step(session, data)
        if kind == "state":
            info = session.last_info
            return {
                "type": "state",
                "data": {
                    "session_id": session.id,
                    "episode_id": f"{session.id}-{session.episodes}",
                    "step_count": session.steps,
                    "env_id": self.settings.env_id,
                    "task_id": info.get("task_id"),
                    "episode_seed": info.get("episode_seed"),
                },
            }
        if kind == "render":
            text = await self._call(session, session.env.render)
            if isinstance(text, dict):  # the call failed or timed out
                return text
            return {"type": "render", "data": {"text": to_json(text)}}
        if kind == "close":
            return None
        return _error(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {kind!r}; valid: reset, step, state, render, close",
        )

    async def _reset(self, session: _Session, data: dict[str, Any]) -> dict[str, Any]:
        seed, options = data.get("seed"), data.get("options")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            return _error(ErrorCode.VALIDATION_ERROR, f"seed must be an integer >= 0, got {seed!r}")
        if options is not None and not isinstance(options, dict):
            return _error(ErrorCode.VALIDATION_ERROR, f"options must be an object, got {options!r}")
        result = await self._call(session, lambda: session.env.reset(seed=seed, options=options))
        if isinstance(result, dict):
            return result
        observation, info = result
        session.episodes += 1
        session.steps = 0
        session.last_info = to_json(info)
        return {
            "type": "observation",
            "data": {
                "observation": {
                    "text": to_json(observation),
                    "info": session.last_info,
                    "terminated": False,
                    "truncated": False,
                },
                "reward": None,
                "done": False,
            },
        }

    async def _step(self, session: _Session, data: dict[str, Any]) -> dict[str, Any]:
        if "message" not in data:
            return _error(
                ErrorCode.VALIDATION_ERROR,
                "a step needs the action as data.message, e.g. "
                '{"type": "step", "data": {"message": "..."}}',
            )
        result = await self._call(session, lambda: session.env.step(data["message"]))
        if isinstance(result, dict):
            return result
        observation, reward, terminated, truncated, info = result
        session.steps += 1
        session.last_info = to_json(info)
        return {
            "type": "observation",
            "data": {
                "observation": {
                    "text": to_json(observation),
                    "info": session.last_info,
                    "terminated": bool(terminated),
                    "truncated": bool(truncated),
                },
                "reward": to_json(float(reward)),
                "done": bool(terminated or truncated),
            },
        }

    async def _call(self, session: _Session, function: Callable[[], Any]) -> Any:
        """Run an environment call on the pool; an error dict when it fails or times out."""
        future: Future[Any] = self._executor.submit(function)
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(future), timeout=self.settings.step_timeout
            )
        except TimeoutError:
            # The call cannot be interrupted; the environment is closed once it returns.
            env = session.env
            future.add_done_callback(lambda _: _close_quietly(env))
            session.env = None  # type: ignore[assignment]
            await self._end(
                session,
                ErrorCode.TIMEOUT,
                f"the environment call ran past the server's step timeout of "
                f"{self.settings.step_timeout:g} s; the session is closed",
            )
            return _error(ErrorCode.TIMEOUT, "timed out")
        except Exception as exc:
            return _error(ErrorCode.EXECUTION_ERROR, f"{type(exc).__name__}: {exc}")

    async def _end(self, session: _Session, code: ErrorCode | None, message: str) -> None:
        """Close a session: tell the client why (when the server ends it), free the env."""
        if self.sessions.pop(session.id, None) is None:
            return
        if code is not None:
            session.ended = (code, message)
            close_code = {
                ErrorCode.SESSION_EXPIRED: _CLOSE_EXPIRED,
                ErrorCode.TIMEOUT: _CLOSE_TIMEOUT,
            }.get(code, 1001)
            with contextlib.suppress(Exception):
                await self._send_error(session.websocket, code, message)
                await session.websocket.close(code=close_code)
        if session.env is not None:
            env, session.env = session.env, None
            self._executor.submit(_close_quietly, env)

    async def _reap_idle_sessions(self) -> None:
        """Close sessions idle past the timeout (clients that vanished without closing)."""
        interval = min(1.0, self.settings.idle_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if not session.busy and now - session.last_active > self.settings.idle_timeout:
                    await self._end(
                        session,
                        ErrorCode.SESSION_EXPIRED,
                        f"the session was idle for more than {self.settings.idle_timeout:g} s "
                        "and was closed; reset() to start a new session",
                    )

    @staticmethod
    async def _send_error(websocket: Any, code: ErrorCode, message: str) -> None:
        await websocket.send_text(json.dumps(_error(code, message)))


def _error(code: ErrorCode, message: str) -> dict[str, Any]:
    return {"type": "error", "data": {"message": message, "code": code.value}}


def _close_quietly(env: gym.Env) -> None:
    with contextlib.suppress(Exception):
        env.close()


def _agentgym_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentgym")
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------- command line --


def parse_env_kwargs(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` arguments as constructor kwargs (values parsed as YAML: 5, true, [1])."""
    import yaml

    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"expected key=value, got {pair!r} (e.g. difficulty=easy)")
        kwargs[key] = yaml.safe_load(value) if value else ""
    return kwargs


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentgym serve-env",
        description="Serve a registered environment over OpenEnv's WebSocket protocol "
        "(one environment per session).",
        epilog="Clients: gymnasium.make('agentgym/Remote-v0', url=URL, token=TOKEN), or any "
        "OpenEnv client (WebSocket at URL/ws, header 'Authorization: Bearer TOKEN').",
    )
    parser.add_argument("env_id", help="a registered id, e.g. agentgym/Calculator-v0")
    parser.add_argument("kwargs", nargs="*", help="constructor arguments as key=value")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=8010, help="0 picks a free port")
    parser.add_argument(
        "--token", default=None, help=f"bearer token (default: ${TOKEN_ENV_VAR}, else random)"
    )
    parser.add_argument(
        "--no-token", action="store_true", help="accept clients without a token (loopback only)"
    )
    parser.add_argument("--max-sessions", type=int, default=64)
    parser.add_argument("--idle-timeout", type=float, default=300.0, help="seconds")
    parser.add_argument("--step-timeout", type=float, default=120.0, help="seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``agentgym serve-env``: serve until interrupted (SIGINT/SIGTERM)."""
    args = _parser().parse_args(argv)
    try:
        import uvicorn
    except ImportError:
        print(
            "agentgym serve-env needs the serve extra: pip install 'agentgym[serve]'",
            file=sys.stderr,
        )
        return 2
    import agentgym  # noqa: F401  (registers the built-in environments)

    if args.no_token and not _is_loopback(args.host):
        print(
            f"agentgym serve-env: --no-token is refused on {args.host}: anyone who can reach "
            "that address could run episodes. Bind to 127.0.0.1 or keep the token.",
            file=sys.stderr,
        )
        return 2
    token = None if args.no_token else (args.token or os.environ.get(TOKEN_ENV_VAR))
    generated = token is None and not args.no_token
    if generated:
        token = secrets.token_urlsafe(24)
    try:
        settings = ServerSettings(
            env_id=args.env_id,
            env_kwargs=parse_env_kwargs(args.kwargs),
            token=token,
            max_sessions=args.max_sessions,
            idle_timeout=args.idle_timeout,
            step_timeout=args.step_timeout,
        )
        server = EnvServer(settings)
    except (ValueError, TypeError, gym.error.Error) as exc:
        print(f"agentgym serve-env: {exc}", file=sys.stderr)
        return 2
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((args.host, args.port))
    except OSError as exc:
        print(f"agentgym serve-env: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    # Listening before the ready line: clients that connect before uvicorn's loop runs wait
    # in the backlog instead of being refused.
    listener.listen(2048)
    port = listener.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    if not _is_loopback(args.host):
        print(
            "agentgym serve-env: warning: serving beyond loopback without TLS; put a TLS proxy "
            "or an SSH tunnel in front so the token is not sent in clear text",
            file=sys.stderr,
        )
    shown = token if generated else ("<none>" if token is None else "<as given>")
    # One parseable line, flushed before serving: scripts and tests wait for it.
    print(f"agentgym serve-env: {args.env_id} on http://{host}:{port} token={shown}", flush=True)
    config = uvicorn.Config(
        server.app,
        log_level="warning",
        ws_max_size=settings.max_message_bytes or 1 << 20,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=5,
    )
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[listener])
    return 0


if __name__ == "__main__":
    sys.exit(main())
