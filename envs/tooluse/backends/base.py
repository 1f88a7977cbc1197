"""The base class of the stateful domain backends (file system, trading, ...).

A backend is a Python class whose ``@tool`` methods act on the instance's attributes. Its
whole state is loaded from a JSON-like configuration (``Backend(config)``), so every
episode builds fresh instances from the task's initial configuration and nothing leaks
between episodes or environment copies. The checker compares :meth:`Backend.public_state`
(every attribute whose name does not start with ``_``) of the agent's instances with that
of instances that replayed the ground truth.

Tools report failures by raising ``self.fail(kind, message)``: the message is short and
deliberately vague, as in BFCL's backends ("No such file or directory."); ``kind`` names
the failure for the actionable-augmentation table (:mod:`agentgym.envs.tooluse.augment`),
which turns it into a corrective hint when augmentation is on. A tool checks every
precondition before it changes anything, so a failed call never changes the state.

Example:
    >>> from agentgym.core.tools import tool
    >>> class Counter(Backend):
    ...     '''A counter.'''
    ...     domain = "counter"
    ...     def load(self, config):
    ...         self.value = int(config.get("value", 0))
    ...     @tool
    ...     def increment(self, by: int = 1) -> int:
    ...         '''Add to the counter.
    ...
    ...         Args:
    ...             by: How much to add (positive).
    ...         '''
    ...         if by <= 0:
    ...             raise self.fail("not_positive", "Invalid increment.")
    ...         self.value += by
    ...         return self.value
    >>> counter = Counter({"value": 2})
    >>> Counter.tools()["increment"].__get__(counter).invoke({"by": 3}).content
    '5'
    >>> counter.public_state()
    {'value': 5}
    >>> Counter.tools()["increment"].__get__(counter).invoke({"by": -1}).content
    'Error: Invalid increment.'
    >>> counter.last_error
    'not_positive'
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any, ClassVar

from agentgym.core.tools import Tool, ToolError, ToolSet

__all__ = ["Backend", "BackendError", "clone"]


def clone(data: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, strings, numbers), several times faster
    than :func:`copy.deepcopy`."""
    return pickle.loads(pickle.dumps(data, pickle.HIGHEST_PROTOCOL))


class BackendError(ToolError):
    """A tool failure with a machine-readable ``kind`` (the agent sees only the message)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class Backend:
    """Base class of a stateful tool backend.

    Subclasses set ``domain`` (a short unique name such as ``"filesystem"``), implement
    :meth:`load` and define ``@tool`` methods. Tool names must be unique across the domains
    an environment combines.

    Args:
        config: The initial state, a JSON-like mapping (copied, never mutated).
        long_context: Whether the backend runs in a long-context task (backends may make
            their outputs more verbose; the defaults do nothing with it).
    """

    domain: ClassVar[str] = ""
    _toolsets: ClassVar[dict[type, ToolSet]] = {}

    def __init__(self, config: Mapping[str, Any] | None = None, *, long_context: bool = False):
        self._long_context = long_context
        self._last_error: str | None = None
        self.load(clone(dict(config or {})))

    # ---------------------------------------------------------------- subclass API --

    def load(self, config: dict[str, Any]) -> None:
        """Set the public attributes from ``config`` (a private copy the backend may keep)."""
        raise NotImplementedError

    def fail(self, kind: str, message: str) -> BackendError:
        """Record ``kind`` as the last error and return the exception to raise."""
        self._last_error = kind
        return BackendError(message, kind)

    # ---------------------------------------------------------------- checker API --

    @property
    def last_error(self) -> str | None:
        """The kind of the most recent failure (``None`` if none yet)."""
        return self._last_error

    def clear_error(self) -> None:
        """Forget the last failure (called before each tool call)."""
        self._last_error = None

    def public_state(self) -> dict[str, Any]:
        """A deep copy of every public attribute (name not starting with ``_``)."""
        return clone(self._public())

    def _public(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if not key.startswith("_")}

    def state_difference(self, expected: Backend) -> str | None:
        """``None`` if the public states are equal, else the first difference, in words."""
        mine, theirs = self._public(), expected._public()
        if mine == theirs:
            return None
        for key in sorted(mine.keys() | theirs.keys()):
            if mine.get(key) != theirs.get(key):
                return _describe_difference(key, mine.get(key), theirs.get(key))
        return "the states differ"  # pragma: no cover - unreachable: unequal dicts differ

    # ---------------------------------------------------------------- tools --

    @classmethod
    def tools(cls) -> ToolSet:
        """The class's ``@tool`` methods, unbound, in definition order (built once)."""
        toolset = Backend._toolsets.get(cls)
        if toolset is None:
            found: dict[str, Tool] = {}
            for klass in reversed(cls.__mro__):
                for value in vars(klass).values():
                    if isinstance(value, Tool):
                        found[value.name] = value
            toolset = ToolSet(found.values())
            Backend._toolsets[cls] = toolset
        return toolset

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._public()!r})"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe_difference(path: str, actual: Any, expected: Any) -> str:
    """The innermost differing entry under ``path``, e.g. ``holdings['NVDA'] is 3, expected 5``."""
    while isinstance(actual, dict) and isinstance(expected, dict):
        keys = sorted(actual.keys() | expected.keys(), key=str)
        missing = [k for k in keys if k not in actual]
        extra = [k for k in keys if k not in expected]
        if missing:
            return f"{path} lacks {missing[0]!r}"
        if extra:
            return f"{path} has an unexpected {extra[0]!r}"
        key = next(k for k in keys if actual[k] != expected[k])
        path, actual, expected = f"{path}[{key!r}]", actual[key], expected[key]
    if isinstance(actual, list) and isinstance(expected, list) and len(actual) != len(expected):
        return f"{path} has {len(actual)} entries, expected {len(expected)}"
    return f"{path} is {_short(actual)}, expected {_short(expected)}"
