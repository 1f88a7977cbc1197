"""The learning study: SmolLM2-135M on an easy ToolUse-v0 subset, before and after training.

For every seed it runs three real training runs with ``agentgym train`` (vLLM rollouts,
full fine-tuning on the CPU), chained the usual way (cold start by imitation, then
self-improvement), and reads their held-out evaluations:

* ``trainer=sft`` from the base model: SFT on the environment expert's successes;
* ``trainer=rft`` from the SFT checkpoint: 2 iterations of K=4 samples per task, keep the
  successes, fine-tune on them (no expert data: the gain is the policy's own);
* ``trainer=eef`` from the SFT checkpoint: 1 iteration of Exploring Expert Failures (half the
  expert episodes fail by injected errors; the agent is restarted inside them; beneficial
  expert actions, the agent's successes and the expert's successes are trained).

Every evaluation is greedy on the same first ``--eval-episodes`` tasks of the test split
(disjoint from training tasks). The seed changes the training side: which episodes are
sampled, the expert's injected errors, batch order. Results pool the seeds' episodes into one
Wilson 95% interval per stage, and are written to ``--out`` as ``results.md``,
``results.json`` and ``tooluse_learning.png``.

The runs live in ``--runs/<trainer>-seed<k>``: re-running the script resumes them where
they stopped (each is a resumable ``agentgym train`` run). ``results.json`` keeps every
run's summary rows, so a later invocation can add seeds to an earlier report without
re-running it (``--merge docs/results/tooluse/results.json --seeds 1``). A run's first evaluation of
weights another run already evaluated (the base model, the SFT checkpoint) is seeded from
that run's episodes, which are identical (same weights, greedy, same tasks and seeds). Run:

    .venv/bin/python benchmarks/tooluse_learning.py --seeds 0 1 --out docs/results/tooluse
    # or one seed now, another later, pooled into the same report:
    .venv/bin/python benchmarks/tooluse_learning.py --seeds 1 \
        --merge docs/results/tooluse/results.json --out docs/results/tooluse

Wall time per seed on 2 CPU cores: roughly 15 min (SFT) + 15-25 min (RFT) + 15 min (EEF).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentgym.core.trajectory import TrajectoryStore
from agentgym.evaluation import wilson_interval

#: The easy subset: single-turn-scale tasks over two small backends (short tool lists keep
#: the prompt near 1k tokens, which is what a 135M model on 2 cores can train on in minutes).
ENV = [
    "env=tooluse",
    "env.kwargs.difficulty=easy",
    "env.kwargs.categories=[base]",
    "env.kwargs.domains=[messaging,travel]",
    "max_context_tokens=2048",
    "max_turns=6",
    # One episode per forward pass (8 per optimizer step by accumulation): no padding, so
    # PyTorch's memory-efficient CPU attention kernel applies to ~1.5k-token episodes.
    "sft.micro_batch_size=1",
]

TRAINERS: dict[str, list[str]] = {
    "sft": ["trainer=sft", "trainer.train_tasks={tasks}"],
    "rft": [
        "trainer=rft",
        "model.name={sft_model}",
        "trainer.iterations=2",
        "trainer.train_tasks={tasks}",
        "trainer.samples_per_task=4",
        "trainer.expert_episodes_per_task=0",
    ],
    "eef": [
        "trainer=eef",
        "model.name={sft_model}",
        "trainer.iterations=1",
        "trainer.train_tasks={tasks}",
        "trainer.expert_error_rate=0.5",
        "trainer.budget=4",
    ],
    # EEF's control: the same fine-tuning phase on EEF's expert successes alone (the same
    # error-injected expert episodes, seed and batch order), without the exploration and the
    # agent's successes, so EEF's gain can be told apart from a second pass on expert data.
    "sft-again": [
        "trainer=sft",
        "model.name={sft_model}",
        "trainer.train_tasks={tasks}",
        "expert.error_rate=0.5",
    ],
}

#: Fine-tuning settings of every phase (a few hundred trained tokens per episode).
SFT = ["sft.learning_rate=1e-4", "sft.epochs=3"]


def run_dir(trainer: str, seed: int, args: argparse.Namespace) -> Path:
    """Where one training run lives."""
    return Path(args.runs).resolve() / f"{trainer}-seed{seed}"


def train_command(trainer: str, seed: int, args: argparse.Namespace) -> list[str]:
    """The ``agentgym train`` command of one run."""
    sft_model = run_dir("sft", seed, args) / "checkpoints" / "iter-1"
    overrides = [o.format(tasks=args.train_tasks, sft_model=sft_model) for o in TRAINERS[trainer]]
    return [
        sys.executable, "-m", "agentgym.cli", "train", *ENV, *SFT, *overrides,
        f"seed={seed}", f"eval.episodes={args.eval_episodes}",
        f"run_dir={run_dir(trainer, seed, args)}",
        f"progress={'true' if args.progress else 'false'}", *args.overrides,
    ]  # fmt: skip


def share_first_evaluation(trainer: str, seed: int, args: argparse.Namespace) -> None:
    """Seed a new run's iteration-0 evaluation with identical episodes of an earlier run.

    The SFT run's iteration 0 is the base model (``--base-eval``, a store of the base
    model's evaluation, e.g. from an earlier run); the RFT and EEF runs' iteration 0 is the
    SFT checkpoint, which the SFT run evaluated as its iteration 1. Episode ids differ only
    in the iteration prefix, so the copy renames them; the store then skips them.
    """
    target = run_dir(trainer, seed, args) / "trajectories" / "eval-0.jsonl"
    if target.exists():
        return
    if trainer == "sft":
        source, prefix = (Path(args.base_eval) if args.base_eval else None), "eval-0-"
    else:
        source = run_dir("sft", seed, args) / "trajectories" / "eval-1.jsonl"
        prefix = "eval-1-"
    if source is None or not source.exists():
        return
    with TrajectoryStore(source, readonly=True) as store:
        episodes = list(store)
    for episode in episodes:
        episode.id = "eval-0-" + episode.id.removeprefix(prefix)
    target.parent.mkdir(parents=True, exist_ok=True)
    with TrajectoryStore(target) as store:
        store.append(episodes)
    print(f"{trainer} seed {seed}: iteration-0 evaluation reused from {source}", flush=True)


def run_training(trainer: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) one training run; its summary rows and wall time."""
    share_first_evaluation(trainer, seed, args)
    command = train_command(trainer, seed, args)
    print("$", " ".join(command[2:]), flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{trainer} seed {seed} failed with exit code {result.returncode}")
    summary = json.loads((run_dir(trainer, seed, args) / "summary.json").read_text())
    return {"seconds": round(time.perf_counter() - started, 1), "rows": summary["rows"]}


def stage_key(trainer: str, row: dict[str, Any]) -> str | None:
    """The stage a summary row reports (``None``: another run's stage, counted there)."""
    if trainer == "sft":
        return "base model" if row["iteration"] == 0 else "SFT on expert successes"
    if row["iteration"] == 0:
        return None  # the SFT checkpoint, reported by the SFT run
    if trainer == "sft-again":
        return "control: SFT again on EEF's expert successes (from SFT)"
    return f"{row['stage']} (from SFT)"


def pool(results: dict[str, dict[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per stage: per-seed success rates and a pooled Wilson interval."""
    stages: dict[str, dict[str, Any]] = {}
    for trainer, by_seed in results.items():
        for seed, result in sorted(by_seed.items()):
            for row in result["rows"]:
                key = stage_key(trainer, row)
                if key is None:
                    continue
                empty = {"stage": key, "per_seed": {}, "successes": 0, "episodes": 0}
                stage = stages.setdefault(key, {**empty, "reward_sum": 0.0})
                stage["per_seed"][seed] = row["success_rate"]
                stage["successes"] += round(row["success_rate"] * row["episodes"])
                stage["episodes"] += row["episodes"]
                stage["reward_sum"] += row["mean_reward"] * row["episodes"]
    rows = []
    for stage in stages.values():
        low, high = wilson_interval(stage["successes"], stage["episodes"])
        rows.append(
            {
                "stage": stage["stage"],
                "per_seed": stage["per_seed"],
                "success_rate": stage["successes"] / max(1, stage["episodes"]),
                "success_ci95": [low, high],
                "mean_reward": stage["reward_sum"] / max(1, stage["episodes"]),
                "episodes": stage["episodes"],
            }
        )
    return rows


def merge_earlier_runs(
    results: dict[str, dict[int, dict[str, Any]]], path: Path, meta: dict[str, Any]
) -> None:
    """Add the runs of an earlier report for seeds this invocation did not run.

    Only a report made with the same protocol (environment, fine-tuning and trainer
    overrides, task counts) may be merged; anything else would pool incomparable numbers.
    """
    earlier = json.loads(path.read_text())
    protocol = ("train_tasks", "eval_episodes", "env", "sft", "overrides")
    mismatched = [k for k in protocol if earlier["meta"].get(k) != meta.get(k)]
    shared = set(earlier["meta"]["trainers"]) & set(meta["trainers"])
    mismatched += [
        t for t in sorted(shared) if earlier["meta"]["trainers"][t] != meta["trainers"][t]
    ]
    if mismatched:
        raise SystemExit(f"--merge {path}: a different protocol ({', '.join(mismatched)})")
    for trainer, by_seed in earlier["runs"].items():
        for seed, run in by_seed.items():
            results.setdefault(trainer, {}).setdefault(int(seed), run)
    meta["trainers"] = {**earlier["meta"]["trainers"], **meta["trainers"]}


def write_report(
    rows: Sequence[dict[str, Any]],
    meta: dict[str, Any],
    runs: dict[str, dict[int, dict[str, Any]]],
    out: Path,
) -> None:
    """results.json (with every run's rows, for later merges), results.md and the plot."""
    report = {"meta": meta, "rows": rows, "runs": runs}
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# SmolLM2-135M on ToolUse-v0 (easy, base category, messaging + travel)",
        "",
        f"Seeds {meta['seeds']}; {meta['eval_episodes']} held-out test tasks per evaluation "
        f"(greedy); {meta['train_tasks']} training tasks. Success: pooled over seeds, "
        "Wilson 95% interval.",
        "",
        "| stage | success | 95% CI | per seed | mean reward | episodes |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        per_seed = ", ".join(f"{v:.3f}" for _, v in sorted(row["per_seed"].items()))
        low, high = row["success_ci95"]
        lines.append(
            f"| {row['stage']} | {row['success_rate']:.3f} | [{low:.3f}, {high:.3f}] | "
            f"{per_seed} | {row['mean_reward']:.3f} | {row['episodes']} |"
        )
    lines += ["", "Wall time per run (s): " + json.dumps(meta["seconds"]), ""]
    (out / "results.md").write_text("\n".join(lines))
    plot(rows, out / "tooluse_learning.png")


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Held-out success per stage with 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row["stage"] for row in rows]
    rates = [row["success_rate"] for row in rows]
    errors = [
        [r - row["success_ci95"][0] for r, row in zip(rates, rows, strict=True)],
        [row["success_ci95"][1] - r for r, row in zip(rates, rows, strict=True)],
    ]
    figure, axis = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4))
    axis.bar(range(len(rows)), rates, yerr=errors, capsize=4, color="#4c72b0")
    axis.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=8)
    axis.set_ylim(0, 1)
    axis.set_ylabel("held-out success (95% CI)")
    axis.set_title("SmolLM2-135M on ToolUse-v0 (easy subset)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--trainers", nargs="+", default=list(TRAINERS), choices=TRAINERS)
    parser.add_argument("--train-tasks", type=int, default=16)
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--out", default="docs/results/tooluse", help="the report's folder")
    parser.add_argument("--runs", default="runs/tooluse_study", help="the training runs")
    parser.add_argument(
        "--base-eval",
        default=None,
        help="a store of the base model's evaluation to reuse (eval-0.jsonl)",
    )
    parser.add_argument(
        "--merge",
        default=None,
        help="an earlier results.json whose other seeds' runs join the report",
    )
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("overrides", nargs="*", help="extra agentgym train overrides")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in args.trainers}
    for seed in args.seeds:
        for trainer in args.trainers:
            results[trainer][seed] = run_training(trainer, seed, args)
    meta = {
        "seeds": args.seeds,
        "train_tasks": args.train_tasks,
        "eval_episodes": args.eval_episodes,
        "env": ENV,
        "sft": SFT,
        "trainers": {t: TRAINERS[t] for t in args.trainers},
        "overrides": args.overrides,
    }
    if args.merge:
        merge_earlier_runs(results, Path(args.merge), meta)
        results = {t: results[t] for t in TRAINERS if t in results}  # the table's order
    meta["seeds"] = sorted({seed for by_seed in results.values() for seed in by_seed})
    meta["seconds"] = {
        f"{t}-seed{s}": r["seconds"] for t, v in results.items() for s, r in sorted(v.items())
    }
    rows = pool(results)
    write_report(rows, meta, results, out)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
