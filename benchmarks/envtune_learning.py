"""Learning study: does reward and feedback teach SmolLM2-135M more than imitation does?

Protocol (fixed before any result was seen; every run is reported):

* environment: ToolUse-v0's easy subset (``difficulty=easy``, base category, messaging +
  travel backends, at most 6 turns, 2,048-token contexts), the subset on which the SFT
  policy succeeds sometimes (a policy that never succeeds gives group-relative methods
  nothing to learn from);
* warm start, per seed: ``trainer=sft`` on the expert's successes on 16 training tasks
  (lr 1e-4, 3 epochs), the same SFT as ``benchmarks/tooluse_learning.py``;
* then, from that checkpoint and at an equal rollout budget of 96 sampled episodes:
  - ``grpo``: GRPO, binary reward, one advantage per episode (3 iterations x 4 tasks x G=8);
  - ``grpo-turn``: the same with turn-level credit (``advantage=turn``, per-turn progress);
  - ``envtune``: Environment Tuning, 3 iterations walking a three-stage curriculum on the
    training distribution, one stage per iteration: format reward with actionable hints ->
    progress reward with hints -> progress reward without hints (the paper's "advanced"
    stage, which adds harder categories, is left out: the budget allows three iterations
    and the held-out tasks are base-category tasks);
  - ``rft``: rejection-sampling fine-tuning, 2 iterations x 12 tasks x K=4 samples, the
    successes kept and fine-tuned on (lr 1e-4, 3 epochs, no expert data);
  the three RL runs share every policy-gradient setting (lr 1e-5, 2 optimizer steps per
  iteration, clip 0.2 / 0.28, token-level loss, no KL);
* evaluation, greedy: held-out = the first 32 tasks of the test split of the same subset
  (every run's own final evaluation); out of distribution = the first 32 test tasks of the
  vehicle backend (never trained on by any method), run with ``agentgym eval`` on every
  final checkpoint and on the SFT checkpoint.

Success rates pool the seeds' episodes into one Wilson 95% interval per method; the
per-seed rates are kept. ``results.json`` holds every run's rows and timings; the plot is
``envtune_learning.png``. Re-running resumes the runs (each is a resumable
``agentgym train`` run). Run::

    .venv/bin/python benchmarks/envtune_learning.py --seeds 0 1 --out docs/results/envtune

Wall time per seed on 2 idle CPU cores: about 15 min (SFT) + 10-20 min per method.
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

from agentgym.core.durable import write_json_atomic
from agentgym.evaluation import wilson_interval
from agentgym.trainers.run import completed_phases

ENV = [
    "env=tooluse", "env.kwargs.difficulty=easy", "env.kwargs.categories=[base]",
    "env.kwargs.domains=[messaging,travel]", "max_context_tokens=2048", "max_turns=6",
]  # fmt: skip
#: Memory: one episode per forward pass, activations recomputed in the backward pass (the
#: same loss and weights; two runs of ~8 GB each did not fit beside the other jobs).
MEMORY = ["sft.micro_batch_size=1", "sft.gradient_checkpointing=true"]
#: Fine-tuning settings of the SFT warm start and of RFT's phases.
SFT = ["sft.learning_rate=1e-4", "sft.epochs=3"]
#: Every policy-gradient run: 3 iterations x 4 tasks x G = 8 = 96 sampled episodes.
RL = [
    "model.name={start}", "trainer.iterations=3", "trainer.train_tasks=12",
    "trainer.tasks_per_iteration=4", "trainer.group_size=8", "trainer.learning_rate=1e-5",
    "trainer.mini_batches=2", "trainer.warm_start_tasks=0", "trainer.eval_every=3",
]  # fmt: skip
#: The study's curriculum: one iteration per stage, base-category tasks throughout.
STAGES = (
    "trainer.stages=["
    "{name:syntax,reward_mode:format,augment:true,advance_when:{min_evaluations:1,max_evaluations:1}},"
    "{name:basic,reward_mode:progress,augment:true,advance_when:{min_evaluations:1,max_evaluations:1}},"
    "{name:alignment,reward_mode:progress,augment:false,advance_when:{min_evaluations:1,max_evaluations:1}}]"
)
METHODS: dict[str, list[str]] = {
    "sft": ["trainer=sft", "trainer.train_tasks=16"],
    "grpo": ["trainer=grpo", *RL, "trainer.advantage=episode"],
    "grpo-turn": ["trainer=grpo", *RL, "trainer.advantage=turn"],
    "envtune": ["trainer=envtune", *RL, "trainer.validation_tasks=4", STAGES],
    "rft": [
        "trainer=rft", "model.name={start}", "trainer.iterations=2", "trainer.train_tasks=12",
        "trainer.samples_per_task=4", "trainer.expert_episodes_per_task=0",
    ],
}  # fmt: skip
#: Where each method's final weights are.
FINAL_CHECKPOINT = {"sft": "iter-1", "grpo": "policy-3", "grpo-turn": "policy-3",
                    "envtune": "policy-3", "rft": "iter-2"}  # fmt: skip
OOD = ["env.kwargs.domains=[vehicle]"]
LABELS = {
    "sft": "SFT warm start", "grpo": "GRPO (episode advantage)",
    "grpo-turn": "GRPO (turn-level credit)", "envtune": "Environment Tuning", "rft": "RFT",
}  # fmt: skip


def run_dir(method: str, seed: int, args: argparse.Namespace) -> Path:
    return Path(args.runs).resolve() / f"{method}-seed{seed}"


def start_checkpoint(seed: int, args: argparse.Namespace) -> Path:
    return run_dir("sft", seed, args) / "checkpoints" / "iter-1"


def share_start_evaluation(method: str, seed: int, args: argparse.Namespace) -> None:
    """A run's iteration-0 evaluation is the SFT checkpoint's, which the SFT run made (same
    weights, greedy, same tasks and seeds): copy it under the new ids instead of re-running."""
    target = run_dir(method, seed, args) / "trajectories" / "eval-0.jsonl"
    source = run_dir("sft", seed, args) / "trajectories" / "eval-1.jsonl"
    if method == "sft" or target.exists() or not source.exists():
        return
    from agentgym.core.trajectory import TrajectoryStore

    with TrajectoryStore(source, readonly=True) as store:
        episodes = list(store)
    for episode in episodes:
        episode.id = "eval-0-" + episode.id.removeprefix("eval-1-")
    target.parent.mkdir(parents=True, exist_ok=True)
    with TrajectoryStore(target) as store:
        store.append(episodes)


def train(method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) one training run; its summary rows, ledger and wall time."""
    share_start_evaluation(method, seed, args)
    start = str(start_checkpoint(seed, args))
    # str.replace, not str.format: the curriculum override is full of literal braces.
    overrides = [o.replace("{start}", start) for o in METHODS[method]]
    command = [
        sys.executable, "-m", "agentgym.cli", "train", *ENV, *MEMORY, *SFT, *overrides,
        f"seed={seed}",
        f"eval.episodes={args.eval_episodes}", f"run_dir={run_dir(method, seed, args)}",
        f"progress={'true' if args.progress else 'false'}",
    ]  # fmt: skip
    print("$", " ".join(command[2:]), flush=True)
    path = run_dir(method, seed, args)
    phases_before = len(completed_phases(path))
    started = time.perf_counter()
    if subprocess.run(command, check=False).returncode != 0:
        raise SystemExit(f"{method} seed {seed} failed")
    spent = time.perf_counter() - started
    ledger = completed_phases(path)
    return {
        "seconds": _wall_seconds(path, spent if len(ledger) > phases_before else 0.0),
        "rows": json.loads((path / "summary.json").read_text())["rows"],
        "updates": {r["iteration"]: r["result"] for r in ledger if r["phase"] == "update"},
        "curriculum": {r["iteration"]: r["result"] for r in ledger if r["phase"] == "curriculum"},
    }


def _wall_seconds(path: Path, spent: float) -> float:
    """A run's wall time over every invocation that did work (``study_seconds.json``).

    Re-running the study resumes finished runs in seconds; without this record their wall
    time would be reported as that resume's. A killed invocation's time is lost (a resumed
    run reports the time of the invocations that finished it).
    """
    record = path / "study_seconds.json"
    total = json.loads(record.read_text())["seconds"] if record.exists() else 0.0
    total = round(total + spent, 1)
    write_json_atomic(record, {"seconds": total})  # a kill mid-write keeps the old total
    return total


def evaluate_ood(method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Out-of-distribution success of a run's final checkpoint (``agentgym eval``)."""
    out = run_dir(method, seed, args) / "ood-eval"
    if not (out / "eval.json").exists():
        checkpoint = run_dir(method, seed, args) / "checkpoints" / FINAL_CHECKPOINT[method]
        shutil.rmtree(out, ignore_errors=True)
        command = [
            sys.executable, "-m", "agentgym.cli", "eval", *ENV, *OOD, "engine=vllm",
            f"model={checkpoint}", f"episodes={args.eval_episodes}", f"seed={seed}",
            f"run_dir={out}", f"progress={'true' if args.progress else 'false'}",
        ]  # fmt: skip
        print("$", " ".join(command[2:]), flush=True)
        if subprocess.run(command, check=False).returncode != 0:
            raise SystemExit(f"out-of-distribution evaluation of {method} seed {seed} failed")
    return json.loads((out / "eval.json").read_text())


def final_progress(path: Path) -> list[float]:
    """Each episode's last per-turn ``progress`` (ToolUse: fraction of the task's turns whose
    checks pass; 0 where the environment gave none), from a trajectory file."""
    from agentgym.core.trajectory import TrajectoryStore

    with TrajectoryStore(path, readonly=True) as store:
        episodes = list(store)
    values = []
    for episode in episodes:
        recorded = [s.progress for s in episode.steps if s.progress is not None]
        values.append(float(recorded[-1]) if recorded else 0.0)
    return values


def progress_of(method: str, seed: int, args: argparse.Namespace) -> dict[str, list[float]]:
    """Final progress of every episode of a run's last held-out evaluation and of its
    out-of-distribution evaluation (an exploratory measure: see ``progress_lines``)."""
    path = run_dir(method, seed, args)
    last_eval = max(r["iteration"] for r in completed_phases(path) if r["phase"] == "eval")
    return {
        "held_out": final_progress(path / "trajectories" / f"eval-{last_eval}.jsonl"),
        "ood": final_progress(path / "ood-eval" / "trajectories.jsonl"),
    }


def progress_lines(runs: dict[str, dict[Any, dict[str, Any]]]) -> list[str]:
    """Mean final progress per method, pooled over seeds, with a normal 95% interval.

    Added after the first runs showed out-of-distribution success at 0 for every method (a
    floor that success cannot see below): partial credit, not part of the fixed protocol.
    """
    from agentgym.evaluation import mean_interval

    lines = []
    for method, by_seed in runs.items():
        if not all("progress" in run for run in by_seed.values()):
            continue
        cells = []
        for key in ("held_out", "ood"):
            values = [v for run in by_seed.values() for v in run["progress"][key]]
            mean, low, high = mean_interval(values, bounds=(0.0, 1.0))
            cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]")
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    if lines:
        lines[:0] = [
            "Exploratory (chosen after seeing out-of-distribution success at 0 everywhere): "
            "mean final progress, the fraction of a task's turns whose checks pass, pooled "
            "over seeds with a normal 95% interval.", "",
            "| method | held-out progress | out-of-distribution progress |", "|---|---|---|",
        ]  # fmt: skip
    return lines


def pool(cells: Sequence[tuple[int, float, int]]) -> dict[str, Any]:
    """(seed, success rate, episodes) cells -> pooled rate, Wilson interval, per-seed rates."""
    successes = sum(round(rate * n) for _, rate, n in cells)
    episodes = sum(n for _, _, n in cells)
    low, high = wilson_interval(successes, episodes)
    return {"success_rate": successes / max(1, episodes), "success_ci95": [low, high],
            "per_seed": {seed: rate for seed, rate, _ in cells}, "episodes": episodes}  # fmt: skip


def table(runs: dict[str, dict[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per method: held-out and out-of-distribution success, pooled over seeds."""
    rows = []
    for method, by_seed in runs.items():
        held = [(s, r["rows"][-1]["success_rate"], r["rows"][-1]["episodes"])
                for s, r in sorted(by_seed.items())]  # fmt: skip
        ood = [(s, r["ood"]["success_rate"], r["ood"]["episodes"])
               for s, r in sorted(by_seed.items())]  # fmt: skip
        rows.append({"method": method, "label": LABELS[method], "held_out": pool(held),
                     "ood": pool(ood)})  # fmt: skip
    return rows


def write_report(rows: list[dict[str, Any]], meta: dict[str, Any], runs: Any, out: Path) -> None:
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "rows": rows, "runs": runs}, indent=2) + "\n"
    )
    lines = [
        "# Learning from reward: SmolLM2-135M on ToolUse-v0 (easy subset)", "",
        f"Seeds {meta['seeds']}; greedy; {meta['eval_episodes']} held-out test tasks (messaging "
        "+ travel) and as many out-of-distribution tasks (vehicle backend) per evaluation. "
        "Every method starts from the same SFT checkpoint per seed and samples 96 training "
        "episodes. Success pooled over seeds with a Wilson 95% interval.", "",
        "| method | held-out | 95% CI | per seed | out of distribution | 95% CI | per seed |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for row in rows:
        cells = []
        for key in ("held_out", "ood"):
            block = row[key]
            low, high = block["success_ci95"]
            seeds = ", ".join(f"{v:.3f}" for _, v in sorted(block["per_seed"].items()))
            cells += [f"{block['success_rate']:.3f}", f"[{low:.3f}, {high:.3f}]", seeds]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    lines += ["", *progress_lines(runs), "", *signal_lines(runs), ""]
    lines += ["Wall time per run (s): " + json.dumps(meta["seconds"]), ""]
    (out / "results.md").write_text("\n".join(lines))
    plot(rows, out / "envtune_learning.png")


def signal_lines(runs: dict[str, dict[Any, dict[str, Any]]]) -> list[str]:
    """How much each policy-gradient run had to learn from: groups with reward variance
    (kept) out of all sampled groups, and optimizer steps taken, per seed."""
    lines = []
    for method, by_seed in runs.items():
        cells = []
        for seed, run in sorted(by_seed.items(), key=lambda item: int(item[0])):
            updates = list(run.get("updates", {}).values())
            if not updates or "groups_kept" not in updates[0]:
                continue
            kept = sum(u["groups_kept"] for u in updates)
            total = sum(u["groups"] for u in updates)
            steps = sum(u.get("optimizer_steps", 0) for u in updates)
            cells.append(f"seed {seed}: {kept}/{total} groups kept, {steps} optimizer steps")
        if cells:
            lines.append(f"- {LABELS[method]}: " + "; ".join(cells))
    if lines:
        lines.insert(0, "Training signal (groups whose sampled rewards differ are kept):")
    return lines


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4))
    width = 0.38
    series = ((-width / 2, "held_out", "#4c72b0", "held-out"),
              (width / 2, "ood", "#dd8452", "out of distribution"))  # fmt: skip
    for offset, key, colour, name in series:
        rates = [row[key]["success_rate"] for row in rows]
        lows = [r - row[key]["success_ci95"][0] for r, row in zip(rates, rows, strict=True)]
        highs = [row[key]["success_ci95"][1] - r for r, row in zip(rates, rows, strict=True)]
        errors = [lows, highs]
        axis.bar([i + offset for i in range(len(rows))], rates, width, yerr=errors, capsize=3,
                 color=colour, label=name)  # fmt: skip
    axis.set_xticks(range(len(rows)), [row["label"] for row in rows], rotation=20, ha="right",
                    fontsize=8)  # fmt: skip
    axis.set_ylim(0, 1)
    axis.set_ylabel("greedy success (95% CI)")
    axis.set_title("SmolLM2-135M, ToolUse-v0 easy subset: 96 training episodes per method")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--out", default="docs/results/envtune")
    parser.add_argument("--runs", default="runs/envtune_study")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite results.md and the plot from --out's results.json "
                             "(its recorded wall times kept; progress re-read from --runs); "
                             "run nothing")  # fmt: skip
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        if not (out / "results.json").is_file():
            raise SystemExit(
                f"--report-only rebuilds the report from {out / 'results.json'}, which does "
                "not exist: run the study first, or pass the --out that holds it"
            )
        saved = json.loads((out / "results.json").read_text())
        for method, by_seed in saved["runs"].items():
            for seed, run in by_seed.items():
                if completed_phases(run_dir(method, int(seed), args)):
                    run["progress"] = progress_of(method, int(seed), args)
        write_report(table(saved["runs"]), saved["meta"], saved["runs"], out)
        print((out / "results.md").read_text())
        return
    runs: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in args.methods}
    for seed in args.seeds:
        for method in ["sft", *[m for m in args.methods if m != "sft"]]:
            result = train(method, seed, args)
            result["ood"] = evaluate_ood(method, seed, args)
            result["progress"] = progress_of(method, seed, args)
            runs.setdefault(method, {})[seed] = result
            meta = {"seeds": args.seeds, "eval_episodes": args.eval_episodes, "env": ENV,
                    "sft": SFT, "methods": METHODS, "ood": OOD,
                    "seconds": {f"{m}-seed{s}": r["seconds"] for m, v in runs.items()
                                for s, r in sorted(v.items())}}  # fmt: skip
            done = {m: v for m, v in runs.items() if v}
            write_report(table(done), meta, done, out)  # a partial report after every run
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
