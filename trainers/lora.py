"""LoRA fine-tuning with ``peft``: wrap a model, reset its adapters, read merged weights.

Training updates only the low-rank adapters; everything that reads the policy's weights
(the rollout engines, checkpoints) sees the *merged* model under the base model's own
parameter names, so vLLM and ``from_pretrained`` load it like any full fine-tune.

Example:
    >>> from transformers import AutoModelForCausalLM
    >>> from agentgym.models import resolve_model
    >>> base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))
    >>> names = set(base.state_dict())
    >>> model = apply_lora(base, LoRAConfig(enabled=True, rank=4))
    >>> is_lora(model), 0 < trainable_fraction(model) < 0.2
    (True, True)
    >>> set(merged_state_dict(model)) == names
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "LoRAConfig",
    "apply_lora",
    "is_lora",
    "merged_state_dict",
    "reset_lora",
    "trainable_fraction",
]


@dataclass
class LoRAConfig:
    """Low-rank adapters instead of full fine-tuning.

    Attributes:
        enabled: Train LoRA adapters (``False``: full fine-tuning).
        rank: Adapter rank ``r``.
        alpha: Scaling numerator (the update is scaled by ``alpha / rank``).
        dropout: Dropout on the adapter input during training.
        target_modules: ``"all-linear"`` (every linear layer but the output head) or a list
            of module names such as ``["q_proj", "v_proj"]``.
    """

    enabled: bool = False
    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: str | list[str] = field(default="all-linear")

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            problems.append(f"rank must be an integer >= 1, got {self.rank!r}")
        if not isinstance(self.alpha, int | float) or self.alpha <= 0:
            problems.append(f"alpha must be > 0, got {self.alpha!r}")
        if not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1), got {self.dropout!r}")
        targets = self.target_modules
        if not (
            targets == "all-linear"
            or (isinstance(targets, list | tuple) and targets and all(
                isinstance(t, str) and t for t in targets))
        ):  # fmt: skip
            problems.append(
                f"target_modules must be 'all-linear' or a non-empty list of module names, "
                f"got {targets!r}"
            )
        if problems:
            raise ValueError("Invalid LoRA config: " + "; ".join(problems))


def is_lora(model: Any) -> bool:
    """Whether ``model`` is a ``peft`` model (adapters on top of frozen base weights)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def apply_lora(model: Any, config: LoRAConfig) -> Any:
    """``model`` with fresh LoRA adapters (base weights frozen); unchanged if not enabled."""
    if not config.enabled:
        return model
    from peft import LoraConfig, get_peft_model

    targets = config.target_modules
    peft_config = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_config)


def reset_lora(model: Any) -> None:
    """Re-initialise every adapter, so the model equals its base weights again."""
    from peft.tuners.lora import LoraLayer

    for module in model.modules():
        if isinstance(module, LoraLayer):
            for adapter in list(module.lora_A):
                module.reset_lora_parameters(adapter, True)


def trainable_fraction(model: Any) -> float:
    """Trainable parameters over all parameters."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable / max(1, total)


def merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The weights an inference engine should load, under the base model's names.

    For a plain model this is its ``state_dict()``. For a LoRA model each adapted weight is
    ``W + scale * B @ A``, computed without touching the model (merging in place and back
    would drift the frozen weights by rounding every time the engine is synced).
    """
    if not is_lora(model):
        return model.state_dict()
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    deltas: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, module in base.named_modules():
            if isinstance(module, LoraLayer):
                delta = None
                for adapter in module.active_adapters:
                    if adapter in module.lora_A:
                        update = module.get_delta_weight(adapter)
                        delta = update if delta is None else delta + update
                if delta is not None:
                    deltas[f"{name}.base_layer.weight"] = delta
        merged: dict[str, torch.Tensor] = {}
        for key, tensor in base.state_dict().items():
            if ".lora_" in key or ".original_module." in key:
                continue
            if key in deltas:
                tensor = tensor + deltas[key].to(tensor.dtype)
            name = key.replace(".base_layer.", ".").replace(".modules_to_save.default.", ".")
            merged[name] = tensor
    return merged
