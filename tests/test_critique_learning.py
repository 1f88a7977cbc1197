"""``benchmarks/critique_learning.py``: recorded proposals replay exactly; partial reports.

The study itself (SmolLM2 on vLLM) and its ``--smoke`` mode (five subprocess runs, over a
minute) are not run here; these tests cover the pieces whose mistakes would silently change
its numbers: every test-time policy must judge the very same proposals, and a report must
be written from whatever runs have finished.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from benchmark_modules import load_benchmark

from agentgym.engines.base import Completion, Engine, SamplingParams


def _study() -> ModuleType:
    return load_benchmark("critique_learning")


class CountingEngine(Engine):
    """Completions that name the prompt and seed; counts the prompts it generated for."""

    name = "counting"

    def __init__(self) -> None:
        self.generated = 0

    @property
    def tokenizer(self) -> Any:
        raise AssertionError("not used: the tests call generate with token ids")

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        self.generated += len(prompts)
        return [
            [Completion(f"{list(p)}@{params.seed_for(i)}", [len(p)], [], "stop")]
            for i, p in enumerate(prompts)
        ]


def test_recorded_proposals_replay_without_a_model(tmp_path: Path) -> None:
    study = _study()
    path = tmp_path / "samples.jsonl"
    inner = CountingEngine()
    params = SamplingParams(temperature=0.8, max_tokens=8, prompt_seeds=(1, 2))
    recorded = study.RecordedEngine(path, tokenizer=None, inner=inner)
    first = recorded.generate([[5, 6], [5, 6]], params)
    assert [c[0].text for c in first] == ["[5, 6]@1", "[5, 6]@2"]  # seeds kept apart
    # A second call: only the new (prompt, seed) pair reaches the model.
    recorded.generate([[5, 6], [7]], params.with_(prompt_seeds=(2, 3)))
    assert inner.generated == 3

    replay = study.RecordedEngine(path, tokenizer=None)  # a fresh process: no model at all
    again = replay.generate([[5, 6], [7]], params.with_(prompt_seeds=(1, 3)))
    assert [c[0].text for c in again] == ["[5, 6]@1", "[7]@3"]
    with pytest.raises(RuntimeError, match="never recorded"):
        replay.generate([[5, 6]], params.with_(prompt_seeds=(9,)))
    with pytest.raises(RuntimeError, match="never recorded"):  # other settings, other key
        replay.generate([[7]], params.with_(prompt_seeds=(3,), temperature=0.5))


def _summary(rates: dict[str, float]) -> dict[str, Any]:
    cell = {"episodes": 4, "success_ci95": [0.0, 1.0], "mean_reward": 0.0}
    return {n: {**cell, "success_rate": rate} for n, rate in rates.items()}


def test_a_partial_report_pools_finished_seeds(tmp_path: Path) -> None:
    study = _study()
    phase = {"critic": {"agreement_with_environment": 1.0}, "counts": {}, "seconds": 1.0}
    testtime = {
        "0": {"oracle-refine": {**phase, "summary": {"plain": _summary({"1": 0.25, "2": 0.5}),
                                                      "critic": _summary({"1": 0.5, "2": 1.0})}},
              "oracle-vote": {**phase, "summary": {"plain": _summary({"1": 0.25, "2": 0.5}),
                                                    "critic": _summary({"1": 0.25, "2": 0.75})}}},
        "1": {"oracle-refine": {**phase, "summary": {"plain": _summary({"1": 0.0, "2": 0.25}),
                                                      "critic": _summary({"1": 0.5, "2": 0.5})}}},
    }  # fmt: skip
    rows = [{"success_rate": 0.25, "episodes": 4}, {"success_rate": 0.5, "episodes": 4}]
    sampled = {"episodes": 8, "successes": 2}
    runs = {"testtime": testtime,
            "critique": {"0": {"rows": rows, "phases": {}, "sampled": sampled}}}  # fmt: skip
    meta = {"protocol": {"ns": [1, 2], "model": "m", "heldout": 4, "temperature": 0.8},
            "seconds": {}, "complete": False}  # fmt: skip
    study.write_report(runs, meta, tmp_path)

    report = json.loads((tmp_path / "results.json").read_text())
    rows = {row["policy"]: row["by_n"] for row in report["tables"]["testtime"]}
    assert rows["plain"]["2"]["success_rate"] == 3 / 8  # 2 of 4 + 1 of 4
    assert rows["plain"]["2"]["per_seed"] == {"0": 0.5, "1": 0.25}
    assert rows["oracle-refine"]["1"]["success_rate"] == 0.5
    assert rows["oracle-vote"]["2"]["episodes"] == 4  # seed 1 has no such phase yet
    assert "trained-vote" not in rows
    training = {row["method"]: row for row in report["tables"]["training"]}
    assert training["base"]["success_rate"] == 0.25
    assert training["critique"]["success_rate"] == 0.5 and "rft" not in training
    assert report["tables"]["plain_votes_identical_across_phases"] == {"0": True, "1": True}
    text = (tmp_path / "results.md").read_text()
    assert "PARTIAL" in text and "0.375 [" in text
    assert (tmp_path / "critique_testtime.png").stat().st_size > 0
    assert (tmp_path / "critique_training.png").stat().st_size > 0
