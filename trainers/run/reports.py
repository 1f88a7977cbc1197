"""Reports of a run directory: learning-curve plots and the results summary table.

>>> print("\\n".join(summary_table([{"stage": "base", "iteration": 0, "success_rate": 0.5,
...     "success_ci95": [0.2, 0.8], "mean_reward": 0.25, "episodes": 8}])))
| Stage | Iteration | Success rate [95% CI] | Mean reward [95% CI] | Episodes |
|---|---:|---|---|---:|
| base | 0 | 0.500 [0.200, 0.800] | 0.250 | 8 |
"""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentgym.core.durable import write_atomic

__all__ = ["metric_series", "plot_metrics", "record_values", "summary_table"]


def record_values(record: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The ``(metric, value)`` pairs of one ``metrics.jsonl`` record."""
    return [
        (name, float(value))
        for name, value in record.items()
        if name not in ("step", "time") and isinstance(value, int | float)
    ]


def metric_series(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, float]]:
    """Metric name -> {step: value}; a step logged twice keeps its last value."""
    series: dict[str, dict[int, float]] = {}
    for record in records:
        for name, value in record_values(record):
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


def plot_metrics(directory: Path, records: Sequence[Mapping[str, Any]]) -> list[Path]:
    """One PNG learning curve per metric of ``records`` in ``directory``; their paths.

    A metric ``ns/x_rate`` (or ``ns/mean_x``, ``ns/x``) is drawn with a 95% band when
    ``ns/x_ci_low`` and ``ns/x_ci_high`` are logged too; long series get a smoothed line.
    """
    series = metric_series(records)
    if not series:
        return []
    directory.mkdir(exist_ok=True)
    paths = []
    for name in sorted(series):
        if _is_band(name):
            continue
        path = directory / (name.replace("/", "_") + ".png")
        _plot_family(path, name, series, _band(name, series))
        paths.append(path)
    return paths


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
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=100)
    write_atomic(path, image.getvalue())  # a viewer never reads a half-written PNG


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


def summary_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The lines of the markdown results table (one row per evaluated stage/iteration)."""
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
