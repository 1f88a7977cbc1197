"""Prefix sharing: one training step with and without prefix trees, side by side.

Real ToolUse-v0 data tokenised with SmolLM2's chat template, trained with SmolLM2-135M:

* groups: G = 4 and 8 distinct episodes of one task (the environment's expert with one
  injected error per episode, so the episodes differ as a policy's samples do; duplicates
  are redrawn), i.e. what GRPO and RFT train on: episodes of 1,000-1,500 tokens, most of
  them the task's shared prompt;
* an EEF restart set: one expert episode and restarts from its states after 0, 1, 2, ...
  actions (replayed parent prefix as untrained context, then the expert with other error
  draws).

For each set the same examples go through :meth:`~agentgym.trainers.learner.Learner.step`
once as padded micro-batches (today's path, at most ``--max-tokens`` padded tokens per
forward pass) and once as prefix trees (at most ``--max-tokens`` distinct tokens per tree),
with the SFT objective and with the clipped policy-gradient objective (k3 KL and entropy
on, behaviour and reference log-probs from :func:`~agentgym.trainers.learner.score_examples`,
which is timed too). The learning rate is 0, so every run starts from the same weights;
both steps' gradients are captured and compared. Printed as JSON: seconds, speedups,
tokens run through the model, the largest loss and gradient differences.

Run (about 10-20 minutes on 2 CPU cores):

    nice -n 10 .venv/bin/python benchmarks/prefix_sharing.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.core.env import InfoKeys
from agentgym.core.trajectory import Message, Trajectory
from agentgym.models import resolve_model
from agentgym.trainers.batching import batches
from agentgym.trainers.data import TrainingExample, trajectory_to_example
from agentgym.trainers.learner import Learner, score_examples
from agentgym.trainers.objectives import Objective, PolicyGradientObjective, SFTObjective
from agentgym.trainers.tree import build_prefix_tree

ENV_ID = "agentgym/ToolUse-v0"
ENV_KWARGS = {"difficulty": "easy", "categories": ["base"], "domains": ["messaging", "travel"]}


def collector(expert_seed: int) -> RolloutCollector:
    return RolloutCollector(
        ENV_ID,
        engine=None,
        env_kwargs=ENV_KWARGS,
        num_envs=4,
        max_turns=6,
        max_context_tokens=4096,
        expert_kwargs={"error_rate": 1.0, "seed": expert_seed},
    )


def group(task_seed: int, size: int, tokenizer: Any) -> list[TrainingExample]:
    """``size`` distinct expert episodes of the task drawn by ``task_seed``."""
    examples: dict[tuple[int, ...], TrainingExample] = {}
    runner = collector(expert_seed=0)
    episode = 0
    while len(examples) < size and episode < 8 * size:
        specs = [EpisodeSpec(f"t{task_seed}-e{episode + k}", seed=task_seed,
                             episode_seed=episode + k) for k in range(size)]  # fmt: skip
        for trajectory in runner.run(specs, progress=False):
            example = trajectory_to_example(trajectory, tokenizer)
            examples.setdefault(example.input_ids, example)
        episode += size
    runner.close()
    return list(examples.values())[:size]


def restart_set(task_seed: int, tokenizer: Any) -> list[TrainingExample]:
    """An expert episode and restarts of it after each of its actions but the last."""
    parent = collector(expert_seed=0).run([EpisodeSpec(f"p{task_seed}", seed=task_seed)],
                                          progress=False)[0]  # fmt: skip
    restarts = []
    for step in range(parent.num_steps):  # each restart with its own error draws
        spec = EpisodeSpec(f"p{task_seed}-from{step}", restart_from=parent, restart_step=step)
        restarts += collector(expert_seed=1 + step).run([spec], progress=False)
    return [trajectory_to_example(t, tokenizer) for t in [parent, *map(with_system, restarts)]]


def with_system(restart: Trajectory) -> Trajectory:
    """A restart with its parent's system prompt (the tool list) at the start.

    The collector (as of this benchmark) opens restarts after step 0 without the system
    prompt, because the step's info does not repeat it; an EEF restart is meant to see the
    parent's whole context, so it is put back here.
    """
    if restart.messages and restart.messages[0].role == "system":
        return restart
    reset = collector(expert_seed=0)
    _, info = reset.envs[0].reset(
        options={"task_id": restart.task_id, "episode_seed": restart.episode_seed}
    )
    reset.close()
    system = Message("system", info[InfoKeys.SYSTEM_PROMPT])
    return dataclasses.replace(restart, messages=[system, *restart.messages])


def with_policy_fields(examples: Sequence[TrainingExample], seed: int) -> list[TrainingExample]:
    """Advantages for a policy-gradient step: one per episode, zero mean over the set.

    Expert episodes with injected errors all score 0, so the advantages are drawn (their
    values do not change the cost of a step).
    """
    rng = random.Random(seed)
    raw = [rng.gauss(0, 1) for _ in examples]
    mean = sum(raw) / len(raw)
    out = []
    for example, value in zip(examples, raw, strict=True):
        advantage = value - mean
        per_token = tuple(advantage if label != -100 else 0.0 for label in example.labels)
        out.append(dataclasses.replace(example, advantages=per_token))
    return out


def padded_micro_batches(
    examples: Sequence[TrainingExample], max_tokens: int
) -> list[list[TrainingExample]]:
    """Length-sorted padded micro-batches of at most ``max_tokens`` padded tokens."""
    (step,) = batches(examples, batch_size=len(examples), micro_batch_size=len(examples),
                      max_tokens_per_micro_batch=max_tokens, rng=random.Random(0))  # fmt: skip
    return step


class Clock:
    """Wall-clock and CPU seconds (all threads of this process) since the start.

    On a shared machine the wall clock also counts other processes' turns; the CPU time
    counts only the work done here.
    """

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


class GradientCapture:
    """Each optimizer step's gradients (taken in a step pre-hook, not timed) and how long
    the optimizer update itself took (the same work with and without sharing)."""

    def __init__(self, learner: Learner) -> None:
        self.learner = learner
        self.gradient: torch.Tensor | None = None
        self.capture_seconds = (0.0, 0.0)
        self.optimizer_seconds = (0.0, 0.0)
        self._update: Clock | None = None
        learner.optimizer.register_step_pre_hook(self._capture)
        learner.optimizer.register_step_post_hook(self._updated)

    def _capture(self, *_: Any) -> None:
        clock = Clock()
        self.gradient = torch.cat([
            (p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
            for p in self.learner.parameters
        ])  # fmt: skip
        self.capture_seconds = clock.elapsed()
        self._update = Clock()

    def _updated(self, *_: Any) -> None:
        assert self._update is not None
        self.optimizer_seconds = self._update.elapsed()


def timed_step(
    learner: Learner,
    capture: GradientCapture,
    examples: Sequence[TrainingExample],
    objective: Objective,
    *,
    sharing: bool,
    max_tokens: int,
) -> tuple[dict[str, tuple[float, float]], dict[str, float], torch.Tensor]:
    """The step's seconds (whole step, its forward+backward part), metrics, gradient."""
    learner.prefix_sharing = sharing
    micro = padded_micro_batches(examples, max_tokens)
    clock = Clock()
    metrics = learner.step(micro, objective)
    wall, cpu = clock.elapsed()
    step = (wall - capture.capture_seconds[0], cpu - capture.capture_seconds[1])
    update = capture.optimizer_seconds
    seconds = {"step": step, "forward_backward": (step[0] - update[0], step[1] - update[1])}
    assert capture.gradient is not None
    gradient, capture.gradient = capture.gradient, None
    return seconds, metrics, gradient


def timed(function: Callable[[], Any]) -> tuple[tuple[float, float], Any]:
    clock = Clock()
    result = function()
    return clock.elapsed(), result


def timing(unshared: tuple[float, float], shared: tuple[float, float]) -> dict[str, float]:
    return {
        "seconds_unshared": round(unshared[0], 2),
        "seconds_shared": round(shared[0], 2),
        "speedup": round(unshared[0] / shared[0], 2),
        "cpu_seconds_unshared": round(unshared[1], 2),
        "cpu_seconds_shared": round(shared[1], 2),
        "cpu_speedup": round(unshared[1] / shared[1], 2),
    }


def compare_set(
    name: str,
    examples: list[TrainingExample],
    model: Any,
    learner: Learner,
    capture: GradientCapture,
    args: argparse.Namespace,
) -> dict[str, Any]:
    tree = build_prefix_tree([e.input_ids for e in examples])
    lengths = [len(e.input_ids) for e in examples]
    result: dict[str, Any] = {
        "set": name,
        "examples": len(examples),
        "tokens": sum(lengths),
        "distinct_tokens": tree.num_tokens,
        "trained_tokens": sum(e.num_trained_tokens for e in examples),
        "lengths": lengths,
    }
    budget = args.max_tokens
    # The reference/behaviour log-prob pass (forward only).
    plain_seconds, plain = timed(lambda: score_examples(
        model, examples, "behaviour_logprobs", max_tokens_per_micro_batch=budget))  # fmt: skip
    tree_seconds, shared = timed(lambda: score_examples(
        model, examples, "behaviour_logprobs", max_tokens_per_micro_batch=budget,
        prefix_sharing=True))  # fmt: skip
    result["score_examples"] = {
        **timing(plain_seconds, tree_seconds),
        "max_logprob_difference": max(
            abs(a - b)
            for x, y in zip(plain, shared, strict=True)
            for a, b in zip(x.behaviour_logprobs, y.behaviour_logprobs, strict=True)
        ),
    }
    scored = [dataclasses.replace(e, reference_logprobs=e.behaviour_logprobs) for e in plain]
    objectives: dict[str, tuple[Objective, list[TrainingExample]]] = {
        "sft": (SFTObjective(), examples),
        "policy_gradient": (
            PolicyGradientObjective(kl_coef=0.04, entropy_coef=0.001, normalisation="sequence"),
            with_policy_fields(scored, seed=len(examples)),
        ),
    }
    for label, (objective, data) in objectives.items():
        runs = {}
        for sharing in (False, True):
            runs[sharing] = timed_step(learner, capture, data, objective, sharing=sharing,
                                       max_tokens=budget)  # fmt: skip
        (plain_s, plain_m, plain_g), (tree_s, tree_m, tree_g) = runs[False], runs[True]
        result[label] = {
            **timing(plain_s["step"], tree_s["step"]),
            # Without the optimizer update (AdamW over all weights: memory-bound, identical
            # work with and without sharing, and slow on a machine short of memory).
            "forward_backward": timing(plain_s["forward_backward"], tree_s["forward_backward"]),
            "input_tokens_unshared": plain_m["input_tokens"],  # padding included
            "input_tokens_shared": tree_m["input_tokens"],
            "loss_unshared": plain_m["loss"],
            "max_loss_difference": abs(plain_m["loss"] - tree_m["loss"]),
            "max_gradient_difference": float((plain_g - tree_g).abs().max()),
            "max_gradient": float(plain_g.abs().max()),
        }
        del plain_g, tree_g
        print(json.dumps({"progress": name, label: result[label]}), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default="smollm2-135m",
        help="tiny-random-llama: a quick check that the script runs",
    )
    parser.add_argument("--group-sizes", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--task-seed", type=int, default=1)
    parser.add_argument("--restart-task-seed", type=int, default=0)
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=4096,
        help="padded tokens per micro-batch / distinct tokens per tree",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads. One by default: on a small machine shared with other jobs, two "
        "threads spend much of their time waiting for each other at every operation (the "
        "more, smaller operations of a step, the more), which measures the neighbours",
    )
    parser.add_argument(
        "--no-checkpointing",
        action="store_true",
        help="keep activations (more memory) instead of recomputing them",
    )
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    # Learning rate 0: the weights never move, so every run sees the same model.
    learner = Learner(model, learning_rate=0.0, max_grad_norm=None,
                      gradient_checkpointing=not args.no_checkpointing,
                      max_tree_tokens=args.max_tokens)  # fmt: skip
    capture = GradientCapture(learner)
    sets = [(f"tooluse_group_G{size}", group(args.task_seed, size, tokenizer))
            for size in args.group_sizes]  # fmt: skip
    sets.append(("eef_restarts", restart_set(args.restart_task_seed, tokenizer)))
    load_before = os.getloadavg()
    results = [compare_set(name, data, model, learner, capture, args) for name, data in sets]
    print(json.dumps({
        "benchmark": "prefix_sharing",
        "model": f"{args.model} (fp32)",
        "env": ENV_ID,
        "env_kwargs": ENV_KWARGS,
        "max_tokens_per_forward": args.max_tokens,
        "gradient_checkpointing": not args.no_checkpointing,
        "torch_threads": torch.get_num_threads(),
        "load_average_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "results": results,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
