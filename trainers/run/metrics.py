"""Metric sinks of a run directory: ``metrics.jsonl`` (the record), TensorBoard, wandb.

``metrics.jsonl`` is append-only (:class:`agentgym.core.durable.AppendOnlyFile`); each
line is ``{"step", "time", "<namespace>/<name>": value, ...}``. TensorBoard mirrors it and
is rebuilt from it after a crash; wandb is optional and only warns when it fails.

>>> metric_values({"train/loss": 0.5, "eval/success": True})
{'train/loss': 0.5, 'eval/success': 1.0}
>>> metric_values({"loss": 0.5})  # doctest: +ELLIPSIS
Traceback (most recent call last):
ValueError: metric name 'loss' has no namespace; use e.g. 'train/loss' (namespaces: ...)
"""

from __future__ import annotations

import json
import logging
import operator
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentgym.core.durable import AppendOnlyFile, JsonlScan, scan_jsonl, write_json_atomic
from agentgym.trainers.run.config import MISSING, same_value
from agentgym.trainers.run.reports import record_values

__all__ = ["MetricSinks", "metric_values", "read_records", "step_number"]

logger = logging.getLogger(__name__)


def metric_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Namespaced metrics as floats; a name without a namespace or a non-number raises."""
    values: dict[str, float] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or "/" not in name.strip("/"):
            raise ValueError(
                f"metric name {name!r} has no namespace; use e.g. 'train/{name}' "
                f"(namespaces: train/, eval/, rollout/)"
            )
        if hasattr(value, "item") and not isinstance(value, bool | int | float):
            value = value.item()  # numpy scalars, one-element tensors
        if not isinstance(value, bool | int | float):
            raise TypeError(f"metric {name!r}={value!r} is not a number")
        values[name] = float(value)
    return values


def step_number(step: Any) -> int:
    """``step`` as an int >= 0 (ints, numpy integers, integer tensors), else ValueError."""
    try:
        number = operator.index(step)
    except TypeError:
        number = -1
    if isinstance(step, bool) or number < 0:
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    return number


def read_records(path: Path) -> JsonlScan[dict]:
    """Scan a run's JSONL file; a torn final line is left out, earlier damage raises."""
    scan = scan_jsonl(path)
    if scan.invalid_lines:
        raise ValueError(
            f"{path}:{scan.invalid_lines[0]}: corrupt record (not a JSON object); the file "
            "is append-only, so this is damage from outside: restore or remove that line"
        )
    return scan


class MetricSinks:
    """Where :meth:`RunDir.log <agentgym.trainers.run.RunDir.log>` sends scalars.

    Args:
        directory: The run directory.
        tensorboard: Also write TensorBoard events to ``tb/``.
        wandb: Also log to Weights & Biases (``WANDB_MODE=offline`` unless set).
        wandb_project: The wandb project.
        wandb_config: The config shown in wandb.
    """

    def __init__(
        self,
        directory: Path,
        *,
        tensorboard: bool,
        wandb: bool,
        wandb_project: str,
        wandb_config: Any,
    ) -> None:
        self.directory = directory
        self.path = directory / "metrics.jsonl"
        self.rolled_back_path = directory / "metrics.rolled_back.jsonl"
        self._file: AppendOnlyFile | None = None
        self._logged: dict[tuple[str, int], float] = {}
        self._use_tensorboard = tensorboard
        self._tb_writer: Any = None
        self._use_wandb = wandb
        self._wandb_project = wandb_project
        self._wandb_config = wandb_config
        self._wandb_run: Any = None
        self._wandb_failed = False
        self._wandb_axes: set[str] = set()

    @property
    def size(self) -> int:
        """The committed-or-not length of ``metrics.jsonl`` in bytes (0 before opening)."""
        return 0 if self._file is None else self._file.size

    def open(self, keep_until: int | None) -> None:
        """Open for appending; with ``keep_until``, roll back records ending after it.

        ``keep_until`` is the offset the last commit covered when the previous writer
        crashed (None when it closed cleanly): records past it belong to work that runs
        again, so they move to ``metrics.rolled_back.jsonl``, as does a torn final line.
        """
        scan = read_records(self.path)
        kept = scan.records
        if keep_until is not None:
            kept = [(n, end, record) for n, end, record in scan.records if end <= keep_until]
            if len(kept) < len(scan.records):
                logger.warning(
                    "%s: the previous run stopped during unfinished work; its %d metric "
                    "record(s) logged after the last completed phase were moved to %s",
                    self.path,
                    len(scan.records) - len(kept),
                    self.rolled_back_path,
                )
        committed = kept[-1][1] if kept else 0
        self._file = AppendOnlyFile(self.path, size=committed)
        if committed < scan.size:
            self._file.repair(committed, self.rolled_back_path)
        for _, _, record in kept:
            for name, value in record_values(record):
                self._logged[(name, int(record["step"]))] = value

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Append the scalars at ``step`` to every sink, skipping values already logged."""
        step = step_number(step)
        values = {
            name: value
            for name, value in metric_values(metrics).items()
            if not same_value(self._logged.get((name, step), MISSING), value)
        }
        if not values:
            return
        record = {"step": step, "time": round(time.time(), 3), **values}
        assert self._file is not None, "MetricSinks.open() was not called"
        self._file.append((json.dumps(record, ensure_ascii=False) + "\n").encode(), fsync=False)
        self._logged.update({(name, step): value for name, value in values.items()})
        if self._use_tensorboard:
            writer = self._tensorboard()
            for name, value in values.items():
                writer.add_scalar(name, value, step, walltime=record["time"])
        self._log_wandb(values, step)

    def records(self) -> list[dict[str, Any]]:
        """Every record of ``metrics.jsonl`` (a torn final line is left out)."""
        return [record for _, _, record in read_records(self.path).records]

    def commit(self) -> None:
        """Make everything logged so far durable."""
        if self._file is not None:
            self._file.fsync()
        if self._tb_writer is not None:
            self._tb_writer.flush()

    def rebuild_tensorboard(self) -> None:
        """Make ``tb/`` mirror the committed metrics (the crashed writer's events may not)."""
        shutil.rmtree(self.directory / "tb", ignore_errors=True)
        writer = self._tensorboard()
        for record in self.records():
            for name, value in record_values(record):
                writer.add_scalar(name, value, record["step"], walltime=record.get("time"))
        writer.flush()

    def close(self, *, clean: bool) -> None:
        """Close every sink (``clean=False``: the run stopped inside unfinished work)."""
        if self._tb_writer is not None:
            self._tb_writer.close()
            self._tb_writer = None
        if self._wandb_run is not None:
            try:
                self._wandb_run.finish(exit_code=0 if clean else 1)
            except Exception:  # a failing wandb must not lose the run's own files
                logger.warning("wandb.finish failed", exc_info=True)
            self._wandb_run = None
        if self._file is not None:
            if clean:
                self._file.fsync()
            self._file.close()
            self._file = None

    def _tensorboard(self) -> Any:
        if self._tb_writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb_writer = SummaryWriter(str(self.directory / "tb"))
        return self._tb_writer

    def _log_wandb(self, values: Mapping[str, float], step: int) -> None:
        run = self._wandb()
        if run is None:
            return
        # wandb drops steps lower than ones already logged, so each namespace gets its own
        # step axis ("train/step", "eval/step") instead of the global one.
        payload = dict(values)
        for namespace in sorted({name.split("/")[0] for name in values}):
            if namespace not in self._wandb_axes:
                run.define_metric(f"{namespace}/step")
                run.define_metric(f"{namespace}/*", step_metric=f"{namespace}/step")
                self._wandb_axes.add(namespace)
            payload[f"{namespace}/step"] = step
        run.log(payload)

    def _wandb(self) -> Any:
        if not self._use_wandb or self._wandb_failed:
            return None
        if self._wandb_run is None:
            os.environ.setdefault("WANDB_MODE", "offline")
            try:
                import wandb

                self._wandb_run = wandb.init(
                    project=self._wandb_project,
                    id=self._wandb_id(),
                    resume="allow",
                    name=self.directory.name,
                    dir=str(self.directory),
                    config=self._wandb_config,
                )
            except Exception as error:
                self._wandb_failed = True
                hint = " (pip install wandb)" if isinstance(error, ImportError) else ""
                warnings.warn(
                    f"wandb logging is off for this run: {error}{hint}; metrics still go to "
                    f"{self.path} and TensorBoard",
                    RuntimeWarning,
                    stacklevel=4,
                )
                return None
        return self._wandb_run

    def _wandb_id(self) -> str:
        """The wandb run id, kept in the run directory so a resume continues the same run."""
        path = self.directory / "wandb.json"
        if path.exists():
            return str(json.loads(path.read_text())["id"])
        run_id = uuid.uuid4().hex[:12]
        write_json_atomic(path, {"id": run_id})
        return run_id
