"""Loaders for the original benchmark's files, read as the official tools read them.

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

The official tools load each table with ``pd.read_csv(path).dropna()``, so a row with any
missing field (empty, or one of pandas' NA strings, in *any* column) does not exist for them:
an accommodation without house rules, an attraction without a website. Those rows are
dropped here too (:mod:`.csv_tables`), and rows whose numbers do not parse are dropped with
a warning (pandas would keep them as text and the official arithmetic would then fail).
The distance matrix is read without ``dropna`` as the official tool does, and a pair is
"no valid information" (absent from the database) when its first row lacks a duration or
distance or its duration mentions days. The flight table is loaded once into memory-mapped
columns (:mod:`.flight_table`). Text is kept exactly as written (no stripping), since the
official lookups compare it exactly.

:func:`load_queries` reads a query file of any official split as published (CSV, JSONL,
JSON or Parquet, or records already loaded, e.g. with ``datasets``): ``train`` has
``annotated_plan`` (a summary record, the day records, then ``{}`` padding up to 7 days),
``validation`` does not, and ``test`` has only ``days``, ``level``, ``query`` and
``reference_information``: such queries run (an agent can plan them for a leaderboard
submission) but cannot be judged locally (:attr:`.TravelQuery.judgeable`). List and dict
fields may be Python-literal strings, as in the released CSVs. :func:`load_plans` reads an
answer file (``{"idx", "query", "plan"}`` per line) into plans in ``idx`` order.

Example (the project's fixture files):
    >>> from pathlib import Path
    >>> root = Path(__file__).parents[2] / "tests" / "fixtures" / "travelplanner"
    >>> db = load_database(root / "database")
    >>> db.cities_in("Colorado"), db.flight("F3502692").price
    (('Denver',), 199)
    >>> load_queries(root / "validation.csv")[1].local_constraint["transportation"]
    'no self-driving'
    >>> [q.judgeable for q in load_queries(root / "test.jsonl", split="test")]
    [False]
"""

from __future__ import annotations

import ast
import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agentgym.envs.travelplanner.csv_tables import read_rows
from agentgym.envs.travelplanner.database import (
    Accommodation,
    Attraction,
    IndexedDistances,
    Restaurant,
    Route,
    TravelDatabase,
)
from agentgym.envs.travelplanner.flight_table import load_flights
from agentgym.envs.travelplanner.plans import (
    CONSTRAINT_KEYS,
    Plan,
    TravelQuery,
    as_plan,
    is_padding,
)

__all__ = ["load_database", "load_plans", "load_queries", "queries_from_records"]

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


_NUMERIC = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _number(value: str | None, default: float = 0.0) -> float:
    """The first number in ``value`` (``"1,144 km"`` -> 1144.0; no number -> ``default``)."""
    match = _NUMERIC.search(value or "")
    if match is None:
        return default
    number = float(match.group().replace(",", ""))
    return default if math.isnan(number) else number


def _numeric(value: str | None) -> int | float | None:
    """A numeric field as pandas reads it (``"220.0"`` -> 220), ``None`` if it is not one."""
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() else number


class _Rows:
    """Rows of one table, with a count of those dropped for unreadable numbers."""

    def __init__(self, path: Path, required: Iterable[str]) -> None:
        self.path = path
        self.rows = read_rows(path)
        missing = [name for name in required if self.rows and name not in self.rows[0]]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {missing}")
        self.unreadable = 0

    def numbers(self, row: Mapping[str, Any], *names: str) -> list[int | float] | None:
        values = [_numeric(row[name]) for name in names]
        if any(value is None for value in values):
            self.unreadable += 1
            return None
        return values  # type: ignore[return-value]

    def warn(self) -> None:
        if self.unreadable:
            warnings.warn(
                f"{self.path}: dropped {self.unreadable} row(s) whose numeric fields are not "
                "numbers.",
                stacklevel=3,
            )


def _accommodations(path: Path) -> list[Accommodation]:
    numeric = ("price", "minimum nights", "maximum occupancy", "review rate number")
    table = _Rows(path, ("NAME", "room type", "house_rules", "city", *numeric))
    stays = []
    for row in table.rows:
        values = table.numbers(row, *numeric)
        if values is None:
            continue
        price, nights, occupancy, rating = values
        stays.append(
            Accommodation(
                name=row["NAME"],
                room_type=row["room type"],
                price=price,  # type: ignore[arg-type]
                minimum_nights=nights,  # type: ignore[arg-type]
                review_rate=float(rating),
                house_rules=row["house_rules"],
                maximum_occupancy=occupancy,  # type: ignore[arg-type]
                city=row["city"],
            )
        )
    table.warn()
    return stays


def _restaurants(path: Path) -> list[Restaurant]:
    table = _Rows(path, ("Name", "City", "Cuisines", "Average Cost", "Aggregate Rating"))
    restaurants = []
    for row in table.rows:
        values = table.numbers(row, "Average Cost", "Aggregate Rating")
        if values is None:
            continue
        cost, rating = values
        restaurants.append(
            Restaurant(
                name=row["Name"],
                city=row["City"],
                cuisines=tuple(c.strip() for c in row["Cuisines"].split(",") if c.strip()),
                average_cost=cost,  # type: ignore[arg-type]
                rating=float(rating),
            )
        )
    table.warn()
    return restaurants


def _attractions(path: Path) -> list[Attraction]:
    fields = ("Name", "Latitude", "Longitude", "Address", "Phone", "Website", "City")
    table = _Rows(path, fields)
    return [
        Attraction(
            name=row["Name"],
            latitude=_number(row["Latitude"]),
            longitude=_number(row["Longitude"]),
            address=row["Address"],
            phone=row["Phone"],
            website=row["Website"],
            city=row["City"],
        )
        for row in table.rows
    ]


def _routes(path: Path) -> list[Route]:
    """Valid pairs of the matrix; the first row of a pair decides, as in the official tool."""
    rows = read_rows(path, drop_missing=False)
    routes, seen = [], set()
    for row in rows:
        pair = (row.get("origin"), row.get("destination"))
        if pair in seen or None in pair:
            continue
        seen.add(pair)
        duration, distance = row.get("duration"), row.get("distance")
        if duration is None or distance is None or "day" in duration:
            continue
        routes.append(Route(pair[0], pair[1], duration, _number(distance)))  # type: ignore[arg-type]
    return routes


def _states(path: Path) -> dict[str, list[str]]:
    states: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        city, tab, state = line.partition("\t")
        if tab and city.strip() and state.strip():
            states.setdefault(state.strip(), []).append(city.strip())
    return states


def load_database(directory: Path | str, *, cache: bool | None = None) -> TravelDatabase:
    """The benchmark's database from ``directory`` (one copy per process and folder).

    Args:
        directory: The benchmark's ``database`` folder (files are found by name below it).
        cache: Keep the flight table's columns in the disk cache, memory-mapped and shared
            by every process (``None``: for flight files of 8 MiB or more, such as the
            real one).
    """
    directory = Path(directory).expanduser().resolve()
    if directory in _DATABASE_CACHE:
        return _DATABASE_CACHE[directory]
    database = TravelDatabase(
        states=_states(_find(directory, FILES["cities"])),
        accommodations=_accommodations(_find(directory, FILES["accommodations"])),
        restaurants=_restaurants(_find(directory, FILES["restaurants"])),
        attractions=_attractions(_find(directory, FILES["attractions"])),
        flights=load_flights(_find(directory, FILES["flights"]), cache=cache),
        distances=IndexedDistances(_routes(_find(directory, FILES["distances"]))),
        name=str(directory),
    )
    _DATABASE_CACHE[directory] = database
    return database


# ------------------------------------------------------------------------ queries --


def _literal(value: Any) -> Any:
    """A field that may be a Python/JSON literal written as a string (``None`` if empty)."""
    if isinstance(value, float) and math.isnan(value):
        return None
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


def _integer(value: Any) -> int:
    data = _literal(value)
    if data is None or isinstance(data, bool):
        return 0
    return int(_number(str(data)))


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


def _annotated_plan(value: Any) -> Plan | None:
    """The day records of a published plan (its summary record and ``{}`` padding dropped)."""
    data = _literal(value)
    if not isinstance(data, list):
        return None
    days = [
        record
        for record in data
        if isinstance(record, dict) and "current_city" in record and not is_padding(record)
    ]
    return as_plan(days) or None


def _query_from_record(record: Mapping[str, Any], split: str, position: int) -> TravelQuery:
    if not str(record.get("query") or "").strip():
        raise ValueError(f"query record {position} of {split!r} has no 'query' text")
    dates = _literal(record.get("date"))
    dates = [dates] if isinstance(dates, str) else list(dates or [])
    constraint = _literal(record.get("local_constraint")) or {}
    if not isinstance(constraint, dict):
        raise ValueError(f"query {position}: local_constraint {constraint!r} is not a dict")
    constraint = {key: constraint.get(key) for key in CONSTRAINT_KEYS}
    cuisine = constraint.get("cuisine")
    if isinstance(cuisine, str):
        constraint["cuisine"] = [c.strip() for c in cuisine.split(",") if c.strip()]
    identifier = record.get("id", record.get("idx"))
    return TravelQuery(
        id=str(identifier) if _literal(identifier) is not None else f"{split}-{position}",
        org=str(_literal(record.get("org")) or ""),
        dest=str(_literal(record.get("dest")) or ""),
        days=_integer(record.get("days")) or len(dates),
        visiting_city_number=_integer(record.get("visiting_city_number")),
        date=tuple(str(d) for d in dates),
        people_number=_integer(record.get("people_number")),
        local_constraint=constraint,
        budget=_integer(record.get("budget")),
        query=str(record["query"]),
        level=str(_literal(record.get("level")) or ""),
        reference_information=_reference_text(record.get("reference_information")),
        annotated_plan=_annotated_plan(record.get("annotated_plan")),
    )


def queries_from_records(
    records: Iterable[Mapping[str, Any]], *, split: str = "validation"
) -> list[TravelQuery]:
    """Queries from records of any official split (e.g. ``load_dataset(...)["test"]``)."""
    return [_query_from_record(record, split, i) for i, record in enumerate(records)]


def _records(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.casefold()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix in (".jsonl", ".json"):
        text = path.read_text(encoding="utf-8")
        if suffix == ".json" and text.lstrip().startswith("["):
            return list(json.loads(text))
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return read_rows(path, drop_missing=False)  # type: ignore[return-value]


def load_queries(path: Path | str, *, split: str = "validation") -> list[TravelQuery]:
    """Queries from a published query file (CSV, JSONL, JSON list or Parquet)."""
    return queries_from_records(_records(Path(path).expanduser()), split=split)


def load_plans(path: Path | str) -> list[Plan | None]:
    """The plans of an answer file (one ``{"idx", "plan"}`` per line), in ``idx`` order.

    An empty or missing plan is ``None`` (not delivered). Records are returned as written,
    padding included; the evaluators judge the first ``days`` of them.
    """
    records = _records(Path(path).expanduser())
    if all("idx" in record for record in records):
        records = sorted(records, key=lambda record: int(record["idx"]))
    plans: list[Plan | None] = []
    for record in records:
        plan = _literal(record.get("plan"))
        plans.append(list(plan) if isinstance(plan, list) and plan else None)
    return plans
