"""What a sandbox run holds and leaves behind: its memory cgroup, its leased uid, and the
processes and files cleaned up after it.

* :class:`MemoryCgroups`: cgroup v2 limits on a whole run (memory, tasks).
* :func:`lease_uids`: unprivileged uids unique across sandboxes and processes.
* :func:`processes_of`, :func:`kill_uid`, :func:`remove_tree`: cleaning up after a run.
* :func:`warn_once`: a warning logged once per process.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import math
import os
import signal
import tempfile
import threading
import time
from collections.abc import Collection, Iterator

from agentgym.core.durable import FileLock, LockHeldError
from agentgym.envs.codeexec.limits import Limits

__all__ = [
    "MemoryCgroups",
    "kill_uid",
    "lease_uids",
    "processes_of",
    "release_leases",
    "remove_tree",
    "warn_once",
]

logger = logging.getLogger("agentgym.envs.codeexec.sandbox")

# ---------------------------------------------------------------------- cgroups --


class MemoryCgroups:
    """cgroup v2: one child cgroup per run limits the memory and tasks of all its processes.

    The runs' cgroups live under ``<cgroup2 mount>/agentgym-sandbox``; the harness joins
    its run's cgroup before anything else, so every process of the run is inside.
    """

    def __init__(self, parent: str) -> None:
        self.parent = parent
        self._names = itertools.count()

    @classmethod
    def find(cls) -> tuple[MemoryCgroups | None, str]:
        """The cgroup hierarchy to use, or None and why not."""
        try:
            with open("/proc/self/mounts") as handle:
                mounts = [line.split() for line in handle]
        except OSError as exc:
            return None, f"cannot read /proc/self/mounts: {exc}"
        roots = [fields[1] for fields in mounts if len(fields) > 2 and fields[2] == "cgroup2"]
        for root in roots:
            try:
                with open(os.path.join(root, "cgroup.controllers")) as handle:
                    controllers = handle.read().split()
            except OSError:
                continue
            if not {"memory", "pids"} <= set(controllers):
                continue
            parent = os.path.join(root, "agentgym-sandbox")
            try:
                _write(os.path.join(root, "cgroup.subtree_control"), "+memory +pids")
                os.makedirs(parent, exist_ok=True)
                _write(os.path.join(parent, "cgroup.subtree_control"), "+memory +pids")
            except OSError as exc:
                return None, f"cannot delegate the memory controller under {root}: {exc}"
            return cls(parent), ""
        if roots:
            return None, "no cgroup v2 hierarchy has the memory and pids controllers"
        return None, "no cgroup v2 hierarchy is mounted"

    def create(self, limits: Limits) -> str:
        path = os.path.join(self.parent, f"{os.getpid()}-{next(self._names)}")
        os.mkdir(path)
        _write(os.path.join(path, "memory.max"), str(limits.memory_mb * 1024 * 1024))
        _write(os.path.join(path, "pids.max"), str(limits.processes))
        for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
            with contextlib.suppress(OSError):  # absent without swap accounting
                _write(os.path.join(path, name), value)
        return path

    def remove(self, path: str, budget_s: float) -> bool:
        """Kill what is left in the run's cgroup and remove it; True if it hit the limit."""
        deadline = time.monotonic() + budget_s
        try:
            with open(os.path.join(path, "memory.events")) as handle:
                events = dict(line.split() for line in handle if len(line.split()) == 2)
            out_of_memory = int(events.get("oom_kill", 0)) > 0
        except (OSError, ValueError):
            out_of_memory = False
        while time.monotonic() < deadline:
            try:
                _write(os.path.join(path, "cgroup.kill"), "1")
            except OSError:  # before Linux 5.14: one by one
                with contextlib.suppress(OSError), open(os.path.join(path, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        with contextlib.suppress(OSError):
                            os.kill(int(pid), signal.SIGKILL)
            try:
                os.rmdir(path)
                return out_of_memory
            except FileNotFoundError:
                return out_of_memory
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    break
            time.sleep(0.002)
        warn_once(f"could not remove the sandbox cgroup {path}")
        return out_of_memory


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


# ---------------------------------------------------------------------- uids --


_LEASE_DIR = os.path.join(tempfile.gettempdir(), "agentgym-sandbox-uids")
_LAST_UID = 65_533  # 65534 is "nobody", 65535 the overflow uid


def lease_uids(count: int, uid_base: int) -> tuple[list[int], list[FileLock]]:
    """``count`` uids from ``uid_base`` up that no other sandbox (in any process) holds.

    A uid is held through an exclusive lock (:class:`~agentgym.core.durable.FileLock`) on a
    file named after it, for as long as the returned leases are held (release them with
    :func:`release_leases`). So two sandboxes never share a uid, and killing "every process
    of my uid" never hits someone else's.
    """
    os.makedirs(_LEASE_DIR, mode=0o755, exist_ok=True)
    uids: list[int] = []
    leases: list[FileLock] = []
    for uid in range(uid_base, _LAST_UID + 1):
        if len(uids) == count:
            break
        lease = FileLock(os.path.join(_LEASE_DIR, str(uid)), mode=0o600)
        try:
            lease.acquire(blocking=False)
        except LockHeldError:
            continue
        uids.append(uid)
        leases.append(lease)
    if len(uids) < count:
        release_leases(leases)
        raise RuntimeError(
            f"Only {len(uids)} free sandbox uids in [{uid_base}, {_LAST_UID}] for {count} "
            "slots: lower max_concurrency or close other sandboxes."
        )
    return uids, leases


def release_leases(leases: list[FileLock]) -> None:
    """Release uid leases (their uids become free for other sandboxes)."""
    for lease in leases:
        lease.release()
    leases.clear()


# ---------------------------------------------------------------------- after a run --


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


def kill_uid(uid: int) -> None:
    """SIGKILL every process owned by ``uid`` until none is left (fork bombs race us)."""
    for _ in range(200):
        victims = processes_of((uid,))
        if not victims:
            return
        for pid in victims:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)
    warn_once(f"processes of sandbox uid {uid} survived repeated SIGKILLs")


def remove_tree(path: str, budget_s: float) -> bool:
    """Delete the directory ``path``: no recursion, no long paths, within ``budget_s``.

    Only a host work directory (no private tmpfs) needs this. A program can leave a tree
    thousands of levels deep, which ``shutil.rmtree`` cannot remove (recursion, path
    length). Here every subdirectory of a subdirectory is first moved up to ``path``
    itself (``renameat``), so at most two directories are open at once and each entry is
    touched a bounded number of times. What the budget does not cover is removed by a
    background thread; returns whether the removal finished in time.
    """
    deadline = time.monotonic() + budget_s
    try:
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return True
    except PermissionError:
        os.chmod(path, 0o700)
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    flattened = itertools.count()
    try:
        while True:
            with os.scandir(top) as entries:
                names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
            if not names:
                break
            for name, is_dir in names:
                if time.monotonic() > deadline:
                    threading.Thread(target=remove_tree, args=(path, math.inf), daemon=True).start()
                    return False
                if not is_dir:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=top)
                    continue
                _empty_into(top, name, flattened)
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(name, dir_fd=top)
    finally:
        os.close(top)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(path)
    return True


def _empty_into(top: int, name: str, counter: Iterator[int]) -> None:
    """Delete the files of ``top/name`` and move its subdirectories up into ``top``."""
    try:
        folder = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
    except PermissionError:  # the program made it unreadable (as our own uid)
        os.chmod(name, 0o700, dir_fd=top)
        folder = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
    try:
        with contextlib.suppress(PermissionError):
            os.fchmod(folder, 0o700)
        with os.scandir(folder) as entries:
            inner = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
        for child, is_dir in inner:
            if is_dir:
                os.rename(child, f".flat-{next(counter)}", src_dir_fd=folder, dst_dir_fd=top)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(child, dir_fd=folder)
    finally:
        os.close(folder)


_WARNED: set[str] = set()
_WARN_LOCK = threading.Lock()


def warn_once(message: str) -> None:
    with _WARN_LOCK:
        if message not in _WARNED:
            _WARNED.add(message)
            logger.warning(message)
