"""`agentgym train` end to end on a tiny model: learning, artifacts, resume after kill -9."""

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
from transformers import AutoModelForCausalLM

from agentgym.core.trajectory import TrajectoryStore
from agentgym.models import resolve_model
from agentgym.trainers.common import phase_sft_config
from agentgym.trainers.sft import SFTConfig

TINY = [
    "model=tiny-random-llama", "engine=hf", "num_envs=4", "sampling.max_tokens=12",
    "eval.episodes=4", "sft.epochs=1", "sft.learning_rate=1e-3", "progress=false",
]  # fmt: skip


def _command(run_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "agentgym.cli", "train", *TINY, f"run_dir={run_dir}", *overrides]


def _train(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(run_dir, *overrides), capture_output=True, text=True, timeout=600,
        cwd=run_dir.parent,
    )  # fmt: skip


def test_sft_trains_checkpoints_and_reports(tmp_path: Path) -> None:
    run_dir = tmp_path / "sft"
    result = _train(run_dir, "trainer=sft", "trainer.train_tasks=6", "seed=3")
    assert result.returncode == 0, result.stderr[-3000:]
    # The run's seed orders the fine-tuning batches (runs of two seeds train differently).
    train = next(json.loads(line) for line in (run_dir / "ledger.jsonl").open()
                 if json.loads(line)["phase"] == "train")  # fmt: skip
    assert train["result"]["batch_order_seed"] == phase_sft_config(SFTConfig(seed=3), 1).seed
    # The fine-tuned checkpoint loads and differs from the base model.
    checkpoint = run_dir / "checkpoints" / "iter-1"
    tuned = AutoModelForCausalLM.from_pretrained(checkpoint)
    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))
    differs = [
        name for (name, a), (_, b) in zip(tuned.named_parameters(), base.named_parameters(),
                                          strict=True)
        if not torch.equal(a, b)
    ]  # fmt: skip
    assert differs
    losses = [m["train/loss"] for m in map(json.loads, (run_dir / "metrics.jsonl").open())
              if "train/loss" in m]  # fmt: skip
    assert losses and all(loss > 0 for loss in losses)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [row["iteration"] for row in summary["rows"]] == [0, 1]
    assert (run_dir / "plots" / "train_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "held-out success" in result.stdout


def _ledger(run_dir: Path) -> list[tuple[str, int]]:
    path = run_dir / "ledger.jsonl"
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        entries.append((record["phase"], record["iteration"]))
    return entries


def _kill_when(run_dir: Path, ready, *overrides: str) -> None:
    process = subprocess.Popen(
        _command(run_dir, *overrides), cwd=run_dir.parent,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    try:
        while not ready() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_rft_resumes_after_kill_without_losing_or_duplicating(tmp_path: Path) -> None:
    run_dir = tmp_path / "rft"
    run_dir.mkdir()
    overrides = ("trainer=rft", "trainer.iterations=2", "trainer.train_tasks=4")

    def collecting() -> bool:  # killed in the middle of the first policy collection
        store = run_dir / "trajectories" / "collect-1.jsonl"
        return store.exists() and store.stat().st_size > 0

    _kill_when(run_dir, collecting, *overrides)
    assert ("train", 1) not in _ledger(run_dir)
    _kill_when(run_dir, lambda: ("train", 1) in _ledger(run_dir), *overrides)
    assert ("eval", 2) not in _ledger(run_dir)

    result = _train(run_dir, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    ledger = _ledger(run_dir)
    assert Counter(ledger) == Counter(set(ledger)), "a phase ran twice"
    assert {("eval", 0), ("train", 1), ("eval", 1), ("train", 2), ("eval", 2)} <= set(ledger)
    for store_path in sorted((run_dir / "trajectories").glob("*.jsonl")):
        with TrajectoryStore(store_path, readonly=True) as store:
            ids = [t.id for t in store]
        assert len(ids) == len(set(ids)), store_path.name
        expected = {"expert": 4, "collect-1": 8, "collect-2": 8}.get(store_path.stem, 4)
        assert len(ids) == expected, store_path.name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [row["iteration"] for row in summary["rows"]] == [0, 1, 2]


def test_lora_rft_from_base_with_packing(tmp_path: Path) -> None:
    run_dir = tmp_path / "lora"
    result = _train(
        run_dir, "trainer=rft", "trainer.iterations=2", "trainer.train_tasks=4",
        "trainer.finetune_from=base", "training.lora.enabled=true", "training.lora.rank=4",
        "sft.packing=true", "sft.learning_rate=1e-2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LoRA: rank 4" in result.stdout
    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama")).state_dict()
    for iteration in (1, 2):
        checkpoint = run_dir / "checkpoints" / f"iter-{iteration}"
        assert (checkpoint / "adapter" / "adapter_model.safetensors").exists()
        merged = AutoModelForCausalLM.from_pretrained(checkpoint).state_dict()
        assert set(merged) == set(base)
        changed = {k for k in base if not torch.equal(merged[k], base[k])}
        assert changed and all("proj" in k for k in changed)  # only adapted layers moved
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [row["iteration"] for row in summary["rows"]] == [0, 1, 2]


def test_resume_ignores_a_checkpoint_whose_phase_was_not_recorded(tmp_path: Path) -> None:
    """Killed between saving ``iter-1`` and marking its train phase: the resumed run trains
    that phase again from the base weights (as an uninterrupted run does), not on top of it."""
    clean = tmp_path / "clean"
    result = _train(clean, "trainer=sft", "trainer.train_tasks=4", "seed=5")
    assert result.returncode == 0, result.stderr[-3000:]
    crashed = tmp_path / "crashed"
    subprocess.run(["cp", "-a", str(clean), str(crashed)], check=True)
    # The crash window: the checkpoint is on disk, the ledger stops before its train phase.
    lines = (crashed / "ledger.jsonl").read_text().splitlines()
    first_train = next(i for i, line in enumerate(lines) if json.loads(line)["phase"] == "train")
    (crashed / "ledger.jsonl").write_text("\n".join(lines[:first_train]) + "\n")
    result = _train(crashed, "trainer=sft", "trainer.train_tasks=4", "seed=5")
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("train", 1) in _ledger(crashed)
    expected = AutoModelForCausalLM.from_pretrained(clean / "checkpoints" / "iter-1")
    resumed = AutoModelForCausalLM.from_pretrained(crashed / "checkpoints" / "iter-1")
    for (name, a), (_, b) in zip(
        expected.named_parameters(), resumed.named_parameters(), strict=True
    ):
        torch.testing.assert_close(b, a, msg=f"{name} differs from the uninterrupted run")
