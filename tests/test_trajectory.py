"""Tests for the trajectory data model and the crash-safe JSONL TrajectoryStore."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agentgym.core.trajectory as trajectory_module
from agentgym.core.trajectory import Message, Step, Trajectory, TrajectoryStore

LOGGER_NAME = trajectory_module.__name__


def make_trajectory(index: int, *, content_size: int = 40) -> Trajectory:
    """A typical 10-message, 4-step trajectory with a deterministic id."""
    messages = [Message("system", "You are an agent."), Message("user", f"Task number {index}")]
    steps = []
    for turn in range(4):
        messages.append(
            Message(
                "assistant",
                f"think {turn} " + "x" * content_size,
                trainable=True,
                token_ids=list(range(turn, turn + 8)),
                logprobs=[-0.5] * 8,
            )
        )
        messages.append(Message("user", f"observation {turn}"))
        steps.append(Step(action=f"act {turn}", observation=f"observation {turn}", reward=0.25))
    return Trajectory(
        env_id="toy-v0",
        task_id=f"task-{index % 7}",
        messages=messages,
        steps=steps,
        id=f"traj-{index:08d}",
        episode_seed=index,
        reward=1.0,
        success=True,
        terminated=True,
        created_at=1_700_000_000.0 + index,
    )


def full_trajectory() -> Trajectory:
    """A trajectory with every field set, unicode text and nested free-form dicts."""
    tool_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "search", "arguments": '{"q": "café"}'},
    }
    return Trajectory(
        env_id="web-v1",
        task_id="täsk-東京",
        messages=[
            Message("system", "Rules:\nbe nice"),
            Message("user", "Find 🍣 in 東京 \u2028 (line separator) and a tab\t."),
            Message(
                "assistant",
                "",
                trainable=True,
                tool_calls=[tool_call],
                token_ids=[101, 7, 8],
                logprobs=[-0.1, -2.5, 0.0],
            ),
            Message("tool", '{"results": ["Sushi Dai"]}', tool_call_id="call_1", name="search"),
        ],
        steps=[
            Step(
                action="search(🍣)",
                observation="Sushi Dai",
                reward=0.5,
                truncated=False,
                action_valid=True,
                feedback="good query",
                progress=0.5,
                info={"latency_s": 0.25, "tags": ["a", "ü"], "nested": {"k": None}},
            ),
            Step(action="???", observation="", reward=-1.0, action_valid=False, terminated=True),
        ],
        id="fixed-id",
        episode_seed=2**40,
        env_kwargs={"max_steps": 10, "difficulty": "hard"},
        policy="qwen-0.5b@step100",
        iteration=3,
        parent_id="parent-id",
        restart_step=2,
        reward=-0.5,
        success=False,
        terminated=True,
        truncated=False,
        truncation_reason=None,
        verdicts={"judge": {"score": 0.2, "reason": "wrong shop"}},
        feedback="Close, but wrong shop.",
        error=None,
        metadata={"run": "abc", "tokens": 1234},
        created_at=1_712_345_678.123456,
    )


# ------------------------------------------------------------------ data model


def test_message_to_dict_omits_none_fields_but_keeps_required_ones():
    message = Message("user", "hi")
    assert message.to_dict() == {"role": "user", "content": "hi", "trainable": False}
    assert Message.from_dict(message.to_dict()) == message


def test_message_round_trip_with_every_field():
    message = full_trajectory().messages[2]
    data = message.to_dict()
    assert set(data) == {"role", "content", "trainable", "tool_calls", "token_ids", "logprobs"}
    assert Message.from_dict(data) == message
    data["tool_calls"][0]["id"] = "mutated"
    assert message.tool_calls[0]["id"] == "call_1", "to_dict must not alias nested data"


def test_unknown_role_is_rejected_with_the_valid_roles_listed():
    with pytest.raises(ValueError, match=r"'robot'.*system, user, assistant, tool"):
        Message.from_dict({"role": "robot", "content": "beep"})
    with pytest.raises(ValueError, match="valid roles"):
        Message("developer", "x")  # type: ignore[arg-type]


def test_message_unknown_and_missing_keys_are_rejected():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['extra'\]"):
        Message.from_dict({"role": "user", "content": "x", "extra": 1})
    with pytest.raises(ValueError, match=r"missing required key\(s\) \['content'\]"):
        Message.from_dict({"role": "user"})
    with pytest.raises(TypeError, match="expects a dict"):
        Message.from_dict(["user", "x"])  # type: ignore[arg-type]


def test_step_round_trip_and_unknown_keys():
    step = full_trajectory().steps[0]
    assert Step.from_dict(step.to_dict()) == step
    assert Step.from_dict(Step("a", "o", 0.0).to_dict()).progress is None
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['done'\]"):
        Step.from_dict({"action": "a", "observation": "o", "reward": 0.0, "done": True})


def test_trajectory_dict_and_json_round_trip_exactly():
    trajectory = full_trajectory()
    data = trajectory.to_dict()
    assert Trajectory.from_dict(data) == trajectory
    assert Trajectory.from_dict(data).to_dict() == data

    line = trajectory.to_json()
    assert "\n" not in line, "a record must be one line"
    assert "東京" in line and "🍣" in line, "ensure_ascii=False keeps text readable"
    assert ", " not in line.replace("Close, but", ""), "compact separators"
    assert Trajectory.from_json(line) == trajectory
    assert Trajectory.from_json(line.encode("utf-8")) == trajectory
    assert json.loads(line) == data


def test_trajectory_none_fields_survive_round_trip():
    trajectory = Trajectory("e", "t")
    restored = Trajectory.from_json(trajectory.to_json())
    assert restored == trajectory
    assert restored.success is None and restored.episode_seed is None and restored.error is None


def test_trajectory_unknown_top_level_keys_are_named():
    data = full_trajectory().to_dict()
    data["score"] = 1
    data["old_field"] = 2
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['old_field', 'score'\]"):
        Trajectory.from_dict(data)


def test_trajectory_nested_errors_propagate():
    data = full_trajectory().to_dict()
    data["messages"][0]["role"] = "narrator"
    with pytest.raises(ValueError, match="narrator"):
        Trajectory.from_dict(data)


def test_trajectory_missing_optional_keys_take_defaults():
    restored = Trajectory.from_dict({"env_id": "e", "task_id": "t", "id": "x"})
    assert restored.messages == [] and restored.steps == [] and restored.reward == 0.0
    with pytest.raises(ValueError, match="task_id"):
        Trajectory.from_dict({"env_id": "e"})


def test_trajectory_properties():
    trajectory = full_trajectory()
    assert trajectory.actions == ["search(🍣)", "???"]
    assert trajectory.num_steps == 2
    assert trajectory.trainable_messages == [trajectory.messages[2]]


def test_trajectory_defaults_are_unique_and_independent():
    first, second = Trajectory("e", "t"), Trajectory("e", "t")
    assert first.id != second.id
    first.metadata["x"] = 1
    assert second.metadata == {}
    data = first.to_dict()
    data["metadata"]["x"] = 2
    assert first.metadata == {"x": 1}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
messages_strategy = st.builds(
    Message,
    role=st.sampled_from(["system", "user", "assistant", "tool"]),
    content=st.text(),
    trainable=st.booleans(),
    tool_call_id=st.none() | st.text(max_size=5),
    name=st.none() | st.text(max_size=5),
    token_ids=st.none() | st.lists(st.integers(0, 200_000), max_size=5),
    logprobs=st.none() | st.lists(st.floats(max_value=0.0, allow_nan=False), max_size=5),
)
steps_strategy = st.builds(
    Step,
    action=st.text(),
    observation=st.text(),
    reward=st.floats(allow_nan=False, allow_infinity=False),
    progress=st.none() | st.floats(0.0, 1.0),
    info=st.dictionaries(st.text(max_size=5), json_values, max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(messages_strategy, max_size=4),
    steps=st.lists(steps_strategy, max_size=3),
    metadata=st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    success=st.none() | st.booleans(),
)
def test_json_round_trip_property(messages, steps, metadata, success):
    trajectory = Trajectory(
        "env", "task", messages=messages, steps=steps, metadata=metadata, success=success
    )
    line = trajectory.to_json()
    assert "\n" not in line
    assert Trajectory.from_json(line) == trajectory


# ------------------------------------------------------------------ store basics


def test_append_and_reopen(tmp_path):
    path = tmp_path / "deep" / "dir" / "trajectories.jsonl"
    with TrajectoryStore(path) as store:
        assert store.path == path and len(store) == 0
        assert store.append([make_trajectory(0), make_trajectory(1)]) == 2
        assert store.append(make_trajectory(2)) == 1
        assert store.append([]) == 0
        assert len(store) == 3 and "traj-00000001" in store and "nope" not in store
        assert store.ids == frozenset({"traj-00000000", "traj-00000001", "traj-00000002"})

    with TrajectoryStore(path) as store:
        assert len(store) == 3
        assert store.read() == [make_trajectory(0), make_trajectory(1), make_trajectory(2)]
        assert [t.id for t in store] == sorted(store.ids)
        store.append(full_trajectory())
    reopened = TrajectoryStore(path, readonly=True)
    assert reopened.read()[-1] == full_trajectory()
    assert path.read_bytes().count(b"\n") == 4


def test_duplicate_ids_are_skipped_within_a_call_and_across_reopen(tmp_path):
    path = tmp_path / "t.jsonl"
    with TrajectoryStore(path) as store:
        assert store.append([make_trajectory(0), make_trajectory(1), make_trajectory(0)]) == 2
        assert store.append(make_trajectory(1)) == 0
    with TrajectoryStore(path) as store:
        assert store.append([make_trajectory(i) for i in range(4)]) == 2
        assert len(store) == 4
    assert path.read_bytes().count(b"\n") == 4


def test_append_that_fails_to_encode_leaves_the_store_unchanged(tmp_path):
    path = tmp_path / "t.jsonl"
    bad = make_trajectory(1)
    bad.metadata["not_json"] = object()
    with TrajectoryStore(path) as store:
        store.append(make_trajectory(0))
        size = path.stat().st_size
        with pytest.raises(TypeError):
            store.append([make_trajectory(2), bad])
        assert path.stat().st_size == size and len(store) == 1
        assert store.append(make_trajectory(2)) == 1


def test_lone_surrogates_are_stored_and_round_trip(tmp_path):
    trajectory = Trajectory("e", "t", messages=[Message("assistant", "half \ud83d char")])
    with TrajectoryStore(tmp_path / "t.jsonl", fsync=False) as store:
        store.append(trajectory)
        assert store.read() == [trajectory]


def test_closed_and_readonly_stores_refuse_writes(tmp_path):
    path = tmp_path / "t.jsonl"
    store = TrajectoryStore(path)
    store.append(make_trajectory(0))
    store.close()
    store.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        store.append(make_trajectory(1))
    with pytest.raises(ValueError, match="closed"):
        list(store)
    reader = TrajectoryStore(path, readonly=True)
    with pytest.raises(PermissionError, match="readonly"):
        reader.append(make_trajectory(1))


# ------------------------------------------------------------------ crash recovery


def test_torn_tail_is_moved_to_torn_file_and_truncated(tmp_path, caplog):
    path = tmp_path / "t.jsonl"
    with TrajectoryStore(path) as store:
        store.append([make_trajectory(0), make_trajectory(1)])
    good_size = path.stat().st_size
    partial = make_trajectory(2).to_json().encode()[:57]
    with open(path, "ab") as file:
        file.write(partial)

    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        store = TrajectoryStore(path)
    assert "torn" in caplog.text and str(path) in caplog.text
    assert path.stat().st_size == good_size
    assert Path(f"{path}.torn").read_bytes() == partial + b"\n"
    assert len(store) == 2
    assert store.append([make_trajectory(i) for i in range(4)]) == 2
    store.close()
    assert [t.id for t in TrajectoryStore(path, readonly=True)] == [
        make_trajectory(i).id for i in range(4)
    ]


def test_complete_but_invalid_final_line_is_also_repaired(tmp_path, caplog):
    path = tmp_path / "t.jsonl"
    with TrajectoryStore(path) as store:
        store.append(make_trajectory(0))
    good_size = path.stat().st_size
    # What a crash can leave behind on some filesystems: zero-filled blocks.
    with open(path, "ab") as file:
        file.write(b"\x00" * 100 + b"\n" + b'{"env_id": "e", "ta')
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        store = TrajectoryStore(path)
    assert path.stat().st_size == good_size and len(store) == 1
    assert Path(f"{path}.torn").read_bytes() == b"\x00" * 100 + b'\n{"env_id": "e", "ta\n'
    store.close()


def test_repeated_repairs_append_to_the_torn_file(tmp_path):
    path = tmp_path / "t.jsonl"
    for piece in (b'{"id": "a"', b'{"id": "b"'):
        TrajectoryStore(path).close()
        with open(path, "ab") as file:
            file.write(piece)
    TrajectoryStore(path).close()
    assert Path(f"{path}.torn").read_bytes() == b'{"id": "a"\n{"id": "b"\n'
    assert path.stat().st_size == 0


def test_invalid_middle_line_is_kept_and_skipped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "t.jsonl"
    with TrajectoryStore(path) as store:
        store.append(make_trajectory(0))
    with open(path, "ab") as file:
        file.write(b"this is not json\n")
        file.write(b"[1, 2]\n")  # valid JSON, but not a record
        file.write(make_trajectory(1).to_json().encode() + b"\n")
    content_before = path.read_bytes()

    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        store = TrajectoryStore(path)
    assert f"{path}:2:" in caplog.text and f"{path}:3:" in caplog.text
    assert [t.id for t in store] == [make_trajectory(0).id, make_trajectory(1).id]
    assert len(store) == 2
    assert path.read_bytes() == content_before, "mid-file damage must not be deleted"
    assert not Path(f"{path}.torn").exists()
    store.close()


def test_duplicate_lines_written_by_hand_are_served_once(tmp_path, caplog):
    path = tmp_path / "t.jsonl"
    line = make_trajectory(0).to_json() + "\n"
    path.write_text(line + line + make_trajectory(1).to_json() + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        store = TrajectoryStore(path, readonly=True)
    assert "duplicate trajectory id" in caplog.text
    assert [t.id for t in store] == [make_trajectory(0).id, make_trajectory(1).id]
    assert len(store) == 2


def test_schema_drift_in_a_stored_record_is_reported_with_its_line(tmp_path):
    path = tmp_path / "t.jsonl"
    record = make_trajectory(0).to_dict()
    record["renamed_field"] = 1
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    store = TrajectoryStore(path, readonly=True)
    with pytest.raises(ValueError, match=r"t\.jsonl:1: .*\['renamed_field'\]"):
        store.read()


# ------------------------------------------------------------------ locking and readers


def test_second_writer_is_refused_until_the_first_closes(tmp_path):
    path = tmp_path / "t.jsonl"
    first = TrajectoryStore(path)
    with pytest.raises(RuntimeError, match="another process") as excinfo:
        TrajectoryStore(path)
    assert f"{path}.lock" in str(excinfo.value)
    first.append(make_trajectory(0))  # the refused open must not disturb the holder
    first.close()
    with TrajectoryStore(path) as second:
        assert len(second) == 1


def test_readonly_reader_takes_no_lock_repairs_nothing_and_sees_a_snapshot(tmp_path, caplog):
    path = tmp_path / "t.jsonl"
    with pytest.raises(FileNotFoundError):
        TrajectoryStore(path, readonly=True)
    assert not path.exists(), "a reader must not create the store"

    writer = TrajectoryStore(path)
    writer.append([make_trajectory(0), make_trajectory(1)])
    with open(path, "ab") as file:  # simulate a writer caught mid-append
        file.write(b'{"env_id": "toy')
    torn_size = path.stat().st_size

    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        reader = TrajectoryStore(path, readonly=True)
    assert "incomplete final line" in caplog.text
    assert len(reader) == 2 and [t.id for t in reader] == [
        make_trajectory(0).id,
        make_trajectory(1).id,
    ]
    assert path.stat().st_size == torn_size and not Path(f"{path}.torn").exists()
    writer.close()


def test_readonly_snapshot_ignores_records_appended_after_opening(tmp_path):
    path = tmp_path / "t.jsonl"
    with TrajectoryStore(path) as writer:
        writer.append(make_trajectory(0))
        reader = TrajectoryStore(path, readonly=True)
        writer.append(make_trajectory(1))
        assert len(reader) == 1 and len(reader.read()) == 1
        assert len(TrajectoryStore(path, readonly=True)) == 2


# ------------------------------------------------------------------ datasets export


def test_to_dataset_has_a_fixed_schema_and_the_right_values(tmp_path):
    path = tmp_path / "t.jsonl"
    first = full_trajectory()
    second = make_trajectory(5)
    second.metadata = {"different": ["keys", 1]}
    second.verdicts = {"judge": 1}
    with TrajectoryStore(path) as store:
        empty = store.to_dataset()
        store.append([first, second])
        dataset = store.to_dataset()

    expected_columns = {
        "id", "env_id", "task_id", "policy", "iteration", "parent_id", "restart_step",
        "reward", "success", "terminated", "truncated", "truncation_reason", "episode_seed",
        "num_steps", "feedback", "error", "created_at", "messages", "steps", "env_kwargs",
        "verdicts", "metadata",
    }  # fmt: skip
    assert set(dataset.column_names) == expected_columns
    assert len(empty) == 0 and empty.features == dataset.features
    assert dataset.features["messages"].feature["trainable"].dtype == "bool"
    assert dataset.features["episode_seed"].dtype == "int64"

    row = dataset[0]
    assert row["id"] == "fixed-id" and row["task_id"] == "täsk-東京"
    assert row["episode_seed"] == 2**40 and row["iteration"] == 3 and row["restart_step"] == 2
    assert row["reward"] == -0.5 and row["success"] is False and row["num_steps"] == 2
    assert row["truncation_reason"] is None and row["error"] is None
    assert row["created_at"] == first.created_at
    assert row["messages"][2] == {"role": "assistant", "content": "", "trainable": True}
    assert len(row["messages"]) == 4
    assert json.loads(row["verdicts"]) == first.verdicts
    assert json.loads(row["env_kwargs"]) == first.env_kwargs
    assert [Step.from_dict(step) for step in json.loads(row["steps"])] == first.steps
    assert json.loads(dataset[1]["metadata"]) == {"different": ["keys", 1]}
    assert dataset[1]["iteration"] is None and dataset[1]["success"] is True


# ------------------------------------------------------------------ kill -9 crash safety

# The child loads the module from its file so that its start-up time does not depend on
# what the package's __init__ imports. It appends batches with deterministic ids forever,
# like a trainer that is resumed after every crash. With a tear-after count it instead
# simulates the worst moment for a kill: half-way through the os.write of a batch.
CHILD_CODE = textwrap.dedent(
    """
    import importlib.util, os, signal, sys
    spec = importlib.util.spec_from_file_location("trajectory_under_test", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    path, tear_after = sys.argv[2], int(sys.argv[3])

    def make(index):
        messages = [module.Message("user", f"task {index}")]
        messages += [
            module.Message("assistant", "y" * 1000, trainable=True, token_ids=list(range(200)))
            for _ in range(9)
        ]
        return module.Trajectory("toy-v0", "t", messages=messages, id=f"traj-{index:08d}")

    real_write = os.write
    def torn_write(fd, data):
        real_write(fd, data[: len(data) // 2 + 5000])  # ends inside a record
        os.kill(os.getpid(), signal.SIGKILL)

    store = module.TrajectoryStore(path, fsync=False)
    print("opened", len(store), flush=True)
    index = batches = 0
    while True:
        if batches == tear_after:
            module.os.write = torn_write
        store.append([make(index + offset) for offset in range(16)])
        index += 16
        batches += 1
    """
)


def run_child_until_killed(path: Path, *, grow_by: int, tear_after: int = -1) -> None:
    """Start the appending child, SIGKILL it once the file has grown by ``grow_by`` bytes."""
    start_size = path.stat().st_size if path.exists() else 0
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_CODE, trajectory_module.__file__, str(path), str(tear_after)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while child.poll() is None:
            if path.exists() and path.stat().st_size >= start_size + grow_by:
                break
            assert time.monotonic() < deadline, "child made no progress"
            time.sleep(0.001)
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        _, stderr = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    # Only death by SIGKILL is expected; anything else is a bug in the child or the store.
    assert child.returncode == -signal.SIGKILL, stderr.decode(errors="replace")


def assert_store_is_a_clean_prefix(path: Path) -> int:
    """Reopen (repairing), check every line and record, and return the record count."""
    with TrajectoryStore(path) as store:
        records = store.read()
        count = len(records)
        assert count == len(store) == len({t.id for t in records}), "duplicate records"
        # Batches are written in order, so the survivors are exactly ids 0..count-1.
        assert [t.id for t in records] == [f"traj-{i:08d}" for i in range(count)]
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n")
    for line in raw.splitlines():
        json.loads(line)
    return count


def test_store_survives_sigkill_at_arbitrary_moments(tmp_path):
    path = tmp_path / "crash" / "t.jsonl"
    counts = []
    # Different growth targets land the kill at different points of the append loop; in
    # the last round the child tears its 9th append itself (the parent never kills it).
    for grow_by, tear_after in [(300_000, -1), (1_000_000, -1), (50_000, -1), (10**12, 8)]:
        run_child_until_killed(path, grow_by=grow_by, tear_after=tear_after)
        counts.append(assert_store_is_a_clean_prefix(path))
    assert counts[0] > 0
    assert counts == sorted(counts), "a resumed run must never lose records"
    assert Path(f"{path}.torn").exists(), "the deliberately torn write must have been saved"

    count = counts[-1]
    with TrajectoryStore(path) as store:
        replay = [Trajectory("toy-v0", "t", id=f"traj-{i:08d}") for i in range(count)]
        assert store.append(replay) == 0
        fresh = [Trajectory("toy-v0", "t", id=f"traj-{i:08d}") for i in range(count, count + 5)]
        assert store.append(fresh) == 5
    assert assert_store_is_a_clean_prefix(path) == count + 5
