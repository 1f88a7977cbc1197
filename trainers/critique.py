"""Critique-in-the-loop self-training (``trainer=critique``; Xi et al., arXiv 2411.16579).

Read top to bottom in :func:`critique_recipe`:

1. evaluate the base model on held-out tasks (and collect expert successes, if asked);
2. each iteration: sample ``K`` episodes per training task with the current policy; keep
   the successes (as RFT does); have the critic locate the first wrong step of every
   failure and write a step-level critique; let the actor refine that step with the
   critique in view (``rounds`` rounds, ``refinements_per_critique`` samples); keep a
   refined episode when it succeeds, at most one per critique
   (:func:`~agentgym.critique.refine.refine_failures`);
3. fine-tune on expert + kept successes + kept refinements (optionally also on
   "(task, wrong proposal, critique) -> refinement" examples), sync the engine, evaluate.

Without a critic this is RFT. For RFT at an equal sampling budget, give RFT
``samples_per_task = K + refinements per task``: each iteration logs
``critique/refinement_samples`` (the actor's extra samples) next to
``critique/policy_samples``. Every phase is resumable: collections and refinements are
stored as they finish, fine-tuning and evaluation are ledger phases.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from agentgym.core.trajectory import Trajectory
from agentgym.critique.critics import CRITICS, Critic, ModelCritic, make_critic
from agentgym.critique.refine import RefineSettings, critique_example, refine_failures
from agentgym.trainers.common import Workbench
from agentgym.trainers.rft import collect_expert, finetune_from_problems, task_specs
from agentgym.trainers.selection import select_successes

__all__ = ["CritiqueConfig", "critique_recipe", "refinement_summary", "training_data"]


@dataclass
class CritiqueConfig:
    """Critique-in-the-loop self-training.

    Attributes:
        iterations: Sample -> critique -> refine -> fine-tune -> evaluate rounds.
        train_tasks: Training tasks (the first N of the train split).
        samples_per_task: Policy episodes per task per iteration (K).
        critic: ``"oracle"`` (the environment's judgement), ``"model"`` (the actor's own
            model, or ``critic_kwargs.model``) or ``"openai"`` (``critic_kwargs.base_url``
            and ``critic_kwargs.model``).
        critic_kwargs: Arguments of the critic (see ``critic``).
        rounds: Refinement rounds per critique.
        refinements_per_critique: Refinements sampled per critique; at most one is kept.
        min_reward: Success threshold for samples and refinements.
        max_per_task: Successful samples kept per task and iteration (refinements: one
            per critique).
        train_on_critique: Also train "(task, wrong proposal, critique) -> refinement".
        expert_episodes_per_task: Expert successes mixed into every fine-tuning phase.
        accumulate: Train on the data of all iterations so far.
        finetune_from: ``"previous"`` or ``"base"``, as in RFT.
    """

    iterations: int = 2
    train_tasks: int = 16
    samples_per_task: int = 2
    critic: str = "oracle"
    critic_kwargs: dict[str, Any] = field(default_factory=dict)
    rounds: int = 1
    refinements_per_critique: int = 1
    min_reward: float = 1.0
    max_per_task: int | None = 1
    train_on_critique: bool = False
    expert_episodes_per_task: int = 0
    accumulate: bool = True
    finetune_from: str = "previous"

    def __post_init__(self) -> None:
        problems = finetune_from_problems(self.finetune_from)
        if self.iterations < 1:
            problems.append(f"iterations must be >= 1, got {self.iterations}")
        if self.train_tasks < 1 or self.samples_per_task < 1:
            problems.append("train_tasks and samples_per_task must be >= 1")
        if self.critic not in CRITICS:
            problems.append(f"critic must be one of {', '.join(CRITICS)}; got {self.critic!r}")
        if self.rounds < 1 or self.refinements_per_critique < 1:
            problems.append("rounds and refinements_per_critique must be >= 1")
        if self.max_per_task is not None and self.max_per_task < 1:
            problems.append(f"max_per_task must be >= 1 or null, got {self.max_per_task}")
        if self.expert_episodes_per_task < 0:
            problems.append("expert_episodes_per_task must be >= 0")
        if not isinstance(self.train_on_critique, bool):
            problems.append(f"train_on_critique must be true or false, got "
                            f"{self.train_on_critique!r}")  # fmt: skip
        if problems:
            raise ValueError("Invalid critique config: " + "; ".join(problems))


def build_critic(bench: Workbench, config: CritiqueConfig) -> Critic:
    """The run's critic; ``"model"`` without a model name is the actor judging itself."""
    kwargs = {k: v for k, v in config.critic_kwargs.items() if v is not None}
    if config.critic == "model" and "model" not in kwargs:
        return ModelCritic(bench.engine)
    return make_critic(config.critic, **kwargs)


def training_data(
    samples: list[Trajectory], records: list[Trajectory], config: CritiqueConfig
) -> tuple[list[Trajectory], list[Trajectory], list[Trajectory]]:
    """``(kept samples, kept refinements, critique examples)`` of one iteration.

    Samples are filtered as RFT filters them; a refinement record is kept when it holds a
    successful refinement (there is at most one per critique by construction).
    """
    kept = select_successes(samples, min_reward=config.min_reward,
                            max_per_task=config.max_per_task)  # fmt: skip
    refined = [r for r in records if r.success and r.metadata.get("outcome") == "refined"]
    examples: list[Trajectory] = []
    if config.train_on_critique:
        originals = {t.id: t for t in samples}
        for record in refined:
            original = originals.get(record.parent_id or "")
            example = critique_example(record, original) if original is not None else None
            if example is not None:
                examples.append(example)
    return kept, refined, examples


def refinement_summary(
    samples: list[Trajectory],
    records: list[Trajectory],
    kept: list[Trajectory],
    refined: list[Trajectory],
    examples: list[Trajectory],
) -> dict[str, float]:
    """Counts of one iteration: samples, failures, located errors, refinement samples, kept."""
    outcomes = [r.metadata.get("outcome") for r in records]
    return {
        "policy_samples": len(samples),
        "failures": len(records),
        "located": sum(outcome != "no_step_judged_wrong" for outcome in outcomes),
        "refinement_samples": sum(int(r.metadata.get("attempts", 0)) for r in records),
        "kept_samples": len(kept),
        "kept_refinements": len(refined),
        "critique_examples": len(examples),
    }


def _log_summary(bench: Workbench, iteration: int, summary: dict[str, float]) -> dict[str, float]:
    counts = {key: value for key, value in summary.items() if key != "seconds"}
    bench.run.log({f"critique/{key}": value for key, value in counts.items()}, step=iteration)
    return summary


def critique_recipe(bench: Workbench, config: CritiqueConfig) -> list[dict[str, Any]]:
    """The critique-in-the-loop loop; returns one summary row per evaluation."""
    rows = [bench.evaluate(0, "base model")]
    expert = select_successes(
        collect_expert(bench, config.train_tasks, config.expert_episodes_per_task)
    )
    critic = build_critic(bench, config)
    settings = RefineSettings(rounds=config.rounds, samples=config.refinements_per_critique,
                              min_reward=config.min_reward)  # fmt: skip
    data: list[Trajectory] = []
    try:
        for iteration in range(1, config.iterations + 1):
            bench.restore(iteration - 1)  # on resume: the weights this iteration samples from
            specs = task_specs(bench, f"it{iteration}", config.train_tasks,
                               config.samples_per_task, iteration)  # fmt: skip
            samples = bench.collect(f"collect-{iteration}", specs, iteration=iteration)
            failures = [t for t in samples if not (t.success and t.reward >= config.min_reward)
                        and t.error is None and t.steps]  # fmt: skip
            started = time.perf_counter()
            records = refine_failures(
                failures, engine=bench.engine, critic=critic, sampling=bench.sampling,
                store=bench.run.store(f"refine-{iteration}"), settings=settings,
                collector=bench.collector_for("train"), iteration=iteration,
            )  # fmt: skip
            kept, refined, examples = training_data(samples, records, config)

            summary = refinement_summary(samples, records, kept, refined, examples)
            summary["seconds"] = round(time.perf_counter() - started, 3)
            bench.phase("refine", iteration, partial(_log_summary, bench, iteration, summary))
            batch = [*kept, *refined, *examples]
            data = [*data, *batch] if config.accumulate else batch
            bench.finetune(iteration, [*expert, *data],
                           from_base=config.finetune_from == "base")  # fmt: skip
            rows.append(bench.evaluate(iteration, f"critique iteration {iteration}"))
    finally:
        critic.close()
    return rows
