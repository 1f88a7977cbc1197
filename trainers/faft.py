"""FAFT: feedback-aware fine-tuning (Chen et al., 2024), on the SFT machinery.

Plans are scored by the environment's evaluator; the per-check feedback text is written into
the planning prompt, and the model is trained with the plain next-token loss to produce the
plan that followed, on positives and negatives alike. At inference every feedback line says
``success``, which asks the model for a plan that passes. Read top to bottom in
:func:`faft_recipe`:

1. evaluate the base model with all-success feedback in the prompt;
2. collect the environment expert's plans, with ``expert_error_rate`` of them carrying one
   injected error (gold plans are the positives, broken ones are negatives), and sample
   ``samples_per_task`` plans per training task from the policy;
3. turn every finished episode into one example: ``prompt + feedback -> plan``
   (:func:`feedback_examples`), fine-tune, evaluate again with all-success feedback.

The environment must be :class:`~agentgym.core.feedback.FeedbackConditioned` (its
``condition_on_feedback(prompt, feedback)`` writes the planning prompt with that feedback in
it) and take a ``feedback_conditioning`` argument (the all-success prompt), as
``agentgym/TravelPlanner-v0`` does.

Example:
    >>> from agentgym.core.trajectory import Message, Trajectory
    >>> episode = Trajectory("env", "t1", messages=[
    ...     Message("system", "Plan trips."), Message("user", "query: Go.\\ntravel plan:"),
    ...     Message("assistant", "[...]", trainable=True), Message("user", "The plan fails.")],
    ...     feedback="is_not_absent: fail, reason: no days.", terminated=True)
    >>> def condition(prompt, feedback):
    ...     return prompt.replace("travel plan:", f"feedback:\\n{feedback}\\ntravel plan:")
    >>> [example] = feedback_examples([episode], condition)
    >>> print(example.messages[1].content)
    query: Go.
    feedback:
    is_not_absent: fail, reason: no days.
    travel plan:
    >>> example.messages[2].trainable, example.metadata["faft"]
    (True, 'negative')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agentgym.core.feedback import Conditioner, feedback_conditioner
from agentgym.core.trajectory import Message, Trajectory
from agentgym.trainers.common import Workbench
from agentgym.trainers.rft import collect_expert, task_specs

__all__ = ["FAFTConfig", "faft_recipe", "feedback_examples"]


@dataclass
class FAFTConfig:
    """Feedback-aware fine-tuning.

    Attributes:
        train_tasks: Training tasks (the first N of the train split).
        samples_per_task: Policy plans sampled per task (the paper: many, at temperature 1).
        expert_episodes_per_task: Expert plans per task.
        expert_error_rate: Share of expert plans with one injected error (negatives); the
            rest are gold plans with all-success feedback.
        condition_on_success: Evaluate with all-success feedback in the prompt (FAFT
            inference); ``False`` evaluates the plain prompt.
        deduplicate: Keep one example per (task, plan text, feedback).
    """

    train_tasks: int = 16
    samples_per_task: int = 4
    expert_episodes_per_task: int = 2
    expert_error_rate: float = 0.5
    condition_on_success: bool = True
    deduplicate: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.train_tasks < 1:
            problems.append(f"train_tasks must be >= 1, got {self.train_tasks}")
        if self.samples_per_task < 0 or self.expert_episodes_per_task < 0:
            problems.append("samples_per_task and expert_episodes_per_task must be >= 0")
        if self.samples_per_task == 0 and self.expert_episodes_per_task == 0:
            problems.append("set samples_per_task or expert_episodes_per_task above 0")
        if not 0.0 <= self.expert_error_rate <= 1.0:
            problems.append(f"expert_error_rate must be in [0, 1], got {self.expert_error_rate}")
        if problems:
            raise ValueError("Invalid FAFT config: " + "; ".join(problems))


def feedback_examples(
    trajectories: Iterable[Trajectory], condition: Conditioner, *, deduplicate: bool = True
) -> list[Trajectory]:
    """One training conversation per judged episode: ``[system], prompt + feedback -> plan``.

    The prompt is the latest planning prompt before the final answer (a user message that
    ``condition`` accepts; it raises ``ValueError`` on others), with the episode's feedback
    put in; episodes without feedback, cut short, failed by an error, or without a planning
    prompt are skipped. The new messages carry no token ids, so they are tokenised through the chat
    template when fine-tuning.
    """
    examples: list[Trajectory] = []
    seen: set[tuple[str, str, str]] = set()
    for trajectory in trajectories:
        if trajectory.error or trajectory.truncated or not trajectory.feedback:
            continue
        answers = [i for i, m in enumerate(trajectory.messages) if m.role == "assistant"]
        if not answers or answers[-1] == 0:
            continue
        answer = trajectory.messages[answers[-1]]
        conditioned = _conditioned_prompt(
            trajectory.messages[: answers[-1]], condition, trajectory.feedback
        )
        if conditioned is None:
            continue
        key = (trajectory.task_id, answer.content, trajectory.feedback)
        if deduplicate and key in seen:
            continue
        seen.add(key)
        system = [
            Message("system", m.content) for m in trajectory.messages[:1] if m.role == "system"
        ]
        examples.append(
            Trajectory(
                env_id=trajectory.env_id,
                task_id=trajectory.task_id,
                messages=[
                    *system,
                    Message("user", conditioned),
                    Message("assistant", answer.content, trainable=True),
                ],
                id=f"faft-{trajectory.id}",
                episode_seed=trajectory.episode_seed,
                env_kwargs=dict(trajectory.env_kwargs),
                policy=trajectory.policy,
                iteration=trajectory.iteration,
                reward=trajectory.reward,
                success=trajectory.success,
                terminated=trajectory.terminated,
                verdicts=dict(trajectory.verdicts),
                feedback=trajectory.feedback,
                metadata={"faft": "positive" if trajectory.success else "negative"},
            )
        )
    return examples


def _conditioned_prompt(
    history: list[Message], condition: Conditioner, feedback: str
) -> str | None:
    """The latest user message that is a planning prompt, with ``feedback`` put in."""
    for message in reversed(history):
        if message.role != "user":
            continue
        try:
            return condition(message.content, feedback)
        except ValueError:
            continue  # an error message after an unreadable answer: look further back
    return None


def _conditioner(bench: Workbench) -> Conditioner:
    env = bench.collector_for("train", expert=True).envs[0]
    return feedback_conditioner(env, trainer="faft", env_id=bench.env_id)


def faft_recipe(bench: Workbench, config: FAFTConfig) -> list[dict[str, Any]]:
    """Evaluate, build the feedback-conditioned dataset, fine-tune, evaluate."""
    # Set before any collector exists: the collectors read these when first built.
    bench.expert_kwargs = {**bench.expert_kwargs, "error_rate": config.expert_error_rate}
    if config.condition_on_success:
        bench.eval_env_kwargs = {**bench.eval_env_kwargs, "feedback_conditioning": True}
    rows = [bench.evaluate(0, "base model")]
    bench.restore(1)
    expert = collect_expert(bench, config.train_tasks, config.expert_episodes_per_task)
    samples: list[Trajectory] = []
    if config.samples_per_task:
        specs = task_specs(bench, "it1", config.train_tasks, config.samples_per_task, 1)
        samples = bench.collect("collect-1", specs, iteration=1)
    examples = feedback_examples(
        [*expert, *samples], _conditioner(bench), deduplicate=config.deduplicate
    )
    positives = sum(e.metadata["faft"] == "positive" for e in examples)
    bench.run.log(
        {"faft/positives": positives, "faft/negatives": len(examples) - positives}, step=1
    )
    bench.finetune(1, examples)
    rows.append(bench.evaluate(1, "FAFT (all-success feedback)"))
    return rows
