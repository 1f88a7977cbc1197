"""Text spaces for agent environments: any printable text, newlines, JSON and non-ASCII.

Gymnasium's :class:`~gymnasium.spaces.Text` checks membership against an explicit
character set. Listing every Unicode character would cost ~100 MB per space, so
:class:`AgentText` keeps a representative alphabet for sampling and checks membership with
a rule instead: any string whose characters are not control characters (tab, newline and
carriage return excepted) and not lone surrogates (which cannot be encoded as UTF-8).

Example:
    >>> space = AgentText(max_length=64)
    >>> space.contains('{"city": "Zürich", "note": "line1\\nline2"}')
    True
    >>> space.contains("bell\\x07")
    False
    >>> sanitize_text("a\\x00b", 10)
    'a\\ufffdb'

Vector environments: ``gymnasium.make_vec(..., vectorization_mode="async")`` (and
``AsyncVectorEnv`` with its default ``shared_memory=True``) move observations between
processes through shared memory. Gymnasium's own layout for text keeps only characters of
the space's sampling alphabet and is read once, when the vector environment is built, so
every observation would come back as that first read. :class:`AgentText` registers its own
layout (the text as Unicode code points after its length) and a batch that decodes the
buffer whenever it is read, so text observations arrive intact in both vector modes.
"""

from __future__ import annotations

import multiprocessing
import re
import string
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any, overload

import numpy as np
from gymnasium.spaces import Text
from gymnasium.vector.utils import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)

__all__ = ["SAMPLE_ALPHABET", "AgentText", "SharedTextBatch", "sanitize_text"]

# Characters that never belong in an observation or action: C0/C1 controls other than
# tab/newline/carriage return, DEL, and lone UTF-16 surrogates.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

#: What ``sample()`` draws from: printable ASCII (JSON punctuation included), whitespace,
#: and letters from several scripts, so fuzzing exercises non-ASCII paths too.
SAMPLE_ALPHABET: str = (
    string.ascii_letters
    + string.digits
    + string.punctuation
    + " \n\t"
    + "éüßçñøåÆŒ"
    + "αβγΔΩ"
    + "жЖщЯ"
    + "中文字日本語"
    + "한국"
    + "ا ب"
    + "🙂"
)

_TRUNCATION_MARK = " …[truncated]"


class AgentText(Text):
    """A :class:`gymnasium.spaces.Text` that admits any printable Unicode text.

    Args:
        max_length: Largest number of characters.
        min_length: Smallest number of characters (0: the empty string is allowed).
        seed: Seed for ``sample()``.
    """

    def __init__(
        self,
        max_length: int,
        *,
        min_length: int = 0,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(max_length, min_length=min_length, charset=SAMPLE_ALPHABET, seed=seed)

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is a string of allowed length with no control characters."""
        return (
            isinstance(x, str)
            and self.min_length <= len(x) <= self.max_length
            and _FORBIDDEN.search(x) is None
        )

    def __repr__(self) -> str:
        return f"AgentText({self.min_length}, {self.max_length}, charset=<printable unicode>)"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, AgentText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )

    __hash__ = None  # type: ignore[assignment]  # mutable RNG state; same as gymnasium spaces


def sanitize_text(text: str, max_length: int) -> str:
    """Make ``text`` a member of ``AgentText(max_length)``.

    Control characters become U+FFFD and over-long text is cut with a visible marker, so
    the agent can tell that it did not see everything.
    """
    if _FORBIDDEN.search(text) is not None:
        text = _FORBIDDEN.sub("\ufffd", text)
    if len(text) > max_length:
        keep = max(0, max_length - len(_TRUNCATION_MARK))
        text = (text[:keep] + _TRUNCATION_MARK)[:max_length]
    return text


# ------------------------------------------------------------------ vector environments --
#
# Gymnasium dispatches its shared-memory helpers on the space's type (functools
# singledispatch), so registering AgentText here replaces the Text layout for our spaces only.
# One row per environment: the text's length in code points, then the code points (UTF-32).

_CODE_POINT = np.dtype("<i4")


def _rows(shared_memory: Any, space: AgentText, n: int) -> np.ndarray:
    return np.frombuffer(shared_memory.get_obj(), dtype=_CODE_POINT).reshape(
        n, space.max_length + 1
    )


class SharedTextBatch(Sequence[str]):
    """The texts in a vector environment's shared-memory buffer, decoded on every read.

    ``AsyncVectorEnv`` reads its observation buffer once, when it is built, and hands out
    (a deep copy of) that object after every ``reset`` and ``step``. For arrays that is a
    view that changes with the buffer; this class is the same for text. A deep copy (what
    ``AsyncVectorEnv`` returns with its default ``copy=True``) is a plain ``tuple``.

    Example:
        >>> import multiprocessing
        >>> space = AgentText(8)
        >>> memory = create_shared_memory(space, n=2, ctx=multiprocessing)
        >>> batch = read_from_shared_memory(space, memory, n=2)
        >>> write_to_shared_memory(space, 1, "Zürich", memory)
        >>> batch
        SharedTextBatch(('', 'Zürich'))
        >>> import copy; copy.deepcopy(batch)
        ('', 'Zürich')
    """

    def __init__(self, rows: np.ndarray) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        row = self._rows[index]
        length = int(row[0])
        return row[1 : 1 + length].tobytes().decode("utf-32-le", "surrogatepass")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SharedTextBatch | tuple | list):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # changes with the buffer

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return f"SharedTextBatch({tuple(self)!r})"


@create_shared_memory.register(AgentText)
def _create_agent_text_shared_memory(
    space: AgentText, n: int = 1, ctx: ModuleType = multiprocessing
) -> Any:
    return ctx.Array(_CODE_POINT.char, n * (space.max_length + 1))


@read_from_shared_memory.register(AgentText)
def _read_agent_text_from_shared_memory(
    space: AgentText, shared_memory: Any, n: int = 1
) -> SharedTextBatch:
    return SharedTextBatch(_rows(shared_memory, space, n))


@write_to_shared_memory.register(AgentText)
def _write_agent_text_to_shared_memory(
    space: AgentText, index: int, value: str, shared_memory: Any
) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{space!r} holds text; got {type(value).__name__}")
    codes = np.frombuffer(value.encode("utf-32-le", "surrogatepass"), dtype=_CODE_POINT)
    if len(codes) > space.max_length:
        raise ValueError(
            f"A text of {len(codes)} characters does not fit {space!r}; environments cut "
            "observations with sanitize_text(text, max_length) before returning them."
        )
    n = len(shared_memory.get_obj()) // (space.max_length + 1)
    row = _rows(shared_memory, space, n)[index]
    row[0] = len(codes)
    row[1 : 1 + len(codes)] = codes
