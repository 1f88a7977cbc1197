"""Environment Tuning: curriculum + actionable hints + progress reward + GRPO (``trainer=envtune``).

Environment Tuning (Lu et al., 2025) trains multi-turn tool use from few tasks by tuning the
*environment* the policy learns in, not only the policy. Read top to bottom in
:func:`envtune_recipe`:

1. evaluate the base model; optionally warm-start with SFT on the expert's successes;
2. walk a staged curriculum (:class:`~agentgym.envs.tooluse.curriculum.Curriculum`). Each
   stage sets environment arguments: which tasks (``categories``, ...), whether actionable
   hints rewrite vague tool errors (``augment``), and the reward (``format`` in the syntax
   stage, then ``progress``, the fraction of turns passing the per-turn checks, or
   ``binary``). The default stages are the paper's:

   =========  ======================================  ========  =====
   stage      tasks                                   reward    hints
   =========  ======================================  ========  =====
   syntax     base                                    format    on
   basic      base                                    progress  on
   advanced   base, miss_param, miss_func, long_ctx   progress  on
   alignment  the same                                progress  off
   =========  ======================================  ========  =====

3. every iteration is one GRPO iteration (:func:`~agentgym.trainers.grpo.rl_iteration`) in
   the current stage's environment, with the same optimizer throughout;
4. every ``validate_every`` iterations the greedy policy is scored on validation tasks (the
   stage's training distribution, tasks ``train_tasks`` to ``train_tasks +
   validation_tasks`` of the train split: never trained on, never tested on) by the stage's
   own mean reward; the stage advances when that metric plateaus or reaches the stage's
   target (:class:`~agentgym.envs.tooluse.curriculum.Plateau`);
5. held-out evaluation always uses the test conditions (``env.kwargs`` on the test split:
   hints off, binary success), and optionally an out-of-distribution set
   (``ood_env_kwargs``), so the curriculum's help does not leak into the reported numbers.

Works with any environment taking ``augment`` and ``reward_mode`` (ToolUse-v0,
BFCL-MultiTurn-v0). The curriculum's position is recorded in the ledger after every
validation, so a resumed run continues in the same stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.envs.tooluse.curriculum import Curriculum, Plateau, Stage
from agentgym.trainers.common import Workbench
from agentgym.trainers.grpo import (
    GRPOConfig,
    PolicyState,
    config_problems,
    iteration_tasks,
    rl_iteration,
    warm_start,
)

__all__ = ["DEFAULT_STAGES", "EnvTuneConfig", "build_curriculum", "envtune_recipe"]

_ALL = ["base", "miss_param", "miss_func", "long_context"]
#: The paper's four stages, over the categories ToolUse-v0 and BFCL-MultiTurn-v0 share, with
#: advance rules shortened to a CPU budget as in configs/trainer/envtune.yaml (the paper's
#: plateau rule is closer to patience 2, min_evaluations 2, max_evaluations 4).
DEFAULT_STAGES: list[dict[str, Any]] = [
    {"name": "syntax", "env_kwargs": {"categories": ["base"]}, "augment": True,
     "reward_mode": "format", "advance_when": {"patience": 1, "min_evaluations": 1,
                                               "target": 1.5, "max_evaluations": 1}},
    {"name": "basic", "env_kwargs": {"categories": ["base"]}, "augment": True,
     "reward_mode": "progress", "advance_when": {"patience": 1, "min_evaluations": 1,
                                                 "max_evaluations": 1}},
    {"name": "advanced", "env_kwargs": {"categories": _ALL}, "augment": True,
     "reward_mode": "progress", "advance_when": {"patience": 1, "min_evaluations": 1,
                                                 "max_evaluations": 1}},
    {"name": "alignment", "env_kwargs": {"categories": _ALL}, "augment": False,
     "reward_mode": "progress", "advance_when": {"patience": 2, "min_evaluations": 1,
                                                 "max_evaluations": 2}},
]  # fmt: skip

_STAGE_KEYS = ("name", "env_kwargs", "augment", "reward_mode", "advance_when")


@dataclass
class EnvTuneConfig(GRPOConfig):
    """GRPO inside a curriculum of environments (see the module docstring).

    Attributes (besides :class:`~agentgym.trainers.grpo.GRPOConfig`'s):
        stages: The curriculum, in order; each ``{name, env_kwargs, augment, reward_mode,
            advance_when: {patience, min_delta, min_evaluations, target, max_evaluations}}``.
        validation_tasks: Validation tasks per check (after the training tasks).
        validate_every: Iterations between validation checks.
        stop_when_finished: End the run once the last stage has plateaued (otherwise keep
            training in the last stage until ``iterations``).
    """

    # GRPOConfig's fields with envtune's own defaults (configs/trainer/envtune.yaml, checked
    # by tests/test_config_defaults.py).
    iterations: int = 4
    train_tasks: int = 16
    group_size: int = 4
    warm_start_tasks: int = 16
    warm_start_epochs: int | None = None
    eval_every: int = 4
    stages: list[dict[str, Any]] = field(default_factory=lambda: [dict(s) for s in DEFAULT_STAGES])
    validation_tasks: int = 8
    validate_every: int = 1
    stop_when_finished: bool = True

    def __post_init__(self) -> None:
        problems = config_problems(self)
        for name in ("validation_tasks", "validate_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.stop_when_finished, bool):
            problems.append(
                f"stop_when_finished must be true or false, got {self.stop_when_finished!r}"
            )
        try:
            build_curriculum(self.stages, env_id="", base_kwargs={})
        except (ValueError, TypeError) as exc:
            problems.append(f"stages: {exc}")
        if problems:
            raise ValueError("Invalid envtune config: " + "; ".join(problems))


def build_curriculum(
    stages: Sequence[Mapping[str, Any]], *, env_id: str, base_kwargs: Mapping[str, Any]
) -> Curriculum:
    """The :class:`Curriculum` of ``stages`` (config dicts), every problem reported.

    >>> curriculum = build_curriculum(DEFAULT_STAGES, env_id="agentgym/ToolUse-v0",
    ...                               base_kwargs={"split": "train"})
    >>> curriculum.stage.name, curriculum.env_kwargs()["reward_mode"]
    ('syntax', 'format')
    >>> build_curriculum([{"name": "a", "reward": "binary"}], env_id="x", base_kwargs={})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: stage 1 ('a'): unknown key 'reward' (valid: name, env_kwargs, augment, ...)
    """
    if not isinstance(stages, Sequence) or isinstance(stages, str) or not stages:
        raise ValueError("stages must be a non-empty list of stage mappings")
    built = []
    for number, spec in enumerate(stages, start=1):
        if not isinstance(spec, Mapping):
            raise ValueError(f"stage {number} must be a mapping, got {spec!r}")
        label = f"stage {number} ({spec.get('name', '?')!r})"
        unknown = sorted(set(spec) - set(_STAGE_KEYS))
        if unknown:
            raise ValueError(
                f"{label}: unknown key {unknown[0]!r} (valid: {', '.join(_STAGE_KEYS)})"
            )
        if "name" not in spec:
            raise ValueError(f"{label}: a stage needs a name")
        try:
            plateau = Plateau(**dict(spec.get("advance_when") or {}))
            built.append(
                Stage(
                    str(spec["name"]),
                    dict(spec.get("env_kwargs") or {}),
                    augment=bool(spec.get("augment", True)),
                    reward_mode=str(spec.get("reward_mode", "progress")),
                    advance_when=plateau,
                )
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{label}: {exc}") from None
    return Curriculum(built, env_id=env_id, base_kwargs=base_kwargs)


def _restore_curriculum(bench: Workbench, curriculum: Curriculum, iteration: int) -> None:
    """Load the curriculum's state recorded at the newest validation before ``iteration``."""
    for k in range(iteration - 1, 0, -1):
        if bench.run.done("curriculum", k):
            curriculum.load_state_dict((bench.run.result("curriculum", k) or {})["state"])
            return


def envtune_recipe(bench: Workbench, config: EnvTuneConfig) -> list[dict[str, Any]]:
    """The Environment Tuning loop; returns one summary row per held-out evaluation."""
    rows = warm_start(bench, config)
    start = 1 if config.warm_start_tasks else 0
    state = PolicyState.create(bench, config, start_iteration=start)
    bench.restore(start)
    curriculum = build_curriculum(config.stages, env_id=bench.env_id,
                                  base_kwargs=bench.train_env_kwargs)  # fmt: skip
    ood = None
    if config.ood_env_kwargs is not None:
        ood = {**bench.eval_env_kwargs, **config.ood_env_kwargs}
        rows.append(bench.evaluate(start, "start (out of distribution)", name="ood",
                                   env_kwargs=ood))  # fmt: skip
    last = 0
    for iteration in range(1, config.iterations + 1):
        _restore_curriculum(bench, curriculum, iteration)
        if curriculum.finished and config.stop_when_finished:
            break
        stage_kwargs = curriculum.env_kwargs()
        tasks = iteration_tasks(config.train_tasks, config.tasks_per_iteration, iteration,
                                bench.seed)  # fmt: skip
        rl_iteration(state, iteration, tasks, env_kwargs=stage_kwargs)
        bench.run.log({"curriculum/stage": curriculum.index}, step=iteration)
        last = iteration
        if iteration % config.validate_every == 0:
            _validate(bench, state, curriculum, iteration, stage_kwargs, config)
        if iteration % config.eval_every == 0:
            rows += _held_out(bench, state, start, iteration, ood, curriculum)
    if last and last % config.eval_every:
        rows += _held_out(bench, state, start, last, ood, curriculum)
    return rows


def _validate(
    bench: Workbench,
    state: PolicyState,
    curriculum: Curriculum,
    iteration: int,
    stage_kwargs: Mapping[str, Any],
    config: EnvTuneConfig,
) -> None:
    """Score the stage's validation tasks; report to the curriculum; record its state."""

    def work() -> dict[str, Any]:
        state.restore(iteration)
        stage = curriculum.stage.name
        row = bench.evaluate(
            iteration, f"validation ({stage})", name="val", env_kwargs=stage_kwargs,
            episodes=config.validation_tasks, first_task=config.train_tasks,
        )  # fmt: skip
        metric = float(row["mean_reward"])
        advanced = curriculum.report(metric)
        bench.run.log({"curriculum/validation_metric": metric}, step=iteration)
        return {"stage": stage, "metric": metric, "advanced": advanced,
                "state": curriculum.state_dict()}  # fmt: skip

    bench.phase("curriculum", iteration, work)


def _held_out(
    bench: Workbench,
    state: PolicyState,
    start: int,
    iteration: int,
    ood: Mapping[str, Any] | None,
    curriculum: Curriculum,
) -> list[dict[str, Any]]:
    index = start + iteration
    stage = curriculum.stage.name if not curriculum.finished else "finished"
    label = f"envtune iteration {iteration} ({stage})"
    if not bench.run.done("eval", index) or (ood is not None and not bench.run.done("ood", index)):
        state.restore(iteration)
    rows = [bench.evaluate(index, label)]
    if ood is not None:
        rows.append(bench.evaluate(index, f"{label} (out of distribution)", name="ood",
                                   env_kwargs=ood))  # fmt: skip
    return rows
