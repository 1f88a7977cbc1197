"""Check that the rollout engine serves the trainer's current weights after a sync.

A weight sync that silently fails (a multiprocess engine that did not reload, LoRA adapters
that were not merged, a sharded model loading only some tensors) leaves the engine sampling
from a stale policy while training goes on as if nothing happened: a known silent failure in
RL frameworks. :func:`verify_weight_sync` catches it after every sync: the engine greedily
continues a fixed probe prompt, and the log-probs it reports for those tokens must match the
trainer's own log-probs of the same tokens (temperature 1, both engines' greedy convention)
within a tolerance. Otherwise :class:`WeightSyncError` stops the run.

The tolerance must exceed the numeric difference between the engine's kernels and the
trainer's (fp32 on CPU: vLLM and transformers agree to ~2e-5) and stay below what one update
changes. An update smaller than the tolerance cannot be told apart from a stale engine; it
also cannot make a difference to the rollouts worth catching.

Example:
    >>> from transformers import AutoModelForCausalLM, AutoTokenizer
    >>> from agentgym.engines.hf import HFEngine
    >>> from agentgym.models import resolve_model
    >>> path = resolve_model("tiny-random-llama")
    >>> model = AutoModelForCausalLM.from_pretrained(path)
    >>> engine = HFEngine(str(path), model_instance=model)
    >>> verify_weight_sync(engine, model, engine.tokenizer)["max_abs_diff"] < 1e-4
    True
"""

from __future__ import annotations

from typing import Any

import torch

from agentgym.engines.base import Engine, SamplingParams
from agentgym.trainers.objectives import sampling_logprobs

__all__ = ["PROBE_MESSAGES", "WeightSyncError", "probe_prompt", "verify_weight_sync"]

#: The probe conversation; any text works, a short chat prompt keeps it cheap.
PROBE_MESSAGES = [{"role": "user", "content": "Name three tools you could call, then stop."}]


class WeightSyncError(RuntimeError):
    """The engine's log-probs disagree with the trainer's: it is not serving the new weights."""


def probe_prompt(tokenizer: Any) -> list[int]:
    """Token ids of the probe prompt (the chat template's, else plain text)."""
    if getattr(tokenizer, "chat_template", None):
        return list(
            tokenizer.apply_chat_template(
                PROBE_MESSAGES, add_generation_prompt=True, tokenize=True, return_dict=False
            )
        )
    return list(tokenizer(PROBE_MESSAGES[0]["content"])["input_ids"])


@torch.no_grad()
def trainer_logprobs(model: Any, prompt: list[int], completion: list[int]) -> list[float]:
    """The model's temperature-1 log-probs of ``completion`` after ``prompt``."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        ids = torch.tensor([prompt + completion], device=device)
        logits = model(input_ids=ids, use_cache=False).logits[0, len(prompt) - 1 : -1]
        picked, _ = sampling_logprobs(logits, ids[0, len(prompt) :])
    finally:
        model.train(was_training)
    return picked.float().cpu().tolist()


def verify_weight_sync(
    engine: Engine,
    model: Any,
    tokenizer: Any,
    *,
    tolerance: float = 1e-3,
    probe_tokens: int = 16,
) -> dict[str, float]:
    """Raise :class:`WeightSyncError` unless ``engine`` serves ``model``'s weights.

    Returns the largest and mean absolute log-prob difference over the probe tokens. An
    engine made of replicas (:class:`~agentgym.distributed.RayEnginePool`, whose
    ``replicas()`` gives one engine per replica) has every replica probed; the worst counts.
    """
    replicas = getattr(engine, "replicas", None)
    if callable(replicas):
        checks = [
            verify_weight_sync(replica, model, tokenizer, tolerance=tolerance,
                               probe_tokens=probe_tokens)
            for replica in replicas()
        ]  # fmt: skip
        worst = max(checks, key=lambda check: check["max_abs_diff"])
        return {**worst, "replicas": len(checks)}
    prompt = probe_prompt(tokenizer)
    params = SamplingParams(temperature=0.0, max_tokens=probe_tokens, logprobs=True)
    [[completion]] = engine.generate([prompt], params)
    if not completion.token_ids:
        return {"max_abs_diff": 0.0, "mean_abs_diff": 0.0, "probe_tokens": 0}
    if len(completion.logprobs) != len(completion.token_ids):
        raise WeightSyncError(
            f"the {engine.name} engine returned no log-prob per token, so the weight sync "
            "cannot be verified"
        )
    expected = trainer_logprobs(model, prompt, list(completion.token_ids))
    differences = [abs(a - b) for a, b in zip(completion.logprobs, expected, strict=True)]
    result = {
        "max_abs_diff": max(differences),
        "mean_abs_diff": sum(differences) / len(differences),
        "probe_tokens": len(differences),
    }
    if not result["max_abs_diff"] <= tolerance:  # also catches nan
        raise WeightSyncError(
            f"after the weight sync the {engine.name} engine's log-probs differ from the "
            f"trainer's by up to {result['max_abs_diff']:.3g} (tolerance {tolerance:g}) on "
            f"{len(differences)} probe tokens: the engine is not serving the updated policy. "
            "Check that the engine runs in-process (or that collective_rpc reloads every "
            "worker) and that LoRA weights are merged; raise trainer.sync_tolerance only if "
            "the two use different precisions (e.g. bf16 on GPU)."
        )
    return result
