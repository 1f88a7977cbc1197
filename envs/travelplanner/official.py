"""The official evaluation script's rules, quirks included (``evaluator="official"``).

The benchmark's published numbers come from its own script (``evaluation/eval.py`` with
``commonsense_constraint.py`` and ``hard_constraint.py`` in OSU-NLP-Group/TravelPlanner).
This module re-implements its verdicts rule by rule so that scores compare with published
ones; :mod:`.evaluator` holds the stricter rules the benchmark intends (the default). Every
difference is listed in ``docs/envs/travelplanner.md``; the ones that change verdicts:

* A name matches any listing *of that city* that contains it (``"Dragon, Denver"`` finds
  ``"Dragon Wok"``; an empty name finds every listing); the first such row supplies the
  price, cuisines, house rules and room type.
* Attractions are the ``;``-separated items *before the last* ``;``: without a trailing
  ``;`` the last one is ignored by the sandbox, current-city and repetition checks.
* On a day that is not a travel day the script tests the city name character by
  character: a meal or attraction passes if it contains *any letter* of the city, the
  accommodation if it contains the city's *last letter*, and a transportation entry must
  contain every letter of it.
* A flight must exist with that number from that origin to that destination, on any date.
  Minimum nights are enforced only when exactly one listing matches the name.
* The route check does not ask that a 3-day trip visit the query's destination; the
  completeness check counts every key with a value (8 per day, ``days`` and
  ``current_city`` included) against 6 per day.
* Cuisines: a meal in the origin city skips the rest of that day's meals; a required
  cuisine counts if it is a substring of the restaurant's cuisine list.
* Cost: a flight's price is its number's first row, whatever the route; listings are
  priced by their first matching row.

Where the script itself raises on a plan (e.g. ``"flight number: F1"`` in lower case, a
record without ``current_city``), the check fails with a message saying so: the official
run would have stopped there.

Example:
    >>> from agentgym.envs.travelplanner.database import get_database
    >>> from agentgym.envs.travelplanner.tasks import generate_query
    >>> db = get_database("small")
    >>> query = generate_query(db, index=0, split="validation")
    >>> verdicts, cost = official_verdicts(query, query.annotated_plan, db)
    >>> all(v.passed is not False for v in verdicts.values())
    True
    >>> split_name_city_official("Dragon Wok, Denver(Colorado)")
    ('Dragon Wok', 'Denver')
    >>> day_city_test("Denver", "Olive Tree, Houston")  # any letter of 'Denver' is in it
    True
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agentgym.envs.travelplanner.database import TravelDatabase
from agentgym.envs.travelplanner.plans import PADDING_TEXT, TravelQuery

__all__ = [
    "ScriptError",
    "day_city_test",
    "official_cost",
    "official_verdicts",
    "split_name_city_official",
]

MEALS = ("breakfast", "lunch", "dinner")
#: The house rules the script knows; any other value never fails.
KNOWN_HOUSE_RULES = ("smoking", "parties", "children under 10", "visitors", "pets")
#: ``from A to B``: A is the shortest text before the first `` to `` (one line), B runs to
#: the next comma or the end (spaces and line breaks included).
_FROM_TO = re.compile(r"from\s+(.+?)\s+to\s+([^,]+)")


Records = Sequence[Mapping[str, Any]]
#: A check's verdict as the script returns it: (passed or ``None``, message or ``None``).
Outcome = tuple[bool | None, str | None]


class ScriptError(Exception):
    """The official script would raise here (its run stops)."""


def _before_parenthesis(text: Any) -> str:
    """Text before the first ``(`` of the first line that a ``)`` follows; else unchanged."""
    if not isinstance(text, str):
        raise ScriptError(f"a city is {text!r}, not text")
    opening = text.find("(")
    if opening >= 0 and "\n" not in text[:opening] and ")" in text[opening + 1 :]:
        return text[:opening]
    return text


def _from_to(text: Any) -> tuple[str, str] | tuple[None, None]:
    if not isinstance(text, str):
        raise ScriptError(f"a field is {text!r}, not text")
    match = _FROM_TO.search(text)
    return (match.group(1), match.group(2)) if match else (None, None)


def split_name_city_official(text: Any) -> tuple[str, str]:
    """``"Name, City"`` as the script splits it: at the last comma, ``("-", "-")`` if none.

    The name is the text of the comma's line before it; the city is the rest, stripped,
    with a ``(State)`` removed.
    """
    if not isinstance(text, str):
        raise ScriptError(f"a place is {text!r}, not text")
    comma = text.rfind(",")
    if comma < 0 or comma == len(text) - 1:
        return "-", "-"
    line_start = text.rfind("\n", 0, comma) + 1
    return text[line_start:comma].strip(), _before_parenthesis(text[comma + 1 :].strip()).strip()


def day_city_test(cities: str | Sequence[str], text: str) -> bool:
    """Whether ``text`` mentions one of the day's cities, as the script tests it.

    On travel days ``cities`` is the pair (A, B); otherwise it is the city name itself, and
    iterating over it yields its letters: any letter of the city passes.
    """
    return any(city in text for city in cities)


def _filled(day: Mapping[str, Any], key: str) -> bool:
    return key in day and bool(day[key]) and day[key] != "-"


def _attraction_items(value: str) -> list[str]:
    """The items before the last ``;`` (the script's ``split(';')[:-1]``)."""
    return value.split(";")[:-1]


def _matches(rows: Sequence[Any], name: str) -> list[Any]:
    """Rows of a city whose name contains ``name`` (the script's escaped ``str.contains``)."""
    return [row for row in rows if name in str(row.name)]


def _restaurants(db: TravelDatabase, text: Any) -> list[Any]:
    name, city = split_name_city_official(text)
    return _matches(db.restaurants_in(city), name)


def _stays(db: TravelDatabase, text: Any) -> list[Any]:
    name, city = split_name_city_official(text)
    return _matches(db.accommodations_in(city), name)


def _route_cost(db: TravelDatabase, origin: str, destination: str, mode: str) -> int | None:
    """The script's driving cost (``None``: no valid information, or a drive of days)."""
    route = db.distance(_before_parenthesis(origin), _before_parenthesis(destination))
    if route is None or "day" in route.duration:
        return None
    return int(route.distance_km * 0.05) if "driving" in mode else int(route.distance_km)


def _flight_number(value: str) -> str:
    marker = "Flight Number: "
    if marker not in value:
        raise ScriptError(f"'{value[:80]}' says 'flight number' but not '{marker}'")
    return value.split(marker)[1].split(",")[0]


def _leg(day: Mapping[str, Any], value: str) -> tuple[str, str] | tuple[None, None]:
    """The ``from A to B`` of a transportation entry, else of the day's current city."""
    origin, destination = _from_to(value)
    if origin is None or destination is None:
        origin, destination = _from_to(day["current_city"])
    return origin, destination


# ------------------------------------------------------------------------ commonsense --


def _route_cities(query: TravelQuery, records: Records) -> list[str] | str:
    """The script's city list (a failure message when day 1 leaves from the wrong city)."""
    cities: list[str] = []
    for position, day in enumerate(records):
        value = day["current_city"]
        if "from" in value:
            origin, destination = (_before_parenthesis(c) for c in _from_to(value))
            if position == 0 and origin != query.org:
                return f"The first day's city should be {query.org}."
            cities += [origin, destination]
        else:
            cities.append(_before_parenthesis(value))
    return cities


def _valid_sequence(cities: Sequence[str]) -> bool:
    """Each city of the middle appears in one run of at least two, and is never revisited."""
    if len(cities) < 3:
        return False
    seen: set[str] = set()
    start = 0
    while start < len(cities):
        city = cities[start]
        if city in seen and start not in (0, len(cities) - 1):
            return False
        end = start
        while end < len(cities) and cities[end] == city:
            end += 1
        if end - start == 1 and 0 < start < len(cities) - 1:
            return False
        seen.add(city)
        start = end
    return True


def _reasonable_route(query: TravelQuery, records: Records, db: TravelDatabase) -> Outcome:
    cities = _route_cities(query, records)
    if isinstance(cities, str):
        return False, cities
    if not cities:
        raise ScriptError("the plan has no day records")
    if cities[0] != cities[-1]:
        return False, "The trip should be a closed circle."
    if not _valid_sequence(cities):
        return False, "The city sequence is invalid."
    for position, city in enumerate(cities):
        state = db.state_of(city)
        if state is None:
            return False, f"{city} is not a valid city."
        if position not in (0, len(cities) - 1) and query.days > 3 and state != query.dest:
            return False, f"{city} is not in {query.dest}."
    return True, None


def _diverse_restaurants(query: TravelQuery, records: Records, db: TravelDatabase) -> Outcome:
    seen: list[Any] = []
    for number, day in enumerate(records, start=1):
        for meal in MEALS:
            if not _filled(day, meal):
                continue
            if day[meal] in seen:
                detail = f" {day[meal]}" if meal == "lunch" else ""
                return False, f"The restaurant in day {number} {meal}{detail} is repeated."
            seen.append(day[meal])
    return True, None


def _diverse_attractions(query: TravelQuery, records: Records, db: TravelDatabase) -> Outcome:
    seen: list[str] = []
    for number, day in enumerate(records, start=1):
        if _filled(day, "attraction"):
            for item in _attraction_items(day["attraction"]):
                if item in seen:
                    return False, f"The attraction '{item}' in day {number} is repeated."
                seen.append(item)
    return True, None


def _transport_kind(text: str) -> str | None:
    lowered = text.lower()
    if "taxi" in lowered:
        return "Taxi"
    if "self-driving" in lowered:
        return "Self-driving"
    if "flight" in lowered:
        return "Flight"
    return None


def _non_conflicting_transport(
    query: TravelQuery, records: Records, db: TravelDatabase, plan: Sequence[Any]
) -> Outcome:
    first = plan[0]["transportation"]  # the plan's first record, whatever its length
    if not first or first == "-":
        return False, "The transportation in day 1 should not be empty."
    kinds = [_transport_kind(first)]
    kinds += [
        _transport_kind(day["transportation"]) for day in records if _filled(day, "transportation")
    ]
    if "Self-driving" in kinds and ("Flight" in kinds or "Taxi" in kinds):
        return False, "The transportation is conflicting."
    return True, None


def _day_cities(day: Mapping[str, Any]) -> list[str] | str:
    """(A, B) on a travel day; otherwise the city *string*, which the tests iterate over."""
    value = day["current_city"]
    if "from" in value:
        return [_before_parenthesis(c) for c in _from_to(value)]
    return _before_parenthesis(value)


def _within_current_city(query: TravelQuery, records: Records, db: TravelDatabase) -> Outcome:
    for number, day in enumerate(records, start=1):
        cities = _day_cities(day)
        transport = day["transportation"] if _filled(day, "transportation") else None
        if transport is not None and any(city not in transport for city in cities):
            return False, f"The transportation in day {number} is invalid city choice."
        for meal in MEALS:
            if _filled(day, meal) and not day_city_test(cities, day[meal]):
                return False, f"The {meal} in day {number} is invalid city choice."
        if _filled(day, "attraction"):
            for item in _attraction_items(day["attraction"]):
                if not day_city_test(cities, item):
                    return False, f"The attraction in day {number} is invalid city choice."
        if _filled(day, "accommodation"):
            if not cities:
                raise ScriptError(f"day {number} has an empty current city")
            if cities[-1] not in day["accommodation"]:
                return False, f"The accommodation in day {number} is invalid city choice."
    return True, None


def _within_sandbox(query: TravelQuery, records: Records, db: TravelDatabase) -> Outcome:
    for number, day in enumerate(records, start=1):
        value = day["transportation"]
        if value and value != "-":
            origin, destination = _leg(day, value)
            lowered = value.lower()
            if "flight number" in lowered:
                if origin is None or destination is None:
                    raise ScriptError(f"the transportation of day {number} cannot be parsed")
                origin, destination = _before_parenthesis(origin), _before_parenthesis(destination)
                flights = db.flights.with_number(_flight_number(value))
                if not any(f.origin == origin and f.destination == destination for f in flights):
                    return False, f"The flight number in day {number} is invalid in the sandbox."
            elif "self-driving" in lowered or "taxi" in lowered:
                if origin is None or destination is None:
                    origin = destination = "-"
                mode = "self-driving" if "self-driving" in lowered else "taxi"
                if _route_cost(db, origin, destination, mode) is None:
                    return False, f"The {mode} in day {number} is invalid in the sandbox."
        for meal in MEALS:
            if _filled(day, meal) and not _restaurants(db, day[meal]):
                return False, f"The {meal} in day {number} is invalid in the sandbox."
        if _filled(day, "attraction"):
            for item in _attraction_items(day["attraction"]):
                name, city = split_name_city_official(item)
                if not _matches(db.attractions_in(city), name):
                    message = f"The attraction {item} in day {number} is invalid in the sandbox."
                    return False, message
        if _filled(day, "accommodation") and not _stays(db, day["accommodation"]):
            return False, f"The accommodation in day {number} is invalid in the sandbox."
    return True, None


def _minimum_nights(query: TravelQuery, records: Records, db: TravelDatabase) -> Outcome:
    values = []
    for day in records:
        if "accommodation" not in day:
            return False, "No Accommodation Info."
        values.append(day["accommodation"])
    start = 0
    while start < len(values):
        end = start
        while end < len(values) and values[end] == values[start]:
            end += 1
        value, nights = values[start], end - start
        if value not in ("-", ""):
            stays = _stays(db, value)
            if len(stays) == 1 and nights < stays[0].minimum_nights:
                return False, f"The accommodation {value} do not obey the minumum nights rule."
        start = end
    return True, None


def _visiting_city_number(query: TravelQuery, records: Records) -> Outcome:
    cities: set[str] = set()
    for position, day in enumerate(records):
        value = day["current_city"]
        if "from" in value:
            origin, destination = (_before_parenthesis(c) for c in _from_to(value))
            if position == 0 and origin != query.org:
                return False, f"The first day's city should be {query.org}."
            cities.update((origin, destination))
        else:
            cities.add(_before_parenthesis(value))
    cities.discard(query.org)
    if len(cities) != query.visiting_city_number:
        return False, f"The number of visiting cities should be {query.visiting_city_number}."
    return True, None


_REQUIRED_KEYS = {
    "transportation": "Transportation",
    "breakfast": "Breakfast",
    "lunch": "Lunch",
    "dinner": "Dinner",
    "attraction": "Attraction",
    "accommodation": "Accommodation",
}


def _complete(query: TravelQuery, records: Records, db: TravelDatabase) -> Outcome:
    real_days = sum(1 for day in records if day != {} and day["current_city"] != PADDING_TEXT)
    if real_days != query.days:
        return False, "Invalid Days"
    if not _visiting_city_number(query, records)[0]:
        return False, "Invalid City Number"
    filled = 0
    for position, day in enumerate(records):
        for key, label in _REQUIRED_KEYS.items():
            if key not in day:
                return False, f"No {label} Info."
        city, number = day["current_city"], position + 1
        if ("from " in city or "to " in city) and day["transportation"] in ("", "-"):
            return False, f"No transportation in day {number} is not allowed."
        if "from " not in city and " to " not in city and day["attraction"] in ("", "-"):
            return False, f"No attaction in day {number} is not allowed."
        if position != query.days - 1 and day["accommodation"] in ("", "-"):
            return False, f"No accommodation in day {number} is not allowed."
        if "from " not in city and any(day[meal] in ("", "-") for meal in MEALS):
            return False, f"No meal in day {number} is not allowed."
        filled += sum(1 for key in day if day[key] and day[key] != "-")
    if filled / (6 * query.days) < 0.5:
        return False, "The absent information is more than 50%."
    return True, None


# ------------------------------------------------------------------------ hard --


def official_cost(query: TravelQuery, plan: Sequence[Any], db: TravelDatabase) -> int | float:
    """The script's total cost of the first ``query.days`` records of ``plan``.

    Raises :class:`ScriptError` where the script would (e.g. a driving leg without a cost).
    """
    people = query.people_number
    total: int | float = 0
    for day in plan[: query.days]:
        value = day["transportation"]
        if value and value != "-":
            origin, destination = _leg(day, value)
            lowered = value.lower()
            if origin is not None and destination is not None:
                if "flight number" in lowered:
                    flights = db.flights.with_number(_flight_number(value))
                    total += flights[0].price * people if flights else 0
                elif "self-driving" in lowered or "taxi" in lowered:
                    mode = "self-driving" if "self-driving" in lowered else "taxi"
                    cost = _route_cost(db, origin, destination, mode)
                    if cost is None:
                        raise ScriptError(f"no {mode} cost from {origin} to {destination}")
                    total += cost * math.ceil(people / (5 if mode == "self-driving" else 4))
        for meal in MEALS:
            if day[meal] and day[meal] != "-":
                rows = _restaurants(db, day[meal])
                total += rows[0].average_cost * people if rows else 0
        if day["accommodation"] and day["accommodation"] != "-":
            rows = _stays(db, day["accommodation"])
            if rows:
                if not rows[0].maximum_occupancy:
                    raise ScriptError(f"'{rows[0].name}' has a maximum occupancy of 0")
                total += rows[0].price * math.ceil(people / rows[0].maximum_occupancy)
    return total


def _cuisine(query: TravelQuery, records: Records, db: TravelDatabase) -> Outcome:
    required = query.constraint("cuisine")
    if not required:
        return None, None
    found: set[str] = set()
    for day in records:
        for meal in MEALS:
            if not day[meal] or day[meal] == "-":
                continue
            if split_name_city_official(day[meal])[1] == query.org:
                break  # the script's `continue` leaves the whole day
            rows = _restaurants(db, day[meal])
            if rows:
                labels = ", ".join(rows[0].cuisines)
                found.update(cuisine for cuisine in required if cuisine in labels)
    if len(found) == len(required):
        return True, None
    missing = next((c for c in required if c not in found), None)
    return False, f"The cuisine {missing} is not satisfied."


def _room_rule(query: TravelQuery, records: Records, db: TravelDatabase) -> Outcome:
    rule = query.constraint("house rule")
    if rule is None:
        return None, None
    for day in records:
        if day["accommodation"] and day["accommodation"] != "-":
            rows = _stays(db, day["accommodation"])
            if rows and rule in KNOWN_HOUSE_RULES and f"No {rule}" in str(rows[0].house_rules):
                return False, f"The house rule should be {rule}."
    return True, None


def _transportation(query: TravelQuery, records: Records, db: TravelDatabase) -> Outcome:
    banned = query.constraint("transportation")
    if banned is None:
        return None, None
    for day in records:
        value = day["transportation"]
        if not value or value == "-":
            continue
        if (banned == "no flight" and "Flight" in value) or (
            banned == "no self-driving" and "Self-driving" in value
        ):
            return False, f"The transportation should not be {banned}."
    return True, None


_ROOM_TYPES = {
    "shared room": "Shared room",
    "private room": "Private room",
    "entire room": "Entire home/apt",
}


def _room_type(query: TravelQuery, records: Records, db: TravelDatabase) -> Outcome:
    wanted = query.constraint("room type")
    if wanted is None:
        return None, None
    for day in records:
        if day["accommodation"] and day["accommodation"] != "-":
            rows = _stays(db, day["accommodation"])
            if not rows:
                continue
            kind = rows[0].room_type
            if wanted == "not shared room":
                wrong = kind == "Shared room"
            else:
                wrong = wanted in _ROOM_TYPES and kind != _ROOM_TYPES[wanted]
            if wrong:
                return False, f"The room type should be {wanted}."
    return True, None


# ------------------------------------------------------------------------ public --

Check = Callable[..., Outcome]
_COMMONSENSE: dict[str, Check] = {
    "is_valid_information_in_sandbox": _within_sandbox,
    "is_not_absent": _complete,
    "is_valid_information_in_current_city": _within_current_city,
    "is_reasonable_visiting_city": _reasonable_route,
    "is_valid_restaurants": _diverse_restaurants,
    "is_valid_attractions": _diverse_attractions,
    "is_valid_transportation": _non_conflicting_transport,
    "is_valid_accommodation": _minimum_nights,
}
_HARD: dict[str, Check] = {
    "valid_room_rule": _room_rule,
    "valid_cuisine": _cuisine,
    "valid_room_type": _room_type,
    "valid_transportation": _transportation,
}
_SCRIPT_FAILURES = (ScriptError, KeyError, TypeError, AttributeError, IndexError)


def _run(check: Check, *args: Any) -> tuple[bool | None, str]:
    try:
        passed, message = check(*args)
    except _SCRIPT_FAILURES as exc:
        return False, f"The official script raises on this plan ({type(exc).__name__}: {exc})."
    return passed, message or ""


def official_verdicts(
    query: TravelQuery, plan: Sequence[Any], db: TravelDatabase
) -> tuple[dict[str, Any], int | float | None]:
    """The script's verdicts on a delivered (non-empty) plan, and its total cost.

    Returns ``(verdicts, cost)``: check name -> :class:`~.evaluator.Verdict` in the order of
    :data:`~.evaluator.COMMONSENSE_CHECKS` then the hard checks, and the cost (``None``
    where the script cannot price the plan). Hard checks are judged only when the sandbox
    and completeness checks pass, as in the script.
    """
    from agentgym.envs.travelplanner.judge import Verdict

    records = list(plan[: query.days])
    verdicts: dict[str, Verdict] = {}
    for name, check in _COMMONSENSE.items():
        arguments = (
            (query, records, db, plan)
            if check is _non_conflicting_transport
            else (query, records, db)
        )
        verdicts[name] = Verdict(*_run(check, *arguments))
    try:
        cost: int | float | None = official_cost(query, plan, db)
    except _SCRIPT_FAILURES:
        cost = None
    judged = verdicts["is_valid_information_in_sandbox"].passed and verdicts["is_not_absent"].passed
    if not judged:
        skipped = Verdict(
            False, "Not checked: the plan is incomplete or uses information outside the database."
        )
        verdicts["valid_cost"] = skipped
        for name, key in (
            ("valid_room_rule", "house rule"),
            ("valid_cuisine", "cuisine"),
            ("valid_room_type", "room type"),
            ("valid_transportation", "transportation"),
        ):
            verdicts[name] = skipped if query.constraint(key) else Verdict(None)
        return verdicts, cost
    if cost is None:
        verdicts["valid_cost"] = Verdict(False, "The official script cannot price this plan.")
    else:
        verdicts["valid_cost"] = Verdict(
            cost <= query.budget, f"The total cost {cost} exceeds the budget {query.budget}."
        )
    for name, check in _HARD.items():
        verdicts[name] = Verdict(*_run(check, query, records, db))
    return verdicts, cost
