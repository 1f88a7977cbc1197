"""TravelPlanner: database generator, queries, evaluator (every check), expert, loaders, env."""

from __future__ import annotations

import copy
import re
import warnings
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import agentgym  # noqa: F401  (registers the environments)
from agentgym import InfoKeys
from agentgym.envs.travelplanner.database import (
    CUISINES,
    HOUSE_RULES,
    ROOM_TYPES,
    get_database,
)
from agentgym.envs.travelplanner.env import condition_on_feedback
from agentgym.envs.travelplanner.generator import generate_database
from agentgym.envs.travelplanner.judge import (
    COMMONSENSE_CHECKS,
    HARD_CHECKS,
    evaluate,
    evaluate_batch,
    success_feedback,
    summarize,
    total_cost,
)
from agentgym.envs.travelplanner.loaders import load_database, load_queries
from agentgym.envs.travelplanner.planner import ERROR_KINDS, inject_error, plan_trip
from agentgym.envs.travelplanner.plans import TravelQuery, format_plan, parse_plan
from agentgym.envs.travelplanner.tasks import SPLITS, generate_query
from agentgym.envs.travelplanner.tools import TravelTools

ENV_ID = "agentgym/TravelPlanner-v0"
FIXTURES = Path(__file__).parent / "fixtures" / "travelplanner"


@pytest.fixture(scope="module")
def small_db():
    return get_database("small", 0)


@pytest.fixture(scope="module")
def validation_queries(small_db):
    return [generate_query(small_db, index=i, split="validation") for i in range(60)]


@pytest.fixture(scope="module")
def fixture_db():
    return load_database(FIXTURES / "database")


@pytest.fixture(scope="module")
def fixture_query(fixture_db):
    """The fixture's train query with its annotated (valid) 3-day plan."""
    return load_queries(FIXTURES / "train.jsonl", split="train")[0]


# ------------------------------------------------------------------------ database --


def test_database_is_cached_and_deterministic(small_db):
    assert get_database("small", 0) is small_db
    again = generate_database("small", 0)
    assert again.counts() == small_db.counts()
    city = small_db.cities[5]
    assert again.accommodations_in(city) == small_db.accommodations_in(city)
    assert generate_database("small", 1).accommodations_in(city) != small_db.accommodations_in(city)


def test_generator_statistics_within_documented_ranges():
    db = get_database("full", 0)
    counts = db.counts()
    assert counts["cities"] == 261 and counts["states"] == 44
    room_types = Counter()
    for city in db.cities:
        stays, restaurants = db.accommodations_in(city), db.restaurants_in(city)
        assert 4 <= len(stays) <= 37 and 16 <= len(restaurants) <= 65
        assert len(db.attractions_in(city)) <= 20
        for stay in stays:
            room_types[stay.room_type] += 1
            assert 50 <= stay.price <= 1200 and 1 <= stay.maximum_occupancy <= 11
            assert stay.minimum_nights in (1, 2, 3, 4, 30)
            for rule in filter(None, stay.house_rules.split(" & ")):
                assert rule.startswith("No ") and rule[3:] in HOUSE_RULES
            assert "," not in stay.name
        for restaurant in restaurants:
            assert set(restaurant.cuisines) <= set(CUISINES)
            assert 10 <= restaurant.average_cost <= 250 and 0 <= restaurant.rating <= 5
    shares = {kind: room_types[kind] / sum(room_types.values()) for kind in ROOM_TYPES}
    assert 0.47 < shares["Entire home/apt"] < 0.57 and 0.41 < shares["Private room"] < 0.51
    assert 0.005 < shares["Shared room"] < 0.04
    some_flights = [
        f
        for a in db.cities[:15]
        for b in db.cities[100:115]
        for f in db.search_flights(a, b, "2022-03-07")
    ]
    assert len(some_flights) > 50
    for flight in some_flights:
        assert re.fullmatch(r"F\d{7}", flight.number) and db.flight(flight.number) == flight
        assert re.fullmatch(r"\d\d:\d\d", flight.dep_time) and flight.date == "2022-03-07"
    assert db.flight("F0000000") is None or db.flight("F0000000").number == "F0000000"
    route = db.distance("Houston", "Denver")
    assert re.fullmatch(r"\d+ hours? \d+ mins?", route.duration)
    assert re.fullmatch(r"[\d,]+ km", route.distance_text)


# ------------------------------------------------------------------------ queries --


def test_queries_follow_the_benchmark_rules(small_db, validation_queries):
    levels = Counter(q.level for q in validation_queries)
    assert set(levels) == {"easy", "medium", "hard"}
    for q in validation_queries:
        assert q.days in (3, 5, 7) and q.visiting_city_number == (q.days - 1) // 2
        days = [int(d[-2:]) for d in q.date]
        assert days == list(range(days[0], days[0] + q.days)) and days[-1] <= 31
        assert all(d.startswith("2022-03-") for d in q.date)
        active = {k: v for k, v in q.local_constraint.items() if v}
        if q.level == "easy":
            assert q.people_number == 1 and not active
        else:
            assert 2 <= q.people_number <= 8
            assert len(active) == (1 if q.level == "medium" else 3)
            if q.level == "medium":
                assert "transportation" not in active
            if "cuisine" in active:
                assert len(active["cuisine"]) == (2 if q.level == "medium" else 4)
        if q.days == 3:
            assert small_db.state_of(q.dest) not in (None, small_db.state_of(q.org))
        else:
            assert len(small_db.cities_in(q.dest)) > 3 and q.dest != small_db.state_of(q.org)
        cost = total_cost(q, q.annotated_plan, small_db)
        assert cost <= q.budget <= 1.6 * cost + 100 and q.budget % 100 == 0
        assert q.org in q.query and f"${q.budget:,}" in q.query


def test_splits_are_distinct_and_deterministic(small_db):
    train = generate_query(small_db, index=0, split="train")
    assert generate_query(small_db, index=0, split="train") == train
    assert generate_query(small_db, index=0, split="test") != train
    assert SPLITS["validation"][0] == 180


# ------------------------------------------------------------------------ expert --


def test_expert_plans_pass_every_check_on_validation_queries(small_db, validation_queries):
    replans = [plan_trip(q, small_db).plan for q in validation_queries]
    evaluations, metrics = evaluate_batch(validation_queries, replans, small_db)
    assert metrics == {
        "delivery_rate": 1.0,
        "commonsense_micro": 1.0,
        "commonsense_macro": 1.0,
        "hard_micro": 1.0,
        "hard_macro": 1.0,
        "final_pass_rate": 1.0,
    }
    assert all(
        e.feedback == success_feedback(q)
        for e, q in zip(evaluations, validation_queries, strict=True)
    )


def test_expert_passes_on_the_full_database():
    db = get_database("full", 0)
    queries = [generate_query(db, index=i, split="validation") for i in range(20)]
    _, metrics = evaluate_batch(queries, [q.annotated_plan for q in queries], db)
    assert metrics["final_pass_rate"] == 1.0


@pytest.mark.parametrize("kind", list(ERROR_KINDS))
def test_injected_errors_fail_the_intended_check(small_db, validation_queries, kind):
    rng = np.random.default_rng(0)
    broken_any = 0
    for query in validation_queries:
        broken = inject_error(query.annotated_plan, kind, query, small_db, rng)
        if broken is None:
            continue
        result = evaluate(query, broken, small_db)
        target = ERROR_KINDS[kind]
        if kind == "over_budget" and result.verdicts[target].passed:
            continue  # the dearest listing still fitted the budget's slack
        assert result.verdicts[target].passed is False, (kind, result.feedback)
        assert not result.final_pass
        broken_any += 1
    if kind != "missing_cuisine":
        assert broken_any > 0, f"{kind} never applied"


# ------------------------------------------------------------------------ evaluator --


def _verdict(query, plan, db, check):
    return evaluate(query, plan, db).verdicts[check]


def test_annotated_fixture_plan_passes(fixture_db, fixture_query):
    result = evaluate(fixture_query, fixture_query.annotated_plan, fixture_db)
    assert result.final_pass, result.feedback
    # 199 + 243 (flights) + 2 x 95 (room) + meals 22 + 15 + 19 + 28 + 35 + 41
    assert result.total_cost == 792
    assert result.feedback.splitlines()[0] == "is_valid_information_in_sandbox: success"


def _mutate(plan, day, **fields):
    plan = copy.deepcopy(plan)
    plan[day - 1].update(fields)
    return plan


SANDBOX_CASES = [
    (
        dict(day=2, lunch="Nowhere Diner, Denver"),
        "Day 2: the restaurant 'Nowhere Diner, Denver' (lunch) is not in the database.",
    ),
    (
        dict(day=2, attraction="Denver Zoo, Denver;"),
        "Day 2: the attraction 'Denver Zoo, Denver' is not in the database.",
    ),
    (
        dict(day=1, accommodation="Hotel Nowhere, Denver"),
        "Day 1: the accommodation 'Hotel Nowhere, Denver' is not in the database.",
    ),
    (
        dict(day=1, transportation="Flight Number: F9999999, from Chicago to Denver"),
        "Day 1: the flight F9999999 is not in the database.",
    ),
    (
        dict(day=1, transportation="Flight Number: F3802207, from Chicago to Denver"),
        "Day 1: the flight F3802207 flies from Denver to Chicago, not from Chicago to Denver.",
    ),
    (
        dict(day=3, transportation="Taxi, from Denver to Dallas, duration: 1 hour"),
        "Day 3: there is no taxi information from Denver to Dallas.",
    ),
    (
        dict(day=1, transportation="Hot-air balloon from Chicago"),
        "Day 1: the transportation 'Hot-air balloon from Chicago' is not a flight, self-driving or "
        "taxi leg.",
    ),
    (dict(day=2, current_city="Atlantis"), "Day 2: the city 'Atlantis' is not in the database."),
]


@pytest.mark.parametrize(("change", "message"), SANDBOX_CASES)
def test_sandbox_check(fixture_db, fixture_query, change, message):
    plan = _mutate(fixture_query.annotated_plan, **change)
    verdict = _verdict(fixture_query, plan, fixture_db, "is_valid_information_in_sandbox")
    assert verdict.passed is False and verdict.message == message


def test_sandbox_checks_the_flight_date(fixture_db, fixture_query):
    query = TravelQuery(
        **{**fixture_query.__dict__, "date": ("2022-03-11", "2022-03-12", "2022-03-13")}
    )
    verdict = _verdict(
        query, fixture_query.annotated_plan, fixture_db, "is_valid_information_in_sandbox"
    )
    assert verdict.message == "Day 1: the flight F3502692 departs on 2022-03-10, not on 2022-03-11."


COMPLETE_CASES = [
    ("drop_day", "The plan covers 2 days; the query asks for 3."),
    ("drop_key", "Day 2 lacks the key(s) lunch."),
    (dict(day=1, transportation="-"), "Day 1 is a travel day without transportation."),
    (dict(day=2, attraction="-"), "Day 2 is a sightseeing day without an attraction."),
    (dict(day=2, dinner="-"), "Day 2 is a sightseeing day without all three meals."),
    (dict(day=1, accommodation="-"), "Day 1 has no accommodation."),
]


@pytest.mark.parametrize(("change", "message"), COMPLETE_CASES)
def test_complete_information_check(fixture_db, fixture_query, change, message):
    plan = copy.deepcopy(fixture_query.annotated_plan)
    if change == "drop_day":
        plan = plan[:2]
    elif change == "drop_key":
        del plan[1]["lunch"]
    else:
        plan = _mutate(plan, **change)
    verdict = _verdict(fixture_query, plan, fixture_db, "is_not_absent")
    assert verdict.passed is False and verdict.message == message
    # Hard constraints are not checked on incomplete plans.
    assert _verdict(fixture_query, plan, fixture_db, "valid_cost").passed is False


def test_complete_information_counts_cities_and_filled_fields(fixture_db, fixture_query):
    plan = _mutate(fixture_query.annotated_plan, 2, current_city="from Denver to Houston")
    verdict = _verdict(fixture_query, plan, fixture_db, "is_not_absent")
    assert verdict.message == "The plan visits 2 cities besides the origin; the query asks for 1."
    sparse = copy.deepcopy(fixture_query.annotated_plan)
    for day in sparse:
        for key in ("breakfast", "lunch", "dinner", "attraction"):
            day[key] = "-"
    sparse[1]["attraction"] = "Red Rocks Park, Denver"
    sparse[1]["breakfast"] = sparse[1]["lunch"] = sparse[1]["dinner"] = "Dragon Wok, Denver"
    sparse[0]["accommodation"] = sparse[1]["accommodation"] = "Quiet room near downtown, Denver"
    sparse[0]["transportation"] = sparse[2]["transportation"] = "Taxi, from Chicago to Denver"
    sparse[2]["transportation"] = "Taxi, from Denver to Chicago"
    assert evaluate(fixture_query, sparse, fixture_db).verdicts["is_not_absent"].passed is True


def test_current_city_check(fixture_db, fixture_query):
    plan = _mutate(fixture_query.annotated_plan, 2, lunch="Golden Dragon, Houston")
    verdict = _verdict(fixture_query, plan, fixture_db, "is_valid_information_in_current_city")
    assert verdict.message == (
        "Day 2: the lunch 'Golden Dragon, Houston' is in Houston, not in the day's city 'Denver'."
    )
    plan = _mutate(
        fixture_query.annotated_plan,
        3,
        transportation="Taxi, from Chicago to Denver, duration: 1 hour",
    )
    verdict = _verdict(fixture_query, plan, fixture_db, "is_valid_information_in_current_city")
    assert verdict.message == (
        "Day 3: the transportation goes from Chicago to Denver, but the "
        "current city is 'from Denver to Chicago'."
    )
    # Travel days may use either city.
    plan = _mutate(fixture_query.annotated_plan, 1, lunch="Cafe Rosa, Denver", breakfast="-")
    assert _verdict(fixture_query, plan, fixture_db, "is_valid_information_in_current_city").passed


def test_reasonable_route_check(fixture_db, fixture_query):
    plan = _mutate(fixture_query.annotated_plan, 3, current_city="from Denver to Houston")
    assert _verdict(fixture_query, plan, fixture_db, "is_reasonable_visiting_city").message == (
        "The trip should be a closed circle ending in Chicago."
    )
    plan = _mutate(fixture_query.annotated_plan, 1, current_city="from Houston to Denver")
    assert _verdict(fixture_query, plan, fixture_db, "is_reasonable_visiting_city").message == (
        "The trip should start in Chicago, not in Houston."
    )
    plan = [_mutate(fixture_query.annotated_plan, 2, current_city="Houston")[i] for i in range(3)]
    assert _verdict(fixture_query, plan, fixture_db, "is_reasonable_visiting_city").message == (
        "The city Denver is visited twice."
    )
    wrong_city = copy.deepcopy(fixture_query.annotated_plan)
    wrong_city[0]["current_city"] = "from Chicago to Houston"
    wrong_city[1]["current_city"] = "Houston"
    wrong_city[2]["current_city"] = "from Houston to Chicago"
    assert (
        _verdict(fixture_query, wrong_city, fixture_db, "is_reasonable_visiting_city").message
        == "The trip should visit Denver, not Houston."
    )


def test_route_must_stay_in_the_destination_state(fixture_db):
    query = load_queries(FIXTURES / "validation.csv")[1]
    plan = plan_trip(query, fixture_db).plan
    assert evaluate(query, plan, fixture_db).final_pass
    plan = copy.deepcopy(plan)
    for day in plan:
        for key, value in day.items():
            if isinstance(value, str):
                day[key] = value.replace("Austin", "Chicago")
    verdict = _verdict(query, plan, fixture_db, "is_reasonable_visiting_city")
    assert verdict.message == "The city Chicago is not in the state Texas."


def test_diverse_restaurants_and_attractions(fixture_db, fixture_query):
    plan = _mutate(fixture_query.annotated_plan, 2, dinner="Dragon Wok, Denver")
    assert _verdict(fixture_query, plan, fixture_db, "is_valid_restaurants").message == (
        "The restaurant 'Dragon Wok, Denver' is repeated (day 2)."
    )
    plan = _mutate(fixture_query.annotated_plan, 3, attraction="Red Rocks Park, Denver;")
    assert _verdict(fixture_query, plan, fixture_db, "is_valid_attractions").message == (
        "The attraction 'Red Rocks Park, Denver' is repeated (day 3)."
    )


def test_last_attraction_counts_without_trailing_semicolon(fixture_db, fixture_query):
    # The fixture's day 2 lists two attractions without a final ';' (a reference quirk drops
    # the second one); repeating the second must be caught.
    plan = _mutate(fixture_query.annotated_plan, 3, attraction="Red Rocks Park, Denver")
    assert not _verdict(fixture_query, plan, fixture_db, "is_valid_attractions").passed


def test_conflicting_transport(fixture_db, fixture_query):
    plan = _mutate(
        fixture_query.annotated_plan,
        3,
        transportation="Self-driving, from Denver to Chicago, duration: 14 hours",
    )
    verdict = _verdict(fixture_query, plan, fixture_db, "is_valid_transportation")
    assert verdict.message == "Conflicting transportation: self-driving is mixed with flight."


def test_minimum_nights(fixture_db, fixture_query):
    plan = _mutate(fixture_query.annotated_plan, 1, accommodation="Month-long studio, Denver")
    plan = _mutate(plan, 2, accommodation="Month-long studio, Denver")
    verdict = _verdict(fixture_query, plan, fixture_db, "is_valid_accommodation")
    assert verdict.message == (
        "The accommodation 'Month-long studio, Denver' (from day 1) is "
        "booked for 2 night(s) but requires at least 30."
    )
    plan = _mutate(fixture_query.annotated_plan, 2, accommodation="Sunny loft by the river, Denver")
    verdict = _verdict(fixture_query, plan, fixture_db, "is_valid_accommodation")
    assert verdict.message == (
        "The accommodation 'Quiet room near downtown, Denver' (from day 1) "
        "is booked for 1 night(s) but requires at least 2."
    )


def _with(query, **changes):
    return TravelQuery(**{**query.__dict__, **changes})


def _constraint(**values):
    return {
        "house rule": None,
        "cuisine": None,
        "room type": None,
        "transportation": None,
        **values,
    }


def test_budget(fixture_db, fixture_query):
    plan = fixture_query.annotated_plan
    assert _verdict(_with(fixture_query, budget=792), plan, fixture_db, "valid_cost").passed
    verdict = _verdict(_with(fixture_query, budget=791), plan, fixture_db, "valid_cost")
    assert verdict.message == "The total cost 792 exceeds the budget 791."
    # 3 people: flights x3, meals x3, the 2-person room x ceil(3/2) = 2 rooms per night.
    group = _with(fixture_query, people_number=3)
    assert total_cost(group, plan, fixture_db) == 3 * (199 + 243) + 2 * 2 * 95 + 3 * 160


def test_taxi_and_self_driving_costs(fixture_db, fixture_query):
    plan = _mutate(fixture_query.annotated_plan, 1, transportation="Taxi, from Chicago to Denver")
    plan = _mutate(plan, 3, transportation="Taxi, from Denver to Chicago")
    five = _with(fixture_query, people_number=5)
    # taxis: ceil(5/4) = 2 cars x (1606 + 1611); rooms ceil(5/2) = 3 x 95 x 2; meals x5
    assert total_cost(five, plan, fixture_db) == 2 * (1606 + 1611) + 3 * 95 * 2 + 5 * 160
    plan = _mutate(plan, 1, transportation="Self-driving, from Chicago to Denver")
    plan = _mutate(plan, 3, transportation="Self-driving, from Denver to Chicago")
    six = _with(fixture_query, people_number=6)
    assert total_cost(six, plan, fixture_db) == 2 * (80 + 80) + 3 * 95 * 2 + 6 * 160


def test_room_rule_and_room_type(fixture_db, fixture_query):
    plan = _mutate(fixture_query.annotated_plan, 1, accommodation="Sunny loft by the river, Denver")
    plan = _mutate(plan, 2, accommodation="Sunny loft by the river, Denver")
    parties = _with(fixture_query, local_constraint=_constraint(**{"house rule": "parties"}))
    assert _verdict(parties, plan, fixture_db, "valid_room_rule").message == (
        "The accommodation 'Sunny loft by the river' does not allow parties (house rules: "
        "No parties & No smoking)."
    )
    pets = _with(fixture_query, local_constraint=_constraint(**{"house rule": "pets"}))
    assert _verdict(pets, plan, fixture_db, "valid_room_rule").passed is True
    private = _with(fixture_query, local_constraint=_constraint(**{"room type": "private room"}))
    assert _verdict(private, plan, fixture_db, "valid_room_type").message == (
        "The accommodation 'Sunny loft by the river' is a Entire home/apt; the query asks for "
        "private room."
    )
    entire = _with(fixture_query, local_constraint=_constraint(**{"room type": "entire room"}))
    assert _verdict(entire, plan, fixture_db, "valid_room_type").passed is True
    not_shared = _with(
        fixture_query, local_constraint=_constraint(**{"room type": "not shared room"})
    )
    assert _verdict(not_shared, plan, fixture_db, "valid_room_type").passed is True
    assert _verdict(fixture_query, plan, fixture_db, "valid_room_type").passed is None


def test_cuisine(fixture_db, fixture_query):
    plan = fixture_query.annotated_plan  # Chinese, Cafe, Mexican, Indian, American, Italian
    ok = _with(fixture_query, local_constraint=_constraint(cuisine=["Chinese", "Italian"]))
    assert _verdict(ok, plan, fixture_db, "valid_cuisine").passed
    bad = _with(
        fixture_query, local_constraint=_constraint(cuisine=["French", "Indian", "Mediterranean"])
    )
    assert _verdict(bad, plan, fixture_db, "valid_cuisine").message == (
        "No meal serves French, Mediterranean cuisine."
    )


def test_transportation_constraint(fixture_db, fixture_query):
    no_flight = _with(fixture_query, local_constraint=_constraint(transportation="no flight"))
    verdict = _verdict(no_flight, fixture_query.annotated_plan, fixture_db, "valid_transportation")
    assert verdict.message == "Day 1 uses flight; the query says no flight."
    no_drive = _with(fixture_query, local_constraint=_constraint(transportation="no self-driving"))
    assert _verdict(
        no_drive, fixture_query.annotated_plan, fixture_db, "valid_transportation"
    ).passed


def test_feedback_format_and_metrics(fixture_db, fixture_query):
    broken = _mutate(fixture_query.annotated_plan, 2, dinner="Dragon Wok, Denver")
    result = evaluate(fixture_query, broken, fixture_db)
    lines = result.feedback.splitlines()
    assert len(lines) == len(COMMONSENSE_CHECKS) + 1  # only valid_cost applies
    assert (
        "is_valid_restaurants: fail, reason: The restaurant 'Dragon Wok, Denver' is "
        "repeated (day 2)." in lines
    )
    assert 0.0 < result.shaped_reward() < 1.0
    none = evaluate(fixture_query, None, fixture_db)
    good = evaluate(fixture_query, fixture_query.annotated_plan, fixture_db)
    metrics = summarize([good, result, none])
    assert metrics["delivery_rate"] == pytest.approx(2 / 3)
    assert metrics["commonsense_micro"] == pytest.approx((8 + 7 + 0) / 24)
    assert metrics["commonsense_macro"] == pytest.approx(1 / 3)
    assert metrics["hard_micro"] == pytest.approx(2 / 3)  # valid_cost passes for the 2 plans
    assert metrics["final_pass_rate"] == pytest.approx(1 / 3)
    assert set(HARD_CHECKS) <= set(good.verdicts)


# ------------------------------------------------------------------------ parsing --


@pytest.mark.parametrize(
    "text",
    [
        '[{"days": 1, "current_city": "from A to B"}]',
        "```json\n[{'days': 1, 'current_city': 'from A to B',},]\n```",
        'Sure! {"plan": [{"Day": "Day 1", "Current City": "from A to B"}]} Done.',
        "Day 1:\nCurrent City: from A to B\nTransportation: -\n",
    ],
)
def test_parse_plan_forgives_common_slips(text):
    plan, error = parse_plan(text)
    assert error is None and plan[0]["days"] == 1 and plan[0]["current_city"] == "from A to B"


@pytest.mark.parametrize("text", ["", "no plan", "[1, 2]", "[[[[", "{'a': }" * 3])
def test_parse_plan_errors_explain_the_format(text):
    plan, error = parse_plan(text)
    assert plan is None and "JSON list" in error


def test_format_plan_round_trips(small_db, validation_queries):
    plan = validation_queries[0].annotated_plan
    assert parse_plan(format_plan(plan)) == (plan, None)


# ------------------------------------------------------------------------ loaders --


def test_loaders_read_the_benchmark_formats(fixture_db):
    # Rows with a missing field are dropped, as pd.read_csv(...).dropna() does: 3 of 12
    # stays (house rules 'nan' and empty, no price), 2 of 25 restaurants (no cuisines; the
    # name 'NA' is one of pandas' NA strings), 1 of 6 attractions (no website).
    assert fixture_db.counts() == {
        "states": 3,
        "cities": 6,
        "accommodations": 9,
        "restaurants": 23,
        "attractions": 5,
    }
    assert fixture_db.cities_in("Texas") == ("Austin", "Dallas", "Houston", "San Antonio")
    stay = fixture_db.accommodation("Bright guest room, close to campus", "Austin")
    assert stay is not None and stay.house_rules == "No children under 10"
    assert fixture_db.accommodation("Family home with yard", "Austin") is None
    assert fixture_db.accommodations_in("San Antonio") == ()
    assert fixture_db.restaurant("Nameless Noodles", "Denver") is None
    assert fixture_db.attraction("Zilker Metropolitan Park", "Austin") is None
    assert fixture_db.restaurant("Cafe Rosa", "Denver").cuisines == ("Cafe", "Bakery", "Desserts")
    assert fixture_db.flight("F3502692").price == 199  # its first row; a later one reuses it
    assert [f.destination for f in fixture_db.flights.with_number("F3502692")] == [
        "Denver",
        "Dallas",
    ]
    assert fixture_db.flight("F3502693") is None  # no price
    assert fixture_db.distance("Chicago", "Denver").distance_km == 1606
    assert fixture_db.distance("Denver", "Chicago").duration == "14 hours 50 mins"  # first row
    assert fixture_db.distance("Dallas", "San Antonio") is None  # 'nan' row: missing pair
    assert fixture_db.distance("Chicago", "Houston") is None  # '1 day 2 hours': no valid info
    assert fixture_db.distance("Dallas", "Austin") is None  # its first row has no duration
    assert load_database(FIXTURES / "database") is fixture_db


def test_query_loaders(fixture_db, fixture_query):
    queries = load_queries(FIXTURES / "validation.csv")
    assert [q.id for q in queries] == ["validation-0", "validation-1"]
    first, second = queries
    assert first.date == ("2022-03-10", "2022-03-11", "2022-03-12") and first.budget == 1400
    assert second.local_constraint == {
        "house rule": "parties",
        "cuisine": None,
        "room type": None,
        "transportation": "no self-driving",
    }
    assert first.reference_information.startswith("[0] Flight from Chicago to Denver")
    assert fixture_query.reference_information is None and len(fixture_query.annotated_plan) == 3
    _, metrics = evaluate_batch(
        queries, [plan_trip(q, fixture_db).plan for q in queries], fixture_db
    )
    assert metrics["final_pass_rate"] == 1.0


def test_tools_on_the_real_format(fixture_db):
    tools = TravelTools(fixture_db)
    flights = tools.run("FlightSearch", "Chicago, Denver, 2022-03-10")
    assert flights.ok and flights.observation.splitlines()[0].startswith("Flight Number | Price")
    assert tools.run("FlightSearch", "Chicago, Denver, 2022-03-11").observation == (
        "There is no flight from Chicago to Denver on 2022-03-11."
    )
    assert tools.run("GoogleDistanceMatrix", "Dallas, San Antonio, taxi").observation == (
        "taxi, from Dallas to San Antonio, no valid information."
    )
    assert tools.run("GoogleDistanceMatrix", "Chicago, Denver, self-driving").observation == (
        "self-driving, from Chicago to Denver, duration: 14 hours 48 mins, distance: 1,606 km, "
        "cost: 80"
    )
    assert tools.run("CitySearch", "Atlantis").observation == "Invalid State 'Atlantis'."
    assert (
        tools.run("AttractionSearch", "Dallas").observation == "There is no attraction in Dallas."
    )


@pytest.mark.parametrize("mode", ["two-stage", "sole-planning"])
def test_env_runs_the_real_files(mode):
    env = gym.make(
        ENV_ID,
        mode=mode,
        data_dir=str(FIXTURES / "database"),
        queries_file=str(FIXTURES / "validation.csv"),
        split="validation",
    )
    for index in range(2):
        observation, info = env.reset(options={"task_index": index})
        if mode == "sole-planning" and index == 0:
            assert "[0] Flight from Chicago to Denver on 2022-03-10" in observation
        expert = env.unwrapped.make_expert()
        expert.reset(env, observation, info)
        reward, done = 0.0, False
        while not done:
            observation, reward, terminated, truncated, info = env.step(
                expert.act(observation, info)
            )
            done = terminated or truncated
        assert reward == 1.0 and info[InfoKeys.SUCCESS], observation


# ------------------------------------------------------------------------ environment --


def _small(**kwargs):
    return gym.make(ENV_ID, database_size="small", **kwargs)


def test_sole_planning_passes_the_env_checker():
    env = _small(mode="sole-planning")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)


@pytest.mark.parametrize("mode", ["two-stage", "sole-planning"])
def test_expert_succeeds_in_both_modes(mode):
    env = _small(mode=mode, split="validation")
    for index in range(6):
        observation, info = env.reset(options={"task_index": index})
        expert = env.unwrapped.make_expert()
        expert.reset(env, observation, info)
        steps, done = 0, False
        while not done:
            observation, reward, terminated, truncated, info = env.step(
                expert.act(observation, info)
            )
            steps += 1
            done = terminated or truncated
        assert terminated and reward == 1.0, observation
        assert info[InfoKeys.VERDICTS]["final_pass"] is True
        assert steps <= 30 and (steps == 1) == (mode == "sole-planning")


def test_expert_error_injection_gives_failed_trajectories():
    env = _small(mode="sole-planning")
    rewards = []
    for index in range(12):
        observation, info = env.reset(seed=index)
        expert = env.unwrapped.make_expert(error_rate=1.0, error_kinds=["repeated_restaurant"])
        expert.reset(env, observation, info)
        _, reward, _, _, info = env.step(expert.act(observation, info))
        assert expert.injected == "repeated_restaurant"
        assert info[InfoKeys.VERDICTS]["is_valid_restaurants"] is False
        rewards.append(reward)
    assert rewards == [0.0] * 12


def test_two_stage_tool_errors_and_early_stops():
    env = _small()
    env.reset(seed=0)
    _, _, terminated, _, info = env.step("Action: FlightSerch[A, B, 2022-03-01]")
    assert not terminated and info[InfoKeys.ACTION_VALID] is False
    observation, *_ = env.step('[{"days": 1, "current_city": "from A to B"}]')
    assert observation.startswith("Invalid action: this looks like a plan")
    observation, *_ = env.step("Action: NotebookWrite[nothing yet]")
    assert observation == "There is no new search result to record; call a search tool first."
    observation, *_ = env.step("Action: CitySearch[Texas]")
    assert observation.startswith("Houston, Dallas")
    observation, *_ = env.step("Action: NotebookWrite[Texas cities]")
    assert observation == "The information has been recorded in Notebook, and its index is 0."
    for attempt in range(4):
        observation, reward, terminated, _, info = env.step(
            f"Action: RestaurantSearch[Atlantis{attempt}]"
        )
    assert terminated and reward == 0.0 and observation.startswith("Early stop: RestaurantSearch")
    assert info[InfoKeys.SUCCESS] is False
    env.reset(seed=1)
    outcomes = [env.step("Action: CitySearch[Texas]")[2] for _ in range(3)]
    assert outcomes == [False, False, True]
    env.reset(seed=1)
    steps = [env.step("I will look for flights.") for _ in range(3)]
    assert [step[2] for step in steps] == [False, False, True]
    assert steps[-1][0].startswith(
        "Early stop: the action 'I will look for flights.' was repeated 3 times in a row."
    )


def test_planner_switches_to_planning_and_bad_plans_get_feedback():
    env = _small(max_plan_attempts=2, feedback_conditioning=True)
    observation, _ = env.reset(seed=0)
    observation, *_ = env.step("Action: Planner[plan it]")
    assert "(the notebook is empty)" in observation and observation.endswith("travel plan:")
    assert "feedback:\nis_valid_information_in_sandbox: success" in observation
    observation, _, terminated, _, _ = env.step("I cannot do that.")
    assert not terminated and observation.startswith("Invalid action: No plan found")
    observation, reward, terminated, _, _ = env.step("Still no plan.")
    assert terminated and reward == 0.0 and "No plan was delivered" in observation


def test_shaped_reward_and_time_limit():
    env = _small(mode="sole-planning", reward_mode="shaped")
    observation, info = env.reset(seed=3)
    expert = env.unwrapped.make_expert(error_rate=1.0, error_kinds=["missing_meal"])
    expert.reset(env, observation, info)
    _, reward, terminated, _, _ = env.step(expert.act(observation, info))
    assert terminated and 0.0 < reward < 1.0
    env.reset(seed=3)
    evaluation = env.unwrapped.evaluate()
    assert evaluation.success is False and "No plan was delivered." in evaluation.feedback


def test_condition_on_feedback_replaces_the_feedback_block():
    env = _small(mode="sole-planning", feedback_conditioning=True)
    observation, _ = env.reset(seed=0)
    assert observation.count("feedback:\n") == 1
    changed = condition_on_feedback(observation, "is_not_absent: fail, reason: x")
    assert "is_not_absent: fail, reason: x\ntravel plan:" in changed
    assert changed.count("feedback:\n") == 1
    assert condition_on_feedback(changed, "ok").endswith("feedback:\nok\ntravel plan:")


def test_unknown_arguments_are_rejected():
    with pytest.raises(ValueError, match="Did you mean 'sole-planning'"):
        gym.make(ENV_ID, mode="sole_planning")
    with pytest.raises(TypeError, match="Did you mean 'database_size'"):
        gym.make(ENV_ID, database_sise="small")


def test_difficulty_selects_the_level_and_level_is_a_deprecated_alias():
    kwargs = {"database_size": "small", "num_tasks": 4, "split": "validation"}
    env = gym.make("agentgym/TravelPlanner-v0", difficulty="hard", **kwargs).unwrapped
    assert {task.level for task in env.tasks} == {"hard"}
    with pytest.warns(DeprecationWarning, match="level= is deprecated, use difficulty="):
        old = gym.make("agentgym/TravelPlanner-v0", level="hard", **kwargs).unwrapped
    assert [t.id for t in old.tasks] == [t.id for t in env.tasks]
    with pytest.raises(ValueError, match="pass only difficulty='hard'"):
        gym.make("agentgym/TravelPlanner-v0", level="hard", difficulty="easy", **kwargs)
    with pytest.raises(ValueError, match="Did you mean 'hard'"):
        gym.make("agentgym/TravelPlanner-v0", difficulty="hrad", **kwargs)
