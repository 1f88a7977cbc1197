"""The :class:`RunDir` class: a run directory's ledger, session and lock.

Metrics go through :mod:`~agentgym.trainers.run.metrics`, checkpoints through
:mod:`~agentgym.trainers.run.checkpoints`, reports through
:mod:`~agentgym.trainers.run.reports`; the package docstring (:mod:`agentgym.trainers.run`)
describes the layout and the resume contract.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import socket
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from agentgym.core.durable import (
    AppendOnlyFile,
    FileLock,
    LockHeldError,
    fsync_directory,
    write_atomic,
    write_json_atomic,
)
from agentgym.core.trajectory import TrajectoryStore
from agentgym.trainers.run import checkpoints
from agentgym.trainers.run.config import (
    RESUMABLE_KEYS,
    ConfigMismatchError,
    config_differences,
    plain_config,
)
from agentgym.trainers.run.metrics import MetricSinks, read_records
from agentgym.trainers.run.reports import plot_metrics, summary_table

__all__ = ["RunDir", "RunDirBusyError"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


class RunDirBusyError(RuntimeError):
    """Another process is writing the run directory."""


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"invalid {kind} name {name!r}: use letters, digits and '._+=-', starting with a "
            f"letter or digit (e.g. 'iter-0003')"
        )


class RunDir:
    """The directory of one training run (see the module docstring for the layout).

    Args:
        path: The run directory (created if missing).
        config: The run's resolved config (a mapping, ``DictConfig`` or dataclass). Stored
            as ``config.yaml`` on first use; a re-open with a config that differs outside
            ``resumable_keys`` raises :class:`ConfigMismatchError`.
        tensorboard: Also write scalars to TensorBoard (``tb/``).
        wandb: Also log to Weights & Biases (``WANDB_MODE=offline`` unless set; a missing or
            failing wandb only warns, once).
        wandb_project: The wandb project.
        readonly: Read a run (possibly while another process writes it): no lock, no repair,
            no writes except :meth:`plot`.
        resumable_keys: Config keys that may change on resume.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        config: Mapping[str, Any] | None = None,
        tensorboard: bool = True,
        wandb: bool = False,
        wandb_project: str = "agentgym",
        readonly: bool = False,
        resumable_keys: Collection[str] = RESUMABLE_KEYS,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._given_config = None if config is None else plain_config(config)
        if self._given_config is not None and not isinstance(self._given_config, dict):
            raise TypeError(f"config must be a mapping, got {type(config).__name__}")
        self._resumable = frozenset(resumable_keys)
        self._stores: dict[str, TrajectoryStore] = {}
        self._ledger: dict[tuple[str, int], dict[str, Any]] = {}
        self._lock = FileLock(self.path / ".lock")
        self._ledger_file: AppendOnlyFile | None = None
        self._sinks = MetricSinks(
            self.path,
            tensorboard=tensorboard,
            wandb=wandb,
            wandb_project=wandb_project,
            wandb_config=self._given_config,
        )
        self._closed = False
        if readonly:
            if not self.path.is_dir():
                raise FileNotFoundError(f"run directory {self.path} does not exist")
            self._check_config()
            self._read_ledger(repair=False)
            return
        self.path.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self._check_config()
            self._read_ledger(repair=True)
            crashed = self._open_metrics()
            checkpoints.clean_leftovers(self._checkpoints)
            if crashed and (tensorboard or (self.path / "tb").exists()):
                self._sinks.rebuild_tensorboard()
            # Written last: a crash before this point makes the next open repeat the repair.
            write_json_atomic(self._session_path, self._session())
        except BaseException:
            self._release(clean=False)
            raise

    # ------------------------------------------------------------------ paths

    @property
    def config(self) -> dict[str, Any] | None:
        """The stored config (``config.yaml``), or None if the run has none."""
        path = self.path / "config.yaml"
        return yaml.safe_load(path.read_text()) if path.exists() else None

    @property
    def _session_path(self) -> Path:
        return self.path / "session.json"

    @property
    def _ledger_path(self) -> Path:
        return self.path / "ledger.jsonl"

    @property
    def _checkpoints(self) -> Path:
        return self.path / "checkpoints"

    # ------------------------------------------------------------------ opening

    def _acquire_lock(self) -> None:
        try:
            self._lock.acquire(blocking=False)
        except LockHeldError:
            owner = ""
            with contextlib.suppress(OSError, ValueError):
                session = json.loads(self._session_path.read_text())
                owner = f" (pid {session['pid']} on {session['host']})"
            raise RunDirBusyError(
                f"run directory {self.path} is in use by another process{owner}; wait for it "
                f"to finish, open it with readonly=True, or use another directory"
            ) from None

    def _check_config(self) -> None:
        if self._given_config is None:
            return
        path = self.path / "config.yaml"
        # Compare what YAML would store, so floats and the like compare like for like.
        given = yaml.safe_load(yaml.safe_dump(self._given_config)) or {}
        if path.exists():
            stored = yaml.safe_load(path.read_text()) or {}
            differences = config_differences(stored, given, self._resumable)
            if differences:
                raise ConfigMismatchError(self.path, differences, self._resumable)
        elif not self.readonly:
            text = yaml.safe_dump(self._given_config, sort_keys=False, allow_unicode=True)
            write_atomic(path, text)

    def _read_ledger(self, *, repair: bool) -> None:
        scan = read_records(self._ledger_path)
        if repair:
            self._ledger_file = AppendOnlyFile(self._ledger_path, size=scan.good_end)
            if self._ledger_file.repair(scan.good_end, self.path / "ledger.torn"):
                logger.warning("%s: removed a torn final ledger entry (crash)", self._ledger_path)
        for _, _, record in scan.records:
            self._ledger[(record["phase"], int(record["iteration"]))] = record

    def _open_metrics(self) -> bool:
        """Open the metric sinks; whether the previous writer crashed (its work is undone)."""
        previous = self._previous_session()
        if previous is None:
            self._sinks.open(keep_until=None)
            return False
        # The last writer crashed: keep only the metrics its last commit covered.
        ledger_offsets = (int(r.get("metrics_offset", 0)) for r in self._ledger.values())
        limit = max(int(previous.get("metrics_offset", 0)), max(ledger_offsets, default=0))
        self._sinks.open(keep_until=limit)
        return True

    def _previous_session(self) -> dict[str, Any] | None:
        try:
            return json.loads(self._session_path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            return {}  # unreadable: treat as crashed with nothing committed by it

    def _session(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "metrics_offset": self._sinks.size,
        }

    # ------------------------------------------------------------------ trajectories

    def store(self, name: str) -> TrajectoryStore:
        """The crash-safe trajectory store ``trajectories/<name>.jsonl`` (one per name)."""
        self._check_open()
        _check_name("store", name)
        if name not in self._stores:
            path = self.path / "trajectories" / f"{name}.jsonl"
            self._stores[name] = TrajectoryStore(path, readonly=self.readonly)
        return self._stores[name]

    # ------------------------------------------------------------------ phase ledger

    def done(self, phase: str, iteration: int) -> bool:
        """Whether ``phase`` of ``iteration`` was marked done (in this or an earlier session)."""
        return (phase, iteration) in self._ledger

    def result(self, phase: str, iteration: int) -> dict[str, Any] | None:
        """The result stored by :meth:`mark_done`, or None if the phase is not done."""
        record = self._ledger.get((phase, iteration))
        return None if record is None else copy.deepcopy(record["result"])

    def last_iteration(self, phase: str) -> int | None:
        """The highest iteration of ``phase`` marked done, or None."""
        return max((i for p, i in self._ledger if p == phase), default=None)

    def ledger(self) -> list[dict[str, Any]]:
        """Every completed phase, in completion order."""
        return [copy.deepcopy(record) for record in self._ledger.values()]

    def mark_done(
        self, phase: str, iteration: int, result: Mapping[str, Any] | None = None
    ) -> None:
        """Commit: record that ``phase`` of ``iteration`` finished, with a JSON-safe result.

        Metrics logged so far are made durable first, so they survive any later crash.
        Marking a phase that is already done does nothing.
        """
        self._check_writable()
        if not isinstance(phase, str) or not phase:
            raise ValueError(f"phase must be a non-empty string, got {phase!r}")
        if isinstance(iteration, bool) or not isinstance(iteration, int):
            raise TypeError(f"iteration must be an int, got {iteration!r}")
        if (phase, iteration) in self._ledger:
            return
        try:
            stored = json.loads(json.dumps(dict(result or {})))  # as a reload will see it
        except (TypeError, ValueError) as error:
            raise TypeError(f"result of {phase}/{iteration} is not JSON-safe: {error}") from None
        self._sinks.commit()
        record = {
            "phase": phase,
            "iteration": iteration,
            "result": stored,
            "time": time.time(),
            "metrics_offset": self._sinks.size,
        }
        assert self._ledger_file is not None
        self._ledger_file.append((json.dumps(record, ensure_ascii=False) + "\n").encode())
        self._ledger[(phase, iteration)] = record

    # ------------------------------------------------------------------ metrics

    def log(self, metrics: Mapping[str, Any], *, step: int) -> None:
        """Append namespaced scalars (``"train/loss"``) at ``step`` to every sink.

        Each namespace may use its own step axis (optimizer steps for ``train/``,
        iterations for ``eval/``). A value equal to the one already logged for that metric
        and step is skipped (a resumed recipe recomputing it adds no duplicate).
        """
        self._check_writable()
        self._sinks.log(metrics, step)

    def metrics(self) -> list[dict[str, Any]]:
        """Every record of ``metrics.jsonl`` (a torn final line is left out)."""
        return self._sinks.records()

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(
        self,
        name: str,
        model: Any,
        tokenizer: Any = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        trainer_state: Mapping[str, Any] | None = None,
    ) -> Path:
        """Save a Hugging Face checkpoint to ``checkpoints/<name>`` atomically; its path.

        PEFT (LoRA) models are saved merged (``merge_and_unload`` on a copy) so inference
        engines load them as plain models, with the adapters alone in ``adapter/`` for
        resuming. ``trainer_state`` (optimizer, schedule, counters: anything ``torch.save``
        takes) is saved in the same atomic publish, so weights and optimizer never disagree
        after a crash. An existing checkpoint of that name is replaced.
        """
        self._check_writable()
        _check_name("checkpoint", name)
        return checkpoints.save_checkpoint(
            self._checkpoints,
            name,
            model,
            tokenizer,
            metadata=metadata,
            trainer_state=trainer_state,
        )

    def checkpoint(self, name: str) -> Path | None:
        """The path of checkpoint ``name`` if it is complete, else None."""
        _check_name("checkpoint", name)
        return checkpoints.find_checkpoint(self._checkpoints, name)

    def trainer_state(self, name: str) -> dict[str, Any] | None:
        """The ``trainer_state`` saved with checkpoint ``name`` (None if it has none)."""
        _check_name("checkpoint", name)
        return checkpoints.load_trainer_state(self._checkpoints, name)

    def remove_checkpoint(self, name: str) -> None:
        """Delete checkpoint ``name`` (its marker first, so a crash leaves no half checkpoint)."""
        self._check_writable()
        _check_name("checkpoint", name)
        checkpoints.remove_checkpoint(self._checkpoints, name)

    def latest_checkpoint(self, prefix: str = "") -> Path | None:
        """The most recently saved complete checkpoint whose name starts with ``prefix``."""
        return checkpoints.latest_checkpoint(self._checkpoints, prefix)

    # ------------------------------------------------------------------ reports

    def plot(self) -> list[Path]:
        """Draw one PNG learning curve per logged metric into ``plots/``; their paths.

        A metric ``ns/x_rate`` (or ``ns/mean_x``, ``ns/x``) is drawn with a 95% band when
        ``ns/x_ci_low`` and ``ns/x_ci_high`` are logged too; long series get a smoothed line.
        """
        self._check_open()
        return plot_metrics(self.path / "plots", self.metrics())

    def write_summary(self, rows: Sequence[Mapping[str, Any]]) -> Path:
        """Write ``summary.md`` (a results table) and ``summary.json``; the markdown path.

        Each row is one evaluated stage/iteration: ``stage``, ``iteration`` and the fields
        of :func:`agentgym.evaluation.summarize` (``success_rate``, ``success_ci95``,
        ``mean_reward``, ``reward_ci95``, ``episodes``); CIs may instead be given as
        ``success_ci_low``/``_high`` and ``reward_ci_low``/``_high``.
        """
        self._check_writable()
        required = ("success_rate", "mean_reward", "episodes")
        problems = [
            f"row {i} lacks {[key for key in required if key not in row]}"
            for i, row in enumerate(rows)
            if any(key not in row for key in required)
        ]
        if problems:
            raise ValueError(
                "write_summary: " + "; ".join(problems) + " (each row needs "
                f"{', '.join(required)}; agentgym.evaluation.summarize() returns them)"
            )
        plain = json.loads(json.dumps([dict(row) for row in rows]))
        write_json_atomic(self.path / "summary.json", {"run_dir": str(self.path), "rows": plain})
        text = "\n".join(
            [
                f"# Results: {self.path.name}",
                "",
                *summary_table(rows),
                "",
                "Success rate: Wilson 95% interval; mean reward: normal-approximation 95% "
                "interval.",
                "",
            ]
        )
        path = self.path / "summary.md"
        write_atomic(path, text)
        return path

    # ------------------------------------------------------------------ lifecycle

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"run directory {self.path} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.readonly:
            raise PermissionError(f"run directory {self.path} was opened readonly")

    def close(self, *, interrupted: bool = False) -> None:
        """Release the directory; safe to call twice.

        Args:
            interrupted: The run is stopping inside unfinished work (an exception, Ctrl-C):
                metrics logged after the last :meth:`mark_done` are then rolled back when
                the run resumes, as after a crash. Otherwise everything logged is kept.
        """
        self._close(clean=not interrupted)

    def _close(self, *, clean: bool) -> None:
        if self._closed:
            return
        self._closed = True
        for store in self._stores.values():
            store.close()
        self._sinks.close(clean=clean)  # made durable before the session ends
        if not self.readonly and clean:
            # Still under the lock: a next writer's session.json is never the one removed.
            self._session_path.unlink(missing_ok=True)
            fsync_directory(self.path)
        self._release(clean=clean)

    def _release(self, *, clean: bool) -> None:
        self._closed = True
        self._sinks.close(clean=clean)
        if self._ledger_file is not None:
            self._ledger_file.close()
            self._ledger_file = None
        self._lock.release()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        # Leaving on an exception keeps session.json: the resume treats it like a crash and
        # rolls back metrics of the unfinished phase, which will run again.
        self._close(clean=exc_type is None)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("readonly" if self.readonly else "writable")
        return f"RunDir({str(self.path)!r}, {len(self._ledger)} phases done, {state})"


def completed_phases(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The ledger of a run directory, read without taking it: every completed phase.

    For scripts that report on runs (the learning studies); a run still being written is
    read up to its last commit, a torn final entry left out. A directory that does not exist
    yet has no completed phases.

    >>> completed_phases("runs/never-started")
    []
    """
    if not Path(path).is_dir():
        return []
    with RunDir(path, readonly=True, tensorboard=False) as run:
        return run.ledger()
