"""LoRA fine-tuning: only adapters train, engines and checkpoints see the merged model."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from agentgym.engines.hf import HFEngine
from agentgym.models import resolve_model
from agentgym.trainers.common import Workbench
from agentgym.trainers.data import IGNORE_INDEX, TrainingExample
from agentgym.trainers.lora import (
    LoRAConfig,
    apply_lora,
    merged_state_dict,
    reset_lora,
    trainable_fraction,
)
from agentgym.trainers.run import ADAPTER_FOLDER, RunDir
from agentgym.trainers.sft import SFTConfig, train_sft

TINY = resolve_model("tiny-random-llama")
DATA = [
    TrainingExample((1, 40 + i, 41, 42, 43 + i), (IGNORE_INDEX, 40 + i, 41, 42, 43 + i))
    for i in range(4)
]


def _base() -> torch.nn.Module:
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(TINY)


def _trained_lora(rank: int = 4) -> torch.nn.Module:
    model = apply_lora(_base(), LoRAConfig(enabled=True, rank=rank, dropout=0.0))
    train_sft(model, DATA, SFTConfig(epochs=2, batch_size=4, learning_rate=1e-2,
                                     warmup_ratio=0.0, progress=False))  # fmt: skip
    return model


def test_config_lists_every_problem() -> None:
    with pytest.raises(ValueError) as error:
        LoRAConfig(rank=0, alpha=-1, dropout=1.5, target_modules=[])
    message = str(error.value)
    for fragment in ("rank", "alpha", "dropout", "target_modules"):
        assert fragment in message
    assert apply_lora(base := _base(), LoRAConfig(enabled=False)) is base


def test_only_adapters_train_and_the_merged_model_differs() -> None:
    base_state = {k: v.clone() for k, v in _base().state_dict().items()}
    model = _trained_lora()
    assert 0 < trainable_fraction(model) < 0.5
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad == ("lora_" in name), name
    frozen = model.get_base_model().state_dict()
    for key, value in frozen.items():
        if "lora_" not in key:
            assert torch.equal(value, base_state[key.replace(".base_layer.", ".")]), key
    merged = merged_state_dict(model)
    assert set(merged) == set(base_state)
    changed = [k for k in merged if not torch.equal(merged[k], base_state[k])]
    assert changed and all("proj" in k for k in changed)
    # The same weights peft's own merge gives, without mutating the model.
    reference = copy.deepcopy(model).merge_and_unload().state_dict()
    for key, value in merged.items():
        torch.testing.assert_close(value, reference[key], atol=1e-6, rtol=0)


def test_reset_brings_back_the_base_model() -> None:
    model = _trained_lora()
    reset_lora(model)
    base = _base().state_dict()
    for key, value in merged_state_dict(model).items():
        torch.testing.assert_close(value, base[key], atol=0, rtol=0)


def test_engine_sync_matches_the_lora_forward_pass() -> None:
    model = _trained_lora().eval()
    engine = HFEngine(str(TINY))
    engine.update_weights(model)
    ids = torch.tensor([[1, 40, 41, 42, 43]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        got = engine.model(input_ids=ids).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_checkpoint_is_merged_and_resumable(tmp_path: Path) -> None:
    model = _trained_lora()
    run = RunDir(tmp_path / "run", config={"x": 1}, tensorboard=False)
    path = run.save_checkpoint("iter-1", model)
    assert (path / ADAPTER_FOLDER / "adapter_model.safetensors").exists()
    loaded = AutoModelForCausalLM.from_pretrained(path)  # a plain model, as vLLM sees it
    merged = merged_state_dict(model)
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, merged[key], atol=1e-6, rtol=0)
    # A resumed run builds fresh adapters and loads the saved ones into them.
    fresh = apply_lora(_base(), LoRAConfig(enabled=True, rank=4, dropout=0.0))
    bench = Workbench.__new__(Workbench)
    bench.model = fresh
    bench.load_checkpoint(path)
    for key, value in merged_state_dict(fresh).items():
        torch.testing.assert_close(value, merged[key], atol=1e-6, rtol=0)
    run.close()


def test_full_model_resets_from_the_base_checkpoint() -> None:
    model = _base()
    train_sft(model, DATA, SFTConfig(epochs=1, batch_size=4, learning_rate=1e-2,
                                     progress=False))  # fmt: skip
    bench = Workbench.__new__(Workbench)
    bench.model, bench.base_model_path = model, str(TINY)
    bench._reset_to_base()
    for key, value in model.state_dict().items():
        assert torch.equal(value, _base().state_dict()[key]), key
    bench.base_model_path = None
    with pytest.raises(ValueError, match="base_model_path"):
        bench._reset_to_base()
