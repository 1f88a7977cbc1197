"""`agentgym train trainer=grpo` end to end on the tiny model and a graded-reward environment.

The shipped environments pay a random tiny model nothing, so every group would be dropped;
``test/Graded-v0`` (tests/graded_env.py) pays a share of the right characters, which varies
within a group, so updates happen and can be checked: the optimizer persists across
iterations, weights and optimizer are checkpointed together, and a run killed with SIGKILL
at any point resumes without a lost or repeated update.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from agentgym.core.trajectory import TrajectoryStore
from agentgym.trainers.grpo import build_examples

TESTS = Path(__file__).resolve().parent
OVERRIDES = [
    "env.id=test/Graded-v0", "~env.kwargs.difficulty", "~env.kwargs.parser",
    "+env.kwargs.num_tasks=8",
    "model=tiny-random-llama", "engine=hf",
    "num_envs=8", "sampling.max_tokens=8", "eval.episodes=4", "progress=false",
    "tensorboard=false", "trainer=grpo", "trainer.iterations=3", "trainer.train_tasks=4",
    "trainer.tasks_per_iteration=2", "trainer.group_size=4", "trainer.mini_batches=2",
    "trainer.learning_rate=1e-3", "trainer.warm_start_tasks=2", "trainer.eval_every=3",
    "sft.epochs=1", "sft.learning_rate=1e-3", "trainer.kl_coef=0.05", "trainer.entropy_coef=0.01",
]  # fmt: skip
RUNNER = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
import graded_env  # registers test/Graded-v0
from agentgym.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _command(tmp_path: Path, run_dir: Path, *extra: str) -> list[str]:
    runner = tmp_path / "run_train.py"
    runner.write_text(RUNNER)
    return [sys.executable, str(runner), "train", *OVERRIDES, f"run_dir={run_dir}", *extra]


def _ledger(run_dir: Path) -> list[tuple[str, int]]:
    path = run_dir / "ledger.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line
        records.append((record["phase"], record["iteration"]))
    return records


def _records(run_dir: Path, phase: str) -> dict[int, dict]:
    out = {}
    for line in (run_dir / "ledger.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["phase"] == phase:
            out[record["iteration"]] = record["result"]
    return out


def test_grpo_updates_with_one_optimizer_and_checkpoints_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "grpo"
    result = subprocess.run(_command(tmp_path, run_dir), capture_output=True, text=True,
                            timeout=600, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    updates = _records(run_dir, "update")
    assert sorted(updates) == [1, 2, 3]
    # Groups have reward variance, so every iteration trains; one optimizer across
    # iterations: its step counter keeps counting (2 mini-batches per iteration).
    assert all(updates[k]["groups_kept"] >= 1 for k in updates)
    assert [updates[k]["learner_steps_done"] for k in (1, 2, 3)] == [2, 4, 6]
    assert all(abs(updates[k]["last_kl"]) < 10 for k in updates)
    # Only the newest policy checkpoint is kept, with the optimizer state beside it.
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "policy-3" in checkpoints and "policy-2" not in checkpoints
    state = torch.load(run_dir / "checkpoints" / "policy-3" / "trainer_state.pt",
                       weights_only=False)  # fmt: skip
    assert state["learner"]["steps_done"] == 6
    assert state["learner"]["optimizer"]["state"], "AdamW moments are saved"
    # The engine was verified after every sync.
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    diffs = [m["sync/max_abs_logprob_diff"] for m in metrics if "sync/max_abs_logprob_diff" in m]
    assert len(diffs) >= 4 and max(diffs) < 1e-3
    # Every trained episode was a sampled one with its log-probs, grouped by task.
    with TrajectoryStore(run_dir / "trajectories" / "rollout-1.jsonl", readonly=True) as store:
        trajectories = list(store)
    assert len(trajectories) == 2 * 4
    examples, counts = build_examples(trajectories, estimator="episode", std_normalise=True,
                                      gamma=1.0, max_length=None)  # fmt: skip
    assert counts["groups"] == 2 and len(examples) == 4 * counts["groups_kept"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [row["stage"] for row in summary["rows"]] == [
        "base model", "SFT warm start", "GRPO iteration 3",
    ]  # fmt: skip


def _kill_when(command: list[str], cwd: Path, ready) -> None:
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    try:
        while not ready() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_grpo_resumes_after_kill_without_lost_or_repeated_updates(tmp_path: Path) -> None:
    run_dir = tmp_path / "resumed"
    command = _command(tmp_path, run_dir)

    def collecting_second() -> bool:  # killed while the second iteration's groups are sampled
        store = run_dir / "trajectories" / "rollout-2.jsonl"
        return store.exists() and store.stat().st_size > 0

    def updating_third() -> bool:  # killed right after the third collection, in the update
        store = run_dir / "trajectories" / "rollout-3.jsonl"
        return store.exists() and len(store.read_text().splitlines()) >= 8

    _kill_when(command, tmp_path, collecting_second)
    assert ("update", 2) not in _ledger(run_dir)
    _kill_when(command, tmp_path, updating_third)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    ledger = _ledger(run_dir)
    assert Counter(ledger) == Counter(set(ledger)), "a phase ran twice"
    updates = _records(run_dir, "update")
    assert sorted(updates) == [1, 2, 3]
    # Each update continued the same optimizer: no step lost, none applied twice.
    assert [updates[k]["learner_steps_done"] for k in (1, 2, 3)] == [2, 4, 6]
    state = torch.load(run_dir / "checkpoints" / "policy-3" / "trainer_state.pt",
                       weights_only=False)  # fmt: skip
    assert state["learner"]["steps_done"] == 6
    for k in (1, 2, 3):
        with TrajectoryStore(run_dir / "trajectories" / f"rollout-{k}.jsonl",
                             readonly=True) as store:  # fmt: skip
            trajectories = list(store)
        ids = [t.id for t in trajectories]
        assert len(ids) == len(set(ids)) == 8
        # The update trained exactly the stored episodes (digest of ids and advantages).
        from agentgym.trainers.grpo import _data_digest

        examples, _ = build_examples(trajectories, estimator="episode", std_normalise=True,
                                     gamma=1.0, max_length=2048)  # fmt: skip
        assert updates[k]["data_digest"] == _data_digest(examples)


ENVTUNE = [
    "trainer=envtune", "trainer.iterations=4", "trainer.validation_tasks=2",
    "trainer.eval_every=2",
    "trainer.stages=[{name:syntax,reward_mode:format,augment:true,"
    "advance_when:{min_evaluations:1,max_evaluations:1}},"
    "{name:final,reward_mode:progress,augment:false,env_kwargs:{categories:[base,extra]},"
    "advance_when:{min_evaluations:1,patience:1,max_evaluations:2}}]",
]  # fmt: skip


def test_envtune_walks_the_curriculum_and_resumes_in_the_same_stage(tmp_path: Path) -> None:
    run_dir = tmp_path / "envtune"
    command = _command(tmp_path, run_dir, *ENVTUNE)

    def validated_once() -> bool:
        return ("curriculum", 1) in _ledger(run_dir)

    _kill_when(command, tmp_path, validated_once)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    ledger = _ledger(run_dir)
    assert Counter(ledger) == Counter(set(ledger)), "a phase ran twice"
    curriculum = _records(run_dir, "curriculum")
    # syntax validated once then advanced; the final stage ends after at most two checks.
    assert curriculum[1]["stage"] == "syntax" and curriculum[1]["advanced"]
    assert all(curriculum[k]["stage"] == "final" for k in curriculum if k > 1)
    assert sorted(curriculum) == [1, 2, 3]
    assert curriculum[3]["state"]["index"] == 2  # finished: no fourth iteration
    assert sorted(_records(run_dir, "update")) == [1, 2, 3]
    # Stage environments: the syntax stage trained with hints and the format reward.
    with TrajectoryStore(run_dir / "trajectories" / "rollout-1.jsonl", readonly=True) as store:
        first = next(iter(store))
    assert first.env_kwargs["reward_mode"] == "format" and first.env_kwargs["augment"] is True
    with TrajectoryStore(run_dir / "trajectories" / "rollout-2.jsonl", readonly=True) as store:
        second = next(iter(store))
    assert second.env_kwargs["augment"] is False
    assert second.env_kwargs["categories"] == ["base", "extra"]
    # Validation uses training-split tasks after the training ones; held-out uses the test split.
    with TrajectoryStore(run_dir / "trajectories" / "val-1.jsonl", readonly=True) as store:
        assert {t.task_id for t in store} == {"train-4", "train-5"}
    with TrajectoryStore(run_dir / "trajectories" / "eval-3.jsonl", readonly=True) as store:
        assert all(t.task_id.startswith("test-") for t in store)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [row["stage"] for row in summary["rows"]][-2:] == [
        "envtune iteration 2 (final)", "envtune iteration 3 (finished)",
    ]  # fmt: skip
