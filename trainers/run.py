"""The run directory: everything a training run writes, crash-safe and resumable.

A run killed with ``kill -9`` at any point and started again with the same directory
continues from the last completed phase, losing and duplicating nothing. Layout::

    config.yaml              the resolved config, written once; a resume must match it
    ledger.jsonl             completed phases (append-only, fsynced): the resume points
    metrics.jsonl            one {"step", "time", "<namespace>/<name>": value, ...} per log()
    tb/                      TensorBoard event files (same scalars)
    trajectories/<name>.jsonl    crash-safe trajectory stores
    checkpoints/<name>/      complete Hugging Face checkpoints only (transformers/vLLM load them)
    plots/<metric>.png       learning curves, regenerated from metrics.jsonl
    summary.md, summary.json     the final results table
    session.json             present while a writer has the directory open (or crashed)

The resume contract, which a trainer loop relies on:

* :meth:`RunDir.mark_done` is the commit point. Work whose phase is marked done is never
  redone; work after the last mark is redone on resume.
* Metrics logged after the last commit belong to work that will be redone, so when the
  previous writer did not close cleanly they are moved to ``metrics.rolled_back.jsonl``
  on re-open, and ``tb/`` is rebuilt from the records kept: the redone work logs them
  again, once. :meth:`RunDir.close` (or leaving the ``with`` block without an exception)
  keeps everything logged; ``close(interrupted=True)`` (or leaving the block on an
  exception) is treated like a crash.
* Logging a value already recorded for the same metric and step does nothing, so code
  that recomputes a metric from stored trajectories on every resume adds no duplicates.
* Checkpoints are written to a hidden temporary folder and renamed into place, so a name
  under ``checkpoints/`` is always a complete checkpoint.
* Only one process writes a run directory at a time (a lock); readers open it with
  ``readonly=True``.

Example (a loop that resumes where it stopped):
    >>> import tempfile
    >>> path = tempfile.mkdtemp()
    >>> def train(run, iterations=3):
    ...     for iteration in range(iterations):
    ...         if run.done("train", iteration):
    ...             continue  # finished before a crash: skip it
    ...         loss = 1.0 / (iteration + 1)
    ...         run.log({"train/loss": loss}, step=iteration)
    ...         run.mark_done("train", iteration, {"loss": loss})
    >>> with RunDir(path, config={"lr": 1e-5, "progress": True}, tensorboard=False) as run:
    ...     train(run, iterations=2)
    >>> with RunDir(path, config={"lr": 1e-5, "progress": False}, tensorboard=False) as run:
    ...     train(run, iterations=3)  # resumed: only iteration 2 runs
    ...     run.last_iteration("train"), run.result("train", 1)
    ...     [record["train/loss"] for record in run.metrics()]
    (2, {'loss': 0.5})
    [1.0, 0.5, 0.3333333333333333]
    >>> try:  # a different config is refused, naming the differing keys
    ...     RunDir(path, config={"lr": 1e-4, "progress": True}, tensorboard=False)
    ... except ConfigMismatchError as error:
    ...     error.keys
    ['lr']
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import fcntl
import json
import logging
import math
import operator
import os
import re
import shutil
import socket
import time
import uuid
import warnings
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from agentgym.core.trajectory import TrajectoryStore

__all__ = [
    "CHECKPOINT_MARKER",
    "RESUMABLE_KEYS",
    "ConfigMismatchError",
    "RunDir",
    "RunDirBusyError",
]

logger = logging.getLogger(__name__)

#: Config keys that may differ when a run is resumed (they do not change its results). A
#: key matches when any component of its dotted path (``engine.progress``) is listed.
RESUMABLE_KEYS: frozenset[str] = frozenset(
    {"progress", "run_dir", "resume", "tensorboard", "wandb", "wandb_project"}
)

#: File written last into a checkpoint folder: a folder without it is not a checkpoint.
CHECKPOINT_MARKER = "agentgym_checkpoint.json"
#: Sub-folder of a LoRA run's checkpoint holding the adapters alone (peft format).
ADAPTER_FOLDER = "adapter"
#: Optimizer, schedule and counters saved with a checkpoint (torch.save format).
TRAINER_STATE_FILE = "trainer_state.pt"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
_OLD_CHECKPOINT = re.compile(r"^\.old-(.+)-[0-9a-f]{8}$")
_MISSING = object()


class ConfigMismatchError(ValueError):
    """Re-opening a run directory with a config that differs from the stored one."""

    def __init__(
        self, path: Path, differences: list[tuple[str, Any, Any]], resumable: Collection[str]
    ):
        self.keys = [key for key, _, _ in differences]
        lines = [
            f"run directory {path} was started with a different config "
            f"(differing keys: {', '.join(self.keys)}):"
        ]
        for key, stored, given in differences:
            lines.append(f"  - {key}: stored {_show(stored)}, given {_show(given)}")
        lines.append(
            f"Resume with the stored config ({path / 'config.yaml'}) or start a new run "
            f"directory. Keys that may change on resume: {', '.join(sorted(resumable))}."
        )
        super().__init__("\n".join(lines))


class RunDirBusyError(RuntimeError):
    """Another process is writing the run directory."""


def _show(value: Any) -> str:
    return "<missing>" if value is _MISSING else repr(value)


# --------------------------------------------------------------------------- file helpers


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` through a fsynced temporary sibling and ``os.replace``."""
    temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _write_json(path: Path, data: Any) -> None:
    _write_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())


def _write_all(fd: int, payload: bytes) -> None:
    """One ``os.write`` (finished if short), so a crash tears at most the final line."""
    written = os.write(fd, payload)
    while written < len(payload):
        written += os.write(fd, payload[written:])


def _read_jsonl(path: Path) -> tuple[list[tuple[int, dict]], int]:
    """Complete records as ``(end offset, record)`` pairs, and the file size.

    A final line that is unterminated or not valid JSON is a torn write (a crash during
    append) and is left out; an invalid line before the end is corruption and raises.
    """
    data = path.read_bytes() if path.exists() else b""
    records: list[tuple[int, dict]] = []
    offset = 0
    lines = data.split(b"\n")[:-1]  # the piece after the last newline is unterminated
    for number, line in enumerate(lines, start=1):
        offset += len(line) + 1
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: corrupt record {line[:80]!r}")
        records.append((offset, record))
    return records, len(data)


def _move_tail(fd: int, path: Path, keep: int, side: Path) -> int:
    """Move the bytes of ``path`` after offset ``keep`` to the end of ``side``; their size."""
    with open(path, "rb") as file:
        file.seek(keep)
        tail = file.read()
    if not tail:
        return 0
    if not tail.endswith(b"\n"):
        tail += b"\n"
    # Save first, truncate second: a crash in between only duplicates the salvage.
    with open(side, "ab") as file:
        file.write(tail)
        file.flush()
        os.fsync(file.fileno())
    os.ftruncate(fd, keep)
    os.fsync(fd)
    return len(tail)


def _fsync_tree(root: Path) -> None:
    for directory, _, files in os.walk(root):
        for name in files:
            with open(Path(directory) / name, "rb") as file:
                os.fsync(file.fileno())
        _fsync_dir(Path(directory))


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"invalid {kind} name {name!r}: use letters, digits and '._+=-', starting with a "
            f"letter or digit (e.g. 'iter-0003')"
        )


# --------------------------------------------------------------------------- config helpers


def _plain(value: Any, where: str = "config") -> Any:
    """A YAML/JSON-safe copy of a config (OmegaConf and dataclasses resolved)."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value, resolve=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(
        f"{where}={value!r}: config values must be mappings, lists, strings, numbers, "
        f"booleans or None, not {type(value).__name__}"
    )


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _is_resumable(key: str, resumable: Collection[str]) -> bool:
    parts = key.split(".")
    prefixes = (".".join(parts[: i + 1]) for i in range(len(parts)))
    return any(part in resumable for part in parts) or any(p in resumable for p in prefixes)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _config_differences(
    stored: Mapping[str, Any], given: Mapping[str, Any], resumable: Collection[str]
) -> list[tuple[str, Any, Any]]:
    old, new = _flatten(stored), _flatten(given)
    return [
        (key, old.get(key, _MISSING), new.get(key, _MISSING))
        for key in sorted(set(old) | set(new))
        if not _is_resumable(key, resumable)
        and not _same(old.get(key, _MISSING), new.get(key, _MISSING))
    ]


# --------------------------------------------------------------------------- metric helpers


def _metric_values(metrics: Mapping[str, Any]) -> dict[str, float]:
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


def _step_number(step: Any) -> int:
    try:
        number = operator.index(step)  # ints, numpy integers, integer tensors
    except TypeError:
        number = -1
    if isinstance(step, bool) or number < 0:
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    return number


def _record_values(record: Mapping[str, Any]) -> list[tuple[str, float]]:
    return [
        (name, float(value))
        for name, value in record.items()
        if name not in ("step", "time") and isinstance(value, int | float)
    ]


def _series(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, float]]:
    """Metric name -> {step: value}; a step logged twice keeps its last value."""
    series: dict[str, dict[int, float]] = {}
    for record in records:
        for name, value in _record_values(record):
            series.setdefault(name, {})[int(record["step"])] = value
    return series


def _band(name: str, names: Collection[str]) -> tuple[str, str] | None:
    """The names of ``name``'s confidence-interval bounds, if logged.

    ``eval/success_rate`` -> ``eval/success_ci_low``/``_high``; ``eval/mean_reward`` ->
    ``eval/reward_ci_low``/``_high``; any ``x`` -> ``x_ci_low``/``x_ci_high``.
    """
    namespace, _, leaf = name.rpartition("/")
    stems = [leaf, leaf.removesuffix("_rate"), leaf.removeprefix("mean_")]
    for stem in stems:
        low, high = f"{namespace}/{stem}_ci_low", f"{namespace}/{stem}_ci_high"
        if low in names and high in names:
            return low, high
    return None


def _is_band(name: str) -> bool:
    return name.endswith(("_ci_low", "_ci_high"))


def _smooth(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """TensorBoard-style debiased exponential moving average."""
    smoothed, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        smoothed.append(average / (1 - weight**i))
    return smoothed


def _plot_family(
    path: Path, name: str, series: Mapping[str, Mapping[int, float]], band: tuple[str, str] | None
) -> None:
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

    points = sorted(series[name].items())
    steps, values = [s for s, _ in points], [v for _, v in points]
    leaf = name.rpartition("/")[2]
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    axes = figure.add_subplot()
    if band is not None:
        low, high = series[band[0]], series[band[1]]
        band_steps = [s for s in steps if s in low and s in high]
        axes.fill_between(
            band_steps, [low[s] for s in band_steps], [high[s] for s in band_steps],
            alpha=0.25, label="95% CI",
        )  # fmt: skip
    if len(values) > 50:
        axes.plot(steps, values, alpha=0.3, label=leaf)
        axes.plot(steps, _smooth(values), label=f"{leaf} (smoothed)")
    else:
        axes.plot(steps, values, marker="o", markersize=3, label=leaf)
    if leaf.endswith("_rate") and all(0.0 <= v <= 1.0 for v in values):
        axes.set_ylim(-0.02, 1.02)
    axes.set_title(name)
    axes.set_xlabel("step")
    axes.set_ylabel(leaf)
    axes.grid(alpha=0.3)
    axes.legend()
    temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        figure.savefig(temporary, format="png", dpi=100)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# --------------------------------------------------------------------------- summary helpers


def _interval(row: Mapping[str, Any], pair_key: str, stem: str) -> tuple[float, float] | None:
    if row.get(pair_key) is not None:
        low, high = row[pair_key]
        return float(low), float(high)
    if f"{stem}_ci_low" in row and f"{stem}_ci_high" in row:
        return float(row[f"{stem}_ci_low"]), float(row[f"{stem}_ci_high"])
    return None


def _cell(value: float, interval: tuple[float, float] | None) -> str:
    text = f"{float(value):.3f}"
    return text if interval is None else f"{text} [{interval[0]:.3f}, {interval[1]:.3f}]"


def _summary_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| Stage | Iteration | Success rate [95% CI] | Mean reward [95% CI] | Episodes |",
        "|---|---:|---|---|---:|",
    ]
    for row in rows:
        stage = row.get("stage", row.get("name", ""))
        iteration = "" if row.get("iteration") is None else row["iteration"]
        success = _cell(row["success_rate"], _interval(row, "success_ci95", "success"))
        reward = _cell(row["mean_reward"], _interval(row, "reward_ci95", "reward"))
        lines.append(f"| {stage} | {iteration} | {success} | {reward} | {row['episodes']} |")
    return lines


# --------------------------------------------------------------------------- checkpoints


def _unwrap_for_saving(model: Any) -> tuple[Any, bool]:
    """The model to save, and whether it is a merged copy of a PEFT (LoRA) model."""
    model = getattr(model, "_orig_mod", model)  # torch.compile wrapper
    if hasattr(model, "merge_and_unload") and hasattr(model, "peft_config"):
        # Merge on a copy: merging in place would change the weights being trained.
        return copy.deepcopy(model).merge_and_unload(), True
    return model, False


def _marker_time(directory: Path) -> float | None:
    try:
        return float(json.loads((directory / CHECKPOINT_MARKER).read_text())["time"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _natural_key(name: str) -> list[Any]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)]


# --------------------------------------------------------------------------- the run directory


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
        self._given_config = None if config is None else _plain(config)
        if self._given_config is not None and not isinstance(self._given_config, dict):
            raise TypeError(f"config must be a mapping, got {type(config).__name__}")
        self._resumable = frozenset(resumable_keys)
        self._use_tensorboard = tensorboard
        self._use_wandb = wandb
        self._wandb_project = wandb_project
        self._stores: dict[str, TrajectoryStore] = {}
        self._ledger: dict[tuple[str, int], dict[str, Any]] = {}
        self._lock_fd: int | None = None
        self._ledger_fd: int | None = None
        self._metrics_fd: int | None = None
        self._metrics_size = 0
        self._logged: dict[tuple[str, int], float] = {}
        self._crashed = False
        self._tb_writer: Any = None
        self._wandb_run: Any = None
        self._wandb_failed = False
        self._wandb_axes: set[str] = set()
        self._closed = False
        if readonly:
            if not self.path.is_dir():
                raise FileNotFoundError(f"run directory {self.path} does not exist")
            self._check_config()
            self._read_ledger(repair=False)
            return
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._check_config()
            self._read_ledger(repair=True)
            self._open_metrics()
            self._clean_checkpoint_leftovers()
            if self._crashed and (tensorboard or (self.path / "tb").exists()):
                self._rebuild_tensorboard()
            # Written last: a crash before this point makes the next open repeat the repair.
            _write_json(self._session_path, self._session())
        except BaseException:
            if self._tb_writer is not None:
                self._tb_writer.close()
            self._release()
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
    def _metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def _checkpoints(self) -> Path:
        return self.path / "checkpoints"

    # ------------------------------------------------------------------ opening

    def _lock(self) -> None:
        self._lock_fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
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
            differences = _config_differences(stored, given, self._resumable)
            if differences:
                raise ConfigMismatchError(self.path, differences, self._resumable)
        elif not self.readonly:
            text = yaml.safe_dump(self._given_config, sort_keys=False, allow_unicode=True)
            _write_atomic(path, text.encode())

    def _read_ledger(self, *, repair: bool) -> None:
        if repair:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            self._ledger_fd = os.open(self._ledger_path, flags, 0o644)
        records, size = _read_jsonl(self._ledger_path)
        good_end = records[-1][0] if records else 0
        if repair and good_end < size:
            assert self._ledger_fd is not None
            _move_tail(self._ledger_fd, self._ledger_path, good_end, self.path / "ledger.torn")
            logger.warning("%s: removed a torn final ledger entry (crash)", self._ledger_path)
        for _, record in records:
            self._ledger[(record["phase"], int(record["iteration"]))] = record

    def _open_metrics(self) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        self._metrics_fd = os.open(self._metrics_path, flags, 0o644)
        records, size = _read_jsonl(self._metrics_path)
        kept = records
        previous = self._previous_session()
        if previous is not None:  # the last writer crashed: undo its uncommitted work
            self._crashed = True
            limit = max(
                int(previous.get("metrics_offset", 0)),
                max((int(r.get("metrics_offset", 0)) for r in self._ledger.values()), default=0),
            )
            kept = [(end, record) for end, record in records if end <= limit]
            if len(kept) < len(records):
                logger.warning(
                    "%s: the previous run stopped during unfinished work; its %d metric "
                    "record(s) logged after the last completed phase were moved to %s",
                    self._metrics_path,
                    len(records) - len(kept),
                    self.path / "metrics.rolled_back.jsonl",
                )
        committed = kept[-1][0] if kept else 0
        if committed < size:
            side = self.path / "metrics.rolled_back.jsonl"
            _move_tail(self._metrics_fd, self._metrics_path, committed, side)
        self._metrics_size = committed
        for _, record in kept:
            for name, value in _record_values(record):
                self._logged[(name, int(record["step"]))] = value

    def _rebuild_tensorboard(self) -> None:
        """Make ``tb/`` mirror the committed metrics (the crashed writer's events may not)."""
        shutil.rmtree(self.path / "tb", ignore_errors=True)
        writer = self._tensorboard()
        for record in self.metrics():
            for name, value in _record_values(record):
                writer.add_scalar(name, value, record["step"], walltime=record.get("time"))
        writer.flush()

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
            "metrics_offset": self._metrics_size,
        }

    def _clean_checkpoint_leftovers(self) -> None:
        """Remove half-written checkpoints; restore one whose replacement was interrupted."""
        if not self._checkpoints.is_dir():
            return
        for entry in sorted(self._checkpoints.iterdir()):
            if entry.name.startswith(".tmp-"):
                shutil.rmtree(entry, ignore_errors=True)
            elif match := _OLD_CHECKPOINT.match(entry.name):
                final = self._checkpoints / match.group(1)
                if final.exists():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    os.rename(entry, final)

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
        self._commit_metrics()
        record = {
            "phase": phase,
            "iteration": iteration,
            "result": stored,
            "time": time.time(),
            "metrics_offset": self._metrics_size,
        }
        assert self._ledger_fd is not None
        _write_all(self._ledger_fd, (json.dumps(record, ensure_ascii=False) + "\n").encode())
        os.fsync(self._ledger_fd)
        self._ledger[(phase, iteration)] = record

    def _commit_metrics(self) -> None:
        if self._metrics_fd is not None:
            os.fsync(self._metrics_fd)
        if self._tb_writer is not None:
            self._tb_writer.flush()

    # ------------------------------------------------------------------ metrics

    def log(self, metrics: Mapping[str, Any], *, step: int) -> None:
        """Append namespaced scalars (``"train/loss"``) at ``step`` to every sink.

        Each namespace may use its own step axis (optimizer steps for ``train/``,
        iterations for ``eval/``). A value equal to the one already logged for that metric
        and step is skipped (a resumed recipe recomputing it adds no duplicate).
        """
        self._check_writable()
        step = _step_number(step)
        values = {
            name: value
            for name, value in _metric_values(metrics).items()
            if not _same(self._logged.get((name, step), _MISSING), value)
        }
        if not values:
            return
        record = {"step": step, "time": round(time.time(), 3), **values}
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        assert self._metrics_fd is not None
        _write_all(self._metrics_fd, line)
        self._metrics_size += len(line)
        self._logged.update({(name, step): value for name, value in values.items()})
        if self._use_tensorboard:
            writer = self._tensorboard()
            for name, value in values.items():
                writer.add_scalar(name, value, step, walltime=record["time"])
        self._log_wandb(values, step)

    def metrics(self) -> list[dict[str, Any]]:
        """Every record of ``metrics.jsonl`` (a torn final line is left out)."""
        records, _ = _read_jsonl(self._metrics_path)
        return [record for _, record in records]

    def _tensorboard(self) -> Any:
        if self._tb_writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb_writer = SummaryWriter(str(self.path / "tb"))
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
                    name=self.path.name,
                    dir=str(self.path),
                    config=self._given_config,
                )
            except Exception as error:
                self._wandb_failed = True
                hint = " (pip install wandb)" if isinstance(error, ImportError) else ""
                warnings.warn(
                    f"wandb logging is off for this run: {error}{hint}; metrics still go to "
                    f"{self._metrics_path} and TensorBoard",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return None
        return self._wandb_run

    def _wandb_id(self) -> str:
        """The wandb run id, kept in the run directory so a resume continues the same run."""
        path = self.path / "wandb.json"
        if path.exists():
            return str(json.loads(path.read_text())["id"])
        run_id = uuid.uuid4().hex[:12]
        _write_json(path, {"id": run_id})
        return run_id

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
        self._checkpoints.mkdir(exist_ok=True)
        final = self._checkpoints / name
        temporary = self._checkpoints / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        try:
            to_save, merged = _unwrap_for_saving(model)
            to_save.save_pretrained(temporary)
            if merged:  # the adapters too, so that a resumed run continues training them
                getattr(model, "_orig_mod", model).save_pretrained(temporary / ADAPTER_FOLDER)
            if tokenizer is not None:
                tokenizer.save_pretrained(temporary)
            if trainer_state is not None:
                import torch

                torch.save(dict(trainer_state), temporary / TRAINER_STATE_FILE)
            marker = {
                "name": name,
                "time": time.time(),
                "merged_peft": merged,
                "metadata": json.loads(json.dumps(dict(metadata or {}))),
            }
            (temporary / CHECKPOINT_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            _fsync_tree(temporary)
            self._publish(temporary, final)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        return final

    def _publish(self, temporary: Path, final: Path) -> None:
        old = None
        if final.exists():  # a directory cannot be replaced in one rename: move it aside
            old = final.with_name(f".old-{final.name}-{uuid.uuid4().hex[:8]}")
            os.rename(final, old)
        os.rename(temporary, final)
        _fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def checkpoint(self, name: str) -> Path | None:
        """The path of checkpoint ``name`` if it is complete, else None."""
        _check_name("checkpoint", name)
        path = self._checkpoints / name
        return path if (path / CHECKPOINT_MARKER).is_file() else None

    def trainer_state(self, name: str) -> dict[str, Any] | None:
        """The ``trainer_state`` saved with checkpoint ``name`` (None if it has none)."""
        path = self.checkpoint(name)
        if path is None or not (path / TRAINER_STATE_FILE).is_file():
            return None
        import torch

        return torch.load(path / TRAINER_STATE_FILE, map_location="cpu", weights_only=False)

    def remove_checkpoint(self, name: str) -> None:
        """Delete checkpoint ``name`` (its marker first, so a crash leaves no half checkpoint)."""
        self._check_writable()
        path = self.checkpoint(name)
        if path is None:
            return
        (path / CHECKPOINT_MARKER).unlink()
        _fsync_dir(path)
        shutil.rmtree(path, ignore_errors=True)

    def latest_checkpoint(self, prefix: str = "") -> Path | None:
        """The most recently saved complete checkpoint whose name starts with ``prefix``."""
        if not self._checkpoints.is_dir():
            return None
        candidates = []
        for entry in self._checkpoints.iterdir():
            if entry.name.startswith(".") or not entry.name.startswith(prefix):
                continue
            saved = _marker_time(entry)
            if saved is not None:
                candidates.append((saved, _natural_key(entry.name), entry))
        return max(candidates)[2] if candidates else None

    # ------------------------------------------------------------------ reports

    def plot(self) -> list[Path]:
        """Draw one PNG learning curve per logged metric into ``plots/``; their paths.

        A metric ``ns/x_rate`` (or ``ns/mean_x``, ``ns/x``) is drawn with a 95% band when
        ``ns/x_ci_low`` and ``ns/x_ci_high`` are logged too; long series get a smoothed line.
        """
        self._check_open()
        series = _series(self.metrics())
        if not series:
            return []
        directory = self.path / "plots"
        directory.mkdir(exist_ok=True)
        paths = []
        for name in sorted(series):
            if _is_band(name):
                continue
            path = directory / (name.replace("/", "_") + ".png")
            _plot_family(path, name, series, _band(name, series))
            paths.append(path)
        return paths

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
        _write_json(self.path / "summary.json", {"run_dir": str(self.path), "rows": plain})
        text = "\n".join(
            [
                f"# Results: {self.path.name}",
                "",
                *_summary_table(rows),
                "",
                "Success rate: Wilson 95% interval; mean reward: normal-approximation 95% "
                "interval.",
                "",
            ]
        )
        path = self.path / "summary.md"
        _write_atomic(path, text.encode())
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
        if self._tb_writer is not None:
            self._tb_writer.close()
        if self._wandb_run is not None:
            with contextlib.suppress(Exception):
                self._wandb_run.finish(exit_code=0 if clean else 1)
        if not self.readonly and clean:
            self._commit_metrics()
            self._session_path.unlink(missing_ok=True)
            _fsync_dir(self.path)
        self._release()

    def _release(self) -> None:
        for fd in (self._metrics_fd, self._ledger_fd, self._lock_fd):
            if fd is not None:
                os.close(fd)  # closing the lock's descriptor releases the flock
        self._metrics_fd = self._ledger_fd = self._lock_fd = None
        self._closed = True

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        # Leaving on an exception keeps session.json: the resume treats it like a crash and
        # rolls back metrics of the unfinished phase, which will run again.
        self._close(clean=exc_type is None)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("readonly" if self.readonly else "writable")
        return f"RunDir({str(self.path)!r}, {len(self._ledger)} phases done, {state})"
