"""FAFT: the feedback-conditioned dataset from TravelPlanner episodes, config checks, a tiny run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from transformers import AutoModelForCausalLM

import agentgym  # noqa: F401
from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.envs.travelplanner.judge import evaluate, success_feedback
from agentgym.envs.travelplanner.plans import parse_plan
from agentgym.models import resolve_model
from agentgym.trainers import TRAINERS
from agentgym.trainers.faft import FAFTConfig, feedback_examples

ENV_ID = "agentgym/TravelPlanner-v0"


def _expert_episodes(mode: str, error_rate: float, count: int = 8):
    kwargs = {"mode": mode, "database_size": "small"}
    collector = RolloutCollector(
        ENV_ID, engine=None, env_kwargs=kwargs, num_envs=2, expert_kwargs={"error_rate": error_rate}
    )
    specs = [EpisodeSpec(f"e{i}", task_id=f"tp-train-mixed-{i}", seed=i) for i in range(count)]
    trajectories = collector.run(specs, progress=False)
    env = collector.envs[0].unwrapped
    collector.close()
    return trajectories, env


def test_examples_carry_each_plans_own_feedback():
    trajectories, env = _expert_episodes("sole-planning", error_rate=0.5)
    examples = feedback_examples(trajectories, env.condition_on_feedback)
    assert len(examples) == len(trajectories)
    kinds = {example.metadata["faft"] for example in examples}
    assert kinds == {"positive", "negative"}
    for example in examples:
        system, prompt, answer = example.messages
        assert system.role == "system" and prompt.role == "user" and answer.trainable
        assert all(m.token_ids is None for m in example.messages)
        assert prompt.content.endswith(f"feedback:\n{example.feedback}\ntravel plan:")
        # The feedback in the prompt is exactly what the evaluator says about the plan.
        query = env.tasks[env.tasks.index_of(example.task_id)]
        plan, error = parse_plan(answer.content)
        assert error is None
        assert evaluate(query, plan, env.database).feedback == example.feedback
        if example.metadata["faft"] == "positive":
            assert example.feedback == success_feedback(query)
        else:
            assert ": fail, reason: " in example.feedback


def test_two_stage_examples_use_the_planner_prompt():
    trajectories, env = _expert_episodes("two-stage", error_rate=0.0, count=3)
    examples = feedback_examples(trajectories, env.condition_on_feedback)
    assert len(examples) == 3
    for example in examples:
        prompt = example.messages[1].content
        assert "reference information:\n[0] " in prompt and "NotebookWrite" not in prompt
        assert example.metadata["faft"] == "positive"


def test_unreadable_answers_become_negatives_on_the_planning_prompt():
    env = gym.make(ENV_ID, mode="sole-planning", database_size="small", max_plan_attempts=2)
    trajectories, _ = _expert_episodes("sole-planning", error_rate=0.0, count=1)
    episode = trajectories[0]
    observation, info = env.reset(options={"task_id": episode.task_id})
    from agentgym.core.trajectory import Message

    first = env.step("no idea")[0]
    final, _, terminated, _, info = env.step("still no idea")
    assert terminated
    episode.messages = [
        episode.messages[0],
        Message("user", observation),
        Message("assistant", "no idea", trainable=True),
        Message("user", first),
        Message("assistant", "still no idea", trainable=True),
        Message("user", final),
    ]
    episode.feedback, episode.success = info["feedback"], False
    [example] = feedback_examples([episode], env.unwrapped.condition_on_feedback)
    assert example.messages[1].content.startswith(observation.rsplit("travel plan:", 1)[0])
    assert "is_not_absent: fail, reason: No plan was delivered." in example.messages[1].content
    assert example.messages[2].content == "still no idea"


def test_config_checks_and_registration():
    assert TRAINERS["faft"][0] is FAFTConfig
    with pytest.raises(ValueError, match="expert_error_rate must be in"):
        FAFTConfig(expert_error_rate=2.0)
    with pytest.raises(ValueError, match="set samples_per_task or expert_episodes_per_task"):
        FAFTConfig(samples_per_task=0, expert_episodes_per_task=0)


def test_faft_trains_a_tiny_model(tmp_path: Path):
    run_dir = tmp_path / "faft"
    command = [
        sys.executable,
        "-m",
        "agentgym.cli",
        "train",
        "model=tiny-random-llama",
        "engine=hf",
        "num_envs=2",
        "sampling.max_tokens=8",
        "eval.episodes=1",
        "sft.epochs=1",
        "sft.learning_rate=1e-3",
        "progress=false",
        f"run_dir={run_dir}",
        "trainer=faft",
        "env=travelplanner",
        "env.kwargs.mode=sole-planning",
        "env.kwargs.database_size=small",
        "env.kwargs.compact_reference=true",
        "env.kwargs.extra_reference_cities=0",
        "env.kwargs.difficulty=easy",
        "env.kwargs.days=3",
        "env.kwargs.max_plan_attempts=1",
        "trainer.train_tasks=2",
        "trainer.samples_per_task=1",
        "trainer.expert_episodes_per_task=2",
        "max_context_tokens=2048",
        "max_turns=2",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    counts = next(m for m in metrics if "faft/positives" in m)
    assert counts["faft/positives"] >= 1 and counts["faft/negatives"] >= 1
    assert any("train/loss" in m for m in metrics)
    tuned = AutoModelForCausalLM.from_pretrained(run_dir / "checkpoints" / "iter-1")
    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))
    assert any(
        not torch.equal(a, b) for a, b in zip(tuned.parameters(), base.parameters(), strict=True)
    )
