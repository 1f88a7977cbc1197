"""``agentgym train trainer=critique`` end to end on a tiny model, and its resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from agentgym.core.trajectory import TrajectoryStore
from agentgym.critique import parse_critique

TINY = [
    "trainer=critique", "env=codeexec", "model=tiny-random-llama", "engine=hf", "num_envs=4",
    "sampling.max_tokens=12", "eval.episodes=4", "sft.epochs=1", "sft.learning_rate=1e-3",
    "progress=false", "env.kwargs.max_attempts=1", "trainer.iterations=1",
    "trainer.train_tasks=4", "trainer.samples_per_task=2", "trainer.expert_episodes_per_task=1",
    "trainer.train_on_critique=true",
]  # fmt: skip


def _command(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "agentgym.cli", "train", *TINY, f"run_dir={run_dir}"]


def _ledger(run_dir: Path) -> list[tuple[str, int]]:
    path = run_dir / "ledger.jsonl"
    entries = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the kill
            continue
        entries.append((record["phase"], record["iteration"]))
    return entries


def _kill_when(run_dir: Path, ready: Callable[[], bool]) -> None:
    process = subprocess.Popen(
        _command(run_dir), cwd=run_dir.parent, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    try:
        while not ready() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _has_records(path: Path) -> Callable[[], bool]:
    return lambda: path.exists() and path.stat().st_size > 0


def test_critique_trainer_runs_and_resumes_after_kill_without_redoing_work(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "critique"
    run_dir.mkdir()
    stores = run_dir / "trajectories"
    _kill_when(run_dir, _has_records(stores / "collect-1.jsonl"))  # mid policy sampling
    assert ("refine", 1) not in _ledger(run_dir)
    _kill_when(run_dir, _has_records(stores / "refine-1.jsonl"))  # during/after refinement
    assert ("train", 1) not in _ledger(run_dir)

    result = subprocess.run(_command(run_dir), cwd=tmp_path, capture_output=True, text=True,
                            timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    ledger = _ledger(run_dir)
    assert Counter(ledger) == Counter(set(ledger)), "a phase ran twice"
    assert {("eval", 0), ("refine", 1), ("train", 1), ("eval", 1)} <= set(ledger)
    counts = {}
    for path in sorted(stores.glob("*.jsonl")):
        with TrajectoryStore(path, readonly=True) as store:
            ids = [t.id for t in store]
        assert len(ids) == len(set(ids)), path.name
        counts[path.stem] = len(ids)
    assert counts["expert"] == 4 and counts["collect-1"] == 8
    # One record per failed sample (the tiny random model fails them all), none repeated.
    assert counts["refine-1"] == 8
    with TrajectoryStore(stores / "refine-1.jsonl", readonly=True) as store:
        records = list(store)
    assert {r.parent_id for r in records} == {f"it1-gen-easy-{i}-s{j}" for i in range(4)
                                                  for j in range(2)}  # fmt: skip
    for record in records:
        assert record.metadata["critic"] == "oracle"
        assert record.metadata["critique"]["verdict"] is False  # the oracle locates the error
        assert record.metadata["outcome"] in ("refined", "no_refinement_succeeded")
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    assert sum("critique/failures" in m for m in metrics) == 1  # logged once despite kills
    train = next(json.loads(line)["result"] for line in (run_dir / "ledger.jsonl").open()
                 if json.loads(line)["phase"] == "train")  # fmt: skip
    assert train["examples"] >= 4  # the expert's successes at least
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [row["iteration"] for row in summary["rows"]] == [0, 1]
    assert "critique iteration 1" in result.stdout


def test_critic_trainer_learns_from_oracle_critiques_and_measures_verdicts(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "critic"
    command = [
        sys.executable, "-m", "agentgym.cli", "train", "trainer=critic", "env=codeexec",
        "model=tiny-random-llama", "engine=hf", "num_envs=4", "sampling.max_tokens=12",
        "eval.episodes=3", "sft.epochs=1", "sft.learning_rate=1e-3", "progress=false",
        "env.kwargs.max_attempts=1", "trainer.train_tasks=3", "trainer.critique_tokens=16",
        "trainer.expert_episodes_per_task=2", "expert.error_rate=0.5", f"run_dir={run_dir}",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    stores = run_dir / "trajectories"
    with TrajectoryStore(stores / "expert.jsonl", readonly=True) as store:
        expert = {t.id: t for t in store}
    with TrajectoryStore(stores / "critiques-train.jsonl", readonly=True) as store:
        critiques = list(store)
    # 3 tasks x (2 policy + 2 expert episodes) x 1 step; each critique is the oracle's
    # verdict on that step, which for one-attempt CodeExec is the episode's success.
    assert len(critiques) == 12
    for critique in critiques:
        assert critique.messages[-1].trainable and critique.messages[-1].role == "assistant"
        assert parse_critique(critique.messages[-1].content).verdict is critique.metadata[
            "verdict"]  # fmt: skip
        if critique.parent_id in expert:
            assert critique.metadata["verdict"] is expert[critique.parent_id].success
    verdicts = {c.metadata["verdict"] for c in critiques}
    assert verdicts == {True, False}  # the expert's injected errors give wrong proposals
    ledger = [json.loads(line) for line in (run_dir / "ledger.jsonl").open()]
    data = next(e["result"] for e in ledger if e["phase"] == "critiques")
    assert data["train_examples"] == 2 * min(data["train_wrong"], 12 - data["train_wrong"])
    measured = [e["result"] for e in ledger if e["phase"] == "critic_eval"]
    assert [m["iteration"] for m in measured] == [0, 1]
    for metrics in measured:
        assert metrics["proposals"] == 3 and 0.0 <= metrics["readable"] <= 1.0
        assert metrics["success_rate"] == metrics["accuracy"]
    train = next(e["result"] for e in ledger if e["phase"] == "train")
    assert train["examples"] == data["train_examples"] and train["trained_tokens"] > 0
