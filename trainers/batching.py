"""Micro-batches and their tensors: length-grouped padded batches or padding-free packed rows.

* :func:`batches` groups examples of similar length (little padding) into micro-batches,
  or, with ``packing``, fills micro-batches up to a token budget;
* :func:`collate` right-pads a micro-batch into tensors; :func:`collate_packed` concatenates
  it into one padding-free row whose ``position_ids`` restart at every example, so that
  attention stays inside each example (``transformers`` builds the block-diagonal causal
  mask from the position ids; no token is spent on padding).

Per-token float fields of the examples (advantages, behaviour and reference log-probs) and
per-example loss weights are collated alongside ``labels``, in the same layout.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from agentgym.trainers.data import IGNORE_INDEX, TOKEN_FIELDS, TrainingExample

__all__ = ["batches", "collate", "collate_packed"]


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


def _token_field(example: TrainingExample, name: str, weight: float | None) -> Sequence[float]:
    if name == "loss_weights":
        return [0.0 if weight is None else weight] * len(example.input_ids)
    values = getattr(example, name)
    return values if values is not None else [0.0] * len(example.input_ids)


def _float_fields(
    examples: Sequence[TrainingExample], weights: Sequence[float] | None
) -> list[str]:
    names = [n for n in TOKEN_FIELDS if any(getattr(e, n) is not None for e in examples)]
    return [*names, "loss_weights"] if weights is not None else names


def collate(
    examples: Sequence[TrainingExample],
    pad_token_id: int,
    *,
    weights: Sequence[float] | None = None,
) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` tensors.

    Per-token float fields that any example has (``advantages``, ``behaviour_logprobs``,
    ``reference_logprobs``) come along with the same shape (zeros where missing), and
    ``weights`` (one per example, see :func:`~agentgym.trainers.objectives.normalisation_weights`)
    becomes a ``loss_weights`` tensor.
    """
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    names = _float_fields(examples, weights)
    floats = {name: torch.zeros((len(examples), width), dtype=torch.float32) for name in names}
    for row, example in enumerate(examples):
        length = len(example.input_ids)
        input_ids[row, :length] = torch.tensor(example.input_ids)
        labels[row, :length] = torch.tensor(example.labels)
        attention_mask[row, :length] = 1
        for name in names:
            weight = None if weights is None else weights[row]
            floats[name][row, :length] = torch.tensor(_token_field(example, name, weight))
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, **floats}


def collate_packed(
    examples: Sequence[TrainingExample], *, weights: Sequence[float] | None = None
) -> dict[str, torch.Tensor]:
    """One padding-free row: ``input_ids``, ``position_ids`` restarting per example, ``labels``.

    The first label of every example is masked, so no example learns to predict its
    neighbour's first token. Per-token float fields come along as in :func:`collate`.

    Example:
        >>> from agentgym.trainers.data import TrainingExample
        >>> row = collate_packed([TrainingExample((5, 6), (5, 6)), TrainingExample((7,), (7,))])
        >>> row["position_ids"].tolist(), row["labels"].tolist()
        ([[0, 1, 0]], [[-100, 6, -100]])
    """
    input_ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    names = _float_fields(examples, weights)
    floats: dict[str, list[float]] = {name: [] for name in names}
    for row, example in enumerate(examples):
        input_ids += example.input_ids
        labels += [IGNORE_INDEX, *example.labels[1:]]
        positions += range(len(example.input_ids))
        for name in names:
            weight = None if weights is None else weights[row]
            floats[name] += _token_field(example, name, weight)
    return {
        "input_ids": torch.tensor([input_ids], dtype=torch.long),
        "position_ids": torch.tensor([positions], dtype=torch.long),
        "labels": torch.tensor([labels], dtype=torch.long),
        **{name: torch.tensor([values], dtype=torch.float32) for name, values in floats.items()},
    }
