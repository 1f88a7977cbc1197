"""Task collections: indexable by position and by id, listed or generated on demand.

Every environment draws its episodes from a :class:`TaskSet`. Evaluation selects a task
with ``env.reset(options={"task_id": ...})`` or ``{"task_index": ...}``; training samples an
index from the environment's own RNG. Generated task sets build a task from its index with
a seed derived from that index, so ``tasks[i]`` is the same task in every process and
thousands of tasks cost nothing until they are used.

Example:
    >>> tasks = TaskSet.from_list([{"id": "a"}, {"id": "b"}], id_of=lambda t: t["id"])
    >>> len(tasks), tasks.index_of("b"), tasks[0]
    (2, 1, {'id': 'a'})
    >>> squares = GeneratedTaskSet(1000, lambda i, rng: {"id": f"sq-{i}", "n": i * i},
    ...                            id_prefix="sq-")
    >>> squares.index_of("sq-12"), squares[12]["n"]
    (12, 144)
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import numpy as np

__all__ = ["GeneratedTaskSet", "TaskSet", "task_seed"]

T = TypeVar("T")


def task_seed(base_seed: int, index: int) -> int:
    """A stable 63-bit seed for task ``index`` of a generator seeded with ``base_seed``."""
    sequence = np.random.SeedSequence([base_seed & 0xFFFFFFFF, index])
    return int(sequence.generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


class TaskSet(Generic[T]):
    """An immutable, indexable collection of tasks with unique string ids."""

    def __init__(self, tasks: Sequence[T], ids: Sequence[str]) -> None:
        if len(tasks) != len(ids):
            raise ValueError("tasks and ids must have the same length")
        self._tasks = tuple(tasks)
        self._ids = tuple(ids)
        self._index = {task_id: i for i, task_id in enumerate(self._ids)}
        if len(self._index) != len(self._ids):
            seen: set[str] = set()
            duplicates = sorted({i for i in self._ids if i in seen or seen.add(i)})
            raise ValueError(f"Duplicate task ids: {duplicates[:10]}")

    @classmethod
    def from_list(cls, tasks: Sequence[T], id_of: Callable[[T], str] | None = None) -> TaskSet[T]:
        """Build from a list; ids come from ``id_of(task)`` or the task's ``id`` attribute."""
        getter = id_of or (lambda task: task.id)  # type: ignore[attr-defined]
        return cls(tasks, [str(getter(task)) for task in tasks])

    def __len__(self) -> int:
        return len(self._tasks)

    def __getitem__(self, index: int) -> T:
        return self._tasks[index]

    def id_at(self, index: int) -> str:
        """The id of the task at ``index``."""
        return self._ids[index]

    @property
    def ids(self) -> Sequence[str]:
        """All task ids, in index order."""
        return self._ids

    def index_of(self, task_id: str) -> int:
        """Position of ``task_id``; unknown ids raise ``KeyError`` with close matches."""
        try:
            return self._index[task_id]
        except KeyError:
            raise KeyError(_unknown_task_message(task_id, self._ids)) from None


class GeneratedTaskSet(TaskSet[T]):
    """A task set whose task ``i`` is built on demand by ``generate(i, rng)``.

    Args:
        size: Number of tasks.
        generate: Builds task ``i`` from its index and a ``numpy`` Generator seeded with
            :func:`task_seed` (``base_seed``, ``offset + i``); must be deterministic.
        id_prefix: Task ids are ``f"{id_prefix}{offset + i}"``.
        base_seed: Seed of the whole set; different seeds give different tasks.
        offset: Index offset, so disjoint splits are ``offset=0`` and ``offset=n_train``.
        cache_size: How many built tasks to keep (LRU).
    """

    def __init__(
        self,
        size: int,
        generate: Callable[[int, np.random.Generator], T],
        *,
        id_prefix: str,
        base_seed: int = 0,
        offset: int = 0,
        cache_size: int = 4096,
    ) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self._size = size
        self._generate = generate
        self._prefix = id_prefix
        self._base_seed = base_seed
        self._offset = offset
        self._cached = functools.lru_cache(maxsize=cache_size)(self._build)

    def _build(self, index: int) -> T:
        rng = np.random.default_rng(task_seed(self._base_seed, self._offset + index))
        return self._generate(self._offset + index, rng)

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: int) -> T:
        index = int(index)
        if index < 0:
            index += self._size
        if not 0 <= index < self._size:
            raise IndexError(f"task index {index} out of range [0, {self._size})")
        return self._cached(index)

    def id_at(self, index: int) -> str:
        return f"{self._prefix}{self._offset + int(index)}"

    @property
    def ids(self) -> Sequence[str]:
        return [self.id_at(i) for i in range(self._size)]

    def index_of(self, task_id: str) -> int:
        if task_id.startswith(self._prefix):
            suffix = task_id[len(self._prefix) :]
            if suffix.isdigit():
                index = int(suffix) - self._offset
                if 0 <= index < self._size:
                    return index
        first = self.id_at(0) if self._size else "(empty)"
        last = self.id_at(self._size - 1) if self._size else "(empty)"
        raise KeyError(
            f"Unknown task id {task_id!r}: this task set has ids {first} .. {last} "
            f"({self._size} tasks)."
        )


def _unknown_task_message(task_id: str, ids: Sequence[str]) -> str:
    close = difflib.get_close_matches(task_id, list(ids), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    sample = ", ".join(map(repr, list(ids)[:5]))
    return f"Unknown task id {task_id!r}.{hint} This task set has {len(ids)} tasks, e.g. {sample}."
