"""What scaling out costs on this machine: Ray replicas, weight broadcast, data-parallel steps.

Measures, for one model (``--model``):

* starting a local Ray cluster (``num_cpus``, a 200 MB object store) and ``--replicas`` HF
  engine replicas in it;
* one weight broadcast to every replica (object-store pieces of 64 MB) and the sync probe
  of every replica (:func:`~agentgym.trainers.sync.verify_weight_sync`);
* generation throughput of the same batch (``--prompts`` prompts, ``--tokens`` sampled
  tokens each, per-prompt seeds) on one local HF engine and on the replica pool;
* with ``--data-parallel``: one SFT step on the same examples in one process and in two
  gloo processes (driver + worker, one torch thread each), and the largest weight
  difference between the two results.

Writes a JSON report (``--out``) and prints it. On a 2-core machine the pool cannot be
faster than one engine (every replica takes a core the other could use); the numbers show
the overheads that remain on a machine with a core, or a GPU, per replica.

    nice -n 19 python benchmarks/scaling.py --model smollm2-135m --out runs/bench/scaling.json
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def _timed(function: Any, repeats: int = 1) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def ray_numbers(args: argparse.Namespace) -> dict[str, Any]:
    import ray
    from transformers import AutoModelForCausalLM

    from agentgym.distributed import DistributedConfig, RayEnginePool, start_ray
    from agentgym.engines.base import SamplingParams
    from agentgym.engines.hf import HFEngine
    from agentgym.models import resolve_model
    from agentgym.trainers.sync import verify_weight_sync

    path = resolve_model(args.model)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    size_mb = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20
    report: dict[str, Any] = {"model": args.model, "weights_mb": round(size_mb, 1),
                              "replicas": args.replicas}  # fmt: skip
    config = DistributedConfig(name="ray", num_cpus=args.num_cpus, object_store_mb=200)
    report["ray_start_s"], _ = _timed(lambda: start_ray(config))
    try:
        seconds, pool = _timed(lambda: RayEnginePool("hf", {"model": str(path)},
                                                     replicas=args.replicas))  # fmt: skip
        report["replicas_start_s"] = seconds
        report["weight_broadcast_s"], _ = _timed(lambda: pool.update_weights(model), repeats=3)
        report["sync_probe_all_replicas_s"], check = _timed(
            lambda: verify_weight_sync(pool, model, pool.tokenizer)
        )
        report["sync_max_abs_logprob_diff"] = check["max_abs_diff"]
        prompts = [
            pool.tokenizer.apply_chat_template(
                [{"role": "user", "content": f"Count from {i} to {i + 20}, one number a line."}],
                add_generation_prompt=True, tokenize=True, return_dict=False,
            )
            for i in range(args.prompts)
        ]  # fmt: skip
        params = SamplingParams(temperature=1.0, max_tokens=args.tokens,
                                prompt_seeds=tuple(range(args.prompts)))  # fmt: skip
        local = HFEngine(str(path), model_instance=model)
        threads = torch.get_num_threads()
        runs = [(f"local_hf_{n}_threads", local, n) for n in sorted({1, args.num_cpus})]
        for name, engine, count in [*runs, ("ray_pool", pool, threads)]:
            torch.set_num_threads(count)  # the replicas have replica_cpus threads each
            engine.generate(prompts[:1], params.with_(prompt_seeds=(0,), max_tokens=2))  # warm
            seconds, results = _timed(lambda engine=engine: engine.generate(prompts, params))
            tokens = sum(len(c[0].token_ids) for c in results)
            report[f"{name}_tokens"] = tokens
            report[f"{name}_tokens_per_s"] = round(tokens / seconds, 1)
        torch.set_num_threads(threads)
        pool.close()
    finally:
        ray.shutdown()
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in report.items()}


def _examples(count: int, length: int) -> list[Any]:
    import random

    from agentgym.trainers.data import TrainingExample

    rng = random.Random(0)
    examples = []
    for _ in range(count):
        ids = tuple(rng.randrange(10, 5000) for _ in range(length))
        examples.append(TrainingExample(ids, (-100,) * (length // 2) + ids[length // 2 :]))
    return examples


def _sft_step(model: Any, examples: list[Any]) -> dict[str, float]:
    from agentgym.trainers.learner import Learner
    from agentgym.trainers.objectives import SFTObjective

    learner = Learner(model, learning_rate=1e-5, prefix_sharing=False)
    micro = [examples[i : i + 2] for i in range(0, len(examples), 2)]
    return learner.step(micro, SFTObjective())


def _dp_rank(rank: int, args: argparse.Namespace, port: int, out: str) -> None:
    from transformers import AutoModelForCausalLM

    from agentgym.models import resolve_model
    from agentgym.trainers.data_parallel import (
        DataParallelGroup,
        serve_training,
        set_group,
        stop_workers,
    )

    torch.set_num_threads(1)
    group = DataParallelGroup(rank, 2, port=port)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(args.model), dtype=torch.float32)
    if rank != 0:
        serve_training(model, group)
        return
    set_group(group)
    try:
        started = time.perf_counter()
        _sft_step(model, _examples(args.dp_examples, args.dp_length))
        seconds = time.perf_counter() - started
    finally:
        stop_workers(group)
        set_group(None)
    torch.save({"seconds": seconds, "weights": model.state_dict()}, Path(out) / "dp.pt")


def data_parallel_numbers(args: argparse.Namespace) -> dict[str, Any]:
    import torch.multiprocessing as mp
    from transformers import AutoModelForCausalLM

    from agentgym.models import resolve_model

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(args.model), dtype=torch.float32)
    examples = _examples(args.dp_examples, args.dp_length)
    seconds, _ = _timed(lambda: _sft_step(model, examples))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_dp_rank, args=(args, port, out), nprocs=2, join=True)
        saved = torch.load(Path(out) / "dp.pt")
    expected = model.state_dict()
    difference = max((saved["weights"][n] - t).abs().max().item() for n, t in expected.items())
    return {
        "dp_examples": args.dp_examples, "dp_tokens_per_example": args.dp_length,
        "dp_step_1_process_s": round(seconds, 3),
        "dp_step_2_processes_s": round(saved["seconds"], 3),
        "dp_max_abs_weight_difference": difference,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny-random-llama")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--data-parallel", action="store_true")
    parser.add_argument("--dp-examples", type=int, default=8)
    parser.add_argument("--dp-length", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    report = ray_numbers(args)
    if args.data_parallel:
        report.update(data_parallel_numbers(args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
