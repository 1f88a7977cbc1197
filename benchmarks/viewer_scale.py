"""How `agentgym view` copes with a large run: startup time and memory at 100k episodes.

Builds a run directory shaped like an EEF run (expert, collect-k, explore-k with restarts,
eval-k stores, a ledger, a few thousand metric records, a summary) from real episodes of
ToolUse-v0 and Calculator-v0 played by their scripted experts, with token ids and log-probs
added to every message as an agent run has them (the experts produce text only), then:

1. starts ``agentgym view RUN`` as a subprocess and times it until the address is printed
   (the index is built by then; wall time and the process's CPU time, which does not depend
   on what else the machine runs) and until the episode table answers;
2. times typical requests (filtered table pages, a sort, a free-text search over every
   record, an episode page, the lineage page, the run page);
3. reports the server's resident memory (VmRSS) and its peak (VmHWM) after the first table
   page and after all those requests.

Run (about 2 GB of disk for 100k episodes; ``--keep`` reuses an existing run directory):

    .venv/bin/python benchmarks/viewer_scale.py --episodes 100000 --run-dir /tmp/view-100k
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.core.trajectory import Trajectory, TrajectoryStore

TEMPLATE_EPISODES = 48


def _templates(seed: int) -> list[Trajectory]:
    """Real expert episodes (some failing: errors are injected) of two environments."""
    episodes: list[Trajectory] = []
    for env_id in ("agentgym/ToolUse-v0", "agentgym/Calculator-v0"):
        collector = RolloutCollector(
            env_id, engine=None, num_envs=4, expert_kwargs={"error_rate": 0.4, "seed": seed}
        )
        specs = [EpisodeSpec(f"t{i}", seed=seed + i) for i in range(TEMPLATE_EPISODES // 2)]
        episodes.extend(collector.run(specs, progress=False))
    return episodes


def _add_tokens(trajectory: Trajectory, rng: random.Random) -> None:
    """Token ids (about 4 characters each) and sampled log-probs, as an agent run stores."""
    system = next((m for m in trajectory.messages if m.role == "system"), None)
    carried = len(system.content) // 4 if system is not None else 0
    for message in trajectory.messages:
        if message.role == "system":
            message.token_ids = []  # the chat template puts it into the first user turn
            continue
        count = len(message.content) // 4 + 5 + carried
        carried = 0
        message.token_ids = [rng.randrange(49152) for _ in range(count)]
        if message.role == "assistant":
            message.logprobs = [round(-rng.expovariate(2.0), 4) for _ in range(count)]


def build_run(run_dir: Path, episodes: int, seed: int = 0) -> None:
    """Write an EEF-shaped run directory with ``episodes`` trajectories."""
    rng = random.Random(seed)
    templates = _templates(seed)
    for template in templates:
        _add_tokens(template, rng)
    iterations = 4
    # Shares of the episodes per store, roughly as an EEF run spends them.
    plan = [("expert", 0, 0.10)]
    for k in range(1, iterations + 1):
        plan += [(f"collect-{k}", k, 0.13), (f"explore-{k}", k, 0.07), (f"eval-{k}", k, 0.025)]
    plan.append(("eval-0", 0, 0.0))
    shares = sum(share for _, _, share in plan)
    now = time.time() - 3600
    expert_failures: list[Trajectory] = []
    written = 0
    for position, (name, iteration, share) in enumerate(plan):
        count = episodes - written if position == len(plan) - 1 else int(episodes * share / shares)
        batch: list[Trajectory] = []
        with TrajectoryStore(run_dir / "trajectories" / f"{name}.jsonl", fsync=False) as store:
            for i in range(count):
                episode = Trajectory.from_dict(rng.choice(templates).to_dict())
                episode.id = f"{name}-{i}"
                episode.iteration = iteration
                episode.policy = "expert" if name == "expert" else "vllm"
                episode.created_at = now + written * 0.01
                if name.startswith("explore") and expert_failures:
                    parent = expert_failures[i // 4 % len(expert_failures)]
                    episode.parent_id, episode.restart_step = parent.id, i % 4
                    episode.task_id = parent.task_id
                batch.append(episode)
                if name == "expert" and not episode.success:
                    expert_failures.append(episode)
                written += 1
                if len(batch) == 1000:
                    store.append(batch)
                    batch = []
            store.append(batch)
    _write_run_files(run_dir, iterations, now, rng)


def _write_run_files(run_dir: Path, iterations: int, start: float, rng: random.Random) -> None:
    (run_dir / "config.yaml").write_text(
        "env:\n  id: agentgym/ToolUse-v0\nmodel:\n  name: smollm2-135m\ntrainer:\n  name: eef\n"
        f"  iterations: {iterations}\nseed: 0\n"
    )
    ledger, metrics, rows = [], [], []
    step = 0
    for k in range(iterations + 1):
        rate = min(1.0, 0.1 + 0.2 * k)
        interval = [max(0.0, rate - 0.1), min(1.0, rate + 0.1)]
        result = {"stage": f"iteration {k}", "iteration": k, "episodes": 64, "seconds": 30.0,
                  "success_rate": rate, "success_ci95": interval,
                  "mean_reward": rate, "reward_ci95": interval}  # fmt: skip
        rows.append(result)
        ledger.append({"phase": "eval", "iteration": k, "result": result, "time": start + k * 600})
        low, high = interval
        metrics.append({"step": k, "time": start, "eval/success_rate": rate,
                        "eval/success_ci_low": low, "eval/success_ci_high": high})  # fmt: skip
        if k < iterations:
            for _ in range(500):
                step += 1
                loss = 2.0 / (1 + step / 300) + rng.random() * 0.1
                metrics.append({"step": step, "time": start, "train/loss": loss})
            ledger.append({"phase": "train", "iteration": k + 1, "time": start + k * 600 + 300,
                           "result": {"steps": 500, "seconds": 280.0}})  # fmt: skip
    (run_dir / "ledger.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ledger))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    (run_dir / "summary.json").write_text(json.dumps({"run_dir": str(run_dir), "rows": rows}))


def _memory(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)  # kB -> MB
    return fields


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (wall time depends on the machine's load)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def _get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as response:
        size = len(response.read())
    return round(time.perf_counter() - started, 3), size


def measure(run_dir: Path) -> dict[str, Any]:
    """Start the viewer on ``run_dir`` and time its startup and typical requests."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "agentgym.cli", "view", str(run_dir), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        address = None
        assert process.stdout is not None
        for line in process.stdout:
            match = re.search(r"(http://\S+/)", line)
            if match:
                address = match.group(1)
                break
        if address is None:
            raise RuntimeError("the viewer exited before printing its address")
        printed = time.perf_counter() - started
        startup_cpu = _cpu_seconds(process.pid)
        first_page, _ = _get(address + "episodes")
        memory_at_start = _memory(process.pid)
        requests = {}
        for label, path in [
            ("episodes page 1", "episodes"),
            ("filter phase+outcome", "episodes?phase=collect-2&outcome=failure"),
            ("reward range, by reward", "episodes?reward_min=0.5&sort=reward&order=desc"),
            ("page 500", "episodes?page=500"),
            ("free text (every record scanned)", "episodes?q=travel+insurance"),
            ("same free text again (cached)", "episodes?q=travel+insurance&page=2"),
            ("episode page", "episode/collect-1/collect-1-7"),
            ("lineage page", "lineage"),
            ("run page", ""),
        ]:
            requests[label] = _get(address + path)[0]
        memory_after = _memory(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {
        "startup_to_address_s": round(printed, 2),
        "startup_cpu_s": startup_cpu,
        "load_average": os.getloadavg()[0],
        "first_table_page_s": first_page,
        "requests_s": requests,
        "memory_mb_after_first_page": memory_at_start,
        "memory_mb_after_all_requests": memory_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/agentgym-view-scale"))
    parser.add_argument("--keep", action="store_true", help="reuse an existing run directory")
    args = parser.parse_args()
    if not (args.keep and (args.run_dir / "trajectories").is_dir()):
        if args.run_dir.exists():
            raise SystemExit(f"{args.run_dir} exists; remove it or pass --keep")
        started = time.perf_counter()
        build_run(args.run_dir, args.episodes)
        print(f"built {args.episodes} episodes in {time.perf_counter() - started:.0f} s")
    size = sum(p.stat().st_size for p in (args.run_dir / "trajectories").glob("*.jsonl"))
    result = {"episodes": args.episodes, "store_bytes": size, "cpus": os.cpu_count()}
    result.update(measure(args.run_dir))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
