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
* :func:`train_sft` runs the optimizer loop (AdamW, warmup + cosine or constant schedule,
  gradient clipping) with a progress bar and returns per-step metrics.

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

from agentgym.trainers.data import IGNORE_INDEX, TrainingExample

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

    learning_rate: float = 1e-5
    epochs: int = 1
    batch_size: int = 8
    micro_batch_size: int = 4
    max_tokens_per_micro_batch: int = 8192
    packing: bool = False
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
        for name in ("packing", "gradient_checkpointing"):
            # YAML and Hydra overrides give real booleans; anything else (a string such as
            # "maybe") would silently count as true.
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            problems.append(f"seed must be an integer, got {self.seed!r}")
        if problems:
            raise ValueError("Invalid SFTConfig: " + "; ".join(problems))


def batches(
    examples: Sequence[TrainingExample],
    *,
    batch_size: int,
    micro_batch_size: int,
    max_tokens_per_micro_batch: int,
    rng: random.Random,
    packing: bool = False,
) -> list[list[list[TrainingExample]]]:
    """Optimizer steps, each a list of micro-batches of similar-length examples.

    Examples are shuffled, cut into steps of ``batch_size``, and each step is sorted by
    length before being split into micro-batches, so padding stays small while every
    epoch still visits the data in a new order. With ``packing`` a micro-batch holds as
    many examples as fit in ``max_tokens_per_micro_batch`` tokens laid end to end.

    Example:
        >>> from agentgym.trainers.data import TrainingExample
        >>> data = [TrainingExample((1,) * n, (1,) * n) for n in (3, 5, 2, 4)]
        >>> steps = batches(data, batch_size=4, micro_batch_size=2,
        ...                 max_tokens_per_micro_batch=9, rng=random.Random(0), packing=True)
        >>> [[sum(len(e.input_ids) for e in m) for m in step] for step in steps]
        [[9, 5]]
    """
    order = list(examples)
    rng.shuffle(order)
    steps = []
    for start in range(0, len(order), batch_size):
        step = sorted(order[start : start + batch_size], key=lambda e: len(e.input_ids))
        micro: list[list[TrainingExample]] = []
        current: list[TrainingExample] = []
        for example in step:
            if packing:
                too_many = False
                used = sum(len(e.input_ids) for e in current)
                too_long = used + len(example.input_ids) > max_tokens_per_micro_batch
            else:
                longest = max([len(example.input_ids), *(len(e.input_ids) for e in current)])
                too_many = len(current) >= micro_batch_size
                too_long = longest * (len(current) + 1) > max_tokens_per_micro_batch
            if current and (too_many or too_long):
                micro.append(current)
                current = []
            current.append(example)
        if current:
            micro.append(current)
        steps.append(micro)
    return steps


def collate(examples: Sequence[TrainingExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` tensors."""
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        length = len(example.input_ids)
        input_ids[row, :length] = torch.tensor(example.input_ids)
        labels[row, :length] = torch.tensor(example.labels)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def collate_packed(examples: Sequence[TrainingExample]) -> dict[str, torch.Tensor]:
    """One padding-free row: ``input_ids``, ``position_ids`` restarting per example, ``labels``.

    The first label of every example is masked, so no example learns to predict its
    neighbour's first token.

    Example:
        >>> from agentgym.trainers.data import TrainingExample
        >>> row = collate_packed([TrainingExample((5, 6), (5, 6)), TrainingExample((7,), (7,))])
        >>> row["position_ids"].tolist(), row["labels"].tolist()
        ([[0, 1, 0]], [[-100, 6, -100]])
    """
    input_ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for example in examples:
        input_ids += example.input_ids
        labels += [IGNORE_INDEX, *example.labels[1:]]
        positions += range(len(example.input_ids))
    return {
        "input_ids": torch.tensor([input_ids], dtype=torch.long),
        "position_ids": torch.tensor([positions], dtype=torch.long),
        "labels": torch.tensor([labels], dtype=torch.long),
    }


def sft_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over trained positions, and their count.

    ``batch`` is padded (``attention_mask``) or packed (``position_ids``, no mask).
    """
    # use_cache=False: no KV cache is needed for training, and transformers only reads
    # packed rows from position_ids when no cache is passed.
    if "position_ids" in batch:
        inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
    elif _right_padded(batch["attention_mask"]):
        # A causal LM needs no mask for right padding: a real token attends only to earlier
        # positions, which are all real, and padded positions carry no loss. Without the
        # mask, SDPA runs its causal memory-efficient kernel instead of materialising
        # batch x heads x length^2 attention weights for the backward pass (two ~2k-token
        # episodes of SmolLM2 in fp32: peak 9.1 GB with the mask, 7.8 GB without).
        inputs = {"input_ids": batch["input_ids"]}
    else:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    targets = batch["labels"][:, 1:]
    if _supports_logits_to_keep(model):
        # Project only the positions that predict a trained token onto the vocabulary: in
        # agent episodes most tokens are prompt and observations, and full-sequence logits
        # (positions x vocabulary, in fp32, plus their gradient) dominate the memory.
        keep = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
        targets = targets[:, keep]
        predictions = logits.float()
    else:
        logits = model(**inputs, use_cache=False).logits
        predictions = logits[:, :-1].float()
    loss = torch.nn.functional.cross_entropy(
        predictions.reshape(-1, predictions.size(-1)),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return loss, int((targets != IGNORE_INDEX).sum())


def _right_padded(attention_mask: torch.Tensor) -> bool:
    """Whether every row is ones followed by zeros (what :func:`collate` builds).

    >>> _right_padded(torch.tensor([[1, 1, 0], [1, 1, 1]])), _right_padded(torch.tensor([[0, 1]]))
    (True, False)
    """
    return bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())


def _supports_logits_to_keep(model: Any) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (most ``transformers`` LMs)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


def _lr_lambda(config: SFTConfig, total_steps: int) -> Callable[[int], float]:
    warmup = int(config.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if config.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


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

    Args:
        model: A ``transformers`` causal LM (full or LoRA-wrapped).
        examples: Training examples (from :mod:`agentgym.trainers.data`).
        config: Hyper-parameters.
        pad_token_id: Id used for padding (masked out of attention and loss).
        on_step: Called with each step's metrics (logging, checkpointing).
    """
    from tqdm.auto import tqdm

    if not examples:
        raise ValueError("no training examples (nothing with trainable tokens was given)")
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        parameters, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, total_steps))
    device = next(model.parameters()).device
    was_training = model.training
    model.train()
    checkpointing = config.gradient_checkpointing and not getattr(
        model, "is_gradient_checkpointing", False
    )
    if checkpointing:
        # Non-reentrant checkpointing needs no input that requires grad (LoRA, frozen
        # embeddings) and composes with logits_to_keep.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    history: list[dict[str, float]] = []
    bar = tqdm(total=total_steps, desc="sft", disable=not config.progress, unit="step")
    try:
        for step, micro_batches in enumerate(_steps(examples, config)):
            tensors = [
                {
                    k: v.to(device)
                    for k, v in (
                        collate_packed(m) if config.packing else collate(m, pad_token_id)
                    ).items()
                }
                for m in micro_batches
            ]
            trained_tokens = sum(int((t["labels"][:, 1:] != IGNORE_INDEX).sum()) for t in tensors)
            total_loss = 0.0
            for batch in tensors:
                loss, _ = sft_loss(model, batch)
                (loss / max(1, trained_tokens)).backward()
                total_loss += float(loss.detach())
            grad_norm = (
                float(torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm))
                if config.max_grad_norm is not None
                else float("nan")
            )
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            metrics = {
                "step": step + 1,
                "loss": total_loss / max(1, trained_tokens),
                "trained_tokens": trained_tokens,
                "learning_rate": scheduler.get_last_lr()[0],
                "grad_norm": grad_norm,
            }
            history.append(metrics)
            if on_step is not None:
                on_step(metrics)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
    finally:
        bar.close()
        if checkpointing:
            model.gradient_checkpointing_disable()
        model.train(was_training)
    return history
