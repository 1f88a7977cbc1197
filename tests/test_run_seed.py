"""The run's ``seed`` reaches sampling in every command.

Trainers name their episodes after the task (``it1-<task>-s0``), and every per-turn
sampling seed derives from ``sampling.seed`` and that id. Before the run's seed shifted
``sampling.seed``, two runs that differed only in ``seed=`` sampled the same completions
from the same model: the critique study's seed-1 ``trainer=critique`` run repeated seed
0's 64 samples exactly.
"""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module

from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.commands import _sampling
from agentgym.engines.hf import HFEngine
from agentgym.models import resolve_model


def _config(command: str, seed: int, *overrides: str):
    with initialize_config_module("agentgym.configs", version_base="1.3"):
        return compose(config_name=command, overrides=[f"seed={seed}", *overrides])


@pytest.mark.parametrize("command", ["train", "rollout", "eval"])
def test_the_run_seed_shifts_the_sampling_seed(command: str) -> None:
    base = _config(command, 0).sampling.seed
    seeds = [_sampling(_config(command, seed)).seed for seed in (0, 1, 2)]
    assert seeds == [base, base + 1, base + 2]  # seed 0 samples as before the shift
    unseeded = _config(command, 3, "sampling.seed=null")
    assert _sampling(unseeded).seed is None


def test_runs_that_differ_only_in_seed_sample_differently() -> None:
    """The same model, task and episode id: what a trainer's iteration samples per run."""
    engine = HFEngine(str(resolve_model("tiny-random-llama")))
    texts = {}
    for seed in (0, 1):
        sampling = _sampling(_config("train", seed, "sampling.max_tokens=12"))
        collector = RolloutCollector("agentgym/Calculator-v0", engine=engine, sampling=sampling,
                                     num_envs=2, max_turns=1, max_context_tokens=1024)  # fmt: skip
        specs = [EpisodeSpec(f"it1-task{i}-s0", seed=i) for i in range(2)]
        texts[seed] = [t.steps[0].action for t in collector.run(specs, progress=False)]
        collector.close()
    assert texts[0] != texts[1]
