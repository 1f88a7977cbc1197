"""Durable files: torn tails repaired, atomic replacement, lock contention."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentgym.core.durable import (
    AppendOnlyFile,
    FileLock,
    LockHeldError,
    file_lock,
    scan_jsonl,
    staged_directory,
    write_atomic,
    write_json_atomic,
)

# ------------------------------------------------------------------ append-only JSONL


def test_scan_finds_an_unterminated_tail(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3')
    scan = scan_jsonl(path)
    assert [record for _, _, record in scan.records] == [{"a": 1}, {"a": 2}]
    assert (scan.good_end, scan.size, scan.torn) == (18, 25, True)
    assert scan.invalid_lines == []


def test_scan_counts_a_garbage_final_line_as_torn(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b"\x00" * 10 + b"\n")  # zero-filled block after a crash
    scan = scan_jsonl(path)
    assert scan.good_end == 9 and scan.torn and scan.invalid_lines == []


def test_scan_reports_invalid_lines_before_the_end(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\nnot json\n[1, 2]\n{"a": 4}\n')
    scan = scan_jsonl(path)
    assert scan.invalid_lines == [2, 3]
    assert [number for number, _, _ in scan.records] == [1, 4]
    assert not scan.torn


def test_scan_with_a_decoder_keeps_only_what_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"id": "x", "big": [1, 2, 3]}\n{"no_id": 1}\n')
    scan = scan_jsonl(path, decode=lambda line: json.loads(line).get("id"))
    assert [record for _, _, record in scan.records] == ["x"]
    assert scan.good_end == 30  # the final line does not decode: counted as torn


def test_scan_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    scan = scan_jsonl(tmp_path / "absent.jsonl")
    assert (scan.records, scan.size, scan.torn) == ([], 0, False)


def test_repair_moves_the_torn_tail_aside_and_appends_continue(tmp_path: Path) -> None:
    path, side = tmp_path / "log.jsonl", tmp_path / "log.torn"
    path.write_bytes(b'{"a": 1}\n{"a": ')
    scan = scan_jsonl(path)
    with AppendOnlyFile(path, size=scan.good_end) as file:
        assert file.repair(scan.good_end, side) == len(b'{"a": \n')
        file.append(b'{"a": 2}\n')
        assert file.size == path.stat().st_size
    assert path.read_bytes() == b'{"a": 1}\n{"a": 2}\n'
    assert side.read_bytes() == b'{"a": \n'
    # A second repair appends to the side file instead of overwriting it.
    path.write_bytes(path.read_bytes() + b"xx")
    with AppendOnlyFile(path) as file:
        file.repair(18, side)
    assert side.read_bytes() == b'{"a": \nxx\n'


def test_failed_append_rolls_back_to_the_previous_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log.jsonl"
    with AppendOnlyFile(path) as file:
        file.append(b'{"a": 1}\n')

        def disk_gone(fd: int) -> None:
            raise OSError("disk gone")

        monkeypatch.setattr(os, "fsync", disk_gone)  # fails after the bytes were written
        with pytest.raises(OSError, match="disk gone"):
            file.append(b'{"a": 2}\n')
        monkeypatch.undo()
        assert file.size == 9
        file.append(b'{"a": 3}\n')
    assert path.read_bytes() == b'{"a": 1}\n{"a": 3}\n'


def _append_forever(path: str) -> None:
    with AppendOnlyFile(path) as file:
        number = 0
        while True:
            number += 1
            file.append(json.dumps({"n": number, "pad": "x" * 5000}).encode() + b"\n")


def test_kill_during_appends_leaves_complete_records_after_repair(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    process = multiprocessing.get_context("spawn").Process(target=_append_forever, args=(path,))
    process.start()
    try:
        while not path.exists() or path.stat().st_size < 50_000:
            process.join(0.01)
            assert process.is_alive(), "the writer died on its own"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.join()
    scan = scan_jsonl(path)
    with AppendOnlyFile(path, size=scan.good_end) as file:
        file.repair(scan.good_end, tmp_path / "log.torn")
    numbers = [json.loads(line)["n"] for line in path.read_bytes().splitlines()]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 9


# ------------------------------------------------------------------ atomic writes


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_json_atomic(path, {"step": 1})
    write_atomic(path, "new text")
    assert path.read_text() == "new text"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_json_atomic(path, {"step": 1})
    with pytest.raises(TypeError):
        write_atomic(path, 123)  # type: ignore[arg-type]
    assert json.loads(path.read_text()) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_kill_during_rewrites_never_exposes_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    script = textwrap.dedent(
        f"""
        from agentgym.core.durable import write_json_atomic
        step = 0
        while True:
            step += 1
            write_json_atomic({str(path)!r}, {{"step": step, "pad": "x" * 100_000}})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        while not path.exists() or json.loads(path.read_text())["step"] < 3:
            assert process.poll() is None, "the writer died on its own"
            # Every read sees a complete file: json.loads would fail on a partial one.
    finally:
        process.kill()
        process.wait()
    assert json.loads(path.read_text())["pad"] == "x" * 100_000


def test_staged_directory_publishes_only_complete_folders(tmp_path: Path) -> None:
    final = tmp_path / "cache" / "index"
    with staged_directory(final) as staging:
        (staging / "a.npy").write_text("1")
    with pytest.raises(RuntimeError), staged_directory(final) as staging:
        (staging / "a.npy").write_text("2")
        raise RuntimeError("build failed")
    assert (final / "a.npy").read_text() == "1"  # the failed rebuild changed nothing
    with staged_directory(final) as staging:
        (staging / "b.npy").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["b.npy"]
    assert sorted(p.name for p in final.parent.iterdir()) == ["index"]


# ------------------------------------------------------------------ locks


def test_lock_excludes_a_second_holder_until_released(tmp_path: Path) -> None:
    first, second = FileLock(tmp_path / "x.lock"), FileLock(tmp_path / "x.lock")
    first.acquire()
    with pytest.raises(LockHeldError, match="locked by another process"):
        second.acquire(blocking=False)
    assert not second.held
    first.release()
    second.acquire(blocking=False)
    assert second.held
    second.release()
    second.release()  # twice is fine
    assert (tmp_path / "x.lock").exists()  # never deleted


def test_lock_excludes_another_process(tmp_path: Path) -> None:
    lock_path = tmp_path / "sub" / "run.lock"
    script = textwrap.dedent(
        f"""
        import sys
        from agentgym.core.durable import FileLock, LockHeldError
        try:
            FileLock({str(lock_path)!r}).acquire(blocking=False)
        except LockHeldError:
            sys.exit(3)
        """
    )
    with file_lock(lock_path):
        held = subprocess.run([sys.executable, "-c", script], check=False)
    free = subprocess.run([sys.executable, "-c", script], check=False)
    assert (held.returncode, free.returncode) == (3, 0)


def test_lock_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    lock_path = tmp_path / "run.lock"
    script = (
        "import time; from agentgym.core.durable import FileLock; "
        f"FileLock({str(lock_path)!r}).acquire(); print('held', flush=True); time.sleep(60)"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        with pytest.raises(LockHeldError):
            FileLock(lock_path).acquire(blocking=False)
    finally:
        process.kill()
        process.wait()
    lock = FileLock(lock_path)
    lock.acquire(blocking=False)
    lock.release()
