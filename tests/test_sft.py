"""SFT on a tiny random model: parameters move, loss falls, masks hold."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModelForCausalLM

from agentgym.models import resolve_model
from agentgym.trainers.data import IGNORE_INDEX, TrainingExample
from agentgym.trainers.sft import (
    SFTConfig,
    batches,
    collate,
    collate_packed,
    sft_loss,
    train_sft,
)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))


def _example(ids: list[int], trained_from: int) -> TrainingExample:
    labels = [IGNORE_INDEX] * trained_from + ids[trained_from:]
    return TrainingExample(tuple(ids), tuple(labels))


def test_parameters_change_after_one_step(model) -> None:
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_sft(model, [_example([1, 5, 6, 7, 8], 2)] * 2,
              SFTConfig(epochs=1, batch_size=2, learning_rate=1e-3, progress=False))  # fmt: skip
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before)


def test_loss_falls_on_a_memorisable_set(model) -> None:
    rng = random.Random(0)
    data = [_example([1] + [rng.randrange(10, 500) for _ in range(12)], 4) for _ in range(4)]
    history = train_sft(
        model,
        data,
        SFTConfig(epochs=30, batch_size=4, micro_batch_size=2, learning_rate=3e-3,
                  warmup_ratio=0.0, progress=False),
    )  # fmt: skip
    assert history[0]["loss"] > 5.0
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert all(h["trained_tokens"] == 4 * 9 for h in history)  # 13 ids, labels from 4


def test_loss_ignores_untrained_positions(model) -> None:
    a = _example([1, 20, 21, 22, 23, 24], 3)
    b = TrainingExample((1, 99, 98, 22, 23, 24), a.labels)  # differs only in masked context...
    loss_a, count_a = sft_loss(model, collate([a], 0))
    loss_b, _ = sft_loss(model, collate([b], 0))
    assert count_a == 3
    assert not torch.isclose(loss_a, loss_b)  # ...which conditions the prediction,
    masked = TrainingExample(a.input_ids, (IGNORE_INDEX,) * 6)
    assert sft_loss(model, collate([masked], 0))[1] == 0  # but carries no loss itself.
    # Padding never adds loss: a padded batch's loss equals the sum of the parts.
    short = _example([1, 30, 31], 1)
    together, n_together = sft_loss(model, collate([a, short], 0))
    alone = sft_loss(model, collate([a], 0))[0] + sft_loss(model, collate([short], 0))[0]
    assert n_together == 5 and torch.isclose(together, alone, rtol=1e-4)


def test_gradient_accumulation_matches_one_big_batch() -> None:
    data = [_example([1, 40 + i, 41, 42, 43 + i], 1) for i in range(4)]
    results = []
    for micro in (4, 1):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))
        train_sft(model, data, SFTConfig(epochs=1, batch_size=4, micro_batch_size=micro,
                                         learning_rate=1e-3, prefix_sharing=False,
                                         progress=False))  # fmt: skip
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-5)


def test_packed_rows_give_the_padded_loss() -> None:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))
    parts = [_example([1, 20, 21, 22, 23, 24], 2), _example([1, 30, 31], 1),
             _example([1, 50, 51, 52, 53], 3)]  # fmt: skip
    packed, n_packed = sft_loss(model, collate_packed(parts))
    padded, n_padded = sft_loss(model, collate(parts, 0))
    assert n_packed == n_padded == 4 + 2 + 2
    torch.testing.assert_close(packed, padded, atol=1e-4, rtol=1e-5)
    # Attention stays inside each example: changing one leaves the others' loss unchanged.
    other = [parts[0], _example([1, 90, 91], 1), parts[2]]
    first_only = sft_loss(model, collate_packed(parts[:1]))[0]
    changed = sft_loss(model, collate_packed(other))[0] - sft_loss(model, collate([other[1]], 0))[0]
    assert torch.isclose(changed - sft_loss(model, collate([parts[2]], 0))[0], first_only,
                         atol=1e-4)  # fmt: skip


def _train_tiny(**options) -> tuple[list[dict], torch.Tensor, object]:
    """Two epochs on six short examples from the same seed: history, final weights, model."""
    data = [_example([1, 40 + i] + [60] * i, 1) for i in range(6)]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))
    config = SFTConfig(epochs=2, batch_size=6, micro_batch_size=2, learning_rate=1e-3,
                       progress=False, **options)  # fmt: skip
    history = train_sft(model, data, config)
    return history, torch.cat([p.detach().flatten() for p in model.parameters()]), model


def test_packed_training_matches_padded_training() -> None:
    # Prefix trees would replace both layouts: compare the two themselves.
    padded_history, padded, _ = _train_tiny(max_tokens_per_micro_batch=16, prefix_sharing=False)
    packed_history, packed, _ = _train_tiny(
        max_tokens_per_micro_batch=16, packing=True, prefix_sharing=False
    )
    assert [h["trained_tokens"] for h in padded_history] == [
        h["trained_tokens"] for h in packed_history
    ]
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=0)


def test_batches_group_by_length_and_respect_token_budget() -> None:
    data = [_example([1] * n, 0) for n in (3, 50, 4, 49, 5, 48, 6, 47)]
    steps = batches(data, batch_size=8, micro_batch_size=4, max_tokens_per_micro_batch=100,
                    rng=random.Random(0))  # fmt: skip
    assert len(steps) == 1
    for micro in steps[0]:
        lengths = [len(e.input_ids) for e in micro]
        assert max(lengths) * len(lengths) <= 100
    assert sorted(len(e.input_ids) for m in steps[0] for e in m) == sorted(
        len(e.input_ids) for e in data
    )


def test_config_validation_lists_problems() -> None:
    with pytest.raises(ValueError, match=r"learning_rate must be > 0.*schedule must be"):
        SFTConfig(learning_rate=0, schedule="linear")
    with pytest.raises(ValueError, match="multiple of micro_batch_size"):
        SFTConfig(batch_size=6, micro_batch_size=4)


def test_loss_on_kept_positions_equals_the_full_logits_loss(model, monkeypatch) -> None:
    import agentgym.trainers.objectives as objectives

    parts = [_example([1, 20, 21, 22, 23, 24], 4), _example([1, 30, 31], 1)]
    kept, n_kept = sft_loss(model, collate(parts, 0))
    monkeypatch.setattr(objectives, "_supports_logits_to_keep", lambda model: False)
    full, n_full = sft_loss(model, collate(parts, 0))
    assert n_kept == n_full == 4
    torch.testing.assert_close(kept, full, atol=1e-4, rtol=1e-5)


def test_right_padded_batches_train_without_a_mask_and_give_each_examples_loss(model) -> None:
    parts = [_example([1, 20, 21, 22, 23, 24], 2), _example([1, 30, 31], 1),
             _example([1, 50, 51, 52, 53], 3)]  # fmt: skip
    batch = collate(parts, 0)
    seen: list[dict] = []
    handle = model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw), with_kwargs=True)
    padded, count = sft_loss(model, batch)
    handle.remove()
    assert "attention_mask" not in seen[0]  # the causal kernel, no length^2 mask
    alone = sum(sft_loss(model, collate([part], 0))[0] for part in parts)
    torch.testing.assert_close(padded, alone, atol=1e-4, rtol=1e-5)
    assert count == 4 + 2 + 2
    # A mask that is not plain right padding is passed on as it is.
    batch["attention_mask"][1, 0] = 0
    seen.clear()
    handle = model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw), with_kwargs=True)
    sft_loss(model, batch)
    handle.remove()
    assert "attention_mask" in seen[0]


def test_gradient_checkpointing_trains_the_same_weights_and_is_switched_off_after() -> None:
    plain_history, plain, _ = _train_tiny()
    checkpointed_history, checkpointed, model = _train_tiny(gradient_checkpointing=True)
    assert not model.is_gradient_checkpointing
    assert [h["loss"] for h in checkpointed_history] == pytest.approx(
        [h["loss"] for h in plain_history], rel=1e-5
    )
    torch.testing.assert_close(checkpointed, plain, atol=1e-5, rtol=0)
