"""The viewer's index: rows read without parsing whole records, live refresh, filters, search."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentgym.core.trajectory import Message, Step, Trajectory, TrajectoryStore
from agentgym.view.index import RunIndex, find_stores, summary_fast, summary_from_record
from agentgym.view.query import EpisodeQuery, QueryError

# ----------------------------------------------------------------------------- the fast path

# Keys that also occur in a record's structure: nested dicts that use them must not fool the
# head/tail reading (it either agrees with a full parse or declines).
_TRICKY_KEYS = st.sampled_from(["id", "steps", "action", "role", "content", "messages", "x"])
_TEXT = st.text(max_size=30) | st.sampled_from(['],"id":"x', '{"action":"a"}', '"]}', "\\"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(_TRICKY_KEYS | _TEXT, inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


@st.composite
def trajectories(draw: st.DrawFn) -> Trajectory:
    roles = st.sampled_from(["system", "user", "assistant", "tool"])
    messages = [
        Message(draw(roles), draw(_TEXT), trainable=draw(st.booleans()),
                token_ids=draw(st.none() | st.lists(st.integers(0, 99), max_size=4)))
        for _ in range(draw(st.integers(0, 4)))
    ]  # fmt: skip
    steps = [
        Step(draw(_TEXT), draw(_TEXT), draw(st.floats(-2, 2)), feedback=draw(_TEXT),
             info=draw(st.dictionaries(_TRICKY_KEYS, _JSON, max_size=3)))
        for _ in range(draw(st.integers(0, 4)))
    ]  # fmt: skip
    return Trajectory(
        env_id=draw(_TEXT), task_id=draw(_TEXT), messages=messages, steps=steps,
        id=draw(_TEXT), policy=draw(_TEXT), iteration=draw(st.none() | st.integers(0, 9)),
        parent_id=draw(st.none() | _TEXT), restart_step=draw(st.none() | st.integers(0, 9)),
        reward=draw(st.floats(-5, 5)), success=draw(st.none() | st.booleans()),
        truncated=draw(st.booleans()), truncation_reason=draw(st.none() | _TEXT),
        verdicts=draw(st.dictionaries(_TRICKY_KEYS | _TEXT, _JSON, max_size=3)),
        feedback=draw(_TEXT), error=draw(st.none() | _TEXT),
        metadata=draw(st.dictionaries(_TRICKY_KEYS, _JSON, max_size=2)
                      | st.fixed_dictionaries({"task": st.dictionaries(
                          st.sampled_from(["difficulty", "category"]), _TEXT)})),
        created_at=draw(st.floats(0, 2e9)),
    )  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trajectories())
def test_fast_row_agrees_with_a_full_parse_or_declines(trajectory: Trajectory) -> None:
    line = trajectory.to_json().encode()
    full = summary_from_record(json.loads(line))
    fast = summary_fast(line)
    assert full is not None
    assert fast is None or fast == full
    assert full["num_steps"] == trajectory.num_steps
    assert full["reward"] == trajectory.reward


def test_fast_path_reads_ordinary_records_and_declines_other_shapes() -> None:
    trajectory = Trajectory(
        "calc-v0", "t-1", id="a", messages=[Message("user", 'What is "2" + 2?')],
        steps=[Step("add", "4", 1.0), Step("done", "ok", 0.0)], metadata={"task": {
            "difficulty": "easy", "category": "base"}}, success=True,
    )  # fmt: skip
    fast = summary_fast(trajectory.to_json().encode())
    assert fast is not None
    assert (fast["num_steps"], fast["prompt"], fast["difficulty"], fast["category"]) == (
        2, 'What is "2" + 2?', "easy", "base",
    )  # fmt: skip
    # Another writer's key order or spacing: the fast path declines, the full parse reads it.
    reordered = json.dumps({"id": "a", **trajectory.to_dict()}).encode()
    assert summary_fast(reordered) is None
    assert summary_from_record(json.loads(reordered))["num_steps"] == 2


# ----------------------------------------------------------------------------- the index


def _episode(i: int, **fields: object) -> Trajectory:
    values: dict = {
        "env_id": "agentgym/Calculator-v0", "task_id": f"task-{i % 3}", "id": f"ep-{i}",
        "messages": [Message("user", f"Question {i}"), Message("assistant", f"Answer {i}")],
        "steps": [Step(f"Answer {i}", "ok", float(i % 2), terminated=True)],
        "reward": float(i % 2), "success": bool(i % 2), "iteration": i // 4, "policy": "hf",
        "created_at": 1000.0 + i, "metadata": {"task": {"difficulty": ["easy", "hard"][i % 2]}},
    }  # fmt: skip
    values.update(fields)
    return Trajectory(**values)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    with TrajectoryStore(tmp_path / "trajectories" / "collect-1.jsonl") as store:
        store.append([_episode(i) for i in range(8)])
    with TrajectoryStore(tmp_path / "trajectories" / "eval-1.jsonl") as store:
        store.append([
            _episode(100, error="ValueError: boom", success=None, reward=0.0),
            _episode(101, truncated=True, truncation_reason="max_turns", success=False),
            _episode(102, parent_id="ep-0", restart_step=1),
            _episode(103, parent_id="ep-0", restart_step=0, success=False, reward=0.0),
            _episode(104, parent_id="ep-102", restart_step=2),
        ])  # fmt: skip
    return tmp_path


def _ids(index: RunIndex, **query: object) -> list[str]:
    return [row.id for row in index.select(EpisodeQuery(**query, per_page=1000)).rows]


def test_filters_sorting_and_paging(run: Path) -> None:
    index = RunIndex(run)
    assert len(index) == 13 and index.store_names == ["collect-1", "eval-1"]
    assert _ids(index, phase="eval-1") == [f"ep-{i}" for i in range(100, 105)]
    assert _ids(index, phase="no-such-phase") == []
    assert _ids(index, iteration="1", phase="collect-1") == ["ep-4", "ep-5", "ep-6", "ep-7"]
    assert _ids(index, outcome="error") == ["ep-100"]
    assert _ids(index, outcome="truncated") == ["ep-101"]
    assert _ids(index, success="yes", phase="collect-1") == ["ep-1", "ep-3", "ep-5", "ep-7"]
    assert _ids(index, success="unknown") == ["ep-100"]
    assert _ids(index, reward_min=0.5, reward_max=1.0, phase="collect-1", difficulty="hard") == [
        "ep-1", "ep-3", "ep-5", "ep-7",
    ]  # fmt: skip
    assert _ids(index, task="TASK-2", phase="collect-1") == ["ep-2", "ep-5"]
    # Only ep-101 has reward 1; ties keep the index order in both directions.
    assert _ids(index, sort="reward", order="desc", phase="eval-1") == [
        "ep-101", "ep-100", "ep-102", "ep-103", "ep-104",
    ]  # fmt: skip
    page = index.select(EpisodeQuery(per_page=5, page=3))
    assert (page.total, page.pages) == (13, 3)
    assert [row.id for row in page.rows] == ["ep-102", "ep-103", "ep-104"]
    assert index.select(EpisodeQuery(per_page=5, page=99)).page == 3  # clamped to the last page


def test_free_text_search_reads_the_records(run: Path) -> None:
    index = RunIndex(run)
    # Message text is not in the rows: the search scans the store files.
    assert _ids(index, q="answer 7") == ["ep-7"]
    assert _ids(index, q="VALUEERROR: BOOM") == ["ep-100"]
    assert _ids(index, q="Question 10") == [f"ep-{i}" for i in range(100, 105)]
    assert _ids(index, q="no such text anywhere") == []


def test_query_errors_list_every_problem() -> None:
    with pytest.raises(QueryError) as error:
        EpisodeQuery.from_params({"reward_max": "x", "outcome": "great", "iteration": "-1",
                                  "page": "two", "order": "up"})  # fmt: skip
    message = str(error.value)
    for part in ("reward_max='x'", "outcome='great'", "iteration='-1'", "page='two'", "order='up'"):
        assert part in message
    query = EpisodeQuery.from_params({"phase": "eval-1", "per_page": "100000", "iteration": "none"})
    assert query.per_page == 1000 and query.iteration == "none" and query.filtered


def test_restarts_same_task_and_store_statistics(run: Path) -> None:
    index = RunIndex(run)
    assert [row.id for row in index.children("ep-0")] == ["ep-103", "ep-102"]  # by restart step
    roots = index.restart_roots()
    assert [(pid, row.id if row else None) for pid, row in roots] == [("ep-0", "ep-0")]
    ep1 = index.find("collect-1", "ep-1")
    assert ep1 is not None
    assert {row.id for row in index.same_task(ep1)} == {"ep-4", "ep-7", "ep-100", "ep-103"}
    stats = {entry["name"]: entry for entry in index.store_stats()}
    assert stats["collect-1"]["episodes"] == 8 and stats["collect-1"]["success_rate"] == 0.5
    assert math.isclose(stats["eval-1"]["mean_reward"], 1 / 5)


def test_refresh_reads_appended_records_and_waits_for_whole_lines(run: Path) -> None:
    index = RunIndex(run)
    path = run / "trajectories" / "collect-1.jsonl"
    line = _episode(8).to_json().encode() + b"\n"
    with open(path, "ab") as file:  # a writer in the middle of an append
        file.write(line[:50])
    assert not index.refresh() and len(index) == 13
    with open(path, "ab") as file:
        file.write(line[50:])
    assert index.refresh() and index.find("collect-1", "ep-8") is not None
    # A store that appears while the run goes on is picked up too.
    with TrajectoryStore(run / "trajectories" / "eval-2.jsonl") as store:
        store.append(_episode(200))
    version = index.version
    assert index.refresh() and index.store_names[-1] == "eval-2" and index.version != version
    assert index.read(index.find("eval-2", "ep-200")).messages[0].content == "Question 200"


def test_bad_lines_duplicates_and_replaced_files(run: Path) -> None:
    path = run / "trajectories" / "collect-1.jsonl"
    # Shaped like a record, but "\\x" is no JSON escape: neither reading may crash.
    broken = _episode(50).to_json().replace('"Question 50"', '"Question \\x50"')
    with open(path, "ab") as file:
        file.write(b"this is not json\n")
        file.write(_episode(0).to_json().encode() + b"\n")  # a duplicate id
        file.write(broken.encode() + b"\n")
    index = RunIndex(run)
    assert len(index) == 13
    problems = " ".join(index.problems())
    assert "lines 9, 11 are not trajectory records" in problems and "1 duplicate id" in problems
    # The bad line holds the text, but it is no episode: the search does not report it.
    assert _ids(index, q="this is not json") == []
    # A store replaced by a shorter file (rewritten by hand) is read again from the start.
    os.replace(run / "trajectories" / "eval-1.jsonl", path)
    index.refresh()
    assert [row.id for row in index.rows if index.store_of(row) == "collect-1"] == [
        f"ep-{i}" for i in range(100, 105)
    ]


def test_a_single_store_file_and_where_stores_are_looked_for(run: Path, tmp_path: Path) -> None:
    path = run / "trajectories" / "eval-1.jsonl"
    assert find_stores(path) == [("eval-1", path)]
    assert len(RunIndex(path)) == 5
    # `agentgym rollout` and `eval` keep one trajectories.jsonl at the top of their run dir.
    rollout = tmp_path / "rollout"
    with TrajectoryStore(rollout / "trajectories.jsonl") as store:
        store.append(_episode(1))
    assert find_stores(rollout) == [("trajectories", rollout / "trajectories.jsonl")]
    with pytest.raises(FileNotFoundError):
        RunIndex(tmp_path / "missing")
