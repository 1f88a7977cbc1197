"""One SFT step in one process, in two replicated gloo processes and in two FSDP processes.

For ``--model`` (default SmolLM2-135M), each layout runs in fresh processes (one torch thread
each) and takes one optimizer step on the same ``--examples`` x ``--length`` tokens, four
micro-batches of two examples:

* ``step_s``: the driver's :meth:`Learner.step <agentgym.trainers.learner.Learner.step>`
  (with FSDP this includes gathering the updated weights into the driver's full model);
* ``setup_s``: building the learner (FSDP: the sharded copy and the scatter of the weights);
* ``peak_rss_mb`` per rank: the process's peak resident memory (``ru_maxrss``), model load
  included: every rank loads the full checkpoint before it shards it;
* ``training_state_mb`` per rank: parameters, gradients (counted as large as the parameters)
  and AdamW moments it holds for training (its shards under FSDP), plus the driver's full
  model when FSDP keeps one;
* ``resident_after_step_mb`` per rank: resident memory right after the step, once Python's
  and glibc's free lists are returned (what the rank keeps between steps);
* ``max_abs_weight_difference``: against the one-process weights.

Writes a JSON report (``--out``) and prints it::

    nice -n 19 python benchmarks/fsdp_step.py --model smollm2-135m --out runs/bench/fsdp.json
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import random
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

LAYOUTS = {"1 process": (1, None), "2 replicas": (2, "replicate"), "2 fsdp": (2, "fsdp")}


def _examples(count: int, length: int) -> list[Any]:
    from agentgym.trainers.data import TrainingExample

    rng = random.Random(0)
    examples = []
    for _ in range(count):
        ids = tuple(rng.randrange(10, 5000) for _ in range(length))
        examples.append(TrainingExample(ids, (-100,) * (length // 2) + ids[length // 2 :]))
    return examples


def _megabytes(tensors: Any) -> float:
    total = 0
    for tensor in tensors:
        local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
        total += local.numel() * local.element_size()
    return total / 2**20


def _resident_mb() -> int:
    """This process's resident memory after handing freed heap pages back to the system.

    Without ``malloc_trim`` glibc keeps freed blocks (FSDP frees and reallocates per-layer
    buffers all the time), so the resident size would show the allocator's free lists.
    """
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return -1


def _training_state_mb(learner: Any) -> float:
    """Parameters + gradients (as large as the parameters) + AdamW moments held by this rank."""
    moments = [v for s in learner.optimizer.state.values() for k, v in s.items() if k != "step"]
    held = 2 * _megabytes(learner.parameters) + _megabytes(moments)
    if learner.sharded and learner.model is not learner.module:  # the driver's full copy
        held += _megabytes(learner.model.parameters())
    return held


def _rank(rank: int, world_size: int, parallel: str | None, args: Any, port: int, out: str) -> None:
    from transformers import AutoModelForCausalLM

    from agentgym.models import resolve_model
    from agentgym.trainers.data_parallel import (
        DataParallelGroup,
        serve_training,
        set_group,
        stop_workers,
    )
    from agentgym.trainers.learner import Learner
    from agentgym.trainers.objectives import SFTObjective

    torch.set_num_threads(1)
    group = None
    if parallel is not None:
        group = DataParallelGroup(rank, world_size, port=port, parallel=parallel)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(args.model), dtype=torch.float32)
    report: dict[str, Any] = {}
    if group is not None and rank != 0:

        def measure(learner: Any) -> None:
            report["training_state_mb"] = round(_training_state_mb(learner), 1)
            report["resident_after_step_mb"] = _resident_mb()

        serve_training(model, group, on_step=measure)
    else:
        set_group(group)
        try:
            started = time.perf_counter()
            learner = Learner(model, learning_rate=1e-5, prefix_sharing=False)
            report["setup_s"] = round(time.perf_counter() - started, 3)
            examples = _examples(args.examples, args.length)
            micro = [examples[i : i + 2] for i in range(0, len(examples), 2)]
            started = time.perf_counter()
            metrics = learner.step(micro, SFTObjective())
            report["step_s"] = round(time.perf_counter() - started, 3)
            report["loss"] = metrics["loss"]
            report["training_state_mb"] = round(_training_state_mb(learner), 1)
            report["resident_after_step_mb"] = _resident_mb()
        finally:
            stop_workers(group)
            set_group(None)
        torch.save(model.state_dict(), Path(out) / "weights.pt")
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(report))


def main(argv: list[str] | None = None) -> int:
    import torch.multiprocessing as mp

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"model": args.model, "examples": args.examples,
                              "tokens_per_example": args.length}  # fmt: skip
    reference = None
    for name, (world_size, parallel) in LAYOUTS.items():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with tempfile.TemporaryDirectory() as out:
            mp.spawn(_rank, args=(world_size, parallel, args, port, out), nprocs=world_size)
            ranks = [
                json.loads((Path(out) / f"rank{r}.json").read_text()) for r in range(world_size)
            ]
            weights = torch.load(Path(out) / "weights.pt")
        entry = {**ranks[0], "ranks": ranks}
        if reference is None:
            reference = weights
        else:
            entry["max_abs_weight_difference"] = max(
                (weights[n] - t).abs().max().item() for n, t in reference.items()
            )
        report[name] = entry
        print(name, json.dumps(entry), flush=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
