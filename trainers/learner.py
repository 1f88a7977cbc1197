"""The one trainer step every recipe shares: a model, a persistent optimizer, an objective.

:class:`Learner` owns the trainable model, one AdamW optimizer and one learning-rate
schedule for the whole run (policy-gradient recipes keep them across iterations; SFT makes
one per fine-tuning phase). :meth:`Learner.step` takes one optimizer step's examples, already
cut into micro-batches, and an objective (:mod:`agentgym.trainers.objectives`):

1. weights every example's tokens by the objective's normalisation over the whole step;
2. for each micro-batch: collate (padded, packed or tree-packed), compute the policy's
   per-token statistics (:func:`~agentgym.trainers.objectives.token_stats`), the objective's
   per-token losses, and backpropagate ``sum(weight * loss)``;
3. clips the gradient norm, steps the optimizer and the schedule.

:func:`score_examples` fills per-token log-probs without gradients (the reference policy's
for a KL penalty, or the trainer's own recomputation of the behaviour log-probs).

Example:
    >>> from transformers import AutoModelForCausalLM
    >>> from agentgym.models import resolve_model
    >>> from agentgym.trainers.data import TrainingExample
    >>> from agentgym.trainers.objectives import SFTObjective
    >>> model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))
    >>> learner = Learner(model, learning_rate=1e-2)
    >>> data = [TrainingExample((1, 5, 6, 7), (-100, 5, 6, 7))] * 2
    >>> first = learner.step([data], SFTObjective())["loss"]
    >>> second = learner.step([data], SFTObjective())["loss"]
    >>> second < first, learner.steps_done
    (True, 2)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from agentgym.trainers.batching import collate, collate_packed
from agentgym.trainers.data import TrainingExample
from agentgym.trainers.objectives import (
    Objective,
    normalisation_weights,
    token_stats,
    trained_values,
)
from agentgym.trainers.tree import collate_tree, sharing_groups, tree_attention

__all__ = ["Learner", "lr_factor", "score_examples"]

SCHEDULES = ("cosine", "constant")


def lr_factor(step: int, *, warmup_steps: int, total_steps: int | None, schedule: str) -> float:
    """The learning-rate multiplier at optimizer step ``step`` (0-based).

    Linear warmup over ``warmup_steps``, then constant, or cosine down to 10% of the peak
    at ``total_steps``.

    >>> [round(lr_factor(s, warmup_steps=2, total_steps=6, schedule="cosine"), 2)
    ...  for s in range(7)]
    [0.5, 1.0, 1.0, 0.87, 0.55, 0.23, 0.1]
    """
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant" or not total_steps:
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@contextlib.contextmanager
def training_mode(
    model: Any, *, gradient_checkpointing: bool = False, dropout: bool = True
) -> Iterator[None]:
    """Train mode for the duration of a step (or a phase), restored afterwards.

    ``dropout=False`` keeps every dropout module in eval mode: a policy-gradient ratio must
    compare the policy with itself, and dropout noise (LoRA's adapter dropout) would make the
    ratio differ from 1 before any update.
    """
    was_training = model.training
    model.train()
    switched = []
    if not dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout) and module.training:
                module.eval()
                switched.append(module)
    checkpointing = gradient_checkpointing and not getattr(
        model, "is_gradient_checkpointing", False
    )
    if checkpointing:
        # Non-reentrant checkpointing needs no input that requires grad (LoRA, frozen
        # embeddings) and composes with logits_to_keep.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    try:
        yield
    finally:
        if checkpointing:
            model.gradient_checkpointing_disable()
        for module in switched:
            module.train()
        model.train(was_training)


class Learner:
    """A trainable model with one optimizer and schedule that persist across steps.

    Args:
        model: A ``transformers`` causal LM (full or LoRA-wrapped).
        learning_rate: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warmup steps.
        total_steps: Planned optimizer steps (the cosine schedule's horizon; ``None`` with
            ``schedule="constant"``).
        schedule: ``"constant"`` or ``"cosine"`` after warmup.
        max_grad_norm: Gradient clipping norm (``None``: no clipping).
        packing: Collate micro-batches as padding-free packed rows.
        pad_token_id: Padding id of padded micro-batches.
        gradient_checkpointing: Recompute activations in the backward pass.
        prefix_sharing: Compute every token run shared by several examples of a step once
            (:mod:`agentgym.trainers.tree`): the step's examples are regrouped into prefix
            trees of at most ``max_tree_tokens`` distinct tokens (examples that share a
            prefix go together, whatever micro-batch they came in), each run as one
            tree-packed row with per-chunk attention. Same loss and gradients as without
            (up to rounding); replaces ``packing``, which then does not apply.
        max_tree_tokens: Memory bound of one tree (tokens actually run through the model).
    """

    def __init__(
        self,
        model: Any,
        *,
        learning_rate: float,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        total_steps: int | None = None,
        schedule: str = "constant",
        max_grad_norm: float | None = 1.0,
        packing: bool = False,
        pad_token_id: int = 0,
        gradient_checkpointing: bool = False,
        prefix_sharing: bool = False,
        max_tree_tokens: int = 8192,
    ) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}")
        if max_tree_tokens < 1:
            raise ValueError(f"max_tree_tokens must be >= 1, got {max_tree_tokens}")
        self.model = model
        self.max_grad_norm = max_grad_norm
        self.packing = packing
        self.pad_token_id = pad_token_id
        self.gradient_checkpointing = gradient_checkpointing
        self.prefix_sharing = prefix_sharing
        self.max_tree_tokens = max_tree_tokens
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.parameters, lr=learning_rate, weight_decay=weight_decay
        )
        factor: Callable[[int], float] = lambda step: lr_factor(  # noqa: E731
            step, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.steps_done = 0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _collate(
        self, micro_batch: Sequence[TrainingExample], weights: Sequence[float]
    ) -> dict[str, torch.Tensor]:
        if self.prefix_sharing:
            # No N x N mask: tree_attention runs each chunk over the keys it sees.
            tensors = collate_tree(micro_batch, weights=weights, attention_mask=False)
        elif self.packing:
            tensors = collate_packed(micro_batch, weights=weights)
        else:
            tensors = collate(micro_batch, self.pad_token_id, weights=weights)
        return {k: v.to(self.device) for k, v in tensors.items()}

    def _groups(
        self, micro_batches: Sequence[Sequence[TrainingExample]], weights: Sequence[float]
    ) -> list[tuple[list[TrainingExample], list[float]]]:
        """The forward passes of a step: the caller's micro-batches, or prefix trees."""
        flat = [example for micro in micro_batches for example in micro]
        if self.prefix_sharing:
            return [
                ([flat[i] for i in group], [weights[i] for i in group])
                for group in sharing_groups(flat, self.max_tree_tokens)
            ]
        groups, start = [], 0
        for micro in micro_batches:
            groups.append((list(micro), list(weights[start : start + len(micro)])))
            start += len(micro)
        return groups

    def step(
        self,
        micro_batches: Sequence[Sequence[TrainingExample]],
        objective: Objective,
        *,
        constant: float = 1.0,
    ) -> dict[str, float]:
        """One optimizer step over ``micro_batches`` (gradient accumulation); its metrics.

        ``constant`` is the normaliser of ``normalisation="constant"``.
        """
        flat = [example for micro in micro_batches for example in micro]
        weights = normalisation_weights(flat, objective.normalisation, constant=constant)
        totals: dict[str, float] = defaultdict(float)
        trained_tokens = input_tokens = 0
        dropout = not getattr(objective, "deterministic", False)
        checkpointing = self.gradient_checkpointing
        # Tree batches run the attention per chunk, in the forward pass and in the
        # backward pass's recomputation (gradient checkpointing) alike.
        attention = tree_attention if self.prefix_sharing else _unchanged_attention
        with (
            training_mode(self.model, gradient_checkpointing=checkpointing, dropout=dropout),
            attention(self.model),
        ):
            for micro, micro_weights in self._groups(micro_batches, weights):
                batch = self._collate(micro, micro_weights)
                stats = token_stats(
                    self.model,
                    batch,
                    temperature=objective.temperature,
                    top_p=objective.top_p,
                    entropy=objective.needs_entropy,
                )
                if stats.count == 0:
                    continue
                input_tokens += batch["input_ids"].numel()
                values = {
                    name: trained_values(batch, name)
                    for name in batch
                    if batch[name].is_floating_point()
                }
                losses, metrics = objective.token_losses(stats, values)
                loss = (values["loss_weights"] * losses).sum()
                loss.backward()
                totals["loss"] += float(loss.detach())
                for name, value in metrics.items():
                    totals[name] += value * stats.count  # token-weighted means
                trained_tokens += stats.count
        grad_norm = (
            float(torch.nn.utils.clip_grad_norm_(self.parameters, self.max_grad_norm))
            if self.max_grad_norm is not None
            else float("nan")
        )
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps_done += 1
        result = {
            "step": self.steps_done,
            "loss": totals.pop("loss", 0.0),
            "trained_tokens": trained_tokens,
            "input_tokens": input_tokens,  # run through the model: padding in, shared prefixes once
            "learning_rate": self.scheduler.get_last_lr()[0],
            "grad_norm": grad_norm,
        }
        result.update({k: v / max(1, trained_tokens) for k, v in totals.items()})
        return result

    def state_dict(self) -> dict[str, Any]:
        """Optimizer, schedule and step count (the weights are saved with the model)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "steps_done": self.steps_done,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.steps_done = int(state["steps_done"])


@torch.no_grad()
def score_examples(
    model: Any,
    examples: Sequence[TrainingExample],
    field: str,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_tokens_per_micro_batch: int = 4096,
    pad_token_id: int = 0,
    prefix_sharing: bool = False,
) -> list[TrainingExample]:
    """Copies of ``examples`` with ``field`` set to ``model``'s log-probs of their trained tokens.

    Used for the reference policy's log-probs (``"reference_logprobs"``; with LoRA, pass the
    model inside ``model.disable_adapter()``) and for recomputing the behaviour log-probs with
    the trainer's own numerics (``"behaviour_logprobs"``). Runs in eval mode, one micro-batch
    of at most ``max_tokens_per_micro_batch`` padded tokens at a time, or with
    ``prefix_sharing`` one prefix tree of at most that many distinct tokens at a time (shared
    prompts and prefixes computed once; same values up to rounding). The copies come back
    in the order of ``examples``.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    scored: list[TrainingExample | None] = [None] * len(examples)
    if prefix_sharing:
        groups = sharing_groups(examples, max_tokens_per_micro_batch)
    else:
        groups, start = [], 0
        for micro in _micro_batches(examples, max_tokens_per_micro_batch):
            groups.append(list(range(start, start + len(micro))))
            start += len(micro)
    attention = tree_attention if prefix_sharing else _unchanged_attention
    try:
        with attention(model):
            for group in groups:
                micro = [examples[i] for i in group]
                tensors = (
                    collate_tree(micro, attention_mask=False)
                    if prefix_sharing
                    else collate(micro, pad_token_id)
                )
                batch = {k: v.to(device) for k, v in tensors.items()}
                stats = token_stats(model, batch, temperature=temperature, top_p=top_p)
                values = iter(stats.logprobs.float().cpu().tolist())
                for index, example in zip(group, micro, strict=True):
                    trained = [i > 0 and label != -100 for i, label in enumerate(example.labels)]
                    column = [next(values) if t else 0.0 for t in trained]
                    scored[index] = dataclasses.replace(example, **{field: tuple(column)})
    finally:
        model.train(was_training)
    return [example for example in scored if example is not None]


@contextlib.contextmanager
def _unchanged_attention(model: Any) -> Iterator[None]:
    yield


def _micro_batches(
    examples: Sequence[TrainingExample], max_tokens: int
) -> Iterator[list[TrainingExample]]:
    """Consecutive micro-batches whose padded size stays within ``max_tokens``."""
    current: list[TrainingExample] = []
    for example in examples:
        longest = max([len(example.input_ids), *(len(e.input_ids) for e in current)])
        if current and longest * (len(current) + 1) > max_tokens:
            yield current
            current = []
        current.append(example)
    if current:
        yield current
