"""The OpenAI-compatible HTTP wire format: errors, retry hints, messages and tool calls.

What :class:`agentgym.engines.openai.OpenAIEngine` sends and reads, kept apart from the
engine's request loop: the statuses worth another try, the server's error text and
``Retry-After``, finish reasons, tool schemas and messages as sent, and
:func:`render_hermes` (an assistant message with tool calls as Hermes text).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from agentgym.engines.base import FinishReason

__all__ = [
    "MAX_WAIT_SECONDS",
    "RETRY_STATUSES",
    "TOKEN_ID_PREFIX",
    "VLLM_TOKEN_FIELDS",
    "OpenAIEngineError",
    "finish_reason",
    "normalise_base_url",
    "normalise_tools",
    "render_hermes",
    "retry_after_seconds",
    "server_message",
    "wire_message",
]

#: Statuses worth another try: rate limits and server-side failures.
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
#: Longest single wait between tries (a ``Retry-After`` beyond this is cut to it).
MAX_WAIT_SECONDS = 60.0
#: vLLM request fields that return exact token ids (see the module docstring).
VLLM_TOKEN_FIELDS: dict[str, Any] = {"return_token_ids": True, "return_tokens_as_token_ids": True}
#: Message keys of the OpenAI chat format; other keys (agentgym bookkeeping) are not sent.
MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "tool_calls", "tool_call_id", "reasoning", "reasoning_content"}
)
TOKEN_ID_PREFIX = "token_id:"
_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",
    "tool_calls": "stop",
    "function_call": "stop",
    "length": "length",
}


class OpenAIEngineError(RuntimeError):
    """A request to the server failed for good.

    Attributes:
        url: The endpoint that was called.
        status: The last HTTP status (``None`` when no response came: connection error,
            timeout).
        server_message: The server's error message (or the transport error).
        attempts: How many times the request was sent.
    """

    def __init__(
        self, url: str, status: int | None, server_message: str, attempts: int, hint: str = ""
    ) -> None:
        self.url = url
        self.status = status
        self.server_message = server_message
        self.attempts = attempts
        what = f"HTTP {status}" if status is not None else "no response"
        tries = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
        retried = "" if status is None or status in RETRY_STATUSES else " (not retried)"
        super().__init__(
            f"POST {url} failed {tries}{retried}: {what}: {server_message}"
            + (f" Hint: {hint}" if hint else "")
        )


def normalise_base_url(base_url: str) -> str:
    """``scheme://host[:port][/prefix]`` without a trailing ``/`` or ``/v1``."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError(f"base_url must be a non-empty http(s) URL, got {base_url!r}")
    url = base_url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"base_url must start with http:// or https:// and name a host, got {base_url!r} "
            "(for example 'http://127.0.0.1:8000' or 'http://127.0.0.1:8000/v1')."
        )
    if parts.query or parts.fragment:
        raise ValueError(f"base_url must not have a query or fragment, got {base_url!r}")
    path = parts.path.rstrip("/")
    for endpoint in ("/completions", "/chat/completions", "/models"):
        if path.endswith(endpoint):
            raise ValueError(
                f"base_url should be the server root or its /v1 prefix, not an endpoint: "
                f"got {base_url!r}; use {url[: url.rfind(endpoint)]!r}."
            )
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return f"{parts.scheme}://{parts.netloc}{path}"


def server_message(response: Any) -> str:
    """The error message in an error response (OpenAI, FastAPI or plain-text bodies)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:1000] if text else (response.reason_phrase or "(empty body)")
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        for key in ("message", "detail"):
            if body.get(key):
                value = body[key]
                return value if isinstance(value, str) else json.dumps(value)[:1000]
    return json.dumps(body)[:1000]


def retry_after_seconds(response: Any) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def finish_reason(reason: Any) -> FinishReason:
    return _FINISH_REASONS.get(str(reason), "error")


def normalise_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tool schemas; a bare function schema is wrapped in ``{"type": "function"}``."""
    normalised = []
    for tool in tools:
        tool = dict(tool)
        if "function" in tool:
            tool.setdefault("type", "function")
            normalised.append(tool)
        else:
            normalised.append({"type": "function", "function": tool})
    return normalised


def wire_message(message: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if key in MESSAGE_KEYS}


def _dump_call(name: str, arguments: Any) -> str:
    # Same layout as HermesParser.format_calls; `<` only occurs inside JSON strings, where
    # \u003c is an equivalent escape, so no tag can appear inside the JSON.
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return "<tool_call>\n" + body.replace("<", "\\u003c") + "\n</tool_call>"


def render_hermes(message: Mapping[str, Any]) -> str:
    """An assistant message (OpenAI format) as Hermes text: reasoning, content, tool calls.

    ``arguments`` given as a JSON string (OpenAI style) are decoded into an object; a string
    that is not valid JSON is kept as a string, so the hermes parser reports it to the agent.

    >>> render_hermes({"content": "Adding.", "tool_calls": [{"type": "function",
    ...     "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}]})
    'Adding.\\n<tool_call>\\n{"name": "add", "arguments": {"a": 1, "b": 2}}\\n</tool_call>'
    """
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    prefix = f"<think>\n{reasoning}\n</think>\n\n" if reasoning else ""
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts
        content = "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        arguments: Any = function.get("arguments")
        if isinstance(arguments, str):
            with contextlib.suppress(ValueError):  # invalid JSON stays a string
                arguments = json.loads(arguments) if arguments.strip() else {}
        elif arguments is None:
            arguments = {}
        calls.append(_dump_call(str(function.get("name", "")), arguments))
    if not calls:
        return prefix + content
    return prefix + "\n".join([content.rstrip(), *calls] if content.strip() else calls)
