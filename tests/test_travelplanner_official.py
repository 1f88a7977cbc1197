"""TravelPlanner against the official code's rules: file loading, padded plans, the official
evaluator next to the strict one (each disagreement asserted), and the flight table.

The rules come from the official repository (OSU-NLP-Group/TravelPlanner: ``tools/*/apis.py``
and ``evaluation/*.py``); the cases are built on the fixture files, which follow its formats.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import agentgym  # noqa: F401  (registers the environments)
from agentgym import InfoKeys
from agentgym.core.trajectory import Trajectory
from agentgym.envs.travelplanner.csv_tables import read_rows
from agentgym.envs.travelplanner.flight_table import (
    ColumnarFlights,
    flight_cache_dir,
    load_flights,
)
from agentgym.envs.travelplanner.judge import (
    evaluate,
    evaluate_batch,
    total_cost,
)
from agentgym.envs.travelplanner.loaders import (
    load_database,
    load_plans,
    load_queries,
    queries_from_records,
)
from agentgym.envs.travelplanner.official import official_cost
from agentgym.envs.travelplanner.plans import PADDING_TEXT, TravelQuery, format_plan
from agentgym.envs.travelplanner.tools import TravelTools
from agentgym.evaluation import benchmark_lines, benchmark_metrics

ENV_ID = "agentgym/TravelPlanner-v0"
FIXTURES = Path(__file__).parent / "fixtures" / "travelplanner"
DATABASE = FIXTURES / "database"
FLIGHTS = DATABASE / "flights" / "clean_Flights_2022.csv"


@pytest.fixture(scope="module")
def db():
    return load_database(DATABASE)


@pytest.fixture(scope="module")
def query():
    """Chicago -> Denver, 3 days, 1 person, $1,400, with a valid annotated plan."""
    return load_queries(FIXTURES / "train.jsonl", split="train")[0]


def _mutate(plan, day, **fields):
    plan = copy.deepcopy(plan)
    plan[day - 1].update(fields)
    return plan


def _with(query, **changes):
    return TravelQuery(**{**query.__dict__, **changes})


def _judge(query, plan, db, check):
    """(strict verdict, official verdict) of one check."""
    return tuple(evaluate(query, plan, db, evaluator=name).verdicts[check] for name in EVALUATORS)


EVALUATORS = ("strict", "official")


# ------------------------------------------------------------------------ loading --


@pytest.mark.parametrize(
    "table",
    [
        "accommodations/clean_accommodations_2022.csv",
        "restaurants/clean_restaurant_2022.csv",
        "attractions/attractions.csv",
        "flights/clean_Flights_2022.csv",
    ],
)
def test_tables_keep_the_rows_pandas_dropna_keeps(table):
    """The official tools read every table with ``pd.read_csv(path).dropna()``."""
    pd = pytest.importorskip("pandas")
    path = DATABASE / table
    expected = pd.read_csv(path, dtype=str).dropna().to_dict("records")
    assert read_rows(path) == expected
    assert len(read_rows(path, drop_missing=False)) == len(pd.read_csv(path, dtype=str))


def test_flight_table_has_the_official_rows():
    pd = pytest.importorskip("pandas")
    official = pd.read_csv(FLIGHTS).dropna()
    flights = load_flights(FLIGHTS)
    assert len(flights) == len(official) == 6  # the row without a price is gone
    for _, row in official.iterrows():
        found = [
            f
            for f in flights.with_number(row["Flight Number"])
            if (f.origin, f.destination, f.date)
            == (row.OriginCityName, row.DestCityName, row.FlightDate)
        ]
        assert len(found) == 1 and found[0].price == row.Price
        assert (found[0].dep_time, found[0].elapsed) == (row.DepTime, row.ActualElapsedTime)


def test_a_listing_without_house_rules_does_not_exist(db, query):
    """762 of the real 5,047 stays lack house rules: the official tools never see them (they
    used to be loaded with no rules, which then satisfied every house-rule constraint)."""
    assert db.accommodation("Family home with yard", "Austin") is None
    listing = TravelTools(db).run("AccommodationSearch", "Austin").observation
    assert "Bright guest room" in listing and "Family home with yard" not in listing
    parties = _with(query, local_constraint={**query.local_constraint, "house rule": "parties"})
    plan = _mutate(query.annotated_plan, 1, accommodation="Family home with yard, Austin")
    for evaluator in EVALUATORS:
        result = evaluate(parties, plan, db, evaluator=evaluator)
        assert result.verdicts["is_valid_information_in_sandbox"].passed is False
        assert result.verdicts["valid_room_rule"].passed is False  # not judged: a failure


def test_drives_of_a_day_or_more_are_no_valid_information(db, query):
    tools = TravelTools(db)
    assert tools.run("GoogleDistanceMatrix", "Chicago, Houston, self-driving").observation == (
        "self-driving, from Chicago to Houston, no valid information."
    )
    plan = _mutate(query.annotated_plan, 1, transportation="Self-driving, from Chicago to Houston")
    strict, official = _judge(query, plan, db, "is_valid_information_in_sandbox")
    assert strict.passed is False and official.passed is False
    assert official.message == "The self-driving in day 1 is invalid in the sandbox."


def _published_csv(tmp_path, records):
    """Records written as the published CSVs are: list and dict fields as Python literals."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        [{k: (repr(v) if isinstance(v, list | dict) else v) for k, v in r.items()} for r in records]
    )
    path = tmp_path / "split.csv"
    frame.to_csv(path)  # with pandas' unnamed index column, as a re-saved frame has
    return path


def test_each_official_split_loads_as_published(tmp_path, query):
    train = json.loads((FIXTURES / "train.jsonl").read_text())
    assert train["annotated_plan"][0] == {"org": "Chicago", "dest": "Denver"}  # a summary
    assert train["annotated_plan"][-4:] == [{}, {}, {}, {}]  # padding to 7 days
    (loaded,) = queries_from_records([train], split="train")
    assert loaded == query and [d["days"] for d in loaded.annotated_plan] == [1, 2, 3]
    from_csv = load_queries(_published_csv(tmp_path, [train]), split="train")[0]
    assert from_csv == query and from_csv.annotated_plan == query.annotated_plan
    validation = load_queries(FIXTURES / "validation.csv")
    assert validation[0].annotated_plan is None and all(q.judgeable for q in validation)
    # The test split publishes only days, level, query and reference information.
    (test,) = load_queries(FIXTURES / "test.jsonl", split="test")
    assert (test.days, test.level, test.org, test.budget, test.judgeable) == (
        3,
        "easy",
        "",
        0,
        False,
    )
    assert test.reference_information.startswith("[0] Flight from Chicago to Denver")
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(
        pa.Table.from_pylist([json.loads((FIXTURES / "test.jsonl").read_text())]),
        tmp_path / "test.parquet",
    )
    assert load_queries(tmp_path / "test.parquet", split="test") == [test]
    with pytest.raises(ValueError, match="no 'query' text"):
        queries_from_records([{"days": 3}])
    with pytest.raises(ValueError, match="no constraints to judge"):
        evaluate(test, query.annotated_plan, load_database(DATABASE))


# ------------------------------------------------------------------------ padding --


def test_padded_plans_are_judged_on_their_first_days_records(db, query):
    plan = query.annotated_plan
    padded = [*plan, {}, {}, {}, {}]
    annotated = [*plan, *({"days": day, "current_city": PADDING_TEXT} for day in range(4, 8))]
    for evaluator in EVALUATORS:
        reference = evaluate(query, plan, db, evaluator=evaluator)
        assert reference.final_pass
        for variant in (padded, annotated):
            result = evaluate(query, variant, db, evaluator=evaluator)
            assert result.verdicts == reference.verdicts and result.total_cost == 792
    # A real fourth day is not padding: the strict rules call the plan too long, the official
    # script never looks past day 3.
    extra = [*plan, {**plan[1], "days": 4}]
    strict, official = _judge(query, extra, db, "is_not_absent")
    assert strict.message == "The plan covers 4 days; the query asks for 3."
    assert official.passed is True


def test_answer_files_load_in_idx_order(tmp_path, db):
    queries = load_queries(FIXTURES / "validation.csv")
    from agentgym.envs.travelplanner.planner import plan_trip

    first = plan_trip(queries[0], db).plan
    lines = [
        {"idx": 2, "query": queries[1].query, "plan": None},
        {"idx": 1, "query": queries[0].query, "plan": [*first, {}, {}, {}, {}]},
    ]
    path = tmp_path / "validation_submission.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    plans = load_plans(path)
    assert plans[1] is None and plans[0][:3] == first and len(plans[0]) == 7
    for evaluator in EVALUATORS:
        _, metrics = evaluate_batch(queries, plans, db, evaluator=evaluator)
        assert metrics["delivery_rate"] == 0.5 and metrics["final_pass_rate"] == 0.5


# ------------------------------------------------------------------------ strict vs official --


def test_the_annotated_plan_passes_both(db, query):
    for evaluator in EVALUATORS:
        result = evaluate(query, query.annotated_plan, db, evaluator=evaluator)
        assert result.final_pass and result.total_cost == 792, result.feedback
    assert official_cost(query, query.annotated_plan, db) == 792


@pytest.mark.parametrize("lunch", ["Taqueria, Denver", ", Denver", "Taqueria Sol,Denver(Colorado)"])
def test_names_match_as_substrings_officially(db, query, lunch):
    """The script's ``Name.str.contains(name)``; an empty name finds every restaurant."""
    plan = _mutate(query.annotated_plan, 2, lunch=lunch)
    strict, official = _judge(query, plan, db, "is_valid_information_in_sandbox")
    if "Sol" in lunch:  # the strict lookup forgives spacing and a (State) suffix too
        assert strict.passed is True and official.passed is True
        return
    assert strict.passed is False and "is not in the database" in strict.message
    assert official.passed is True
    assert evaluate(query, plan, db, evaluator="official").final_pass


def test_the_last_attraction_without_a_semicolon_is_ignored_officially(db, query):
    # Day 2 lists "Denver Botanic Gardens, Denver;Red Rocks Park, Denver": the script keeps
    # the items before the last ';' only, so a second visit to Red Rocks is no repeat ...
    repeat = _mutate(query.annotated_plan, 3, attraction="Red Rocks Park, Denver;")
    strict, official = _judge(query, repeat, db, "is_valid_attractions")
    assert strict.message == "The attraction 'Red Rocks Park, Denver' is repeated (day 3)."
    assert official.passed is True
    # ... and an attraction that does not exist is not looked up.
    unknown = _mutate(
        query.annotated_plan, 2, attraction="Denver Botanic Gardens, Denver;Denver Zoo, Denver"
    )
    strict, official = _judge(query, unknown, db, "is_valid_information_in_sandbox")
    assert strict.message == "Day 2: the attraction 'Denver Zoo, Denver' is not in the database."
    assert official.passed is True


def test_non_travel_days_are_tested_letter_by_letter_officially(db, query):
    """On a day in Denver a meal passes if it contains any letter of 'Denver', the stay if it
    contains its last letter 'r', and a transportation entry must contain all of them."""
    houston_lunch = _mutate(query.annotated_plan, 2, lunch="Golden Dragon, Houston")
    strict, official = _judge(query, houston_lunch, db, "is_valid_information_in_current_city")
    assert strict.message == (
        "Day 2: the lunch 'Golden Dragon, Houston' is in Houston, not in the day's city 'Denver'."
    )
    assert official.passed is True
    assert evaluate(query, houston_lunch, db, evaluator="official").final_pass
    no_r = _mutate(query.annotated_plan, 2, accommodation="Cozy bungalow in the Heights, Houston")
    official = evaluate(query, no_r, db, evaluator="official").verdicts
    assert official["is_valid_information_in_current_city"].message == (
        "The accommodation in day 2 is invalid city choice."
    )
    taxi = _mutate(query.annotated_plan, 2, transportation="Taxi; Cost: 50")  # as in the
    official = evaluate(query, taxi, db, evaluator="official").verdicts  # official example
    assert official["is_valid_information_in_current_city"].message == (
        "The transportation in day 2 is invalid city choice."
    )


def test_flights_officially_need_number_and_route_but_no_date(db, query):
    later = _with(query, date=("2022-03-11", "2022-03-12", "2022-03-13"))
    strict, official = _judge(later, query.annotated_plan, db, "is_valid_information_in_sandbox")
    assert strict.message == "Day 1: the flight F3502692 departs on 2022-03-10, not on 2022-03-11."
    assert official.passed is True
    # F3502692's second row flies Houston -> Dallas for $999; the script prices a flight by
    # its number's first row ($199), whatever the route.
    plan = _mutate(
        query.annotated_plan, 1, transportation="Flight Number: F3502692, from Houston to Dallas"
    )
    assert official_cost(query, plan, db) == 792
    assert total_cost(query, plan, db) == 792 - 199 + 999
    result = evaluate(query, plan, db, evaluator="official").verdicts
    assert result["is_valid_information_in_sandbox"].passed is True
    assert result["valid_cost"].passed is True


def test_minimum_nights_are_enforced_officially_only_for_a_unique_name(db, query):
    # "Quiet room near downtown" (2 nights minimum) is also part of "... annex": two listings
    # match, so the script skips the rule.
    plan = _mutate(query.annotated_plan, 2, accommodation="Sunny loft by the river, Denver")
    strict, official = _judge(query, plan, db, "is_valid_accommodation")
    assert strict.passed is False and official.passed is True
    unique = _mutate(query.annotated_plan, 1, accommodation="Month-long studio, Denver")
    unique = _mutate(unique, 2, accommodation="Month-long studio, Denver")
    strict, official = _judge(query, unique, db, "is_valid_accommodation")
    assert strict.passed is False and official.message == (
        "The accommodation Month-long studio, Denver do not obey the minumum nights rule."
    )


def test_three_day_trips_need_not_visit_the_destination_officially(db, query):
    plan = copy.deepcopy(query.annotated_plan)
    plan[0]["current_city"] = "from Chicago to Houston"
    plan[1]["current_city"] = "Houston"
    plan[2]["current_city"] = "from Houston to Chicago"
    strict, official = _judge(query, plan, db, "is_reasonable_visiting_city")
    assert strict.message == "The trip should visit Denver, not Houston."
    assert official.passed is True


def test_a_meal_in_the_origin_skips_the_rest_of_the_day_for_cuisines(db, query):
    italian = _with(query, local_constraint={**query.local_constraint, "cuisine": ["Italian"]})
    plan = _mutate(query.annotated_plan, 3, breakfast="Windy City Diner, Chicago")
    strict, official = _judge(italian, plan, db, "valid_cuisine")
    assert strict.passed is True  # Pasta Fina (Italian) at lunch on day 3
    assert official.message == "The cuisine Italian is not satisfied."


def test_where_the_official_script_raises_the_check_fails(db, query):
    plan = _mutate(
        query.annotated_plan, 1, transportation="flight number: F3502692, from Chicago to Denver"
    )
    strict, official = _judge(query, plan, db, "is_valid_information_in_sandbox")
    assert strict.passed is True
    assert official.passed is False and official.message.startswith(
        "The official script raises on this plan (ScriptError"
    )
    no_city = copy.deepcopy(query.annotated_plan)
    del no_city[1]["current_city"]
    verdicts = evaluate(query, no_city, db, evaluator="official").verdicts
    assert "raises on this plan (KeyError" in verdicts["is_reasonable_visiting_city"].message


def test_official_feedback_uses_the_scripts_messages(db, query):
    plan = _mutate(query.annotated_plan, 3, current_city="from Denver to Houston")
    result = evaluate(query, plan, db, evaluator="official")
    assert "is_reasonable_visiting_city: fail, reason: The trip should be a closed circle." in (
        result.feedback.splitlines()
    )
    assert result.as_info()["evaluator"] == "official"


def test_unknown_evaluator_is_rejected(db, query):
    with pytest.raises(ValueError, match="Did you mean 'official'"):
        evaluate(query, query.annotated_plan, db, evaluator="oficial")
    with pytest.raises(ValueError, match="evaluator"):
        gym.make(ENV_ID, database_size="small", evaluator="lenient")


# ------------------------------------------------------------------------ environment --


def _fixture_env(**kwargs):
    return gym.make(ENV_ID, mode="sole-planning", data_dir=str(DATABASE), **kwargs)


@pytest.mark.parametrize("evaluator", EVALUATORS)
def test_env_rewards_with_the_chosen_evaluator_and_reports_both(query, evaluator):
    env = _fixture_env(queries_file=str(FIXTURES / "train.jsonl"), evaluator=evaluator)
    env.reset(options={"task_index": 0})
    plan = _mutate(query.annotated_plan, 2, lunch="Taqueria, Denver")
    _, reward, terminated, _, info = env.step(format_plan(plan))
    verdicts = info[InfoKeys.VERDICTS]
    assert terminated and reward == (1.0 if evaluator == "official" else 0.0)
    assert verdicts["evaluator"] == evaluator
    assert verdicts["strict"]["final_pass"] is False and verdicts["official"]["final_pass"] is True
    metrics = env.unwrapped.benchmark_metrics([verdicts, {}])
    assert metrics["strict"]["final_pass_rate"] == 0.0
    assert metrics["official"]["final_pass_rate"] == 0.5
    assert metrics["official"]["delivery_rate"] == 0.5


def test_eval_reports_the_benchmark_metrics_of_recorded_episodes(query):
    env = _fixture_env(queries_file=str(FIXTURES / "train.jsonl"))
    env.reset(options={"task_index": 0})
    _, _, _, _, info = env.step(format_plan(query.annotated_plan))
    runs = [Trajectory("tp", "0", verdicts=info[InfoKeys.VERDICTS]), Trajectory("tp", "1")]
    metrics = benchmark_metrics(env, runs)
    assert metrics["strict"]["commonsense_micro"] == 0.5
    lines = benchmark_lines(metrics)
    assert lines[2].startswith("  strict: delivery_rate 0.500, commonsense_micro 0.500")
    assert benchmark_metrics(gym.make("agentgym/Calculator-v0"), runs) is None


def test_test_split_queries_run_but_are_not_judged(query):
    env = _fixture_env(queries_file=str(FIXTURES / "test.jsonl"), split="test")
    observation, _ = env.reset(options={"task_index": 0})
    assert "[0] Flight from Chicago to Denver on 2022-03-10" in observation
    _, reward, terminated, _, info = env.step(format_plan(query.annotated_plan))
    assert terminated and reward == 0.0 and not info[InfoKeys.SUCCESS]
    assert info[InfoKeys.VERDICTS] == {"judged": False, "delivered": True}
    assert info[InfoKeys.FEEDBACK].startswith("Not judged")
    assert env.unwrapped.benchmark_metrics([info[InfoKeys.VERDICTS]])["not_judged"] == 1


# ------------------------------------------------------------------------ flight table --


def _write_flights(path, rows):
    header = ",Flight Number,Price,DepTime,ArrTime,ActualElapsedTime,FlightDate,OriginCityName,"
    header += "DestCityName,Distance\n"
    path.write_text(header + "".join(f"{i},{row}\n" for i, row in enumerate(rows)))
    return path


def test_flight_lookups_keep_file_order_and_any_number_width(tmp_path):
    path = _write_flights(
        tmp_path / "flights.csv",
        [
            "F22,300,10:00,11:00,1 hours 0 minutes,2022-03-02,A,B,100.0",
            "F1,120.5,09:00,10:00,1 hours 0 minutes,2022-03-02,A,B,100.0",
            "F333333333,99,08:00,09:00,1 hours 0 minutes,2022-03-03,B,A,100.0",
            "F1,80,07:00,08:00,1 hours 0 minutes,2022-03-04,C,A,50.0",
            "F4,NA,07:00,08:00,1 hours 0 minutes,2022-03-04,C,A,50.0",
        ],
    )
    flights = load_flights(path)
    assert [f.number for f in flights.search("A", "B", "2022-03-02")] == ["F22", "F1"]
    assert [f.price for f in flights.with_number("F1")] == [120.5, 80]
    assert flights.get("F1").date == "2022-03-02" and flights.get("F4") is None
    assert flights.get("F333333333").origin == "B" and flights.get("F3333333331") is None
    assert flights.search("A", "B", "2022-03-05") == () and flights.search("Z", "B", "x") == ()
    assert flights.cities == ("A", "B", "C") and len(flights) == 4
    empty = load_flights(_write_flights(tmp_path / "empty.csv", []))
    assert len(empty) == 0 and empty.search("A", "B", "2022-03-02") == ()
    bad = tmp_path / "bad.csv"
    bad.write_text("Flight Number,Price\nF1,10\n")
    with pytest.raises(ValueError, match="lacks the column"):
        load_flights(bad)


def test_flight_cache_is_built_once_and_memory_mapped(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "clean_Flights_2022.csv"
    path.write_bytes(FLIGHTS.read_bytes())
    built = load_flights(path, cache=True)
    target = flight_cache_dir(path)
    assert (target / "done").exists() and str(tmp_path / "cache") in str(target)

    def no_parsing(*args, **kwargs):
        raise AssertionError("the cached columns should have been loaded")

    query = ("Chicago", "Denver", "2022-03-10")
    in_memory = load_flights(FLIGHTS).search(*query)
    monkeypatch.setattr(ColumnarFlights, "from_csv", no_parsing)
    cached = load_flights(path, cache=True)
    assert isinstance(cached._arrays["trip_keys"].base, np.memmap)
    assert cached.search(*query) == built.search(*query) == in_memory
    assert [f.number for f in in_memory] == ["F3502691", "F3502692"]
    # An edited file is a different file: new cache entry.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert flight_cache_dir(path) != target


def test_unwritable_flight_cache_falls_back_to_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("AGENTGYM_CACHE", str(blocker))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flights = load_flights(FLIGHTS, cache=True)
    assert len(flights) == 6 and any("not usable" in str(w.message) for w in caught)
