"""The program that runs inside the sandbox: lock itself down, run the solution, run the tests.

The parent (:mod:`agentgym.envs.codeexec.sandbox`) starts a fresh interpreter with this
file's text as ``-c`` code and one JSON argument (the settings below). Before any untrusted
code runs, this harness, still privileged:

1. makes ``/tmp``, ``/var/tmp`` and ``/dev/shm`` private, size-limited tmpfs mounts and puts
   empty read-only mounts over the hidden paths (the package, the virtual environment, the
   home directories), when it runs in its own mount namespace;
2. sets the resource limits (CPU seconds, address space, file size, open files, processes,
   no core dumps);
3. drops to the unprivileged uid/gid, when started as root;
4. reads the program and the tests from stdin, then closes stdin.

It then executes the problem's prelude (imports, helpers) and the program as module
``solution`` (file ``solution.py``), runs the setup code and each test in the program's
namespace, and reports one JSON line per event on the results pipe (``result_fd``), each
prefixed by the run's nonce. Events are written as they happen, so a timeout still tells
which tests passed before it.

Only the standard library is used, and the module does nothing on import.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

SOLUTION_FILE = "solution.py"
TEST_FILE = "<hidden test>"
PRELUDE_FILE = "<problem>"
MAX_REPR = 300


def _mount_private(settings: dict) -> list[str]:
    """Private tmpfs mounts (needs root in a new mount namespace); returns what was done."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    ms_rdonly, ms_nosuid, ms_nodev, ms_bind, ms_rec, ms_private = 1, 2, 4, 4096, 16384, 1 << 18

    def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str) -> None:
        result = libc.mount(
            None if source is None else source.encode(),
            target.encode(),
            None if fstype is None else fstype.encode(),
            flags,
            data.encode() if data else None,
        )
        if result != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"mount {target}: {os.strerror(errno)}")

    done = []
    mount(None, "/", None, ms_rec | ms_private, "")
    workdir = os.getcwd()
    size = f"size={int(settings['tmpfs_mb'])}m,mode=1777"
    for path in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", ms_nosuid | ms_nodev, size)
            done.append(path)
    # The work directory lived under /tmp: bring it back at the same path.
    os.makedirs(workdir, exist_ok=True)
    mount("/proc/self/cwd", workdir, None, ms_bind, "")
    os.chdir(workdir)
    for path in settings["hidden_paths"]:
        # Never cover the private temp dirs or the work directory itself.
        covers_work = (workdir + os.sep).startswith(path.rstrip(os.sep) + os.sep)
        if os.path.isdir(path) and path not in done and not covers_work:
            mount("tmpfs", path, "tmpfs", ms_rdonly | ms_nosuid | ms_nodev, "size=4k,mode=755")
            done.append(path)
    return done


def _lock_down(settings: dict) -> None:
    import resource

    if settings.get("private_mounts"):
        _mount_private(settings)
    if settings.get("rlimits"):
        limits = {
            resource.RLIMIT_CPU: settings["cpu_s"],
            resource.RLIMIT_AS: settings["memory_mb"] * 1024 * 1024,
            resource.RLIMIT_FSIZE: settings["file_size_mb"] * 1024 * 1024,
            resource.RLIMIT_NOFILE: settings["open_files"],
            resource.RLIMIT_NPROC: settings["processes"],
            resource.RLIMIT_CORE: 0,
        }
        for kind, value in limits.items():
            resource.setrlimit(kind, (value, value))
    uid = settings.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setgid(settings["gid"])
        os.setuid(uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise SystemExit("the sandbox failed to drop privileges")


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except BaseException as exc:
        text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def _describe(exc: BaseException) -> str:
    """The exception with its traceback cut to the solution's own frames."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == SOLUTION_FILE]
    lines = []
    if frames:
        lines.append("Traceback (solution.py frames only):")
        for frame in frames[-5:]:
            lines.append(f'  File "solution.py", line {frame.lineno}, in {frame.name}')
            if frame.line:
                lines.append(f"    {frame.line.strip()}")
    lines += [line.rstrip("\n") for line in traceback.format_exception_only(type(exc), exc)]
    return "\n".join(lines)


def main() -> None:
    settings = json.loads(sys.argv[1])
    _lock_down(settings)
    payload = json.loads(sys.stdin.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    nonce = payload["nonce"]
    results = os.fdopen(settings["result_fd"], "w", encoding="utf-8", buffering=1)

    def report(event: dict) -> None:
        results.write(nonce + json.dumps(event) + "\n")
        results.flush()

    import linecache

    program = payload["program"]
    linecache.cache[SOLUTION_FILE] = (len(program), None, program.splitlines(True), SOLUTION_FILE)
    report({"kind": "ready", "uid": os.getuid(), "pid": os.getpid()})
    namespace: dict = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        # The problem's own context (imports, helper functions) comes before the program.
        exec(compile(payload.get("prelude") or "", PRELUDE_FILE, "exec"), namespace)
    except BaseException as exc:
        error = "problem prelude: " + _describe(exc)
        report({"kind": "program", "status": "error", "error": error})
        namespace = None
    try:
        code = compile(program, SOLUTION_FILE, "exec") if namespace is not None else None
    except SyntaxError as exc:
        report({"kind": "program", "status": "syntax_error", "error": _describe(exc)})
        code = None
    if code is not None:
        try:
            exec(code, namespace)
        except BaseException as exc:
            report({"kind": "program", "status": "error", "error": _describe(exc)})
            code = None
    if code is not None:
        report({"kind": "program", "status": "ok"})
        setup_error = ""
        try:
            exec(compile(payload.get("setup") or "", TEST_FILE, "exec"), namespace)
        except BaseException as exc:
            setup_error = _describe(exc)
        for index, test in enumerate(payload["tests"]):
            event: dict = {"kind": "test", "index": index, "passed": False}
            if setup_error:
                event["error"] = setup_error
                report(event)
                continue
            namespace.pop("__got__", None)
            namespace.pop("__want__", None)
            try:
                exec(compile(test, TEST_FILE, "exec"), namespace)
                event["passed"] = True
            except BaseException as exc:
                event["error"] = _describe(exc)
                if isinstance(exc, AssertionError) and "__got__" in namespace:
                    event["got"] = _short_repr(namespace["__got__"])
                    event["expected"] = _short_repr(namespace.get("__want__"))
            report(event)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):  # a closed stream is the program's doing
            stream.flush()
    report({"kind": "done"})
    # Skip atexit handlers and lingering threads the program may have registered.
    os._exit(0)


if __name__ == "__main__":
    main()
