"""Checkpoints of a run directory: complete Hugging Face folders, published atomically.

A checkpoint is written into a hidden staging folder, fsynced, and renamed into place
(:func:`agentgym.core.durable.staged_directory`); :data:`CHECKPOINT_MARKER` is written
last, so a folder without it is not a checkpoint. :func:`clean_leftovers` runs when a
writer opens the run: it removes half-written folders and restores a checkpoint whose
replacement a crash interrupted.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> class Model:
...     def save_pretrained(self, directory):
...         (Path(directory) / "config.json").write_text("{}")
>>> path = save_checkpoint(folder, "iter-1", Model())
>>> find_checkpoint(folder, "iter-1") == path, latest_checkpoint(folder, "iter") == path
(True, True)
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentgym.core.durable import fsync_directory, staged_directory

__all__ = [
    "ADAPTER_FOLDER",
    "CHECKPOINT_MARKER",
    "TRAINER_STATE_FILE",
    "clean_leftovers",
    "find_checkpoint",
    "latest_checkpoint",
    "load_trainer_state",
    "remove_checkpoint",
    "save_checkpoint",
]

#: File written last into a checkpoint folder: a folder without it is not a checkpoint.
CHECKPOINT_MARKER = "agentgym_checkpoint.json"
#: Sub-folder of a LoRA run's checkpoint holding the adapters alone (peft format).
ADAPTER_FOLDER = "adapter"
#: Optimizer, schedule and counters saved with a checkpoint (torch.save format).
TRAINER_STATE_FILE = "trainer_state.pt"

_OLD_CHECKPOINT = re.compile(r"^\.old-(.+)-[0-9a-f]{8}$")


def save_checkpoint(
    folder: Path,
    name: str,
    model: Any,
    tokenizer: Any = None,
    *,
    metadata: Mapping[str, Any] | None = None,
    trainer_state: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``model`` (and ``tokenizer``, ``trainer_state``) to ``folder/name`` atomically.

    PEFT (LoRA) models are saved merged (``merge_and_unload`` on a copy) so inference
    engines load them as plain models, with the adapters alone in ``adapter/`` for resuming.
    An existing checkpoint of that name is replaced. Returns the checkpoint's path.
    """
    folder.mkdir(exist_ok=True)
    final = folder / name
    with staged_directory(final) as staging:
        to_save, merged = _unwrap_for_saving(model)
        to_save.save_pretrained(staging)
        if merged:  # the adapters too, so that a resumed run continues training them
            getattr(model, "_orig_mod", model).save_pretrained(staging / ADAPTER_FOLDER)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        if trainer_state is not None:
            import torch

            torch.save(dict(trainer_state), staging / TRAINER_STATE_FILE)
        marker = {
            "name": name,
            "time": time.time(),
            "merged_peft": merged,
            "metadata": json.loads(json.dumps(dict(metadata or {}))),
        }
        (staging / CHECKPOINT_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return final


def _unwrap_for_saving(model: Any) -> tuple[Any, bool]:
    """The model to save, and whether it is a merged copy of a PEFT (LoRA) model."""
    model = getattr(model, "_orig_mod", model)  # torch.compile wrapper
    if hasattr(model, "merge_and_unload") and hasattr(model, "peft_config"):
        # Merge on a copy: merging in place would change the weights being trained.
        return copy.deepcopy(model).merge_and_unload(), True
    return model, False


def find_checkpoint(folder: Path, name: str) -> Path | None:
    """The path of checkpoint ``name`` if it is complete, else None."""
    path = folder / name
    return path if (path / CHECKPOINT_MARKER).is_file() else None


def load_trainer_state(folder: Path, name: str) -> dict[str, Any] | None:
    """The ``trainer_state`` saved with checkpoint ``name`` (None if it has none)."""
    path = find_checkpoint(folder, name)
    if path is None or not (path / TRAINER_STATE_FILE).is_file():
        return None
    import torch

    return torch.load(path / TRAINER_STATE_FILE, map_location="cpu", weights_only=False)


def remove_checkpoint(folder: Path, name: str) -> None:
    """Delete checkpoint ``name`` (its marker first, so a crash leaves no half checkpoint)."""
    path = find_checkpoint(folder, name)
    if path is None:
        return
    (path / CHECKPOINT_MARKER).unlink()
    fsync_directory(path)
    shutil.rmtree(path, ignore_errors=True)


def latest_checkpoint(folder: Path, prefix: str = "") -> Path | None:
    """The most recently saved complete checkpoint whose name starts with ``prefix``."""
    if not folder.is_dir():
        return None
    candidates = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") or not entry.name.startswith(prefix):
            continue
        saved = _marker_time(entry)
        if saved is not None:
            candidates.append((saved, _natural_key(entry.name), entry))
    return max(candidates)[2] if candidates else None


def clean_leftovers(folder: Path) -> None:
    """Remove half-written checkpoints; restore one whose replacement was interrupted."""
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".tmp-"):
            shutil.rmtree(entry, ignore_errors=True)
        elif match := _OLD_CHECKPOINT.match(entry.name):
            final = folder / match.group(1)
            if final.exists():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.rename(final)


def _marker_time(directory: Path) -> float | None:
    try:
        return float(json.loads((directory / CHECKPOINT_MARKER).read_text())["time"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _natural_key(name: str) -> list[Any]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)]
