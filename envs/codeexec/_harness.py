"""The program that runs inside the sandbox: lock itself down, load the solution, answer calls.

The parent (:mod:`agentgym.envs.codeexec.sandbox`) starts a fresh interpreter with this
file's text as ``-c`` code and one JSON argument (the settings). Before any untrusted code
runs, this harness, still privileged:

1. joins the run's memory/process cgroup, when the parent made one;
2. builds a new root file system on a small read-only tmpfs (the settings' ``expose`` list:
   the interpreter, its standard library and shared libraries, bind-mounted read-only;
   ``/dev/null`` and friends; a private ``/proc`` of its PID namespace; one size- and
   inode-limited tmpfs for ``/tmp`` and the work directory ``/tmp/work``) and
   ``pivot_root``\\s into it, detaching the host's tree, when it runs in its own mount
   namespace;
3. sets the resource limits (CPU seconds, address space, file size, open files,
   processes, no core dumps);
4. drops every privilege: the capability bounding set, then either the uid (root: to the
   slot's unprivileged uid) or the capabilities (in a user namespace), and sets
   ``no_new_privs`` so that no setuid binary or file capability can give any back.

Then it reports ``ready``, reads the program (and the problem's prelude) from the request
pipe, executes them as module ``solution`` (file ``solution.py``) and reports how loading
went. After that it only answers requests, one JSON line each:

* ``{"op": "call", "id": n, "name": f, "args": [...], "kwargs": [...]}``: call the
  program's ``f`` with the decoded arguments and answer with the encoded result or the
  exception it raised. The hidden tests themselves run in the parent, which compares the
  answers with the expected values: neither ever enters this process.
* ``{"op": "exec", "id": n, "source": code}``: run test code in the program's namespace
  (the weaker path for tests that need the program's objects, see ``judge.py``).
* anything else, or the end of the pipe: stop (the parent usually just kills the run
  once every test is judged).

Everything this process writes is a claim of the (possibly hostile) program: the parent
checks the framing and decodes values strictly, and never trusts a verdict from here on the
normal path. Values cross the boundary in the plain form of :func:`encode_value`.

Only the standard library is used (not even ``json`` or ``signal``, whose imports cost a
few milliseconds per run), and the module does nothing on import, so the parent imports it
for the value codec. The parent runs it from a code object this interpreter compiled once
(see ``isolation.command``).

Example:
    >>> encode_value({"a": (1, 2.5), 3: [None, True]})
    ['d', 'a', ['t', 1, 2.5], 3, ['l', None, True]]
    >>> decode_value(['d', 'a', ['t', 1, 2.5], 3, ['l', None, True]])
    {'a': (1, 2.5), 3: [None, True]}
"""

from __future__ import annotations

import os
import sys

SOLUTION_FILE = "solution.py"
PRELUDE_FILE = "<problem>"
TEST_FILE = "<hidden test>"
MAX_DEPTH = 64
MAX_ERROR_CHARS = 4000
CPU_LIMIT_EXIT = 87  # the exit status after SIGXCPU (the CPU-time limit)
_SMALL_INT = 1 << 62

# ---------------------------------------------------------------------- value codec --


class UnencodableError(TypeError):
    """A value that cannot leave the sandbox as plain data."""


def encode_value(value: object, depth: int = 0) -> object:
    """``value`` as JSON-ready data: scalars as themselves, containers as tagged lists.

    ``None``, ``bool``, ``float``, ``str`` and small ``int`` stay as they are; a list is
    ``["l", item, ...]``, a tuple ``["t", ...]``, a set ``["s", ...]``, a frozenset
    ``["f", ...]``, a dict ``["d", key, value, ...]``, bytes ``["b", latin-1 text]``, a
    complex number ``["c", real, imag]`` and a large int ``["I", hex]``. Subclasses of
    these types travel as the base type (a namedtuple as a tuple, a ``Counter`` as a dict),
    with the base type's own methods, so no overridden ``__eq__`` or ``__iter__`` survives.
    Anything else raises :class:`UnencodableError`.
    """
    if depth > MAX_DEPTH:
        raise UnencodableError(f"the value is nested more than {MAX_DEPTH} levels deep")
    if value is None or value is True or value is False:
        return value
    if isinstance(value, bool):
        return bool.__bool__(value)
    if isinstance(value, int):
        number = int.__int__(value)
        return number if -_SMALL_INT < number < _SMALL_INT else ["I", format(number, "x")]
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    deeper = depth + 1
    if isinstance(value, list):
        return ["l", *[encode_value(item, deeper) for item in list.__iter__(value)]]
    if isinstance(value, tuple):
        return ["t", *[encode_value(item, deeper) for item in tuple.__iter__(value)]]
    if isinstance(value, dict):
        encoded: list = ["d"]
        for key, item in dict.items(value):
            encoded.append(encode_value(key, deeper))
            encoded.append(encode_value(item, deeper))
        return encoded
    if isinstance(value, frozenset):
        return ["f", *[encode_value(item, deeper) for item in frozenset.__iter__(value)]]
    if isinstance(value, set):
        return ["s", *[encode_value(item, deeper) for item in set.__iter__(value)]]
    if isinstance(value, (bytes, bytearray)):
        return ["b", bytes(value).decode("latin-1")]
    if isinstance(value, complex):
        return ["c", complex.__complex__(value).real, complex.__complex__(value).imag]
    raise UnencodableError(f"a value of type {type(value).__name__!r} is not plain data")


_SCALARS = (type(None), bool, int, float, str)
_CONTAINERS = {"l": list, "t": tuple, "s": set, "f": frozenset}


def decode_value(data: object, depth: int = 0) -> object:
    """The value that :func:`encode_value` encoded; ``ValueError`` for anything malformed.

    Strict, because the data comes from the sandboxed program: only the tags above, only
    hashable set members and dict keys, nesting at most ``MAX_DEPTH`` levels.
    """
    if type(data) in _SCALARS:
        return data
    if depth > MAX_DEPTH:
        raise ValueError(f"a value nested more than {MAX_DEPTH} levels deep")
    if type(data) is not list or not data or type(data[0]) is not str:
        raise ValueError(f"malformed value of type {type(data).__name__}")
    tag, items = data[0], data[1:]
    deeper = depth + 1
    try:
        if tag in _CONTAINERS:
            return _CONTAINERS[tag](decode_value(item, deeper) for item in items)
        if tag == "d":
            if len(items) % 2:
                raise ValueError("a dict with a key and no value")
            decoded = [decode_value(item, deeper) for item in items]
            return dict(zip(decoded[::2], decoded[1::2], strict=True))
        if tag == "I" and len(items) == 1 and type(items[0]) is str and len(items[0]) < 65_536:
            return int(items[0], 16)
        if tag == "b" and len(items) == 1 and type(items[0]) is str:
            return items[0].encode("latin-1")
        if tag == "c" and len(items) == 2 and all(type(i) in (int, float) for i in items):
            return complex(items[0], items[1])
    except TypeError as exc:  # an unhashable set member or dict key
        raise ValueError(f"malformed value: {exc}") from None
    except UnicodeEncodeError:
        raise ValueError("malformed bytes value") from None
    raise ValueError(f"malformed value with tag {tag[:20]!r}")


# ---------------------------------------------------------------------- JSON lines --
# ``_json`` is the C half of the ``json`` package; using it directly skips ``re``.


class _JsonContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float


def _json_codec() -> tuple:
    import _json

    scanner = _json.make_scanner(_JsonContext())
    encoder = _json.make_encoder(
        None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, True
    )

    def loads(text: str) -> object:
        value, end = scanner(text, 0)
        if text[end:].strip():
            raise ValueError("extra data after the JSON value")
        return value

    def dumps(value: object) -> str:
        return "".join(encoder(value, 0))

    return loads, dumps


# ---------------------------------------------------------------------- lockdown --

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
ST_NOSUID, ST_NODEV, ST_NOEXEC = 2, 4, 8
PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 24, 28, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECBIT_NOROOT_AND_LOCKED = 0x3  # uid 0 gains no capabilities on execve, for good
SECBIT_NO_CAP_AMBIENT_RAISE_AND_LOCKED = 0xC0
LINUX_CAPABILITY_VERSION_3 = 0x20080522
PIVOT_ROOT_SYSCALL = {"x86_64": 155, "aarch64": 41, "riscv64": 41}
DEVICES = ("null", "zero", "full", "random", "urandom")


class _System:
    """The few libc calls Python 3.11 lacks (mount, pivot_root, prctl, capset)."""

    def __init__(self) -> None:
        import ctypes

        self.ctypes = ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)  # the interpreter's own libc

    def check(self, result: int, what: str) -> None:
        if result != 0:
            errno = self.ctypes.get_errno()
            raise OSError(errno, f"{what}: {os.strerror(errno)}")

    def mount(
        self,
        source: str | None,
        target: str,
        fstype: str | None,
        flags: int,
        data: str | None = None,
    ) -> None:
        encode = lambda text: None if text is None else text.encode()  # noqa: E731
        self.check(
            self.libc.mount(
                encode(source),
                encode(target),
                encode(fstype),
                self.ctypes.c_ulong(flags),
                encode(data),
            ),
            f"mount {target}",
        )

    def bind(self, source: str, target: str, *, read_only: bool) -> None:
        self.mount(source, target, None, MS_BIND)
        if read_only:
            # A read-only bind is a remount; it must keep the flags the source's mount has
            # (the kernel refuses to lift them inside a user namespace).
            locked = os.statvfs(source).f_flag
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
            flags |= MS_NOEXEC if locked & ST_NOEXEC else 0
            self.mount(None, target, None, flags)

    def prctl(self, option: int, value: int, *, check: bool = True) -> None:
        c_ulong = self.ctypes.c_ulong
        result = self.libc.prctl(option, c_ulong(value), c_ulong(0), c_ulong(0), c_ulong(0))
        if check:
            self.check(result, f"prctl({option})")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        number = PIVOT_ROOT_SYSCALL.get(os.uname().machine)
        if number is None:
            raise OSError(f"pivot_root: unknown syscall number on {os.uname().machine}")
        self.check(self.libc.syscall(number, new_root.encode(), put_old.encode()), "pivot_root")

    def umount(self, target: str) -> None:
        self.check(self.libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")

    def drop_capabilities(self) -> None:
        ctypes = self.ctypes

        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]  # noqa: RUF012

        class Data(ctypes.Structure):
            _fields_ = [  # noqa: RUF012 - the ctypes way
                (name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")
            ]

        header, data = Header(LINUX_CAPABILITY_VERSION_3, 0), (Data * 2)()
        self.check(self.libc.capset(ctypes.byref(header), data), "capset")


def _expose(system: _System, root: str, path: str, exposed: list[str], hops: int = 0) -> None:
    """Make host ``path`` visible at the same path under ``root``, read-only.

    Symbolic links on the way are recreated as links (so ``/lib64/ld-linux...`` keeps
    working through ``/lib64 -> usr/lib64``); the final directory or file is bind-mounted.
    """
    if hops > 40:
        raise OSError(f"too many symbolic links under {path}")
    parts = [part for part in path.split("/") if part]
    current = ""
    for position, part in enumerate(parts):
        current += "/" + part
        if any(current == done or current.startswith(done + "/") for done in exposed):
            return  # inside a tree already bind-mounted
        inside = root + current
        if os.path.islink(current):
            target = os.readlink(current)
            if not os.path.lexists(inside):
                os.symlink(target, inside)
            resolved = os.path.normpath(os.path.join(os.path.dirname(current), target))
            rest = "/".join(parts[position + 1 :])
            _expose(system, root, resolved + ("/" + rest if rest else ""), exposed, hops + 1)
            return
        if position < len(parts) - 1:
            if not os.path.isdir(inside):
                os.mkdir(inside, 0o755)
            continue
        if os.path.isdir(current):
            os.makedirs(inside, 0o755, exist_ok=True)
        elif os.path.exists(current):
            os.close(os.open(inside, os.O_WRONLY | os.O_CREAT, 0o444))
        else:
            return
        system.bind(current, inside, read_only=True)
        exposed.append(current)


def _build_root(system: _System, settings: dict) -> None:
    """A fresh root file system of what Python needs, then ``pivot_root`` into it."""
    stage, uid = settings["stage"], settings.get("uid")
    if os.readlink("/proc/self/ns/mnt") == settings.get("host_mount_namespace"):
        raise OSError("refusing to build a root file system in the host's mount namespace")
    system.mount(None, "/", None, MS_REC | MS_PRIVATE)
    system.mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=2048,mode=755")
    exposed: list[str] = []
    for path in settings["expose"]:
        _expose(system, stage, path, exposed)
    for path in settings["mask"]:  # site-packages inside an exposed standard library
        if os.path.isdir(stage + path):
            system.mount(
                "tmpfs",
                stage + path,
                "tmpfs",
                MS_RDONLY | MS_NOSUID | MS_NODEV,
                "size=4k,nr_inodes=4,mode=755",
            )
    os.makedirs(stage + "/dev", 0o755, exist_ok=True)
    for name in DEVICES:
        if os.path.exists("/dev/" + name):
            os.close(os.open(f"{stage}/dev/{name}", os.O_WRONLY | os.O_CREAT, 0o666))
            system.bind("/dev/" + name, f"{stage}/dev/{name}", read_only=False)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("shm", "/tmp"),
    ):
        os.symlink(target, f"{stage}/dev/{name}")
    os.makedirs(stage + "/proc", 0o555, exist_ok=True)
    system.mount("proc", stage + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # All the run may write: one tmpfs, bounded in bytes and in files (so a tree of a
    # million empty files or directories is refused, and vanishes with the namespace).
    os.makedirs(stage + "/tmp", 0o755, exist_ok=True)
    system.mount(
        "tmpfs",
        stage + "/tmp",
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={int(settings['tmpfs_mb'])}m,nr_inodes={int(settings['tmpfs_files'])},mode=1777",
    )
    os.mkdir(stage + "/tmp/work", 0o700)
    if uid is not None:
        os.chown(stage + "/tmp/work", uid, settings["gid"])
    os.makedirs(stage + "/var", 0o755, exist_ok=True)
    os.symlink("../tmp", stage + "/var/tmp")
    os.mkdir(stage + "/.old-root")
    os.chdir(stage)
    system.pivot_root(".", ".old-root")
    os.chdir("/")
    system.umount("/.old-root")
    os.rmdir("/.old-root")
    system.mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir("/tmp/work")


def _lock_down(settings: dict) -> None:
    """Everything privileged, in order; raises (and so stops the run) if a step fails."""
    import _signal  # not ``signal``: its enum import costs ~3 ms per run
    import resource

    if settings.get("cgroup"):
        with open(settings["cgroup"] + "/cgroup.procs", "w") as handle:
            handle.write("0")  # this process; its children inherit the cgroup
    system = _System() if settings.get("private_mounts") or settings.get("drop") else None
    if system is not None and settings.get("private_mounts"):
        _build_root(system, settings)
    if settings.get("rlimits"):
        # At the CPU limit (SIGXCPU) exit with a code the parent recognises: rusage, which
        # it could check instead, reads up to ~20% low in a busy VM. A program that
        # overrides the handler, or spins in C code, is killed a second later.
        cpu = settings["cpu_s"]
        limits = {
            resource.RLIMIT_CPU: (cpu, cpu + 1),
            resource.RLIMIT_AS: settings["memory_mb"] * 1024 * 1024,
            resource.RLIMIT_FSIZE: settings["file_size_mb"] * 1024 * 1024,
            resource.RLIMIT_NOFILE: settings["open_files"],
            resource.RLIMIT_NPROC: settings["processes"],
            resource.RLIMIT_CORE: 0,
        }
        for kind, value in limits.items():
            resource.setrlimit(kind, value if isinstance(value, tuple) else (value, value))
        _signal.signal(_signal.SIGXCPU, lambda number, frame: os._exit(CPU_LIMIT_EXIT))
    uid = settings.get("uid")
    drop = system is not None and bool(settings.get("drop"))
    privileged = os.geteuid() == 0  # root on the host, or in our own user namespace
    if drop and privileged:
        with open("/proc/sys/kernel/cap_last_cap") as handle:
            last_capability = int(handle.read())
        for capability in range(last_capability + 1):
            system.prctl(PR_CAPBSET_DROP, capability)  # type: ignore[union-attr]
        system.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)  # type: ignore[union-attr]
    if uid is not None:
        os.setgroups([])
        os.setgid(settings["gid"])
        os.setuid(uid)  # all capabilities go with the uid
        if os.getuid() != uid or os.geteuid() != uid:
            raise SystemExit("the sandbox failed to drop privileges")
    elif drop and privileged:
        system.prctl(
            PR_SET_SECUREBITS,  # type: ignore[union-attr]
            SECBIT_NOROOT_AND_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE_AND_LOCKED,
        )
        system.drop_capabilities()  # type: ignore[union-attr]
    if drop:
        system.prctl(PR_SET_NO_NEW_PRIVS, 1)  # type: ignore[union-attr]


# ---------------------------------------------------------------------- running --


def _describe(exc: BaseException, program: str) -> dict:
    """The exception for the parent: its class, message and solution.py frames."""
    import linecache
    import traceback

    linecache.cache[SOLUTION_FILE] = (len(program), None, program.splitlines(True), SOLUTION_FILE)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == SOLUTION_FILE]
    if isinstance(exc, SyntaxError) and exc.filename == SOLUTION_FILE:
        line = exc.lineno
    else:
        line = frames[-1].lineno if frames else None
    lines = []
    if frames:
        lines.append("Traceback (solution.py frames only):")
        for frame in frames[-5:]:
            lines.append(f'  File "solution.py", line {frame.lineno}, in {frame.name}')
            if frame.line:
                lines.append(f"    {frame.line.strip()}")
    try:
        lines += [text.rstrip("\n") for text in traceback.format_exception_only(type(exc), exc)]
    except BaseException:  # a hostile __str__
        lines.append(type(exc).__name__)
    text = "\n".join(lines)
    return {"exception": type(exc).__name__, "error": text[-MAX_ERROR_CHARS:], "line": line}


class _Channel:
    """Requests in, events out: JSON lines on two pipes."""

    def __init__(self, request_fd: int, result_fd: int) -> None:
        self.loads, self.dumps = _json_codec()
        self.requests = os.fdopen(request_fd, "rb")
        self.result_fd = result_fd

    def send(self, event: dict) -> None:
        data = (self.dumps(event) + "\n").encode()
        while data:
            data = data[os.write(self.result_fd, data) :]

    def receive(self) -> dict | None:
        line = self.requests.readline()
        if not line:
            return None
        request = self.loads(line.decode())
        return request if isinstance(request, dict) else None


def _answer(request: dict, namespace: dict, program: str, decode_args: tuple) -> dict:
    """The event answering one ``call`` or ``exec`` request."""
    answer: dict = {"id": request.get("id")}
    if request.get("op") == "exec":
        try:
            exec(compile(request["source"], TEST_FILE, "exec"), namespace)
        except BaseException as exc:
            return {**answer, "ok": False, **_describe(exc, program)}
        return {**answer, "ok": True, "value": None}
    name = request.get("name")
    if name not in namespace:
        return {
            **answer,
            "ok": False,
            "exception": "NameError",
            "line": None,
            "error": f"NameError: name {name!r} is not defined",
        }
    args, kwargs = decode_args(request)
    try:
        value = namespace[name](*args, **kwargs)
    except BaseException as exc:
        return {**answer, "ok": False, **_describe(exc, program)}
    try:
        return {**answer, "ok": True, "value": encode_value(value)}
    except (UnencodableError, RecursionError) as exc:
        return {**answer, "ok": False, "unencodable": str(exc)[:200]}


def _decode_args(request: dict) -> tuple[list, dict]:
    args = [decode_value(item) for item in request.get("args", [])]
    kwargs = {str(key): decode_value(item) for key, item in request.get("kwargs", [])}
    return args, kwargs


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib would cost an import per run
            stream.flush()
        except BaseException:  # a closed or replaced stream is the program's doing
            pass


def main() -> None:
    loads, _ = _json_codec()
    settings = loads(sys.argv[1])
    _lock_down(settings)
    channel = _Channel(settings["request_fd"], settings["result_fd"])
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    channel.send({"kind": "ready", "uid": os.getuid(), "pid": os.getpid()})
    payload = channel.receive() or {}
    program = str(payload.get("program", ""))
    namespace: dict = {"__name__": "solution", "__builtins__": __builtins__}
    status: dict = {"kind": "program", "status": "ok"}
    try:
        # The problem's own context (imports, helper functions) comes before the program.
        exec(compile(str(payload.get("prelude") or ""), PRELUDE_FILE, "exec"), namespace)
    except BaseException as exc:
        status = {"kind": "program", "status": "error", **_describe(exc, program)}
        status["error"] = "problem prelude: " + status["error"]
    if status["status"] == "ok":
        try:
            code = compile(program, SOLUTION_FILE, "exec")
        except (SyntaxError, ValueError) as exc:
            status = {"kind": "program", "status": "syntax_error", **_describe(exc, program)}
        else:
            try:
                exec(code, namespace)
            except BaseException as exc:
                status = {"kind": "program", "status": "error", **_describe(exc, program)}
    _flush_output()
    channel.send(status)
    while status["status"] == "ok":
        request = channel.receive()
        if request is None or request.get("op") not in ("call", "exec"):
            break
        try:
            answer = _answer(request, namespace, program, _decode_args)
        except BaseException as exc:  # malformed arguments, or the program broke us
            answer = {"id": request.get("id"), "ok": False, **_describe(exc, program)}
        _flush_output()
        channel.send(answer)
    # Skip atexit handlers and lingering threads the program may have registered.
    os._exit(0)


if __name__ == "__main__":
    main()
