"""An index over a run's trajectory stores: one small row per episode, records left on disk.

The viewer must open runs of 100k episodes in seconds and a few hundred MB, so it never
loads trajectories wholesale. :class:`RunIndex` reads every store once, line by line, and
keeps for each record only what the episode table filters and sorts on (an
:class:`EpisodeRow`: ids, task, outcome, reward, the first user message, ...) plus the byte
offset and length of its line; the episode page reads that one line back.

Extracting the row must not parse the whole record: the messages (with token ids and
log-probs) are most of its bytes. Records written by :class:`~agentgym.core.trajectory.
TrajectoryStore` have a fixed key order (``env_id, task_id, messages, steps, id, ...``), so
the scalar fields after ``steps`` form a small JSON object at the end of the line that is
parsed alone. Any record that does not fit that shape (another writer, a future field) is
parsed in full instead, and the first records of every store are parsed both ways and
compared, so a store whose records the fast path would misread is read the slow way.

Stores only grow (append-only, complete lines), so :meth:`RunIndex.refresh` reads just the
bytes added since the last call: a page of a run that is still writing shows new episodes.

>>> import tempfile
>>> from agentgym.core.trajectory import Step, Trajectory, TrajectoryStore
>>> run = Path(tempfile.mkdtemp())
>>> with TrajectoryStore(run / "trajectories" / "eval-0.jsonl") as store:
...     store.append([Trajectory("calc-v0", f"task-{i}", id=f"ep-{i}", reward=float(i % 2),
...                              success=bool(i % 2), steps=[Step("a", "b", 0.0)])
...                   for i in range(4)])
4
>>> from agentgym.view.query import EpisodeQuery
>>> index = RunIndex(run)
>>> len(index), index.store_names
(4, ['eval-0'])
>>> [row.id for row in index.select(EpisodeQuery(success="yes")).rows]
['ep-1', 'ep-3']
>>> index.read(index.find("eval-0", "ep-2")).task_id
'task-2'
"""

from __future__ import annotations

import bisect
import json
import math
import os
import re
import threading
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agentgym.core.trajectory import Trajectory
from agentgym.view.query import EpisodeQuery, Selection, select_rows

__all__ = ["EpisodeRow", "RunIndex", "find_stores", "summary_fast", "summary_from_record"]

#: Characters of the first user message and of the feedback kept per row (table excerpts).
EXCERPT_CHARS = 160
#: Records of each store that are parsed both ways to check the fast path (see module doc).
SELF_CHECK_RECORDS = 16
_SEARCH_BLOCK_BYTES = 16 << 20

_HEAD = re.compile(rb'\{"env_id":("(?:[^"\\]|\\.)*"),"task_id":("(?:[^"\\]|\\.)*"),"messages":\[')
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_FIRST_USER = b'{"role":"user","content":'
_STEPS_START = b'],"steps":['
_TAIL_START = b'],"id":"'
# The top-level keys that follow "steps" in a record (Trajectory's field order).
_FIELD_NAMES = [f.name for f in fields(Trajectory)]
_TAIL_KEYS = frozenset(_FIELD_NAMES[_FIELD_NAMES.index("steps") + 1 :])


@dataclass(slots=True)
class EpisodeRow:
    """What the episode table knows about one stored trajectory (the record stays on disk)."""

    number: int  # position in the index (stable while the viewer runs)
    store: int  # index into RunIndex.stores
    offset: int  # byte offset of the record's line in the store file
    length: int  # bytes of the line, newline included
    id: str
    env_id: str
    task_id: str
    policy: str
    iteration: int | None
    parent_id: str | None
    restart_step: int | None
    reward: float
    success: bool | None
    truncated: bool
    truncation_reason: str | None
    error: str | None
    num_steps: int
    created_at: float
    difficulty: str | None
    category: str | None
    prompt: str
    feedback: str

    @property
    def outcome(self) -> str:
        """One word for the table: error, truncated, success, failure or unknown."""
        if self.error:
            return "error"
        if self.success is None:
            return "truncated" if self.truncated else "unknown"
        return "success" if self.success else ("truncated" if self.truncated else "failure")


@dataclass
class _Store:
    """One JSONL file and how far it has been read."""

    name: str
    path: Path
    end: int = 0  # byte offset just past the last complete line read
    lines: int = 0
    rows: list[int] = field(default_factory=list)  # global row numbers, in file order
    # Their lines' byte offsets and lengths (the full-text search maps hits to rows).
    offsets: array = field(default_factory=lambda: array("q"))
    lengths: array = field(default_factory=lambda: array("q"))
    bad_lines: list[int] = field(default_factory=list)  # 1-based numbers of unreadable lines
    duplicates: int = 0
    checked: int = 0  # records compared fast path vs full parse
    fast: bool = True  # False once the fast path disagreed with a full parse here


def find_stores(path: Path) -> list[tuple[str, Path]]:
    """The trajectory stores of a run directory (or the one file given), as (name, path).

    A training run keeps ``trajectories/<phase>.jsonl``; ``agentgym rollout``/``eval`` keep
    ``trajectories.jsonl`` at the top of their run directory.
    """
    if path.is_file():
        return [(path.stem, path)]
    found = sorted((p.stem, p) for p in (path / "trajectories").glob("*.jsonl") if p.is_file())
    single = path / "trajectories.jsonl"
    if single.is_file():
        found.append(("trajectories", single))
    return found


# --------------------------------------------------------------------------- row extraction


def _text(value: Any, limit: int | None = None) -> str:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _summary(head: Mapping[str, Any], tail: Mapping[str, Any], steps: int, prompt: Any) -> dict:
    """The row fields from a record's parts; lenient about types (bad input must not crash)."""
    metadata = tail.get("metadata")
    task = metadata.get("task") if isinstance(metadata, dict) else None
    task = task if isinstance(task, dict) else {}
    success, error, reason = tail.get("success"), tail.get("error"), tail.get("truncation_reason")
    return {
        "id": _text(tail.get("id")),
        "env_id": _text(head.get("env_id")),
        "task_id": _text(head.get("task_id")),
        "policy": _text(tail.get("policy")),
        "iteration": _optional_int(tail.get("iteration")),
        "parent_id": tail.get("parent_id") if isinstance(tail.get("parent_id"), str) else None,
        "restart_step": _optional_int(tail.get("restart_step")),
        "reward": _number(tail.get("reward", 0.0)),
        "success": success if isinstance(success, bool) else None,
        "truncated": tail.get("truncated") is True,
        "truncation_reason": _text(reason) if reason else None,
        "error": _text(error, 400) if error else None,
        "num_steps": steps,
        "created_at": _number(tail.get("created_at", 0.0)),
        "difficulty": _text(task["difficulty"]) if "difficulty" in task else None,
        "category": _text(task["category"]) if "category" in task else None,
        "prompt": _text(prompt, EXCERPT_CHARS),
        "feedback": _text(tail.get("feedback"), EXCERPT_CHARS),
    }


def summary_from_record(record: Any) -> dict | None:
    """The row fields of a fully parsed record (None if it is not a trajectory record)."""
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        return None
    messages = record.get("messages")
    messages = messages if isinstance(messages, list) else []
    prompt = next(
        (m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"),
        "",
    )
    steps = record.get("steps")
    return _summary(record, record, len(steps) if isinstance(steps, list) else 0, prompt)


def summary_fast(line: bytes) -> dict | None:
    """The row fields read from the record's head and tail only (None: shape not recognised).

    >>> line = Trajectory("e", "t", id="x", reward=0.5, created_at=1.0).to_json().encode()
    >>> summary_fast(line)["reward"], summary_fast(line)["num_steps"]
    (0.5, 0)
    """
    head = _HEAD.match(line)
    tail_at = line.rfind(_TAIL_START)
    if head is None or tail_at < 0:
        return None
    steps_at = line.rfind(_STEPS_START, head.end() - 1, tail_at + 1)
    if steps_at < 0:
        return None
    prompt = b'""'
    user_at = line.find(_FIRST_USER, head.end(), steps_at)
    if user_at >= 0:
        string = _STRING.match(line, user_at + len(_FIRST_USER))
        prompt = string.group(0) if string is not None else prompt
    # One parse of the small pieces: env id, task id, first user message, the steps (counted
    # exactly) and the fields after them. A "],"id":" or "],"steps":[" that belongs to a
    # nested value leaves unbalanced brackets behind it, so the parse fails and the caller
    # reads the record in full.
    steps_text = line[steps_at + len(_STEPS_START) - 1 : tail_at + 1]
    pieces = [head.group(1), head.group(2), prompt, steps_text, b"{" + line[tail_at + 2 :]]
    try:
        env_id, task_id, prompt_text, steps, tail = json.loads(b"[" + b",".join(pieces) + b"]")
    except (ValueError, RecursionError):
        return None
    # Catches the remaining odd shapes, e.g. a record written with its keys in another order.
    if not isinstance(steps, list) or not isinstance(tail, dict) or "id" not in tail:
        return None
    if not set(tail) <= _TAIL_KEYS:
        return None
    return _summary({"env_id": env_id, "task_id": task_id}, tail, len(steps), prompt_text)


# --------------------------------------------------------------------------- the index


class RunIndex:
    """Rows for every trajectory in a run's stores (or one store file), refreshed on demand.

    Thread-safe: the web server's worker threads share one index.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path} does not exist")
        self.stores: list[_Store] = []
        self.rows: list[EpisodeRow] = []
        self._by_key: dict[tuple[int, str], int] = {}
        self._children: dict[str, list[int]] = {}
        self._by_task: dict[str, list[int]] = {}
        self._intern: dict[str, str] = {}
        self._lock = threading.RLock()
        self._search_cache: dict[tuple[str, int], frozenset[int]] = {}
        self.refresh()

    # ------------------------------------------------------------------ reading

    def refresh(self) -> bool:
        """Index stores created and lines appended since the last call; whether rows came."""
        with self._lock:
            before = len(self.rows)
            known = {store.path for store in self.stores}
            for name, path in find_stores(self.path):
                if path not in known:
                    self.stores.append(_Store(name, path))
            for number, store in enumerate(self.stores):
                if not self._read_new_lines(number, store):
                    self._restart()
                    return True
            return len(self.rows) > before

    def _read_new_lines(self, number: int, store: _Store) -> bool:
        """Index the lines appended to ``store``; False if the file shrank (was replaced)."""
        try:
            size = store.path.stat().st_size
        except FileNotFoundError:
            return False
        if size < store.end:
            return False  # stores only grow: this file was replaced
        if size == store.end:
            return True
        with open(store.path, "rb") as file:
            file.seek(store.end)
            offset = store.end
            for line in file:
                if not line.endswith(b"\n"):
                    break  # a writer is mid-append (or crashed): read it once it is whole
                store.lines += 1
                self._add(number, store, line, offset)
                offset += len(line)
            store.end = offset
        return True

    def _add(self, number: int, store: _Store, line: bytes, offset: int) -> None:
        summary = summary_fast(line) if store.fast else None
        if summary is None or store.checked < SELF_CHECK_RECORDS:
            try:
                full = summary_from_record(json.loads(line))
            except (ValueError, RecursionError):
                full = None
            if summary is not None:
                store.checked += 1
                if summary != full:
                    store.fast = False
            summary = full
        if summary is None:
            store.bad_lines.append(store.lines)
            return
        key = (number, summary["id"])
        if key in self._by_key:
            store.duplicates += 1  # the store keeps the first record of an id, and so do we
            return
        for name in ("env_id", "task_id", "policy", "difficulty", "category", "prompt",
                     "feedback", "truncation_reason", "parent_id"):  # fmt: skip
            value = summary[name]
            if value is not None:  # many rows share these strings: store each once
                summary[name] = self._intern.setdefault(value, value)
        row = EpisodeRow(
            number=len(self.rows), store=number, offset=offset, length=len(line), **summary
        )
        self.rows.append(row)
        store.rows.append(row.number)
        store.offsets.append(offset)
        store.lengths.append(len(line))
        self._by_key[key] = row.number
        self._by_task.setdefault(row.task_id, []).append(row.number)
        if row.parent_id is not None:
            self._children.setdefault(row.parent_id, []).append(row.number)

    def _restart(self) -> None:
        """Forget everything and read all stores again (a store file was replaced)."""
        self.stores, self.rows = [], []
        self._by_key, self._children, self._by_task, self._search_cache = {}, {}, {}, {}
        self.refresh()

    # ------------------------------------------------------------------ lookups

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def store_names(self) -> list[str]:
        return [store.name for store in self.stores]

    @property
    def version(self) -> str:
        """Changes whenever rows are added (pages poll it to refresh themselves)."""
        return f"{len(self.stores)}.{len(self.rows)}.{sum(s.end for s in self.stores)}"

    def find(self, store_name: str, trajectory_id: str) -> EpisodeRow | None:
        """The row of ``trajectory_id`` in store ``store_name``, or None."""
        with self._lock:
            for number, store in enumerate(self.stores):
                if store.name == store_name:
                    position = self._by_key.get((number, trajectory_id))
                    return None if position is None else self.rows[position]
            return None

    def find_id(self, trajectory_id: str) -> list[EpisodeRow]:
        """Every row with this trajectory id (one per store that holds it)."""
        with self._lock:
            return [
                self.rows[self._by_key[(n, trajectory_id)]]
                for n in range(len(self.stores))
                if (n, trajectory_id) in self._by_key
            ]

    def children(self, trajectory_id: str) -> list[EpisodeRow]:
        """Episodes restarted from ``trajectory_id``, by restart step."""
        with self._lock:
            rows = [self.rows[n] for n in self._children.get(trajectory_id, [])]
        return sorted(rows, key=lambda row: (row.restart_step or 0, row.number))

    def same_task(self, row: EpisodeRow, limit: int = 50) -> list[EpisodeRow]:
        """Other episodes of ``row``'s task (at most ``limit``), in index order."""
        with self._lock:
            numbers = self._by_task.get(row.task_id, [])
            return [self.rows[n] for n in numbers if n != row.number][:limit]

    def restart_roots(self) -> list[tuple[str, EpisodeRow | None]]:
        """Episodes that others were restarted from, as (id, row) pairs; the row is None when
        the parent is not in this run's stores. Roots of restart chains only, in index order."""
        with self._lock:
            roots: list[tuple[str, EpisodeRow | None]] = []
            for parent_id in self._children:
                parents = self.find_id(parent_id)
                if not parents:
                    roots.append((parent_id, None))
                elif not any(p.parent_id and self.find_id(p.parent_id) for p in parents):
                    roots.append((parent_id, parents[0]))
            roots.sort(key=lambda pair: pair[1].number if pair[1] else -1)
            return roots

    def store_stats(self) -> list[dict[str, Any]]:
        """Episodes, successes and mean reward per store (the run page's store table)."""
        with self._lock:
            stats = [
                {"name": s.name, "path": s.path, "episodes": 0, "successes": 0, "reward": 0.0}
                for s in self.stores
            ]
            for row in self.rows:
                entry = stats[row.store]
                entry["episodes"] += 1
                entry["successes"] += row.success is True
                entry["reward"] += row.reward if math.isfinite(row.reward) else 0.0
        for entry in stats:
            count = entry["episodes"]
            entry["success_rate"] = entry["successes"] / count if count else None
            entry["mean_reward"] = entry.pop("reward") / count if count else None
        return stats

    def store_of(self, row: EpisodeRow) -> str:
        return self.stores[row.store].name

    def read_raw(self, row: EpisodeRow) -> bytes:
        """The record's line as stored."""
        with open(self.stores[row.store].path, "rb") as file:
            file.seek(row.offset)
            return file.read(row.length)

    def read(self, row: EpisodeRow) -> Trajectory:
        """The full trajectory of ``row`` (raises ValueError if the record is not valid)."""
        return Trajectory.from_json(self.read_raw(row))

    def problems(self) -> list[str]:
        """Lines that could not be indexed, per store (shown on the run page)."""
        notes = []
        for store in self.stores:
            if store.bad_lines:
                shown = ", ".join(map(str, store.bad_lines[:10]))
                extra = len(store.bad_lines) - 10
                more = f" and {extra} more" if extra > 0 else ""
                notes.append(f"{store.path}: lines {shown}{more} are not trajectory records")
            if store.duplicates:
                notes.append(
                    f"{store.path}: {store.duplicates} duplicate id(s); the first record is shown"
                )
        return notes

    def distinct(self, attribute: str) -> list[Any]:
        """Sorted distinct non-empty values of a row attribute (for the filter menus)."""
        with self._lock:
            values = {getattr(row, attribute) for row in self.rows}
        return sorted((v for v in values if v is not None and v != ""), key=str)

    # ------------------------------------------------------------------ selecting

    def select(self, query: EpisodeQuery) -> Selection:
        """Filter, sort and page the rows."""
        with self._lock:
            matches = self.search(query.q) if query.q else None
            names = self.store_names
            phase = names.index(query.phase) if query.phase in names else -1
            return select_rows(self.rows, query, phase=phase, text_matches=matches)

    def search(self, text: str) -> frozenset[int]:
        """Rows whose stored record contains ``text`` anywhere (ASCII letters in any case).

        Scans the store files (not memory) in large blocks; the last few answers are cached
        until the index changes.
        """
        with self._lock:
            key = (text, len(self.rows))
            if key in self._search_cache:
                return self._search_cache[key]
            # Records hold JSON text: search for the needle as JSON writes it.
            needle = json.dumps(text, ensure_ascii=False)[1:-1].encode().lower()
            found: set[int] = set()
            for store in self.stores:
                found.update(_search_store(store, needle))
            if len(self._search_cache) >= 8:
                self._search_cache.pop(next(iter(self._search_cache)))
            result = self._search_cache[key] = frozenset(found)
            return result


def _search_store(store: _Store, needle: bytes) -> Iterable[int]:
    """Row numbers of ``store`` whose line contains ``needle`` (lower-cased bytes)."""
    if not needle or not store.rows:
        return []
    found = []
    with open(store.path, "rb") as file:
        start = 0
        while start < store.end:
            file.seek(start)
            block = file.read(min(_SEARCH_BLOCK_BYTES, store.end - start))
            cut = block.rfind(b"\n") + 1 if start + len(block) < store.end else len(block)
            if cut == 0:  # one line longer than a block: take it whole
                block += file.readline()
                cut = len(block)
            block = block[:cut].lower()
            position = block.find(needle)
            while position >= 0:
                slot = bisect.bisect_right(store.offsets, start + position) - 1
                line_end = store.offsets[slot] + store.lengths[slot] - start if slot >= 0 else 0
                if position < line_end:  # else the hit is in a line that is not a record
                    found.append(store.rows[slot])
                position = block.find(needle, max(line_end, position + 1))
            start += cut
    return found
