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
"""

from __future__ import annotations

import re
import string
from typing import Any

import numpy as np
from gymnasium.spaces import Text

__all__ = ["SAMPLE_ALPHABET", "AgentText", "sanitize_text"]

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
