"""Trajectories to training examples: exact ids, masks, and agreement of both paths."""

from __future__ import annotations

import dataclasses

import pytest
from test_collector import ScriptedEngine, calculator_solver
from transformers import AutoTokenizer

from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.core.trajectory import Message, Trajectory
from agentgym.models import resolve_model
from agentgym.trainers.data import IGNORE_INDEX, trajectories_to_examples, trajectory_to_example


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model("tiny-random-llama"))


def _trained_text(tokenizer, example) -> list[str]:
    """The decoded runs of trained positions."""
    runs, current = [], []
    for token, label in zip(example.input_ids, example.labels, strict=True):
        if label != IGNORE_INDEX:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    return runs


def test_engine_trajectories_use_their_exact_ids_and_match_the_template_path(tokenizer) -> None:
    engine = ScriptedEngine(tokenizer, calculator_solver)
    collector = RolloutCollector(
        "agentgym/Calculator-v0", engine=engine, env_kwargs={"difficulty": "medium"}
    )
    trajectories = collector.run([EpisodeSpec(f"e{i}", seed=i) for i in range(4)], progress=False)
    for trajectory in trajectories:
        exact = trajectory_to_example(trajectory, tokenizer)
        assistant_ids = [m.token_ids for m in trajectory.messages if m.role == "assistant"]
        trained = [t for t, label in zip(exact.input_ids, exact.labels, strict=True)
                   if label != IGNORE_INDEX]  # fmt: skip
        assert trained == [i for ids in assistant_ids for i in ids]
        # The same conversation without ids, tokenised through the template, gives the same
        # example: expert data and rollout data cannot drift apart.
        stripped = dataclasses.replace(
            trajectory,
            messages=[
                dataclasses.replace(m, token_ids=None, logprobs=None) for m in trajectory.messages
            ],
        )
        assert trajectory_to_example(stripped, tokenizer) == exact


def test_expert_trajectories_train_only_on_replies_with_end_of_turn(tokenizer) -> None:
    collector = RolloutCollector("agentgym/Calculator-v0", engine=None,
                                 env_kwargs={"difficulty": "medium"})  # fmt: skip
    [trajectory] = collector.run([EpisodeSpec("x", seed=1)], progress=False)
    example = trajectory_to_example(trajectory, tokenizer)
    replies = [m.content for m in trajectory.messages if m.role == "assistant"]
    assert _trained_text(tokenizer, example) == [reply + "<|im_end|>" for reply in replies]
    # The closing evaluator message is dropped; the system prompt and user turns are context.
    text = tokenizer.decode(example.input_ids)
    assert "Episode finished" not in text and text.startswith("<|im_start|>system\n")


def test_max_length_and_untrained_trajectories(tokenizer) -> None:
    trajectory = Trajectory(
        "env", "t",
        messages=[Message("user", "hello " * 50), Message("assistant", "hi", trainable=True)],
    )  # fmt: skip
    cut = trajectory_to_example(trajectory, tokenizer, max_length=10)
    assert len(cut.input_ids) == 10 and cut.num_trained_tokens == 0
    untrained = Trajectory("env", "u", messages=[Message("user", "a"), Message("assistant", "b")])
    assert trajectories_to_examples([untrained, trajectory], tokenizer) == [
        trajectory_to_example(trajectory, tokenizer)
    ]


def test_a_trajectory_must_open_with_context(tokenizer) -> None:
    lonely = Trajectory("env", "t", messages=[Message("assistant", "hi", trainable=True)])
    with pytest.raises(ValueError, match="non-assistant message"):
        trajectory_to_example(lonely, tokenizer)
