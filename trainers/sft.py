"""Supervised fine-tuning on trajectories: loss only on the policy's own tokens.

The pieces are small pure functions, composed by :func:`train_sft`:

* :func:`batches` groups examples of similar length (little padding) into micro-batches,
  or, with ``packing``, fills micro-batches up to a token budget;
* :func:`collate` right-pads a micro-batch into tensors; :func:`collate_packed` concatenates
  it into one padding-free row whose ``position_ids`` restart at every example, so that
  attention stays inside each example (``transformers`` builds the block-diagonal causal
  mask from the position ids; no token is spent on padding);
* :func:`sft_loss` is the summed cross-entropy over trained positions, so that gradient
  accumulation can normalise by the number of trained tokens of the whole optimizer step
  (every trained token weighs the same, whatever micro-batch it falls in);
* :func:`train_sft` runs the shared trainer step (:class:`~agentgym.trainers.learner.Learner`:
  AdamW, warmup + cosine or constant schedule, gradient clipping) with the SFT objective,
  a progress bar, and returns per-step metrics.

Example:
    >>> import torch
    >>> from transformers import AutoModelForCausalLM
    >>> from agentgym.models import resolve_model
    >>> from agentgym.trainers.data import TrainingExample
    >>> model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))
    >>> data = [TrainingExample((1, 5, 6, 7), (-100, 5, 6, 7))] * 4
    >>> metrics = train_sft(model, data, SFTConfig(epochs=3, batch_size=4, learning_rate=1e-2,
    ...                                           progress=False))
    >>> metrics[-1]["loss"] < metrics[0]["loss"]
    True
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentgym.trainers.batching import batches, collate, collate_packed
from agentgym.trainers.data import TrainingExample
from agentgym.trainers.objectives import token_stats

__all__ = ["SFTConfig", "batches", "collate", "collate_packed", "sft_loss", "train_sft"]


@dataclass
class SFTConfig:
    """Settings of a fine-tuning run.

    Attributes:
        learning_rate: Peak learning rate of AdamW.
        epochs: Passes over the data.
        batch_size: Examples per optimizer step (micro-batches x accumulation).
        micro_batch_size: Examples per forward pass (memory bound); ``batch_size`` must be
            a multiple of it.
        max_tokens_per_micro_batch: Also split a micro-batch when its padded size would
            exceed this many tokens (long multi-turn episodes); with ``packing``, the
            token budget of each packed row.
        packing: Pack a step's examples into padding-free rows of at most
            ``max_tokens_per_micro_batch`` tokens (``micro_batch_size`` is then ignored).
        prefix_sharing: Compute every prefix that several examples of a step share once
            (the prompt of a task's samples, a restart's parent episode): the step's examples
            form prefix trees of at most ``max_tokens_per_micro_batch`` distinct tokens, each
            one packed row (:mod:`agentgym.trainers.tree`). Same loss and gradients up to
            rounding, far less compute when examples share prompts; supersedes ``packing``
            and ``micro_batch_size``. Examples that share nothing cost about what packing
            costs.
        weight_decay: AdamW weight decay.
        warmup_ratio: Fraction of steps with a linear warmup.
        schedule: ``"cosine"`` (to 10% of the peak) or ``"constant"`` after warmup.
        max_grad_norm: Gradient clipping norm (``None``: no clipping).
        gradient_checkpointing: Recompute each layer's activations in the backward pass
            instead of keeping them: far less memory for long agent episodes (activations,
            not weights, dominate a small model's training memory), at the cost of
            recomputing each layer's forward pass. On for the duration of
            :func:`train_sft` only.
        seed: Seeds batch order.
        progress: Show a progress bar.
    """

    learning_rate: float = 2e-5
    epochs: int = 2
    batch_size: int = 8
    micro_batch_size: int = 4
    max_tokens_per_micro_batch: int = 2048
    packing: bool = False
    prefix_sharing: bool = True
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    schedule: str = "cosine"
    max_grad_norm: float | None = 1.0
    gradient_checkpointing: bool = False
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.micro_batch_size < 1 or self.batch_size < 1:
            problems.append("batch_size and micro_batch_size must be >= 1")
        elif self.batch_size % self.micro_batch_size and self.batch_size > self.micro_batch_size:
            problems.append(
                f"batch_size={self.batch_size} must be a multiple of "
                f"micro_batch_size={self.micro_batch_size} (or smaller than it)"
            )
        if self.schedule not in ("cosine", "constant"):
            problems.append(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.max_tokens_per_micro_batch < 1:
            problems.append(
                f"max_tokens_per_micro_batch must be >= 1, got {self.max_tokens_per_micro_batch}"
            )
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("packing", "prefix_sharing", "gradient_checkpointing"):
            # YAML and Hydra overrides give real booleans; anything else (a string such as
            # "maybe") would silently count as true.
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            problems.append(f"seed must be an integer, got {self.seed!r}")
        if problems:
            raise ValueError("Invalid SFTConfig: " + "; ".join(problems))


def sft_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over trained positions, and their count.

    ``batch`` is padded (``attention_mask``) or packed (``position_ids``, no mask).
    """
    stats = token_stats(model, batch)
    return -stats.logprobs.sum(), stats.count


def _steps(
    examples: Sequence[TrainingExample], config: SFTConfig
) -> Iterator[list[list[TrainingExample]]]:
    rng = random.Random(config.seed)
    for _ in range(config.epochs):
        yield from batches(
            examples,
            batch_size=config.batch_size,
            micro_batch_size=config.micro_batch_size,
            max_tokens_per_micro_batch=config.max_tokens_per_micro_batch,
            rng=rng,
            packing=config.packing,
        )


def train_sft(
    model: Any,
    examples: Sequence[TrainingExample],
    config: SFTConfig,
    *,
    pad_token_id: int = 0,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Fine-tune ``model`` in place on ``examples``; return one metrics dict per step.

    The loop is the shared trainer step (:class:`~agentgym.trainers.learner.Learner`) with
    the SFT objective: one optimizer and schedule for this phase, every trained token of a
    step weighted equally.

    Args:
        model: A ``transformers`` causal LM (full or LoRA-wrapped).
        examples: Training examples (from :mod:`agentgym.trainers.data`).
        config: Hyper-parameters.
        pad_token_id: Id used for padding (masked out of attention and loss).
        on_step: Called with each step's metrics (logging, checkpointing).
    """
    from tqdm.auto import tqdm

    from agentgym.trainers.learner import Learner, training_mode
    from agentgym.trainers.objectives import SFTObjective

    if not examples:
        raise ValueError("no training examples (nothing with trainable tokens was given)")
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    learner = Learner(
        model,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=int(config.warmup_ratio * total_steps),
        total_steps=total_steps,
        schedule=config.schedule,
        max_grad_norm=config.max_grad_norm,
        packing=config.packing,
        pad_token_id=pad_token_id,
        prefix_sharing=config.prefix_sharing,
        max_tree_tokens=config.max_tokens_per_micro_batch,
    )
    objective = SFTObjective()
    history: list[dict[str, float]] = []
    bar = tqdm(total=total_steps, desc="sft", disable=not config.progress, unit="step")
    # Checkpointing is switched on once for the phase (not per step).
    with training_mode(model, gradient_checkpointing=config.gradient_checkpointing):
        try:
            for micro_batches in _steps(examples, config):
                metrics = learner.step(micro_batches, objective)
                history.append(metrics)
                if on_step is not None:
                    on_step(metrics)
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}")
        finally:
            bar.close()
    return history
