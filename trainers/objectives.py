"""Training objectives over per-token log-probabilities: SFT and the GRPO family.

Every trainer shares one step (:class:`~agentgym.trainers.learner.Learner`); what differs is
the *objective*, a small object that turns the policy's per-token statistics into per-token
losses. The pieces:

* :func:`sampling_logprobs` is the rule for log-probabilities of the distribution actually
  sampled from: ``log_softmax(logits / T)`` restricted to the top-p nucleus and renormalised,
  exactly what the engines record (``HFEngine`` applies ``TemperatureLogitsWarper`` then
  ``TopPLogitsWarper``; vLLM's ``processed_logprobs`` applies temperature then top-p). Greedy
  rollouts (``T = 0``) record temperature-1 log-probs, so ``T = 0`` is treated as ``T = 1``;
* :func:`token_stats` runs the model on a collated micro-batch and returns those
  log-probs (and optionally the entropy of the sampling distribution) of every trained
  token, flattened in row-major order, the same order in which :func:`trained_values`
  flattens the per-token fields (advantages, behaviour and reference log-probs, weights);
* :class:`SFTObjective` is the negative log-likelihood at temperature 1;
* :class:`PolicyGradientObjective` is the clipped surrogate of PPO/GRPO with asymmetric
  clipping (DAPO's clip-higher), an optional KL penalty to a reference policy with the k3
  estimator ``exp(ref - logp) - (ref - logp) - 1`` and an optional entropy bonus;
* :func:`normalisation_weights` gives each example the weight of its tokens in an
  optimizer step: ``"token"`` (every trained token of the step weighs the same: DAPO's
  token-level mean, and SFT's), ``"sequence"`` (mean over each sequence's tokens, then over
  sequences: GRPO) or ``"constant"`` (sum over tokens divided by a constant times the number of
  sequences: Dr. GRPO, which removes the length bias).

The loss of a step is ``sum_tokens weight * token_loss``; micro-batches are accumulated
without rescaling because the weights already normalise over the whole step.

Example (one sequence whose behaviour log-probs equal the policy's, so the ratio is 1 and
the clipped loss is ``-advantage`` per token):

    >>> import torch
    >>> objective = PolicyGradientObjective(clip_low=0.2, clip_high=0.28)
    >>> stats = TokenStats(logprobs=torch.tensor([-1.0, -2.0]))
    >>> values = {"advantages": torch.tensor([0.5, 0.5]),
    ...           "behaviour_logprobs": torch.tensor([-1.0, -2.0])}
    >>> losses, metrics = objective.token_losses(stats, values)
    >>> losses.tolist(), metrics["clip_fraction"]
    ([-0.5, -0.5], 0.0)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from agentgym.trainers.data import IGNORE_INDEX, TrainingExample
from agentgym.trainers.tree import (
    TreeLayout,
    ancestor_mask,
    is_tree_batch,
    tree_attention_active,
)

__all__ = [
    "NORMALISATIONS",
    "Objective",
    "PolicyGradientObjective",
    "SFTObjective",
    "TokenStats",
    "k3_kl",
    "normalisation_weights",
    "sampling_logprobs",
    "token_stats",
    "trained_values",
]

NORMALISATIONS = ("token", "sequence", "constant")


def _temperature(temperature: float) -> float:
    # Greedy rollouts record temperature-1 log-probs (both engines), so T = 0 means T = 1.
    return 1.0 if temperature <= 0 else float(temperature)


def sampling_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of ``targets`` under the sampling distribution of ``logits``; its entropy.

    The sampling distribution is ``softmax(logits / T)`` restricted to the nucleus: sorted by
    probability, the tokens whose cumulative probability (from the least likely up) exceeds
    ``1 - top_p`` are kept (at least the most likely one), and the distribution is
    renormalised over them (HF's ``TopPLogitsWarper`` and vLLM's top-p). A target outside
    the current nucleus gets ``-inf`` (the policy could not sample it now).

    Args:
        logits: ``(..., vocab)`` raw logits.
        targets: ``(...)`` token ids.
        temperature: Sampling temperature (``0``: greedy, whose log-probs are taken at 1).
        top_p: Nucleus mass in ``(0, 1]``.
        entropy: Also return the entropy of the sampling distribution at each position.

    Example:
        >>> logits = torch.tensor([[2.0, 1.0, -3.0]])
        >>> logp, _ = sampling_logprobs(logits, torch.tensor([1]), temperature=0.5)
        >>> round(float(logp), 4) == round(float(torch.log_softmax(logits / 0.5, -1)[0, 1]), 4)
        True
        >>> logp, _ = sampling_logprobs(logits, torch.tensor([2]), top_p=0.9)
        >>> float(logp)  # the least likely token is outside the 0.9 nucleus
        -inf
    """
    log_probs = _sampling_log_softmax(logits, temperature, top_p)
    picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked, _entropy(log_probs) if entropy else None


def _sampling_log_softmax(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Log-probs of the whole sampling distribution (see :func:`sampling_logprobs`)."""
    scaled = logits.float() / _temperature(temperature)
    if top_p < 1.0:
        ordered, order = torch.sort(scaled, dim=-1, descending=False)
        cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
        remove_sorted = cumulative <= (1 - top_p)
        remove_sorted[..., -1] = False  # always keep the most likely token
        remove = remove_sorted.scatter(-1, order, remove_sorted)
        scaled = scaled.masked_fill(remove, float("-inf"))
    return torch.log_softmax(scaled, dim=-1)


def _entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of a (possibly nucleus-restricted) log-prob table."""
    probs = log_probs.exp()
    # Tokens outside the nucleus have p = 0 and log p = -inf: they contribute nothing, and
    # the -inf must not enter a product (0 * -inf is nan, in the value or the gradient).
    finite_log = torch.where(torch.isfinite(log_probs), log_probs, torch.zeros_like(log_probs))
    return -(probs * finite_log).sum(dim=-1)


@dataclass
class TokenStats:
    """The policy's statistics of every trained token of a micro-batch (row-major order).

    Attributes:
        logprobs: Log-probability of each trained token under the sampling distribution.
        entropy: Entropy of the sampling distribution at each trained token's position.
    """

    logprobs: torch.Tensor
    entropy: torch.Tensor | None = None

    @property
    def count(self) -> int:
        """How many trained tokens."""
        return int(self.logprobs.numel())


def _supports_logits_to_keep(model: Any) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (most ``transformers`` LMs)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


def _right_padded(attention_mask: torch.Tensor) -> bool:
    """Whether every row is ones followed by zeros (what ``collate`` builds).

    >>> _right_padded(torch.tensor([[1, 1, 0], [1, 1, 1]])), _right_padded(torch.tensor([[0, 1]]))
    (True, False)
    """
    return bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())


def _model_inputs(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if "position_ids" in batch:  # packed rows: attention follows the position ids
        inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
        if "attention_mask" in batch and batch["attention_mask"].dim() == 4:
            inputs["attention_mask"] = batch["attention_mask"]  # tree-packed rows
        return inputs
    if _right_padded(batch["attention_mask"]):
        # A causal LM needs no mask for right padding: a real token attends only to earlier
        # positions, which are all real, and padded positions carry no loss. Without the
        # mask, SDPA runs its causal memory-efficient kernel instead of materialising
        # batch x heads x length^2 attention weights for the backward pass.
        return {"input_ids": batch["input_ids"]}
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def token_stats(
    model: Any,
    batch: Mapping[str, torch.Tensor],
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    entropy: bool = False,
) -> TokenStats:
    """Run ``model`` on a collated micro-batch; statistics of its trained tokens.

    ``batch`` is padded (``attention_mask``), packed (``position_ids``) or tree-packed
    (:func:`~agentgym.trainers.tree.collate_tree`); ``labels`` (``tree_targets``) marks
    the trained tokens. Only positions that predict a trained token are projected onto the
    vocabulary (``logits_to_keep``): in agent episodes most tokens are prompt and
    observations, and full-sequence logits would dominate the memory.
    """
    if is_tree_batch(batch):
        return _tree_token_stats(model, batch, temperature, top_p, entropy)
    inputs = _model_inputs(batch)
    targets = batch["labels"][:, 1:]
    # use_cache=False: no KV cache is needed for training, and transformers only reads
    # packed rows from position_ids when no cache is passed.
    if _supports_logits_to_keep(model):
        keep = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
        targets = targets[:, keep]
    else:
        logits = model(**inputs, use_cache=False).logits[:, :-1]
    trained = targets != IGNORE_INDEX
    logprobs, entropies = sampling_logprobs(
        logits[trained], targets[trained], temperature=temperature, top_p=top_p, entropy=entropy
    )
    return TokenStats(logprobs=logprobs, entropy=entropies)


def _tree_token_stats(
    model: Any,
    batch: Mapping[str, torch.Tensor],
    temperature: float,
    top_p: float,
    entropy: bool,
) -> TokenStats:
    """:func:`token_stats` of a tree-packed row: one logit row per needed position.

    A position shared by several examples is projected onto the vocabulary once; each
    (example, trained token) gathers its log-prob from it (the same position may predict
    different tokens for different examples).
    """
    index, targets = batch["tree_logit_index"], batch["tree_targets"]
    if index.numel() == 0:
        empty = torch.zeros(0, device=index.device)
        return TokenStats(logprobs=empty, entropy=empty if entropy else None)
    inputs: dict[str, Any] = {
        "input_ids": batch["input_ids"],
        "position_ids": batch["position_ids"],
    }
    layout = None
    if tree_attention_active(model):
        inputs["tree_layout"] = layout = TreeLayout.from_batch(batch)
    else:  # any attention implementation that accepts a 4-D mask
        mask = batch.get("attention_mask")
        if mask is None:
            size = batch["input_ids"].shape[1]
            mask = ancestor_mask(batch["tree_chunks"].tolist(), size).to(index.device)
        if getattr(model.config, "_attn_implementation", None) == "eager":
            dtype = next(model.parameters()).dtype  # eager adds the mask to the scores
            mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
                ~mask, torch.finfo(dtype).min
            )
        inputs["attention_mask"] = mask
    keep, inverse = torch.unique(index, sorted=True, return_inverse=True)
    if _supports_logits_to_keep(model):
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits[0]
    else:
        logits = model(**inputs, use_cache=False).logits[0, keep]
    if layout is not None and layout.attention_calls == 0:
        raise RuntimeError(
            f"{type(model).__name__} did not run its attention through the tree attention "
            "(it does not dispatch through transformers' AttentionInterface), so it attended "
            "causally across the whole tree row. Run it outside tree_attention(model) with "
            "collate_tree(..., attention_mask=True): the 4-D mask path."
        )
    log_probs = _sampling_log_softmax(logits, temperature, top_p)
    return TokenStats(
        logprobs=log_probs[inverse, targets],
        entropy=_entropy(log_probs)[inverse] if entropy else None,
    )


def trained_values(batch: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    """A collated per-token field at the trained positions, in :func:`token_stats`'s order.

    >>> batch = {"labels": torch.tensor([[-100, 5, 6], [-100, -100, 7]]),
    ...          "advantages": torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]])}
    >>> trained_values(batch, "advantages").tolist()
    [1.0, 2.0, 3.0]
    """
    if is_tree_batch(batch):  # already one value per (example, trained token)
        return batch[name]
    trained = batch["labels"][:, 1:] != IGNORE_INDEX
    return batch[name][:, 1:][trained]


def k3_kl(logprobs: torch.Tensor, reference_logprobs: torch.Tensor) -> torch.Tensor:
    """The k3 estimator of KL(policy || reference) per token: ``exp(r) - r - 1``.

    ``r = reference_logprobs - logprobs``.

    Non-negative, zero exactly when the two log-probs agree.

    >>> k3_kl(torch.tensor([-1.0, -2.0]), torch.tensor([-1.0, -1.0])).tolist()[0]
    0.0
    """
    delta = reference_logprobs - logprobs
    return torch.exp(delta) - delta - 1


def normalisation_weights(
    examples: Sequence[TrainingExample], mode: str = "token", *, constant: float = 1.0
) -> list[float]:
    """The weight of each example's trained tokens in one optimizer step.

    * ``"token"``: ``1 / (trained tokens of the step)``, every token weighs the same (SFT,
      DAPO's token-level loss);
    * ``"sequence"``: ``1 / (|o_i| * sequences)``, a mean over each sequence's tokens, then
      over sequences (GRPO);
    * ``"constant"``: ``1 / (constant * sequences)``, a plain sum over tokens scaled by a
      constant (Dr. GRPO: no length bias; use the generation budget as the constant).

    Example:
        >>> data = [TrainingExample((1, 2, 3), (-100, 2, 3)), TrainingExample((1, 2), (-100, 2))]
        >>> normalisation_weights(data, "token"), normalisation_weights(data, "sequence")
        ([0.3333333333333333, 0.3333333333333333], [0.25, 0.5])
        >>> normalisation_weights(data, "constant", constant=4.0)
        [0.125, 0.125]
    """
    if mode not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {', '.join(NORMALISATIONS)}; got {mode!r}")
    # Position 0 never carries loss (nothing predicts it), as in token_stats.
    counts = [sum(label != IGNORE_INDEX for label in e.labels[1:]) for e in examples]
    if mode == "token":
        total = max(1, sum(counts))
        return [1.0 / total] * len(examples)
    sequences = max(1, sum(1 for c in counts if c))
    if mode == "sequence":
        return [1.0 / (c * sequences) if c else 0.0 for c in counts]
    return [1.0 / (constant * sequences)] * len(examples)


class Objective(Protocol):
    """What a trainer step needs from a loss.

    Attributes:
        needs_reference: Whether examples must carry ``reference_logprobs``.
        needs_entropy: Whether :func:`token_stats` must compute entropies.
        normalisation: How tokens are weighted within a step (see
            :func:`normalisation_weights`).
        temperature / top_p: The sampling distribution the log-probs are taken under.
    """

    needs_reference: bool
    needs_entropy: bool
    normalisation: str
    temperature: float
    top_p: float

    def token_losses(
        self, stats: TokenStats, values: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Per-token losses (same order as ``stats``) and diagnostics of this micro-batch."""
        ...


@dataclass(frozen=True)
class SFTObjective:
    """Negative log-likelihood of the trained tokens (temperature 1, every token equal).

    >>> losses, _ = SFTObjective().token_losses(TokenStats(torch.tensor([-0.5, -1.5])), {})
    >>> losses.tolist()
    [0.5, 1.5]
    """

    normalisation: str = "token"
    needs_reference: bool = False
    needs_entropy: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    deterministic: bool = False  # dropout stays on, as in plain fine-tuning

    def token_losses(
        self, stats: TokenStats, values: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return -stats.logprobs, {}


@dataclass(frozen=True)
class PolicyGradientObjective:
    """The clipped policy-gradient surrogate (PPO / GRPO / DAPO / Dr. GRPO).

    Per trained token, with ``ratio = exp(logp - behaviour_logp)`` and advantage ``A``::

        loss = -min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A)
               + kl_coef * k3(logp, reference_logp) - entropy_coef * entropy

    Attributes:
        clip_low / clip_high: Clipping range of the ratio (DAPO's clip-higher: 0.2 / 0.28).
        kl_coef: Weight of the k3 KL penalty to the reference policy (0: off).
        entropy_coef: Weight of the entropy bonus (0: off).
        normalisation: ``"token"``, ``"sequence"`` or ``"constant"`` (see
            :func:`normalisation_weights`).
        temperature / top_p: The rollouts' sampling distribution; the ratio compares the
            policy's log-probs under the same distribution as the behaviour log-probs.
    """

    clip_low: float = 0.2
    clip_high: float = 0.28
    kl_coef: float = 0.0
    entropy_coef: float = 0.0
    normalisation: str = "token"
    temperature: float = 1.0
    top_p: float = 1.0
    deterministic: bool = True  # dropout off: the ratio is exactly 1 before an update

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.clip_low < 1:
            problems.append(f"clip_low must be in [0, 1), got {self.clip_low}")
        if self.clip_high < 0:
            problems.append(f"clip_high must be >= 0, got {self.clip_high}")
        if self.kl_coef < 0 or self.entropy_coef < 0:
            problems.append("kl_coef and entropy_coef must be >= 0")
        if self.normalisation not in NORMALISATIONS:
            problems.append(
                f"normalisation must be one of {', '.join(NORMALISATIONS)}; "
                f"got {self.normalisation!r}"
            )
        if problems:
            raise ValueError("Invalid policy-gradient objective: " + "; ".join(problems))

    @property
    def needs_reference(self) -> bool:
        return self.kl_coef > 0

    @property
    def needs_entropy(self) -> bool:
        return self.entropy_coef > 0

    def token_losses(
        self, stats: TokenStats, values: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        advantages = values["advantages"]
        log_ratio = stats.logprobs - values["behaviour_logprobs"]
        # A token the current nucleus excludes has logp = -inf: ratio 0, which the clip
        # turns into a constant (no gradient, no nan).
        ratio = torch.exp(log_ratio.clamp(max=20.0))
        clipped = ratio.clamp(1 - self.clip_low, 1 + self.clip_high)
        surrogate = torch.minimum(ratio * advantages, clipped * advantages)
        losses = -surrogate
        metrics: dict[str, float] = {}
        with torch.no_grad():
            finite = torch.isfinite(log_ratio)
            metrics["clip_fraction"] = float(((ratio != clipped) & finite).float().mean())
            metrics["ratio_mean"] = float(ratio[finite].mean()) if finite.any() else 0.0
            # k1 estimate of KL(behaviour || policy): how far the update has moved.
            metrics["approx_kl"] = float((-log_ratio[finite]).mean()) if finite.any() else 0.0
        if self.kl_coef > 0:
            reference = values["reference_logprobs"]
            # A token outside the current nucleus (logp = -inf) has no finite KL estimate; it
            # counts as agreeing with the reference. (Masking the estimate afterwards would
            # still send exp(inf) * 0 = nan into the gradient.)
            inside = torch.isfinite(stats.logprobs)
            kl = k3_kl(torch.where(inside, stats.logprobs, reference), reference)
            losses = losses + self.kl_coef * kl
            metrics["kl"] = float(kl.detach().mean())
        if self.entropy_coef > 0:
            assert stats.entropy is not None, "token_stats(entropy=True) is needed"
            losses = losses - self.entropy_coef * stats.entropy
        if stats.entropy is not None:
            metrics["entropy"] = float(stats.entropy.detach().mean())
        return losses, metrics
