"""Policy-gradient pieces: losses by hand, the sampling-distribution rule, advantages, sync."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agentgym.core.trajectory import Message, Step, Trajectory
from agentgym.engines.base import SamplingParams
from agentgym.engines.hf import HFEngine
from agentgym.models import resolve_model
from agentgym.trainers.advantages import (
    discounted_returns,
    episode_advantages,
    turn_advantages,
    turn_rewards,
)
from agentgym.trainers.batching import collate
from agentgym.trainers.data import IGNORE_INDEX, TrainingExample, policy_gradient_example
from agentgym.trainers.grpo import build_examples, group_advantages
from agentgym.trainers.learner import Learner, score_examples
from agentgym.trainers.objectives import (
    PolicyGradientObjective,
    SFTObjective,
    TokenStats,
    k3_kl,
    normalisation_weights,
    sampling_logprobs,
    token_stats,
    trained_values,
)
from agentgym.trainers.sync import WeightSyncError, verify_weight_sync

TINY = resolve_model("tiny-random-llama")


@pytest.fixture
def model():
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(TINY)


def _example(ids, trained_from, advantage=0.0) -> TrainingExample:
    labels = [IGNORE_INDEX] * trained_from + list(ids[trained_from:])
    advantages = [0.0] * trained_from + [advantage] * (len(ids) - trained_from)
    return TrainingExample(tuple(ids), tuple(labels), advantages=tuple(advantages),
                           behaviour_logprobs=(0.0,) * len(ids))  # fmt: skip


# ------------------------------------------------------------------ losses by hand --


def test_clipped_loss_matches_a_hand_computation() -> None:
    objective = PolicyGradientObjective(clip_low=0.2, clip_high=0.28)
    logprobs = torch.tensor([math.log(0.5), math.log(0.9), math.log(0.3), math.log(0.1)])
    behaviour = torch.tensor([math.log(0.25), math.log(0.9), math.log(0.6), math.log(0.2)])
    advantages = torch.tensor([1.0, 1.0, -1.0, 2.0])
    losses, metrics = objective.token_losses(
        TokenStats(logprobs), {"advantages": advantages, "behaviour_logprobs": behaviour}
    )
    # ratios 2.0, 1.0, 0.5, 0.5
    # token 0: A>0, ratio 2 > 1.28 -> clipped: -1.28
    # token 1: ratio 1 -> -1
    # token 2: A<0, ratio 0.5 < 0.8: min(0.5 * -1, 0.8 * -1) = -0.8 -> loss 0.8 (clipped)
    # token 3: A>0, ratio 0.5: min(1.0, 0.8 * 2) = 1.0 -> loss -1.0 (unclipped, pessimistic)
    torch.testing.assert_close(losses, torch.tensor([-1.28, -1.0, 0.8, -1.0]))
    assert metrics["clip_fraction"] == pytest.approx(3 / 4)  # ratios 2, 0.5, 0.5 are outside


def test_kl_and_entropy_terms_match_a_hand_computation() -> None:
    objective = PolicyGradientObjective(kl_coef=0.1, entropy_coef=0.01)
    logprobs = torch.tensor([-1.0, -2.0])
    reference = torch.tensor([-1.5, -2.0])
    entropy = torch.tensor([0.7, 1.2])
    values = {"advantages": torch.zeros(2), "behaviour_logprobs": logprobs.clone(),
              "reference_logprobs": reference}  # fmt: skip
    losses, metrics = objective.token_losses(TokenStats(logprobs, entropy), values)
    r = -0.5  # reference - logp on token 0
    expected_kl = torch.tensor([math.exp(r) - r - 1, 0.0])
    torch.testing.assert_close(k3_kl(logprobs, reference), expected_kl)
    torch.testing.assert_close(losses, 0.1 * expected_kl - 0.01 * entropy)
    assert metrics["kl"] == pytest.approx(float(expected_kl.mean()))


def test_normalisations_weight_tokens_as_documented() -> None:
    long, short = _example([1, 2, 3, 4, 5], 1), _example([1, 2, 3], 1)  # 4 and 2 tokens
    assert normalisation_weights([long, short], "token") == [1 / 6, 1 / 6]
    assert normalisation_weights([long, short], "sequence") == [1 / 8, 1 / 4]
    assert normalisation_weights([long, short], "constant", constant=10) == [1 / 20, 1 / 20]
    with pytest.raises(ValueError, match="normalisation must be one of"):
        normalisation_weights([long], "batch")


def test_step_loss_is_the_weighted_sum_of_token_losses(model) -> None:
    """The learner's loss over two micro-batches equals a hand sum over sequences (GRPO)."""
    examples = [_example([1, 5, 6, 7, 8], 2, 1.0), _example([1, 9, 10], 1, -0.5)]
    scored = score_examples(model, examples, "behaviour_logprobs")
    objective = PolicyGradientObjective(normalisation="sequence")
    expected = 0.0
    for example in scored:
        stats = token_stats(model, collate([example], 0))
        count = stats.count
        advantage = example.advantages[-1]
        expected += float(-(advantage * torch.ones(count)).sum()) / (count * 2)
    learner = Learner(copy.deepcopy(model), learning_rate=1e-3)
    metrics = learner.step([[scored[0]], [scored[1]]], objective)
    assert metrics["loss"] == pytest.approx(expected, abs=1e-5)
    assert metrics["clip_fraction"] == 0.0  # ratio exactly 1 before the update
    assert metrics["approx_kl"] == pytest.approx(0.0, abs=1e-5)


def test_kl_is_zero_before_the_first_update(model) -> None:
    examples = score_examples(model, [_example([1, 5, 6, 7, 8], 2, 1.0)], "behaviour_logprobs")
    examples = score_examples(copy.deepcopy(model), examples, "reference_logprobs")
    objective = PolicyGradientObjective(kl_coef=0.5, entropy_coef=0.0)
    metrics = Learner(model, learning_rate=1e-3).step([examples], objective)
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-6)


def test_kl_reference_with_lora_is_the_adapter_disabled_model(model) -> None:
    from agentgym.trainers.lora import LoRAConfig, apply_lora

    lora = apply_lora(copy.deepcopy(model), LoRAConfig(enabled=True, rank=4, dropout=0.0))
    example = _example([1, 5, 6, 7, 8], 2, 1.0)
    with torch.no_grad():
        for name, parameter in lora.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    with lora.disable_adapter():
        [with_reference] = score_examples(lora, [example], "reference_logprobs")
    [base] = score_examples(model, [example], "reference_logprobs")
    [adapted] = score_examples(lora, [example], "reference_logprobs")
    torch.testing.assert_close(torch.tensor(with_reference.reference_logprobs),
                               torch.tensor(base.reference_logprobs))  # fmt: skip
    assert adapted.reference_logprobs != base.reference_logprobs


def test_positive_advantage_raises_and_negative_lowers_the_tokens_logprobs(model) -> None:
    good, bad = _example([1, 5, 6, 7], 1, 1.0), _example([1, 9, 10, 11], 1, -1.0)
    scored = score_examples(model, [good, bad], "behaviour_logprobs")
    Learner(model, learning_rate=1e-2).step([scored], PolicyGradientObjective())
    after = score_examples(model, scored, "reference_logprobs")
    assert sum(after[0].reference_logprobs) > sum(scored[0].behaviour_logprobs)
    assert sum(after[1].reference_logprobs) < sum(scored[1].behaviour_logprobs)


def test_sft_objective_is_the_negative_log_likelihood(model) -> None:
    example = _example([1, 5, 6, 7], 1)
    stats = token_stats(model, collate([example], 0))
    losses, _ = SFTObjective().token_losses(stats, {})
    logits = model(torch.tensor([example.input_ids])).logits[0, :-1]
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(example.input_ids[1:]),
                                                 reduction="none")  # fmt: skip
    torch.testing.assert_close(losses, expected, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ the sampling rule --


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 1.0), (0.7, 0.8), (1.3, 0.5)])
def test_trainer_logprobs_are_those_the_engine_sampled_from(model, temperature, top_p) -> None:
    """Recomputed log-probs equal the HF engine's recorded ones (temperature and top-p)."""
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    engine = HFEngine(str(TINY), model_instance=model, tokenizer=tokenizer)
    prompt = tokenizer("Hello there, agent")["input_ids"]
    params = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=12, seed=5)
    [[completion]] = engine.generate([prompt], params)
    ids = list(prompt) + list(completion.token_ids)
    labels = [IGNORE_INDEX] * len(prompt) + list(completion.token_ids)
    example = TrainingExample(tuple(ids), tuple(labels))
    stats = token_stats(model.eval(), collate([example], 0), temperature=temperature, top_p=top_p)
    torch.testing.assert_close(stats.logprobs, torch.tensor(completion.logprobs), atol=1e-4,
                               rtol=0)  # fmt: skip
    if temperature != 1.0 or top_p != 1.0:  # and they differ from the plain softmax's
        plain = token_stats(model, collate([example], 0))
        assert not torch.allclose(plain.logprobs, stats.logprobs, atol=1e-3)


def test_top_p_nucleus_and_entropy() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    logp, entropy = sampling_logprobs(logits, torch.tensor([1]), top_p=0.8, entropy=True)
    # the nucleus is {0.5, 0.3} (cumulative 0.8), renormalised
    assert float(logp) == pytest.approx(math.log(0.3 / 0.8), abs=1e-6)
    p = torch.tensor([0.5, 0.3]) / 0.8
    assert float(entropy) == pytest.approx(float(-(p * p.log()).sum()), abs=1e-6)
    outside, _ = sampling_logprobs(logits, torch.tensor([3]), top_p=0.8)
    assert outside.item() == float("-inf")


def test_a_token_outside_the_nucleus_gives_a_finite_loss_and_gradient(model) -> None:
    example = _example([1, 5, 6, 7], 1, 1.0)
    example = score_examples(model, [example], "behaviour_logprobs")[0]
    example = score_examples(model, [example], "reference_logprobs")[0]
    objective = PolicyGradientObjective(top_p=0.05, kl_coef=0.1, entropy_coef=0.01)
    metrics = Learner(model, learning_rate=1e-3).step([[example]], objective)
    assert math.isfinite(metrics["loss"]) and math.isfinite(metrics["grad_norm"])


def test_trained_values_follow_the_token_order() -> None:
    a, b = _example([1, 2, 3], 1, 1.0), _example([1, 2, 3, 4, 5], 3, -2.0)
    batch = collate([a, b], 0)
    assert trained_values(batch, "advantages").tolist() == [1.0, 1.0, -2.0, -2.0]


# ------------------------------------------------------------------ advantages --


def _episode(
    reward: float, progress: list[float | None], task: str = "t", id_: str = ""
) -> Trajectory:
    trajectory = Trajectory("env", task, id=id_ or f"{task}-{reward}-{progress}", reward=reward)
    trajectory.messages.append(Message("user", "q", token_ids=[1, 2]))
    for turn, value in enumerate(progress):
        turn_ids, logprobs = [10 + turn, 3], [-0.5, -0.1]
        trajectory.messages.append(
            Message("assistant", "a", trainable=True, token_ids=turn_ids, logprobs=logprobs)
        )
        trajectory.messages.append(Message("user", "o", token_ids=[4]))
        trajectory.steps.append(Step("a", "o", 0.0, progress=value))
    return trajectory


def test_turn_level_credit_on_constructed_trajectories() -> None:
    # Both episodes succeed, one makes its progress a turn earlier.
    early = _episode(1.0, [0.5, 1.0, 1.0])
    late = _episode(1.0, [0.0, 0.5, 1.0])
    assert turn_rewards([0.5, 1.0, 1.0], episode_reward=1.0) == [0.5, 0.5, 0.0]
    assert discounted_returns([0.5, 0.5, 0.0], gamma=0.5) == [0.75, 0.5, 0.0]
    turn = group_advantages([early, late], estimator="turn", std_normalise=False, gamma=1.0)
    episode = group_advantages([early, late], estimator="episode", std_normalise=False, gamma=1.0)
    assert episode == [[0.0] * 3, [0.0] * 3]  # equal rewards: no episode-level signal
    # returns: early [1, .5, 0], late [1, 1, .5] -> depth means [1, .75, .25]
    assert turn == [[0.0, -0.25, -0.25], [0.0, 0.25, 0.25]]
    normalised = turn_advantages([[1.0, 0.5, 0.0], [1.0, 1.0, 0.5]], std_normalise=True)
    assert normalised[0][1] == pytest.approx(-1.0, abs=1e-4)


def test_build_examples_drops_groups_without_signal_and_trains_every_turn() -> None:
    informative = [_episode(1.0, [1.0], "a"), _episode(0.0, [0.0], "a")]
    flat = [_episode(0.0, [0.0], "b"), _episode(0.0, [0.0], "b", id_="b2")]
    examples, counts = build_examples([*informative, *flat], estimator="episode",
                                      std_normalise=True, gamma=1.0, max_length=None)  # fmt: skip
    assert counts == {"groups": 2, "groups_kept": 1, "groups_dropped": 1, "examples": 2}
    winner = next(e for e in examples if e.trajectory_id == informative[0].id)
    trained = [i for i, label in enumerate(winner.labels) if label != IGNORE_INDEX]
    assert [winner.input_ids[i] for i in trained] == [10, 3]  # the policy's turn only
    assert all(winner.advantages[i] == pytest.approx(1.0, abs=1e-4) for i in trained)
    assert [winner.behaviour_logprobs[i] for i in trained] == [-0.5, -0.1]


def test_policy_gradient_example_refuses_trajectories_without_logprobs() -> None:
    trajectory = _episode(1.0, [1.0])
    trajectory.messages[1].logprobs = None
    with pytest.raises(ValueError, match="no log-prob per sampled token"):
        policy_gradient_example(trajectory, [1.0])
    with pytest.raises(ValueError, match="1 policy turns but 2 advantages"):
        policy_gradient_example(_episode(1.0, [1.0]), [1.0, 2.0])


def test_episode_advantages_standardise_within_the_group() -> None:
    values = episode_advantages([1.0, 0.0, 0.0, 0.0])
    assert sum(values) == pytest.approx(0.0, abs=1e-9)
    assert values[0] == pytest.approx(math.sqrt(3), rel=1e-4)


# ------------------------------------------------------------------ weight sync --


def test_sync_check_passes_after_a_sync_and_fails_on_a_stale_engine(model) -> None:
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    engine_model = copy.deepcopy(model)  # an engine holding its own copy of the weights
    engine = HFEngine(str(TINY), model_instance=engine_model, tokenizer=tokenizer)
    assert verify_weight_sync(engine, model, tokenizer)["max_abs_diff"] < 1e-5
    with torch.no_grad():  # the trainer updates its weights...
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    with pytest.raises(WeightSyncError, match="not serving the updated policy"):
        verify_weight_sync(engine, model, tokenizer)  # ...and the engine was never told
    engine.update_weights(model)
    assert verify_weight_sync(engine, model, tokenizer)["max_abs_diff"] < 1e-5


def test_grpo_and_envtune_configs_list_every_problem() -> None:
    from hydra import compose, initialize_config_module

    from agentgym.config import ConfigError, validate_config

    with initialize_config_module("agentgym.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            "trainer=grpo", "trainer.group_size=1", "trainer.advantage=turns",
            "trainer.clip_low=2", "trainer.normalisation=batch", "trainer.std_normalise=maybe",
        ])  # fmt: skip
    with pytest.raises(ConfigError) as excinfo:
        validate_config(cfg, "train")
    text = str(excinfo.value)
    for expected in ("group_size must be >= 2", "advantage must be one of episode, turn",
                     "clip_low must be in [0, 1)", "normalisation must be one of",
                     "trainer.std_normalise='maybe': expected bool, got str"):  # fmt: skip
        assert expected in text, expected
    with initialize_config_module("agentgym.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            "trainer=envtune", "env=tooluse", "trainer.validation_tasks=0",
            "trainer.stages=[{name:a,reward_mode:dense}]",
        ])  # fmt: skip
    with pytest.raises(ConfigError) as excinfo:
        validate_config(cfg, "train")
    text = str(excinfo.value)
    assert "validation_tasks must be an integer >= 1" in text
    assert "stage 1 ('a')" in text and "reward_mode='dense'" in text
