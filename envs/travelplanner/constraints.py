"""TravelPlanner's constraints under the benchmark's intended rules (``evaluator="strict"``).

The 8 commonsense checks (valid information in the sandbox and the current city, nothing
absent, a reasonable route, no repeated restaurants or attractions, consistent transport,
minimum nights) and the 5 hard ones (budget, house rule, cuisine, room type, transport);
:func:`strict_verdicts` runs them all. :mod:`.official` gives the official script's
verdicts instead; :mod:`.judge` chooses between them and computes the metrics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agentgym.envs.travelplanner.database import TravelDatabase, normalize_name
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
    "HARD_CHECKS",
    "MEALS",
    "Verdict",
    "strict_verdicts",
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


# ------------------------------------------------------------------------ all --


def strict_verdicts(
    query: TravelQuery, plan: Plan, database: TravelDatabase
) -> tuple[dict[str, Verdict], int]:
    """Every check's :class:`Verdict` under the intended rules, and the plan's total cost.

    The hard checks run only on a complete plan within the database; otherwise they fail
    as not checked (or are not applicable, for constraints the query does not set).
    """
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
    return verdicts, cost
