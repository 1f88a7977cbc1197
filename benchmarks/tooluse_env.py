"""Throughput and memory of ``agentgym/ToolUse-v0``.

Measured in one run:

* expert episodes per category and difficulty: environment steps per second (the expert's
  own time included, which is small; resets and task generation included, tasks drawn
  fresh so the task cache does not help);
* per-step cost in microseconds of a tool-call step, a failing tool call (with and
  without augmentation), a parse error, and a reset on a cached task;
* memory per environment copy (``tracemalloc``): copies made with ``gymnasium.make`` and
  reset into an episode, the task data shared between them (one task set per
  configuration), with and without long-context tasks.

Run: ``.venv/bin/python benchmarks/tooluse_env.py [--episodes 200] [--copies 50]``
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable

import gymnasium as gym

import agentgym  # noqa: F401  (registers the environments)
from agentgym.envs.tooluse.tasks import CATEGORIES, DIFFICULTIES

ENV_ID = "agentgym/ToolUse-v0"


def expert_steps_per_second(difficulty: str, category: str, episodes: int) -> tuple[float, float]:
    """(steps/s, mean steps per episode) of expert episodes on fresh tasks."""
    env = gym.make(ENV_ID, difficulty=difficulty, categories=[category], max_episode_steps=None)
    expert = env.unwrapped.make_expert()
    steps = 0
    start = time.perf_counter()
    for index in range(10_000, 10_000 + episodes):
        observation, info = env.reset(options={"task_index": index})
        expert.reset(env, observation, info)
        done = False
        while not done:
            observation, _, terminated, truncated, info = env.step(expert.act(observation, info))
            steps += 1
            done = terminated or truncated
    elapsed = time.perf_counter() - start
    return steps / elapsed, steps / episodes


def _time_per_call(function: Callable[[], object], repeats: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean time per call, in microseconds."""
    results = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            function()
        results.append((time.perf_counter() - start) / repeats * 1e6)
    return statistics.median(results)


def step_costs(repeats: int) -> dict[str, float]:
    """Microseconds per step of typical actions on an easy vehicle task."""
    ok = '<tool_call>{"name": "estimate_range", "arguments": {}}</tool_call>'
    failing = '<tool_call>{"name": "set_cruise_control", "arguments": {"speed_kmh": 5}}</tool_call>'
    plain = gym.make(ENV_ID, domains=["vehicle"], max_episode_steps=None)
    augmented = gym.make(ENV_ID, domains=["vehicle"], augment=True, max_episode_steps=None)
    for env in (plain, augmented):
        env.reset(options={"task_index": 0})
        env.unwrapped.max_steps_per_turn = 10**9
    rows = {
        "tool call step (ok)": _time_per_call(lambda: plain.step(ok), repeats),
        "failing call step": _time_per_call(lambda: plain.step(failing), repeats),
        "failing call step (augmented)": _time_per_call(lambda: augmented.step(failing), repeats),
        "parse-error step": _time_per_call(lambda: plain.step("<tool_call>{x"), repeats),
        "reset (cached task)": _time_per_call(
            lambda: plain.reset(options={"task_index": 0}), repeats
        ),
    }
    return rows


def memory_per_copy(copies: int, categories: list[str]) -> float:
    """Bytes allocated per environment copy in an episode (task data shared)."""
    warm = gym.make(ENV_ID, categories=categories)  # builds the shared task set and caches
    warm.reset(seed=0)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    envs = [gym.make(ENV_ID, categories=categories) for _ in range(copies)]
    for index, env in enumerate(envs):
        env.reset(options={"task_index": index % 8})
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    del envs
    return total / copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--copies", type=int, default=50)
    args = parser.parse_args()

    print("Expert episodes (fresh tasks, generation included):")
    print(f"  {'difficulty':<10} {'category':<13} {'steps/s':>9} {'steps/episode':>14}")
    for difficulty in DIFFICULTIES:
        for category in CATEGORIES:
            rate, length = expert_steps_per_second(difficulty, category, args.episodes)
            print(f"  {difficulty:<10} {category:<13} {rate:9.0f} {length:14.1f}")

    print("Per-step cost:")
    for name, micros in step_costs(args.repeats).items():
        print(f"  {name:<32} {micros:8.1f} µs  ({1e6 / micros:8.0f} steps/s)")

    print(f"Memory per environment copy ({args.copies} copies, tracemalloc):")
    for label, categories in (
        ("base/miss_param/miss_func", ["base", "miss_param", "miss_func"]),
        ("long_context", ["long_context"]),
    ):
        size = memory_per_copy(args.copies, categories)
        print(f"  {label:<26} {size / 1024:8.1f} KiB")


if __name__ == "__main__":
    main()
