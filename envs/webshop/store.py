"""The read-only data every WebShop environment copy of a process shares.

A :class:`Shop` bundles a catalog, its search index and its goals. :func:`get_shop`
builds it once per process for a given source (a generated catalog's size and seed, or a
directory of WebShop's files) and hands the same object to every environment copy, so a
copy costs only its browsing state. The search index is memory-mapped from the disk cache,
so other processes on the machine share its pages too.

Example:
    >>> shop = get_shop(num_products=300, seed=5, index_cache=False)
    >>> shop is get_shop(num_products=300, seed=5, index_cache=False)
    True
    >>> goals = shop.goals("test", "mixed", None)
    >>> len(goals), goals.id_at(0)
    (500, 'webshop-1000000')
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agentgym.core.tasks import GeneratedTaskSet, TaskSet
from agentgym.envs.webshop.catalog import Catalog, GeneratedCatalog
from agentgym.envs.webshop.search import SearchIndex
from agentgym.envs.webshop.tasks import GOAL_STYLES, Goal, make_goal

__all__ = ["SPLITS", "Shop", "get_shop"]

#: Generated goals: split -> (first goal index, default number of goals). The splits are
#: disjoint ranges of goal indices (goals of both may target the same products).
SPLITS: dict[str, tuple[int, int]] = {"train": (0, 10_000), "test": (1_000_000, 500)}
#: Largest number of generated goals per split (the train range stops below the test one).
MAX_GENERATED_GOALS = SPLITS["test"][0]
#: Seeded order of loaded goals (as the reference shuffles them with a fixed seed).
LOADED_GOAL_SHUFFLE_SEED = 233


@dataclass(eq=False)
class Shop:
    """A catalog, its search index and its goals; shared read-only.

    Attributes:
        catalog: The products.
        index: BM25 search over the catalog.
        loaded_goals: Goals read from files (``None`` for a generated catalog).
        seed: Seed of generated goals.
    """

    catalog: Catalog
    index: SearchIndex
    loaded_goals: Sequence[Goal] | None = None
    seed: int = 0
    _goal_sets: dict[tuple, TaskSet[Goal]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def goals(self, split: str, style: str, num_goals: int | None) -> TaskSet[Goal]:
        """The goals of ``split`` (``"train"`` or ``"test"``), built once and shared."""
        key = (split, style, num_goals)
        with self._lock:
            if key not in self._goal_sets:
                self._goal_sets[key] = self._make_goals(split, style, num_goals)
            return self._goal_sets[key]

    def _make_goals(self, split: str, style: str, num_goals: int | None) -> TaskSet[Goal]:
        if self.loaded_goals is not None:
            chosen = split_loaded_goals(self.loaded_goals, split)
            if style != "mixed":
                chosen = [goal for goal in chosen if goal.style == style]
            if num_goals is not None:
                chosen = chosen[:num_goals]
            if not chosen:
                raise ValueError(
                    f"No loaded goals for split={split!r} and goal_style={style!r}; "
                    f"{len(self.loaded_goals)} goals were loaded in all."
                )
            return TaskSet.from_list(chosen)
        offset, size = SPLITS[split]
        if num_goals is not None and num_goals > MAX_GENERATED_GOALS:
            raise ValueError(
                f"num_goals={num_goals} is too large: at most {MAX_GENERATED_GOALS:,} "
                "generated goals per split (more would overlap the test split)."
            )
        catalog = self.catalog

        def generate(index: int, rng: np.random.Generator) -> Goal:
            return make_goal(index, rng, catalog, style=style)

        return GeneratedTaskSet(
            size if num_goals is None else num_goals,
            generate,
            id_prefix="webshop-",
            base_seed=self.seed * len(GOAL_STYLES) + GOAL_STYLES.index(style),
            offset=offset,
        )


def split_loaded_goals(goals: Sequence[Goal], split: str) -> list[Goal]:
    """A seeded split of loaded goals: the first ``min(500, n // 5)`` (at least 1) of a
    fixed shuffle are the test split, the rest the training split."""
    order = np.random.default_rng(LOADED_GOAL_SHUFFLE_SEED).permutation(len(goals))
    num_test = max(1, min(500, len(goals) // 5))
    chosen = order[:num_test] if split == "test" else order[num_test:]
    return [goals[int(i)] for i in chosen]


_LOCK = threading.Lock()


def get_shop(
    *,
    num_products: int | None = 10_000,
    seed: int = 0,
    data_dir: str | None = None,
    index_cache: bool = True,
) -> Shop:
    """The process-wide shared :class:`Shop` of a source.

    Args:
        num_products: Size of a generated catalog, or how many products to read from
            ``data_dir`` (``items_shuffle`` order, as the reference; ``None``: all).
        seed: Seed of a generated catalog and its goals.
        data_dir: A directory with WebShop's files; ``None`` generates a catalog.
        index_cache: Save the search index to the disk cache and memory-map it.
    """
    if data_dir is None and (num_products is None or num_products < 1):
        raise ValueError(f"num_products must be >= 1 for a generated catalog, got {num_products}")
    resolved = str(Path(data_dir).expanduser().resolve()) if data_dir is not None else None
    with _LOCK:
        return _build_shop(num_products, seed, resolved, index_cache)


@functools.lru_cache(maxsize=8)
def _build_shop(
    num_products: int | None, seed: int, data_dir: str | None, index_cache: bool
) -> Shop:
    if data_dir is not None:
        from agentgym.envs.webshop.loaders import load_webshop_dir

        catalog, goals = load_webshop_dir(data_dir, num_products=num_products)
    else:
        assert num_products is not None
        catalog, goals = GeneratedCatalog(num_products, seed=seed), None
    index = SearchIndex.cached(catalog) if index_cache else SearchIndex.build(catalog)
    if isinstance(catalog, GeneratedCatalog) and index.listings is not None:
        catalog.use_listing_table(index.listings)  # results pages without generating
    return Shop(catalog=catalog, index=index, loaded_goals=goals, seed=seed)
