"""The scripted expert of ``agentgym/TravelPlanner-v0``: searches, notes, then the plan.

The plan comes from the query's annotated plan or :func:`~.planner.plan_trip`; errors are
injected with :func:`~.planner.inject_error`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentgym.core.policy import ErrorInjectingExpert
from agentgym.envs.travelplanner.database import TravelDatabase
from agentgym.envs.travelplanner.planner import ERROR_KINDS, inject_error, plan_trip
from agentgym.envs.travelplanner.plans import (
    Plan,
    TravelQuery,
    format_plan,
    split_name_city,
    travel_cities,
)

if TYPE_CHECKING:
    from agentgym.envs.travelplanner.env import TravelPlannerEnv

__all__ = ["TravelPlannerExpert", "expert_plan", "plan_cities"]


class TravelPlannerExpert(ErrorInjectingExpert):
    """Scripted expert: searches for each leg and city, notes them, plans, writes the plan.

    With ``error_rate > 0`` a share of episodes get a plan with one injected error (drawn
    from the episode's seed by :class:`ErrorInjectingExpert`), giving failed expert
    trajectories and FAFT negatives.
    """

    name = "travelplanner-expert"
    ERROR_KINDS = tuple(ERROR_KINDS)

    def __init__(
        self, error_rate: float = 0.0, error_kinds: Sequence[str] | None = None, seed: int = 0
    ) -> None:
        super().__init__(error_rate=error_rate, error_kinds=error_kinds, seed=seed)
        self._env: TravelPlannerEnv | None = None
        self._plan: Plan = []
        self._script: list[str] = []
        self._plan_text = "[]"

    def plan_episode(self, env: Any, observation: str, info: Mapping[str, Any]) -> None:
        unwrapped: TravelPlannerEnv = env.unwrapped
        self._env = unwrapped
        query: TravelQuery = unwrapped.task
        self._write(query.annotated_plan or expert_plan(query, unwrapped.database) or [])

    def inject_error(self) -> str | None:
        assert self._env is not None
        query: TravelQuery = self._env.task
        if not self._plan:
            return None
        for position in self.rng.permutation(len(self.error_kinds)):
            kind = self.error_kinds[int(position)]
            # The planner module's inject_error (a function), not this method.
            broken = inject_error(self._plan, kind, query, self._env.database, self.rng)
            if broken is not None:
                self._write(broken)
                return kind
        return None

    def _write(self, plan: Plan) -> None:
        """Use ``plan``: its text, and the searches that find what it contains."""
        assert self._env is not None
        self._plan = plan
        self._plan_text = format_plan(plan)
        self._script = _search_script(self._env.task, plan, self._env.database)

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        if self._env is None or self._env._phase == "plan" or not self._script:
            return self._plan_text
        return self._script.pop(0)


def _search_script(query: TravelQuery, plan: Plan, db: TravelDatabase) -> list[str]:
    actions: list[str] = []
    if query.visiting_city_number > 1 and db.canonical_state(query.dest):
        actions.append(
            f"Thought: Which cities does {query.dest} have?\nAction: CitySearch[{query.dest}]"
        )
    for day_number, day in enumerate(plan, start=1):
        leg = travel_cities(str(day.get("current_city", "")))
        transport = str(day.get("transportation", "-"))
        if leg is None or transport == "-":
            continue
        a, b = leg
        date = query.date[min(day_number, len(query.date)) - 1]
        if transport.startswith("Flight"):
            actions.append(f"Action: FlightSearch[{a}, {b}, {date}]")
            note = f"Flights from {a} to {b} on {date}"
        else:
            mode = "self-driving" if transport.startswith("Self-driving") else "taxi"
            actions.append(f"Action: GoogleDistanceMatrix[{a}, {b}, {mode}]")
            note = f"{mode} from {a} to {b}"
        actions.append(f"Action: NotebookWrite[{note}]")
    for city in plan_cities(plan):
        for tool, what in (
            ("AccommodationSearch", "Accommodations"),
            ("RestaurantSearch", "Restaurants"),
            ("AttractionSearch", "Attractions"),
        ):
            actions.append(f"Action: {tool}[{city}]")
            actions.append(f"Action: NotebookWrite[{what} in {city}]")
    actions.append(f"Action: Planner[{query.query}]")
    return actions


def expert_plan(query: TravelQuery, db: TravelDatabase) -> Plan | None:
    """The expert's plan for ``query`` (None for a query whose trip is not published)."""
    if not query.judgeable:  # a test-split query: its trip is not published
        return None
    trip = plan_trip(query, db)
    return trip.plan if trip is not None else None


def plan_cities(plan: Plan) -> list[str]:
    """The cities a plan stays in, in order (travel days excluded)."""
    cities: list[str] = []
    for day in plan:
        if travel_cities(str(day.get("current_city", ""))) is None:
            city = split_name_city(f", {day.get('current_city', '')}")[1]
            if city and city not in cities:
                cities.append(city)
    return cities
