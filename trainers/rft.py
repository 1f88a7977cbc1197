"""Rejection-sampling fine-tuning (RFT) for agents, and plain SFT on expert data.

RFT (``trainer=rft``), read top to bottom in :func:`rft_recipe`:

1. evaluate the base model on held-out tasks;
2. collect the environment expert's episodes and keep its successes;
3. for each iteration: sample ``K`` episodes per training task with the current policy,
   keep the successes (reward threshold, at most ``M`` per task, de-duplicated), fine-tune
   on expert + kept agent successes, sync the rollout engine, evaluate.

SFT (``trainer=sft``) is the same without the sampling loop: expert successes, one
fine-tuning phase, one evaluation (:func:`sft_recipe`).

Every phase is recorded in the run's ledger, so a killed run resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentgym.collector import EpisodeSpec
from agentgym.core.tasks import task_seed
from agentgym.core.trajectory import Trajectory
from agentgym.trainers.common import Workbench
from agentgym.trainers.selection import select_successes

__all__ = ["RFTConfig", "SFTRecipeConfig", "rft_recipe", "sft_recipe", "task_specs"]


@dataclass
class SFTRecipeConfig:
    """Behaviour cloning of the environment's expert.

    Attributes:
        train_tasks: Training tasks (the first N of the train split).
        expert_episodes_per_task: Expert episodes per task (successes are kept).
    """

    train_tasks: int = 32
    expert_episodes_per_task: int = 1

    def __post_init__(self) -> None:
        if self.train_tasks < 1 or self.expert_episodes_per_task < 1:
            raise ValueError("train_tasks and expert_episodes_per_task must be >= 1")


@dataclass
class RFTConfig:
    """Rejection-sampling fine-tuning.

    Attributes:
        iterations: Collect -> select -> fine-tune -> evaluate rounds.
        train_tasks: Training tasks (the first N of the train split).
        samples_per_task: Episodes per task per iteration (K).
        min_reward: Keep episodes with at least this reward.
        max_per_task: Keep at most this many episodes per task and iteration (M).
        expert_episodes_per_task: Expert episodes per task mixed into every fine-tuning
            phase (0: none, pure self-improvement).
        accumulate: Train on the successes of all iterations so far (``True``) or only the
            current one.
        finetune_from: ``"previous"`` continues from the last iteration's weights;
            ``"base"`` fine-tunes the base model afresh every iteration (as in the RFT
            paper, which avoids compounding over-fitting on the policy's own samples).
    """

    iterations: int = 2
    train_tasks: int = 16
    samples_per_task: int = 2
    min_reward: float = 1.0
    max_per_task: int | None = 1
    expert_episodes_per_task: int = 1
    accumulate: bool = True
    finetune_from: str = "previous"

    def __post_init__(self) -> None:
        problems = finetune_from_problems(self.finetune_from)
        if self.iterations < 1:
            problems.append(f"iterations must be >= 1, got {self.iterations}")
        if self.train_tasks < 1 or self.samples_per_task < 1:
            problems.append("train_tasks and samples_per_task must be >= 1")
        if self.max_per_task is not None and self.max_per_task < 1:
            problems.append(f"max_per_task must be >= 1 or null, got {self.max_per_task}")
        if self.expert_episodes_per_task < 0:
            problems.append("expert_episodes_per_task must be >= 0")
        if problems:
            raise ValueError("Invalid RFT config: " + "; ".join(problems))


FINETUNE_FROM = ("previous", "base")


def finetune_from_problems(value: str) -> list[str]:
    """A message if ``value`` is not a valid ``finetune_from`` setting."""
    if value in FINETUNE_FROM:
        return []
    return [f"finetune_from must be one of {', '.join(FINETUNE_FROM)}; got {value!r}"]


def task_specs(
    bench: Workbench, prefix: str, count: int, per_task: int, iteration: int
) -> list[EpisodeSpec]:
    """``per_task`` episodes for each of the first ``count`` training tasks, with stable ids."""
    tasks = bench.collector_for("train", expert=True).envs[0].unwrapped.tasks
    count = min(count, len(tasks))
    return [
        EpisodeSpec(
            f"{prefix}-{tasks.id_at(i)}-s{j}",
            task_id=tasks.id_at(i),
            seed=task_seed(bench.seed + iteration, i * 1000 + j) % (2**31),
        )
        for i in range(count)
        for j in range(per_task)
    ]


def collect_expert(bench: Workbench, train_tasks: int, per_task: int) -> list[Trajectory]:
    """The expert's episodes on the training tasks (stored, resumable)."""
    if per_task == 0:
        return []
    specs = task_specs(bench, "expert", train_tasks, per_task, iteration=0)
    return bench.collect("expert", specs, iteration=0, expert=True)


def sft_recipe(bench: Workbench, config: SFTRecipeConfig) -> list[dict[str, Any]]:
    """Evaluate, clone the expert's successes, evaluate again; return the summary rows."""
    rows = [bench.evaluate(0, "base model")]
    bench.restore(1)
    expert = select_successes(
        collect_expert(bench, config.train_tasks, config.expert_episodes_per_task)
    )
    bench.finetune(1, expert)
    rows.append(bench.evaluate(1, "SFT on expert successes"))
    return rows


def rft_recipe(bench: Workbench, config: RFTConfig) -> list[dict[str, Any]]:
    """The RFT loop; returns one summary row per evaluation."""
    rows = [bench.evaluate(0, "base model")]
    expert = select_successes(
        collect_expert(bench, config.train_tasks, config.expert_episodes_per_task)
    )
    kept: list[Trajectory] = []
    for iteration in range(1, config.iterations + 1):
        bench.restore(iteration - 1)  # on resume: the weights this iteration samples from
        specs = task_specs(
            bench, f"it{iteration}", config.train_tasks, config.samples_per_task, iteration
        )
        samples = bench.collect(f"collect-{iteration}", specs, iteration=iteration)
        chosen = select_successes(
            samples, min_reward=config.min_reward, max_per_task=config.max_per_task
        )
        kept = [*kept, *chosen] if config.accumulate else chosen
        bench.run.log({"rft/kept_episodes": len(chosen)}, step=iteration)
        bench.finetune(iteration, [*expert, *kept], from_base=config.finetune_from == "base")
        rows.append(bench.evaluate(iteration, f"RFT iteration {iteration}"))
    return rows
