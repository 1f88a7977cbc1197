"""Trajectories as a Hugging Face ``datasets.Dataset`` with a fixed schema.

Scalar fields become columns, ``messages`` a list of ``{role, content, trainable}`` structs
(the chat format TRL/transformers expect), and the free-form fields (``steps``,
``env_kwargs``, ``verdicts``, ``metadata``) JSON strings, so that rows whose dicts have
different keys never break Arrow's schema inference. Imported lazily by
:meth:`agentgym.core.trajectory.TrajectoryStore.to_dataset` (``datasets`` takes seconds to
import).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import datasets
import pyarrow as pa

from agentgym.core.trajectory import Trajectory

__all__ = ["trajectories_to_dataset"]


def trajectories_to_dataset(trajectories: Iterable[Trajectory]) -> datasets.Dataset:
    """The trajectories as a ``datasets.Dataset``, converted 1,024 rows at a time.

    >>> dataset = trajectories_to_dataset([Trajectory("e", "t", id="a", reward=1.0)])
    >>> dataset[0]["id"], dataset[0]["reward"], dataset[0]["steps"]
    ('a', 1.0, '[]')
    """
    features = _dataset_features()
    schema = features.arrow_schema
    # Convert in chunks so memory holds Arrow data, not every row as Python objects.
    tables: list[pa.Table] = []
    rows: list[dict[str, Any]] = []
    for trajectory in trajectories:
        rows.append(_dataset_row(trajectory))
        if len(rows) >= 1024:
            tables.append(pa.Table.from_pylist(rows, schema=schema))
            rows = []
    tables.append(pa.Table.from_pylist(rows, schema=schema))
    table = pa.concat_tables(tables)
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=features))


_SCALAR_COLUMNS: dict[str, str] = {
    "id": "string",
    "env_id": "string",
    "task_id": "string",
    "policy": "string",
    "iteration": "int64",
    "parent_id": "string",
    "restart_step": "int64",
    "reward": "float64",
    "success": "bool",
    "terminated": "bool",
    "truncated": "bool",
    "truncation_reason": "string",
    "episode_seed": "int64",
    "num_steps": "int64",
    "feedback": "string",
    "error": "string",
    "created_at": "float64",
}
_JSON_COLUMNS = ("steps", "env_kwargs", "verdicts", "metadata")


def _dataset_features() -> datasets.Features:
    features: dict[str, Any] = {
        name: datasets.Value(dtype) for name, dtype in _SCALAR_COLUMNS.items()
    }
    features["messages"] = datasets.List(
        {
            "role": datasets.Value("string"),
            "content": datasets.Value("string"),
            "trainable": datasets.Value("bool"),
        }
    )
    for name in _JSON_COLUMNS:
        features[name] = datasets.Value("string")
    return datasets.Features(features)


def _dataset_row(trajectory: Trajectory) -> dict[str, Any]:
    row: dict[str, Any] = {name: getattr(trajectory, name) for name in _SCALAR_COLUMNS}
    row["messages"] = [
        {"role": message.role, "content": message.content, "trainable": message.trainable}
        for message in trajectory.messages
    ]
    row["steps"] = json.dumps([step.to_dict() for step in trajectory.steps], ensure_ascii=False)
    for name in ("env_kwargs", "verdicts", "metadata"):
        row[name] = json.dumps(getattr(trajectory, name), ensure_ascii=False)
    return row
