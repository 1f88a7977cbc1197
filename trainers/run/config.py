"""The stored config of a run directory and the check that a resume uses the same one.

>>> config_differences({"lr": 1e-5, "progress": True}, {"lr": 1e-4, "progress": False},
...                    RESUMABLE_KEYS)
[('lr', 1e-05, 0.0001)]
>>> plain_config({"steps": 3, "out": Path("/tmp/x")})
{'steps': 3, 'out': '/tmp/x'}
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

__all__ = ["RESUMABLE_KEYS", "ConfigMismatchError", "config_differences", "plain_config"]

#: Config keys that may differ when a run is resumed (they do not change its results). A
#: key matches when any component of its dotted path (``engine.progress``) is listed.
RESUMABLE_KEYS: frozenset[str] = frozenset(
    {"progress", "run_dir", "resume", "tensorboard", "wandb", "wandb_project"}
)

MISSING = object()


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


def _show(value: Any) -> str:
    return "<missing>" if value is MISSING else repr(value)


def plain_config(value: Any, where: str = "config") -> Any:
    """A YAML/JSON-safe copy of a config (OmegaConf and dataclasses resolved)."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value, resolve=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(key): plain_config(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_config(item, f"{where}[{i}]") for i, item in enumerate(value)]
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


def same_value(a: Any, b: Any) -> bool:
    """Equal as stored values: NaN equals NaN, ``True`` differs from ``1``."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def config_differences(
    stored: Mapping[str, Any], given: Mapping[str, Any], resumable: Collection[str]
) -> list[tuple[str, Any, Any]]:
    """``(dotted key, stored, given)`` for every non-resumable key whose values differ."""
    old, new = _flatten(stored), _flatten(given)
    return [
        (key, old.get(key, MISSING), new.get(key, MISSING))
        for key in sorted(set(old) | set(new))
        if not _is_resumable(key, resumable)
        and not same_value(old.get(key, MISSING), new.get(key, MISSING))
    ]
