"""The learning study: SmolLM2-135M on an easy ToolUse-v0 subset, before and after training.

For every seed it runs three real training runs with ``agentgym train`` (vLLM rollouts,
full fine-tuning on the CPU) and reads their held-out evaluations:

* ``trainer=sft``: the base model, then SFT on the environment expert's successes;
* ``trainer=rft``: rejection-sampling fine-tuning, expert successes mixed in, 2 iterations;
* ``trainer=eef``: Exploring Expert Failures (half the expert episodes fail by injected
  errors; the agent is restarted inside them), 2 iterations.

Every evaluation is greedy on the same first ``--eval-episodes`` tasks of the test split
(disjoint from training tasks). The seed changes the training side: which episodes are
sampled, the expert's injected errors, batch order. Results pool the seeds' episodes into one
Wilson 95% interval per stage, and are written to ``--out`` as ``results.md``,
``results.json`` and ``tooluse_learning.png``.

The runs live in ``--runs/<trainer>-seed<k>``: re-running the script resumes them
where they stopped (each is a resumable ``agentgym train`` run), so a long study survives
interruptions. Run:

    .venv/bin/python benchmarks/tooluse_learning.py --seeds 0 1 --out docs/results/tooluse

Budgets (per run, 2 CPU cores): roughly 10 min (SFT), 20-30 min (RFT, EEF).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
        "trainer.iterations=2",
        "trainer.train_tasks={tasks}",
        "trainer.samples_per_task=2",
    ],
    "eef": [
        "trainer=eef",
        "trainer.iterations=2",
        "trainer.train_tasks={tasks}",
        "trainer.expert_error_rate=0.5",
        "trainer.budget=4",
    ],
}


def train_command(trainer: str, seed: int, args: argparse.Namespace) -> list[str]:
    """The ``agentgym train`` command of one run."""
    run_dir = Path(args.runs) / f"{trainer}-seed{seed}"
    overrides = [o.format(tasks=args.train_tasks) for o in TRAINERS[trainer]]
    return [
        sys.executable, "-m", "agentgym.cli", "train", *ENV, *overrides,
        f"seed={seed}", f"eval.episodes={args.eval_episodes}", f"run_dir={run_dir}",
        f"progress={'true' if args.progress else 'false'}", *args.overrides,
    ]  # fmt: skip


def share_base_evaluation(trainer: str, seed: int, args: argparse.Namespace) -> None:
    """Seed a new run's base-model evaluation with an earlier run's, when one exists.

    Every run of a seed evaluates the same base weights greedily on the same tasks with the
    same episode ids and seeds, so the episodes are identical; the run's resumable store
    then skips them instead of spending ~10 CPU minutes regenerating them.
    """
    target = Path(args.runs) / f"{trainer}-seed{seed}" / "trajectories" / "eval-0.jsonl"
    if target.exists():
        return
    for other in TRAINERS:
        source = Path(args.runs) / f"{other}-seed{seed}"
        if other != trainer and _phase_done(source, "eval", 0):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / "trajectories" / "eval-0.jsonl", target)
            print(f"base-model evaluation reused from {source.name}", flush=True)
            return


def _phase_done(run_dir: Path, name: str, iteration: int) -> bool:
    ledger = run_dir / "ledger.jsonl"
    if not ledger.exists():
        return False
    for line in ledger.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("phase") == name and entry.get("iteration") == iteration:
            return True
    return False


def run_training(trainer: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) one training run; its summary rows and wall time."""
    share_base_evaluation(trainer, seed, args)
    command = train_command(trainer, seed, args)
    print("$", " ".join(command[2:]), flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{trainer} seed {seed} failed with exit code {result.returncode}")
    run_dir = Path(args.runs) / f"{trainer}-seed{seed}"
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"seconds": round(time.perf_counter() - started, 1), "rows": summary["rows"]}


def stage_key(trainer: str, row: dict[str, Any]) -> str:
    """A stage name shared across trainers for the untrained model."""
    return "base model" if row["iteration"] == 0 else f"{trainer.upper()} {row['stage']}"


def pool(results: dict[str, dict[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per stage: per-seed success rates and a pooled Wilson interval."""
    stages: dict[str, dict[str, Any]] = {}
    for trainer, by_seed in results.items():
        for seed, result in sorted(by_seed.items()):
            for row in result["rows"]:
                key = stage_key(trainer, row)
                if key == "base model" and trainer != next(iter(results)):
                    continue  # the same greedy evaluation of the same weights in every run
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


def write_report(rows: Sequence[dict[str, Any]], meta: dict[str, Any], out: Path) -> None:
    """results.json, results.md and the plot."""
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
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
        "overrides": args.overrides,
        "seconds": {f"{t}-seed{s}": r["seconds"] for t, v in results.items() for s, r in v.items()},
    }
    rows = pool(results)
    write_report(rows, meta, out)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
