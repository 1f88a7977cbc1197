"""The weights an inference engine loads from a policy that may carry LoRA adapters.

Shared by the rollout engines (:mod:`agentgym.engines`), the distributed engine pool and
the trainers (:mod:`agentgym.trainers.lora` wraps models in adapters): engines read the
*merged* model under the base model's own parameter names, so vLLM and
``from_pretrained`` load it like any full fine-tune, and nothing under ``agentgym.engines``
imports a trainer.

>>> import torch
>>> model = torch.nn.Linear(2, 1)
>>> is_lora(model), sorted(merged_state_dict(model))
(False, ['bias', 'weight'])
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["is_lora", "merged_state_dict"]


def is_lora(model: Any) -> bool:
    """Whether ``model`` is a ``peft`` model (adapters on top of frozen base weights)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


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
