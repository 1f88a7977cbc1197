"""The run directory: resume ledger, crash safety (real SIGKILLs), configs, checkpoints, reports."""

from __future__ import annotations

import collections
import importlib.abc
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import ClassVar

import pytest
from omegaconf import OmegaConf

from agentgym.core.trajectory import Trajectory
from agentgym.evaluation import summarize
from agentgym.trainers.run import (
    CHECKPOINT_MARKER,
    ConfigMismatchError,
    RunDir,
    RunDirBusyError,
    completed_phases,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _open(path: Path, **kwargs) -> RunDir:
    return RunDir(path, tensorboard=kwargs.pop("tensorboard", False), **kwargs)


def _steps(run: RunDir) -> collections.Counter:
    return collections.Counter(record["step"] for record in run.metrics())


# ------------------------------------------------------------------ phase ledger


def test_ledger_round_trip_and_resume(tmp_path: Path) -> None:
    with _open(tmp_path) as run:
        run.mark_done("rollout", 0, {"episodes": 8, "ci": (0.1, 0.9)})
        run.mark_done("train", 0)
        run.mark_done("rollout", 1, {"episodes": 8})
        run.mark_done("rollout", 1, {"episodes": 999})  # already done: ignored
        assert run.result("rollout", 0) == {"episodes": 8, "ci": [0.1, 0.9]}  # as reloaded
    with _open(tmp_path) as run:
        assert run.done("rollout", 0) and run.done("train", 0) and run.done("rollout", 1)
        assert not run.done("train", 1)
        assert run.result("rollout", 1) == {"episodes": 8}
        assert run.result("train", 0) == {}
        assert run.result("train", 1) is None
        assert run.last_iteration("rollout") == 1 and run.last_iteration("eval") is None
        assert [(r["phase"], r["iteration"]) for r in run.ledger()] == [
            ("rollout", 0), ("train", 0), ("rollout", 1)]  # fmt: skip
    lines = (tmp_path / "ledger.jsonl").read_text().splitlines()
    assert len(lines) == 3
    assert {"phase", "iteration", "result", "time"} <= set(json.loads(lines[0]))


def test_completed_phases_reads_a_live_run_up_to_its_last_commit(tmp_path: Path) -> None:
    assert completed_phases(tmp_path / "not-started") == []
    with _open(tmp_path) as run:  # the writer holds the directory while a report reads it
        run.mark_done("rollout", 1, {"episodes": 8})
        with open(tmp_path / "ledger.jsonl", "ab") as file:
            file.write(b'{"phase": "train", "iteration": 1, "res')  # a write in progress
        assert [(r["phase"], r["result"]) for r in completed_phases(tmp_path)] == [
            ("rollout", {"episodes": 8})
        ]
    assert not (tmp_path / "ledger.torn").exists()  # the reader repaired nothing


def test_mark_done_rejects_bad_input_without_writing(tmp_path: Path) -> None:
    with _open(tmp_path) as run:
        with pytest.raises(TypeError, match="not JSON-safe"):
            run.mark_done("train", 0, {"model": object()})
        with pytest.raises(TypeError, match="iteration must be an int"):
            run.mark_done("train", "0")  # type: ignore[arg-type]
        assert not run.done("train", 0)
    assert (tmp_path / "ledger.jsonl").read_text() == ""


def test_torn_writes_are_repaired_on_reopen(tmp_path: Path) -> None:
    with _open(tmp_path) as run:
        run.log({"train/loss": 1.0}, step=0)
        run.mark_done("train", 0)
    # A crash during the next phase: half a metrics line and half a ledger line, no clean close.
    (tmp_path / "session.json").write_text(json.dumps({"pid": 1, "metrics_offset": 0}))
    with open(tmp_path / "metrics.jsonl", "ab") as file:
        file.write(b'{"step": 1, "time": 1.0, "train/loss": 0.5}\n{"step": 2, "tr')
    with open(tmp_path / "ledger.jsonl", "ab") as file:
        file.write(b'{"phase": "train", "iteration": 1, "res')
    with _open(tmp_path, readonly=True) as reader:  # readers tolerate the torn lines
        assert reader.last_iteration("train") == 0
        assert [r["step"] for r in reader.metrics()] == [0, 1]
    with _open(tmp_path) as run:
        assert run.last_iteration("train") == 0
        assert [r["step"] for r in run.metrics()] == [0]  # step 1 belonged to the lost phase
        run.log({"train/loss": 0.4}, step=1)
        run.mark_done("train", 1)
    assert (tmp_path / "ledger.torn").exists()
    assert b'"step": 1' in (tmp_path / "metrics.rolled_back.jsonl").read_bytes()
    for name in ("ledger.jsonl", "metrics.jsonl"):
        lines = (tmp_path / name).read_text().splitlines()
        assert all(isinstance(json.loads(line), dict) for line in lines), name
    with _open(tmp_path) as run:
        assert run.last_iteration("train") == 1 and _steps(run) == {0: 1, 1: 1}


def test_clean_close_commits_metrics_but_an_exception_rolls_them_back(tmp_path: Path) -> None:
    with _open(tmp_path) as run:
        run.mark_done("train", 0)
        run.log({"eval/success_rate": 0.5}, step=1)  # after the last phase, closed cleanly
    with _open(tmp_path) as run:
        assert _steps(run) == {1: 1}
    with pytest.raises(RuntimeError), _open(tmp_path) as run:
        run.log({"train/loss": 2.0}, step=2)
        raise RuntimeError("trainer bug")  # the phase did not finish: it will run again
    with _open(tmp_path) as run:
        assert _steps(run) == {1: 1}
    run = _open(tmp_path)
    run.log({"train/loss": 3.0}, step=2)
    run.close(interrupted=True)  # e.g. from a trainer's `finally` after Ctrl-C
    with _open(tmp_path) as run:
        assert _steps(run) == {1: 1}


CHILD = """
import sys
from agentgym.trainers.run import RunDir
run = RunDir(sys.argv[1], config={"lr": 0.1, "progress": False}, tensorboard=False)
last = run.last_iteration("iteration")
for i in range(0 if last is None else last + 1, 10**9):
    run.log({"train/loss": 1.0 / (i + 1), "train/step": i}, step=i)
    run.store("rollout").append(__import__("agentgym").Trajectory("e", str(i), id=str(i)))
    run.log({"rollout/success_rate": 0.5}, step=i)
    run.mark_done("iteration", i, {"i": i, "padding": "x" * (i % 7) * 50})
"""


def _run_child_until_killed(path: Path, min_done: int) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)])
    deadline = time.monotonic() + 15
    ledger = path / "ledger.jsonl"
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if ledger.exists() and ledger.read_bytes().count(b"\n") >= min_done:
                break
            time.sleep(0.01)
        assert child.poll() is None, "the child exited on its own"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def test_sigkill_at_any_point_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    for round_number, min_done in enumerate((10, 30, 60)):
        _run_child_until_killed(tmp_path, min_done)
        with _open(tmp_path, readonly=True) as reader:  # a reader next to a crashed run
            done = [r["iteration"] for r in reader.ledger()]
            assert done == list(range(len(done))) and len(done) >= min_done
            reader.metrics()  # parseable, a torn last line tolerated
        with _open(tmp_path, config={"lr": 0.1, "progress": True}) as run:
            done = [r["iteration"] for r in run.ledger()]
            assert done == list(range(len(done))), f"round {round_number}: gaps or duplicates"
            assert all(run.result("iteration", i)["i"] == i for i in done)
            # Exactly the metrics of completed iterations, each once (two records per step).
            assert _steps(run) == {i: 2 for i in done}
            # Trajectories are idempotent by id: the killed iteration's one is re-appended
            # as a no-op when that iteration runs again.
            assert set(run.store("rollout").ids) >= {str(i) for i in done}
    assert not (tmp_path / "session.json").exists()


# ------------------------------------------------------------------ config


def test_config_mismatch_names_every_differing_key(tmp_path: Path) -> None:
    config = {"lr": 1e-5, "model": {"name": "tiny", "layers": 2}, "progress": True, "seed": 0}
    _open(tmp_path, config=config).close()
    assert (tmp_path / "config.yaml").exists()
    changed = {"lr": 1e-4, "model": {"name": "tiny"}, "progress": True, "seed": 0, "extra": 1}
    with pytest.raises(ConfigMismatchError) as caught:
        _open(tmp_path, config=changed)
    assert caught.value.keys == ["extra", "lr", "model.layers"]
    message = str(caught.value)
    assert "lr: stored 1e-05, given 0.0001" in message
    assert "model.layers: stored 2, given <missing>" in message
    assert "config.yaml" in message and "progress" in message
    # Resumable keys may differ (anywhere in the tree); an OmegaConf config is resolved.
    resumed = OmegaConf.create(
        {"lr": 1e-5, "model": {"name": "tiny", "layers": "${seed_plus_two}", "progress": 1},
         "seed_plus_two": 2, "progress": False, "seed": 0, "run_dir": "elsewhere"})  # fmt: skip
    with pytest.raises(ConfigMismatchError) as caught:
        _open(tmp_path, config=resumed)
    assert caught.value.keys == ["seed_plus_two"]  # not model.layers (resolved to 2)
    resumed = {**config, "progress": False, "run_dir": "elsewhere", "wandb": {"project": "x"}}
    _open(tmp_path, config=resumed).close()
    _open(tmp_path).close()  # no config given: nothing to compare


def test_config_type_changes_are_differences(tmp_path: Path) -> None:
    _open(tmp_path, config={"flag": True, "ratio": float("nan")}).close()
    with pytest.raises(ConfigMismatchError, match="flag"):
        _open(tmp_path, config={"flag": 1, "ratio": float("nan")})
    with pytest.raises(TypeError, match=r"config.bad=.*object"):
        _open(tmp_path, config={"bad": object()})


def test_one_writer_at_a_time_readers_welcome(tmp_path: Path) -> None:
    with _open(tmp_path) as run:
        run.mark_done("train", 0)
        with pytest.raises(RunDirBusyError, match="in use by another process"):
            _open(tmp_path)
        with _open(tmp_path, readonly=True) as reader:
            assert reader.done("train", 0)
            with pytest.raises(PermissionError, match="readonly"):
                reader.mark_done("train", 1)


def test_stores_are_cached_and_closed(tmp_path: Path) -> None:
    run = _open(tmp_path)
    store = run.store("rollout")
    assert run.store("rollout") is store
    assert store.path == tmp_path / "trajectories" / "rollout.jsonl"
    store.append(Trajectory("e", "t", id="a"))
    with pytest.raises(ValueError, match="invalid store name"):
        run.store("../escape")
    run.close()
    with pytest.raises(ValueError, match="closed"):
        store.append(Trajectory("e", "t", id="b"))


# ------------------------------------------------------------------ checkpoints


@pytest.fixture(scope="module")
def tiny():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentgym.models import resolve_model

    torch.manual_seed(0)
    path = resolve_model("tiny-random-llama")
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_checkpoint_is_atomic_and_reloads_identically(tmp_path: Path, tiny) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = tiny
    with _open(tmp_path) as run:
        # A crash during a save leaves only a hidden temporary folder: never a checkpoint.
        leftover = tmp_path / "checkpoints" / ".tmp-iter-1-deadbeef"
        leftover.mkdir(parents=True)
        (leftover / "config.json").write_text("{}")
        (tmp_path / "checkpoints" / "iter-0").mkdir()  # a folder without the marker
        assert run.checkpoint("iter-1") is None and run.checkpoint("iter-0") is None
        assert run.latest_checkpoint() is None
        path = run.save_checkpoint("iter-1", model, tokenizer, metadata={"step": 7})
        assert path == tmp_path / "checkpoints" / "iter-1" == run.checkpoint("iter-1")
        assert json.loads((path / CHECKPOINT_MARKER).read_text())["metadata"] == {"step": 7}
    _open(tmp_path).close()
    assert not leftover.exists()  # cleaned on the next open (the lock guarantees no writer)
    reloaded = AutoModelForCausalLM.from_pretrained(path)
    assert AutoTokenizer.from_pretrained(path).encode("hi") == tokenizer.encode("hi")
    ids = torch.tensor([[1, 5, 9, 42, 7]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)


def test_checkpoint_replace_and_latest(tmp_path: Path, tiny) -> None:
    model, tokenizer = tiny
    with _open(tmp_path) as run:
        first = run.save_checkpoint("iter-2", model, tokenizer)
        run.save_checkpoint("iter-10", model)
        assert run.latest_checkpoint() == tmp_path / "checkpoints" / "iter-10"
        assert run.latest_checkpoint("iter-2") == first
        run.save_checkpoint("iter-2", model, tokenizer)  # replaced, still complete
        assert run.latest_checkpoint() == first
        assert run.latest_checkpoint("best") is None
        # A crash between moving the old copy aside and renaming the new one in.
        os.rename(first, first.with_name(".old-iter-2-0123abcd"))
        assert run.checkpoint("iter-2") is None
    with _open(tmp_path) as run:
        assert run.checkpoint("iter-2") == first  # the previous copy is restored
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["iter-10", "iter-2"]


class _FakeBase:
    def __init__(self) -> None:
        self.weights = [1.0]

    def save_pretrained(self, directory: Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "config.json").write_text(json.dumps({"weights": self.weights}))


class _FakePeftModel:
    peft_config: ClassVar[dict[str, str]] = {"default": "lora"}

    def __init__(self) -> None:
        self.base = _FakeBase()
        self.merged = False

    def merge_and_unload(self) -> _FakeBase:
        self.merged = True
        self.base.weights = [w + 1 for w in self.base.weights]  # the merged delta
        return self.base

    def save_pretrained(self, directory: Path) -> None:  # peft saves the adapters alone
        directory.mkdir(parents=True)
        (directory / "adapter_config.json").write_text("{}")


def test_peft_models_are_saved_merged_from_a_copy(tmp_path: Path) -> None:
    model = _FakePeftModel()
    with _open(tmp_path) as run:
        path = run.save_checkpoint("lora", model, None)
    assert json.loads((path / "config.json").read_text()) == {"weights": [2.0]}
    assert (path / "adapter" / "adapter_config.json").exists()  # for resuming
    assert json.loads((path / CHECKPOINT_MARKER).read_text())["merged_peft"] is True
    assert not model.merged and model.base.weights == [1.0]  # the trained model is untouched


def test_failed_save_leaves_nothing(tmp_path: Path) -> None:
    class Broken(_FakeBase):
        def save_pretrained(self, directory: Path) -> None:
            super().save_pretrained(directory)
            raise OSError("disk full")

    with _open(tmp_path) as run:
        with pytest.raises(OSError, match="disk full"):
            run.save_checkpoint("iter-0", Broken())
        assert run.checkpoint("iter-0") is None
        assert list((tmp_path / "checkpoints").iterdir()) == []


# ------------------------------------------------------------------ metrics and reports


def test_metrics_plots_and_tensorboard(tmp_path: Path) -> None:
    with _open(tmp_path, tensorboard=True) as run:
        for step in range(60):
            run.log({"train/loss": 3.0 / (step + 1), "train/learning_rate": 1e-5}, step=step)
        for step in range(0, 60, 20):
            run.log(
                {"eval/success_rate": step / 100, "eval/success_ci_low": step / 200,
                 "eval/success_ci_high": step / 100 + 0.1, "rollout/mean_reward": 0.2},
                step=step,
            )  # fmt: skip
        with pytest.raises(ValueError, match="'train/loss'"):
            run.log({"loss": 1.0}, step=0)
        with pytest.raises(TypeError, match="not a number"):
            run.log({"train/loss": "high"}, step=0)
        paths = run.plot()
    names = sorted(p.name for p in paths)
    assert names == ["eval_success_rate.png", "rollout_mean_reward.png",
                     "train_learning_rate.png", "train_loss.png"]  # fmt: skip
    for path in paths:
        assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 1000
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events
    accumulator = EventAccumulator(str(tmp_path / "tb"))
    accumulator.Reload()
    assert len(accumulator.Scalars("train/loss")) == 60
    assert [s.step for s in accumulator.Scalars("eval/success_rate")] == [0, 20, 40]


def test_tensorboard_mirrors_committed_metrics_after_a_crash(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with _open(tmp_path, tensorboard=True) as run:  # namespaces on different step axes
        for step in range(10):
            run.log({"train/loss": 1.0 / (step + 1)}, step=step)
        run.mark_done("train", 1)
    with pytest.raises(RuntimeError), _open(tmp_path, tensorboard=True) as run:
        run.log({"eval/success_rate": 0.99}, step=1)
        raise RuntimeError("stopped mid-phase")
    with _open(tmp_path, tensorboard=True) as run:
        run.log({"eval/success_rate": 0.5}, step=1)  # the phase runs again
        run.mark_done("eval", 1)
        with pytest.raises(ValueError, match="step must be an integer >= 0"):
            run.log({"train/loss": 0.5}, step=-1)
    accumulator = EventAccumulator(str(tmp_path / "tb"))
    accumulator.Reload()
    assert [(s.step, s.value) for s in accumulator.Scalars("eval/success_rate")] == [(1, 0.5)]
    assert [s.step for s in accumulator.Scalars("train/loss")] == list(range(10))


def test_relogging_an_identical_value_is_a_no_op(tmp_path: Path) -> None:
    for _ in range(2):  # a recipe that recomputes rollout metrics from its stores on resume
        with _open(tmp_path) as run:
            run.log({"rollout/success_rate": 0.25, "rollout/episodes": 8}, step=1)
            run.mark_done("rollout", 1)
    with _open(tmp_path) as run:
        assert len(run.metrics()) == 1
        run.log({"rollout/success_rate": 0.5, "rollout/episodes": 8}, step=1)  # a new value
        assert run.metrics()[-1] == {"step": 1, "time": pytest.approx(time.time(), abs=60),
                                     "rollout/success_rate": 0.5}  # fmt: skip


class _ImportSpy(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.asked: list[str] = []

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "wandb":
            self.asked.append(name)
        return None


def test_wandb_off_never_imports_it(tmp_path: Path, monkeypatch) -> None:
    spy = _ImportSpy()
    monkeypatch.setattr(sys, "meta_path", [spy, *sys.meta_path])
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    with _open(tmp_path) as run:
        run.log({"train/loss": 1.0}, step=0)
    assert spy.asked == [] and "wandb" not in sys.modules


def test_missing_wandb_warns_once_and_the_run_goes_on(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` fail
    with _open(tmp_path, wandb=True) as run:
        with pytest.warns(RuntimeWarning, match="wandb logging is off") as caught:
            run.log({"train/loss": 1.0}, step=0)
            run.log({"train/loss": 0.5}, step=1)
        assert len(caught) == 1
        assert len(run.metrics()) == 2


def test_wandb_logs_offline_and_resumes_the_same_run(tmp_path: Path, monkeypatch) -> None:
    calls: list[tuple[str, object]] = []
    fake_run = types.SimpleNamespace(
        define_metric=lambda name, step_metric=None: calls.append(("axis", (name, step_metric))),
        log=lambda values: calls.append(("log", values)),
        finish=lambda exit_code=0: calls.append(("finish", exit_code)),
    )

    def init(**kwargs):
        calls.append(("init", {**kwargs, "mode": os.environ.get("WANDB_MODE")}))
        return fake_run

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    for session in range(2):
        with _open(tmp_path, wandb=True, wandb_project="p", config={"lr": 1}) as run:
            run.log({"train/loss": 1.0}, step=5 + session)
            run.log({"eval/success_rate": 0.5}, step=1)  # its own axis: not dropped by wandb
    inits = [value for kind, value in calls if kind == "init"]
    assert [i["mode"] for i in inits] == ["offline", "offline"]
    assert inits[0]["id"] == inits[1]["id"] and inits[0]["project"] == "p"
    assert inits[0]["config"] == {"lr": 1}
    assert ("log", {"train/loss": 1.0, "train/step": 5}) in calls and ("finish", 0) in calls
    assert ("log", {"eval/success_rate": 0.5, "eval/step": 1}) in calls
    assert ("axis", ("eval/*", "eval/step")) in calls
    monkeypatch.setenv("WANDB_MODE", "online")  # the user's choice is kept
    calls.clear()
    with _open(tmp_path, wandb=True, config={"lr": 1}) as run:
        run.log({"train/loss": 1.0}, step=7)
    assert calls[0][1]["mode"] == "online"


def test_summary_table(tmp_path: Path) -> None:
    def runs(successes: int, total: int) -> list[Trajectory]:
        return [Trajectory("e", str(i), reward=float(i < successes), success=i < successes)
                for i in range(total)]  # fmt: skip

    rows = [
        {"stage": "base", "iteration": None, **summarize(runs(2, 10))},
        {"stage": "rft", "iteration": 1, **summarize(runs(6, 10))},
        {"stage": "eef", "iteration": 2, "success_rate": 0.75, "success_ci_low": 0.5,
         "success_ci_high": 0.9, "mean_reward": 0.7, "episodes": 4},
    ]  # fmt: skip
    with _open(tmp_path) as run:
        path = run.write_summary(rows)
        with pytest.raises(ValueError, match=r"row 0 lacks \['episodes'\]"):
            run.write_summary([{"success_rate": 1.0, "mean_reward": 1.0}])
    lines = path.read_text().splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == (
        "| Stage | Iteration | Success rate [95% CI] | Mean reward [95% CI] | Episodes |"
    )
    assert table[2] == "| base |  | 0.200 [0.057, 0.510] | 0.200 [-0.061, 0.461] | 10 |"
    assert table[3].startswith("| rft | 1 | 0.600 [0.313, 0.832] | 0.600 [")
    assert table[4] == "| eef | 2 | 0.750 [0.500, 0.900] | 0.700 | 4 |"
    assert len(table) == 5
    data = json.loads((tmp_path / "summary.json").read_text())
    assert [row["stage"] for row in data["rows"]] == ["base", "rft", "eef"]
    assert data["rows"][1]["success_ci95"] == [0.3127, 0.8318]
