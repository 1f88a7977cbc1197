"""The travel database: cities by state, flights, distances, stays, restaurants, attractions.

A :class:`TravelDatabase` holds the six tables of the TravelPlanner sandbox behind indexed
lookups (``dict`` by city, by ``(name, city)``, by flight number, by city pair), so a tool
call or an evaluator check costs a dictionary access, never a scan. It is built either by
:func:`get_database` (a seeded generator with the benchmark's schema, vocabularies and
string formats) or by :func:`agentgym.envs.travelplanner.loaders.load_database` (the
original benchmark's CSV files).

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
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from agentgym.core.registry import check_choice

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


# ------------------------------------------------------------------------ generator --

# State -> (latitude, longitude of its centre, its cities). Coordinates are approximate
# state centres; each city gets a seeded offset from it.
US_STATES: dict[str, tuple[float, float, tuple[str, ...]]] = {
    "Texas": (
        31.0,
        -99.0,
        (
            "Houston",
            "Dallas",
            "Austin",
            "San Antonio",
            "El Paso",
            "Lubbock",
            "Amarillo",
            "Corpus Christi",
            "Midland",
            "Abilene",
            "Laredo",
            "Waco",
        ),
    ),
    "California": (
        36.8,
        -119.4,
        (
            "Los Angeles",
            "San Francisco",
            "San Diego",
            "Sacramento",
            "Fresno",
            "Oakland",
            "San Jose",
            "Santa Barbara",
            "Bakersfield",
            "Monterey",
            "Palm Springs",
        ),
    ),
    "Florida": (
        28.0,
        -81.7,
        (
            "Miami",
            "Orlando",
            "Tampa",
            "Jacksonville",
            "Tallahassee",
            "Key West",
            "Fort Myers",
            "Pensacola",
            "Sarasota",
            "West Palm Beach",
        ),
    ),
    "New York": (
        42.9,
        -75.5,
        (
            "New York",
            "Buffalo",
            "Rochester",
            "Syracuse",
            "Albany",
            "Ithaca",
            "Elmira",
            "Binghamton",
            "Plattsburgh",
        ),
    ),
    "Colorado": (
        39.0,
        -105.5,
        ("Denver", "Colorado Springs", "Aspen", "Durango", "Grand Junction", "Gunnison", "Pueblo"),
    ),
    "Georgia": (
        32.7,
        -83.4,
        ("Atlanta", "Savannah", "Augusta", "Columbus", "Macon", "Valdosta", "Brunswick"),
    ),
    "Illinois": (
        40.0,
        -89.2,
        ("Chicago", "Peoria", "Springfield", "Moline", "Bloomington", "Champaign"),
    ),
    "Washington": (
        47.4,
        -120.5,
        ("Seattle", "Spokane", "Bellingham", "Pasco", "Walla Walla", "Wenatchee", "Yakima"),
    ),
    "Michigan": (
        44.3,
        -85.4,
        (
            "Detroit",
            "Grand Rapids",
            "Lansing",
            "Flint",
            "Kalamazoo",
            "Traverse City",
            "Marquette",
            "Alpena",
        ),
    ),
    "Arizona": (34.2, -111.7, ("Phoenix", "Tucson", "Flagstaff", "Yuma", "Prescott", "Page")),
    "Nevada": (39.3, -116.6, ("Las Vegas", "Reno", "Elko")),
    "Oregon": (44.0, -120.5, ("Portland", "Eugene", "Medford", "Bend", "Redmond")),
    "Utah": (
        39.3,
        -111.7,
        ("Salt Lake City", "Provo", "Ogden", "St. George", "Moab", "Vernal", "Cedar City"),
    ),
    "North Carolina": (
        35.5,
        -79.4,
        (
            "Charlotte",
            "Raleigh",
            "Greensboro",
            "Asheville",
            "Wilmington",
            "New Bern",
            "Fayetteville",
            "Greenville",
        ),
    ),
    "Pennsylvania": (
        40.9,
        -77.8,
        (
            "Philadelphia",
            "Pittsburgh",
            "Harrisburg",
            "Allentown",
            "Erie",
            "Scranton",
            "State College",
            "Latrobe",
        ),
    ),
    "Ohio": (40.3, -82.8, ("Cleveland", "Cincinnati", "Toledo", "Dayton", "Akron", "Youngstown")),
    "Massachusetts": (
        42.3,
        -71.8,
        ("Boston", "Worcester", "Nantucket", "Hyannis", "Martha's Vineyard"),
    ),
    "Virginia": (
        37.5,
        -78.8,
        (
            "Richmond",
            "Norfolk",
            "Roanoke",
            "Charlottesville",
            "Lynchburg",
            "Newport News",
            "Staunton",
        ),
    ),
    "Tennessee": (35.8, -86.3, ("Nashville", "Memphis", "Knoxville", "Chattanooga", "Bristol")),
    "Louisiana": (
        31.0,
        -92.0,
        (
            "New Orleans",
            "Baton Rouge",
            "Shreveport",
            "Lafayette",
            "Lake Charles",
            "Monroe",
            "Alexandria",
        ),
    ),
    "Minnesota": (
        46.3,
        -94.3,
        ("Minneapolis", "Duluth", "Bemidji", "Brainerd", "International Falls", "Hibbing"),
    ),
    "Wisconsin": (
        44.6,
        -89.9,
        ("Milwaukee", "Madison", "Green Bay", "Appleton", "La Crosse", "Mosinee", "Rhinelander"),
    ),
    "Missouri": (38.4, -92.5, ("St. Louis", "Kansas City", "Joplin", "Cape Girardeau", "Branson")),
    "Montana": (
        47.0,
        -109.6,
        ("Billings", "Missoula", "Bozeman", "Helena", "Kalispell", "Great Falls", "Butte"),
    ),
    "Alaska": (
        61.5,
        -150.0,
        ("Anchorage", "Fairbanks", "Juneau", "Ketchikan", "Sitka", "Kodiak", "Nome"),
    ),
    "Hawaii": (20.8, -156.3, ("Honolulu", "Kahului", "Kona", "Lihue", "Hilo")),
    "South Carolina": (
        33.9,
        -80.9,
        ("Charleston", "Columbia", "Greer", "Myrtle Beach", "Hilton Head"),
    ),
    "Kentucky": (37.5, -85.3, ("Louisville", "Lexington", "Paducah")),
    "New Mexico": (34.4, -106.1, ("Albuquerque", "Santa Fe", "Roswell", "Hobbs")),
    "Wyoming": (
        43.0,
        -107.5,
        ("Cheyenne", "Casper", "Jackson", "Cody", "Gillette", "Laramie", "Rock Springs"),
    ),
    "Idaho": (
        44.4,
        -114.6,
        ("Boise", "Idaho Falls", "Pocatello", "Twin Falls", "Lewiston", "Hailey"),
    ),
    "Maine": (45.3, -69.2, ("Bangor", "Presque Isle", "Rockland", "Bar Harbor")),
    "Arkansas": (34.9, -92.4, ("Little Rock", "Texarkana", "Fort Smith")),
    "Iowa": (42.1, -93.5, ("Des Moines", "Cedar Rapids", "Dubuque", "Sioux City", "Waterloo")),
    "Nebraska": (
        41.5,
        -99.8,
        ("Omaha", "Lincoln", "Grand Island", "Kearney", "North Platte", "Scottsbluff"),
    ),
    "North Dakota": (
        47.5,
        -100.5,
        ("Bismarck", "Fargo", "Minot", "Williston", "Devils Lake", "Jamestown"),
    ),
    "South Dakota": (
        44.4,
        -100.2,
        ("Sioux Falls", "Rapid City", "Pierre", "Aberdeen", "Watertown"),
    ),
    "Indiana": (39.9, -86.3, ("Indianapolis", "Evansville", "Fort Wayne", "South Bend")),
    "West Virginia": (38.6, -80.6, ("Huntington", "Clarksburg", "Lewisburg", "Morgantown")),
    "Vermont": (44.0, -72.7, ("Burlington", "Rutland")),
    "New Jersey": (40.1, -74.7, ("Newark", "Atlantic City", "Trenton")),
    "Maryland": (39.0, -76.8, ("Baltimore", "Hagerstown", "Salisbury")),
    "Oklahoma": (35.6, -97.5, ("Oklahoma City", "Tulsa", "Lawton")),
    "Kansas": (
        38.5,
        -98.4,
        ("Wichita", "Manhattan", "Garden City", "Dodge City", "Hays", "Liberal", "Salina"),
    ),
}

_RESTAURANT_FIRST = (
    "The Golden",
    "Blue",
    "Little",
    "Urban",
    "Rustic",
    "Silver",
    "Red",
    "Green",
    "Old Town",
    "Corner",
    "Happy",
    "Royal",
    "Lucky",
    "Copper",
    "Harbor",
    "Sunset",
    "Velvet",
    "Smoky",
    "Wild",
    "Saffron",
    "Olive",
    "Maple",
    "Crimson",
    "Jade",
    "Coastal",
    "Midtown",
    "Sunny",
    "Iron",
)
_RESTAURANT_SECOND = (
    "Spoon",
    "Lotus",
    "Grill",
    "Kitchen",
    "Bistro",
    "Table",
    "Fork",
    "Oven",
    "Garden",
    "Tavern",
    "Diner",
    "House",
    "Cafe",
    "Pantry",
    "Plate",
    "Wok",
    "Cantina",
    "Trattoria",
    "Brasserie",
    "Bakehouse",
    "Smokehouse",
    "Bowl",
    "Pit",
    "Terrace",
)
_STAY_ADJECTIVES = (
    "Cozy",
    "Spacious",
    "Charming",
    "Modern",
    "Sunny",
    "Quiet",
    "Bright",
    "Stylish",
    "Private",
    "Rustic",
    "Elegant",
    "Comfy",
    "Peaceful",
    "Lovely",
)
_STAY_KINDS = {
    "Entire home/apt": (
        "2BR apartment",
        "studio",
        "loft",
        "cottage",
        "townhouse",
        "1BR condo",
        "family home",
        "bungalow",
        "3BR house",
    ),
    "Private room": ("private room", "bedroom", "guest room", "room with bath", "garden room"),
    "Shared room": ("shared room", "bunk in shared room", "shared dorm"),
}
_STAY_PLACES = (
    "near downtown",
    "by the park",
    "with city views",
    "close to the beach",
    "in historic district",
    "near the university",
    "with free parking",
    "steps from the metro",
    "in quiet street",
    "near the river",
    "with patio",
    "next to cafes",
)
_ATTRACTION_KINDS = (
    "Museum of Art",
    "History Museum",
    "Botanical Garden",
    "Zoo",
    "Aquarium",
    "Science Center",
    "Memorial Park",
    "Riverwalk",
    "Art Gallery",
    "Old Fort",
    "Children's Museum",
    "State Park",
    "Observatory",
    "Lighthouse",
    "Farmers Market",
    "Sculpture Garden",
    "Heritage Village",
    "Nature Preserve",
    "Opera House",
    "Railroad Museum",
    "Waterfront Park",
    "Arboretum",
)
_STREETS = (
    "Main St",
    "Oak Ave",
    "Park Blvd",
    "River Rd",
    "Market St",
    "Lake Dr",
    "Elm St",
    "Washington Ave",
    "Broadway",
    "Hill Rd",
)

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
            f"{rng.choice(_STAY_ADJECTIVES)} {rng.choice(_STAY_KINDS[room_type])} "
            f"{rng.choice(_STAY_PLACES)}"
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
        name = f"{rng.choice(_RESTAURANT_FIRST)} {rng.choice(_RESTAURANT_SECOND)}"
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
    kinds = rng.choice(
        len(_ATTRACTION_KINDS), size=min(count, len(_ATTRACTION_KINDS)), replace=False
    )
    attractions = []
    for k in kinds:
        name = f"{city} {_ATTRACTION_KINDS[int(k)]}"
        slug = "".join(ch for ch in name.lower() if ch.isalnum())
        attractions.append(
            Attraction(
                name=name,
                latitude=round(position[0] + float(rng.normal(0, 0.05)), 6),
                longitude=round(position[1] + float(rng.normal(0, 0.05)), 6),
                address=(
                    f"{int(rng.integers(1, 9999))} {rng.choice(_STREETS)}, {city}, "
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


@functools.lru_cache(maxsize=8)
def get_database(size: str = "full", seed: int = 0) -> TravelDatabase:
    """The shared, read-only generated database for ``(size, seed)`` (built once)."""
    return generate_database(size, seed)
