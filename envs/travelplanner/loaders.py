"""Loaders for the original benchmark's files, so the real TravelPlanner can be run.

:func:`load_database` reads the benchmark's ``database`` folder (found by file name anywhere
under the directory given):

=========================================  =================================================
``clean_Flights_2022.csv``                 Flight Number, Price, DepTime, ArrTime,
                                           ActualElapsedTime, FlightDate, OriginCityName,
                                           DestCityName, Distance
``clean_accommodations_2022.csv``          NAME, price, room type, house_rules, minimum
                                           nights, maximum occupancy, review rate number, city
``clean_restaurant_2022.csv``              Name, Average Cost, Cuisines, Aggregate Rating, City
``attractions.csv``                        Name, Latitude, Longitude, Address, Phone,
                                           Website, City
``distance.csv``                           origin, destination, cost, duration, distance
``citySet_with_states.txt``                ``City<TAB>State`` per line
=========================================  =================================================

:func:`load_queries` reads a query file (the dataset's CSV, or JSONL with the same fields):
``org, dest, days, visiting_city_number, date, people_number, local_constraint, budget,
query, level`` and optionally ``reference_information`` and ``annotated_plan``, where list
and dict fields may be Python-literal strings as in the released CSVs.

Example (the project's fixture files):
    >>> from pathlib import Path
    >>> root = Path(__file__).parents[2] / "tests" / "fixtures" / "travelplanner"
    >>> db = load_database(root / "database")
    >>> db.cities_in("Colorado"), db.flight("F3502692").price
    (('Denver',), 199)
    >>> load_queries(root / "validation.csv")[1].local_constraint["transportation"]
    'no self-driving'
"""

from __future__ import annotations

import ast
import csv
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentgym.envs.travelplanner.database import (
    Accommodation,
    Attraction,
    Flight,
    IndexedDistances,
    IndexedFlights,
    Restaurant,
    Route,
    TravelDatabase,
)
from agentgym.envs.travelplanner.plans import CONSTRAINT_KEYS, TravelQuery, as_plan

__all__ = ["load_database", "load_queries"]

FILES = {
    "flights": "clean_Flights_2022.csv",
    "accommodations": "clean_accommodations_2022.csv",
    "restaurants": "clean_restaurant_2022.csv",
    "attractions": "attractions.csv",
    "distances": "distance.csv",
    "cities": "citySet_with_states.txt",
}
_DATABASE_CACHE: dict[Path, TravelDatabase] = {}


def _find(directory: Path, filename: str) -> Path:
    direct = directory / filename
    if direct.is_file():
        return direct
    found = sorted(directory.rglob(filename))
    if not found:
        raise FileNotFoundError(
            f"{filename} not found under {directory}; point data_dir at the benchmark's "
            f"'database' folder (expected files: {', '.join(FILES.values())})."
        )
    return found[0]


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            yield {(key or "").strip(): (value or "").strip() for key, value in row.items()}


def _missing(value: str) -> bool:
    return value.strip().casefold() in ("", "nan", "none", "null")


_NUMERIC = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _number(value: str, default: float = 0.0) -> float:
    """The first number in ``value`` (``"1,144 km"`` -> 1144.0; ``"nan"`` -> ``default``)."""
    match = _NUMERIC.search(value)
    if match is None:
        return default
    try:
        number = float(match.group().replace(",", ""))
    except ValueError:
        return default
    return default if math.isnan(number) else number


def load_database(directory: Path | str) -> TravelDatabase:
    """The benchmark's database from ``directory`` (cached per resolved path)."""
    directory = Path(directory).expanduser().resolve()
    if directory in _DATABASE_CACHE:
        return _DATABASE_CACHE[directory]
    states: dict[str, list[str]] = {}
    for line in _find(directory, FILES["cities"]).read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            city, state = (part.strip() for part in line.split("\t", 1))
            states.setdefault(state, []).append(city)
    flights = [
        Flight(
            number=row["Flight Number"],
            price=int(_number(row["Price"])),
            dep_time=row["DepTime"],
            arr_time=row["ArrTime"],
            elapsed=row["ActualElapsedTime"],
            date=row["FlightDate"],
            origin=row["OriginCityName"],
            destination=row["DestCityName"],
            distance=_number(row["Distance"]),
        )
        for row in _rows(_find(directory, FILES["flights"]))
    ]
    stays = [
        Accommodation(
            name=row["NAME"],
            room_type=row["room type"],
            price=int(_number(row["price"])),
            minimum_nights=int(_number(row["minimum nights"], 1)),
            review_rate=_number(row["review rate number"]),
            house_rules="" if _missing(row["house_rules"]) else row["house_rules"],
            maximum_occupancy=max(1, int(_number(row["maximum occupancy"], 1))),
            city=row["city"],
        )
        for row in _rows(_find(directory, FILES["accommodations"]))
    ]
    restaurants = [
        Restaurant(
            name=row["Name"],
            city=row["City"],
            cuisines=tuple(c.strip() for c in row["Cuisines"].split(",") if c.strip()),
            average_cost=int(_number(row["Average Cost"])),
            rating=_number(row["Aggregate Rating"]),
        )
        for row in _rows(_find(directory, FILES["restaurants"]))
    ]
    attractions = [
        Attraction(
            name=row["Name"],
            latitude=_number(row["Latitude"]),
            longitude=_number(row["Longitude"]),
            address=row["Address"],
            phone=row["Phone"],
            website=row["Website"],
            city=row["City"],
        )
        for row in _rows(_find(directory, FILES["attractions"]))
    ]
    routes = [
        Route(row["origin"], row["destination"], row["duration"], _number(row["distance"]))
        for row in _rows(_find(directory, FILES["distances"]))
        if not _missing(row.get("duration", "")) and not _missing(row.get("distance", ""))
    ]
    database = TravelDatabase(
        states=states,
        accommodations=stays,
        restaurants=restaurants,
        attractions=attractions,
        flights=IndexedFlights(flights),
        distances=IndexedDistances(routes),
        name=str(directory),
    )
    _DATABASE_CACHE[directory] = database
    return database


def _literal(value: Any) -> Any:
    """A field that may be a Python/JSON literal written as a string."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text or text.casefold() in ("nan", "none", "null"):
        return None
    for loader in (json.loads, ast.literal_eval):
        try:
            return loader(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return text


def _reference_text(value: Any) -> str | None:
    data = _literal(value)
    if data is None:
        return None
    if isinstance(data, list) and all(isinstance(d, dict) for d in data):
        return "\n".join(
            f"[{i}] {entry.get('Description', '')}\n{entry.get('Content', '')}"
            for i, entry in enumerate(data)
        )
    return str(data)


def _query_from_record(record: dict[str, Any], split: str, position: int) -> TravelQuery:
    dates = _literal(record["date"])
    dates = [dates] if isinstance(dates, str) else list(dates or [])
    constraint = _literal(record.get("local_constraint")) or {}
    if not isinstance(constraint, dict):
        raise ValueError(f"query {position}: local_constraint {constraint!r} is not a dict")
    constraint = {key: constraint.get(key) for key in CONSTRAINT_KEYS}
    cuisine = constraint.get("cuisine")
    if isinstance(cuisine, str):
        constraint["cuisine"] = [c.strip() for c in cuisine.split(",") if c.strip()]
    plan = _literal(record.get("annotated_plan"))
    if isinstance(plan, list):
        # The released train split puts a summary record before the day records.
        plan = as_plan([day for day in plan if isinstance(day, dict) and "days" in day]) or None
    else:
        plan = None
    return TravelQuery(
        id=str(record.get("id") or f"{split}-{position}"),
        org=str(record["org"]).strip(),
        dest=str(record["dest"]).strip(),
        days=int(_number(str(record["days"]))),
        visiting_city_number=int(_number(str(record["visiting_city_number"]))),
        date=tuple(str(d) for d in dates),
        people_number=int(_number(str(record["people_number"]))),
        local_constraint=constraint,
        budget=int(_number(str(record["budget"]))),
        query=str(record["query"]),
        level=str(record.get("level", "")),
        reference_information=_reference_text(record.get("reference_information")),
        annotated_plan=plan,
    )


def load_queries(path: Path | str, *, split: str = "validation") -> list[TravelQuery]:
    """Queries from the benchmark's CSV or a JSONL file with the same fields."""
    path = Path(path).expanduser()
    if path.suffix.casefold() in (".jsonl", ".json"):
        lines = path.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
    else:
        with path.open(newline="", encoding="utf-8") as handle:
            records = list(csv.DictReader(handle))
    return [_query_from_record(record, split, i) for i, record in enumerate(records)]
