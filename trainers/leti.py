"""LeTI: learning from textual interactions (execution feedback) for code generation.

LeTI (Wang et al., 2023) fine-tunes a code model on *every* program it sampled, good or
bad, each prefixed by a reward token and, for failures, the execution feedback:

    <|bad|>  Execution feedback: <traceback / failing assertion / timeout>  <problem>  <program>
    <|good|> <problem>  <program>

so the model learns what separates programs that pass from programs that fail, and at
inference the prompt starts with ``<|good|>``. Read top to bottom in :func:`leti_recipe`:

1. condition the environment's prompts on the good token (``reward_token_prefix``), so
   sampling and evaluation go through the normal workbench path; evaluate the base model;
2. collect the expert's episodes (with injected bugs, so some attempts fail and are
   repaired) and turn each attempt into a LeTI sample (:func:`leti_trajectories`), the
   feedback written into the prompt by the environment itself
   (:class:`~agentgym.core.feedback.FeedbackConditioned`);
3. each iteration: sample ``K`` episodes per training task with the current policy, turn
   every attempt (first tries and repairs) into a sample, fine-tune on all samples with the
   SFT machinery, evaluate.

Differences from the paper: the loss is on the program tokens only (the SFT machinery's
assistant-token mask), conditioned on token, feedback and problem, instead of a plain LM
loss on the whole text; the reward tokens are plain text, not new vocabulary entries;
samples come from multi-turn repair episodes (each attempt a sample) rather than
independent single-turn samples.

Example:
    >>> from agentgym.core.trajectory import Message, Step, Trajectory
    >>> episode = Trajectory("agentgym/CodeExec-v0", "gen-easy-0", id="ep", messages=[
    ...     Message("user", "Write f."), Message("assistant", "```python\\nbad\\n```", True),
    ...     Message("user", "0 of 2 tests passed."), Message("assistant", "good", True)],
    ...     steps=[Step("bad", "0 of 2 tests passed.", 0.0, feedback="0 of 2 tests passed.",
    ...                 info={"execution": {"status": "ok", "passed": 0, "total": 2}}),
    ...            Step("good", "All tests passed.", 1.0, terminated=True,
    ...                 info={"execution": {"status": "ok", "passed": 2, "total": 2}})])
    >>> def condition(problem, feedback):  # CodeExecEnv.condition_on_feedback writes this
    ...     return f"Execution feedback:\\n{feedback}\\n\\n{problem}" if feedback else problem
    >>> samples = leti_trajectories([episode], condition)
    >>> [s.messages[0].content for s in samples]
    ['<|bad|>\\nExecution feedback:\\n0 of 2 tests passed.\\n\\nWrite f.', '<|good|>\\nWrite f.']
    >>> [s.messages[-1].content for s in samples]
    ['```python\\nbad\\n```', 'good']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agentgym.core.feedback import Conditioner, feedback_conditioner
from agentgym.core.trajectory import Message, Trajectory
from agentgym.trainers.common import Workbench
from agentgym.trainers.rft import collect_expert, task_specs

__all__ = ["LeTIConfig", "attempt_passed", "leti_recipe", "leti_trajectories"]

PREFIX_ARGUMENT = "reward_token_prefix"


@dataclass
class LeTIConfig:
    """LeTI's settings.

    Attributes:
        iterations: Sample -> transform -> fine-tune -> evaluate rounds.
        train_tasks: Training tasks (the first N of the train split).
        samples_per_task: Episodes per task per iteration (every attempt becomes a sample).
        expert_episodes_per_task: Expert episodes per task in the data (0: none, LeTI's
            pure setting).
        expert_error_rate: Probability that an expert episode starts with a buggy attempt
            (so expert data has bad samples with real feedback, then the repair).
        good_token: Reward token of programs that pass every test (and of the prompts at
            inference).
        bad_token: Reward token of programs that fail.
        textual_feedback: Put the execution feedback in bad samples (``False``: the reward
            token alone, LeTI's binary-feedback ablation).
        accumulate: Train on the samples of all iterations so far (``True``) or only the
            current iteration's (plus the expert's).
    """

    iterations: int = 2
    train_tasks: int = 16
    samples_per_task: int = 2
    expert_episodes_per_task: int = 1
    expert_error_rate: float = 0.5
    good_token: str = "<|good|>"
    bad_token: str = "<|bad|>"
    textual_feedback: bool = True
    accumulate: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.iterations < 1:
            problems.append(f"iterations must be >= 1, got {self.iterations}")
        if self.train_tasks < 1 or self.samples_per_task < 1:
            problems.append("train_tasks and samples_per_task must be >= 1")
        if self.expert_episodes_per_task < 0:
            problems.append("expert_episodes_per_task must be >= 0")
        if not 0.0 <= self.expert_error_rate <= 1.0:
            problems.append(f"expert_error_rate must be in [0, 1], got {self.expert_error_rate}")
        if not self.good_token.strip() or not self.bad_token.strip():
            problems.append("good_token and bad_token must be non-empty")
        elif self.good_token == self.bad_token:
            problems.append("good_token and bad_token must differ")
        if problems:
            raise ValueError("Invalid LeTI config: " + "; ".join(problems))


def attempt_passed(info: dict[str, Any]) -> bool:
    """Whether an attempt passed every test, from its step's ``execution`` summary."""
    execution = info.get("execution") or {}
    total = int(execution.get("total") or 0)
    return execution.get("status") == "ok" and total > 0 and execution.get("passed") == total


def _problem_text(trajectory: Trajectory) -> tuple[list[Message], str]:
    """The system messages and the problem (the first user message, minus a reward token)."""
    system = [Message("system", m.content) for m in trajectory.messages if m.role == "system"]
    first_user = next((m.content for m in trajectory.messages if m.role == "user"), "")
    prefix = (trajectory.env_kwargs or {}).get(PREFIX_ARGUMENT)
    if prefix and first_user.startswith(prefix + "\n"):
        first_user = first_user[len(prefix) + 1 :]
    return system[:1], first_user


def leti_trajectories(
    trajectories: Iterable[Trajectory],
    condition: Conditioner,
    *,
    good_token: str = "<|good|>",
    bad_token: str = "<|bad|>",
    textual_feedback: bool = True,
) -> list[Trajectory]:
    """One single-turn LeTI sample per code attempt of each (finished or cut) episode.

    Each sample is ``[system], user(token, feedback, problem), assistant(program)``; only the
    program is trained. ``condition(problem, feedback)`` is the environment's
    ``condition_on_feedback``; the reward token goes on the line before. Episodes that failed
    inside the environment (``error``) are skipped.
    """
    samples = []
    for trajectory in trajectories:
        if trajectory.error is not None:
            continue
        system, problem = _problem_text(trajectory)
        actions = [m for m in trajectory.messages if m.role == "assistant"]
        for attempt, (step, action) in enumerate(zip(trajectory.steps, actions, strict=False)):
            good = attempt_passed(step.info)
            feedback = "" if good or not textual_feedback else step.feedback
            token = good_token if good else bad_token
            prompt = f"{token}\n{condition(problem, feedback)}"
            samples.append(
                Trajectory(
                    env_id=trajectory.env_id,
                    task_id=trajectory.task_id,
                    id=f"{trajectory.id}-leti-{attempt}",
                    messages=[
                        *system,
                        Message("user", prompt),
                        Message("assistant", action.content, trainable=True),
                    ],
                    reward=float(good),
                    success=good,
                    policy=trajectory.policy,
                    iteration=trajectory.iteration,
                    metadata={"leti": {"source": trajectory.id, "attempt": attempt, "good": good}},
                )
            )
    return samples


def leti_recipe(bench: Workbench, config: LeTIConfig) -> list[dict[str, Any]]:
    """The LeTI loop; returns one summary row per evaluation."""
    _require_prefix_argument(bench.env_id)
    conditioned = {PREFIX_ARGUMENT: config.good_token}
    bench.train_env_kwargs = {**bench.train_env_kwargs, **conditioned}
    bench.eval_env_kwargs = {**bench.eval_env_kwargs, **conditioned}
    bench.expert_kwargs = {**bench.expert_kwargs, "error_rate": config.expert_error_rate}
    options = {"good_token": config.good_token, "bad_token": config.bad_token,
               "textual_feedback": config.textual_feedback}  # fmt: skip
    rows = [bench.evaluate(0, f"base model ({config.good_token})")]
    env = bench.collector_for("train", expert=True).envs[0]
    condition = feedback_conditioner(env, trainer="leti", env_id=bench.env_id)
    expert = leti_trajectories(
        collect_expert(bench, config.train_tasks, config.expert_episodes_per_task),
        condition,
        **options,
    )
    sampled: list[Trajectory] = []
    for iteration in range(1, config.iterations + 1):
        bench.restore(iteration - 1)  # on resume: the weights this iteration samples from
        specs = task_specs(
            bench, f"it{iteration}", config.train_tasks, config.samples_per_task, iteration
        )
        episodes = bench.collect(f"collect-{iteration}", specs, iteration=iteration)
        new = leti_trajectories(episodes, condition, **options)
        sampled = [*sampled, *new] if config.accumulate else new
        data = [*expert, *sampled]
        bench.run.log(
            {
                "leti/good_samples": sum(t.success for t in data),
                "leti/bad_samples": sum(not t.success for t in data),
            },
            step=iteration,
        )
        bench.finetune(iteration, data)
        rows.append(bench.evaluate(iteration, f"LeTI iteration {iteration}"))
    return rows


def _require_prefix_argument(env_id: str) -> None:
    import gymnasium as gym

    from agentgym.core.registry import EnvFactory

    entry_point = gym.spec(env_id).entry_point
    valid = entry_point.valid_arguments() if isinstance(entry_point, EnvFactory) else []
    if PREFIX_ARGUMENT not in valid:
        raise ValueError(
            f"trainer=leti needs an environment that conditions its prompt on a reward token "
            f"(argument {PREFIX_ARGUMENT!r}); {env_id} has none. Use env=codeexec."
        )
