"""The benchmark's tools over a :class:`TravelDatabase`, with their observation formats.

:class:`TravelTools` runs one ReAct action (``FlightSearch[New York, Denver, 2022-03-16]``)
and returns a :class:`ToolResult`: the observation text and whether the call succeeded.
Arguments are split on ``", "`` as in the reference agent, city and state arguments are
checked against the city set (with a "did you mean"), and every table is printed with the
reference's column names, one row per line, cells separated by ``" | "`` (the reference
prints pandas frames padded with spaces; the separator keeps the same columns in fewer
tokens). :func:`reference_information` assembles the sole-planning notebook for a query.

Example:
    >>> from agentgym.envs.travelplanner.database import get_database
    >>> tools = TravelTools(get_database("small"))
    >>> print(tools.run("CitySearch", "Nevada").observation)
    Las Vegas, Reno, Elko
    >>> tools.run("GoogleDistanceMatrix", "Reno, Elko, taxi").observation.startswith(
    ...     "taxi, from Reno to Elko, duration:")
    True
    >>> print(tools.run("RestaurantSearch", "Rneo").observation)
    There is no city called 'Rneo'. Did you mean 'Reno'? Give a city of the database.
    >>> print(tools.run("FlightSearch", "Reno, Elko").observation)
    FlightSearch takes 3 arguments (Departure City, Destination City, Date as YYYY-MM-DD), \
got 2: 'Reno, Elko'. Example: FlightSearch[New York, Denver, 2022-03-16]
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentgym.envs.travelplanner.database import TravelDatabase
from agentgym.envs.travelplanner.plans import TravelQuery

__all__ = ["TOOL_SIGNATURES", "ToolResult", "TravelTools", "reference_information"]

#: Tool -> (argument names, example call); ``NotebookWrite`` and ``Planner`` take free text.
TOOL_SIGNATURES: dict[str, tuple[tuple[str, ...], str]] = {
    "FlightSearch": (
        ("Departure City", "Destination City", "Date as YYYY-MM-DD"),
        "FlightSearch[New York, Denver, 2022-03-16]",
    ),
    "GoogleDistanceMatrix": (
        ("Origin", "Destination", "Mode: self-driving or taxi"),
        "GoogleDistanceMatrix[Austin, Dallas, self-driving]",
    ),
    "AccommodationSearch": (("City",), "AccommodationSearch[Denver]"),
    "RestaurantSearch": (("City",), "RestaurantSearch[Denver]"),
    "AttractionSearch": (("City",), "AttractionSearch[Denver]"),
    "CitySearch": (("State",), "CitySearch[Texas]"),
    "NotebookWrite": (("Short Description",), "NotebookWrite[Flights from Austin to Denver]"),
    "Planner": (("Query",), "Planner[the user's query]"),
}


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool call returned: observation text, and ``ok`` when it found information."""

    observation: str
    ok: bool


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = [" | ".join(header)]
    lines += [" | ".join(str(cell) for cell in row) for row in rows]
    return "\n".join(lines)


class TravelTools:
    """The information tools (everything except ``NotebookWrite`` and ``Planner``)."""

    def __init__(self, database: TravelDatabase) -> None:
        self.db = database
        self._handlers: dict[str, Callable[[list[str]], ToolResult]] = {
            "FlightSearch": self._flights,
            "GoogleDistanceMatrix": self._distance,
            "AccommodationSearch": self._accommodations,
            "RestaurantSearch": self._restaurants,
            "AttractionSearch": self._attractions,
            "CitySearch": self._cities,
        }

    def run(self, name: str, raw_arguments: str) -> ToolResult:
        """Run tool ``name`` on its unsplit bracket text."""
        handler = self._handlers.get(name)
        if handler is None:
            raise KeyError(name)
        expected, example = TOOL_SIGNATURES[name]
        arguments = [part.strip() for part in raw_arguments.split(", ")]
        if len(expected) == 1:
            arguments = [raw_arguments.strip()]
        if len(arguments) != len(expected) or not all(arguments):
            return ToolResult(
                f"{name} takes {len(expected)} argument{'s' if len(expected) > 1 else ''} "
                f"({', '.join(expected)}), got {len([a for a in arguments if a])}: "
                f"{raw_arguments.strip()!r}. Example: {example}",
                False,
            )
        return handler(arguments)

    # -- argument checks
    def _city(self, text: str) -> tuple[str | None, ToolResult | None]:
        city = self.db.canonical_city(text)
        if city is not None:
            return city, None
        close = difflib.get_close_matches(text, self.db.cities, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return None, ToolResult(
            f"There is no city called '{text}'.{hint} Give a city of the database.", False
        )

    # -- tools
    def _flights(self, arguments: list[str]) -> ToolResult:
        cities = []
        for text in arguments[:2]:
            city, error = self._city(text)
            if error is not None:
                return error
            cities.append(city)
        origin, destination = cities
        date = arguments[2]
        flights = self.db.search_flights(origin, destination, date)
        if not flights:
            return ToolResult(
                f"There is no flight from {origin} to {destination} on {date}.", False
            )
        return ToolResult(flight_table(flights), True)

    def _distance(self, arguments: list[str]) -> ToolResult:
        origin, error = self._city(arguments[0])
        if error is not None:
            return error
        destination, error = self._city(arguments[1])
        if error is not None:
            return error
        mode = arguments[2].strip().casefold().replace("self driving", "self-driving")
        if mode not in ("self-driving", "taxi"):
            return ToolResult(f"Unknown mode '{arguments[2]}'. Use self-driving or taxi.", False)
        route = self.db.distance(origin, destination)  # type: ignore[arg-type]
        if route is None:
            return ToolResult(
                f"{mode}, from {origin} to {destination}, no valid information.", False
            )
        return ToolResult(route.format(mode), True)

    def _accommodations(self, arguments: list[str]) -> ToolResult:
        city, error = self._city(arguments[0])
        if error is not None:
            return error
        return ToolResult(accommodation_table(self.db, city), True)  # type: ignore[arg-type]

    def _restaurants(self, arguments: list[str]) -> ToolResult:
        city, error = self._city(arguments[0])
        if error is not None:
            return error
        return ToolResult(restaurant_table(self.db, city), True)  # type: ignore[arg-type]

    def _attractions(self, arguments: list[str]) -> ToolResult:
        city, error = self._city(arguments[0])
        if error is not None:
            return error
        rows = self.db.attractions_in(city)  # type: ignore[arg-type]
        if not rows:
            return ToolResult(f"There is no attraction in {city}.", False)
        return ToolResult(attraction_table(self.db, city), True)  # type: ignore[arg-type]

    def _cities(self, arguments: list[str]) -> ToolResult:
        state = self.db.canonical_state(arguments[0])
        if state is None:
            close = difflib.get_close_matches(arguments[0], list(self.db.states), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            return ToolResult(f"Invalid State '{arguments[0]}'.{hint}", False)
        return ToolResult(", ".join(self.db.cities_in(state)), True)


def flight_table(flights: Sequence[object]) -> str:
    """Flights with the reference's columns."""
    header = (
        "Flight Number",
        "Price",
        "DepTime",
        "ArrTime",
        "ActualElapsedTime",
        "FlightDate",
        "OriginCityName",
        "DestCityName",
        "Distance",
    )
    return _table(
        header,
        [
            (
                f.number,
                f.price,
                f.dep_time,
                f.arr_time,
                f.elapsed,
                f.date,  # type: ignore[attr-defined]
                f.origin,
                f.destination,
                f.distance,
            )
            for f in flights
        ],
    )  # type: ignore[attr-defined]


def accommodation_table(db: TravelDatabase, city: str) -> str:
    """A city's listings with the reference's columns."""
    header = (
        "NAME",
        "price",
        "room type",
        "house_rules",
        "minimum nights",
        "maximum occupancy",
        "review rate number",
        "city",
    )
    rows = [
        (
            s.name,
            s.price,
            s.room_type,
            s.house_rules or "-",
            s.minimum_nights,
            s.maximum_occupancy,
            s.review_rate,
            s.city,
        )
        for s in db.accommodations_in(city)
    ]
    return _table(header, rows)


def restaurant_table(db: TravelDatabase, city: str) -> str:
    """A city's restaurants with the reference's columns."""
    header = ("Name", "Average Cost", "Cuisines", "Aggregate Rating", "City")
    rows = [
        (r.name, r.average_cost, ", ".join(r.cuisines), r.rating, r.city)
        for r in db.restaurants_in(city)
    ]
    return _table(header, rows)


def attraction_table(db: TravelDatabase, city: str, *, compact: bool = False) -> str:
    """A city's attractions (``compact``: name and city only, for small contexts)."""
    if compact:
        return _table(("Name", "City"), [(a.name, a.city) for a in db.attractions_in(city)])
    header = ("Name", "Latitude", "Longitude", "Address", "Phone", "Website", "City")
    rows = [
        (a.name, a.latitude, a.longitude, a.address, a.phone, a.website, a.city)
        for a in db.attractions_in(city)
    ]
    return _table(header, rows)


def reference_information(
    query: TravelQuery,
    db: TravelDatabase,
    cities: Sequence[str],
    *,
    compact: bool = False,
) -> list[tuple[str, str]]:
    """The notebook for sole-planning: ``(description, content)`` entries.

    Covers, for every city in ``cities``: the flights and driving options from the origin on
    the first day, to each other city on the transfer days (3rd and 5th) and back on the
    last day, and the city's accommodations, restaurants and attractions. ``compact`` drops
    the attractions' coordinates, address, phone and website.
    """
    entries: list[tuple[str, str]] = []
    tools = TravelTools(db)

    def transport(a: str, b: str, date: str) -> None:
        flights = tools.run("FlightSearch", f"{a}, {b}, {date}")
        entries.append((f"Flight from {a} to {b} on {date}", flights.observation))
        route = db.distance(a, b)
        text = (
            f"self-driving, from {a} to {b}, no valid information."
            if route is None
            else route.format("self-driving") + "\n" + route.format("taxi")
        )
        entries.append((f"Self-driving and taxi from {a} to {b}", text))

    for city in cities:
        transport(query.org, city, query.date[0])
    for position in range(1, query.visiting_city_number):
        date = query.date[2 * position]
        for a in cities:
            for b in cities:
                if a != b:
                    transport(a, b, date)
    for city in cities:
        transport(city, query.org, query.date[-1])
    for city in cities:
        entries.append((f"Accommodations in {city}", accommodation_table(db, city)))
        entries.append((f"Restaurants in {city}", restaurant_table(db, city)))
        entries.append((f"Attractions in {city}", attraction_table(db, city, compact=compact)))
    return entries
