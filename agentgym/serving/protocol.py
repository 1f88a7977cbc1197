"""The wire format shared by the environment server and its client (OpenEnv's, for text).

OpenEnv serves an environment over a WebSocket at ``/ws``: each connection is one session
with its own environment, and messages are JSON objects ``{"type": ..., "data": ...}``.

=====================  =================================================================
client sends           server answers
=====================  =================================================================
``reset``              ``observation``: ``{"observation": {...}, "reward": null,
``{"seed", "options"}``  ``"done": false}``
``step``               ``observation``: ``{"observation": {...}, "reward": r, "done": d}``
``{"message": text}``
``state``              ``state``: episode id, step count, task id, episode seed, ...
``render``             ``render``: ``{"text": ...}`` (an agentgym extension)
``close``              (the server ends the session and closes the socket)
anything wrong         ``error``: ``{"message": ..., "code": ...}`` (see :class:`ErrorCode`)
=====================  =================================================================

The observation object holds the environment's text, its ``info`` dict and the two
Gymnasium end flags, ``{"text", "info", "terminated", "truncated"}``; ``done`` is their
``or``, as OpenEnv clients expect.

Example:
    >>> import numpy as np
    >>> to_json({"reward": np.float32(0.5), "calls": ("add", "mul"), 3: {1, 2}})
    {'reward': 0.5, 'calls': ['add', 'mul'], '3': [1, 2]}
    >>> step_message("1 + 2")
    {'type': 'step', 'data': {'message': '1 + 2'}}
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "TOKEN_ENV_VAR",
    "ErrorCode",
    "action_schema",
    "observation_schema",
    "step_message",
    "to_json",
]

#: Environment variable holding the bearer token (read by the server and the client).
TOKEN_ENV_VAR = "AGENTGYM_ENV_TOKEN"


class ErrorCode(enum.StrEnum):
    """The ``code`` of an ``error`` message (OpenEnv's codes plus agentgym's own)."""

    INVALID_JSON = "INVALID_JSON"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    EXECUTION_ERROR = "EXECUTION_ERROR"
    CAPACITY_REACHED = "CAPACITY_REACHED"
    FACTORY_ERROR = "FACTORY_ERROR"
    #: The session was idle longer than the server's idle timeout and was closed.
    SESSION_EXPIRED = "SESSION_EXPIRED"
    #: A reset or step ran longer than the server's step timeout; the session was closed.
    TIMEOUT = "TIMEOUT"
    #: The server is shutting down.
    SHUTDOWN = "SHUTDOWN"


def step_message(action: Any) -> dict[str, Any]:
    """The ``step`` message for one action (non-text actions travel as JSON values)."""
    return {"type": "step", "data": {"message": to_json(action)}}


def to_json(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars and arrays, tuples, sets, dataclasses and
    enums become their JSON equivalents; keys become strings; anything else its ``repr``.

    Non-finite floats become ``None`` (JSON has no NaN), so every message parses anywhere.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, set | frozenset):
        return [to_json(item) for item in sorted(value, key=repr)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(dataclasses.asdict(value))
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return to_json(value.tolist())
    return repr(value)


def action_schema(max_length: int) -> dict[str, Any]:
    """JSON schema of a ``step`` message's data (OpenEnv's ``/schema`` ``action``)."""
    return {
        "title": "TextAction",
        "type": "object",
        "properties": {
            "message": {
                "type": "string",
                "maxLength": max_length,
                "description": "The agent's action text (a reply or tool calls).",
            }
        },
        "required": ["message"],
    }


def observation_schema(max_length: int) -> dict[str, Any]:
    """JSON schema of an observation object (OpenEnv's ``/schema`` ``observation``)."""
    return {
        "title": "TextObservation",
        "type": "object",
        "properties": {
            "text": {"type": "string", "maxLength": max_length},
            "info": {"type": "object", "description": "The environment's info dict."},
            "terminated": {"type": "boolean"},
            "truncated": {"type": "boolean"},
        },
        "required": ["text", "info", "terminated", "truncated"],
    }
