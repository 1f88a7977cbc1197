"""Prefix-tree packing gives the unshared computation's log-probs, losses and gradients.

Every comparison runs the same examples twice, once as separate padded rows and once as
one tree-packed row (shared prefixes computed once), and compares what the trainer uses:
per-token log-probs and entropies, the objective's loss, and every parameter's gradient.
"""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModelForCausalLM

from agentgym.models import resolve_model
from agentgym.trainers.batching import collate
from agentgym.trainers.data import IGNORE_INDEX, TrainingExample
from agentgym.trainers.learner import Learner, score_examples
from agentgym.trainers.lora import LoRAConfig, apply_lora
from agentgym.trainers.objectives import (
    PolicyGradientObjective,
    SFTObjective,
    token_stats,
    trained_values,
)
from agentgym.trainers.sft import SFTConfig, train_sft
from agentgym.trainers.tree import (
    TREE_ATTENTION,
    ancestor_mask,
    build_prefix_tree,
    collate_tree,
    sharing_groups,
    tree_attention,
    tree_attention_active,
)

# --- building trees and batches -------------------------------------------------------


def _example(ids: list[int], trained_from: int, advantage: float = 1.0) -> TrainingExample:
    labels = [IGNORE_INDEX] * trained_from + ids[trained_from:]
    advantages = [advantage if label != IGNORE_INDEX else 0.0 for label in labels]
    return TrainingExample(tuple(ids), tuple(labels), advantages=tuple(advantages))


def _brute_force_mask(paths: list[tuple[int, ...]], size: int) -> torch.Tensor:
    """Position i sees j iff j precedes or is i on some example's path through i."""
    mask = torch.zeros((size, size), dtype=torch.bool)
    for path in paths:
        for t, node in enumerate(path):
            mask[node, list(path[: t + 1])] = True
    return mask


def test_tree_shares_each_prefix_once_and_keeps_every_path() -> None:
    sequences = [(1, 2, 3, 4, 5), (1, 2, 3, 6), (1, 2, 3, 4, 7, 8), (1, 2, 3, 6), (9,), (1, 2)]
    tree = build_prefix_tree(sequences)
    # 1 2 3 4 5 | 6 | 7 8 | 9: the duplicate and the pure prefix (1, 2) add nothing.
    assert tree.num_tokens == 9
    for sequence, path in zip(sequences, tree.paths, strict=True):
        assert [tree.tokens[node] for node in path] == list(sequence)
        assert [tree.depths[node] for node in path] == list(range(len(sequence)))
    assert tree.paths[3] == tree.paths[1]
    assert tree.chunks == ((0, 5, -1), (5, 6, 2), (6, 8, 3), (8, 9, -1))
    mask = ancestor_mask(tree.chunks, tree.num_tokens)
    assert mask.shape == (1, 1, 9, 9)
    assert torch.equal(mask[0, 0], _brute_force_mask(list(tree.paths), 9))


@pytest.mark.parametrize("seed", range(5))
def test_ancestor_mask_on_random_trees(seed: int) -> None:
    rng = random.Random(seed)
    sequences = [tuple(rng.randrange(1, 20) for _ in range(rng.randrange(1, 9)))]
    for _ in range(12):  # branch off random earlier sequences at random points
        parent = rng.choice(sequences)
        cut = rng.randrange(0, len(parent) + 1)
        tail = tuple(rng.randrange(1, 4) for _ in range(rng.randrange(0, 5)))
        sequences.append(parent[:cut] + tail or (1,))
    tree = build_prefix_tree(sequences)
    distinct_prefixes = {s[: k + 1] for s in sequences for k in range(len(s))}
    assert tree.num_tokens == len(distinct_prefixes)
    mask = ancestor_mask(tree.chunks, tree.num_tokens)[0, 0]
    assert torch.equal(mask, _brute_force_mask(list(tree.paths), tree.num_tokens))


def test_tree_batch_lists_targets_and_fields_in_the_padded_order() -> None:
    examples = [
        _example([1, 2, 3, 4], 2, advantage=0.5),
        _example([1, 2, 3, 9, 9], 1, advantage=-1.0),  # trains the shared 2, 3 itself
        _example([1, 2, 3, 4], 2, advantage=2.0),  # duplicate with its own advantage
    ]
    weights = [0.1, 0.2, 0.3]
    padded, tree = collate(examples, 0, weights=weights), collate_tree(examples, weights=weights)
    for name in ("advantages", "loss_weights"):
        assert torch.equal(trained_values(tree, name), trained_values(padded, name)), name
    assert (
        tree["tree_targets"].tolist()
        == padded["labels"][:, 1:][padded["labels"][:, 1:] != IGNORE_INDEX].tolist()
    )
    # Row 2 (token 3) predicts 4 for the first and third example, 9 for the second.
    assert tree["tree_logit_index"].tolist() == [1, 2, 0, 1, 2, 4, 1, 2]
    assert tree["input_ids"].tolist() == [[1, 2, 3, 4, 9, 9]]
    assert tree["position_ids"].tolist() == [[0, 1, 2, 3, 3, 4]]


def test_sharing_groups_keep_a_token_budget_and_every_example() -> None:
    rng = random.Random(0)
    prompts = [[1] + [rng.randrange(2, 50) for _ in range(20)] for _ in range(3)]
    data = [_example(p + [rng.randrange(2, 50) for _ in range(5)], 21) for p in prompts * 4]
    rng.shuffle(data)
    for budget in (41, 30):
        groups = sharing_groups(data, max_tokens=budget)
        assert sorted(i for g in groups for i in g) == list(range(len(data)))
        for group in groups:
            tree = build_prefix_tree([data[i].input_ids for i in group])
            assert tree.num_tokens <= budget
            assert len({data[i].input_ids[:21] for i in group}) == 1  # one prompt per tree
    # 41 tokens hold a prompt and its four completions: one tree per task.
    assert len(sharing_groups(data, max_tokens=41)) == 3
    # An example longer than the budget still gets a tree of its own.
    assert sharing_groups(data[:1], max_tokens=3) == [[0]]


# --- the same numbers as the unshared computation ---------------------------------------


def _trees(rng: random.Random, prompt: int, completion: int) -> dict[str, list[TrainingExample]]:
    """Micro-batches of each shape of sharing, with lengths around ``prompt + completion``."""

    def tokens(n: int) -> list[int]:
        return [rng.randrange(3, 900) for _ in range(n)]

    def advantage() -> float:
        return rng.choice([-1.0, -0.5, 0.5, 1.0, 2.0])

    system = [1, *tokens(prompt - 1)]
    # A task's group: one prompt, G different continuations (different lengths).
    group = [
        _example(system + tokens(completion - 3 * k), len(system), advantage()) for k in range(4)
    ]
    # An episode (prompt, action, observation, action) and restarts of it: at a turn
    # boundary, and from inside the shared first action (its trained tokens shared, with
    # each example's own advantage).
    first, observation = tokens(completion // 2), tokens(completion // 4)
    parent_ids = system + first + observation + tokens(completion // 2)
    trained = [False] * len(system) + [True] * len(first) + [False] * len(observation)
    trained += [True] * (len(parent_ids) - len(trained))

    def episode(ids: list[int]) -> TrainingExample:
        flags = trained + [True] * (len(ids) - len(trained))
        labels = [token if flag else IGNORE_INDEX for token, flag in zip(ids, flags, strict=False)]
        value = advantage()
        return TrainingExample(
            tuple(ids),
            tuple(labels),
            advantages=tuple(value if label != IGNORE_INDEX else 0.0 for label in labels),
        )

    turn = len(system) + len(first) + len(observation)
    inside = len(system) + len(first) // 2
    restarts = [
        episode(parent_ids),
        episode(parent_ids[:turn] + tokens(completion // 3)),
        episode(parent_ids[:inside] + tokens(completion // 2)),
        episode(parent_ids[: inside + 2] + tokens(completion // 3)),
    ]
    duplicate = group[0]
    duplicates = [
        duplicate,
        TrainingExample(
            duplicate.input_ids, duplicate.labels, advantages=(-0.5,) * len(duplicate.labels)
        ),  # same tokens, another advantage
        duplicate,
        _example(list(duplicate.input_ids) + tokens(5), len(system), advantage()),  # extends it
    ]
    return {"group": group, "restarts": restarts, "duplicates": duplicates, "single": group[1:2]}


def _with_policy_fields(model, examples: list[TrainingExample], seed: int) -> list[TrainingExample]:
    """Behaviour and reference log-probs near the model's own: ratios around 1, some clipped."""
    rng = torch.Generator().manual_seed(seed)
    scored = score_examples(model, examples, "behaviour_logprobs")
    noisy = []
    for example in scored:
        exact = torch.tensor(example.behaviour_logprobs)
        behaviour = exact + 0.3 * torch.randn(exact.shape, generator=rng)
        reference = exact + 0.3 * torch.randn(exact.shape, generator=rng)
        noisy.append(
            TrainingExample(
                example.input_ids,
                example.labels,
                advantages=example.advantages,
                behaviour_logprobs=tuple(behaviour.tolist()),
                reference_logprobs=tuple(reference.tolist()),
            )
        )
    return noisy


def _step(model, examples, objective, *, sharing: bool, **options):
    """One Learner step's metrics and its (unclipped) gradients; the weights stay as they are.

    The gradients are taken, and removed, just before the optimizer step, which then has
    nothing to update: every run of a test starts from the same weights.
    """
    learner = Learner(
        model, learning_rate=1e-3, max_grad_norm=None, prefix_sharing=sharing, **options
    )
    gradients: dict[str, torch.Tensor] = {}

    def take_gradients(*_) -> None:
        for name, parameter in model.named_parameters():
            if parameter.grad is not None:
                gradients[name] = parameter.grad
                parameter.grad = None

    learner.optimizer.register_step_pre_hook(take_gradients)
    # Unshared: one row per example. Shared: the learner regroups into trees itself.
    metrics = learner.step([[example] for example in examples], objective)
    return metrics, gradients


def _assert_step_matches(model, examples, objective, *, atol: float, **options) -> None:
    plain, plain_grads = _step(model, examples, objective, sharing=False, **options)
    tree, tree_grads = _step(model, examples, objective, sharing=True, **options)
    assert tree["trained_tokens"] == plain["trained_tokens"]
    assert tree["loss"] == pytest.approx(plain["loss"], abs=atol)
    for name in ("clip_fraction", "kl", "entropy"):
        if name in plain:
            assert tree[name] == pytest.approx(plain[name], abs=atol), name
    assert plain_grads and set(tree_grads) == set(plain_grads)
    worst = max(float((tree_grads[n] - plain_grads[n]).abs().max()) for n in plain_grads)
    assert worst <= atol, f"largest gradient difference {worst:.2e}"
    shared = len(examples) > 1
    assert (tree["input_tokens"] < plain["input_tokens"]) == shared


OBJECTIVES = {
    "sft": SFTObjective(),
    "policy_gradient": PolicyGradientObjective(
        kl_coef=0.1, entropy_coef=0.01, normalisation="sequence", temperature=0.8, top_p=0.95
    ),
}
KINDS = ("group", "restarts", "duplicates", "single")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_tiny_model_step_equals_the_unshared_step(tiny, kind: str, objective: str) -> None:
    examples = _trees(random.Random(1), prompt=24, completion=12)[kind]
    if objective == "policy_gradient":
        examples = _with_policy_fields(tiny, examples, seed=2)
    _assert_step_matches(tiny, examples, OBJECTIVES[objective], atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("attention", ["4-d mask", "per-chunk sdpa"])
def test_log_probs_and_entropies_equal_the_padded_batch(tiny, kind: str, attention: str) -> None:
    examples = _trees(random.Random(3), prompt=20, completion=10)[kind]
    padded = token_stats(tiny, collate(examples, 0), temperature=0.7, top_p=0.9, entropy=True)
    if attention == "4-d mask":
        tree = token_stats(tiny, collate_tree(examples), temperature=0.7, top_p=0.9, entropy=True)
    else:
        with tree_attention(tiny):
            batch = collate_tree(examples, attention_mask=False)
            tree = token_stats(tiny, batch, temperature=0.7, top_p=0.9, entropy=True)
    assert not tree_attention_active(tiny)
    finite = torch.isfinite(padded.logprobs)  # top-p leaves some targets at -inf
    assert torch.equal(finite, torch.isfinite(tree.logprobs))
    torch.testing.assert_close(tree.logprobs[finite], padded.logprobs[finite], atol=1e-5, rtol=0)
    torch.testing.assert_close(tree.entropy, padded.entropy, atol=1e-5, rtol=0)


def test_eager_attention_gets_an_additive_mask() -> None:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model("tiny-random-llama"), attn_implementation="eager"
    )
    examples = _trees(random.Random(4), prompt=16, completion=8)["restarts"]
    padded = token_stats(model, collate(examples, 0))
    tree = token_stats(model, collate_tree(examples, attention_mask=False))
    torch.testing.assert_close(tree.logprobs, padded.logprobs, atol=1e-5, rtol=0)


def test_a_model_whose_attention_bypasses_the_tree_attention_is_refused(tiny, monkeypatch) -> None:
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch = collate_tree(_trees(random.Random(4), prompt=8, completion=4)["group"],
                         attention_mask=False)  # fmt: skip
    with tree_attention(tiny):
        # As if the model computed plain causal attention whatever the dispatch says.
        mapping = AttentionInterface._global_mapping
        monkeypatch.setitem(mapping, TREE_ATTENTION, sdpa_attention_forward)
        with pytest.raises(RuntimeError, match="4-D mask path"):
            token_stats(tiny, batch)


def test_lora_with_gradient_checkpointing_equals_the_unshared_step() -> None:
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))
    model = apply_lora(base, LoRAConfig(enabled=True, rank=4, dropout=0.0))
    for parameter in model.parameters():  # adapters away from zero: non-trivial gradients
        if parameter.requires_grad:
            torch.nn.init.normal_(parameter, std=0.05)
    trees = _trees(random.Random(5), prompt=24, completion=12)
    examples = _with_policy_fields(model, trees["group"] + trees["restarts"], seed=6)
    _assert_step_matches(
        model, examples, OBJECTIVES["policy_gradient"], atol=1e-5, gradient_checkpointing=True
    )


def test_score_examples_with_sharing_gives_the_same_values_in_order(tiny) -> None:
    trees = _trees(random.Random(7), prompt=24, completion=12)
    examples = [e for kind in KINDS for e in trees[kind]]
    random.Random(0).shuffle(examples)
    plain = score_examples(tiny, examples, "reference_logprobs", temperature=0.9)
    shared = score_examples(tiny, examples, "reference_logprobs", temperature=0.9,
                            prefix_sharing=True, max_tokens_per_micro_batch=60)  # fmt: skip
    for a, b in zip(plain, shared, strict=True):
        assert a.input_ids == b.input_ids and a.advantages == b.advantages
        torch.testing.assert_close(
            torch.tensor(b.reference_logprobs),
            torch.tensor(a.reference_logprobs),
            atol=1e-5,
            rtol=0,
        )


def test_train_sft_with_sharing_trains_the_same_weights() -> None:
    trees = _trees(random.Random(8), prompt=24, completion=12)
    data = trees["group"] + trees["restarts"]
    runs = {}
    for sharing in (False, True):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))
        config = SFTConfig(epochs=2, batch_size=8, micro_batch_size=2, learning_rate=1e-3,
                           prefix_sharing=sharing, progress=False)  # fmt: skip
        history = train_sft(model, data, config)
        runs[sharing] = history, torch.cat([p.detach().flatten() for p in model.parameters()])
    (plain_history, plain), (tree_history, tree) = runs[False], runs[True]
    assert [h["trained_tokens"] for h in tree_history] == [
        h["trained_tokens"] for h in plain_history
    ]
    assert tree_history[0]["input_tokens"] < plain_history[0]["input_tokens"]
    assert [h["loss"] for h in tree_history] == pytest.approx(
        [h["loss"] for h in plain_history], abs=1e-5
    )
    # AdamW divides by sqrt(v): where a gradient is ~0, rounding-level differences become
    # update differences of up to the learning rate (a handful of 6.6M weights here). The
    # gradients themselves are compared at 1e-5 above.
    torch.testing.assert_close(tree, plain, atol=1e-4, rtol=0)
    assert float((tree - plain).abs().gt(1e-5).float().mean()) < 1e-5


def test_sft_config_checks_the_switch() -> None:
    with pytest.raises(ValueError, match="prefix_sharing must be true or false"):
        SFTConfig(prefix_sharing="yes")  # type: ignore[arg-type]


# --- a real model: SmolLM2-135M, 30 layers ----------------------------------------------


@pytest.fixture(scope="module")
def smollm2():
    return AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m"), dtype=torch.float32)


@pytest.mark.slow
@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_smollm2_step_equals_the_unshared_step(smollm2, objective: str) -> None:
    trees = _trees(random.Random(9), prompt=120, completion=80)  # ~200-token sequences
    examples = trees["group"][:2] + trees["restarts"][1:3]
    if objective == "policy_gradient":
        examples = _with_policy_fields(smollm2, examples, seed=10)
    _assert_step_matches(smollm2, examples, OBJECTIVES[objective], atol=1e-5)


@pytest.mark.slow
def test_smollm2_scores_equal_the_unshared_scores(smollm2) -> None:
    trees = _trees(random.Random(11), prompt=120, completion=80)
    examples = trees["group"][:3] + trees["restarts"][:2] + trees["duplicates"][:2]
    plain = score_examples(smollm2, examples, "behaviour_logprobs", top_p=0.9)
    shared = score_examples(smollm2, examples, "behaviour_logprobs", top_p=0.9,
                            prefix_sharing=True)  # fmt: skip
    for a, b in zip(plain, shared, strict=True):
        torch.testing.assert_close(
            torch.tensor(b.behaviour_logprobs),
            torch.tensor(a.behaviour_logprobs),
            atol=1e-5,
            rtol=0,
        )
