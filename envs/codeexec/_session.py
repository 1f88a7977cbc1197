"""One sandboxed process as the parent sees it: pipes, clocks, and the judge's calls.

:class:`Session` starts the harness (:mod:`agentgym.envs.codeexec._harness`) with its
command line and settings, then drives all I/O through one ``select`` loop: requests out
on one pipe; capped stdout, stderr and result lines in; the process's exit through a
pidfd. Everything that comes back is the (possibly hostile) program's claim: each result
line is parsed on its own, must be a JSON object, and only the answer to the request
being waited for is taken; anything else is counted and ignored. It implements
:class:`~agentgym.envs.codeexec.judge.Program`, so the judge calls the program's functions
through it.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable

from agentgym.envs.codeexec import judge
from agentgym.envs.codeexec._harness import UnencodableError, decode_value, encode_value
from agentgym.envs.codeexec.limits import Limits

__all__ = ["Session"]

READ_CHUNK = 65_536
MAX_ERROR_CHARS = 4000


def _program_exception(answer: dict) -> Exception:
    """The exception a failed call raises in the judge: the built-in class it names."""
    name = str(answer.get("exception", ""))
    text = str(answer.get("error", ""))[:MAX_ERROR_CHARS]
    exception: Exception = judge.ProgramError(text)
    if name in judge.BUILTIN_EXCEPTIONS:
        with contextlib.suppress(Exception):  # classes whose constructor wants more
            exception = getattr(builtins, name)(text)
    exception.sandbox_error = {"exception": name, "error": text}  # type: ignore[attr-defined]
    return exception


class Session(judge.Program):
    """One sandboxed process: its pipes and clocks, and the calls the judge makes.

    All I/O goes through one ``select`` loop (:meth:`_wait`): requests out, capped
    stdout/stderr and result lines in, the process's exit through a pidfd. The wall clock
    of ``limits.timeout_s`` starts when the harness reports ``ready`` (a loaded machine's
    slow interpreter start is not charged to the program); starting has its own limit.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.proc: subprocess.Popen | None = None
        self.stdout, self.stderr = bytearray(), bytearray()
        self.ready = False
        self.program: dict | None = None
        self.exited = self.timed_out = False
        self.over_limit = self.start_error = ""
        self.exit_code: int | None = None
        self.cpu_seconds = 0.0
        self.ignored_lines = 0
        self._lines = 0
        self._partial = bytearray()
        self._results_bytes = 0
        self._pending = bytearray()
        self._awaiting: int | None = None
        self._answer: dict | None = None
        self._ids = itertools.count()
        self._deadline = time.monotonic() + limits.startup_timeout_s
        self._selector: selectors.BaseSelector | None = None
        self._fds: list[int] = []

    # ------------------------------------------------------------------ lifecycle --

    def start(self, command: list[str], *, cwd: str, env: dict[str, str], settings: dict) -> None:
        """Start the harness: ``command`` plus the settings (with the pipes' numbers)."""
        child_ends: list[int] = []
        try:
            request_read, self._request_fd = os.pipe()
            child_ends.append(request_read)
            self._fds.append(self._request_fd)
            self._result_fd, result_write = os.pipe()
            child_ends.append(result_write)
            self._fds.append(self._result_fd)
            settings = {**settings, "request_fd": request_read, "result_fd": result_write}
            self.proc = subprocess.Popen(
                [*command, json.dumps(settings)],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=tuple(child_ends),
                start_new_session=True,
            )
        except OSError as exc:  # out of file descriptors or processes, a missing binary
            self.start_error = f"the sandbox could not start: {exc}"
            return
        finally:
            for fd in child_ends:
                os.close(fd)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._stdout_fd, self._stderr_fd = self.proc.stdout.fileno(), self.proc.stderr.fileno()
        self._pidfd = os.pidfd_open(self.proc.pid)
        self._fds.append(self._pidfd)
        self._selector = selectors.DefaultSelector()
        for fd in (self._stdout_fd, self._stderr_fd, self._result_fd, self._request_fd):
            os.set_blocking(fd, False)
        for fd in (self._stdout_fd, self._stderr_fd, self._result_fd, self._pidfd):
            self._selector.register(fd, selectors.EVENT_READ)

    def close(self, *, kill_first: Callable[[], None] | None = None) -> None:
        """Kill everything of the run, reap it, release the pipes.

        ``kill_first`` kills what might have escaped the process group (every process of
        the slot's uid), before the group itself, so that ``unshare`` still reaps it.
        """
        if self.proc is not None:
            if kill_first is not None:
                kill_first()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            # wait4: the CPU time of the program, even when ``unshare`` sits in between.
            _, status, usage = os.wait4(self.proc.pid, 0)
            self.proc.returncode = self.exit_code = os.waitstatus_to_exitcode(status)
            self.cpu_seconds = usage.ru_utime + usage.ru_stime
            for stream in (self.proc.stdout, self.proc.stderr):
                with contextlib.suppress(OSError):
                    stream.close()  # type: ignore[union-attr]
        if self._selector is not None:
            self._selector.close()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    @property
    def over(self) -> bool:
        """The run cannot go on: exited, out of time, over a limit, or never started."""
        return self.exited or self.timed_out or bool(self.over_limit or self.start_error)

    # ------------------------------------------------------------------ requests --

    def send(self, message: dict) -> None:
        if self.over or self._selector is None:
            return
        if not self._pending:
            self._selector.register(self._request_fd, selectors.EVENT_WRITE)
        self._pending += json.dumps(message).encode() + b"\n"

    def wait_for_program(self) -> dict | None:
        """The harness's report on loading the program (None: the run ended first)."""
        self._wait(lambda: self.program is not None)
        return self.program

    def call(self, name: str, args: tuple, kwargs: dict) -> object:
        try:
            message = {
                "op": "call",
                "name": name,
                "args": [encode_value(arg) for arg in args],
                "kwargs": [[key, encode_value(value)] for key, value in kwargs.items()],
            }
        except (UnencodableError, RecursionError) as exc:
            raise judge.NeedsSandbox(str(exc)) from None
        answer = self._request(message)
        if answer.get("ok") is True:
            try:
                return decode_value(answer.get("value"))
            except (ValueError, RecursionError) as exc:
                raise judge.ProgramError(
                    f"{name}() answered with malformed data: {exc}", "bad_value"
                ) from None
        if "unencodable" in answer:
            raise judge.ProgramError(
                f"{name}() returned a value that can not be checked: "
                f"{str(answer['unencodable'])[:200]}. Return only None, bool, int, float, "
                "complex, str, bytes, and lists, tuples, sets, frozensets and dicts of them.",
                "bad_value",
            )
        raise _program_exception(answer)

    def execute(self, source: str) -> None:
        answer = self._request({"op": "exec", "source": source})
        if answer.get("ok") is not True:
            raise _program_exception(answer)

    def _request(self, message: dict) -> dict:
        self._awaiting, self._answer = next(self._ids), None
        self.send({**message, "id": self._awaiting})
        if not self._wait(lambda: self._answer is not None):
            raise judge.RunOver
        answer, self._answer = self._answer, None
        return answer  # type: ignore[return-value]

    # ------------------------------------------------------------------ the I/O loop --

    def _wait(self, done: Callable[[], bool]) -> bool:
        """Pump I/O until ``done()`` (True) or the run ends (False)."""
        while True:
            if done():
                return True
            if self.over or self._selector is None:
                return False
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                if self.ready:
                    self.timed_out = True
                else:
                    self.start_error = (
                        f"the sandbox did not start within {self.limits.startup_timeout_s:g} s "
                        "(is the machine overloaded?)"
                    )
                return False
            for key, _ in self._selector.select(remaining):
                if key.fd == self._pidfd:
                    self.exited = True
                    self._drain()  # what is still in the pipes, without waiting for holders
                elif key.fd == self._request_fd:
                    self._write_pending()
                else:
                    self._read(key.fd)

    def _write_pending(self) -> None:
        try:
            written = os.write(self._request_fd, self._pending[:READ_CHUNK])
        except BlockingIOError:
            return
        except OSError:  # the harness is gone; its fate tells the rest
            written = len(self._pending)
        del self._pending[:written]
        if not self._pending and self._selector is not None:
            self._selector.unregister(self._request_fd)

    def _drain(self) -> None:
        for fd in (self._stdout_fd, self._stderr_fd, self._result_fd):
            while not self.over_limit and self._read(fd) > 0:
                pass

    def _read(self, fd: int) -> int:
        """Read what is available from ``fd``; the number of bytes (0: nothing or the end)."""
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return 0
        except OSError:
            chunk = b""
        if not chunk:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fd)  # type: ignore[union-attr]
            return 0
        if fd == self._result_fd:
            self._on_results(chunk)
        else:
            buffer = self.stdout if fd == self._stdout_fd else self.stderr
            buffer += chunk
            if len(buffer) > self.limits.output_bytes:
                del buffer[self.limits.output_bytes :]
                self.over_limit = (
                    f"output limit exceeded: more than {self.limits.output_bytes} bytes of "
                    f"{'stdout' if fd == self._stdout_fd else 'stderr'}"
                )
        return len(chunk)

    def _on_results(self, chunk: bytes) -> None:
        cap = 16 * self.limits.output_bytes
        self._results_bytes += len(chunk)
        if self._results_bytes > cap:
            self.over_limit = f"output limit exceeded: more than {cap} bytes of results"
            return
        self._partial += chunk
        while (end := self._partial.find(b"\n")) >= 0:
            line = bytes(self._partial[:end])
            del self._partial[: end + 1]
            self._on_line(line)

    def _on_line(self, line: bytes) -> None:
        """One event of the harness, or a line the program forged: checked, never trusted."""
        self._lines += 1
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            event = None
        if not isinstance(event, dict):
            self.ignored_lines += 1
            return
        if self._lines == 1 and event.get("kind") == "ready":  # before any program code ran
            self.ready = True
            self._deadline = time.monotonic() + self.limits.timeout_s
        elif self.ready and self.program is None and event.get("kind") == "program":
            self.program = event
        elif self._awaiting is not None and event.get("id") == self._awaiting and "ok" in event:
            self._answer, self._awaiting = event, None
        else:
            self.ignored_lines += 1
