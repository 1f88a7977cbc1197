"""LoRA fine-tuning with ``peft``: wrap a model, reset its adapters, read merged weights.

Training updates only the low-rank adapters; everything that reads the policy's weights
(the rollout engines, checkpoints) sees the *merged* model under the base model's own
parameter names, so vLLM and ``from_pretrained`` load it like any full fine-tune.
:func:`merged_state_dict` and :func:`is_lora` live in :mod:`agentgym.lora_weights` (the
engines use them too) and are re-exported here.

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

from agentgym.lora_weights import is_lora, merged_state_dict

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
