"""The travel database: cities by state, flights, distances, stays, restaurants, attractions.

A :class:`TravelDatabase` holds the six tables of the TravelPlanner sandbox behind indexed
lookups (``dict`` by city, by ``(name, city)``, by flight number, by city pair), so a tool
call or an evaluator check costs a dictionary access, never a scan. It is built either by
:func:`get_database` (the seeded generator of :mod:`.generator`, with the benchmark's
schema, vocabularies and string formats) or by
:func:`agentgym.envs.travelplanner.loaders.load_database` (the original benchmark's CSV
files).

Generated flights and distances are *computed on demand* from the seed instead of stored:
the benchmark's 3.8 million flight rows would cost gigabytes, while a flight between two
cities on a given day is a pure function of (seed, origin, destination, day). Flight numbers
encode that triple through an invertible affine map, so ``flight("F0123456")`` is a lookup
too. Databases are cached per ``(size, seed)`` and shared read-only by every environment.

Example:
    >>> db = get_database("small", seed=0)
    >>> db is get_database("small", seed=0)
    True
    >>> city = db.cities_in("Texas")[0]
    >>> db.state_of(city)
    'Texas'
    >>> stay = db.accommodations_in(city)[0]
    >>> db.accommodation(stay.name, city) is stay
    True
    >>> route = db.distance(city, db.cities_in("Texas")[1])
    >>> route.format("self-driving").startswith("self-driving, from ")
    True
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CONSTRAINT_CUISINES",
    "CUISINES",
    "HOUSE_RULES",
    "MONTH_DAYS",
    "ROOM_TYPES",
    "Accommodation",
    "Attraction",
    "Flight",
    "Restaurant",
    "Route",
    "TravelDatabase",
    "get_database",
    "normalize_name",
]

#: The seven cuisines a query may require.
CONSTRAINT_CUISINES = (
    "Chinese",
    "American",
    "Italian",
    "Mexican",
    "Indian",
    "Mediterranean",
    "French",
)
#: All 15 cuisine labels of the restaurant table.
CUISINES = (
    *CONSTRAINT_CUISINES,
    "Tea",
    "BBQ",
    "Seafood",
    "Cafe",
    "Desserts",
    "Pizza",
    "Fast Food",
    "Bakery",
)
#: The house rules a listing may forbid ("No parties & No smoking").
HOUSE_RULES = ("parties", "smoking", "children under 10", "visitors", "pets")
ROOM_TYPES = ("Entire home/apt", "Private room", "Shared room")
#: Trips happen on consecutive days of March 2022.
MONTH_DAYS = 31
YEAR_MONTH = "2022-03"


def normalize_name(name: str) -> str:
    """Case- and whitespace-insensitive key of a name.

    >>> normalize_name("  The  Golden Spoon ")
    'the golden spoon'
    """
    return " ".join(name.split()).casefold()


# ------------------------------------------------------------------------ records --


@dataclass(frozen=True, slots=True)
class Flight:
    """One row of the flight table (``Distance`` in miles, like the benchmark's)."""

    number: str
    price: int
    dep_time: str
    arr_time: str
    elapsed: str
    date: str
    origin: str
    destination: str
    distance: float


@dataclass(frozen=True, slots=True)
class Route:
    """One pair of the distance matrix (driving).

    >>> Route("A", "B", "1 hour 5 mins", 96.4).format("taxi")
    'taxi, from A to B, duration: 1 hour 5 mins, distance: 96 km, cost: 96'
    """

    origin: str
    destination: str
    duration: str
    distance_km: float

    def cost(self, mode: str) -> int:
        """Cost of the leg for one vehicle: self-driving 0.05 per km, taxi 1 per km."""
        return int(self.distance_km * 0.05) if mode == "self-driving" else int(self.distance_km)

    @property
    def distance_text(self) -> str:
        """The benchmark's distance string, e.g. ``"1,144 km"``."""
        return f"{round(self.distance_km):,} km"

    def format(self, mode: str) -> str:
        """The GoogleDistanceMatrix observation for ``mode``."""
        return (
            f"{mode}, from {self.origin} to {self.destination}, duration: {self.duration}, "
            f"distance: {self.distance_text}, cost: {self.cost(mode)}"
        )


@dataclass(frozen=True, slots=True)
class Accommodation:
    """One listing (``house_rules`` like ``"No parties & No pets"``, or ``""``)."""

    name: str
    room_type: str
    price: int
    minimum_nights: int
    review_rate: float
    house_rules: str
    maximum_occupancy: int
    city: str


@dataclass(frozen=True, slots=True)
class Restaurant:
    """One restaurant; ``average_cost`` is per person."""

    name: str
    city: str
    cuisines: tuple[str, ...]
    average_cost: int
    rating: float


@dataclass(frozen=True, slots=True)
class Attraction:
    """One attraction."""

    name: str
    latitude: float
    longitude: float
    address: str
    phone: str
    website: str
    city: str


# ------------------------------------------------------------------------ tables --


class FlightTable(Protocol):
    """Flights by ``(origin, destination, date)`` and by number."""

    def search(self, origin: str, destination: str, date: str) -> tuple[Flight, ...]: ...

    def get(self, number: str) -> Flight | None: ...

    def with_number(self, number: str) -> tuple[Flight, ...]: ...


class DistanceTable(Protocol):
    """The distance matrix by city pair."""

    def get(self, origin: str, destination: str) -> Route | None: ...


class IndexedDistances:
    """A distance matrix held in memory (loaded data); the first row of a pair wins.

    >>> table = IndexedDistances([Route("A", "B", "1 hour", 90), Route("A", "B", "2 hours", 1)])
    >>> table.get("A", "B").duration, table.get("B", "A"), len(table)
    ('1 hour', None, 1)
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes: dict[tuple[str, str], Route] = {}
        for route in routes:
            self._routes.setdefault((route.origin, route.destination), route)

    def get(self, origin: str, destination: str) -> Route | None:
        return self._routes.get((origin, destination))

    def __len__(self) -> int:
        return len(self._routes)


# ------------------------------------------------------------------------ database --


class TravelDatabase:
    """The sandbox's tables behind indexed lookups (shared read-only by environments).

    Args:
        states: State -> its cities (the benchmark's ``citySet_with_states``).
        accommodations / restaurants / attractions: All rows.
        flights: A :class:`FlightTable`.
        distances: A :class:`DistanceTable`.
        name: Where the data came from (``"generated-full-0"``, a directory, ...).
    """

    def __init__(
        self,
        *,
        states: Mapping[str, Sequence[str]],
        accommodations: Iterable[Accommodation],
        restaurants: Iterable[Restaurant],
        attractions: Iterable[Attraction],
        flights: FlightTable,
        distances: DistanceTable,
        name: str = "",
    ) -> None:
        self.name = name
        self.states = {state: tuple(cities) for state, cities in states.items()}
        self._state_of = {city: state for state, cities in self.states.items() for city in cities}
        self._state_key = {normalize_name(state): state for state in self.states}
        self._city_key = {normalize_name(city): city for city in self._state_of}
        self.flights = flights
        self.distances = distances
        self._stays = _group(accommodations)
        self._restaurants = _group(restaurants)
        self._attractions = _group(attractions)
        self._stay_index = _index(self._stays)
        self._restaurant_index = _index(self._restaurants)
        self._attraction_index = _index(self._attractions)

    # -- cities
    @property
    def cities(self) -> tuple[str, ...]:
        """Every city, grouped by state."""
        return tuple(self._state_of)

    def state_of(self, city: str) -> str | None:
        """The state of ``city`` (``None`` if unknown)."""
        return self._state_of.get(city)

    def cities_in(self, state: str) -> tuple[str, ...]:
        """The cities of ``state`` (empty if unknown)."""
        return self.states.get(state, ())

    def canonical_city(self, text: str) -> str | None:
        """The city named by ``text`` (any case/spacing; ``"City(State)"`` accepted)."""
        text = text.split("(")[0]
        return self._city_key.get(normalize_name(text))

    def canonical_state(self, text: str) -> str | None:
        """The state named by ``text`` (any case/spacing)."""
        return self._state_key.get(normalize_name(text))

    # -- listings
    def accommodations_in(self, city: str) -> tuple[Accommodation, ...]:
        return self._stays.get(city, ())

    def restaurants_in(self, city: str) -> tuple[Restaurant, ...]:
        return self._restaurants.get(city, ())

    def attractions_in(self, city: str) -> tuple[Attraction, ...]:
        return self._attractions.get(city, ())

    def accommodation(self, name: str, city: str) -> Accommodation | None:
        return self._stay_index.get((normalize_name(name), city))

    def restaurant(self, name: str, city: str) -> Restaurant | None:
        return self._restaurant_index.get((normalize_name(name), city))

    def attraction(self, name: str, city: str) -> Attraction | None:
        return self._attraction_index.get((normalize_name(name), city))

    # -- transport
    def flight(self, number: str) -> Flight | None:
        return self.flights.get(number.strip())

    def search_flights(self, origin: str, destination: str, date: str) -> tuple[Flight, ...]:
        return self.flights.search(origin, destination, date)

    def distance(self, origin: str, destination: str) -> Route | None:
        return self.distances.get(origin, destination)

    def counts(self) -> dict[str, int]:
        """Row counts of the stored tables.

        >>> sorted(get_database("small").counts())
        ['accommodations', 'attractions', 'cities', 'restaurants', 'states']
        """
        return {
            "states": len(self.states),
            "cities": len(self._state_of),
            "accommodations": sum(map(len, self._stays.values())),
            "restaurants": sum(map(len, self._restaurants.values())),
            "attractions": sum(map(len, self._attractions.values())),
        }

    def __repr__(self) -> str:
        return f"TravelDatabase({self.name!r}, {self.counts()})"


def _group(rows: Iterable[Accommodation | Restaurant | Attraction]) -> dict[str, tuple]:
    grouped: dict[str, list] = {}
    for row in rows:
        grouped.setdefault(row.city, []).append(row)
    return {city: tuple(items) for city, items in grouped.items()}


def _index(grouped: Mapping[str, tuple]) -> dict[tuple[str, str], object]:
    index: dict[tuple[str, str], object] = {}
    for city, rows in grouped.items():
        for row in rows:
            index.setdefault((normalize_name(row.name), city), row)
    return index


@functools.lru_cache(maxsize=8)
def get_database(size: str = "full", seed: int = 0) -> TravelDatabase:
    """The shared, read-only generated database for ``(size, seed)`` (built once).

    :func:`agentgym.envs.travelplanner.generator.generate_database` builds it.
    """
    # Imported here: the generator builds this module's records, so it imports this module.
    from agentgym.envs.travelplanner.generator import generate_database

    return generate_database(size, seed)
