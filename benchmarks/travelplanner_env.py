"""Speed and memory of ``agentgym/TravelPlanner-v0``.

Measured in one run:

* database build time (fresh, not the cached copy) and row counts, per size;
* query generation (expert planning included) per query;
* evaluator throughput: plans judged per second (the expert's plans and plans with one
  injected error, mixed), with the strict rules and with the official script's;
* tool calls per second through ``env.step`` (two-stage mode: a mix of all six search tools
  and NotebookWrite, parsing included) and directly on :class:`TravelTools`;
* expert episodes per second in both modes;
* memory of 64 environment copies (``tracemalloc``: made with ``gymnasium.make`` and reset
  into an episode), the database being shared between them.

Times are CPU seconds of this process (``time.process_time``), so a busy machine does not
inflate them.

Run: ``.venv/bin/python benchmarks/travelplanner_env.py [--size full] [--plans 400]``
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import gymnasium as gym
import numpy as np

import agentgym  # noqa: F401  (registers the environments)
from agentgym.envs.travelplanner.database import get_database
from agentgym.envs.travelplanner.generator import generate_database
from agentgym.envs.travelplanner.judge import evaluate
from agentgym.envs.travelplanner.planner import ERROR_KINDS, inject_error
from agentgym.envs.travelplanner.tasks import generate_query
from agentgym.envs.travelplanner.tools import TravelTools

ENV_ID = "agentgym/TravelPlanner-v0"


def build_times(size: str) -> tuple[float, dict[str, int]]:
    start = time.process_time()
    db = generate_database(size, seed=123)
    return time.process_time() - start, db.counts()


def query_generation(size: str, count: int) -> tuple[float, list]:
    db = get_database(size)
    start = time.process_time()
    queries = [generate_query(db, index=i, split="test") for i in range(count)]
    return (time.process_time() - start) / count, queries


def evaluator_rate(size: str, queries: list, evaluator: str = "strict") -> tuple[float, float]:
    db = get_database(size)
    rng = np.random.default_rng(0)
    plans = []
    for i, query in enumerate(queries):
        plan = query.annotated_plan
        if i % 2:
            kind = list(ERROR_KINDS)[i % len(ERROR_KINDS)]
            plan = inject_error(plan, kind, query, db, rng) or plan
        plans.append(plan)
    start = time.process_time()
    passed = sum(
        evaluate(q, p, db, evaluator=evaluator).final_pass
        for q, p in zip(queries, plans, strict=True)
    )
    return len(plans) / (time.process_time() - start), passed / len(plans)


def tool_rates(size: str, calls: int) -> tuple[float, float]:
    db = get_database(size)
    rng = np.random.default_rng(0)
    cities = list(db.cities)
    actions = []
    for i in range(calls):
        a, b = (cities[int(k)] for k in rng.integers(len(cities), size=2))
        actions.append(
            [
                ("FlightSearch", f"{a}, {b}, 2022-03-{int(rng.integers(1, 32)):02d}"),
                ("GoogleDistanceMatrix", f"{a}, {b}, taxi"),
                ("AccommodationSearch", a),
                ("RestaurantSearch", a),
                ("AttractionSearch", a),
                ("CitySearch", str(db.state_of(a))),
                ("NotebookWrite", f"note {i}"),
            ][i % 7]
        )
    tools = TravelTools(db)
    start = time.process_time()
    for name, arguments in actions:
        if name != "NotebookWrite":
            tools.run(name, arguments)
    direct = sum(n != "NotebookWrite" for n, _ in actions) / (time.process_time() - start)
    env = gym.make(ENV_ID, database_size=size, max_episode_steps=None)
    env.reset(seed=0)
    unwrapped = env.unwrapped
    start = time.process_time()
    for name, arguments in actions:
        unwrapped._failures.clear()  # measure calls, not the early-stop rule
        unwrapped._recent_actions.clear()
        _, _, terminated, _, _ = env.step(f"Action: {name}[{arguments}]")
        if terminated:
            env.reset()
    return calls / (time.process_time() - start), direct


def episode_rate(size: str, mode: str, episodes: int) -> float:
    env = gym.make(ENV_ID, mode=mode, database_size=size, split="test")
    steps = 0
    start = time.process_time()
    for index in range(episodes):
        observation, info = env.reset(options={"task_index": index})
        expert = env.unwrapped.make_expert()
        expert.reset(env, observation, info)
        done = False
        while not done:
            observation, _, terminated, truncated, info = env.step(expert.act(observation, info))
            steps += 1
            done = terminated or truncated
    return episodes / (time.process_time() - start)


def memory_of_copies(size: str, copies: int) -> tuple[float, float]:
    """(MiB for all copies, KiB per copy) beyond the shared database and task set."""
    first = gym.make(ENV_ID, database_size=size, mode="sole-planning")
    first.reset(seed=0)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    envs = []
    for i in range(copies):
        env = gym.make(ENV_ID, database_size=size, mode="sole-planning" if i % 2 else "two-stage")
        env.reset(seed=i)
        envs.append(env)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / 2**20, used / copies / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="full", choices=["full", "small"])
    parser.add_argument("--plans", type=int, default=400)
    parser.add_argument("--calls", type=int, default=7000)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--copies", type=int, default=64)
    args = parser.parse_args()
    for size in ("full", "small"):
        seconds, counts = build_times(size)
        print(f"database {size}: built in {seconds:.2f} s, {counts}")
    get_database(args.size)
    per_query, queries = query_generation(args.size, args.plans)
    print(f"[{args.size}] query generation: {per_query * 1000:.1f} ms per query")
    for evaluator in ("strict", "official"):
        rate, passed = evaluator_rate(args.size, queries, evaluator)
        print(
            f"[{args.size}] evaluator ({evaluator}): {rate:,.0f} plans/s "
            f"({passed:.0%} of the mix pass)"
        )
    via_env, direct = tool_rates(args.size, args.calls)
    print(f"[{args.size}] tool calls: {via_env:,.0f}/s through env.step, {direct:,.0f}/s direct")
    for mode in ("two-stage", "sole-planning"):
        print(
            f"[{args.size}] expert episodes ({mode}): "
            f"{episode_rate(args.size, mode, args.episodes):,.1f}/s"
        )
    total, each = memory_of_copies(args.size, args.copies)
    print(f"[{args.size}] memory of {args.copies} copies: {total:.1f} MiB ({each:.0f} KiB each)")


if __name__ == "__main__":
    main()
