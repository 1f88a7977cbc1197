"""The TravelPlanner evaluator: 8 commonsense and 5 hard constraints, cost, and metrics.

:func:`evaluate` judges one plan against its query and the database and returns a
:class:`PlanEvaluation`: one :class:`Verdict` per check (pass / fail / not applicable, with a
message), the plan's total cost, and the feedback text in the FAFT format
(``is_not_absent: success`` / ``valid_cost: fail, reason: ...``). :func:`evaluate_batch` adds
the benchmark's metrics (delivery rate, commonsense and hard micro/macro, final pass rate).

Two rule sets (``evaluator=``):

* ``"strict"`` (default): the benchmark's *intended* rules. Names match exactly (case- and
  space-insensitive) rather than as substrings, every attraction counts whether or not the
  list ends with ``;``, a non-travel day's items must lie in that city, flights must fly the
  day's route on the day's date, and a 3-day trip must visit the query's city.
* ``"official"``: the official evaluation script's verdicts, quirks included
  (:mod:`.official`), so that scores compare with published ones.

Both judge the first ``days`` records of a plan, so answer files padded with empty records
(as the official ones are, to 7 days) are read as the official script reads them; a strict
plan with a further *non-empty* record is too long. See ``docs/envs/travelplanner.md`` for
every difference.

Example:
    >>> from agentgym.envs.travelplanner.database import get_database
    >>> from agentgym.envs.travelplanner.tasks import generate_query
    >>> db = get_database("small")
    >>> query = generate_query(db, index=0, split="validation")
    >>> result = evaluate(query, query.annotated_plan, db)
    >>> result.final_pass, result.feedback.splitlines()[0]
    (True, 'is_valid_information_in_sandbox: success')
    >>> evaluate(query, None, db).verdicts["is_not_absent"].message
    'No plan was delivered.'
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentgym.core.registry import check_choice
from agentgym.envs.travelplanner.database import TravelDatabase, normalize_name
from agentgym.envs.travelplanner.official import official_verdicts
from agentgym.envs.travelplanner.plans import (
    PLAN_KEYS,
    Plan,
    TravelQuery,
    split_name_city,
    travel_cities,
    trip_records,
)

__all__ = [
    "COMMONSENSE_CHECKS",
    "EVALUATORS",
    "HARD_CHECKS",
    "PlanEvaluation",
    "Verdict",
    "evaluate",
    "evaluate_batch",
    "success_feedback",
    "summarize",
    "summarize_verdicts",
    "total_cost",
]

#: The eight commonsense checks, in feedback order (the reference evaluator's names).
COMMONSENSE_CHECKS = (
    "is_valid_information_in_sandbox",
    "is_not_absent",
    "is_valid_information_in_current_city",
    "is_reasonable_visiting_city",
    "is_valid_restaurants",
    "is_valid_attractions",
    "is_valid_transportation",
    "is_valid_accommodation",
)
#: The five hard checks and the local constraint each depends on (``None``: always applies).
HARD_CHECKS: dict[str, str | None] = {
    "valid_cost": None,
    "valid_room_rule": "house rule",
    "valid_cuisine": "cuisine",
    "valid_room_type": "room type",
    "valid_transportation": "transportation",
}
#: The rule sets :func:`evaluate` offers: the intended rules and the official script's.
EVALUATORS = ("strict", "official")
MEALS = ("breakfast", "lunch", "dinner")
_FLIGHT_NUMBER = re.compile(r"Flight Number:\s*(F\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One check's outcome: ``passed`` is ``True``, ``False`` or ``None`` (not applicable)."""

    passed: bool | None
    message: str = ""

    def line(self, name: str) -> str:
        """The FAFT feedback line of this verdict."""
        if self.passed:
            return f"{name}: success"
        return f"{name}: fail, reason: {self.message}"


@dataclass(frozen=True)
class PlanEvaluation:
    """The verdicts on one plan.

    Attributes:
        delivered: Whether a non-empty plan was given.
        verdicts: Check name -> :class:`Verdict` (commonsense first, then hard).
        total_cost: The plan's cost (``None`` when the plan could not be costed).
        evaluator: The rule set that judged it (one of :data:`EVALUATORS`).
    """

    delivered: bool
    verdicts: Mapping[str, Verdict]
    total_cost: int | float | None
    evaluator: str = "strict"

    @property
    def commonsense_pass(self) -> bool:
        return all(self.verdicts[name].passed for name in COMMONSENSE_CHECKS)

    @property
    def hard_pass(self) -> bool:
        return all(self.verdicts[name].passed is not False for name in HARD_CHECKS)

    @property
    def final_pass(self) -> bool:
        return self.commonsense_pass and self.hard_pass

    @property
    def commonsense_passed(self) -> int:
        return sum(bool(self.verdicts[name].passed) for name in COMMONSENSE_CHECKS)

    @property
    def hard_applicable(self) -> int:
        return sum(self.verdicts[name].passed is not None for name in HARD_CHECKS)

    @property
    def hard_passed(self) -> int:
        return sum(bool(self.verdicts[name].passed) for name in HARD_CHECKS)

    @property
    def feedback(self) -> str:
        """One FAFT line per applicable check."""
        return "\n".join(
            verdict.line(name)
            for name, verdict in self.verdicts.items()
            if verdict.passed is not None
        )

    def shaped_reward(self) -> float:
        """1.0 for a final pass, else the mean of the commonsense and hard micro rates."""
        if self.final_pass:
            return 1.0
        hard = self.hard_passed / self.hard_applicable if self.hard_applicable else 1.0
        return 0.5 * self.commonsense_passed / len(COMMONSENSE_CHECKS) + 0.5 * hard

    def as_info(self) -> dict[str, Any]:
        """JSON-safe verdicts for ``info["verdicts"]``."""
        out: dict[str, Any] = {name: v.passed for name, v in self.verdicts.items()}
        out["total_cost"] = self.total_cost
        out["final_pass"] = self.final_pass
        out["delivered"] = self.delivered
        out["evaluator"] = self.evaluator
        return out


def success_feedback(query: TravelQuery) -> str:
    """The all-success feedback for ``query`` (what FAFT conditions on at inference)."""
    names = [*COMMONSENSE_CHECKS]
    names += [n for n, key in HARD_CHECKS.items() if key is None or query.constraint(key)]
    return "\n".join(f"{name}: success" for name in names)


# ------------------------------------------------------------------------ helpers --


def _empty(value: Any) -> bool:
    return value is None or str(value).strip() in ("", "-")


def _day_cities(day: Mapping[str, Any]) -> tuple[str, ...]:
    """The cities a day may use: (A, B) on a travel day, else the day's city."""
    text = str(day.get("current_city", ""))
    pair = travel_cities(text)
    if pair is not None:
        return pair
    return (text.split("(")[0].strip(),)


def _attractions(value: Any) -> list[str]:
    """Every ``;``-separated attraction (with or without a trailing ``;``)."""
    if _empty(value):
        return []
    return [item.strip() for item in str(value).split(";") if not _empty(item)]


def _transport_mode(text: str) -> str | None:
    lowered = text.strip().casefold()
    if lowered.startswith("flight") or "flight number" in lowered:
        return "flight"
    if lowered.startswith("self-driving") or lowered.startswith("self driving"):
        return "self-driving"
    if lowered.startswith("taxi"):
        return "taxi"
    return None


def _days(plan: Plan) -> Iterable[tuple[int, dict[str, Any]]]:
    return enumerate(plan, start=1)


# ------------------------------------------------------------------------ commonsense --


def _check_sandbox(query: TravelQuery, plan: Plan, db: TravelDatabase) -> Verdict:
    for number, day in _days(plan):
        date = query.date[number - 1] if number <= len(query.date) else None
        for city in _day_cities(day):
            if city and db.canonical_city(city) is None:
                return Verdict(False, f"Day {number}: the city '{city}' is not in the database.")
        transport = str(day.get("transportation", "-"))
        if not _empty(transport):
            problem = _transport_problem(transport, date, db)
            if problem:
                return Verdict(False, f"Day {number}: {problem}")
        for meal in MEALS:
            if not _empty(day.get(meal)):
                name, city = split_name_city(day[meal])
                if db.restaurant(name, city) is None:
                    return Verdict(
                        False,
                        f"Day {number}: the restaurant '{day[meal]}' ({meal}) "
                        "is not in the database.",
                    )
        for item in _attractions(day.get("attraction")):
            if db.attraction(*split_name_city(item)) is None:
                return Verdict(
                    False, f"Day {number}: the attraction '{item}' is not in the database."
                )
        stay = day.get("accommodation")
        if not _empty(stay) and db.accommodation(*split_name_city(stay)) is None:
            return Verdict(
                False, f"Day {number}: the accommodation '{stay}' is not in the database."
            )
    return Verdict(True)


def _transport_problem(text: str, date: str | None, db: TravelDatabase) -> str | None:
    mode = _transport_mode(text)
    if mode is None:
        return f"the transportation '{text[:80]}' is not a flight, self-driving or taxi leg."
    if mode == "flight":
        match = _FLIGHT_NUMBER.search(text)
        if match is None:
            return f"the flight '{text[:80]}' has no 'Flight Number: F...'."
        flights = db.flights.with_number(match.group(1))
        if not flights:
            return f"the flight {match.group(1)} is not in the database."
        route = travel_cities(text)
        on_route = [f for f in flights if route is None or (f.origin, f.destination) == route]
        if not on_route:
            flight = flights[0]
            return (
                f"the flight {flight.number} flies from {flight.origin} to "
                f"{flight.destination}, not from {route[0]} to {route[1]}."  # type: ignore[index]
            )
        if date is not None and all(f.date != date for f in on_route):
            flight = on_route[0]
            return f"the flight {flight.number} departs on {flight.date}, not on {date}."
        return None
    route = travel_cities(text)
    if route is None:
        return f"the {mode} leg '{text[:80]}' does not say 'from A to B'."
    if db.distance(*route) is None:
        return f"there is no {mode} information from {route[0]} to {route[1]}."
    return None


def _flight_taken(text: str, date: str | None, db: TravelDatabase) -> Any:
    """The row of the flight a transportation entry names (its route and date preferred)."""
    match = _FLIGHT_NUMBER.search(text)
    flights = db.flights.with_number(match.group(1)) if match else ()
    route = travel_cities(text)
    ranked = sorted(
        flights,
        key=lambda f: (route is not None and (f.origin, f.destination) != route, f.date != date),
    )
    return ranked[0] if ranked else None


def _check_complete(query: TravelQuery, plan: Plan) -> Verdict:
    if len(plan) != query.days:
        return Verdict(False, f"The plan covers {len(plan)} days; the query asks for {query.days}.")
    for number, day in _days(plan):
        missing = [key for key in PLAN_KEYS if key not in day]
        if missing:
            return Verdict(False, f"Day {number} lacks the key(s) {', '.join(missing)}.")
    visited = {
        city
        for day in plan
        for city in _day_cities(day)
        if city and normalize_name(city) != normalize_name(query.org)
    }
    if len(visited) != query.visiting_city_number:
        return Verdict(
            False,
            f"The plan visits {len(visited)} cities besides the origin; the "
            f"query asks for {query.visiting_city_number}.",
        )
    filled = total = 0
    for number, day in _days(plan):
        travel = travel_cities(str(day.get("current_city", ""))) is not None
        if travel and _empty(day.get("transportation")):
            return Verdict(False, f"Day {number} is a travel day without transportation.")
        if not travel and _empty(day.get("attraction")):
            return Verdict(False, f"Day {number} is a sightseeing day without an attraction.")
        if not travel and any(_empty(day.get(meal)) for meal in MEALS):
            return Verdict(False, f"Day {number} is a sightseeing day without all three meals.")
        if number < len(plan) and _empty(day.get("accommodation")):
            return Verdict(False, f"Day {number} has no accommodation.")
        for key in PLAN_KEYS[1:]:
            total += 1
            filled += not _empty(day.get(key))
    if filled * 2 < total:
        return Verdict(False, f"Only {filled} of {total} fields are filled; fill at least half.")
    return Verdict(True)


def _check_current_city(plan: Plan) -> Verdict:
    for number, day in _days(plan):
        allowed = {normalize_name(city) for city in _day_cities(day)}
        transport = str(day.get("transportation", "-"))
        if not _empty(transport) and _transport_mode(transport) is not None:
            route = travel_cities(transport)
            pair = travel_cities(str(day.get("current_city", "")))
            if route is not None and pair != route:
                return Verdict(
                    False,
                    f"Day {number}: the transportation goes from {route[0]} to "
                    f"{route[1]}, but the current city is "
                    f"'{day.get('current_city')}'.",
                )
        items = [(meal, day.get(meal)) for meal in MEALS]
        items += [("attraction", item) for item in _attractions(day.get("attraction"))]
        items.append(("accommodation", day.get("accommodation")))
        for kind, value in items:
            if _empty(value):
                continue
            city = split_name_city(value)[1]
            if normalize_name(city) not in allowed:
                return Verdict(
                    False,
                    f"Day {number}: the {kind} '{value}' is in {city}, not in "
                    f"the day's city '{day.get('current_city')}'.",
                )
    return Verdict(True)


def _route(plan: Plan) -> list[str]:
    """The sequence of cities the trip passes through, consecutive repeats merged."""
    route: list[str] = []
    for day in plan:
        for city in _day_cities(day):
            if city and (not route or normalize_name(route[-1]) != normalize_name(city)):
                route.append(city)
    return route


def _check_route(query: TravelQuery, plan: Plan, db: TravelDatabase) -> Verdict:
    route = _route(plan)
    if not route:
        return Verdict(False, "The plan names no cities.")
    org = normalize_name(query.org)
    if normalize_name(route[0]) != org:
        return Verdict(False, f"The trip should start in {query.org}, not in {route[0]}.")
    if normalize_name(route[-1]) != org or len(route) < 2:
        return Verdict(False, f"The trip should be a closed circle ending in {query.org}.")
    middle = route[1:-1]
    seen: set[str] = set()
    for city in middle:
        key = normalize_name(city)
        if key == org:
            return Verdict(False, f"The trip returns to {query.org} before its last day.")
        if key in seen:
            return Verdict(False, f"The city {city} is visited twice.")
        seen.add(key)
    if query.days > 3:
        for city in middle:
            canonical = db.canonical_city(city)
            if canonical is None or db.state_of(canonical) != query.dest:
                return Verdict(False, f"The city {city} is not in the state {query.dest}.")
    elif any(normalize_name(city) != normalize_name(query.dest) for city in middle):
        return Verdict(
            False, f"The trip should visit {query.dest}, not {', '.join(middle) or 'no city'}."
        )
    return Verdict(True)


def _check_repeats(plan: Plan, kind: str) -> Verdict:
    seen: set[tuple[str, str]] = set()
    for number, day in _days(plan):
        if kind == "restaurant":
            values = [day.get(meal) for meal in MEALS if not _empty(day.get(meal))]
        else:
            values = _attractions(day.get("attraction"))
        for value in values:
            name, city = split_name_city(value)
            key = (normalize_name(name), normalize_name(city))
            if key in seen:
                return Verdict(False, f"The {kind} '{value}' is repeated (day {number}).")
            seen.add(key)
    return Verdict(True)


def _check_transport_modes(plan: Plan) -> Verdict:
    modes = {
        _transport_mode(str(day.get("transportation", "-")))
        for day in plan
        if not _empty(day.get("transportation"))
    }
    if "self-driving" in modes and modes & {"flight", "taxi"}:
        other = "flight" if "flight" in modes else "taxi"
        return Verdict(False, f"Conflicting transportation: self-driving is mixed with {other}.")
    return Verdict(True)


def _stay_runs(plan: Plan) -> list[tuple[str, int, int]]:
    """(accommodation text, first day, nights) for each run of the same accommodation."""
    runs: list[tuple[str, int, int]] = []
    previous = None
    for number, day in _days(plan):
        value = day.get("accommodation")
        key = None if _empty(value) else tuple(map(normalize_name, split_name_city(value)))
        if key is not None and key == previous:
            text, first, nights = runs[-1]
            runs[-1] = (text, first, nights + 1)
        elif key is not None:
            runs.append((str(value), number, 1))
        previous = key
    return runs


def _check_minimum_nights(plan: Plan, db: TravelDatabase) -> Verdict:
    for text, first, nights in _stay_runs(plan):
        stay = db.accommodation(*split_name_city(text))
        if stay is not None and nights < stay.minimum_nights:
            return Verdict(
                False,
                f"The accommodation '{text}' (from day {first}) is booked for "
                f"{nights} night(s) but requires at least {stay.minimum_nights}.",
            )
    return Verdict(True)


# ------------------------------------------------------------------------ hard --


def total_cost(query: TravelQuery, plan: Plan, db: TravelDatabase) -> int:
    """The benchmark's total cost of ``plan`` for ``query.people_number`` travellers."""
    people = query.people_number
    cost = 0.0
    for number, day in _days(plan):
        transport = str(day.get("transportation", "-"))
        mode = None if _empty(transport) else _transport_mode(transport)
        if mode == "flight":
            date = query.date[number - 1] if number <= len(query.date) else None
            flight = _flight_taken(transport, date, db)
            cost += flight.price * people if flight else 0
        elif mode is not None:
            route = travel_cities(transport)
            leg = db.distance(*route) if route else None
            if leg is not None:
                vehicles = math.ceil(people / (5 if mode == "self-driving" else 4))
                cost += leg.cost(mode) * vehicles
        for meal in MEALS:
            if not _empty(day.get(meal)):
                restaurant = db.restaurant(*split_name_city(day[meal]))
                cost += restaurant.average_cost * people if restaurant else 0
        if not _empty(day.get("accommodation")):
            stay = db.accommodation(*split_name_city(day["accommodation"]))
            if stay is not None:
                cost += stay.price * math.ceil(people / max(1, stay.maximum_occupancy))
    return round(cost)


def _stays(plan: Plan, db: TravelDatabase) -> list[Any]:
    stays = []
    for day in plan:
        if not _empty(day.get("accommodation")):
            stay = db.accommodation(*split_name_city(day["accommodation"]))
            if stay is not None:
                stays.append(stay)
    return stays


_ROOM_TYPES = {
    "shared room": "Shared room",
    "private room": "Private room",
    "entire room": "Entire home/apt",
}


def _hard_verdicts(
    query: TravelQuery, plan: Plan, db: TravelDatabase, cost: int
) -> dict[str, Verdict]:
    verdicts = {
        "valid_cost": Verdict(
            cost <= query.budget, f"The total cost {cost} exceeds the budget {query.budget}."
        )
    }
    rule = query.constraint("house rule")
    if rule:
        bad = next((s for s in _stays(plan, db) if f"no {rule}" in s.house_rules.casefold()), None)
        verdicts["valid_room_rule"] = Verdict(
            bad is None,
            ""
            if bad is None
            else f"The accommodation '{bad.name}' does not allow {rule} "
            f"(house rules: {bad.house_rules}).",
        )
    else:
        verdicts["valid_room_rule"] = Verdict(None)
    cuisines = query.constraint("cuisine")
    if cuisines:
        served: set[str] = set()
        for day in plan:
            for meal in MEALS:
                if _empty(day.get(meal)):
                    continue
                name, city = split_name_city(day[meal])
                restaurant = db.restaurant(name, city)
                if restaurant is not None and normalize_name(city) != normalize_name(query.org):
                    served.update(restaurant.cuisines)
        missing = [c for c in cuisines if c not in served]
        verdicts["valid_cuisine"] = Verdict(
            not missing, f"No meal serves {', '.join(missing)} cuisine." if missing else ""
        )
    else:
        verdicts["valid_cuisine"] = Verdict(None)
    room_type = query.constraint("room type")
    if room_type:
        wrong = None
        for stay in _stays(plan, db):
            if room_type == "not shared room":
                ok = stay.room_type != "Shared room"
            else:
                ok = stay.room_type == _ROOM_TYPES.get(room_type, room_type)
            if not ok:
                wrong = stay
                break
        verdicts["valid_room_type"] = Verdict(
            wrong is None,
            ""
            if wrong is None
            else f"The accommodation '{wrong.name}' is a "
            f"{wrong.room_type}; the query asks for {room_type}.",
        )
    else:
        verdicts["valid_room_type"] = Verdict(None)
    transport = query.constraint("transportation")
    if transport:
        banned = "flight" if transport == "no flight" else "self-driving"
        used = next(
            (
                n
                for n, day in _days(plan)
                if not _empty(day.get("transportation"))
                and _transport_mode(str(day["transportation"])) == banned
            ),
            None,
        )
        verdicts["valid_transportation"] = Verdict(
            used is None, f"Day {used} uses {banned}; the query says {transport}." if used else ""
        )
    else:
        verdicts["valid_transportation"] = Verdict(None)
    return verdicts


# ------------------------------------------------------------------------ public --


def evaluate(
    query: TravelQuery,
    plan: Plan | None,
    database: TravelDatabase,
    *,
    evaluator: str = "strict",
) -> PlanEvaluation:
    """Judge ``plan`` (``None`` or ``[]``: nothing delivered) for ``query``.

    ``evaluator`` is ``"strict"`` (the intended rules) or ``"official"`` (the official
    script's verdicts); see the module docstring.
    """
    check_choice("evaluator", evaluator, EVALUATORS)
    if not query.judgeable:
        raise ValueError(
            f"query {query.id!r} has no constraints to judge a plan against (the official test "
            "split holds them back: submit its plans to the TravelPlanner leaderboard)"
        )
    if not plan:
        failed = Verdict(False, "No plan was delivered.")
        verdicts = {name: failed for name in COMMONSENSE_CHECKS}
        for name, key in HARD_CHECKS.items():
            verdicts[name] = failed if key is None or query.constraint(key) else Verdict(None)
        return PlanEvaluation(False, verdicts, None, evaluator)
    if evaluator == "official":
        official, official_total = official_verdicts(query, plan, database)
        return PlanEvaluation(True, official, official_total, evaluator)
    plan = [day if isinstance(day, dict) else {} for day in trip_records(plan, query.days)]
    verdicts = {
        "is_valid_information_in_sandbox": _check_sandbox(query, plan, database),
        "is_not_absent": _check_complete(query, plan),
        "is_valid_information_in_current_city": _check_current_city(plan),
        "is_reasonable_visiting_city": _check_route(query, plan, database),
        "is_valid_restaurants": _check_repeats(plan, "restaurant"),
        "is_valid_attractions": _check_repeats(plan, "attraction"),
        "is_valid_transportation": _check_transport_modes(plan),
        "is_valid_accommodation": _check_minimum_nights(plan, database),
    }
    cost = total_cost(query, plan, database)
    if verdicts["is_valid_information_in_sandbox"].passed and verdicts["is_not_absent"].passed:
        verdicts.update(_hard_verdicts(query, plan, database, cost))
    else:
        skipped = Verdict(
            False, "Not checked: the plan is incomplete or uses information outside the database."
        )
        for name, key in HARD_CHECKS.items():
            verdicts[name] = skipped if key is None or query.constraint(key) else Verdict(None)
    return PlanEvaluation(True, verdicts, cost, evaluator)


def summarize(evaluations: Sequence[PlanEvaluation]) -> dict[str, float]:
    """The benchmark's metrics over evaluated plans (one per query).

    >>> summarize([])["final_pass_rate"]
    0.0
    """
    n = len(evaluations)
    if n == 0:
        return dict.fromkeys(
            (
                "delivery_rate",
                "commonsense_micro",
                "commonsense_macro",
                "hard_micro",
                "hard_macro",
                "final_pass_rate",
            ),
            0.0,
        )
    applicable = sum(e.hard_applicable for e in evaluations)
    return {
        "delivery_rate": sum(e.delivered for e in evaluations) / n,
        "commonsense_micro": sum(e.commonsense_passed for e in evaluations)
        / (len(COMMONSENSE_CHECKS) * n),
        "commonsense_macro": sum(e.commonsense_pass for e in evaluations) / n,
        "hard_micro": sum(e.hard_passed for e in evaluations) / applicable if applicable else 0.0,
        "hard_macro": sum(e.hard_pass and e.delivered for e in evaluations) / n,
        "final_pass_rate": sum(e.final_pass for e in evaluations) / n,
    }


def summarize_verdicts(verdicts: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """:func:`summarize`'s metrics from stored verdicts (:meth:`PlanEvaluation.as_info`).

    This is how ``agentgym eval`` scores recorded episodes: one dict per query, an empty
    dict (an episode that ended in an error) counting as a plan not delivered.

    >>> good = {name: True for name in (*COMMONSENSE_CHECKS, *HARD_CHECKS)}
    >>> good.update(final_pass=True, delivered=True, valid_cuisine=None)
    >>> metrics = summarize_verdicts([good, {}])
    >>> metrics["final_pass_rate"], metrics["hard_micro"], metrics["commonsense_micro"]
    (0.5, 0.8, 0.5)
    """
    evaluations = []
    for info in verdicts:
        if not info:
            info = {name: False for name in COMMONSENSE_CHECKS} | {"valid_cost": False}
            info["delivered"] = False
        checks = {
            name: Verdict(value if isinstance(value := info.get(name), bool) else None)
            for name in (*COMMONSENSE_CHECKS, *HARD_CHECKS)
        }
        evaluations.append(
            PlanEvaluation(bool(info.get("delivered", True)), checks, info.get("total_cost"))
        )
    return summarize(evaluations)


def evaluate_batch(
    queries: Sequence[TravelQuery],
    plans: Sequence[Plan | None],
    database: TravelDatabase,
    *,
    evaluator: str = "strict",
) -> tuple[list[PlanEvaluation], dict[str, float]]:
    """Evaluate one plan per query; return the evaluations and :func:`summarize`'s metrics.

    With an official answer file: ``evaluate_batch(load_queries(...), load_plans(...), db,
    evaluator="official")``.
    """
    if len(queries) != len(plans):
        raise ValueError(f"got {len(queries)} queries but {len(plans)} plans")
    evaluations = [
        evaluate(q, p, database, evaluator=evaluator) for q, p in zip(queries, plans, strict=True)
    ]
    return evaluations, summarize(evaluations)
