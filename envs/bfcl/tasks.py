"""BFCL multi-turn tasks: the entry type, the train/test split and choosing entries."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.core.parsing import ToolCall
from agentgym.core.registry import check_choice
from agentgym.core.tasks import TaskSet

__all__ = [
    "BACKENDS",
    "CATEGORIES",
    "SPLITS",
    "BFCLTask",
    "entry_index",
    "select_tasks",
    "split_of",
]

#: The four multi-turn categories of BFCL v4, 200 entries each.
CATEGORIES = ("base", "miss_param", "miss_func", "long_context")
#: ``"all"`` is the benchmark as published; ``"train"``/``"test"`` are disjoint halves.
SPLITS = ("all", "train", "test")
#: The backend classes of the multi-turn entries (``involved_classes``), for filters.
BACKENDS = (
    "GorillaFileSystem",
    "MathAPI",
    "MessageAPI",
    "TicketAPI",
    "TradingBot",
    "TravelAPI",
    "TwitterAPI",
    "VehicleControlAPI",
)


@dataclass(frozen=True)
class BFCLTask:
    """One BFCL multi-turn entry, ready for the environment. Shared: never mutate it.

    Attributes:
        id: BFCL's id, e.g. ``multi_turn_base_0``.
        category: One of :data:`CATEGORIES`.
        turns: The user's text per turn (``""`` for a miss_func turn that only reveals
            functions).
        ground_truth: Per turn, the ground-truth calls (positional arguments named).
        ground_truth_source: Per turn, BFCL's call strings, verbatim.
        involved_classes: Backend classes of the entry, in BFCL's order.
        initial_config: ``{class name: state}``, loaded into fresh backends per episode.
        functions: Names of the functions available from the first turn.
        revealed: ``{turn: names}`` of functions withheld until that turn (miss_func).
        long_context: Whether the backends add their long, noisy extensions.
        metadata: BFCL's other fields (``path``, ``excluded_function``, ...).
    """

    id: str
    category: str
    turns: tuple[str, ...]
    ground_truth: tuple[tuple[ToolCall, ...], ...]
    ground_truth_source: tuple[tuple[str, ...], ...]
    involved_classes: tuple[str, ...]
    initial_config: Mapping[str, Any]
    functions: tuple[str, ...]
    revealed: Mapping[int, tuple[str, ...]]
    long_context: bool
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def checked_turns(self) -> tuple[int, ...]:
        """Turns with a non-empty ground truth (the only ones BFCL checks)."""
        return tuple(t for t, calls in enumerate(self.ground_truth) if calls)


_LOCK = threading.RLock()
_TASKSET_CACHE: dict[tuple[Any, ...], TaskSet[BFCLTask]] = {}


def entry_index(task: BFCLTask) -> int:
    """The entry's number within its category (``multi_turn_base_17`` -> 17)."""
    return int(task.id.rsplit("_", 1)[1])


def split_of(task: BFCLTask) -> str:
    """``"train"`` or ``"test"``: even entry numbers train, odd ones test.

    The four categories are variants of the same 200 scenarios (entry ``i`` of every
    category starts from the same conversation and state), so the split goes by entry
    number: a scenario is either trained on in all its variants or held out in all of
    them. Each split gets 100 entries per category, and since the data lists scenarios
    grouped by backends, alternating numbers keep every backend in both splits.
    """
    return "train" if entry_index(task) % 2 == 0 else "test"


def select_tasks(
    categories: Sequence[str] = CATEGORIES,
    *,
    split: str = "all",
    backends: Sequence[str] | None = None,
    exclude_backends: Sequence[str] = (),
    num_tasks: int | None = None,
) -> TaskSet[BFCLTask]:
    """The entries of ``categories`` in ``split`` that pass the backend filters.

    ``backends`` keeps entries that involve at least one of the named backend classes;
    ``exclude_backends`` drops entries that involve any of them (hold a backend out of
    training, then evaluate on it with ``backends``). ``num_tasks`` keeps the first ones,
    in category order then entry number. Task sets are cached and shared (read-only).

    Example:
        >>> train = select_tasks(split="train", exclude_backends=["TravelAPI"])  # doctest: +SKIP
        >>> held_out = select_tasks(split="test", backends=["TravelAPI"])  # doctest: +SKIP
    """
    categories = tuple(dict.fromkeys(categories))
    if not categories:
        raise ValueError(f"categories must not be empty; valid: {', '.join(CATEGORIES)}")
    for category in categories:
        check_choice("categories", category, CATEGORIES)
    check_choice("split", split, SPLITS)
    wanted = None if backends is None else tuple(dict.fromkeys(backends))
    excluded = tuple(dict.fromkeys(exclude_backends))
    if wanted is not None and not wanted:
        raise ValueError(
            f"backends must not be empty (None means all); valid: {', '.join(BACKENDS)}"
        )
    for name in (*(wanted or ()), *excluded):
        check_choice("backends", name, BACKENDS)
    # Imported here: the loaders build BFCLTask objects, so they import this module.
    from agentgym.envs.bfcl.loaders import load_category

    key = (categories, split, wanted, excluded, num_tasks)
    with _LOCK:
        cached = _TASKSET_CACHE.get(key)
        if cached is not None:
            return cached
        tasks = [
            task
            for category in categories
            for task in load_category(category)
            if (split == "all" or split_of(task) == split)
            and (wanted is None or any(c in wanted for c in task.involved_classes))
            and not any(c in excluded for c in task.involved_classes)
        ]
        if not tasks:
            raise ValueError(
                f"No BFCL entry matches categories={list(categories)}, split={split!r}, "
                f"backends={None if wanted is None else list(wanted)}, "
                f"exclude_backends={list(excluded)}."
            )
        if num_tasks is not None:
            if not 1 <= num_tasks <= len(tasks):
                raise ValueError(
                    f"num_tasks must be in [1, {len(tasks)}] for this selection, got {num_tasks}"
                )
            tasks = tasks[:num_tasks]
        cached = TaskSet(tasks, [task.id for task in tasks])
        _TASKSET_CACHE[key] = cached
        return cached
