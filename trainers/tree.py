"""Prefix-tree packing: a token run shared by several examples is computed once, exactly.

The G samples of one task share the whole prompt; a restart shares its parent episode up
to the restart step; a refinement shares the task and the first attempt. Run as separate
rows, every copy of a shared prefix costs a full forward and backward pass. Here a
micro-batch becomes ONE row that holds every distinct prefix once (a trie over the
examples' token ids, flattened with parents before children):

* ``input_ids``: the trie's tokens; ``position_ids``: each token's depth, i.e. its position
  in every example that passes through it (so a continuation's positions continue from its
  prefix);
* attention: each token sees only its ancestors (itself included). The row is a sequence
  of *chunks*, each the run of new tokens one example added to the trie (a chain); a
  chunk's tokens see the ranges of the row on the path to the chunk's branch point, and the
  earlier tokens of their own chunk. Two equivalent ways of running it:

  - the 4-D boolean mask (``attention_mask``, ``(1, 1, N, N)``, ``True`` = may attend) that
    any attention implementation accepting a 4-D mask uses as is (PyTorch SDPA on CPU or
    GPU; an additive float copy for ``eager``): simple, but it costs ``N^2`` work and
    memory;
  - :func:`tree_attention` (used by the trainer): switches the model to an attention
    function that runs SDPA once per chunk over only the keys the chunk sees, so the cost
    is that of the unshared attention minus the shared part. It runs wherever
    ``torch.nn.functional.scaled_dot_product_attention`` runs (CPU; on GPUs its
    memory-efficient kernel takes the chunk masks, and the root chunks use the causal
    flash kernel). A FlexAttention ``BlockMask`` built from :func:`ancestor_mask` is the
    alternative for very wide trees on GPUs (one kernel, block-sparse).

* the loss side: a shared position may predict different next tokens for different
  examples (the branch point of a group), and a trained token shared by two examples may
  carry different advantages. So targets and per-token fields are kept per (example,
  trained position), in exactly the order of the padded
  :func:`~agentgym.trainers.batching.collate` (example by example, position by position),
  and ``tree_logit_index`` says which row position's logits predict each of them. The
  model projects each needed position onto the vocabulary once; the log-probs are gathered
  per target. Losses, log-probs and gradients equal the unshared computation up to
  floating-point rounding (the tests compare them); with dropout on, a shared prefix
  draws one dropout mask for all its continuations instead of one per copy (same
  expectation).

Example:
    >>> tree = build_prefix_tree([(1, 2, 3, 4), (1, 2, 5), (1, 2, 3, 6)])
    >>> tree.tokens, tree.depths
    ((1, 2, 3, 4, 5, 6), (0, 1, 2, 3, 2, 3))
    >>> tree.chunks  # (start, end, parent) of the runs each example added
    ((0, 4, -1), (4, 5, 1), (5, 6, 2))
    >>> tree.paths[2]  # the row position of each of the third example's tokens
    (0, 1, 2, 5)
    >>> ancestor_mask(tree.chunks, tree.num_tokens)[0, 0, 5].int().tolist()  # 6 sees 1, 2, 3
    [1, 1, 1, 0, 0, 1]
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentgym.trainers.data import IGNORE_INDEX, TOKEN_FIELDS, TrainingExample

__all__ = [
    "TREE_ATTENTION",
    "PrefixTree",
    "TreeLayout",
    "ancestor_mask",
    "build_prefix_tree",
    "collate_tree",
    "is_tree_batch",
    "sharing_groups",
    "tree_attention",
    "tree_attention_active",
]

#: Name under which the chunked tree attention is registered with ``transformers``.
TREE_ATTENTION = "agentgym_tree_sdpa"


@dataclass(frozen=True)
class PrefixTree:
    """A trie over token sequences, flattened into one row (parents before children).

    Attributes:
        tokens: The token of each row position.
        depths: Each row position's position id (its index in the sequences through it).
        chunks: ``(start, end, parent)`` of each run of positions one sequence added: the
            positions ``start .. end - 1`` form a chain whose first token follows row
            position ``parent`` (``-1``: a root, the start of a sequence).
        paths: For each sequence, the row position of each of its tokens.
    """

    tokens: tuple[int, ...]
    depths: tuple[int, ...]
    chunks: tuple[tuple[int, int, int], ...]
    paths: tuple[tuple[int, ...], ...]

    @property
    def num_tokens(self) -> int:
        """Positions in the row: the tokens actually computed."""
        return len(self.tokens)


def build_prefix_tree(sequences: Sequence[Sequence[int]]) -> PrefixTree:
    """The prefix tree of ``sequences``; each distinct prefix appears once.

    An identical duplicate adds nothing; a sequence that extends another adds a chunk
    after it. Linear in the total number of tokens.
    """
    tokens: list[int] = []
    depths: list[int] = []
    chunks: list[tuple[int, int, int]] = []
    paths: list[tuple[int, ...]] = []
    roots: dict[int, int] = {}
    children: list[dict[int, int]] = []
    for sequence in sequences:
        node, level = -1, roots
        path: list[int] = []
        position = 0
        # Walk down the existing trie as far as the sequence matches it...
        while position < len(sequence) and sequence[position] in level:
            node = level[sequence[position]]
            path.append(node)
            level = children[node]
            position += 1
        # ...and add the rest as one new chain (one chunk).
        if position < len(sequence):
            start = len(tokens)
            chunks.append((start, start + len(sequence) - position, node))
            for token in sequence[position:]:
                level[token] = len(tokens)
                node = len(tokens)
                tokens.append(token)
                depths.append(len(path))
                children.append({})
                path.append(node)
                level = children[node]
        paths.append(tuple(path))
    return PrefixTree(tuple(tokens), tuple(depths), tuple(chunks), tuple(paths))


def _visible_ranges(chunks: Sequence[tuple[int, int, int]]) -> list[tuple[tuple[int, int], ...]]:
    """For each chunk, the row ranges its tokens attend to; its own range comes last.

    >>> _visible_ranges([(0, 4, -1), (4, 6, 1), (6, 7, 4), (7, 9, 3), (9, 10, 8)])[1:]
    [((0, 2), (4, 6)), ((0, 2), (4, 5), (6, 7)), ((0, 4), (7, 9)), ((0, 4), (7, 10))]
    """
    starts = [start for start, _, _ in chunks]
    prefixes: list[tuple[tuple[int, int], ...]] = []
    visible = []
    for start, end, parent in chunks:
        if parent < 0:
            prefix: tuple[tuple[int, int], ...] = ()
        else:
            owner = bisect.bisect_right(starts, parent) - 1
            prefix = (*prefixes[owner], (chunks[owner][0], parent + 1))
        prefixes.append(prefix)
        merged: list[tuple[int, int]] = []
        for low, high in (*prefix, (start, end)):
            if merged and merged[-1][1] == low:  # adjacent ranges: one slice
                merged[-1] = (merged[-1][0], high)
            else:
                merged.append((low, high))
        visible.append(tuple(merged))
    return visible


def ancestor_mask(chunks: Sequence[tuple[int, int, int]], size: int) -> torch.Tensor:
    """The ``(1, 1, N, N)`` boolean mask of a tree's ``chunks`` (``N = size`` positions).

    Position ``i`` may attend to ``j`` iff ``j`` is an ancestor of ``i`` in the trie, or
    ``i`` itself.
    """
    mask = torch.zeros((size, size), dtype=torch.bool)
    for (start, end, _), ranges in zip(chunks, _visible_ranges(chunks), strict=True):
        for low, high in ranges[:-1]:
            mask[start:end, low:high] = True
        low = ranges[-1][0]  # the last range ends with the chunk: causal inside it
        width = end - low
        keys = torch.arange(width)
        mask[start:end, low:end] = keys[None, :] <= keys[-(end - start) :, None]
    return mask[None, None]


class TreeLayout:
    """The chunks of a tree-packed row as the attention function needs them.

    Built once per forward pass from the batch's ``tree_chunks``. The row is cut into
    *segments* at every chunk start and branch point, so that every chunk sees a run of
    whole segments: keys are split once per layer and concatenated per chunk, and the
    backward pass only concatenates and adds gradients (slicing the full row per chunk
    would allocate and zero-fill a row-sized gradient for every chunk and layer). Each
    chunk's small additive mask is cached per device and dtype, shared by all layers.
    ``attention_calls`` counts the layers that used the layout, so a model whose attention
    bypasses ``transformers``' attention dispatch is caught instead of silently attending
    causally across the whole row.

    >>> layout = TreeLayout([(0, 4, -1), (4, 6, 1), (6, 7, 4)])
    >>> layout.segment_sizes, layout.chunk_segments
    ([2, 2, 1, 1, 1], [[0, 1], [0, 2, 3], [0, 2, 4]])
    """

    def __init__(self, chunks: Sequence[tuple[int, int, int]]) -> None:
        self.chunks = tuple((int(start), int(end), int(parent)) for start, end, parent in chunks)
        visible = _visible_ranges(self.chunks)
        cuts = {0, self.chunks[-1][1] if self.chunks else 0}
        for start, _, _ in self.chunks:
            cuts.add(start)
        for ranges in visible:
            for low, high in ranges:
                cuts.update((low, high))
        boundaries = sorted(cuts)
        segment_of = {low: index for index, low in enumerate(boundaries)}
        self.chunk_sizes = [end - start for start, end, _ in self.chunks]
        self.segment_sizes = [high - low for low, high in itertools.pairwise(boundaries)]
        self.chunk_segments = [
            [i for low, high in ranges for i in range(segment_of[low], segment_of[high])]
            for ranges in visible
        ]
        self.chunk_keys = [sum(high - low for low, high in ranges) for ranges in visible]
        self._masks: dict[tuple[int, torch.device, torch.dtype], torch.Tensor | None] = {}
        self.attention_calls = 0

    @classmethod
    def from_batch(cls, batch: Mapping[str, torch.Tensor]) -> TreeLayout:
        return cls(batch["tree_chunks"].tolist())

    def chunk_mask(
        self, index: int, device: torch.device, dtype: torch.dtype
    ) -> torch.Tensor | None:
        """``None`` for a chunk that sees only itself (plain causal attention), else its
        additive ``(queries, visible keys)`` mask: the visible prefix, then causal."""
        if (index, device, dtype) not in self._masks:
            queries, keys = self.chunk_sizes[index], self.chunk_keys[index]
            mask = None
            if keys != queries:
                offset = keys - queries  # the last `queries` keys are the chunk itself
                rows = torch.arange(queries, device=device)[:, None]
                visible = torch.arange(keys, device=device)[None, :] <= rows + offset
                mask = torch.zeros(visible.shape, dtype=dtype, device=device)
                mask.masked_fill_(~visible, torch.finfo(dtype).min)
            self._masks[(index, device, dtype)] = mask
        return self._masks[(index, device, dtype)]


def tree_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    tree_layout: TreeLayout | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """A ``transformers`` attention function: SDPA per chunk of a tree-packed row.

    ``query`` is ``(batch, heads, N, dim)``, ``key``/``value`` ``(batch, kv_heads, N,
    dim)``; returns ``(batch, N, heads, dim)`` like the built-in functions. Without a
    ``tree_layout`` (not a tree batch) it is the built-in SDPA attention.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if tree_layout is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    tree_layout.attention_calls += 1
    # Grouped-query attention without copying the keys per head group: the per-chunk keys
    # are saved for the backward pass, a third the size with kv heads only.
    gqa = query.shape[1] != key.shape[1]
    key_parts = key.split(tree_layout.segment_sizes, dim=2)
    value_parts = value.split(tree_layout.segment_sizes, dim=2)
    outputs = []
    for index, chunk_query in enumerate(query.split(tree_layout.chunk_sizes, dim=2)):
        segments = tree_layout.chunk_segments[index]
        if len(segments) == 1:
            keys, values = key_parts[segments[0]], value_parts[segments[0]]
        else:
            keys = torch.cat([key_parts[i] for i in segments], dim=2)
            values = torch.cat([value_parts[i] for i in segments], dim=2)
        mask = tree_layout.chunk_mask(index, query.device, query.dtype)
        outputs.append(
            torch.nn.functional.scaled_dot_product_attention(
                chunk_query,
                keys,
                values,
                attn_mask=mask,
                dropout_p=dropout,
                is_causal=mask is None,
                scale=scaling,
                enable_gqa=gqa,
            )
        )
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


def _config(model: Any) -> Any:
    return model.config


@functools.cache
def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(TREE_ATTENTION, tree_sdpa_attention)


def tree_attention_active(model: Any) -> bool:
    """Whether ``model`` currently runs :func:`tree_sdpa_attention`."""
    return getattr(_config(model), "_attn_implementation", None) == TREE_ATTENTION


@contextlib.contextmanager
def tree_attention(model: Any) -> Iterator[None]:
    """Run ``model``'s attention as per-chunk SDPA on tree batches inside this block.

    Wrap both the forward and the backward pass (gradient checkpointing recomputes the
    forward during the backward). Works for ``transformers`` models that dispatch
    attention through ``AttentionInterface`` (Llama, Qwen2, Mistral, ...) with or without
    LoRA; the model's own implementation is restored on exit.

    >>> from transformers import AutoModelForCausalLM
    >>> from agentgym.models import resolve_model
    >>> model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))
    >>> with tree_attention(model):
    ...     tree_attention_active(model)
    True
    >>> tree_attention_active(model)
    False
    """
    _register()
    config = _config(model)
    previous = config._attn_implementation
    config._attn_implementation = TREE_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = previous


def is_tree_batch(batch: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``batch`` came from :func:`collate_tree`."""
    return "tree_targets" in batch


def collate_tree(
    examples: Sequence[TrainingExample],
    *,
    weights: Sequence[float] | None = None,
    attention_mask: bool = True,
) -> dict[str, torch.Tensor]:
    """One tree-packed row of ``examples``, with per-(example, trained token) targets.

    Returns ``input_ids`` and ``position_ids`` ``(1, N)``; ``tree_chunks`` ``(C, 3)``;
    ``tree_logit_index`` and ``tree_targets`` ``(M,)`` for the ``M`` trained tokens in
    :func:`~agentgym.trainers.batching.collate`'s row-major order; the per-token float
    fields any example has (and ``loss_weights`` from ``weights``) as ``(M,)`` tensors in
    the same order; with ``attention_mask``, the ``(1, 1, N, N)`` ancestor mask (not
    needed under :func:`tree_attention`).

    Example:
        >>> group = [TrainingExample((1, 2, 3), (-100, -100, 3)),
        ...          TrainingExample((1, 2, 4), (-100, -100, 4))]
        >>> batch = collate_tree(group, weights=[0.5, 0.5])
        >>> batch["input_ids"].tolist(), batch["position_ids"].tolist()
        ([[1, 2, 3, 4]], [[0, 1, 2, 2]])
        >>> batch["tree_logit_index"].tolist(), batch["tree_targets"].tolist()  # both from 2
        ([1, 1], [3, 4])
    """
    tree = build_prefix_tree([e.input_ids for e in examples])
    names = [n for n in TOKEN_FIELDS if any(getattr(e, n) is not None for e in examples)]
    logit_index: list[int] = []
    targets: list[int] = []
    floats: dict[str, list[float]] = {name: [] for name in names}
    loss_weights: list[float] = []
    for row, (example, path) in enumerate(zip(examples, tree.paths, strict=True)):
        # Position 0 is never trained (nothing predicts it), as in collate.
        trained = [t for t in range(1, len(example.labels)) if example.labels[t] != IGNORE_INDEX]
        logit_index += [path[t - 1] for t in trained]
        targets += [example.labels[t] for t in trained]
        for name in names:
            values = getattr(example, name)
            floats[name] += [values[t] if values is not None else 0.0 for t in trained]
        if weights is not None:
            loss_weights += [weights[row]] * len(trained)
    if weights is not None:
        floats["loss_weights"] = loss_weights
    batch = {
        "input_ids": torch.tensor([tree.tokens], dtype=torch.long),
        "position_ids": torch.tensor([tree.depths], dtype=torch.long),
        "tree_chunks": torch.tensor(tree.chunks, dtype=torch.long).reshape(-1, 3),
        "tree_logit_index": torch.tensor(logit_index, dtype=torch.long),
        "tree_targets": torch.tensor(targets, dtype=torch.long),
        **{name: torch.tensor(values, dtype=torch.float32) for name, values in floats.items()},
    }
    if attention_mask:
        batch["attention_mask"] = ancestor_mask(tree.chunks, tree.num_tokens)
    return batch


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


def sharing_groups(examples: Sequence[TrainingExample], max_tokens: int) -> list[list[int]]:
    """Indices of ``examples`` grouped into trees of at most ``max_tokens`` distinct tokens.

    Examples are ordered by their token ids, which puts those that share a prefix next to
    each other (the longest prefix an example shares with any earlier one is the one it
    shares with its neighbour), then cut greedily at the token budget. An example longer
    than the budget forms a tree of its own.

    >>> data = [TrainingExample(ids, ids) for ids in [(1, 2, 9), (5, 6), (1, 2, 3), (1, 2, 3, 4)]]
    >>> sharing_groups(data, max_tokens=5)
    [[2, 3, 0], [1]]
    """
    order = sorted(range(len(examples)), key=lambda i: examples[i].input_ids)
    groups: list[list[int]] = []
    size = 0
    previous: Sequence[int] = ()
    for index in order:
        ids = examples[index].input_ids
        added = len(ids) - _common_prefix(previous, ids)
        if groups and size + added <= max_tokens:
            groups[-1].append(index)
            size += added
        else:
            groups.append([index])
            size = len(ids)
        previous = ids
    return groups
