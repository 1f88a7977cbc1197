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
