"""The resource limits of one sandboxed execution (:class:`Limits`).

Example:
    >>> limits = Limits(timeout_s=2.5, memory_mb=256)
    >>> limits.cpu_seconds, limits.processes
    (4, 16)
    >>> Limits(timeout_s=0)
    Traceback (most recent call last):
    ...
    ValueError: Invalid sandbox limits: timeout_s must be > 0, got 0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """Resource limits of one execution.

    Attributes:
        timeout_s: Wall-clock limit of the whole execution (loading and every test call).
        cpu_s: CPU-time limit (``None``: ``ceil(timeout_s) + 1``).
        memory_mb: Address space of each process; with ``memory_cgroup``, also the memory
            of all the run's processes together (tmpfs files included).
        file_size_mb: Largest file the program may write.
        open_files: Largest number of open file descriptors.
        processes: Largest number of processes and threads of one run (fork bombs stop
            here); without a cgroup the run's memory is bounded by ``processes`` x
            ``memory_mb`` plus ``tmpfs_mb``.
        output_bytes: Captured stdout and stderr, each; more stops the run (the results
            channel may carry 16 times this).
        tmpfs_mb: Size of the private tmpfs holding ``/tmp`` and the work directory (with
            ``private_mounts``).
        tmpfs_files: Files and directories that tmpfs may hold.
        startup_timeout_s: Limit on starting the interpreter and locking it down, before
            the program's own ``timeout_s`` starts.
    """

    timeout_s: float = 5.0
    cpu_s: int | None = None
    memory_mb: int = 512
    file_size_mb: int = 16
    open_files: int = 64
    processes: int = 16
    output_bytes: int = 65_536
    tmpfs_mb: int = 32
    tmpfs_files: int = 10_000
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
                "tmpfs_files",
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
