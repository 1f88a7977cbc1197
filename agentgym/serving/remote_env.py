"""A Gymnasium environment whose episodes run on an ``agentgym serve-env`` server.

``gymnasium.make("agentgym/Remote-v0", url=URL, token=TOKEN)`` gives a :class:`RemoteEnv`:
the same ``reset``/``step`` contract as the served environment (text observations, the
same ``info`` keys, same seed -> same episode), with the environment running in the
server's process. Each :class:`RemoteEnv` holds one WebSocket session, i.e. one
environment copy on the server.

Failures are errors with the cause and the fix, never hangs:

* a wrong or missing token: :class:`RemoteEnvError` at construction, naming HTTP 401;
* the server restarted or went away: the next ``step`` raises :class:`RemoteEnvError`
  (the episode lived in the server's memory and is gone); ``reset`` reconnects, opening a
  new session, so a training loop that resets after an error carries on. Seeded resets
  replay exactly; an unseeded reset after a reconnect starts from the new session's RNG;
* the session was closed by the server (idle or step timeout, capacity): the server's
  reason, e.g. ``SESSION_EXPIRED``;
* no answer within ``message_timeout`` seconds: :class:`RemoteEnvError`.

Example (with a server started by ``agentgym serve-env agentgym/Calculator-v0``)::

    env = gymnasium.make("agentgym/Remote-v0", url="http://127.0.0.1:8010", token=TOKEN)
    observation, info = env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step("<tool_call>...")
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import gymnasium as gym

from agentgym.core.spaces import AgentText
from agentgym.serving.protocol import TOKEN_ENV_VAR, step_message, to_json

__all__ = ["RemoteEnv", "RemoteEnvError"]

logger = logging.getLogger(__name__)


class RemoteEnvError(RuntimeError):
    """The server refused a request, closed the session, or cannot be reached.

    Attributes:
        code: The server's error code (``SESSION_EXPIRED``, ``TIMEOUT``, ...), ``"HTTP_401"``
            for a rejected token, ``"CONNECTION_LOST"`` or ``"UNREACHABLE"``.
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class RemoteEnv(gym.Env[str, str]):
    """A client of an ``agentgym serve-env`` server that is itself a Gymnasium environment.

    ## Description
    Runs the served environment's episodes over OpenEnv's WebSocket protocol: ``reset``
    and ``step`` send one message each and return the server's answer.

    ## Action Space
    The served environment's: text up to its ``max_action_length``.

    ## Observation Space
    The served environment's: text up to its ``max_observation_length``.

    ## Rewards
    The served environment's.

    ## Episode End
    The served environment's ``terminated`` and ``truncated`` (its time limit is applied
    on the server, so this id registers none).

    ## Arguments
    ``url`` (``http://host:port``), ``token`` (default: ``$AGENTGYM_ENV_TOKEN``),
    ``connect_timeout`` and ``message_timeout`` (seconds), ``render_mode``.

    ## Version History
    * v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "render_fps": 4}

    def __init__(
        self,
        *,
        url: str,
        token: str | None = None,
        connect_timeout: float = 10.0,
        message_timeout: float = 300.0,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is not supported; valid: None, 'ansi'")
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
            raise ValueError(f"url={url!r} is not a server address; expected http://host:port")
        secure = parts.scheme in ("https", "wss")
        base_path = parts.path.rstrip("/")
        self.url = urlunsplit(("https" if secure else "http", parts.netloc, base_path, "", ""))
        self._ws_url = urlunsplit(
            ("wss" if secure else "ws", parts.netloc, f"{base_path}/ws", "", "")
        )
        self._token = token if token is not None else os.environ.get(TOKEN_ENV_VAR)
        self.connect_timeout = connect_timeout
        self.message_timeout = message_timeout
        self.render_mode = render_mode
        self.server_metadata = self._fetch_metadata()
        self.observation_space = AgentText(self.server_metadata["max_observation_length"] or 32_768)
        self.action_space = AgentText(self.server_metadata["max_action_length"] or 16_384)
        #: How many times ``reset`` opened a new session after the old one was lost.
        self.reconnects = 0
        self._sessions_opened = 0
        self._connection: Any = None

    # ------------------------------------------------------------------ connection --

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _fetch_metadata(self) -> dict[str, Any]:
        import httpx

        try:
            response = httpx.get(
                f"{self.url}/metadata", headers=self._headers(), timeout=self.connect_timeout
            )
        except httpx.HTTPError as exc:
            raise RemoteEnvError(
                f"cannot reach the environment server at {self.url} ({exc}); is "
                "`agentgym serve-env` running there?",
                "UNREACHABLE",
            ) from None
        if response.status_code == 401:
            raise self._token_error()
        if response.status_code != 200:
            raise RemoteEnvError(
                f"{self.url}/metadata answered HTTP {response.status_code}; is this an "
                "`agentgym serve-env` server?",
                f"HTTP_{response.status_code}",
            )
        return response.json()

    def _token_error(self) -> RemoteEnvError:
        given = "a token that the server rejected" if self._token else "no token"
        return RemoteEnvError(
            f"HTTP 401 Unauthorized from {self.url}: the request carried {given}. Pass "
            f"token=... (the one `agentgym serve-env` printed or was given) or set "
            f"${TOKEN_ENV_VAR}.",
            "HTTP_401",
        )

    def _connect(self) -> None:
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        try:
            connection = connect(
                self._ws_url,
                additional_headers=self._headers(),
                open_timeout=self.connect_timeout,
                max_size=None,
            )
            # The session outlives this call (closed in close()); entering the context marks
            # it as managed, which websockets >= 17.1 otherwise warns about.
            self._connection = connection.__enter__()
        except InvalidStatus as exc:
            if exc.response.status_code == 401:
                raise self._token_error() from None
            raise RemoteEnvError(
                f"{self._ws_url} refused the session: HTTP {exc.response.status_code}",
                f"HTTP_{exc.response.status_code}",
            ) from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise RemoteEnvError(
                f"cannot open a session at {self._ws_url} ({exc}); is the server running?",
                "UNREACHABLE",
            ) from None

    def _disconnect(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):  # already broken: nothing to release
                connection.close()

    def _request(self, message: dict[str, Any], expected: str) -> dict[str, Any]:
        """Send one message, return the answer's data; errors become RemoteEnvError."""
        from websockets.exceptions import ConnectionClosed

        connection = self._connection
        if connection is None:
            raise RemoteEnvError(
                "no session with the server (the previous one was lost); call reset() to "
                "open a new one",
                "CONNECTION_LOST",
            )
        try:
            # The server may have queued its reason before closing: recv() reads it.
            with contextlib.suppress(ConnectionClosed):
                connection.send(json.dumps(message))
            raw = connection.recv(timeout=self.message_timeout)
        except TimeoutError:
            self._disconnect()
            raise RemoteEnvError(
                f"no answer from {self.url} within {self.message_timeout:g} s; the session "
                "was dropped (raise message_timeout for slow environments)",
                "TIMEOUT",
            ) from None
        except (ConnectionClosed, OSError) as exc:
            self._disconnect()
            raise RemoteEnvError(
                f"lost the connection to the environment server at {self.url} ({exc}): the "
                "server restarted or went away, and this episode is gone with it. Call "
                "reset() to open a new session (it reconnects).",
                "CONNECTION_LOST",
            ) from None
        answer = json.loads(raw)
        if answer.get("type") == "error":
            data = answer.get("data", {})
            code = str(data.get("code", "UNKNOWN"))
            if code in ("SESSION_EXPIRED", "TIMEOUT", "SHUTDOWN", "CAPACITY_REACHED"):
                self._disconnect()  # the server has closed this session
            raise RemoteEnvError(
                f"the environment server answered {code}: {data.get('message', '')}", code
            )
        if answer.get("type") != expected:
            raise RemoteEnvError(
                f"expected a {expected!r} message from {self.url}, got {answer.get('type')!r}",
                "PROTOCOL",
            )
        return answer.get("data", {})

    # ------------------------------------------------------------------ gymnasium API --

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode on the server (opening a session first if there is none)."""
        super().reset(seed=seed)
        message = {"type": "reset", "data": {"seed": seed, "options": to_json(options)}}
        data = None
        if self._connection is not None:
            try:
                data = self._request(message, "observation")
            except RemoteEnvError as exc:
                if self._connection is not None:
                    raise  # the server answered: a real error, not a lost session
                logger.warning("reconnecting to %s after: %s", self.url, exc)
        if data is None:
            if self._sessions_opened:
                self.reconnects += 1
            self._connect()
            self._sessions_opened += 1
            data = self._request(message, "observation")
        text, _, _, _, info = self._observation(data)
        return text, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Send one action; the server's environment decides what it means.

        An action too long for the server's message limit is sent cut to one character
        over the environment's action limit, so the environment still answers it with its
        "too long" feedback (which then reports that length) instead of the connection
        breaking.
        """
        message = step_message(action)
        limit = self.server_metadata.get("max_message_bytes")
        if limit and isinstance(action, str) and len(json.dumps(message)) > limit:
            message = step_message(action[: self.action_space.max_length + 1])
        return self._observation(self._request(message, "observation"))

    @staticmethod
    def _observation(data: dict[str, Any]) -> tuple[str, float, bool, bool, dict[str, Any]]:
        observation = data["observation"]
        return (
            observation["text"],
            float(data.get("reward") or 0.0),
            bool(observation["terminated"]),
            bool(observation["truncated"]),
            observation["info"],
        )

    def state(self) -> dict[str, Any]:
        """The session's state: session and episode ids, step count, task id, seed."""
        return self._request({"type": "state"}, "state")

    def render(self) -> str | None:
        """The served environment's text rendering (``render_mode`` ``"ansi"``/``"human"``)."""
        if self.render_mode is None:
            return None
        if not self.server_metadata.get("render_modes"):
            raise RemoteEnvError(
                f"{self.server_metadata['name']} cannot render", "VALIDATION_ERROR"
            )
        text = self._request({"type": "render"}, "render")["text"]
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        """End the session (the server frees its environment copy)."""
        if self._connection is not None:
            with contextlib.suppress(Exception):  # the server may be gone already
                self._connection.send(json.dumps({"type": "close"}))
            self._disconnect()
        super().close()
