"""Environment Tuning's structured curriculum, as data a trainer can step through.

A :class:`Stage` names the task subset (environment arguments), whether actionable
augmentation is on, the reward mode, and when to move on (:class:`Plateau`: the
validation metric stopped improving, or reached a target). :data:`DEFAULT_CURRICULUM`
maps the paper's four stages onto this environment's categories:

=========  ==========================================  ========  ============
stage      tasks                                       reward    augmentation
=========  ==========================================  ========  ============
syntax     200 easy base tasks                         format    on
basic      base tasks, all difficulties                progress  on
advanced   every category, all difficulties            progress  on
alignment  every category, all difficulties            progress  off
=========  ==========================================  ========  ============

A trainer loops until the curriculum is finished, building the environment of the
current stage and reporting a validation metric after each evaluation:

    >>> curriculum = Curriculum(
    ...     [Stage("a", {"categories": ["base"]}, augment=True, reward_mode="format",
    ...            advance_when=Plateau(patience=1, min_evaluations=2)),
    ...      Stage("b", {}, augment=False, reward_mode="binary",
    ...            advance_when=Plateau(target=0.5, min_evaluations=1))])
    >>> curriculum.env_kwargs()
    {'categories': ['base'], 'augment': True, 'reward_mode': 'format'}
    >>> [curriculum.report(accuracy) for accuracy in (0.1, 0.3, 0.3)]
    [False, False, True]
    >>> curriculum.stage.name, curriculum.report(0.6), curriculum.finished
    ('b', True, True)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from agentgym.envs.tooluse.rewards import REWARD_MODES

__all__ = ["DEFAULT_CURRICULUM", "Curriculum", "Plateau", "Stage"]


@dataclass(frozen=True)
class Plateau:
    """When to leave a stage, judged on the validation metrics reported in it.

    Advance once at least ``min_evaluations`` were reported and either the metric reached
    ``target``, or the last ``patience`` reports did not beat the best earlier one by more
    than ``min_delta``, or ``max_evaluations`` were reported.
    """

    patience: int = 3
    min_delta: float = 0.01
    min_evaluations: int = 3
    target: float | None = None
    max_evaluations: int | None = None

    def __post_init__(self) -> None:
        if self.patience < 1 or self.min_evaluations < 1:
            raise ValueError("patience and min_evaluations must be >= 1")
        if self.max_evaluations is not None and self.max_evaluations < self.min_evaluations:
            raise ValueError(
                f"max_evaluations={self.max_evaluations} is below min_evaluations="
                f"{self.min_evaluations} (the stage could never end by max_evaluations); "
                "lower min_evaluations too"
            )

    def reached(self, history: Sequence[float]) -> bool:
        """Whether a stage with these reported metrics (oldest first) is done."""
        if len(history) < self.min_evaluations:
            return False
        if self.target is not None and history[-1] >= self.target:
            return True
        if self.max_evaluations is not None and len(history) >= self.max_evaluations:
            return True
        if len(history) <= self.patience:
            return False
        best_before = max(history[: -self.patience])
        return max(history[-self.patience :]) <= best_before + self.min_delta


@dataclass(frozen=True)
class Stage:
    """One curriculum stage.

    Attributes:
        name: A short name.
        env_kwargs: Environment arguments selecting the tasks (categories, difficulty,
            num_tasks, ...).
        augment: Whether actionable augmentation is on.
        reward_mode: ``"binary"``, ``"progress"`` or ``"format"``.
        advance_when: The plateau rule that ends the stage.
    """

    name: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    augment: bool = True
    reward_mode: str = "progress"
    advance_when: Plateau = field(default_factory=Plateau)

    def __post_init__(self) -> None:
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(
                f"Stage {self.name!r}: reward_mode={self.reward_mode!r} is not one of "
                f"{', '.join(REWARD_MODES)}"
            )
        clash = {"augment", "reward_mode"} & set(self.env_kwargs)
        if clash:
            raise ValueError(
                f"Stage {self.name!r}: set {sorted(clash)} with the Stage fields, not in env_kwargs"
            )

    def kwargs(self) -> dict[str, Any]:
        """The environment arguments of this stage (augmentation and reward included)."""
        return {**dict(self.env_kwargs), "augment": self.augment, "reward_mode": self.reward_mode}


ALL_CATEGORIES = ["base", "miss_param", "miss_func", "long_context"]

DEFAULT_CURRICULUM: tuple[Stage, ...] = (
    Stage(
        "syntax",
        {"categories": ["base"], "difficulty": "easy", "num_tasks": 200},
        augment=True,
        reward_mode="format",
        advance_when=Plateau(patience=2, min_evaluations=2, target=1.9),
    ),
    Stage(
        "basic",
        {"categories": ["base"], "difficulty": "mixed"},
        augment=True,
        reward_mode="progress",
    ),
    Stage(
        "advanced",
        {"categories": ALL_CATEGORIES, "difficulty": "mixed"},
        augment=True,
        reward_mode="progress",
    ),
    Stage(
        "alignment",
        {"categories": ALL_CATEGORIES, "difficulty": "mixed"},
        augment=False,
        reward_mode="progress",
    ),
)


class Curriculum:
    """Steps through stages as validation metrics are reported.

    Args:
        stages: The stages, in order (default: :data:`DEFAULT_CURRICULUM`).
        env_id: The environment the stages configure.
        base_kwargs: Arguments shared by every stage (a stage's own arguments win).
    """

    def __init__(
        self,
        stages: Sequence[Stage] = DEFAULT_CURRICULUM,
        *,
        env_id: str = "agentgym/ToolUse-v0",
        base_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not stages:
            raise ValueError("a curriculum needs at least one stage")
        names = [stage.name for stage in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        self.stages = tuple(stages)
        self.env_id = env_id
        self.base_kwargs = dict(base_kwargs or {})
        self.index = 0
        self.history: list[list[float]] = [[] for _ in self.stages]

    @property
    def finished(self) -> bool:
        """Whether the last stage is done."""
        return self.index >= len(self.stages)

    @property
    def stage(self) -> Stage:
        """The current stage (the last one once finished)."""
        return self.stages[min(self.index, len(self.stages) - 1)]

    def env_kwargs(self) -> dict[str, Any]:
        """Environment arguments of the current stage."""
        return {**self.base_kwargs, **self.stage.kwargs()}

    def make_env(self, **overrides: Any) -> gym.Env:
        """``gymnasium.make`` the current stage's environment."""
        return gym.make(self.env_id, **{**self.env_kwargs(), **overrides})

    def report(self, metric: float) -> bool:
        """Record a validation metric; advance (and return True) when the stage is done."""
        if self.finished:
            raise RuntimeError("the curriculum is finished; nothing to report to")
        self.history[self.index].append(float(metric))
        if self.stage.advance_when.reached(self.history[self.index]):
            self.index += 1
            return True
        return False

    def advance(self) -> None:
        """Move to the next stage now (e.g. on a trainer's own schedule)."""
        if not self.finished:
            self.index += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Yield the current stage's environment arguments until the curriculum finishes
        (report a metric between items, or it never ends)."""
        while not self.finished:
            yield self.env_kwargs()

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to resume the curriculum."""
        return {"index": self.index, "history": [list(h) for h in self.history]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`."""
        history = [list(map(float, h)) for h in state["history"]]
        if len(history) != len(self.stages):
            raise ValueError("the saved curriculum has a different number of stages")
        self.index = int(state["index"])
        self.history = history
