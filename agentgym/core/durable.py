"""Durable files: atomic writes, append-only JSONL with torn-tail repair, file locks.

Everything agentgym keeps on disk across crashes goes through these few functions: the
trajectory store (:mod:`agentgym.core.trajectory`), the run directory and its ledger
(:mod:`agentgym.trainers.run`) and the model and index caches (:mod:`agentgym.models`).
Their guarantees hold against ``kill -9`` at any point (and, with the fsyncs, against a
power loss on a POSIX file system):

* :func:`write_atomic` replaces a file with either its old or its new content, never a
  mix; :func:`staged_directory` does the same for a whole folder;
* :class:`AppendOnlyFile` appends whole batches of lines with one ``write``, so a crash
  leaves at most one torn final line, which :meth:`AppendOnlyFile.repair` moves to a side
  file (save first, truncate second: nothing is ever lost);
* :class:`FileLock` is an advisory ``flock`` on a lock file that is never deleted
  (unlinking a lock file lets two processes lock different inodes).

Example (a crash left a torn record; the next writer repairs it):
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> log = folder / "log.jsonl"
    >>> _ = log.write_bytes(b'{"n": 1}\\n{"n": 2}\\n{"n": ')  # killed mid-append
    >>> scan = scan_jsonl(log)
    >>> [record for _, _, record in scan.records], scan.good_end, scan.size
    ([{'n': 1}, {'n': 2}], 18, 24)
    >>> with AppendOnlyFile(log) as file:
    ...     file.repair(scan.good_end, folder / "log.torn")
    ...     file.append(b'{"n": 3}\\n')
    7
    9
    >>> log.read_text().splitlines(), (folder / "log.torn").read_text()
    (['{"n": 1}', '{"n": 2}', '{"n": 3}'], '{"n": \\n')
    >>> write_json_atomic(folder / "state.json", {"step": 3})
    >>> with FileLock(folder / ".lock"):  # a second holder does not get it
    ...     FileLock(folder / ".lock").acquire(blocking=False)
    Traceback (most recent call last):
    ...
    agentgym.core.durable.LockHeldError: ... is locked by another process or open handle
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = [
    "AppendOnlyFile",
    "FileLock",
    "JsonlScan",
    "LockHeldError",
    "file_lock",
    "fsync_directory",
    "fsync_tree",
    "iter_lines",
    "json_object",
    "replace_directory",
    "scan_jsonl",
    "staged_directory",
    "write_atomic",
    "write_json_atomic",
]

RecordT = TypeVar("RecordT")


# --------------------------------------------------------------------------- fsync


def fsync_directory(directory: str | os.PathLike) -> None:
    """Make the entries of ``directory`` durable (a new or renamed file can else vanish)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike) -> None:
    """Fsync every file and folder under ``root`` (before publishing it with a rename)."""
    for directory, _, files in os.walk(root):
        for name in files:
            with open(Path(directory) / name, "rb") as file:
                os.fsync(file.fileno())
        fsync_directory(directory)


# --------------------------------------------------------------------------- atomic writes


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` atomically (fsynced temporary sibling, ``os.replace``).

    A crash leaves either the old file or the new one; the temporary is removed on errors.
    ``str`` data is written as UTF-8.
    """
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(temporary, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """:func:`write_atomic` of ``data`` as indented JSON (UTF-8, one trailing newline)."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def replace_directory(staging: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move the complete folder ``staging`` to ``final``, replacing any folder there.

    A folder cannot be replaced by one rename, so an existing ``final`` is first renamed
    aside to ``.old-<name>-<hex>`` (next to it) and removed after the swap; a crash in
    between leaves that aside copy, which the owner may restore or delete on its next start.
    """
    staging, final = Path(staging), Path(final)
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
    os.rename(staging, final)
    fsync_directory(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_directory(final: str | os.PathLike) -> Iterator[Path]:
    """A fresh hidden folder next to ``final`` that replaces ``final`` when the block ends.

    On an exception the folder is removed and ``final`` is left as it was, so readers only
    ever see a complete folder. Hold a :class:`FileLock` around it when several processes
    may build the same folder.

    >>> import tempfile
    >>> final = Path(tempfile.mkdtemp()) / "index"
    >>> with staged_directory(final) as staging:
    ...     _ = (staging / "done").write_text("ok")
    >>> (final / "done").read_text()
    'ok'
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield staging
        fsync_tree(staging)
        replace_directory(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- append-only JSONL


@dataclass
class JsonlScan(Generic[RecordT]):
    """What :func:`scan_jsonl` found in an append-only JSONL file.

    Attributes:
        records: ``(line number, end offset, decoded record)`` of every valid complete line.
        invalid_lines: 1-based numbers of complete lines that do not decode, except a final
            one (that is counted as torn).
        good_end: The offset just past the last complete line that is not torn: a crash
            tore everything after it (an unterminated piece, or a final line of garbage).
        size: The file size in bytes.
    """

    records: list[tuple[int, int, RecordT]] = field(default_factory=list)
    invalid_lines: list[int] = field(default_factory=list)
    good_end: int = 0
    size: int = 0

    @property
    def torn(self) -> bool:
        """Whether the file ends in a torn write (bytes after :attr:`good_end`)."""
        return self.size > self.good_end


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, int, bytes]]:
    """``(line number, end offset, line)`` of each newline-terminated line of ``path``.

    An unterminated final piece (a write in progress or torn by a crash) is not yielded.
    Lines are streamed, so large files cost no memory.
    """
    offset = 0
    with open(path, "rb") as file:
        for number, line in enumerate(file, start=1):
            if not line.endswith(b"\n"):
                return
            offset += len(line)
            yield number, offset, line


def json_object(line: bytes) -> dict | None:
    """The JSON object on ``line``, or None when the line is not one."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        return None
    return record if isinstance(record, dict) else None


def scan_jsonl(
    path: str | os.PathLike, decode: Callable[[bytes], RecordT | None] = json_object
) -> JsonlScan[RecordT]:
    """Index an append-only JSONL file and find its torn tail (a missing file is empty).

    ``decode`` turns a line into what is kept per record (by default the JSON object; a
    store that keeps only ids in memory passes a function returning the id), or None for
    an invalid line. An invalid *final* line counts as part of the torn tail (a crash can
    leave e.g. zero-filled blocks ending in a newline); invalid lines before it are listed
    in ``invalid_lines`` for the caller to refuse or skip.
    """
    path = Path(path)
    scan: JsonlScan[RecordT] = JsonlScan()
    if not path.exists():
        return scan
    last_start, last_valid = 0, True
    for number, end, line in iter_lines(path):
        record = decode(line)
        last_start, last_valid = end - len(line), record is not None
        if record is None:
            scan.invalid_lines.append(number)
        else:
            scan.records.append((number, end, record))
        scan.good_end = end
    if not last_valid:
        scan.invalid_lines.pop()
        scan.good_end = last_start
    scan.size = path.stat().st_size
    return scan


class AppendOnlyFile:
    """A file opened for whole-line appends, with rollback on errors and tail repair.

    Args:
        path: The file (created if missing, with a durable directory entry).
        size: The current logical end; by default the file size. After a scan, pass
            ``scan.good_end`` and call :meth:`repair` to cut the torn tail.
    """

    def __init__(self, path: str | os.PathLike, *, size: int | None = None) -> None:
        self.path = Path(path)
        created = not self.path.exists()
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if created:
            fsync_directory(self.path.parent)
        self.size = os.fstat(self._fd).st_size if size is None else size

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        return self._fd

    def append(self, payload: bytes, *, fsync: bool = True) -> int:
        """Write ``payload`` (whole lines) with one ``write``; the bytes written.

        A short write (a full disk, payloads over ~2 GiB) is finished; on any error the
        file is truncated back to its previous end, so it never holds half a batch.
        """
        fd = self.fd
        try:
            written = os.write(fd, payload)
            while written < len(payload):
                written += os.write(fd, payload[written:])
            if fsync:
                os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, self.size)
            raise
        self.size += len(payload)
        return len(payload)

    def fsync(self) -> None:
        """Make every append so far durable."""
        os.fsync(self.fd)

    def repair(self, good_end: int, side: str | os.PathLike) -> int:
        """Move the bytes after ``good_end`` to the end of ``side``; how many were moved.

        Save first, truncate second: a crash in between only duplicates the salvage.
        """
        with open(self.path, "rb") as file:
            file.seek(good_end)
            tail = file.read()
        self.size = good_end
        if not tail:
            return 0
        if not tail.endswith(b"\n"):
            tail += b"\n"  # keep successive torn pieces on separate lines
        with open(side, "ab") as file:
            file.write(tail)
            file.flush()
            os.fsync(file.fileno())
        os.ftruncate(self.fd, good_end)
        os.fsync(self.fd)
        return len(tail)

    def close(self) -> None:
        """Close the file; safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> AppendOnlyFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --------------------------------------------------------------------------- locks


class LockHeldError(BlockingIOError):
    """A non-blocking :meth:`FileLock.acquire` found the lock held elsewhere."""


class FileLock:
    """An exclusive advisory ``flock`` on ``path`` (created with its folders, never deleted).

    The lock is held until :meth:`release` (or the end of the ``with`` block, which
    acquires blocking). Two ``FileLock`` objects on the same path exclude each other even
    within one process, since each opens its own file description. The descriptor is not
    inherited by child processes. ``mode``: the lock file's permission bits if it is created.
    """

    def __init__(self, path: str | os.PathLike, *, mode: int = 0o644) -> None:
        self.path = Path(path)
        self._mode = mode
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, blocking: bool = True) -> None:
        """Take the lock, waiting for it unless ``blocking`` is False.

        Raises:
            LockHeldError: ``blocking=False`` and another holder has the lock.
        """
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, self._mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise LockHeldError(
                f"{self.path} is locked by another process or open handle"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Release the lock (closing the descriptor drops the flock); safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"FileLock({str(self.path)!r}, {'held' if self.held else 'free'})"


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive :class:`FileLock` on ``path`` for the block (waiting for it)."""
    with FileLock(path):
        yield
