"""Queries and plans: the records the tools, evaluator, expert and loaders share.

A :class:`TravelQuery` is one benchmark query; a plan is the benchmark's list of day records
(``dict[str, str]`` with the keys in :data:`PLAN_KEYS`). :func:`parse_plan` reads a plan from
model output and forgives the usual slips (code fences, prose around the list, single quotes,
trailing commas, ``None``, lists of attractions, ``"Current City"``-style keys, the
benchmark's ``Day 1:`` text layout); anything else gets an error written for the agent.

Example:
    >>> plan, error = parse_plan('''Here is the plan:
    ... ```json
    ... [{'days': 1, 'Current City': 'from A to B', 'transportation': None,
    ...   'attraction': ['X, B', 'Y, B'],},]
    ... ```''')
    >>> error, plan[0]["current_city"], plan[0]["transportation"], plan[0]["attraction"]
    (None, 'from A to B', '-', 'X, B;Y, B;')
    >>> parse_plan("I cannot plan this trip.")[1][:40]
    'No plan found: write the plan as a JSON '
    >>> split_name_city("Jade Oven, Denver(Colorado)")
    ('Jade Oven', 'Denver')
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONSTRAINT_KEYS",
    "PADDING_TEXT",
    "PLAN_KEYS",
    "Plan",
    "TravelQuery",
    "format_plan",
    "is_padding",
    "parse_plan",
    "split_name_city",
    "travel_cities",
    "trip_records",
]

PLAN_KEYS = (
    "days",
    "current_city",
    "transportation",
    "breakfast",
    "attraction",
    "lunch",
    "dinner",
    "accommodation",
)
#: Keys of ``local_constraint`` (values ``None`` when unset).
CONSTRAINT_KEYS = ("house rule", "cuisine", "room type", "transportation")
Plan = list[dict[str, Any]]


@dataclass(frozen=True)
class TravelQuery:
    """One TravelPlanner query (the benchmark's fields).

    Attributes:
        id: Unique id.
        org / dest: Origin city; destination city (3-day trips) or state.
        days: 3, 5 or 7.
        visiting_city_number: 1, 2 or 3.
        date: The trip's consecutive dates, ``"2022-03-16"``.
        people_number: Travellers.
        local_constraint: ``{"house rule", "cuisine", "room type", "transportation"}``.
        budget: Total budget in dollars.
        query: The natural-language request.
        level: ``easy``, ``medium`` or ``hard``.
        reference_information: Collected tool results for sole-planning (text), if given.
        annotated_plan: A known valid plan (generated queries: the expert's), if any.
    """

    id: str
    org: str
    dest: str
    days: int
    visiting_city_number: int
    date: tuple[str, ...]
    people_number: int
    local_constraint: Mapping[str, Any]
    budget: int
    query: str
    level: str
    reference_information: str | None = None
    annotated_plan: Plan | None = field(default=None, compare=False)

    def constraint(self, key: str) -> Any:
        """A local constraint's value (``None`` when unset)."""
        return self.local_constraint.get(key)

    @property
    def judgeable(self) -> bool:
        """Whether the query has what a plan is judged against.

        The official test split publishes only ``days``, ``level``, ``query`` and the
        reference information (the rest is held back for the leaderboard).
        """
        return bool(self.org and self.date and self.days and self.budget)


#: The ``current_city`` the official annotation tool writes on the days after a trip.
PADDING_TEXT = "You don't need to fill in the information for this or later days."


def is_padding(record: Any) -> bool:
    """Whether a day record is padding: ``{}``, only empty values, or :data:`PADDING_TEXT`.

    >>> is_padding({}), is_padding({"days": 4, "current_city": "-"}), is_padding({"days": 1})
    (True, True, True)
    >>> is_padding({"days": 1, "current_city": "Denver"})
    False
    """
    if not isinstance(record, Mapping):
        return False
    if record.get("current_city") == PADDING_TEXT:
        return True
    return all(value in (None, "", "-") for key, value in record.items() if key != "days")


def trip_records(plan: Sequence[Any], days: int) -> list[Any]:
    """The records a plan is judged on: the first ``days``, and any later non-padding one.

    Answer files pad plans with empty records (to 7 days in the official ones); those are
    not part of the trip. A real record after the last day is, and makes the plan too long.

    >>> trip_records([{"current_city": "A"}, {}, {}], 1)
    [{'current_city': 'A'}]
    >>> len(trip_records([{"current_city": "A"}, {"current_city": "B"}], 1))
    2
    """
    return list(plan[:days]) + [record for record in plan[days:] if not is_padding(record)]


def split_name_city(text: str) -> tuple[str, str]:
    """``"Name, City"`` -> (name, city): the city is after the last comma, ``(State)`` dropped."""
    name, _, city = str(text).rpartition(",")
    return name.strip(), city.split("(")[0].strip()


_FROM_TO = re.compile(r"from\s+(.+?)\s+to\s+(.+?)(?:,|$)", re.IGNORECASE)


def travel_cities(text: str) -> tuple[str, str] | None:
    """``"from A to B"`` (also inside a transportation string) -> (A, B), else ``None``.

    >>> travel_cities("Self-driving, from Austin to Dallas, duration: 3 hours")
    ('Austin', 'Dallas')
    >>> travel_cities("Dallas") is None
    True
    """
    match = _FROM_TO.search(str(text))
    if match is None:
        return None
    return match.group(1).split("(")[0].strip(), match.group(2).split("(")[0].strip()


def format_plan(plan: Plan) -> str:
    """The plan as one-line-per-day JSON (what the expert writes)."""
    return "[\n" + ",\n".join(json.dumps(day, ensure_ascii=False) for day in plan) + "\n]"


# ------------------------------------------------------------------------ parsing --

_KEY_ALIASES = {
    "day": "days",
    "city": "current_city",
    "current city": "current_city",
    "currentcity": "current_city",
    "attractions": "attraction",
    "accommodations": "accommodation",
    "hotel": "accommodation",
    "transport": "transportation",
}
_FENCE = re.compile(r"```[a-zA-Z]*")
_TRAILING_COMMA = re.compile(r",\s*([\]}])")
_DAY_HEADER = re.compile(r"^\s*\**\s*day\s*(\d+)\s*\**\s*:?\s*\**\s*$", re.IGNORECASE)
_KEY_VALUE = re.compile(r"^\s*[-*]?\s*([A-Za-z][A-Za-z _]*?)\s*:\s*(.*)$")
_EXPECTED = (
    'write the plan as a JSON list with one object per day, e.g. [{"days": 1, "current_city": '
    '"from A to B", "transportation": "Flight Number: F0123456, from A to B, ...", '
    '"breakfast": "-", "attraction": "Name, B;", "lunch": "Name, B", "dinner": "Name, B", '
    '"accommodation": "Name, B"}, ...]; use "-" for an empty field.'
)


def _load_list(text: str) -> Any:
    for candidate in (text, _TRAILING_COMMA.sub(r"\1", text)):
        try:
            return json.loads(candidate)
        except (ValueError, RecursionError):
            pass
        try:
            return ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    return None


def _normalise_key(key: Any) -> str:
    text = " ".join(str(key).replace("_", " ").replace("-", " ").split()).casefold()
    text = _KEY_ALIASES.get(text, text)
    return text.replace(" ", "_")


def _normalise_value(key: str, value: Any) -> Any:
    if key == "days":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        digits = re.search(r"\d+", str(value))
        return int(digits.group()) if digits else str(value)
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        items = [str(item).strip() for item in value if str(item).strip() not in ("", "-")]
        if not items:
            return "-"
        return "".join(f"{item};" for item in items) if key == "attraction" else "; ".join(items)
    text = str(value).strip()
    return text or "-"


def _from_text_layout(text: str) -> Plan | None:
    """The benchmark's text layout: ``Day 1:`` then ``Current City: ...`` lines."""
    days: Plan = []
    for line in text.splitlines():
        header = _DAY_HEADER.match(line)
        if header:
            days.append({"days": int(header.group(1))})
            continue
        pair = _KEY_VALUE.match(line)
        if pair and days:
            key = _normalise_key(pair.group(1))
            if key in PLAN_KEYS and key != "days":
                days[-1][key] = pair.group(2).strip()
    return days or None


def parse_plan(text: str) -> tuple[Plan | None, str | None]:
    """Read a plan from model output: ``(plan, None)`` or ``(None, error for the agent)``."""
    if not isinstance(text, str):
        return None, f"No plan found: expected text, got {type(text).__name__}; " + _EXPECTED
    body = _FENCE.sub("", text).strip()
    data: Any = None
    start, end = body.find("["), body.rfind("]")
    if 0 <= start < end:
        data = _load_list(body[start : end + 1])
    if data is None:
        start, end = body.find("{"), body.rfind("}")
        if 0 <= start < end:
            data = _load_list(body[start : end + 1])
    if isinstance(data, dict):
        inner = next(
            (v for k, v in data.items() if _normalise_key(k) in ("plan", "travel_plan")), None
        )
        data = inner if isinstance(inner, list) else [data]
    if data is None:
        data = _from_text_layout(body)
    if not isinstance(data, list) or not data:
        return None, "No plan found: " + _EXPECTED
    plan: Plan = []
    for position, day in enumerate(data, start=1):
        if not isinstance(day, dict):
            return None, (
                f"Entry {position} of the plan is a {type(day).__name__}, not an object with "
                "the keys " + ", ".join(PLAN_KEYS) + "; " + _EXPECTED
            )
        record: dict[str, Any] = {}
        for key, value in day.items():
            name = _normalise_key(key)
            record[name] = _normalise_value(name, value)
        plan.append(record)
    return plan, None


def as_plan(plan: Sequence[Mapping[str, Any]]) -> Plan:
    """A copy of ``plan`` with the same key/value normalisation as :func:`parse_plan`."""
    out: Plan = []
    for day in plan:
        record = {}
        for key, value in dict(day).items():
            name = _normalise_key(key)
            record[name] = _normalise_value(name, value)
        out.append(record)
    return out
