"""``agentgym eval ... critic=...``: success vs N with and without a critic, from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TINY_EVAL = [
    "eval", "env=codeexec", "engine=hf", "model=tiny-random-llama", "env.kwargs.max_attempts=1",
    "sampling.max_tokens=8", "episodes=2", "progress=false",
]  # fmt: skip


def _agentgym(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentgym.cli", *args], cwd=cwd, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def test_eval_with_the_oracle_critic_reports_success_vs_n(tmp_path: Path) -> None:
    run_dir = tmp_path / "eval"
    result = _agentgym(*TINY_EVAL, "critic=oracle", "critique.n=[1,2]", "critique.rounds=1",
                       f"run_dir={run_dir}", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((run_dir / "eval.json").read_text())
    block = report["critique"]
    assert block["critic"] == "oracle" and block["rounds"] == 1
    assert set(block["success_vs_n"]) == {"plain", "critic"}
    for by_n in block["success_vs_n"].values():
        assert set(by_n) == {"1", "2"}
        for cell in by_n.values():
            assert cell["episodes"] == 2
            low, high = cell["success_ci95"]
            assert 0.0 <= low <= cell["success_rate"] <= high <= 1.0
    # Every committed proposal of the critic lanes was judged; the oracle always agrees.
    assert block["critic_stats"]["agreement_with_environment"] == 1.0
    assert block["counts"]["samples"] == 4  # N_max = 2 samples per task, shared by the lanes
    records = [json.loads(line) for line in (run_dir / "critique_episodes.jsonl").open()]
    assert len(records) == 2 * 2 * 2  # tasks x policies x values of N
    assert {r["task_id"] for r in records} == {"gen-easy-10000", "gen-easy-10001"}  # test split
    assert "critic=oracle" in result.stdout and "plain" in result.stdout


def test_critique_settings_are_validated_with_every_problem_listed(tmp_path: Path) -> None:
    result = _agentgym(*TINY_EVAL, "critic=oracle", "critique.n=[0,2]",
                       "critique.temperature=-1", "+critique.roundz=1", "critique.feedback=maybe",
                       f"run_dir={tmp_path / 'bad'}", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    for expected in (
        "n must be a non-empty list of integers >= 1",
        "critique.temperature must be a number >= 0",
        "unknown key 'critique.roundz'. Did you mean 'rounds'?",
        "critique.feedback must be true or false",
    ):
        assert expected in result.stderr, expected


def test_the_expert_cannot_be_critiqued(tmp_path: Path) -> None:
    result = _agentgym("eval", "env=codeexec", "engine=expert", "critic=oracle", "episodes=1",
                       f"run_dir={tmp_path / 'x'}", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert "samples proposals from a model" in result.stderr


def test_the_run_seed_varies_the_proposals(tmp_path: Path) -> None:
    """`seed=` must change what is sampled (the greedy sampling config fixes its own seed)."""
    proposals = {}
    for seed in (0, 1):
        run_dir = tmp_path / f"seed{seed}"
        result = _agentgym(*TINY_EVAL, "critic=oracle", "critique.n=[2]", "critique.rounds=0",
                           f"seed={seed}", f"run_dir={run_dir}", cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        records = [json.loads(line) for line in (run_dir / "critique_episodes.jsonl").open()]
        proposals[seed] = [record["actions"] for record in records]
    assert proposals[0] != proposals[1]
