"""The `agentgym` command line: list-envs, rollout, config errors and resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentgym.cli import main
from agentgym.core.trajectory import TrajectoryStore


def _agentgym(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "agentgym.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_list_envs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list-envs"]) == 0
    assert "agentgym/Calculator-v0" in capsys.readouterr().out


def test_unknown_command_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rolout"]) == 2
    assert "Did you mean 'rollout'" in capsys.readouterr().err


def test_rollout_writes_trajectories_and_summary_then_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = _agentgym("rollout", "episodes=6", f"run_dir={run_dir}", "progress=false", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["episodes"] == 6 and summary["success_rate"] == 1.0
    assert (run_dir / ".hydra" / "config.yaml").exists()

    second = _agentgym(
        "rollout", "episodes=9", f"run_dir={run_dir}", "progress=false", cwd=tmp_path
    )
    assert second.returncode == 0, second.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_from"] == 6 and summary["episodes"] == 9
    with TrajectoryStore(run_dir / "trajectories.jsonl", readonly=True) as store:
        ids = [t.id for t in store]
    assert sorted(ids) == sorted(f"rollout-0-{i}" for i in range(9))


def test_rollout_with_error_injection_produces_failures(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = _agentgym(
        "rollout",
        "episodes=20",
        f"run_dir={run_dir}",
        "progress=false",
        "env.kwargs.difficulty=medium",
        "engine.kwargs.error_rate=1.0",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["success_rate"] < 0.5


def test_bad_config_lists_every_problem(tmp_path: Path) -> None:
    result = _agentgym(
        "rollout",
        "episodes=0",
        "+env.kwargs.splt=train",
        "env.id=agentgym/Calc-v0",
        f"run_dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "episodes=0: must be an integer >= 1" in result.stderr
    assert "env.id='agentgym/Calc-v0' is not registered" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "trajectories.jsonl").exists()


def test_bad_env_kwarg_value_is_reported(tmp_path: Path) -> None:
    result = _agentgym("rollout", "env.kwargs.difficulty=hrd", f"run_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2
    assert "Did you mean 'hard'?" in result.stderr


def test_rollout_with_the_hf_engine_on_a_tiny_model(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = _agentgym(
        "rollout", "engine=hf", "model=tiny-random-llama", "episodes=3", "num_envs=2",
        "sampling.max_tokens=12", f"run_dir={run_dir}", "progress=false", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary["engine"] == "hf"
    assert summary["throughput"]["generated_tokens"] > 0
    with TrajectoryStore(run_dir / "trajectories.jsonl", readonly=True) as store:
        for trajectory in store:
            assistant = [m for m in trajectory.messages if m.role == "assistant"]
            assert assistant and all(m.token_ids and m.logprobs for m in assistant)


def test_eval_reports_held_out_success_with_intervals(tmp_path: Path) -> None:
    run_dir = tmp_path / "eval"
    result = _agentgym(
        "eval", "engine=expert", "env.kwargs.difficulty=medium", "episodes=12",
        f"run_dir={run_dir}", "progress=false", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["split"] == "test" and report["episodes"] == 12
    assert report["success_rate"] == 1.0 and report["success_ci95"] == [0.7575, 1.0]
    assert report["groups"]["difficulty=medium"]["episodes"] == 12
    with TrajectoryStore(run_dir / "trajectories.jsonl", readonly=True) as store:
        assert sorted(t.task_id for t in store) == sorted(
            f"calc-medium-{10_000 + i}" for i in range(12)
        )
    assert "success 1.000 (95% CI 0.757-1.000)" in result.stdout


def test_engine_and_model_problems_are_all_listed(tmp_path: Path) -> None:
    result = _agentgym(
        "rollout", "engine=hf", "+engine.kwargs.devise=cpu", "model.name=no-such-model",
        "sampling.temperature=-1", "num_envs=0", f"run_dir={tmp_path / 'r'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    for expected in (
        "unknown key 'engine.kwargs.devise'. Did you mean 'device'?",
        "model=no-such-model: not a registered model",
        "temperature must be >= 0",
        "num_envs=0: must be an integer >= 1",
    ):
        assert expected in result.stderr, expected
