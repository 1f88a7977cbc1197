"""The query generator: the benchmark's levels, trip shapes and constraints, always solvable.

A query is drawn from a seeded RNG following the benchmark's rules: 3-day trips visit one
city in another state; 5- and 7-day trips visit 2 and 3 cities of one destination state (a
state with more than 3 cities, not the origin's); dates are consecutive days of March 2022.

* ``easy``: 1 person, budget only.
* ``medium``: 2-8 people and one of {house rule, cuisine (2 of the 7), room type}.
* ``hard``: 2-8 people and three of {house rule, cuisine (4), room type, transportation}.

The expert planner then plans the trip; a query it cannot solve is redrawn, and the budget
is the expert plan's cost times a slack in [1.05, 1.6], rounded up to a multiple of 100, so
every query has a feasible plan (the expert's, stored as ``annotated_plan``).

Example:
    >>> from agentgym.envs.travelplanner.database import get_database
    >>> db = get_database("small")
    >>> query = generate_query(db, index=0, split="train", level="hard")
    >>> query.level, sum(v is not None for v in query.local_constraint.values())
    ('hard', 3)
    >>> generate_query(db, index=0, split="train", level="hard") == query
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from agentgym.core.registry import check_choice
from agentgym.core.tasks import task_seed
from agentgym.envs.travelplanner.database import (
    CONSTRAINT_CUISINES,
    HOUSE_RULES,
    MONTH_DAYS,
    YEAR_MONTH,
    TravelDatabase,
)
from agentgym.envs.travelplanner.planner import plan_trip
from agentgym.envs.travelplanner.plans import TravelQuery

__all__ = ["LEVELS", "SPLITS", "generate_query", "query_text"]

LEVELS = ("easy", "medium", "hard")
#: split -> (number of queries, base seed); the benchmark's split sizes.
SPLITS: dict[str, tuple[int, int]] = {
    "train": (45, 101),
    "validation": (180, 202),
    "test": (1000, 303),
}
ROOM_TYPE_CHOICES = ("entire room", "private room", "shared room", "not shared room")
_ROOM_TYPE_WEIGHTS = (0.35, 0.3, 0.05, 0.3)
_MAX_ATTEMPTS = 400


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"March {day}{suffix}"


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" and {items[-1]}"


def query_text(query: TravelQuery, template: int = 0) -> str:
    """The natural-language request for ``query`` (three phrasings).

    >>> q = TravelQuery("x", "Austin", "Denver", 3, 1, ("2022-03-01", "2022-03-02",
    ...     "2022-03-03"), 1, {"house rule": None, "cuisine": None, "room type": None,
    ...     "transportation": None}, 900, "", "easy")
    >>> query_text(q)
    'Please plan a 3-day trip for one person from Austin to Denver, from March 1st to \
March 3rd, 2022, with a budget of $900.'
    """
    start, end = (int(d.rsplit("-", 1)[1]) for d in (query.date[0], query.date[-1]))
    who = "one person" if query.people_number == 1 else f"a group of {query.people_number}"
    where = query.dest
    if query.visiting_city_number > 1:
        where = f"{query.dest}, visiting {query.visiting_city_number} cities"
    when = f"from {_ordinal(start)} to {_ordinal(end)}, 2022"
    budget = f"${query.budget:,}"
    sentences = [
        f"Please plan a {query.days}-day trip for {who} from {query.org} to {where}, {when}, "
        f"with a budget of {budget}.",
        f"Could you create a travel plan for {who} departing from {query.org} to {where} "
        f"for {query.days} days, {when}? The budget is {budget}.",
        f"I need a {query.days}-day itinerary from {query.org} to {where} for {who}, {when}. "
        f"We can spend at most {budget}.",
    ][template % 3 :][:1]
    rule = query.constraint("house rule")
    if rule:
        sentences.append(f"The accommodation must allow {rule}.")
    cuisines = query.constraint("cuisine")
    if cuisines:
        sentences.append(f"We would like to try {_join(list(cuisines))} cuisine.")
    room_type = query.constraint("room type")
    if room_type:
        sentences.append(
            "We do not want shared rooms."
            if room_type == "not shared room"
            else f"We want to stay in {'an ' if room_type[0] == 'e' else 'a '}{room_type}."
        )
    transport = query.constraint("transportation")
    if transport:
        sentences.append(
            "We would rather not fly."
            if transport == "no flight"
            else "We will not drive ourselves."
        )
    return " ".join(sentences)


def _constraints(level: str, rng: np.random.Generator) -> dict[str, object]:
    constraint: dict[str, object] = dict.fromkeys(
        ("house rule", "cuisine", "room type", "transportation")
    )
    if level == "easy":
        return constraint
    pool = ["house rule", "cuisine", "room type"]
    if level == "hard":
        pool.append("transportation")
    keys = rng.choice(pool, size=1 if level == "medium" else 3, replace=False)
    for key in map(str, keys):
        if key == "house rule":
            constraint[key] = str(rng.choice(HOUSE_RULES))
        elif key == "cuisine":
            picks = rng.choice(
                len(CONSTRAINT_CUISINES), size=2 if level == "medium" else 4, replace=False
            )
            constraint[key] = [CONSTRAINT_CUISINES[i] for i in sorted(picks)]
        elif key == "room type":
            constraint[key] = str(rng.choice(ROOM_TYPE_CHOICES, p=_ROOM_TYPE_WEIGHTS))
        else:
            constraint[key] = str(rng.choice(["no flight", "no self-driving"]))
    return constraint


def generate_query(
    db: TravelDatabase,
    *,
    index: int,
    split: str = "train",
    level: str = "mixed",
    days: int | None = None,
    rng: np.random.Generator | None = None,
) -> TravelQuery:
    """Query ``index`` of ``split`` (deterministic); ``level="mixed"`` draws the level too.

    ``days`` (3, 5 or 7) fixes the trip length; ``None`` draws it.
    """
    check_choice("split", split, list(SPLITS))
    check_choice("level", level, [*LEVELS, "mixed"])
    check_choice("days", days, [None, 3, 5, 7])
    if rng is None:
        base = SPLITS[split][1] * 10 + [*LEVELS, "mixed"].index(level) + 1000 * (days or 0)
        rng = np.random.default_rng(task_seed(base, index))
    multi_city_states = [
        s for s, cities in db.states.items() if len(cities) > 3
    ]  # the benchmark's destination states
    for _ in range(_MAX_ATTEMPTS):
        chosen_level = str(rng.choice(LEVELS)) if level == "mixed" else level
        trip_days = days or int(rng.choice((3, 5, 7)))
        org = str(rng.choice(db.cities))
        org_state = db.state_of(org)
        if trip_days == 3:
            others = [c for c in db.cities if db.state_of(c) != org_state]
            dest = str(others[int(rng.integers(len(others)))])
        else:
            states = [s for s in multi_city_states if s != org_state]
            if not states:
                continue
            dest = str(rng.choice(states))
        start = int(rng.integers(1, MONTH_DAYS - trip_days + 2))
        dates = tuple(f"{YEAR_MONTH}-{start + k:02d}" for k in range(trip_days))
        people = 1 if chosen_level == "easy" else int(rng.integers(2, 9))
        draft = TravelQuery(
            id=f"tp-{split}-{level}{days or ''}-{index}",
            org=org,
            dest=dest,
            days=trip_days,
            visiting_city_number=(trip_days - 1) // 2,
            date=dates,
            people_number=people,
            local_constraint=_constraints(chosen_level, rng),
            budget=0,
            query="",
            level=chosen_level,
        )
        trip = plan_trip(draft, db)
        if trip is None:
            continue
        budget = int(math.ceil(trip.cost * float(rng.uniform(1.05, 1.6)) / 100) * 100)
        draft = TravelQuery(
            **{**draft.__dict__, "budget": max(budget, 100), "annotated_plan": trip.plan}
        )
        text = query_text(draft, template=int(rng.integers(3)))
        return TravelQuery(**{**draft.__dict__, "query": text})
    raise RuntimeError(
        f"Could not generate a solvable query {index} of split {split!r} in {_MAX_ATTEMPTS} "
        f"attempts on the database {db.name!r}; is it too small?"
    )
