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
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import torch

from agentgym.lora_weights import is_lora
from agentgym.trainers.batching import collate, collate_packed
from agentgym.trainers.data import TrainingExample
from agentgym.trainers.data_parallel import (
    DataParallelGroup,
    current_group,
    parameter_checksum,
    shard,
)
from agentgym.trainers.fsdp import (
    FSDP_MESSAGE_LORA,
    clip_sharded_grad_norm_,
    full_optimizer_state,
    gather_trained_weights,
    is_sharded,
    scatter_full_weights,
    shard_module,
    sharded_optimizer_state,
)
from agentgym.trainers.objectives import (
    Objective,
    normalisation_weights,
    token_stats,
    trained_values,
)
from agentgym.trainers.tree import collate_tree, sharing_groups, tree_attention

__all__ = ["Learner", "lr_factor", "score_examples"]

SCHEDULES = ("cosine", "constant")
_LEARNER_IDS = itertools.count(1)  # matches a driver's learner with its workers' copies


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
        group: The data-parallel group whose ranks share every step
            (:mod:`agentgym.trainers.data_parallel`); ``"auto"``: the process's group set by
            ``agentgym train`` under torchrun, none in a single process.
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
        group: DataParallelGroup | Literal["auto"] | None = "auto",
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
        self.group = current_group() if group == "auto" else group
        if self.group is not None and self.group.world_size <= 1:
            self.group = None
        # FSDP (training.parallel=fsdp): the forward and backward passes run on a sharded
        # module; self.model stays the full model the rest of the run sees (rollouts,
        # checkpoints) on the driver, and is the sharded module itself on a worker.
        self.sharded = self.group is not None and self.group.parallel == "fsdp"
        self.module = model
        if self.sharded:
            assert self.group is not None
            if is_lora(model):
                raise ValueError(FSDP_MESSAGE_LORA)
            if not is_sharded(model):  # a worker's model may be sharded by its last learner
                self.module = shard_module(model, self.group.mesh, copy_model=self.group.is_driver)
            if not self.group.is_driver:
                self.model = self.module
        self.parameters = [p for p in self.module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.parameters, lr=learning_rate, weight_decay=weight_decay
        )
        factor: Callable[[int], float] = lambda step: lr_factor(  # noqa: E731
            step, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.steps_done = 0
        self._scattered: torch.Tensor | None = None  # FSDP: checksum of the weights in the shards
        if self.group is not None:
            self._id = next(_LEARNER_IDS)
            if self.group.is_driver:  # the workers build the same learner on their model
                options = {
                    "learning_rate": learning_rate, "weight_decay": weight_decay,
                    "warmup_steps": warmup_steps, "total_steps": total_steps,
                    "schedule": schedule, "max_grad_norm": max_grad_norm, "packing": packing,
                    "pad_token_id": pad_token_id, "prefix_sharing": prefix_sharing,
                    "gradient_checkpointing": gradient_checkpointing,
                    "max_tree_tokens": max_tree_tokens,
                }  # fmt: skip
                self.group.broadcast_object(("learner", self._id, options))
            self._share_weights()

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
        groups = self._groups(micro_batches, weights)
        if self.group is not None:  # data-parallel: every rank takes its share of the passes
            self.group.broadcast_object(("step", self._id, groups, objective, constant))
        return self._run_step(groups, objective, constant=constant)

    def _run_step(
        self,
        groups: Sequence[tuple[list[TrainingExample], list[float]]],
        objective: Objective,
        *,
        constant: float = 1.0,
    ) -> dict[str, float]:
        """Forward/backward over this rank's share of ``groups``, then the optimizer step."""
        counted = [True] * len(groups)  # False: an FSDP padding pass (see _fsdp_share)
        if self.sharded:
            self._scatter_if_changed()
            groups, counted = self._fsdp_share(groups)
        elif self.group is not None:
            self._resync_if_diverged()
            costs = [sum(len(example.input_ids) for example in micro) for micro, _ in groups]
            groups = [groups[i] for i in shard(costs, self.group.world_size)[self.group.rank]]
            counted = [True] * len(groups)
        totals: dict[str, float] = defaultdict(float)
        trained_tokens = input_tokens = 0
        dropout = not getattr(objective, "deterministic", False)
        checkpointing = self.gradient_checkpointing
        # Tree batches run the attention per chunk, in the forward pass and in the
        # backward pass's recomputation (gradient checkpointing) alike.
        attention = tree_attention if self.prefix_sharing else _unchanged_attention
        with (
            training_mode(self.module, gradient_checkpointing=checkpointing, dropout=dropout),
            attention(self.module),
        ):
            for (micro, micro_weights), counts in zip(groups, counted, strict=True):
                batch = self._collate(micro, micro_weights)
                stats = token_stats(
                    self.module,
                    batch,
                    temperature=objective.temperature,
                    top_p=objective.top_p,
                    entropy=objective.needs_entropy,
                )
                if stats.count == 0:
                    continue
                input_tokens += batch["input_ids"].numel() if counts else 0
                values = {
                    name: trained_values(batch, name)
                    for name in batch
                    if batch[name].is_floating_point()
                }
                losses, metrics = objective.token_losses(stats, values)
                loss = (values["loss_weights"] * losses).sum()
                loss.backward()
                if not counts:
                    continue
                totals["loss"] += float(loss.detach())
                for name, value in metrics.items():
                    totals[name] += value * stats.count  # token-weighted means
                trained_tokens += stats.count
        if self.group is not None:  # sum gradients (FSDP did already) and counters over ranks
            if not self.sharded:
                self._reduce_gradients()
            shares = self.group.gather_objects((dict(totals), trained_tokens, input_tokens))
            totals, trained_tokens, input_tokens = defaultdict(float), 0, 0
            for share_totals, share_trained, share_input in shares:
                for name, value in share_totals.items():
                    totals[name] += value
                trained_tokens += share_trained
                input_tokens += share_input
        grad_norm = float("nan")
        if self.max_grad_norm is not None and self.sharded:
            grad_norm = clip_sharded_grad_norm_(self.parameters, self.max_grad_norm, self.group)
        elif self.max_grad_norm is not None:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.parameters, self.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps_done += 1
        if self.sharded:  # the driver's full model gets the updated weights
            gather_trained_weights(self.module, self.model if self._is_driver else None)
            if self._is_driver:
                self._scattered = parameter_checksum(self.model)
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
        """Optimizer, schedule and step count (the weights are saved with the model).

        Under FSDP the driver gathers the optimizer state whole (its workers take part), so
        the result has the same layout as a replicated run's and either can resume the other.
        """
        if self.sharded:
            assert self.group is not None
            if self._is_driver:
                self.group.broadcast_object(("state", self._id))
            optimizer = full_optimizer_state(self.optimizer)
        else:
            optimizer = self.optimizer.state_dict()
        return {
            "optimizer": optimizer,
            "scheduler": self.scheduler.state_dict(),
            "steps_done": self.steps_done,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` (on every rank of a data-parallel job)."""
        if self.group is not None:
            self.group.broadcast_object(("load", self._id, state))
        self._load_local(state)

    # ------------------------------------------------------------- data-parallel --

    @property
    def _is_driver(self) -> bool:
        return self.group is None or self.group.is_driver

    def _load_local(self, state: dict[str, Any]) -> None:
        optimizer = state["optimizer"]
        if self.sharded:  # every rank got the whole state: keep this rank's slices
            optimizer = sharded_optimizer_state(optimizer, self.parameters)
        self.optimizer.load_state_dict(optimizer)
        self.scheduler.load_state_dict(state["scheduler"])
        self.steps_done = int(state["steps_done"])
        if self.group is not None:  # the driver's weights came with the state (a resume)
            self._share_weights()

    def _share_weights(self) -> None:
        """Every rank gets the driver's weights (replicas: a broadcast; FSDP: the shards)."""
        assert self.group is not None
        if not self.sharded:
            self.group.broadcast_parameters(self.model)
            return
        scatter_full_weights(self.module, self.model if self._is_driver else None, self.group.rank)
        if self._is_driver:
            self._scattered = parameter_checksum(self.model)

    def _scatter_if_changed(self) -> None:
        """FSDP: refill the shards if the driver's full weights changed outside a step."""
        assert self.group is not None
        changed = torch.zeros(1)
        if self._is_driver and not torch.equal(parameter_checksum(self.model), self._scattered):
            changed += 1
        if self.group.broadcast(changed).item() > 0:
            self._share_weights()

    def _fsdp_share(
        self, groups: Sequence[tuple[list[TrainingExample], list[float]]]
    ) -> tuple[list[tuple[list[TrainingExample], list[float]]], list[bool]]:
        """This rank's forward passes under FSDP, padded to the busiest rank's count.

        Every forward and backward pass all-gathers each layer's parameters and every
        backward reduce-scatters its gradients: collectives that all ranks must enter the
        same number of times, or the job hangs. :func:`shard` balances tokens, not passes,
        so a rank with fewer passes repeats the step's cheapest pass with zero loss weights
        (zero gradient, excluded from the metrics; the flags say which passes count). Passes
        without a trained token are dropped first: they add nothing, and a tree batch
        without one skips the model entirely, which would unbalance the collectives.
        """
        assert self.group is not None
        groups = [(micro, weights) for micro, weights in groups if _trains_a_token(micro)]
        costs = [sum(len(example.input_ids) for example in micro) for micro, _ in groups]
        plan = shard(costs, self.group.world_size)
        mine = [groups[i] for i in plan[self.group.rank]]
        counted = [True] * len(mine)
        padding = max(len(part) for part in plan) - len(mine)
        if padding:
            micro, weights = groups[min(range(len(groups)), key=lambda i: (costs[i], i))]
            mine += [(micro, [0.0] * len(weights))] * padding
            counted += [False] * padding
        return mine, counted

    def _resync_if_diverged(self) -> None:
        """Broadcast the driver's weights if a rank's differ (changed outside a step)."""
        assert self.group is not None
        local = parameter_checksum(self.model)
        reference = self.group.broadcast(local.clone())
        differs = torch.tensor([float(not torch.equal(local, reference))])
        if self.group.all_reduce(differs).item() > 0:
            self.group.broadcast_parameters(self.model)

    def _reduce_gradients(self, bucket_bytes: int = 64 * 2**20) -> None:
        """Sum every parameter's gradient over ranks, in flat buckets of ``bucket_bytes``."""
        assert self.group is not None
        present = torch.tensor([float(p.grad is not None) for p in self.parameters])
        self.group.all_reduce(present)
        grads = []
        for parameter, has_grad in zip(self.parameters, present.tolist(), strict=True):
            if has_grad and parameter.grad is None:  # another rank's share reached it
                parameter.grad = torch.zeros_like(parameter)
            if has_grad:
                grads.append(parameter.grad)
        bucket: list[torch.Tensor] = []
        size = 0
        for grad in [*grads, None]:
            if bucket and (
                grad is None
                or size + grad.numel() * grad.element_size() > bucket_bytes
                or grad.dtype != bucket[0].dtype
                or grad.device != bucket[0].device
            ):
                flat = self.group.all_reduce(torch.cat([g.reshape(-1) for g in bucket]))
                for g, part in zip(bucket, flat.split([g.numel() for g in bucket]), strict=True):
                    g.copy_(part.view_as(g))
                bucket, size = [], 0
            if grad is not None:
                bucket.append(grad)
                size += grad.numel() * grad.element_size()


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


def _trains_a_token(micro_batch: Sequence[TrainingExample]) -> bool:
    """Whether a forward pass over ``micro_batch`` has a trained token (a predicted label)."""
    return any(label != -100 for example in micro_batch for label in example.labels[1:])


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
