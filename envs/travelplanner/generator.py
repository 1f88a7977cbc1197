"""The seeded generator of TravelPlanner databases: states, cities, listings, flights, drives.

Generated flights and distances are computed on demand from the seed
(:class:`SyntheticFlights`, :class:`SyntheticDistances`) instead of stored; the listings
(stays, restaurants, attractions) are drawn per city from the vocabularies below. Use
:func:`agentgym.envs.travelplanner.database.get_database` for the shared copy.

Example:
    >>> db = generate_database("small", seed=0)
    >>> db.name, len(db.cities_in("Texas")) > 1
    ('generated-small-0', True)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from agentgym.core.registry import check_choice
from agentgym.envs.travelplanner.database import (
    CUISINES,
    HOUSE_RULES,
    MONTH_DAYS,
    ROOM_TYPES,
    YEAR_MONTH,
    Accommodation,
    Attraction,
    Flight,
    Restaurant,
    Route,
    TravelDatabase,
)
from agentgym.envs.travelplanner.vocabulary import (
    ATTRACTION_KINDS,
    RESTAURANT_FIRST,
    RESTAURANT_SECOND,
    STAY_ADJECTIVES,
    STAY_KINDS,
    STAY_PLACES,
    STREETS,
    US_STATES,
)

__all__ = ["SIZES", "US_STATES", "SyntheticDistances", "SyntheticFlights", "generate_database"]


def _mix(*values: int) -> int:
    """A fast, well-spread 64-bit hash of integers (splitmix64 steps)."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (value & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 31
        state = state * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 29
    return state


def _great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


def _duration_text(hours: float) -> str:
    """``"X hours Y mins"`` as in the matrix (drives are under a day).

    >>> _duration_text(14.8), _duration_text(1.0)
    ('14 hours 48 mins', '1 hour')
    """
    hours_part, mins = divmod(max(1, round(hours * 60)), 60)
    parts = []
    if hours_part:
        parts.append(f"{hours_part} hour{'s' if hours_part > 1 else ''}")
    if mins:
        parts.append(f"{mins} min{'s' if mins > 1 else ''}")
    return " ".join(parts)


def _clock(minutes: int) -> str:
    minutes %= 24 * 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# Flight numbers are F + 7 digits: an affine bijection of the code (route, day, slot) mod 10^7.
_NUMBER_SPACE = 10_000_000
_NUMBER_MULTIPLIER = 7_654_321  # odd and not a multiple of 5: invertible mod 10^7
_NUMBER_INVERSE = pow(_NUMBER_MULTIPLIER, -1, _NUMBER_SPACE)
_NUMBER_SHIFT = 3_141_593
_SLOTS_PER_DAY = 4


class SyntheticFlights:
    """Flights computed on demand from the seed (generated databases).

    A route exists for about ``route_share`` of city pairs (both directions alike); on each
    day of March it has 0-4 flights, priced by distance. ``get`` inverts the flight number.
    """

    def __init__(
        self,
        cities: Sequence[str],
        coordinates: Mapping[str, tuple[float, float]],
        seed: int,
        route_share: float = 0.6,
    ) -> None:
        if len(cities) ** 2 * MONTH_DAYS * _SLOTS_PER_DAY > _NUMBER_SPACE:
            raise ValueError(f"too many cities ({len(cities)}) for 7-digit flight numbers")
        self._cities = tuple(cities)
        self._index = {city: i for i, city in enumerate(self._cities)}
        self._coordinates = coordinates
        self._seed = seed
        self._route_threshold = int(route_share * 1000)
        self._search = functools.lru_cache(maxsize=65_536)(self._build)

    def _has_route(self, i: int, j: int) -> bool:
        low, high = min(i, j), max(i, j)
        return i != j and _mix(self._seed, 1, low, high) % 1000 < self._route_threshold

    def _number(self, i: int, j: int, day: int, slot: int) -> str:
        code = ((i * len(self._cities) + j) * MONTH_DAYS + day - 1) * _SLOTS_PER_DAY + slot
        return f"F{(code * _NUMBER_MULTIPLIER + _NUMBER_SHIFT) % _NUMBER_SPACE:07d}"

    def _build(self, i: int, j: int, day: int) -> tuple[Flight, ...]:
        if not self._has_route(i, j):
            return ()
        origin, destination = self._cities[i], self._cities[j]
        km = _great_circle_km(self._coordinates[origin], self._coordinates[destination])
        rng = np.random.default_rng((self._seed, 2, i, j, day))
        count = int(rng.choice(5, p=(0.15, 0.3, 0.3, 0.15, 0.1)))
        flights = []
        for slot in range(count):
            minutes = int(km / 780 * 60 + 35 + rng.integers(0, 40))
            departure = int(rng.integers(5 * 60, 22 * 60)) // 5 * 5
            price = int(45 + km * rng.uniform(0.08, 0.22) + rng.integers(0, 120))
            flights.append(
                Flight(
                    number=self._number(i, j, day, slot),
                    price=price,
                    dep_time=_clock(departure),
                    arr_time=_clock(departure + minutes),
                    elapsed=f"{minutes // 60} hours {minutes % 60} minutes",
                    date=f"{YEAR_MONTH}-{day:02d}",
                    origin=origin,
                    destination=destination,
                    distance=round(km * 0.621371, 1),
                )
            )
        return tuple(sorted(flights, key=lambda f: f.dep_time))

    def search(self, origin: str, destination: str, date: str) -> tuple[Flight, ...]:
        i, j = self._index.get(origin), self._index.get(destination)
        if i is None or j is None or not date.startswith(YEAR_MONTH + "-"):
            return ()
        day_text = date[len(YEAR_MONTH) + 1 :]
        if not day_text.isdigit() or not 1 <= int(day_text) <= MONTH_DAYS:
            return ()
        return self._search(i, j, int(day_text))

    def get(self, number: str) -> Flight | None:
        if len(number) != 8 or number[0] != "F" or not number[1:].isdigit():
            return None
        code = (int(number[1:]) - _NUMBER_SHIFT) * _NUMBER_INVERSE % _NUMBER_SPACE
        code = code // _SLOTS_PER_DAY  # the slot is part of the stored number
        code, day_index = divmod(code, MONTH_DAYS)
        i, j = divmod(code, len(self._cities))
        if i >= len(self._cities):
            return None
        for flight in self._search(i, j, day_index + 1):
            if flight.number == number:
                return flight
        return None

    def with_number(self, number: str) -> tuple[Flight, ...]:
        """The flight with this number, as a 1-tuple (generated numbers are unique)."""
        flight = self.get(number)
        return () if flight is None else (flight,)


class SyntheticDistances:
    """The driving matrix computed from city coordinates (road factor ~1.25).

    About 4% of pairs are missing, as in the benchmark's matrix, and so are drives of a day
    or more: the benchmark's tool answers "No valid information." for any duration that
    mentions days.
    """

    def __init__(
        self, coordinates: Mapping[str, tuple[float, float]], seed: int, missing_share: float = 0.04
    ) -> None:
        self._coordinates = coordinates
        self._index = {city: i for i, city in enumerate(coordinates)}
        self._seed = seed
        self._missing = int(missing_share * 1000)
        self._get = functools.lru_cache(maxsize=65_536)(self._build)

    def _build(self, origin: str, destination: str) -> Route | None:
        i, j = self._index[origin], self._index[destination]
        low, high = min(i, j), max(i, j)
        if i == j or _mix(self._seed, 3, low, high) % 1000 < self._missing:
            return None
        km = _great_circle_km(self._coordinates[origin], self._coordinates[destination])
        km = km * (1.18 + (_mix(self._seed, 4, low, high) % 150) / 1000) + 3
        hours = km / (85 + _mix(self._seed, 5, low, high) % 20)
        if round(hours * 60) >= 24 * 60:
            return None
        return Route(origin, destination, _duration_text(hours), round(km, 1))

    def get(self, origin: str, destination: str) -> Route | None:
        if origin not in self._index or destination not in self._index:
            return None
        return self._get(origin, destination)


#: size -> (states to use (None: all), stays per city, restaurants per city, attractions per
#: city) as inclusive ranges.
SIZES: dict[str, tuple[int | None, tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    "full": (None, (4, 37), (16, 65), (0, 20)),
    "small": (12, (4, 8), (8, 14), (2, 5)),
}


def _state_abbreviation(state: str) -> str:
    words = state.split()
    return (words[0][:2] if len(words) == 1 else words[0][0] + words[1][0]).upper()


def _make_city_stays(city: str, rng: np.random.Generator, count: int) -> list[Accommodation]:
    stays: list[Accommodation] = []
    names: set[str] = set()
    while len(stays) < count:
        room_type = ROOM_TYPES[int(rng.choice(3, p=(0.52, 0.46, 0.02)))]
        name = (
            f"{rng.choice(STAY_ADJECTIVES)} {rng.choice(STAY_KINDS[room_type])} "
            f"{rng.choice(STAY_PLACES)}"
        )
        if name in names:
            name = f"{name} {len(stays) + 1}"
        names.add(name)
        rules = [f"No {rule}" for rule in HOUSE_RULES if rng.random() < 0.3]
        if room_type == "Entire home/apt":
            occupancy = int(rng.integers(2, 12))
            price = int(rng.integers(90, 1201))
        elif room_type == "Private room":
            occupancy = int(rng.integers(1, 5))
            price = int(rng.integers(50, 400))
        else:
            occupancy = int(rng.integers(1, 3))
            price = int(rng.integers(50, 200))
        stays.append(
            Accommodation(
                name=name,
                room_type=room_type,
                price=price,
                minimum_nights=int(rng.choice((1, 2, 3, 4, 30), p=(0.4, 0.25, 0.15, 0.1, 0.1))),
                review_rate=float(rng.integers(1, 6)),
                house_rules=" & ".join(rules),
                maximum_occupancy=occupancy,
                city=city,
            )
        )
    return stays


def _make_city_restaurants(city: str, rng: np.random.Generator, count: int) -> list[Restaurant]:
    restaurants: list[Restaurant] = []
    names: set[str] = set()
    while len(restaurants) < count:
        name = f"{rng.choice(RESTAURANT_FIRST)} {rng.choice(RESTAURANT_SECOND)}"
        if name in names:
            continue
        names.add(name)
        labels = rng.choice(len(CUISINES), size=int(rng.integers(1, 5)), replace=False)
        restaurants.append(
            Restaurant(
                name=name,
                city=city,
                cuisines=tuple(CUISINES[i] for i in sorted(labels)),
                average_cost=int(min(250, 10 + rng.gamma(2.0, 18.0))),
                rating=round(float(rng.uniform(0.0, 5.0)), 1),
            )
        )
    return restaurants


def _make_city_attractions(
    city: str, state: str, position: tuple[float, float], rng: np.random.Generator, count: int
) -> list[Attraction]:
    kinds = rng.choice(len(ATTRACTION_KINDS), size=min(count, len(ATTRACTION_KINDS)), replace=False)
    attractions = []
    for k in kinds:
        name = f"{city} {ATTRACTION_KINDS[int(k)]}"
        slug = "".join(ch for ch in name.lower() if ch.isalnum())
        attractions.append(
            Attraction(
                name=name,
                latitude=round(position[0] + float(rng.normal(0, 0.05)), 6),
                longitude=round(position[1] + float(rng.normal(0, 0.05)), 6),
                address=(
                    f"{int(rng.integers(1, 9999))} {rng.choice(STREETS)}, {city}, "
                    f"{_state_abbreviation(state)} {int(rng.integers(10000, 99999))}, USA"
                ),
                phone=f"({int(rng.integers(201, 990))}) {int(rng.integers(200, 999))}-"
                f"{int(rng.integers(1000, 9999))}",
                website=f"https://www.{slug}.org/",
                city=city,
            )
        )
    return attractions


def generate_database(size: str = "full", seed: int = 0) -> TravelDatabase:
    """Build a database of the given size (use :func:`get_database` for the shared copy)."""
    check_choice("size", size, list(SIZES))
    state_count, stay_range, restaurant_range, attraction_range = SIZES[size]
    chosen = list(US_STATES.items())[: state_count or len(US_STATES)]
    rng = np.random.default_rng((seed, 7))
    states: dict[str, tuple[str, ...]] = {}
    coordinates: dict[str, tuple[float, float]] = {}
    stays: list[Accommodation] = []
    restaurants: list[Restaurant] = []
    attractions: list[Attraction] = []
    for state, (latitude, longitude, cities) in chosen:
        states[state] = cities
        for city in cities:
            position = (latitude + float(rng.normal(0, 1.5)), longitude + float(rng.normal(0, 2)))
            coordinates[city] = position
            stays += _make_city_stays(
                city, rng, int(rng.integers(stay_range[0], stay_range[1] + 1))
            )
            restaurants += _make_city_restaurants(
                city, rng, int(rng.integers(restaurant_range[0], restaurant_range[1] + 1))
            )
            count = int(rng.integers(attraction_range[0], attraction_range[1] + 1))
            attractions += _make_city_attractions(city, state, position, rng, count)
    cities = [city for city_list in states.values() for city in city_list]
    return TravelDatabase(
        states=states,
        accommodations=stays,
        restaurants=restaurants,
        attractions=attractions,
        flights=SyntheticFlights(cities, coordinates, seed),
        distances=SyntheticDistances(coordinates, seed),
        name=f"generated-{size}-{seed}",
    )
