"""The expert planner: a cost-minimising search that writes plans meeting every constraint.

:func:`plan_trip` picks the city sequence, the transport mode family (all self-driving, or
flights and taxis), the cheapest listing per city that obeys the house rule, room type and
minimum nights, and distinct restaurants that cover the required cuisines, then writes the
plan in the benchmark's format. The search is deterministic, so re-planning a query finds the
same (cheapest) plan and its cost never exceeds a budget derived from it.

Every trip follows one layout: day 1 travels to the first city, each city gets one
sightseeing day and two nights, the days in between travel onwards, the last day returns.

:func:`inject_error` breaks one rule on purpose (for failed expert trajectories, mutated-plan
tests and FAFT negatives).

Example:
    >>> from agentgym.envs.travelplanner.database import get_database
    >>> from agentgym.envs.travelplanner.tasks import generate_query
    >>> db = get_database("small")
    >>> query = generate_query(db, index=3, split="train")
    >>> trip = plan_trip(query, db)
    >>> len(trip.plan) == query.days, trip.cost <= query.budget
    (True, True)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agentgym.envs.travelplanner.database import (
    Accommodation,
    Flight,
    Restaurant,
    Route,
    TravelDatabase,
)
from agentgym.envs.travelplanner.plans import Plan, TravelQuery, split_name_city

__all__ = ["ERROR_KINDS", "Leg", "Trip", "inject_error", "plan_trip"]

#: Cheapest city sequences built in full before giving up (cuisine coverage may fail).
_CANDIDATE_SEQUENCES = 12
_STAY_NIGHTS = 2


@dataclass(frozen=True)
class Leg:
    """One travel leg of a trip and the option chosen for it."""

    origin: str
    destination: str
    date: str
    mode: str
    flight: Flight | None
    route: Route | None
    cost: int

    def describe(self) -> str:
        """The plan's transportation string."""
        if self.flight is not None:
            f = self.flight
            return (
                f"Flight Number: {f.number}, from {f.origin} to {f.destination}, "
                f"Departure Time: {f.dep_time}, Arrival Time: {f.arr_time}"
            )
        assert self.route is not None
        label = "Self-driving" if self.mode == "self-driving" else "Taxi"
        return (
            f"{label}, from {self.origin} to {self.destination}, duration: "
            f"{self.route.duration}, distance: {self.route.distance_text}, "
            f"cost: {self.route.cost(self.mode)}"
        )


@dataclass(frozen=True)
class Trip:
    """A planned trip: the cities, legs, plan and its total cost."""

    cities: tuple[str, ...]
    legs: tuple[Leg, ...]
    plan: Plan
    cost: int


def _leg_options(
    db: TravelDatabase, origin: str, destination: str, date: str, people: int
) -> dict[str, Leg]:
    options: dict[str, Leg] = {}
    flights = db.search_flights(origin, destination, date)
    if flights:
        cheapest = min(flights, key=lambda f: (f.price, f.number))
        options["flight"] = Leg(
            origin, destination, date, "flight", cheapest, None, cheapest.price * people
        )
    route = db.distance(origin, destination)
    if route is not None:
        options["self-driving"] = Leg(
            origin,
            destination,
            date,
            "self-driving",
            None,
            route,
            route.cost("self-driving") * math.ceil(people / 5),
        )
        options["taxi"] = Leg(
            origin,
            destination,
            date,
            "taxi",
            None,
            route,
            route.cost("taxi") * math.ceil(people / 4),
        )
    return options


def _choose_legs(
    db: TravelDatabase, query: TravelQuery, stops: Sequence[str]
) -> tuple[Leg, ...] | None:
    """The cheapest consistent legs: all self-driving, or each leg by flight or taxi."""
    banned = query.constraint("transportation")
    families = []
    if banned != "no self-driving":
        families.append(("self-driving",))
    families.append(("taxi",) if banned == "no flight" else ("flight", "taxi"))
    best: tuple[Leg, ...] | None = None
    for family in families:
        legs = []
        for position, (a, b) in enumerate(itertools.pairwise(stops)):
            date = query.date[min(2 * position, len(query.date) - 1)]
            options = _leg_options(db, a, b, date, query.people_number)
            usable = [options[mode] for mode in family if mode in options]
            if not usable:
                break
            legs.append(min(usable, key=lambda leg: leg.cost))
        else:
            if best is None or sum(x.cost for x in legs) < sum(x.cost for x in best):
                best = tuple(legs)
    return best


def _stay_for(db: TravelDatabase, query: TravelQuery, city: str) -> Accommodation | None:
    rule = query.constraint("house rule")
    room_type = query.constraint("room type")
    wanted = {
        "shared room": "Shared room",
        "private room": "Private room",
        "entire room": "Entire home/apt",
    }.get(room_type or "")
    best, best_cost = None, math.inf
    for stay in db.accommodations_in(city):
        if stay.minimum_nights > _STAY_NIGHTS:
            continue
        if rule and f"no {rule}" in stay.house_rules.casefold():
            continue
        if room_type == "not shared room" and stay.room_type == "Shared room":
            continue
        if wanted and stay.room_type != wanted:
            continue
        cost = stay.price * math.ceil(query.people_number / stay.maximum_occupancy)
        if cost < best_cost:
            best, best_cost = stay, cost
    return best


def _meals_needed(position: int, count: int) -> int:
    # Lunch and dinner on arrival, three meals on the sightseeing day, and breakfast and
    # lunch before leaving the last city.
    return 5 + (2 if position == count - 1 else 0)


def _pick_restaurants(
    db: TravelDatabase, query: TravelQuery, cities: Sequence[str]
) -> list[list[Restaurant]] | None:
    """Distinct restaurants per city (cheapest first), covering the required cuisines."""
    needs = [_meals_needed(i, len(cities)) for i in range(len(cities))]
    pools = [sorted(db.restaurants_in(c), key=lambda r: (r.average_cost, r.name)) for c in cities]
    if any(len(pool) < need for pool, need in zip(pools, needs, strict=True)):
        return None
    chosen: list[list[Restaurant]] = [[] for _ in cities]
    for cuisine in query.constraint("cuisine") or ():
        if any(cuisine in r.cuisines for picks in chosen for r in picks):
            continue
        options = [
            (r.average_cost, i, r.name, r)
            for i, pool in enumerate(pools)
            if len(chosen[i]) < needs[i]
            for r in pool
            if cuisine in r.cuisines and r not in chosen[i]
        ]
        if not options:
            return None
        _, i, _, restaurant = min(options, key=lambda o: o[:3])
        chosen[i].append(restaurant)
    for i, pool in enumerate(pools):
        for restaurant in pool:
            if len(chosen[i]) >= needs[i]:
                break
            if restaurant not in chosen[i]:
                chosen[i].append(restaurant)
    return chosen


def _city_floor(db: TravelDatabase, query: TravelQuery, city: str) -> float:
    """A lower bound of what a city costs (stay and cheapest meals); ``inf`` if unusable."""
    stay = _stay_for(db, query, city)
    if stay is None or not db.attractions_in(city):
        return math.inf
    meals = sorted(r.average_cost for r in db.restaurants_in(city))[:5]
    if len(meals) < 5:
        return math.inf
    return (
        _STAY_NIGHTS * stay.price * math.ceil(query.people_number / stay.maximum_occupancy)
        + sum(meals) * query.people_number
    )


def _write_plan(
    query: TravelQuery,
    cities: Sequence[str],
    legs: Sequence[Leg],
    stays: Sequence[Accommodation],
    meals: Sequence[Sequence[Restaurant]],
    db: TravelDatabase,
) -> Plan:
    def label(name: str, city: str) -> str:
        return f"{name}, {city}"

    plan: Plan = []
    stops = [query.org, *cities, query.org]
    for i, city in enumerate(cities):
        queue = list(meals[i])
        stay = label(stays[i].name, city)
        sights = db.attractions_in(city)
        arrival_from = stops[i]
        plan.append(
            {
                "days": 2 * i + 1,
                "current_city": f"from {arrival_from} to {city}",
                "transportation": legs[i].describe(),
                "breakfast": "-",
                "attraction": "-",
                "lunch": label(queue.pop(0).name, city),
                "dinner": label(queue.pop(0).name, city),
                "accommodation": stay,
            }
        )
        plan.append(
            {
                "days": 2 * i + 2,
                "current_city": city,
                "transportation": "-",
                "breakfast": label(queue.pop(0).name, city),
                "attraction": "".join(f"{label(a.name, city)};" for a in sights[:2]),
                "lunch": label(queue.pop(0).name, city),
                "dinner": label(queue.pop(0).name, city),
                "accommodation": stay,
            }
        )
        if i == len(cities) - 1:
            plan.append(
                {
                    "days": 2 * i + 3,
                    "current_city": f"from {city} to {query.org}",
                    "transportation": legs[i + 1].describe(),
                    "breakfast": label(queue.pop(0).name, city),
                    "attraction": "-",
                    "lunch": label(queue.pop(0).name, city),
                    "dinner": "-",
                    "accommodation": "-",
                }
            )
    return plan


def plan_trip(query: TravelQuery, db: TravelDatabase) -> Trip | None:
    """The cheapest plan the search finds for ``query`` (budget ignored), or ``None``."""
    from agentgym.envs.travelplanner.judge import total_cost

    count = query.visiting_city_number
    if query.days != 2 * count + 1 or len(query.date) < query.days:
        return None
    if count == 1 and db.canonical_city(query.dest) is not None:
        candidates: Sequence[str] = (db.canonical_city(query.dest),)  # type: ignore[assignment]
    else:
        candidates = tuple(c for c in db.cities_in(query.dest) if c != query.org)
    floors = {city: _city_floor(db, query, city) for city in candidates}
    usable = [city for city in candidates if floors[city] < math.inf]
    scored = []
    for cities in itertools.permutations(usable, count):
        legs = _choose_legs(db, query, [query.org, *cities, query.org])
        if legs is not None:
            scored.append(
                (sum(floors[c] for c in cities) + sum(x.cost for x in legs), cities, legs)
            )
    scored.sort(key=lambda item: (item[0], item[1]))
    for _, cities, legs in scored[:_CANDIDATE_SEQUENCES]:
        meals = _pick_restaurants(db, query, cities)
        if meals is None:
            continue
        stays = [_stay_for(db, query, city) for city in cities]
        plan = _write_plan(query, cities, legs, stays, meals, db)  # type: ignore[arg-type]
        return Trip(tuple(cities), legs, plan, total_cost(query, plan, db))
    return None


# ------------------------------------------------------------------------ errors --

#: Error kinds :func:`inject_error` knows, and the check each one breaks.
ERROR_KINDS: dict[str, str] = {
    "unknown_restaurant": "is_valid_information_in_sandbox",
    "missing_meal": "is_not_absent",
    "restaurant_in_other_city": "is_valid_information_in_current_city",
    "open_route": "is_reasonable_visiting_city",
    "repeated_restaurant": "is_valid_restaurants",
    "repeated_attraction": "is_valid_attractions",
    "conflicting_transport": "is_valid_transportation",
    "short_stay": "is_valid_accommodation",
    "over_budget": "valid_cost",
    "house_rule": "valid_room_rule",
    "room_type": "valid_room_type",
    "missing_cuisine": "valid_cuisine",
    "banned_transport": "valid_transportation",
}


def inject_error(
    plan: Plan, kind: str, query: TravelQuery, db: TravelDatabase, rng: np.random.Generator
) -> Plan | None:
    """A copy of ``plan`` that breaks the rule of ``kind``; ``None`` when not possible here."""
    if kind not in ERROR_KINDS:
        raise ValueError(f"Unknown error kind {kind!r}; valid: {', '.join(ERROR_KINDS)}")
    plan = [dict(day) for day in plan]
    sight_days = [d for d in plan if "from " not in str(d["current_city"])]
    day = sight_days[int(rng.integers(len(sight_days)))]
    city = str(day["current_city"])
    if kind == "unknown_restaurant":
        day["lunch"] = f"The Imaginary Bistro, {city}"
    elif kind == "missing_meal":
        day[str(rng.choice(["breakfast", "lunch", "dinner"]))] = "-"
    elif kind == "restaurant_in_other_city":
        trip_cities = {str(d["current_city"]) for d in sight_days} | {query.org}
        others = [c for c in db.cities if c not in trip_cities and db.restaurants_in(c)]
        other = others[int(rng.integers(len(others)))]
        day["dinner"] = f"{db.restaurants_in(other)[0].name}, {other}"
    elif kind == "open_route":
        plan = plan[:-1]  # never return home
    elif kind == "repeated_restaurant":
        day["dinner"] = day["lunch"]
    elif kind == "repeated_attraction":
        plan[-1]["attraction"] = day["attraction"].split(";")[0] + ";"
        if split_name_city(plan[-1]["attraction"][:-1])[1] not in plan[-1]["current_city"]:
            return None
    elif kind == "conflicting_transport":
        return _swap_transport(plan, query, db)
    elif kind == "short_stay":
        long_stays = [s for s in db.accommodations_in(city) if s.minimum_nights > _STAY_NIGHTS]
        if not long_stays:
            return None
        text = f"{long_stays[0].name}, {city}"
        for d in plan:
            if split_name_city(str(d["accommodation"]))[1] == city:
                d["accommodation"] = text
    elif kind == "over_budget":
        stays = sorted(db.accommodations_in(city), key=lambda s: -s.price)
        text = f"{stays[0].name}, {city}"
        for d in plan:
            if split_name_city(str(d["accommodation"]))[1] == city:
                d["accommodation"] = text
    elif kind in ("house_rule", "room_type"):
        return _swap_stay(plan, kind, query, db, city)
    elif kind == "missing_cuisine":
        return None  # removing a cuisine cleanly needs a re-plan; not offered
    elif kind == "banned_transport":
        return (
            None
            if not query.constraint("transportation")
            else _swap_transport(plan, query, db, banned=True)
        )
    return plan


def _swap_transport(
    plan: Plan, query: TravelQuery, db: TravelDatabase, banned: bool = False
) -> Plan | None:
    first = plan[0]
    origin, _, destination = str(first["current_city"])[5:].partition(" to ")
    mode = "self-driving" if "Self-driving" not in str(first["transportation"]) else "taxi"
    if banned:
        mode = "flight" if query.constraint("transportation") == "no flight" else "self-driving"
    options = _leg_options(db, origin, destination, query.date[0], query.people_number)
    if mode not in options:
        return None
    first["transportation"] = options[mode].describe()
    return plan


def _swap_stay(
    plan: Plan, kind: str, query: TravelQuery, db: TravelDatabase, city: str
) -> Plan | None:
    rule = query.constraint("house rule")
    room_type = query.constraint("room type")
    if kind == "house_rule" and rule:
        bad = [s for s in db.accommodations_in(city) if f"no {rule}" in s.house_rules.casefold()]
    elif kind == "room_type" and room_type:
        wanted = {
            "shared room": "Shared room",
            "private room": "Private room",
            "entire room": "Entire home/apt",
        }.get(room_type)
        bad = [
            s
            for s in db.accommodations_in(city)
            if (s.room_type == "Shared room" if wanted is None else s.room_type != wanted)
        ]
    else:
        return None
    bad = [s for s in bad if s.minimum_nights <= _STAY_NIGHTS]
    if not bad:
        return None
    for d in plan:
        if split_name_city(str(d["accommodation"]))[1] == city:
            d["accommodation"] = f"{bad[0].name}, {city}"
    return plan
