"""Turn a trajectory into what the episode page shows: turns, tool calls, token heat maps.

Everything here returns plain data (strings, numbers, small dataclasses); the templates
escape every string they print, so model and environment text never becomes markup.

>>> text = 'Let me add.<tool_call>{"name": "add"}</tool_call>'
>>> [(part.kind, part.text) for part in segments(text)]
[('text', 'Let me add.'), ('tool_call', '{\\n  "name": "add"\\n}')]
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym.core.trajectory import Message, Step, Trajectory

__all__ = ["Part", "Token", "Turn", "pretty_json", "segments", "token_heat", "turns"]

logger = logging.getLogger(__name__)

# Tagged blocks that models and prompts use; shown as their own boxes.
_BLOCKS = re.compile(r"<(tool_call|tools|think|answer|tool_response)>(.*?)</\1>", re.DOTALL)


@dataclass
class Part:
    """A piece of a message: plain ``text``, a ``tool_call`` (JSON pretty-printed when it
    parses), a ``tools`` list, a ``think`` block, an ``answer``, a ``tool_response``, or a
    ``tool_result`` (a tool message holding JSON, indented)."""

    kind: str
    text: str
    valid_json: bool = False


def pretty_json(value: Any) -> str | None:
    """Indented JSON of a value or of a JSON string; None when a string is not JSON.

    >>> print(pretty_json('{"a": [1, 2]}'))
    {
      "a": [
        1,
        2
      ]
    }
    >>> pretty_json("not json") is None
    True
    """
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        return None


def _tool_list(body: str) -> str:
    """A ``<tools>`` block: one JSON schema per line, each indented."""
    return "\n".join(pretty_json(line) or line for line in body.strip().splitlines())


def segments(text: str) -> list[Part]:
    """Split message text into plain text and tagged blocks (tool calls as indented JSON)."""
    parts: list[Part] = []
    position = 0
    for match in _BLOCKS.finditer(text):
        before = text[position : match.start()]
        if before.strip():
            parts.append(Part("text", before.strip("\n")))
        kind, body = match.group(1), match.group(2)
        if kind == "tools":
            parts.append(Part(kind, _tool_list(body), valid_json=True))
        elif kind in ("tool_call", "tool_response"):
            pretty = pretty_json(body.strip())
            parts.append(Part(kind, pretty or body.strip(), valid_json=pretty is not None))
        else:
            parts.append(Part(kind, body.strip("\n")))
        position = match.end()
    rest = text[position:]
    if rest.strip() or not parts:
        parts.append(Part("text", rest.strip("\n")))
    return parts


@dataclass
class Token:
    """One sampled token with its log-probability and the heat-map colour for it."""

    text: str
    logprob: float
    colour: str


def _colour(logprob: float) -> str:
    """Green for likely tokens through yellow to red for unlikely ones (hue = 120 * p)."""
    probability = math.exp(logprob) if math.isfinite(logprob) and logprob <= 0 else 0.0
    return f"hsl({round(120 * probability)}, 85%, 82%)"


def token_heat(
    message: Message, decode: Callable[[Sequence[int]], list[str]] | None
) -> list[Token] | None:
    """The sampled tokens of an assistant message with log-probs, or None without them.

    Without a tokenizer (``decode=None``) tokens show as their ids.

    >>> message = Message("assistant", "hi", token_ids=[5, 7], logprobs=[-0.1, -3.0])
    >>> [(t.text, t.colour) for t in token_heat(message, None)]
    [('#5', 'hsl(109, 85%, 82%)'), ('#7', 'hsl(6, 85%, 82%)')]
    """
    if not message.logprobs or not message.token_ids:
        return None
    # logprobs has one entry per sampled token: those are the last ids of the message.
    ids = list(message.token_ids[-len(message.logprobs) :])
    logprobs = list(message.logprobs[-len(ids) :])
    texts = None
    if decode is not None:
        try:
            texts = decode(ids)
        except Exception as error:  # a tokenizer that does not fit these ids
            logger.warning("could not decode sampled tokens: %s", error)
    if texts is None or len(texts) != len(ids):
        texts = [f"#{token}" for token in ids]
    return [Token(t, float(lp), _colour(float(lp))) for t, lp in zip(texts, logprobs, strict=True)]


@dataclass
class Turn:
    """One message as the episode page shows it, with the environment step it caused."""

    index: int
    message: Message
    parts: list[Part]
    step: Step | None = None  # for assistant messages: the transition their action caused
    step_number: int | None = None
    replayed: bool = False  # an action copied from the parent episode (before restart_step)
    tokens: list[Token] | None = None
    tool_calls_json: str | None = None
    info_json: str | None = None
    notes: list[str] = field(default_factory=list)


def turns(
    trajectory: Trajectory, decode: Callable[[Sequence[int]], list[str]] | None = None
) -> list[Turn]:
    """Pair every assistant message with its step (by order) and prepare each for display."""
    shown: list[Turn] = []
    actions = 0
    replayed = trajectory.restart_step or 0
    for index, message in enumerate(trajectory.messages):
        turn = Turn(index, message, segments(message.content))
        if message.role == "tool" and message.content.lstrip()[:1] in ("{", "["):
            pretty = pretty_json(message.content)
            if pretty is not None:  # a structured tool result: show it indented
                turn.parts = [Part("tool_result", pretty, valid_json=True)]
        if message.tool_calls:
            turn.tool_calls_json = pretty_json(message.tool_calls)
        if message.role == "assistant":
            if actions < len(trajectory.steps):
                turn.step = trajectory.steps[actions]
                turn.step_number = actions
                if turn.step.action != message.content:
                    turn.notes.append("the environment received a different action text")
                if turn.step.info:
                    turn.info_json = pretty_json(turn.step.info)
            turn.replayed = actions < replayed
            turn.tokens = token_heat(message, decode)
            actions += 1
        if message.role == "system":
            turn.parts = [p for p in turn.parts if p.kind != "tools"]
        shown.append(turn)
    return shown


def tool_list(trajectory: Trajectory) -> tuple[str, int] | None:
    """The system prompt's ``<tools>`` block, indented, and how many tools it lists.

    >>> prompt = 'Use tools.<tools>\\n{"name": "add"}\\n{"name": "mul"}\\n</tools>'
    >>> tool_list(Trajectory("e", "t", messages=[Message("system", prompt)]))[1]
    2
    """
    for message in trajectory.messages:
        if message.role != "system":
            continue
        for match in _BLOCKS.finditer(message.content):
            if match.group(1) == "tools":
                count = sum(1 for line in match.group(2).splitlines() if line.strip())
                return _tool_list(match.group(2)), count
    return None


# --------------------------------------------------------------------------- the tokenizer


class TokenizerSource:
    """Finds and loads, once, the tokenizer that decodes a run's sampled tokens.

    Only files already on disk are used: the run's own checkpoints first (they are saved
    with their tokenizer), then the model cache for the run's ``model.name``; nothing is
    downloaded or built, so the viewer stays read-only. The ``tokenizers`` library reads
    ``tokenizer.json`` directly (no ``transformers``/``torch`` import: the viewer stays
    small and quick).
    """

    def __init__(self, run_path: Path | None, model_name: str | None) -> None:
        self._run_path = run_path
        self._model_name = model_name
        self._lock = threading.Lock()
        self._loaded = False
        self._tokenizer: Any = None
        self.description = "none found (tokens are shown as ids)"

    def _candidates(self) -> list[Path]:
        found: list[Path] = []
        if self._run_path is not None and (self._run_path / "checkpoints").is_dir():
            folders = sorted((self._run_path / "checkpoints").iterdir(), reverse=True)
            found.extend(f / "tokenizer.json" for f in folders)
        if self._model_name:
            found.append(Path(self._model_name).expanduser() / "tokenizer.json")
            from agentgym.models import cache_dir

            found.append(cache_dir() / "models" / self._model_name / "tokenizer.json")
        return [path for path in found if path.is_file()]

    def decoder(self) -> Callable[[Sequence[int]], list[str]] | None:
        """A function from token ids to their texts, or None when no tokenizer is at hand."""
        with self._lock:
            if not self._loaded:
                self._loaded = True
                for path in self._candidates():
                    try:
                        from tokenizers import Tokenizer

                        self._tokenizer = Tokenizer.from_file(str(path))
                        self.description = str(path.parent)
                        break
                    except Exception as error:  # a broken file: try the next one
                        logger.warning("cannot load a tokenizer from %s: %s", path, error)
        if self._tokenizer is None:
            return None
        tokenizer = self._tokenizer
        return lambda ids: [tokenizer.decode([token], skip_special_tokens=False) for token in ids]
