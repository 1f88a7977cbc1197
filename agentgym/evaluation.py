"""Summaries of trajectories: success rates and mean rewards with confidence intervals.

Example:
    >>> wilson_interval(8, 10)
    (0.4902, 0.9433)
    >>> from agentgym.core.trajectory import Trajectory
    >>> runs = [Trajectory("e", str(i), reward=float(i % 2), success=bool(i % 2),
    ...                    metadata={"task": {"difficulty": "easy"}}) for i in range(4)]
    >>> summary = summarize(runs, group_by=("difficulty",))
    >>> summary["success_rate"], summary["groups"]["difficulty=easy"]["episodes"]
    (0.5, 4)

Mean-reward intervals are clipped to the environments' registered reward range
(:func:`~agentgym.core.registry.reward_range`): one success in ten binary episodes has a
normal-approximation interval of [-0.096, 0.296], reported as [0.0, 0.296].
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from agentgym.core.registry import reward_range
from agentgym.core.trajectory import Trajectory

__all__ = [
    "benchmark_lines",
    "benchmark_metrics",
    "mean_interval",
    "summarize",
    "wilson_interval",
]

_Z95 = 1.959963984540054


def wilson_interval(successes: int, total: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval of a success rate (95% by default), rounded to 4 places.

    Unlike the normal approximation it stays inside [0, 1] and behaves at 0/n and n/n.
    """
    if total == 0:
        return (0.0, 1.0)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def mean_interval(
    values: Sequence[float],
    z: float = _Z95,
    *,
    bounds: tuple[float, float] | None = None,
) -> tuple[float, float, float]:
    """Mean and a normal-approximation 95% interval (mean, low, high).

    ``bounds``: the range every value lies in (e.g. an environment's reward range); the
    interval is clipped to it, since the mean cannot leave it.

    >>> mean_interval([1.0] + [0.0] * 9)
    (0.1, -0.096, 0.296)
    >>> mean_interval([1.0] + [0.0] * 9, bounds=(0.0, 1.0))
    (0.1, 0.0, 0.296)
    """
    n = len(values)
    if n == 0:
        return (0.0, 0.0, 0.0)
    mean = sum(values) / n
    if n == 1:
        return (mean, mean, mean)
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = z * math.sqrt(variance / n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return (round(mean, 4), round(low, 4), round(high, 4))


def _reward_bounds(trajectories: Sequence[Trajectory]) -> tuple[float, float] | None:
    """The union of the trajectories' environments' reward ranges (``None``: one is unknown)."""
    ranges = [reward_range(env_id) for env_id in {t.env_id for t in trajectories}]
    known = [bounds for bounds in ranges if bounds is not None]
    if not ranges or len(known) < len(ranges):
        return None
    return (min(low for low, _ in known), max(high for _, high in known))


def _block(
    trajectories: Sequence[Trajectory], reward_bounds: tuple[float, float] | None
) -> dict[str, Any]:
    count = len(trajectories)
    successes = sum(bool(t.success) for t in trajectories)
    rewards = [t.reward for t in trajectories]
    if reward_bounds is not None and not all(
        reward_bounds[0] <= reward <= reward_bounds[1] for reward in rewards
    ):
        reward_bounds = None  # a reward outside the declared range: do not trust the range
    mean, low, high = mean_interval(rewards, bounds=reward_bounds)
    return {
        "episodes": count,
        "success_rate": round(successes / count, 4) if count else 0.0,
        "success_ci95": wilson_interval(successes, count),
        "mean_reward": mean,
        "reward_ci95": (low, high),
        "mean_steps": round(sum(t.num_steps for t in trajectories) / count, 3) if count else 0.0,
        "truncated": sum(t.truncated for t in trajectories),
        "errors": sum(t.error is not None for t in trajectories),
    }


def summarize(
    trajectories: Sequence[Trajectory],
    *,
    group_by: Sequence[str] = ("difficulty", "category"),
    reward_bounds: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Overall and per-group outcome statistics.

    Groups come from each trajectory's ``metadata["task"]`` (the task's own metadata, which
    the collector records), e.g. ``difficulty`` or ``category``. ``reward_bounds`` (default:
    the registered reward range of the trajectories' environments) clips the mean-reward
    intervals.
    """
    if reward_bounds is None:
        reward_bounds = _reward_bounds(trajectories)
    summary = _block(trajectories, reward_bounds)
    groups: dict[str, list[Trajectory]] = defaultdict(list)
    for trajectory in trajectories:
        task_metadata = trajectory.metadata.get("task") or {}
        for key in group_by:
            if key in task_metadata:
                groups[f"{key}={task_metadata[key]}"].append(trajectory)
    summary["groups"] = {
        name: _block(items, reward_bounds) for name, items in sorted(groups.items())
    }
    return summary


def benchmark_metrics(env: Any, trajectories: Sequence[Trajectory]) -> dict[str, Any] | None:
    """The environment's own benchmark metrics over the episodes, if it defines any.

    An environment whose benchmark reports more than a success rate (TravelPlanner's
    delivery rate and micro/macro pass rates, under its strict and official evaluators)
    defines ``benchmark_metrics(verdicts)``, taking each episode's recorded verdicts.
    """
    method = getattr(getattr(env, "unwrapped", env), "benchmark_metrics", None)
    if not callable(method):
        return None
    return method([trajectory.verdicts for trajectory in trajectories])


def benchmark_lines(metrics: dict[str, Any] | None) -> list[str]:
    """Report lines for :func:`benchmark_metrics`' result (one per block of metrics).

    >>> benchmark_lines({"episodes": 2, "official": {"final_pass_rate": 0.5}})
    ['  episodes: 2', '  official: final_pass_rate 0.500']
    """
    lines = []
    for name, value in (metrics or {}).items():
        if isinstance(value, dict):
            value = ", ".join(f"{key} {number:.3f}" for key, number in value.items())
        lines.append(f"  {name}: {value}")
    return lines
