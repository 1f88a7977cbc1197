"""LeTI: samples from real CodeExec rollouts (expert and a real model), config checks, a run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.engines import make_engine
from agentgym.engines.base import SamplingParams
from agentgym.envs.codeexec.env import CodeExecEnv
from agentgym.models import resolve_model
from agentgym.trainers import TRAINERS
from agentgym.trainers.data import IGNORE_INDEX, trajectories_to_examples
from agentgym.trainers.leti import LeTIConfig, leti_trajectories

ENV_ID = "agentgym/CodeExec-v0"
TINY = "tiny-random-llama"


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model(TINY))


@pytest.fixture(scope="module")
def expert_episodes():
    collector = RolloutCollector(
        ENV_ID, engine=None, num_envs=2, expert_kwargs={"error_rate": 1.0},
        env_kwargs={"reward_token_prefix": "<|good|>", "difficulty": "medium"},
    )  # fmt: skip
    episodes = collector.run([EpisodeSpec(f"x{i}", seed=i) for i in range(4)], progress=False)
    collector.close()
    return episodes


def test_every_attempt_becomes_a_sample_with_its_token_and_feedback(expert_episodes) -> None:
    samples = leti_trajectories(expert_episodes, CodeExecEnv.condition_on_feedback)
    assert len(samples) == sum(t.num_steps for t in expert_episodes)
    good = [s for s in samples if s.success]
    bad = [s for s in samples if not s.success]
    assert good and bad
    for sample in good:
        prompt = sample.messages[-2].content
        assert prompt.startswith("<|good|>\n") and "Execution feedback" not in prompt
        assert prompt.count("<|good|>") == 1  # the env's own prefix was replaced, not doubled
    for sample in bad:
        prompt = sample.messages[-2].content
        assert prompt.startswith("<|bad|>\nExecution feedback:\n")
        assert "tests passed" in prompt or "error" in prompt
    for sample in samples:
        assert sample.messages[0].role == "system"
        assert [m.trainable for m in sample.messages] == [False, False, True]
        assert "```python" in sample.messages[-1].content


def test_binary_feedback_drops_the_text(expert_episodes) -> None:
    samples = leti_trajectories(
        expert_episodes,
        CodeExecEnv.condition_on_feedback,
        textual_feedback=False,
        bad_token="[BAD]",
    )
    bad = [s for s in samples if not s.success]
    assert bad and all(s.messages[-2].content.startswith("[BAD]\n") for s in bad)
    assert not any("Execution feedback" in s.messages[-2].content for s in samples)


def test_samples_tokenise_with_loss_on_the_program_only(expert_episodes, tokenizer) -> None:
    samples = leti_trajectories(expert_episodes, CodeExecEnv.condition_on_feedback)
    examples = trajectories_to_examples(samples, tokenizer)
    assert len(examples) == len(samples)
    for sample, example in zip(samples, examples, strict=True):
        trained = [i for i, label in zip(example.input_ids, example.labels, strict=True)
                   if label != IGNORE_INDEX]  # fmt: skip
        text = tokenizer.decode(trained)
        assert sample.messages[-1].content.strip() in text
        whole = tokenizer.decode(list(example.input_ids))
        assert ("<|good|>" in whole) == bool(sample.success)


def test_leti_data_from_a_real_model_rollout(tokenizer) -> None:
    engine = make_engine("hf", model=str(resolve_model(TINY)))
    collector = RolloutCollector(
        ENV_ID, engine=engine, num_envs=2, max_context_tokens=1024,
        env_kwargs={"reward_token_prefix": "<|good|>", "max_attempts": 2},
        sampling=SamplingParams(temperature=1.0, max_tokens=8, seed=0),
    )  # fmt: skip
    episodes = collector.run([EpisodeSpec(f"m{i}", seed=i) for i in range(2)], progress=False)
    collector.close()
    assert all(t.error is None and t.num_steps >= 1 for t in episodes)
    assert episodes[0].messages[1].content.startswith("<|good|>")
    samples = leti_trajectories(episodes, CodeExecEnv.condition_on_feedback)
    assert len(samples) == sum(t.num_steps for t in episodes)
    # A random model writes no passing program: every sample is bad, with the env's feedback.
    assert all(not s.success for s in samples)
    assert all(s.messages[-2].content.startswith("<|bad|>\nExecution feedback:") for s in samples)
    examples = trajectories_to_examples(samples, tokenizer, max_length=1024)
    assert examples and all(e.num_trained_tokens > 0 for e in examples)


def test_config_is_registered_and_validated() -> None:
    assert TRAINERS["leti"] == (LeTIConfig, "agentgym.trainers.leti:leti_recipe")
    with pytest.raises(ValueError, match="good_token and bad_token must differ"):
        LeTIConfig(good_token="<x>", bad_token="<x>")
    with pytest.raises(ValueError, match="expert_error_rate must be in"):
        LeTIConfig(expert_error_rate=1.5)


def test_train_leti_end_to_end_on_a_tiny_model(tmp_path: Path) -> None:
    run_dir = tmp_path / "leti"
    command = [
        sys.executable, "-m", "agentgym.cli", "train", "trainer=leti", "env=codeexec",
        f"model={TINY}", "engine=hf", "num_envs=2", "sampling.max_tokens=8",
        "eval.episodes=1", "sft.epochs=1", "sft.learning_rate=1e-3", "progress=false",
        "trainer.iterations=1", "trainer.train_tasks=2", "trainer.samples_per_task=1",
        "trainer.expert_error_rate=1.0", "max_turns=2", "env.kwargs.max_attempts=2",
        f"run_dir={run_dir}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    counts = next(m for m in metrics if "leti/good_samples" in m)
    assert counts["leti/good_samples"] >= 2 and counts["leti/bad_samples"] >= 2
    tuned = AutoModelForCausalLM.from_pretrained(run_dir / "checkpoints" / "iter-1")
    base = AutoModelForCausalLM.from_pretrained(resolve_model(TINY))
    assert any(
        not torch.equal(a, b) for a, b in zip(tuned.parameters(), base.parameters(), strict=True)
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [row["iteration"] for row in summary["rows"]] == [0, 1]
