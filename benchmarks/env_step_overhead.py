"""Per-step overhead of the environment machinery, in microseconds.

Measured side by side in one run, on the same tasks:

* ``raw tool``: calling the calculator's ``add`` function directly (the floor);
* ``tool call step``: ``env.step`` with a Hermes tool call (parse, validate, dispatch,
  record, build info, sanitize the observation), through ``gymnasium.make``'s wrappers;
* ``parse-error step``: ``env.step`` with malformed output;
* ``final-answer step``: a reply that ends a turn (turn checker + next user turn);
* ``reset``: starting an episode on a generated task;
* ``replay``: rebuilding the state after 3 actions with :func:`agentgym.replay`.

Run: ``.venv/bin/python benchmarks/env_step_overhead.py [--repeats 2000]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym

import agentgym
from agentgym.envs.calculator import add


def _time_per_call(function: Callable[[], object], repeats: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean time per call, in microseconds."""
    results = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            function()
        results.append((time.perf_counter() - start) / repeats * 1e6)
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()

    # No time limit so that long benchmark episodes are never truncated.
    env = gym.make("agentgym/Calculator-v0", difficulty="hard", max_episode_steps=None)
    env.reset(seed=0)
    unwrapped = env.unwrapped
    unwrapped.max_steps_per_turn = 10**9
    tool_call = '<tool_call>{"name": "add", "arguments": {"a": 348, "b": 62}}</tool_call>'

    rows = {"raw tool (add(a, b))": _time_per_call(lambda: add(348, 62), args.repeats)}
    rows["tool call step"] = _time_per_call(lambda: env.step(tool_call), args.repeats)
    rows["parse-error step"] = _time_per_call(lambda: env.step("<tool_call>{oops"), args.repeats)

    def answer_step() -> None:
        if unwrapped._turn >= len(unwrapped.task.turns) - 1:
            env.reset()
        env.step("The answer is 410.")

    rows["final-answer step (+reset every 3rd)"] = _time_per_call(answer_step, args.repeats)
    rows["reset"] = _time_per_call(lambda: env.reset(), args.repeats)
    _, info = env.reset(seed=1)
    actions = [tool_call, "The answer is 410.", tool_call]
    rows["replay of 3 actions (reset + 3 steps)"] = _time_per_call(
        lambda: agentgym.replay(
            env, task_id=info["task_id"], episode_seed=info["episode_seed"], actions=actions
        ),
        max(1, args.repeats // 4),
    )
    width = max(map(len, rows))
    print(f"{'operation':<{width}}  µs/call  x raw tool")
    base = rows["raw tool (add(a, b))"]
    for name, micros in rows.items():
        print(f"{name:<{width}}  {micros:7.1f}  {micros / base:9.1f}")


if __name__ == "__main__":
    main()
