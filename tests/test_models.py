"""The model registry: registered names, local checkpoints and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoTokenizer

from agentgym.models import DEFAULT_MODEL, ModelNotFoundError, list_models, resolve_model


def test_default_model_is_a_real_smollm2_checkpoint() -> None:
    path = resolve_model(DEFAULT_MODEL)
    config = AutoConfig.from_pretrained(path)
    assert config.model_type == "llama" and config.num_hidden_layers == 30
    assert not hasattr(config, "quantization_config")
    assert (path / "model.safetensors").stat().st_size > 500_000_000  # fp32 weights
    tokenizer = AutoTokenizer.from_pretrained(path)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.eos_token == "<|im_end|>"


def test_resolving_twice_reuses_the_cache() -> None:
    first = resolve_model("tiny-random-llama")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("tiny-random-llama") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp


def test_tiny_model_shares_the_default_tokenizer() -> None:
    tiny = AutoTokenizer.from_pretrained(resolve_model("tiny-random-llama"))
    default = AutoTokenizer.from_pretrained(resolve_model(DEFAULT_MODEL))
    assert tiny.get_vocab() == default.get_vocab()
    assert tiny.chat_template == default.chat_template
    assert AutoConfig.from_pretrained(resolve_model("tiny-random-llama")).num_hidden_layers == 2


def test_local_checkpoint_directory_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert resolve_model(tmp_path) == tmp_path


def test_directory_without_config_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"has no config\.json"):
        resolve_model(tmp_path)


def test_unknown_model_lists_what_was_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as excinfo:
        resolve_model("someorg/not-a-model")
    message = str(excinfo.value)
    assert "registered names (smollm2-135m, tiny-random-llama)" in message
    assert "HF_HUB_OFFLINE is set" in message and "Fix:" in message


def test_list_models() -> None:
    assert set(list_models()) == {"smollm2-135m", "tiny-random-llama"}
