"""``benchmarks/envtune_learning.py``: pooled success, training-signal lines, report-only.

The study itself (SmolLM2 on vLLM, about an hour per seed) is not run here; these tests
cover the report pieces whose mistakes would silently change its published numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from benchmark_modules import load_benchmark


def _study() -> ModuleType:
    return load_benchmark("envtune_learning")


def _run(held: float, ood: float, updates: dict[int, Any] | None = None) -> dict[str, Any]:
    return {
        "seconds": 10.0,
        "rows": [{"success_rate": 0.0, "episodes": 32}, {"success_rate": held, "episodes": 32}],
        "ood": {"success_rate": ood, "episodes": 32},
        "updates": updates or {},
        "curriculum": {},
    }


def _runs() -> dict[str, dict[int, dict[str, Any]]]:
    update = {"groups": 4, "groups_kept": 3, "optimizer_steps": 2}
    empty = {"groups": 4, "groups_kept": 0, "groups_dropped": 4, "examples": 0}
    return {
        "sft": {0: _run(0.125, 0.0), 1: _run(0.0625, 0.03125)},
        "grpo": {0: _run(0.25, 0.0, {1: update, 2: empty}), 1: _run(0.0, 0.0, {1: update})},
    }


def test_pool_counts_every_seeds_episodes_in_one_wilson_interval() -> None:
    study = _study()
    pooled = study.pool([(0, 0.125, 32), (1, 0.0625, 32)])
    assert pooled["episodes"] == 64
    assert pooled["success_rate"] == 6 / 64
    low, high = pooled["success_ci95"]
    assert 0 < low < 6 / 64 < high < 0.2
    assert pooled["per_seed"] == {0: 0.125, 1: 0.0625}


def test_signal_lines_count_kept_groups_and_optimizer_steps_per_seed() -> None:
    lines = _study().signal_lines(_runs())
    assert lines[0].startswith("Training signal")
    assert lines[1] == (
        "- GRPO (episode advantage): seed 0: 3/8 groups kept, 2 optimizer steps; "
        "seed 1: 3/4 groups kept, 2 optimizer steps"
    )
    assert len(lines) == 2  # SFT has no policy-gradient updates


def test_report_only_rebuilds_the_same_report_from_results_json(tmp_path: Path) -> None:
    study = _study()
    runs = _runs()
    meta = {"seeds": [0, 1], "eval_episodes": 32, "seconds": {"sft-seed0": 393.0}}
    study.write_report(study.table(runs), meta, runs, tmp_path)
    first = (tmp_path / "results.md").read_text()
    (tmp_path / "results.md").unlink()

    # Seeds are strings after JSON; no run directories under --runs: no progress table.
    study.main(["--report-only", "--out", str(tmp_path), "--runs", str(tmp_path / "none")])

    assert (tmp_path / "results.md").read_text() == first
    assert '"sft-seed0": 393.0' in first  # the recorded wall time, not a re-measured one
    assert "| SFT warm start | 0.094 |" in first
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"][1]["held_out"]["success_rate"] == 8 / 64
    assert (tmp_path / "envtune_learning.png").stat().st_size > 0


def test_final_progress_is_each_episodes_last_recorded_progress(tmp_path: Path) -> None:
    from agentgym.core.trajectory import Step, Trajectory, TrajectoryStore

    def episode(*progress: float | None) -> Trajectory:
        steps = [Step(action="a", observation="o", reward=0.0, progress=p) for p in progress]
        return Trajectory(env_id="agentgym/ToolUse-v0", task_id="t", steps=steps)

    path = tmp_path / "eval-3.jsonl"
    with TrajectoryStore(path) as store:
        store.append([episode(0.5, None), episode(None, None), episode(0.25, 1.0)])
    assert _study().final_progress(path) == [0.5, 0.0, 1.0]


def test_progress_lines_pool_every_seeds_episodes() -> None:
    runs = _runs()
    for by_seed in runs.values():
        for seed, run in by_seed.items():
            run["progress"] = {"held_out": [0.5, 0.5 * seed], "ood": [0.0, 1.0]}
    lines = _study().progress_lines(runs)
    assert lines[2] == "| method | held-out progress | out-of-distribution progress |"
    # Held-out values 0.5, 0.0, 0.5, 0.5: mean 0.375; out of distribution 0, 1, 0, 1: 0.5.
    assert lines[4].startswith("| SFT warm start | 0.375 [")
    assert "| 0.500 [0.000, 1.000] |" in lines[4]  # the interval is clipped to [0, 1]


def test_report_only_without_results_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"results\.json, which does not exist: run the study"):
        _study().main(["--report-only", "--out", str(tmp_path)])
