"""Group-relative advantages for policy-gradient training, per episode or per turn.

A *group* is the ``G`` episodes sampled from one training task (same task, different
sampling seeds). Two estimators, chosen with ``advantage=episode|turn``:

``episode`` (GRPO)
    Every policy turn of episode ``i`` gets ``A_i = (R_i - mean(R)) / (std(R) + eps)`` over
    its group (``std_normalise=False``: no division, as Dr. GRPO recommends).

``turn`` (turn-level credit from the environment's per-turn progress)
    Per-turn rewards come from the environment's ``progress`` after each step (ToolUse's
    per-turn checker, BFCL's per-turn state/response checks, WebShop's partial reward):
    ``r_t = progress_t - progress_(t-1)`` with ``progress_0 = 0``, and the last turn also
    receives ``R - progress_T`` so that the turn rewards sum to the episode reward ``R``.
    The return of turn ``t`` is the discounted reward-to-go
    ``G_t = sum_(k >= t) gamma^(k - t) r_k``. Advantages compare returns *at the same depth*
    across the group: ``A_(i,t) = (G_(i,t) - mean_j G_(j,t)) / (std_j G_(j,t) + eps)`` over
    the episodes ``j`` of the group that reached turn ``t``. Where fewer than two episodes
    reached depth ``t`` the baseline is the mean (and scale the std) of all the group's
    returns at every depth, so a long episode's late turns are still compared with
    something. An action that makes progress earlier than its siblings gets more credit
    than the same action made later, which the episode estimator cannot express.

Groups whose episode rewards are all equal carry no signal for either estimator's episode
part; :func:`informative` says which groups to keep (dynamic sampling: the rest are dropped
and counted).

Example:
    >>> [round(a, 3) for a in episode_advantages([1.0, 0.0, 0.0, 1.0])]
    [1.0, -1.0, -1.0, 1.0]
    >>> turn_rewards([0.5, 0.5, 1.0], episode_reward=1.0)
    [0.5, 0.0, 0.5]
    >>> returns = [discounted_returns(r, gamma=1.0) for r in ([0.5, 0.5], [0.0, 1.0])]
    >>> returns
    [[1.0, 0.5], [1.0, 1.0]]
    >>> turn_advantages(returns, std_normalise=False)
    [[0.0, -0.25], [0.0, 0.25]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "discounted_returns",
    "episode_advantages",
    "informative",
    "turn_advantages",
    "turn_rewards",
]

ADVANTAGE_ESTIMATORS = ("episode", "turn")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / len(values)
    return mean, math.sqrt(variance)


def episode_advantages(
    rewards: Sequence[float], *, std_normalise: bool = True, eps: float = 1e-6
) -> list[float]:
    """GRPO's group-relative advantage of each episode: ``(R_i - mean) / (std + eps)``.

    >>> episode_advantages([1.0, 1.0])  # no variance, no signal
    [0.0, 0.0]
    >>> episode_advantages([2.0, 0.0], std_normalise=False)
    [1.0, -1.0]
    """
    if not rewards:
        return []
    mean, std = _mean_std(rewards)
    scale = (std + eps) if std_normalise else 1.0
    return [(r - mean) / scale for r in rewards]


def informative(rewards: Sequence[float], *, tolerance: float = 1e-9) -> bool:
    """Whether a group's rewards differ (a group of equal rewards has zero advantages).

    >>> informative([0.0, 0.0, 0.0]), informative([0.0, 1.0])
    (False, True)
    """
    return bool(rewards) and max(rewards) - min(rewards) > tolerance


def turn_rewards(progress: Sequence[float | None], *, episode_reward: float) -> list[float]:
    """Per-turn rewards from the progress after each turn; they sum to ``episode_reward``.

    A turn without a progress value (the environment gave none) keeps the previous one.

    >>> turn_rewards([None, 0.5, None], episode_reward=0.0)
    [0.0, 0.5, -0.5]
    >>> turn_rewards([], episode_reward=1.0)
    []
    """
    rewards: list[float] = []
    previous = 0.0
    for value in progress:
        current = previous if value is None else float(value)
        rewards.append(current - previous)
        previous = current
    if rewards:
        rewards[-1] += episode_reward - previous
    return rewards


def discounted_returns(rewards: Sequence[float], *, gamma: float = 1.0) -> list[float]:
    """Reward-to-go of every turn: ``G_t = r_t + gamma * G_(t+1)``.

    >>> discounted_returns([0.0, 0.0, 1.0], gamma=0.5)
    [0.25, 0.5, 1.0]
    """
    returns: list[float] = []
    running = 0.0
    for reward in reversed(rewards):
        running = reward + gamma * running
        returns.append(running)
    return returns[::-1]


def turn_advantages(
    returns: Sequence[Sequence[float]], *, std_normalise: bool = True, eps: float = 1e-6
) -> list[list[float]]:
    """Per-turn advantages of a group: each turn's return against its depth's baseline.

    ``returns[i][t]`` is episode ``i``'s return from turn ``t``. See the module docstring
    for the estimator (depth-wise mean and std; the whole group's where fewer than two
    episodes reached a depth).

    >>> turn_advantages([[1.0], [0.0, 2.0]], std_normalise=False)  # depth 1 has one episode
    [[0.5], [-0.5, 1.0]]
    """
    everything = [g for episode in returns for g in episode]
    if not everything:
        return [[] for _ in returns]
    fallback = _mean_std(everything)
    depth_stats: dict[int, tuple[float, float]] = {}
    for depth in range(max(len(episode) for episode in returns)):
        column = [episode[depth] for episode in returns if len(episode) > depth]
        depth_stats[depth] = _mean_std(column) if len(column) >= 2 else fallback
    advantages = []
    for episode in returns:
        row = []
        for depth, value in enumerate(episode):
            mean, std = depth_stats[depth]
            scale = (std + eps) if std_normalise else 1.0
            row.append((value - mean) / scale)
        advantages.append(row)
    return advantages
