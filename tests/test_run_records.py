"""What ``rollout`` and ``eval`` record and say about themselves.

``eval.json`` and ``summary.json`` name the policy that acted (the expert and its settings,
not the config's unused default model), and a multirun that is given ``run_dir=`` says that
Hydra writes each job elsewhere, and where.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from agentgym.cli import multirun_run_dir_note
from agentgym.commands import policy_record


def _agentgym(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentgym.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
        timeout=180,
    )


def test_eval_json_records_the_expert_when_the_expert_ran(tmp_path: Path) -> None:
    run_dir = tmp_path / "eval"
    result = _agentgym(
        "eval", "engine=expert", "engine.kwargs.error_rate=0.5", "episodes=3",
        f"run_dir={run_dir}", "progress=false", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["policy"] == "expert" and report["engine"] == "expert"
    assert report["model"] is None  # the config's default model did not act
    assert report["expert"] == {"error_rate": 0.5, "seed": 0}


def test_rollout_summary_records_the_expert_too(tmp_path: Path) -> None:
    run_dir = tmp_path / "rollout"
    result = _agentgym(
        "rollout", "episodes=2", f"run_dir={run_dir}", "progress=false", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["policy"], summary["model"]) == ("expert", None)


def test_a_model_policy_records_engine_and_model() -> None:
    cfg = OmegaConf.create({"engine": {"name": "vllm", "kwargs": {}}, "model": {"name": "m"}})
    assert policy_record(cfg) == {"engine": "vllm", "model": "m", "policy": "vllm/m"}


def test_multirun_says_it_ignores_run_dir_and_where_jobs_go(tmp_path: Path) -> None:
    args = ("rollout", "-m", "episodes=1,2", "progress=false", "hydra.sweep.dir=sweep")
    result = _agentgym(*args, "run_dir=mine", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "run_dir= is ignored" in result.stderr and "hydra.sweep.dir" in result.stderr
    assert not (tmp_path / "mine").exists()
    assert json.loads((tmp_path / "sweep" / "1" / "summary.json").read_text())["episodes"] == 2
    # As the note says: the same sweep folder again resumes every job.
    again = _agentgym(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "run_dir=" not in again.stderr
    resumed = json.loads((tmp_path / "sweep" / "1" / "summary.json").read_text())
    assert resumed["resumed_from"] == 2


def test_the_note_reads_every_spelling_of_the_override() -> None:
    for override in ("run_dir=x", "+run_dir=x", "++run_dir=x"):
        assert multirun_run_dir_note(["--multirun", override]) is not None
    assert multirun_run_dir_note(["-m", "run_dirs=x"]) is None
    assert multirun_run_dir_note(["run_dir=x"]) is None
