"""Steps per second of Calculator-v0 in-process, over `agentgym serve-env`, and over MCP.

Measured side by side in one run, on the same episodes (actions recorded once from the
expert, with every fourth action a malformed one, then replayed in each mode):

* ``in-process``: ``gymnasium.make("agentgym/Calculator-v0")``, reset + steps;
* ``remote, 1 session``: ``gymnasium.make("agentgym/Remote-v0")`` against a server process
  on loopback (each step is one WebSocket round trip: the latency floor);
* ``remote, N sessions``: N clients in threads, each with its own session (aggregate);
* ``MCP tool call``: one ``tools/call`` over stdio to `agentgym serve-tools` vs the local
  ``ToolSet.call``.

Wall-clock rates depend on the machine's load (the script prints the load average beside
them); CPU microseconds per call (this process plus the server processes) count the work
itself and compare across loads.

Run: ``.venv/bin/python benchmarks/env_server_throughput.py [--episodes 200] [--sessions 8]``
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time

import gymnasium as gym
import psutil

import agentgym  # noqa: F401  (registers the environments)
from agentgym.core.parsing import ToolCall
from agentgym.envs.calculator import calculator_tools
from agentgym.serving.mcp_tools import MCPClient

ENV_ID = "agentgym/Calculator-v0"
TOKEN = "benchmark-token"


def record_episodes(count: int, first_seed: int) -> list[tuple[int, list[str]]]:
    """(seed, actions) per episode: the expert's actions, every 4th replaced by junk."""
    env = gym.make(ENV_ID, difficulty="medium")
    episodes = []
    for seed in range(first_seed, first_seed + count):
        observation, info = env.reset(seed=seed)
        expert = env.unwrapped.make_expert()
        expert.reset(env, observation, info)
        actions, done, step = [], False, 0
        while not done:
            action = "not a tool call" if step % 4 == 3 else expert.act(observation, info)
            observation, _, terminated, truncated, info = env.step(action)
            actions.append(action)
            done, step = terminated or truncated, step + 1
        episodes.append((seed, actions))
    env.close()
    return episodes


def replay(env: gym.Env, episodes: list[tuple[int, list[str]]]) -> int:
    """Run the recorded episodes; the number of reset + step calls made."""
    calls = 0
    for seed, actions in episodes:
        env.reset(seed=seed)
        for action in actions:
            env.step(action)
        calls += 1 + len(actions)
    return calls


def cpu_seconds() -> float:
    """CPU time of this process and every process it started (the servers), so far."""
    me = psutil.Process()
    processes = [me, *me.children(recursive=True)]
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def rate(function, repeats: int = 3) -> tuple[float, float]:
    """Median calls per second (wall clock) and median CPU microseconds per call (client
    and server together) over ``repeats`` runs of ``function() -> calls``.

    CPU time is the number to compare on a loaded machine: it counts the work, not the
    waiting for a core.
    """
    rates, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        calls = function()
        rates.append(calls / (time.perf_counter() - start))
        cpu.append((cpu_seconds() - start_cpu) / calls * 1e6)
    return statistics.median(rates), statistics.median(cpu)


def start_server() -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "agentgym.cli", "serve-env", ENV_ID, "difficulty=medium"]
    command += ["--port", "0", "--token", TOKEN]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r" on (http://\S+) ", line)
    if match is None:
        process.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return process, match.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--tool-calls", type=int, default=2000)
    args = parser.parse_args()
    episodes = record_episodes(args.episodes, first_seed=1000)
    steps = sum(1 + len(actions) for _, actions in episodes)
    print(f"{len(episodes)} Calculator-v0 episodes (medium), {steps} reset+step calls")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    local = gym.make(ENV_ID, difficulty="medium")
    in_process = rate(lambda: replay(local, episodes))
    local.close()

    process, url = start_server()
    try:
        remote = gym.make("agentgym/Remote-v0", url=url, token=TOKEN)
        one_session = rate(lambda: replay(remote, episodes))
        remote.close()

        clients = [
            gym.make("agentgym/Remote-v0", url=url, token=TOKEN) for _ in range(args.sessions)
        ]
        shares = [episodes[i :: args.sessions] for i in range(args.sessions)]

        def concurrent() -> int:
            counts = [0] * args.sessions

            def run(index: int) -> None:
                counts[index] = replay(clients[index], shares[index])

            threads = [threading.Thread(target=run, args=(i,)) for i in range(args.sessions)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return sum(counts)

        many_sessions = rate(concurrent)
        for client in clients:
            client.close()
    finally:
        process.terminate()
        process.wait(timeout=30)

    call = ToolCall("add", {"a": 12, "b": 30})
    local_tool = rate(lambda: sum(calculator_tools.call(call).ok for _ in range(args.tool_calls)))
    command = [sys.executable, "-m", "agentgym.cli", "serve-tools"]
    with MCPClient([*command, "agentgym.envs.calculator:calculator_tools"]) as client:
        mcp_tool = rate(
            lambda: sum(client.call_tool("add", call.arguments).ok for _ in range(args.tool_calls))
        )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print()
    print("| mode | calls/s (wall) | vs in-process | CPU µs/call (client+server) |")
    print("| --- | ---: | ---: | ---: |")
    rows = [
        ("in-process reset+step", in_process, in_process),
        ("remote (serve-env), 1 session", one_session, in_process),
        (f"remote (serve-env), {args.sessions} sessions", many_sessions, in_process),
        ("local ToolSet.call", local_tool, local_tool),
        ("MCP tools/call over stdio", mcp_tool, local_tool),
    ]
    for name, (value, cpu), (reference, _) in rows:
        print(f"| {name} | {value:,.0f} | {value / reference:.3f}x | {cpu:,.0f} |")


if __name__ == "__main__":
    main()
