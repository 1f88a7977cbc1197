"""What the run page shows besides the episodes: config, summary, ledger, learning curves.

Every file is read as it is at request time and read leniently: a run that is still
writing may have a torn last line, no summary yet, or no config (a bare trajectory file).

>>> import tempfile
>>> run = Path(tempfile.mkdtemp())
>>> _ = (run / "metrics.jsonl").write_text(
...     '{"step": 0, "time": 1, "eval/success_rate": 0.2}\\n'
...     '{"step": 1, "time": 2, "eval/success_rate": 0.6}\\n{"step": 2, "ti')
>>> info = RunInfo.load(run)
>>> [(chart.title, chart.points) for chart in info.charts]
[('eval/success_rate', 2)]
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agentgym.core.durable import scan_jsonl

__all__ = ["Chart", "PhaseRow", "RunInfo", "SummaryRow", "build_chart"]

#: Points drawn per curve; longer series are thinned (a smoothed line keeps their trend).
MAX_POINTS = 400
CHART_WIDTH, CHART_HEIGHT = 360, 190
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 58, 10, 10, 24


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file; unreadable lines (a torn tail) are left out."""
    if not path.is_file():
        return []
    return [record for _, _, record in scan_jsonl(path).records]


@dataclass
class SummaryRow:
    """One evaluated stage of the run with its 95% intervals."""

    stage: str
    iteration: Any
    episodes: Any
    success_rate: float | None
    success_ci: tuple[float, float] | None
    mean_reward: float | None
    reward_ci: tuple[float, float] | None
    groups: list[SummaryRow] = field(default_factory=list)


def _interval(row: Mapping[str, Any], name: str) -> tuple[float, float] | None:
    value = row.get(f"{name}_ci95")
    if isinstance(value, list | tuple) and len(value) == 2:
        return float(value[0]), float(value[1])
    low, high = row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    if isinstance(low, int | float) and isinstance(high, int | float):
        return float(low), float(high)
    return None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _summary_row(row: Mapping[str, Any], stage: str | None = None) -> SummaryRow:
    groups = row.get("groups") if isinstance(row.get("groups"), dict) else {}
    return SummaryRow(
        stage=str(stage if stage is not None else row.get("stage", "")),
        iteration=row.get("iteration", ""),
        episodes=row.get("episodes", ""),
        success_rate=_float(row.get("success_rate")),
        success_ci=_interval(row, "success"),
        mean_reward=_float(row.get("mean_reward")),
        reward_ci=_interval(row, "reward"),
        groups=[_summary_row(g, name) for name, g in groups.items() if isinstance(g, dict)],
    )


@dataclass
class PhaseRow:
    """A completed phase of the ledger."""

    phase: str
    iteration: Any
    finished: str  # local time of completion
    seconds: float | None
    result: str  # the rest of the phase's result, as compact JSON


@dataclass
class Chart:
    """A learning curve laid out for an SVG: coordinates already in pixels."""

    title: str
    points: int
    line: str  # "x,y x,y ..." of the (thinned) values
    smooth: str  # of the smoothed values (long series), else ""
    band: str  # polygon of the 95% interval, else ""
    markers: list[tuple[float, float, str]]  # (x, y, label) for short series
    y_labels: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    left: int = _MARGIN_LEFT  # where the plot area starts (the y labels end there)


def _label(value: float) -> str:
    return f"{value:.3g}"


def _smooth(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """Debiased exponential moving average (as TensorBoard draws it)."""
    smoothed, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        smoothed.append(average / (1 - weight**i))
    return smoothed


def build_chart(
    title: str, series: Mapping[int, float], band: tuple[Mapping[int, float], Mapping[int, float]]
    | None = None,
) -> Chart:  # fmt: skip
    """Lay out one metric's curve (and its interval band) in an SVG's pixel space.

    >>> chart = build_chart("train/loss", {0: 2.0, 1: 1.0, 2: 0.5})
    >>> chart.points, chart.line.count(",")
    (3, 3)
    """
    steps = sorted(s for s, v in series.items() if math.isfinite(v))
    values = [series[s] for s in steps]
    covered = [s for s in steps if s in band[0] and s in band[1]] if band else []
    every = values + ([band[0][s] for s in covered] + [band[1][s] for s in covered] if band else [])
    y_low, y_high = (min(every), max(every)) if every else (0.0, 1.0)
    if y_high - y_low < 1e-12:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    x_low, x_high = (steps[0], steps[-1]) if steps else (0, 1)
    x_span = max(x_high - x_low, 1)
    inner_w = CHART_WIDTH - _MARGIN_LEFT - _MARGIN_RIGHT
    inner_h = CHART_HEIGHT - _MARGIN_TOP - _MARGIN_BOTTOM

    def x(step: float) -> float:
        return round(_MARGIN_LEFT + (step - x_low) / x_span * inner_w, 1)

    def y(value: float) -> float:
        return round(_MARGIN_TOP + (y_high - value) / (y_high - y_low) * inner_h, 1)

    stride = max(1, math.ceil(len(steps) / MAX_POINTS))
    thinned = list(range(0, len(steps), stride))
    line = " ".join(f"{x(steps[i])},{y(values[i])}" for i in thinned)
    smooth = ""
    if len(steps) > 50:
        smoothed = _smooth(values)
        smooth = " ".join(f"{x(steps[i])},{y(smoothed[i])}" for i in thinned)
    band_points = ""
    if band:
        upper = [f"{x(s)},{y(band[1][s])}" for s in covered]
        lower = [f"{x(s)},{y(band[0][s])}" for s in reversed(covered)]
        band_points = " ".join(upper + lower)
    markers = []
    if len(steps) <= 50:
        markers = [(x(s), y(series[s]), f"step {s}: {_label(series[s])}") for s in steps]
    y_labels = [(y(v), _label(v)) for v in (y_low, (y_low + y_high) / 2, y_high)]
    x_labels = [(x(s), str(s)) for s in sorted({x_low, x_high})]
    return Chart(title, len(steps), line, smooth, band_points, markers, y_labels, x_labels)


def _charts(records: Sequence[Mapping[str, Any]]) -> list[Chart]:
    series: dict[str, dict[int, float]] = {}
    for record in records:
        step = record.get("step")
        if not isinstance(step, int):
            continue
        for name, value in record.items():
            if name not in ("step", "time") and isinstance(value, int | float):
                series.setdefault(name, {})[step] = float(value)
    charts = []
    for name in sorted(series):
        if name.endswith(("_ci_low", "_ci_high")):
            continue
        namespace, _, leaf = name.rpartition("/")
        band = None
        for stem in (leaf, leaf.removesuffix("_rate"), leaf.removeprefix("mean_")):
            low, high = f"{namespace}/{stem}_ci_low", f"{namespace}/{stem}_ci_high"
            if low in series and high in series:
                band = (series[low], series[high])
                break
        charts.append(build_chart(name, series[name], band))
    return charts


@dataclass
class RunInfo:
    """The run directory's files other than the trajectory stores."""

    path: Path
    config_text: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    summary: list[SummaryRow] = field(default_factory=list)
    summary_final: bool = False  # from summary.json (else from the ledger's evaluations)
    phases: list[PhaseRow] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    writer_active: bool = False  # session.json present: a writer has the run open (or crashed)
    last_write: float | None = None

    @classmethod
    def load(cls, path: Path) -> RunInfo:
        """Read what exists of ``path`` (a run directory; a store file's folder gives little)."""
        info = cls(path)
        if not path.is_dir():
            return info
        for candidate in (path / "config.yaml", path / ".hydra" / "config.yaml"):
            if candidate.is_file():
                info.config_text = candidate.read_text(errors="replace")
                try:
                    loaded = yaml.safe_load(info.config_text)
                except yaml.YAMLError:
                    loaded = None
                info.config = loaded if isinstance(loaded, dict) else {}
                break
        ledger = _read_jsonl(path / "ledger.jsonl")
        info.phases = [_phase_row(record) for record in ledger]
        summary_path = path / "summary.json"
        rows: Any = None
        if summary_path.is_file():
            try:
                summary = json.loads(summary_path.read_text())
            except ValueError:
                summary = None
            if isinstance(summary, dict):
                # A training run's table of stages, or `rollout`/`eval`'s single summary.
                rows = summary.get("rows", [{"stage": "all episodes", **summary}])
        if isinstance(rows, list):
            info.summary_final = True
        else:  # a run still going: its evaluations so far
            rows = [r.get("result") for r in ledger if r.get("phase") == "eval"]
        info.summary = [_summary_row(row) for row in rows if isinstance(row, dict)]
        info.charts = _charts(_read_jsonl(path / "metrics.jsonl"))
        info.writer_active = (path / "session.json").is_file()
        stamps = [p.stat().st_mtime for p in (path / "metrics.jsonl", path / "ledger.jsonl")
                  if p.is_file()]  # fmt: skip
        info.last_write = max(stamps) if stamps else None
        return info

    def config_value(self, dotted: str) -> Any:
        """A config value by dotted path (``trainer.name``), or None."""
        node: Any = self.config
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node


def _phase_row(record: Mapping[str, Any]) -> PhaseRow:
    result = record.get("result") if isinstance(record.get("result"), dict) else {}
    seconds = result.get("seconds")
    finished = record.get("time")
    rest = {k: v for k, v in result.items() if k not in ("seconds", "groups")}
    return PhaseRow(
        phase=str(record.get("phase", "")),
        iteration=record.get("iteration", ""),
        finished=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(finished))
        if isinstance(finished, int | float)
        else "",
        seconds=float(seconds) if isinstance(seconds, int | float) else None,
        result=json.dumps(rest, ensure_ascii=False, default=str)[:400],
    )
