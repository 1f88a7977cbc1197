"""The episode table's query: filters, sort order and page, parsed from a query string.

>>> query = EpisodeQuery.from_params({"outcome": "failure", "sort": "reward", "order": "desc"})
>>> query.params()
{'outcome': 'failure', 'sort': 'reward', 'order': 'desc'}
>>> query.params(page=2)["page"]
'2'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentgym.view.index import EpisodeRow

__all__ = ["OUTCOMES", "SORT_KEYS", "EpisodeQuery", "QueryError", "Selection", "select_rows"]

#: What the outcome column shows (see :attr:`EpisodeRow.outcome`).
OUTCOMES = ("success", "failure", "truncated", "error", "unknown")
_TEXT_FILTERS = ("phase", "iteration", "outcome", "success", "task", "difficulty",
                 "category", "policy", "q")  # fmt: skip


def _finite(value: float) -> float:
    return -math.inf if math.isnan(value) else value


#: Sortable columns. The sort is stable and rows start in index order, so ties keep that
#: order in both directions and paging is stable.
SORT_KEYS: dict[str, Callable[[EpisodeRow], Any]] = {
    "created": lambda row: _finite(row.created_at),
    "reward": lambda row: _finite(row.reward),
    "steps": lambda row: row.num_steps,
    "task": lambda row: row.task_id,
    "phase": lambda row: row.store,
    "iteration": lambda row: -1 if row.iteration is None else row.iteration,
    "outcome": lambda row: row.outcome,
    "id": lambda row: row.id,
}


class QueryError(ValueError):
    """A filter value in the episode query that cannot be used (the message says why)."""


@dataclass
class EpisodeQuery:
    """Filters, sort order and page of the episode table (the page's query string).

    Empty strings mean "no filter": ``phase`` is a store name (``eval-0``, ``collect-1``),
    ``iteration`` a number or ``none``, ``task`` a substring of the task id, ``q`` text
    anywhere in the stored record. :meth:`from_params` reports every unusable value at once.

    >>> EpisodeQuery.from_params({"reward_min": "0.5", "page": "2"}).reward_min
    0.5
    >>> EpisodeQuery.from_params({"reward_min": "lots", "sort": "colour"})
    Traceback (most recent call last):
    ...
    agentgym.view.query.QueryError: reward_min='lots' is not a number; sort='colour' is not \
one of created, reward, steps, task, phase, iteration, outcome, id
    """

    phase: str = ""
    iteration: str = ""
    outcome: str = ""
    success: str = ""
    reward_min: float | None = None
    reward_max: float | None = None
    task: str = ""
    difficulty: str = ""
    category: str = ""
    policy: str = ""
    q: str = ""
    sort: str = "created"
    order: str = "asc"
    page: int = 1
    per_page: int = 50

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> EpisodeQuery:
        """Parse a query string's values; raise :class:`QueryError` listing every problem."""
        problems: list[str] = []
        values: dict[str, Any] = {name: str(params.get(name, "")).strip() for name in _TEXT_FILTERS}
        for name in ("reward_min", "reward_max"):
            raw = str(params.get(name, "")).strip()
            if raw:
                try:
                    values[name] = float(raw)
                except ValueError:
                    problems.append(f"{name}={raw!r} is not a number")
        for name in ("page", "per_page"):
            raw = str(params.get(name, "")).strip()
            if raw:
                try:
                    values[name] = min(max(1, int(raw)), 1000 if name == "per_page" else 10**9)
                except ValueError:
                    problems.append(f"{name}={raw!r} is not a whole number")
        sort = str(params.get("sort", "")) or "created"
        if sort not in SORT_KEYS:
            problems.append(f"sort={sort!r} is not one of {', '.join(SORT_KEYS)}")
        order = str(params.get("order", "")) or "asc"
        if order not in ("asc", "desc"):
            problems.append(f"order={order!r} is not asc or desc")
        if values["outcome"] and values["outcome"] not in OUTCOMES:
            problems.append(f"outcome={values['outcome']!r} is not one of {', '.join(OUTCOMES)}")
        if values["success"] and values["success"] not in ("yes", "no", "unknown"):
            problems.append(f"success={values['success']!r} is not yes, no or unknown")
        if values["iteration"] not in ("", "none") and not values["iteration"].isdigit():
            problems.append(f"iteration={values['iteration']!r} is not a whole number or none")
        if problems:
            raise QueryError("; ".join(problems))
        return cls(**values, sort=sort, order=order)

    def params(self, **changes: Any) -> dict[str, str]:
        """The values that differ from the defaults, as query parameters."""
        query = {**{f.name: getattr(self, f.name) for f in fields(self)}, **changes}
        defaults = EpisodeQuery()
        return {
            name: str(value)
            for name, value in query.items()
            if value is not None and value != "" and value != getattr(defaults, name)
        }

    @property
    def filtered(self) -> bool:
        """Whether any filter is set (sorting and paging aside)."""
        return bool(self.params(sort="created", order="asc", page=1, per_page=50))


@dataclass
class Selection:
    """One page of the filtered, sorted table."""

    rows: list[EpisodeRow]
    total: int  # rows matching the filters
    page: int
    pages: int


def _predicates(
    query: EpisodeQuery, phase: int, text_matches: Collection[int] | None
) -> list[Callable[[EpisodeRow], bool]]:
    """One test per filter that is set (each binds its own value)."""
    tests: list[Callable[[EpisodeRow], bool]] = []
    if query.phase:
        tests.append(lambda row: row.store == phase)
    if query.iteration:
        iteration = None if query.iteration == "none" else int(query.iteration)
        tests.append(lambda row: row.iteration == iteration)
    if query.outcome:
        tests.append(lambda row: row.outcome == query.outcome)
    if query.success:
        success = {"yes": True, "no": False, "unknown": None}[query.success]
        tests.append(lambda row: row.success is success)
    if query.reward_min is not None:
        low = query.reward_min
        tests.append(lambda row: row.reward >= low)
    if query.reward_max is not None:
        high = query.reward_max
        tests.append(lambda row: row.reward <= high)
    for name in ("difficulty", "category", "policy"):
        if value := getattr(query, name):
            tests.append(lambda row, name=name, value=value: getattr(row, name) == value)
    if query.task:
        task = query.task.lower()
        tests.append(lambda row: task in row.task_id.lower())
    if text_matches is not None:
        tests.append(lambda row: row.number in text_matches)
    return tests


def select_rows(
    rows: Sequence[EpisodeRow],
    query: EpisodeQuery,
    *,
    phase: int = -1,
    text_matches: Collection[int] | None = None,
) -> Selection:
    """Filter ``rows`` by ``query``, sort them and cut out the requested page.

    ``phase`` is the store number the query's ``phase`` names (-1: none), ``text_matches``
    the row numbers whose record contains the free text ``query.q``.
    """
    tests = _predicates(query, phase, text_matches)
    chosen = [row for row in rows if all(test(row) for test in tests)]
    chosen.sort(key=SORT_KEYS[query.sort], reverse=query.order == "desc")
    pages = max(1, math.ceil(len(chosen) / query.per_page))
    page = min(query.page, pages)
    start = (page - 1) * query.per_page
    return Selection(chosen[start : start + query.per_page], len(chosen), page, pages)
