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

Modules: :mod:`.directory` (:class:`RunDir`: lock, session, ledger), :mod:`.metrics`
(``metrics.jsonl``, TensorBoard, wandb), :mod:`.checkpoints`, :mod:`.reports` (plots, the
summary table), :mod:`.config` (the stored config and the resume check). The file
primitives they share are in :mod:`agentgym.core.durable`.

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

from agentgym.trainers.run.checkpoints import (
    ADAPTER_FOLDER,
    CHECKPOINT_MARKER,
    TRAINER_STATE_FILE,
)
from agentgym.trainers.run.config import RESUMABLE_KEYS, ConfigMismatchError
from agentgym.trainers.run.directory import RunDir, RunDirBusyError, completed_phases

__all__ = [
    "ADAPTER_FOLDER",
    "CHECKPOINT_MARKER",
    "RESUMABLE_KEYS",
    "TRAINER_STATE_FILE",
    "ConfigMismatchError",
    "RunDir",
    "RunDirBusyError",
    "completed_phases",
]
