"""Exploring Expert Failures (EEF): learn from the useful parts of failed expert episodes.

Read top to bottom in :func:`eef_recipe`:

1. evaluate the base model; collect expert episodes (with errors injected, so some fail);
2. each iteration: sample the policy from every training task's start (as RFT does) and
   keep its successes; restart the policy from every ``skip``-th state of each failed
   expert episode (at most ``budget`` restarts each, by deterministic replay); where the
   policy fails from ``s_kl`` but succeeds from ``s_(k+1)l``, the expert actions in between
   are beneficial: train on them and on the policy's successful continuation, while every
   other expert action stays in the context with its loss masked;
3. fine-tune on expert successes + agent successes + those segments; evaluate.

The evaluation is the same as RFT's, so the two compare in one table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from agentgym.collector import EpisodeSpec
from agentgym.core.trajectory import Trajectory
from agentgym.trainers.common import Workbench
from agentgym.trainers.rft import collect_expert, finetune_from_problems, task_specs
from agentgym.trainers.selection import (
    beneficial_segments,
    mark_beneficial,
    restart_points,
    select_successes,
)

__all__ = ["EEFConfig", "eef_recipe", "exploration_data"]


@dataclass
class EEFConfig:
    """Exploring Expert Failures.

    Attributes:
        iterations: Rounds of sampling, exploration and fine-tuning.
        train_tasks: Training tasks (the first N of the train split).
        samples_per_task: Policy episodes per task from the start state.
        expert_episodes_per_task: Expert episodes per task.
        expert_error_rate: Probability of an injected error per expert episode, so that
            some expert episodes fail (the material EEF learns from).
        skip: Distance ``l`` (in actions) between restart points.
        budget: Restarts per failed expert episode (``M``).
        min_reward: Success threshold for the policy's episodes.
        max_per_task: Policy successes kept per task and iteration.
        finetune_from: ``"previous"`` (continue) or ``"base"`` (fine-tune the base model
            afresh every iteration), as in RFT.
    """

    iterations: int = 2
    train_tasks: int = 32
    samples_per_task: int = 1
    expert_episodes_per_task: int = 1
    expert_error_rate: float = 0.5
    skip: int = 1
    budget: int = 8
    min_reward: float = 1.0
    max_per_task: int | None = 1
    finetune_from: str = "previous"

    def __post_init__(self) -> None:
        if problems := finetune_from_problems(self.finetune_from):
            raise ValueError("Invalid EEF config: " + "; ".join(problems))
        if min(self.iterations, self.train_tasks, self.samples_per_task, self.skip,
               self.budget, self.expert_episodes_per_task) < 1:  # fmt: skip
            raise ValueError(
                "EEF needs iterations, train_tasks, samples_per_task, expert_episodes_per_task, "
                "skip and budget all >= 1"
            )


def exploration_data(
    failed: list[Trajectory], explored: list[Trajectory], skip: int
) -> list[Trajectory]:
    """Beneficial segments of failed expert episodes, as trainable trajectories."""
    by_parent: dict[str, dict[int, Trajectory]] = defaultdict(dict)
    for child in explored:
        if child.parent_id is not None and child.restart_step is not None:
            by_parent[child.parent_id][child.restart_step] = child
    data = []
    for parent in failed:
        children = by_parent.get(parent.id, {})
        outcomes = {step: bool(child.success) for step, child in children.items()}
        for segment in beneficial_segments(outcomes, skip=skip):
            data.append(mark_beneficial(children[segment[1]], segment))
    return data


def eef_recipe(bench: Workbench, config: EEFConfig) -> list[dict[str, Any]]:
    """The EEF loop; returns one summary row per evaluation."""
    rows = [bench.evaluate(0, "base model")]
    bench.expert_kwargs = {**bench.expert_kwargs, "error_rate": config.expert_error_rate}
    expert = collect_expert(bench, config.train_tasks, config.expert_episodes_per_task)
    expert_successes = select_successes(expert)
    failed = [t for t in expert if not t.success and t.error is None and t.episode_seed is not None]
    bench.run.log(
        {"eef/expert_successes": len(expert_successes), "eef/expert_failures": len(failed)},
        step=0,
    )
    for iteration in range(1, config.iterations + 1):
        bench.restore(iteration - 1)
        specs = task_specs(
            bench, f"it{iteration}", config.train_tasks, config.samples_per_task, iteration
        )
        samples = bench.collect(f"collect-{iteration}", specs, iteration=iteration)
        agent_successes = select_successes(
            samples, min_reward=config.min_reward, max_per_task=config.max_per_task
        )
        restarts = [
            EpisodeSpec(
                f"it{iteration}-{parent.id}-from{step}", restart_from=parent, restart_step=step
            )
            for parent in failed
            for step in restart_points(parent.num_steps, skip=config.skip, budget=config.budget)
        ]
        explored = bench.collect(f"explore-{iteration}", restarts, iteration=iteration)
        segments = exploration_data(failed, explored, config.skip)
        bench.run.log(
            {"eef/agent_successes": len(agent_successes), "eef/beneficial_segments": len(segments)},
            step=iteration,
        )
        bench.finetune(
            iteration,
            [*expert_successes, *agent_successes, *segments],
            from_base=config.finetune_from == "base",
        )
        rows.append(bench.evaluate(iteration, f"EEF iteration {iteration}"))
    return rows
