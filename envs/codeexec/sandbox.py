"""A sandbox for untrusted model code on Linux, in pure Python plus util-linux ``unshare``.

Every execution gets a fresh interpreter started through the harness in
:mod:`agentgym.envs.codeexec._harness`, with these protections (each detected once per
process; a missing one is logged as a warning and listed in :attr:`Sandbox.missing`):

=====================  =====================================================================
``process_group``      own session and process group, SIGKILLed after the run (always)
``rlimits``            CPU seconds, address space, file size, open files, processes, no core
                       dumps (always)
``unprivileged_user``  the program runs as its slot's own unprivileged uid (leased with a
                       lock file, unique across sandboxes and processes); every process of
                       that uid is killed after an abnormal run (needs root)
``network_namespace``  a new, empty network namespace: no interface, no network
``pid_namespace``      a new PID namespace: what the program leaves behind (daemons, escaped
                       sessions) is killed with it, and its ``/proc`` shows only its own
``ipc_namespace``      a new IPC namespace: SysV shared memory, semaphores and message
                       queues it creates are invisible to the host and gone after the run
``private_mounts``     a new root file system: read-only binds of what the interpreter needs
                       (its binary, standard library and shared libraries: an allowlist,
                       nothing else of the host is there), ``/dev/null`` and friends, a
                       private ``/proc``, and one tmpfs bounded in bytes and files for
                       ``/tmp`` and the work directory ``/tmp/work``: the only writable place,
                       gone with the run
``no_new_privs``       the capability bounding set emptied and ``no_new_privs`` set, so no
                       setuid binary or file capability gives privileges back
``memory_cgroup``      (optional, cgroup v2) one cgroup per run: the memory of all its
                       processes together is bounded by ``memory_mb`` and their number by
                       ``processes``; without it the total is bounded by ``processes`` x
                       ``memory_mb`` (address space) plus the tmpfs
=====================  =====================================================================

The namespaces need root and ``unshare``; without root they are made inside a user
namespace (``unshare --user --map-root-user``) where the kernel allows it, and the
program runs as the caller's own uid with no capabilities.

Reward integrity: the hidden tests run in the parent, never in the sandboxed process (see
:mod:`agentgym.envs.codeexec.judge`): the program only answers calls of its functions with
plain data, and the parent compares. Also, always: a minimal environment (no variable of the
parent is passed on), stdin is ``/dev/null``, captured output is capped (more stops the
run), and a bounded number of executions run at once (each in its own slot and uid).

Example:
    >>> sandbox = Sandbox(limits=Limits(timeout_s=5))
    >>> result = sandbox.run("def add(a, b):\\n    return a + b\\n",
    ...                      ["assert add(1, 2) == 3", "assert add(2, 2) == 5"])
    >>> result.status, [t.passed for t in result.tests], result.tests[1].got
    ('ok', [True, False], '4')
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import signal
import tempfile
import time
import weakref
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from agentgym.envs.codeexec import judge
from agentgym.envs.codeexec._harness import CPU_LIMIT_EXIT
from agentgym.envs.codeexec._session import Session
from agentgym.envs.codeexec.isolation import (
    ALL_PROTECTIONS,
    NAMESPACE_FLAGS,
    OPTIONAL_PROTECTIONS,
    command,
    detect_protections,
    harness_settings,
    kill_uid,
    lease_uids,
    minimal_env,
    processes_of,
    release_leases,
    remove_tree,
    warn_once,
)
from agentgym.envs.codeexec.judge import TestResult
from agentgym.envs.codeexec.limits import Limits

__all__ = [
    "ALL_PROTECTIONS",
    "OPTIONAL_PROTECTIONS",
    "ExecutionResult",
    "Job",
    "Limits",
    "Sandbox",
    "TestResult",
    "detect_protections",
    "lease_uids",
    "processes_of",
]

logger = logging.getLogger(__name__)
_MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class ExecutionResult:
    """The outcome of one execution.

    Attributes:
        status: ``"ok"`` (the program loaded and every test was run; tests may still
            fail), ``"syntax_error"``, ``"error"`` (the program raised while loading),
            ``"timeout"``, ``"output_limit"`` or ``"crashed"`` (the process died:
            ``os._exit``, a signal, the memory limit, a failed start).
        tests: One result per test, in order.
        error: Program-level error text (trimmed traceback or reason).
        stdout: Captured standard output (capped).
        stderr: Captured standard error (capped).
        exit_code: The process's exit status (negative: killed by that signal; a run
            that finished is killed, so ``-9`` is normal).
        duration_s: Wall-clock seconds.
        protections: The protections in force.
    """

    status: str
    tests: tuple[TestResult, ...]
    error: str = ""
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0
    protections: frozenset[str] = frozenset()

    @property
    def num_passed(self) -> int:
        """How many tests passed."""
        return sum(test.passed for test in self.tests)

    @property
    def fraction_passed(self) -> float:
        """Passed tests over all tests (0.0 without tests)."""
        return self.num_passed / len(self.tests) if self.tests else 0.0

    @property
    def all_passed(self) -> bool:
        """The program loaded and every test passed (there is at least one test)."""
        return self.status == "ok" and bool(self.tests) and self.num_passed == len(self.tests)


@dataclass(frozen=True)
class Job:
    """One execution for :meth:`Sandbox.run_many`."""

    program: str
    tests: tuple[str, ...] = ()
    setup: str = ""
    prelude: str = ""


# ---------------------------------------------------------------------- the sandbox --


class Sandbox:
    """Runs untrusted programs against hidden tests, at most ``max_concurrency`` at once.

    Args:
        limits: Resource limits of every execution.
        protections: ``"auto"`` (every available protection; missing ones are logged once),
            ``"strict"`` (all of :data:`ALL_PROTECTIONS`, else ``RuntimeError``), or a
            collection of names to use (e.g. ``()`` for the benchmark's baseline: only a
            subprocess, the timeout and the output cap).
        max_concurrency: Executions running at the same time (default: CPU count, >= 2).
        uid_base: Lowest unprivileged uid; each slot leases its own uid from there up
            (see :func:`lease_uids`), unique across sandboxes and processes.
        workdir_root: Where work directories are created when there is no private tmpfs
            (default: the system temp dir).
    """

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        protections: str | Collection[str] = "auto",
        max_concurrency: int | None = None,
        uid_base: int = 64_000,
        workdir_root: str | None = None,
    ) -> None:
        self.limits = limits or Limits()
        capabilities = detect_protections(uid_base)
        self.python = capabilities.python
        available = capabilities.protections
        known = set(ALL_PROTECTIONS) | set(OPTIONAL_PROTECTIONS)
        if protections in ("auto", "strict"):
            wanted = set(ALL_PROTECTIONS)
        elif isinstance(protections, str):
            raise ValueError(
                f"protections={protections!r} is not valid; use 'auto', 'strict' or a "
                f"collection of names from {list(ALL_PROTECTIONS) + list(OPTIONAL_PROTECTIONS)}"
            )
        else:
            wanted = set(protections)
            unknown = sorted(wanted - known)
            if unknown:
                raise ValueError(f"Unknown protection(s) {unknown}; valid: {sorted(known)}")
        missing = sorted(wanted - available)
        if missing and protections == "strict":
            raise RuntimeError(
                f"Sandbox protections unavailable here: {missing} ("
                + "; ".join(capabilities.notes or ("probe failed",))
                + "). Run as root with util-linux 'unshare', or use protections='auto'."
            )
        if missing:
            warn_once(
                f"Sandbox running WITHOUT {', '.join(missing)} ("
                + ("; ".join(capabilities.notes) or "probe failed")
                + "): untrusted code is less contained."
            )
        if protections in ("auto", "strict"):
            wanted |= set(OPTIONAL_PROTECTIONS)
        self.protections: frozenset[str] = frozenset(wanted & available) | {"process_group"}
        self.missing: tuple[str, ...] = tuple(missing)
        self.readable_paths = capabilities.expose if "private_mounts" in self.protections else ()
        self._capabilities = capabilities
        self._cgroups = capabilities.cgroups if "memory_cgroup" in self.protections else None
        self.max_concurrency = max_concurrency or max(2, os.cpu_count() or 2)
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        self.uid_base = uid_base
        self.workdir_root = workdir_root
        self.uids: tuple[int, ...] = ()
        slots: list[int | None] = [None] * self.max_concurrency
        if "unprivileged_user" in self.protections:
            uids, leases = lease_uids(self.max_concurrency, uid_base)
            weakref.finalize(self, release_leases, leases)
            self.uids = tuple(uids)
            slots = list(uids)
        self._slots: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        for slot in slots:
            self._slots.put(slot)

    def __repr__(self) -> str:
        return (
            f"Sandbox(protections={sorted(self.protections)}, limits={self.limits}, "
            f"max_concurrency={self.max_concurrency})"
        )

    # ------------------------------------------------------------------ public --

    def run(
        self, program: str, tests: Sequence[str] = (), *, setup: str = "", prelude: str = ""
    ) -> ExecutionResult:
        """Execute ``prelude`` and ``program``, then judge each test; never raises.

        A test is Python code that raises to fail (usually one ``assert``); ``prelude`` is
        the problem's context (imports, helpers; it runs before the program, and its
        helpers serve the tests too); ``setup`` prepares the tests. Tests and setup run in
        the parent, calling the program's functions in the sandbox (see
        :mod:`agentgym.envs.codeexec.judge`). Blocks while ``max_concurrency`` executions
        are running. A failure of the sandbox itself becomes a ``"crashed"`` result.
        """
        tests = tuple(str(test) for test in tests)
        slot = self._slots.get()
        started = time.perf_counter()
        try:
            return self._run_in_slot(
                slot, str(program), tests, str(setup or ""), str(prelude or "")
            )
        except Exception as exc:
            logger.exception("the sandbox failed on a run")
            reason = f"the sandbox failed: {type(exc).__name__}: {exc}"
            return ExecutionResult(
                "crashed",
                tuple(TestResult(i, False, reason, outcome="not_run") for i in range(len(tests))),
                reason,
                duration_s=time.perf_counter() - started,
                protections=self.protections,
            )
        finally:
            self._slots.put(slot)

    def run_many(self, jobs: Iterable[Job]) -> list[ExecutionResult]:
        """Execute many jobs, ``max_concurrency`` at a time; results in job order."""
        jobs = list(jobs)
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            futures = [
                pool.submit(self.run, j.program, j.tests, setup=j.setup, prelude=j.prelude)
                for j in jobs
            ]
            return [future.result() for future in futures]

    # ------------------------------------------------------------------ one execution --

    def _run_settings(self, uid: int | None) -> tuple[dict, list[str]]:
        """The harness's settings and the namespaces of a run in the slot of ``uid``."""
        on, capabilities = self.protections, self._capabilities
        settings = harness_settings(
            self.limits,
            rlimits="rlimits" in on,
            private_mounts="private_mounts" in on,
            drop="no_new_privs" in on,
            expose=list(capabilities.expose),
            mask=list(capabilities.mask),
            stage=capabilities.stage,
        )
        if uid is not None:
            settings.update(uid=uid, gid=uid)
        namespaces = [flag for name, flag in NAMESPACE_FLAGS if name in on]
        if "--ipc" in namespaces:
            namespaces.append("--uts")  # the host name too, at no cost
        return settings, namespaces

    def _run_in_slot(
        self, slot: int | None, program: str, tests: tuple[str, ...], setup: str, prelude: str
    ) -> ExecutionResult:
        started = time.perf_counter()
        plan = judge.plan_tests(tests, setup, prelude)
        settings, namespaces = self._run_settings(slot)
        uid = settings.get("uid")
        private = settings["private_mounts"]
        workdir = cgroup = None
        session = Session(self.limits)
        verdicts: list[TestResult] = []
        stopped: int | None = None
        out_of_memory = False
        try:
            if not private:
                workdir = tempfile.mkdtemp(prefix="agentgym-sbx-", dir=self.workdir_root)
                if uid is not None:
                    os.chown(workdir, uid, uid)
                os.chmod(workdir, 0o700)
            if self._cgroups is not None:
                cgroup = settings["cgroup"] = self._cgroups.create(self.limits)
            user_namespace = self._capabilities.user_namespace and bool(namespaces)
            session.start(
                command(
                    self.python,
                    namespaces,
                    user_namespace=user_namespace,
                    harness=self._capabilities.harness,
                ),
                cwd="/" if private else workdir,  # type: ignore[arg-type]
                env=minimal_env("/tmp/work" if private else workdir),  # type: ignore[arg-type]
                settings=settings,
            )
            session.send({"program": program, "prelude": prelude})
            loaded = session.wait_for_program()
            if loaded is not None and loaded.get("status") == "ok":
                verdicts, stopped = judge.run_tests(plan, session)
        finally:
            abnormal = session.timed_out or bool(session.over_limit or session.start_error)
            kill = uid is not None and (abnormal or "pid_namespace" not in self.protections)
            session.close(kill_first=functools.partial(kill_uid, uid) if kill else None)
            if cgroup is not None and self._cgroups is not None:
                out_of_memory = self._cgroups.remove(cgroup, max(1.0, self.limits.timeout_s))
            if workdir is not None:
                remove_tree(workdir, max(1.0, self.limits.timeout_s))
        return _interpret(
            session,
            verdicts,
            stopped,
            len(tests),
            self.protections,
            time.perf_counter() - started,
            self.limits,
            out_of_memory,
        )


# ---------------------------------------------------------------------- after a run --


def _decode(data: bytes | bytearray, cap: int) -> str:
    text = bytes(data).decode("utf-8", errors="replace")
    return text + ("\n[... output cut ...]" if len(data) >= cap else "")


def _interpret(
    session: Session,
    verdicts: list[TestResult],
    stopped: int | None,
    num_tests: int,
    protections: frozenset[str],
    duration: float,
    limits: Limits,
    out_of_memory: bool,
) -> ExecutionResult:
    """Turn the judge's verdicts and the process's fate into an ExecutionResult."""
    program = session.program
    loaded = program is not None and program.get("status") == "ok"
    if session.start_error:
        status, error = "crashed", session.start_error
    elif program is not None and program.get("status") in ("syntax_error", "error"):
        status, error = str(program["status"]), str(program.get("error", ""))[:_MAX_ERROR_CHARS]
    elif loaded and stopped is None:
        status, error = "ok", ""
    elif session.timed_out:
        status, error = "timeout", f"timeout: the program ran longer than {limits.timeout_s:g} s"
    elif session.over_limit:
        status, error = "output_limit", session.over_limit
    elif out_of_memory:
        status = "crashed"
        error = (
            f"the program was killed: all its processes together used more than "
            f"{limits.memory_mb} MiB of memory"
        )
    else:
        status = "crashed"
        phase = "testing" if loaded else ("loading" if session.ready else "starting")
        error = _crash_reason(session.exit_code, session.cpu_seconds, phase, limits)
        if phase == "starting" and session.stderr:  # the harness's own failure
            error += ": " + bytes(session.stderr[-300:]).decode(errors="replace").strip()
    tests = list(verdicts[:num_tests])
    for index in range(len(tests), num_tests):
        outcome = "not_run"
        if not loaded:
            reason = f"not run: the program did not load ({status})"
        elif index == stopped:
            reason, outcome = error, "stopped"
        else:
            reason = "not run: an earlier test stopped the program"
        tests.append(TestResult(index, False, reason, outcome=outcome))
    return ExecutionResult(
        status=status,
        tests=tuple(tests),
        error=error,
        stdout=_decode(session.stdout, limits.output_bytes),
        stderr=_decode(session.stderr, limits.output_bytes),
        exit_code=session.exit_code,
        duration_s=duration,
        protections=protections,
    )


def _crash_reason(exit_code: int | None, cpu_seconds: float, phase: str, limits: Limits) -> str:
    """Why the interpreter died, in words for the agent."""
    # The harness exits with CPU_LIMIT_EXIT on SIGXCPU; a program that blocks that signal
    # is killed a second later, when rusage (which reads up to ~20% low under load) shows it.
    if exit_code == CPU_LIMIT_EXIT or cpu_seconds >= limits.cpu_seconds:
        return f"timeout: the program used more than {limits.cpu_seconds} s of CPU time"
    where = {
        "starting": "while the sandbox was starting",
        "loading": "while loading your code",
        "testing": "before all tests had run",
    }[phase]
    if exit_code is not None and exit_code < 0:
        name = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else ""
        return f"the program was killed by signal {name or -exit_code} {where}"
    return f"the program exited {where} (exit code {exit_code})"
