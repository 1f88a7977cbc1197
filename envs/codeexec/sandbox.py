"""A sandbox for untrusted model code on Linux, in pure Python plus util-linux ``unshare``.

Every execution gets a fresh interpreter in a fresh temporary directory, started through
the harness in :mod:`agentgym.envs.codeexec._harness`, with these protections (each
detected once per process; a missing one is logged as a warning and listed in
:attr:`Sandbox.missing`):

==========================  ================================================================
``process_group``           own session and process group; on timeout the whole group is
                            killed (always available)
``rlimits``                 CPU seconds, address space, file size, open files, processes,
                            no core dumps (always available)
``unprivileged_user``       the program runs as its slot's own unprivileged uid (leased
                            with a lock file, unique across sandboxes and processes),
                            owning only its work directory; every process of that uid is
                            killed after an abnormal run (needs root)
``network_namespace``       a new, empty network namespace: no interface, no network (needs
                            root and ``unshare``)
``pid_namespace``           a new PID namespace: when the program ends, anything it left
                            behind (daemons, escaped sessions) is killed by the kernel
``private_mounts``          private, size-limited ``/tmp``, ``/var/tmp``, ``/dev/shm``;
                            empty read-only mounts over the package, the virtual
                            environment and home directories (hidden tests and data stay
                            unreadable)
==========================  ================================================================

Also, always: a minimal environment (no variable of the parent is passed on), the hidden
tests travel on stdin (never on disk or in ``argv``) and stdin is closed before the program
runs, captured output is capped (the run is stopped when it exceeds the cap), and results
come back on a separate pipe. A bounded semaphore caps concurrent executions (each holds a
slot with its own uid).

What it does not protect against: the tests run in the program's own interpreter (as in
HumanEval's harness), so a program that deliberately inspects the interpreter's memory
(``gc``, frames) while being tested could read the current tests or forge a result line.
The sandbox protects the machine; it is not an anti-cheating device against adversarial
code.

Example:
    >>> sandbox = Sandbox(limits=Limits(timeout_s=5))
    >>> result = sandbox.run("def add(a, b):\\n    return a + b\\n",
    ...                      ["assert add(1, 2) == 3", "assert add(2, 2) == 5"])
    >>> result.status, [t.passed for t in result.tests]
    ('ok', [True, False])
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import math
import os
import queue
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ALL_PROTECTIONS",
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

ALL_PROTECTIONS: tuple[str, ...] = (
    "process_group",
    "rlimits",
    "unprivileged_user",
    "network_namespace",
    "pid_namespace",
    "private_mounts",
)
_HARNESS_SOURCE = (Path(__file__).with_name("_harness.py")).read_text(encoding="utf-8")
_READ_CHUNK = 65_536


@dataclass(frozen=True)
class Limits:
    """Resource limits of one execution.

    Attributes:
        timeout_s: Wall-clock limit of the whole execution (program and tests).
        cpu_s: CPU-time limit (``None``: ``ceil(timeout_s) + 1``).
        memory_mb: Address-space limit.
        file_size_mb: Largest file the program may write.
        open_files: Largest number of open file descriptors.
        processes: Largest number of processes of the sandbox's uid (fork bombs stop here).
        output_bytes: Captured stdout and stderr, each; more stops the run.
        tmpfs_mb: Size of the private ``/tmp`` (with ``private_mounts``).
        startup_timeout_s: Limit on starting the interpreter and locking it down, before
            the program's own ``timeout_s`` starts.
    """

    timeout_s: float = 5.0
    cpu_s: int | None = None
    memory_mb: int = 512
    file_size_mb: int = 16
    open_files: int = 64
    processes: int = 32
    output_bytes: int = 65_536
    tmpfs_mb: int = 32
    startup_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be > 0, got {getattr(self, name)}"
            for name in (
                "timeout_s",
                "memory_mb",
                "file_size_mb",
                "open_files",
                "processes",
                "output_bytes",
                "tmpfs_mb",
                "startup_timeout_s",
            )
            if getattr(self, name) <= 0
        ]
        if self.cpu_s is not None and self.cpu_s <= 0:
            problems.append(f"cpu_s must be > 0 or None, got {self.cpu_s}")
        if problems:
            raise ValueError("Invalid sandbox limits: " + "; ".join(problems))

    @property
    def cpu_seconds(self) -> int:
        """The CPU-time limit actually applied."""
        return self.cpu_s if self.cpu_s is not None else math.ceil(self.timeout_s) + 1


@dataclass(frozen=True)
class TestResult:
    """The outcome of one hidden test.

    Attributes:
        index: Position of the test.
        passed: Whether it passed.
        error: Why it failed (trimmed traceback, ``"timeout"``, ...); empty when it passed.
        got: ``repr`` of the value the solution returned, for ``assert f(x) == y`` tests.
        expected: ``repr`` of the expected value, for the same tests.
    """

    __test__ = False  # not a pytest test class, despite the name

    index: int
    passed: bool
    error: str = ""
    got: str | None = None
    expected: str | None = None


@dataclass(frozen=True)
class ExecutionResult:
    """The outcome of one execution.

    Attributes:
        status: ``"ok"`` (the program ran; tests may still fail), ``"syntax_error"``,
            ``"error"`` (the program raised while loading), ``"timeout"``,
            ``"output_limit"`` or ``"crashed"`` (the process died: ``os._exit``, a signal,
            a failed start).
        tests: One result per test, in order.
        error: Program-level error text (trimmed traceback or reason).
        stdout: Captured standard output (capped).
        stderr: Captured standard error (capped).
        exit_code: The interpreter's exit status (negative: killed by that signal).
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


# ---------------------------------------------------------------------- detection --


def _candidate_interpreters() -> list[str]:
    found = [os.path.realpath(sys.executable)]
    for name in ("/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3")):
        if name and os.path.exists(name):
            found.append(os.path.realpath(name))
    return list(dict.fromkeys(found))


def _hidden_paths(interpreter_prefix: str) -> list[str]:
    """Paths mounted over with an empty directory: our code, data and homes."""
    package_root = Path(__file__).resolve().parents[2]  # the folder holding ``agentgym``
    candidates = {
        str(package_root),
        os.path.realpath(sys.prefix),
        os.path.realpath(os.getcwd()),
        "/root",
        "/home",
    }
    for path in sys.path:
        if path and "-packages" in path:
            candidates.add(os.path.realpath(path))
    prefix = os.path.realpath(interpreter_prefix)
    # Never hide the interpreter the sandbox runs (or a parent of it), nor "/".
    hidden = [
        path
        for path in candidates
        if path not in ("/", "") and not (prefix + os.sep).startswith(path.rstrip(os.sep) + os.sep)
    ]
    return sorted(hidden)


def _command(python: str, settings: dict, *, namespaces: Sequence[str]) -> list[str]:
    prefix: list[str] = []
    if namespaces:
        unshare = shutil.which("unshare") or "/usr/bin/unshare"
        prefix = [unshare, *namespaces]
        if "--pid" in namespaces:
            prefix += ["--fork", "--kill-child"]
        prefix.append("--")
    # -S: no site-packages; -s: no user site; -B: no .pyc files. The environment is ours
    # (PYTHONHASHSEED=0 keeps set/dict order of strings reproducible), so no -E/-I.
    return [*prefix, python, "-S", "-s", "-B", "-c", _HARNESS_SOURCE, json.dumps(settings)]


def _minimal_env(workdir: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONHASHSEED": "0",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONSAFEPATH": "1",
    }


@dataclass(frozen=True)
class _Capabilities:
    python: str
    protections: frozenset[str]
    hidden_paths: tuple[str, ...]
    notes: tuple[str, ...]


def _probe(python: str, settings: dict, namespaces: Sequence[str], workdir: str) -> dict | None:
    """Run a tiny program with these protections; the harness's ``ready`` event, or None."""
    import subprocess as sp

    read_end, write_end = os.pipe()
    settings = {**settings, "result_fd": write_end}
    try:
        proc = sp.Popen(
            _command(python, settings, namespaces=namespaces),
            cwd=workdir,
            env=_minimal_env(workdir),
            stdin=sp.PIPE,
            stdout=sp.PIPE,
            stderr=sp.PIPE,
            pass_fds=(write_end,),
            start_new_session=True,
        )
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    os.close(write_end)
    payload = {"nonce": "N", "program": "import sys\nprefix = sys.base_prefix\n",
               "tests": ["print(prefix)"], "setup": ""}  # fmt: skip
    try:
        stdout, _ = proc.communicate(json.dumps(payload).encode(), timeout=20)
    except sp.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(read_end)
        return None
    with os.fdopen(read_end, "rb") as results:
        lines = results.read().decode(errors="replace").splitlines()
    events = [json.loads(line[1:]) for line in lines if line.startswith("N")]
    ready = next((e for e in events if e["kind"] == "ready"), None)
    done = any(e["kind"] == "done" for e in events)
    if proc.returncode != 0 or ready is None or not done:
        return None
    return {**ready, "prefix": stdout.decode().strip()}


_LEASE_DIR = os.path.join(tempfile.gettempdir(), "agentgym-sandbox-uids")
_LAST_UID = 65_533  # 65534 is "nobody", 65535 the overflow uid


def lease_uids(count: int, uid_base: int) -> tuple[list[int], list[int]]:
    """``count`` uids from ``uid_base`` up that no other sandbox (in any process) holds.

    A uid is held through an exclusive ``flock`` on a file named after it; the lock lives
    as long as the returned file descriptors (close them to release). So two sandboxes
    never share a uid, and killing "every process of my uid" never hits someone else's.
    """
    os.makedirs(_LEASE_DIR, mode=0o755, exist_ok=True)
    uids: list[int] = []
    fds: list[int] = []
    for uid in range(uid_base, _LAST_UID + 1):
        if len(uids) == count:
            break
        fd = os.open(os.path.join(_LEASE_DIR, str(uid)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)  # fmt: skip
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        uids.append(uid)
        fds.append(fd)
    if len(uids) < count:
        _release(fds)
        raise RuntimeError(
            f"Only {len(uids)} free sandbox uids in [{uid_base}, {_LAST_UID}] for {count} "
            "slots: lower max_concurrency or close other sandboxes."
        )
    return uids, fds


def _release(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


@functools.lru_cache(maxsize=4)
def detect_protections(uid_base: int = 64_000) -> _Capabilities:
    """Which protections work on this machine (probed once per process and ``uid_base``).

    Tries the strongest set first and drops what fails, so a machine without namespaces
    or without root still runs code, with the missing protections reported.
    """
    notes = []
    root = os.geteuid() == 0
    unshare = shutil.which("unshare")
    if not root:
        notes.append("not running as root: the program runs as your own user")
    if not unshare:
        notes.append("the util-linux 'unshare' command is missing: no namespaces")
    namespace_sets: list[tuple[str, ...]] = [()]
    if root and unshare:
        namespace_sets = [("--net", "--pid", "--mount"), ("--net", "--pid"), ("--net",), ()]
    base = {"rlimits": True, "cpu_s": 10, "memory_mb": 512, "file_size_mb": 1, "open_files": 64,
            "processes": 64, "tmpfs_mb": 4, "hidden_paths": []}  # fmt: skip
    uid, leases = uid_base, []
    if root:
        (uid,), leases = lease_uids(1, uid_base)
    with contextlib.ExitStack() as stack:
        stack.callback(_release, leases)
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="agentgym-probe-"))
        # Prefer an interpreter the unprivileged uid can run; else run as ourselves.
        for drop in (True, False) if root else (False,):
            for python in _candidate_interpreters():
                for namespaces in namespace_sets:
                    settings = dict(base, private_mounts="--mount" in namespaces)
                    if drop:
                        os.chown(workdir, uid, uid)
                        settings.update(uid=uid, gid=uid)
                    ready = _probe(python, settings, namespaces, workdir)
                    if ready is None:
                        continue
                    protections = {"process_group", "rlimits"}
                    if drop and ready["uid"] == uid:
                        protections.add("unprivileged_user")
                    if "--net" in namespaces:
                        protections.add("network_namespace")
                    if "--pid" in namespaces and ready["pid"] == 1:
                        protections.add("pid_namespace")
                    if "--mount" in namespaces:
                        protections.add("private_mounts")
                    hidden = (
                        tuple(_hidden_paths(ready["prefix"])) if "--mount" in namespaces else ()
                    )
                    return _Capabilities(python, frozenset(protections), hidden, tuple(notes))
                if drop:
                    notes.append(f"{python} cannot run as uid {uid} (not readable by others?)")
    raise RuntimeError("No Python interpreter can run in the sandbox: " + "; ".join(notes) + ".")


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
        workdir_root: Where work directories are created (default: the system temp dir).
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
        if protections in ("auto", "strict"):
            wanted = set(ALL_PROTECTIONS)
        elif isinstance(protections, str):
            raise ValueError(
                f"protections={protections!r} is not valid; use 'auto', 'strict' or a "
                f"collection of names from {list(ALL_PROTECTIONS)}"
            )
        else:
            wanted = set(protections)
            unknown = sorted(wanted - set(ALL_PROTECTIONS))
            if unknown:
                raise ValueError(f"Unknown protection(s) {unknown}; valid: {list(ALL_PROTECTIONS)}")
        missing = sorted(wanted - available)
        if missing and protections == "strict":
            raise RuntimeError(
                f"Sandbox protections unavailable here: {missing} ("
                + "; ".join(capabilities.notes or ("probe failed",))
                + "). Run as root with util-linux 'unshare', or use protections='auto'."
            )
        if missing:
            _warn_once(
                f"Sandbox running WITHOUT {', '.join(missing)} ("
                + ("; ".join(capabilities.notes) or "probe failed")
                + "): untrusted code is less contained."
            )
        self.protections: frozenset[str] = frozenset(wanted & available) | {"process_group"}
        self.missing: tuple[str, ...] = tuple(missing)
        self.hidden_paths = capabilities.hidden_paths
        self.max_concurrency = max_concurrency or max(2, os.cpu_count() or 2)
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        self.uid_base = uid_base
        self.workdir_root = workdir_root
        self.uids: tuple[int, ...] = ()
        slots: list[int | None] = [None] * self.max_concurrency
        if "unprivileged_user" in self.protections:
            uids, fds = lease_uids(self.max_concurrency, uid_base)
            weakref.finalize(self, _release, fds)
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
        """Execute ``prelude`` and ``program``, then ``setup``, then each test.

        A test is Python code that raises to fail (usually one ``assert``); ``prelude`` is
        the problem's context (imports, helpers); ``setup`` prepares the tests. All share
        the program's namespace. Blocks while ``max_concurrency`` executions are running.
        """
        slot = self._slots.get()
        try:
            return self._run_in_slot(slot, program, tuple(tests), setup, prelude)
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

    def _settings(self, uid: int | None) -> tuple[dict, list[str]]:
        limits, on = self.limits, self.protections
        settings: dict = {
            "rlimits": "rlimits" in on,
            "cpu_s": limits.cpu_seconds,
            "memory_mb": limits.memory_mb,
            "file_size_mb": limits.file_size_mb,
            "open_files": limits.open_files,
            "processes": limits.processes,
            "tmpfs_mb": limits.tmpfs_mb,
            "private_mounts": "private_mounts" in on,
            "hidden_paths": list(self.hidden_paths),
        }
        if uid is not None:
            settings.update(uid=uid, gid=uid)
        namespaces = [
            flag
            for name, flag in (
                ("network_namespace", "--net"),
                ("pid_namespace", "--pid"),
                ("private_mounts", "--mount"),
            )
            if name in on
        ]
        return settings, namespaces

    def _run_in_slot(
        self, slot: int | None, program: str, tests: tuple[str, ...], setup: str, prelude: str
    ) -> ExecutionResult:
        started = time.perf_counter()
        settings, namespaces = self._settings(slot)
        uid = settings.get("uid")
        workdir = tempfile.mkdtemp(prefix="agentgym-sbx-", dir=self.workdir_root)
        try:
            if uid is not None:
                os.chown(workdir, uid, uid)
            os.chmod(workdir, 0o700)
            nonce = secrets.token_hex(8)
            payload = json.dumps(
                {
                    "nonce": nonce,
                    "program": program,
                    "tests": list(tests),
                    "setup": setup,
                    "prelude": prelude,
                }
            ).encode()
            outcome = self._execute(settings, namespaces, workdir, payload, uid, nonce)
        finally:
            _remove_tree(workdir)
        return _interpret(outcome, nonce, len(tests), self.protections,
                          time.perf_counter() - started, self.limits)  # fmt: skip

    def _execute(
        self,
        settings: dict,
        namespaces: list[str],
        workdir: str,
        payload: bytes,
        uid: int | None,
        nonce: str,
    ) -> _Outcome:
        results_read, results_write = os.pipe()
        settings = {**settings, "result_fd": results_write}
        try:
            proc = subprocess.Popen(
                _command(self.python, settings, namespaces=namespaces),
                cwd=workdir,
                env=_minimal_env(workdir),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(results_write,),
                start_new_session=True,
            )
        except OSError as exc:
            os.close(results_read)
            os.close(results_write)
            return _Outcome(start_error=f"the sandbox could not start: {exc}")
        os.close(results_write)
        outcome = _Outcome()
        try:
            ready_marker = (nonce + '{"kind": "ready"').encode()
            _pump(proc, payload, results_read, outcome, self.limits, ready_marker)
        finally:
            # Anything of the slot's uid first (the program, and what escaped its group), so
            # that ``unshare`` still reaps it; then the whole group.
            abnormal = outcome.timed_out or outcome.over_limit or bool(outcome.start_error)
            if uid is not None and (abnormal or "pid_namespace" not in self.protections):
                _kill_uid(uid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            # wait4: the CPU time of the program, even when ``unshare`` sits in between.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            outcome.cpu_seconds = usage.ru_utime + usage.ru_stime
            os.close(results_read)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        outcome.exit_code = proc.returncode
        return outcome


@dataclass
class _Outcome:
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    results: bytearray = field(default_factory=bytearray)
    timed_out: bool = False
    over_limit: bool = False
    exit_code: int | None = None
    cpu_seconds: float = 0.0
    start_error: str = ""


def _pump(
    proc: subprocess.Popen,
    payload: bytes,
    results_fd: int,
    outcome: _Outcome,
    limits: Limits,
    ready_marker: bytes,
) -> None:
    """Feed stdin, collect capped output, until the process exits or a limit is hit.

    The wall clock of ``limits.timeout_s`` starts when the harness reports that it is
    locked down and ready (so a loaded machine's slow interpreter start is not charged to
    the program); starting has its own, generous limit.
    """
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + limits.startup_timeout_s
    ready = False
    selector = selectors.DefaultSelector()
    pidfd = os.pidfd_open(proc.pid)
    buffers = {
        proc.stdout.fileno(): outcome.stdout,
        proc.stderr.fileno(): outcome.stderr,
        results_fd: outcome.results,
    }
    caps = {
        proc.stdout.fileno(): limits.output_bytes,
        proc.stderr.fileno(): limits.output_bytes,
        results_fd: 16 * limits.output_bytes,
    }
    for fd in buffers:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    selector.register(pidfd, selectors.EVENT_READ)
    stdin_fd = proc.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    selector.register(stdin_fd, selectors.EVENT_WRITE)
    pending = memoryview(payload)
    exited = False
    try:
        while not exited:
            if not ready and ready_marker in outcome.results:
                ready = True
                deadline = time.monotonic() + limits.timeout_s
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if ready:
                    outcome.timed_out = True
                else:
                    outcome.start_error = (
                        f"the sandbox did not start within {limits.startup_timeout_s:g} s "
                        "(is the machine overloaded?)"
                    )
                return
            for key, _ in selector.select(remaining):
                fd = key.fd
                if fd == pidfd:
                    exited = True
                elif fd == stdin_fd:
                    try:
                        written = os.write(fd, pending[:_READ_CHUNK])
                    except BlockingIOError:
                        written = 0
                    except OSError:  # the harness is gone; its fate tells the rest
                        written = len(pending)
                    pending = pending[written:]
                    if not pending:
                        selector.unregister(fd)
                        proc.stdin.close()
                elif not _read_into(fd, buffers[fd], caps[fd], selector):
                    outcome.over_limit = True
                    return
        # Exited: take what is still in the pipes (without waiting for holders of them).
        for fd, buffer in buffers.items():
            if not _read_into(fd, buffer, caps[fd], None, drain=True):
                outcome.over_limit = True
    finally:
        selector.close()
        os.close(pidfd)


def _read_into(
    fd: int, buffer: bytearray, cap: int, selector: selectors.BaseSelector | None,
    *, drain: bool = False,
) -> bool:  # fmt: skip
    """Read available bytes into ``buffer``; False when the cap is exceeded."""
    while True:
        try:
            chunk = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return True
        except OSError:
            chunk = b""
        if not chunk:
            if selector is not None:
                with contextlib.suppress(KeyError, ValueError):
                    selector.unregister(fd)
            return True
        buffer += chunk
        if len(buffer) > cap:
            del buffer[cap:]
            return False
        if not drain:
            return True


def processes_of(uids: Collection[int]) -> list[int]:
    """Live (not zombie) processes owned by any of ``uids``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid not in uids:
                continue
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # it just exited
        if state not in (b"Z", b"X"):
            found.append(int(entry.name))
    return found


def _kill_uid(uid: int) -> None:
    """SIGKILL every process owned by ``uid`` until none is left (fork bombs race us)."""
    for _ in range(200):
        victims = processes_of((uid,))
        if not victims:
            return
        for pid in victims:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)
    _warn_once(f"processes of sandbox uid {uid} survived repeated SIGKILLs")


def _remove_tree(path: str) -> None:
    def retry(function, failed_path, _exc_info) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed_path), 0o700)
            os.chmod(failed_path, 0o700)
            function(failed_path)

    shutil.rmtree(path, onerror=retry)


_WARNED: set[str] = set()
_WARN_LOCK = threading.Lock()


def _warn_once(message: str) -> None:
    with _WARN_LOCK:
        if message not in _WARNED:
            _WARNED.add(message)
            logger.warning(message)


def _decode(data: bytes | bytearray, cap: int) -> str:
    text = bytes(data).decode("utf-8", errors="replace")
    return text + ("\n[... output cut ...]" if len(data) >= cap else "")


def _interpret(
    outcome: _Outcome,
    nonce: str,
    num_tests: int,
    protections: frozenset[str],
    duration: float,
    limits: Limits,
) -> ExecutionResult:
    """Turn the harness's event lines and the process's fate into an ExecutionResult."""
    events = []
    for line in bytes(outcome.results).decode("utf-8", errors="replace").splitlines():
        if line.startswith(nonce):
            with contextlib.suppress(ValueError):
                events.append(json.loads(line[len(nonce) :]))
    program = next((e for e in events if e.get("kind") == "program"), None)
    done = any(e.get("kind") == "done" for e in events)
    by_index = {}
    for event in events:
        if event.get("kind") == "test" and isinstance(event.get("index"), int):
            by_index.setdefault(event["index"], event)
    if outcome.start_error:
        status, error = "crashed", outcome.start_error
    elif outcome.timed_out:
        status, error = "timeout", f"timeout: the program ran longer than {limits.timeout_s:g} s"
    elif outcome.over_limit:
        status = "output_limit"
        error = f"output limit exceeded: more than {limits.output_bytes} bytes of output"
    elif program is not None and program.get("status") in ("syntax_error", "error"):
        status, error = program["status"], str(program.get("error", ""))
    elif program is not None and done:
        status, error = "ok", ""
    else:
        status = "crashed"
        ready = any(e.get("kind") == "ready" for e in events)
        phase = "testing" if program is not None else ("loading" if ready else "starting")
        error = _crash_reason(outcome.exit_code, outcome.cpu_seconds, phase, limits)
    tests = []
    first_missing = True
    for index in range(num_tests):
        event = by_index.get(index)
        if event is not None:
            tests.append(
                TestResult(
                    index,
                    bool(event.get("passed")),
                    str(event.get("error", "")),
                    event.get("got"),
                    event.get("expected"),
                )
            )
            continue
        if status == "ok":
            reason = "the test did not report a result"
        elif program is None or program.get("status") != "ok":
            reason = f"not run: the program did not load ({status})"
        elif first_missing:
            reason = error
            first_missing = False
        else:
            reason = "not run: an earlier test stopped the program"
        tests.append(TestResult(index, False, reason))
    if status == "ok" and len(by_index) < num_tests:
        status = "crashed"
    return ExecutionResult(
        status=status,
        tests=tuple(tests),
        error=error,
        stdout=_decode(outcome.stdout, limits.output_bytes),
        stderr=_decode(outcome.stderr, limits.output_bytes),
        exit_code=outcome.exit_code,
        duration_s=duration,
        protections=protections,
    )


def _crash_reason(exit_code: int | None, cpu_seconds: float, phase: str, limits: Limits) -> str:
    """Why the interpreter died, in words for the agent."""
    if cpu_seconds >= 0.9 * limits.cpu_seconds:  # CPU time is accounted in ticks
        return f"timeout: the program used more than {limits.cpu_seconds} s of CPU time"
    where = {"starting": "while the sandbox was starting", "loading": "while loading your code",
             "testing": "before all tests had run"}[phase]  # fmt: skip
    if exit_code is not None and exit_code < 0:
        name = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else ""
        return f"the program was killed by signal {name or -exit_code} {where}"
    return f"the program exited {where} (exit code {exit_code})"
