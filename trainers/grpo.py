"""GRPO for multi-turn agents: learn from the environment's reward (``trainer=grpo``).

Read top to bottom in :func:`grpo_recipe`:

1. evaluate the base model; optionally warm-start with SFT on the expert's successes (a
   policy that never succeeds gives a group-relative method nothing to learn from);
2. each iteration: sample ``G`` episodes for each of ``tasks_per_iteration`` training
   tasks (one group per task, different sampling seeds); compute group-relative advantages
   per episode or per turn (:mod:`agentgym.trainers.advantages`); drop and count the groups
   whose rewards are all equal (dynamic sampling); turn every remaining episode into one
   example whose policy turns carry their advantage and the log-probs they were sampled
   with, observation tokens masked (:func:`~agentgym.trainers.data.policy_gradient_example`);
   take ``epochs x mini_batches`` optimizer steps of the clipped objective
   (:class:`~agentgym.trainers.objectives.PolicyGradientObjective`) with **one** optimizer
   and schedule for the whole run; save weights and optimizer state together; sync the
   engine and verify it serves the new weights (:mod:`agentgym.trainers.sync`);
3. evaluate every ``eval_every`` iterations (held-out, and out of distribution when
   ``ood_env_kwargs`` is set).

The log-prob rule: ratios compare the current policy's and the behaviour policy's
log-probs of each sampled token under the distribution actually sampled from
(``softmax(logits / T)`` over the top-p nucleus, see
:func:`~agentgym.trainers.objectives.sampling_logprobs`). The behaviour log-probs are the
engine's (``behaviour_logprobs="engine"``) or recomputed by the trainer before the update
(``"trainer"``, which removes the engine/trainer numeric mismatch).

Resuming: each iteration's episodes are in their own store (a killed collection continues
where it stopped), and an update is committed with its checkpoint (weights + optimizer +
schedule, published atomically) before the ledger marks it done; a run killed mid-update
redoes that update from the previous checkpoint, so no update is lost or applied twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.collector import EpisodeSpec
from agentgym.core.tasks import task_seed
from agentgym.core.trajectory import Trajectory
from agentgym.trainers.advantages import (
    ADVANTAGE_ESTIMATORS,
    discounted_returns,
    episode_advantages,
    informative,
    turn_advantages,
    turn_rewards,
)
from agentgym.trainers.batching import batches
from agentgym.trainers.common import Workbench
from agentgym.trainers.data import TrainingExample, policy_gradient_example
from agentgym.trainers.learner import Learner, score_examples
from agentgym.trainers.objectives import NORMALISATIONS, PolicyGradientObjective
from agentgym.trainers.rft import collect_expert
from agentgym.trainers.selection import select_successes

__all__ = [
    "GRPOConfig",
    "PolicyState",
    "build_examples",
    "group_advantages",
    "grpo_recipe",
    "iteration_tasks",
]

BEHAVIOUR_SOURCES = ("engine", "trainer")


@dataclass
class GRPOConfig:
    """Group-relative policy optimisation.

    Attributes:
        iterations: Sample -> update rounds.
        train_tasks: Training tasks (the first N of the train split), visited in a seeded
            order, ``tasks_per_iteration`` per iteration.
        tasks_per_iteration: Groups per iteration (N).
        group_size: Episodes per task (G).
        advantage: ``"episode"`` (GRPO) or ``"turn"`` (per-turn progress credit).
        std_normalise: Divide advantages by the group's standard deviation.
        gamma: Discount of the per-turn returns (``advantage="turn"``).
        learning_rate: Peak AdamW learning rate (one optimizer for the whole run).
        warmup_steps: Linear warmup, in optimizer steps.
        schedule: ``"constant"`` or ``"cosine"`` over all planned steps.
        weight_decay / max_grad_norm: AdamW decay and gradient clipping.
        epochs: Passes over each iteration's batch.
        mini_batches: Optimizer steps per pass (the batch is split this many ways).
        clip_low / clip_high: Ratio clipping (DAPO clip-higher: 0.2 / 0.28).
        kl_coef: Weight of the k3 KL penalty to the reference policy (the warm-started
            policy; with LoRA the adapter-disabled base model).
        entropy_coef: Weight of the entropy bonus.
        normalisation: ``"token"`` (DAPO), ``"sequence"`` (GRPO) or ``"constant"`` (Dr. GRPO;
            the constant is the rollout's token budget, ``max_context_tokens``).
        behaviour_logprobs: ``"engine"`` (as sampled) or ``"trainer"`` (recomputed).
        warm_start_tasks: SFT on the expert's successes on this many training tasks first
            (0: start from the model as it is).
        warm_start_expert_episodes: Expert episodes per warm-start task.
        warm_start_epochs / warm_start_learning_rate: The warm start's SFT epochs and
            learning rate (``None``: the ``sft`` section's).
        eval_every: Evaluate every this many iterations (and after the last).
        ood_env_kwargs: Environment arguments of an out-of-distribution evaluation (merged
            over the held-out ones), e.g. a category or backend never trained on.
        keep_checkpoints: Keep every iteration's checkpoint (``False``: only the newest,
            which resuming needs).
    """

    # Defaults equal configs/trainer/grpo.yaml (tests/test_config_defaults.py checks it).
    iterations: int = 4
    train_tasks: int = 32
    tasks_per_iteration: int = 4
    group_size: int = 8
    advantage: str = "episode"
    std_normalise: bool = True
    gamma: float = 1.0
    learning_rate: float = 2e-6
    warmup_steps: int = 0
    schedule: str = "constant"
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    epochs: int = 1
    mini_batches: int = 2
    clip_low: float = 0.2
    clip_high: float = 0.28
    kl_coef: float = 0.0
    entropy_coef: float = 0.0
    normalisation: str = "token"
    behaviour_logprobs: str = "engine"
    warm_start_tasks: int = 32
    warm_start_expert_episodes: int = 1
    warm_start_epochs: int | None = 3
    warm_start_learning_rate: float | None = None
    eval_every: int = 2
    ood_env_kwargs: dict[str, Any] | None = None
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
        problems = config_problems(self)
        if problems:
            raise ValueError("Invalid GRPO config: " + "; ".join(problems))


def config_problems(config: Any) -> list[str]:
    """Every problem with a :class:`GRPOConfig`'s values (also used by ``envtune``)."""
    problems: list[str] = []
    for name in ("iterations", "train_tasks", "tasks_per_iteration", "group_size", "epochs",
                 "mini_batches", "eval_every"):  # fmt: skip
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"{name} must be an integer >= 1, got {value!r}")
    for name in ("warm_start_tasks", "warm_start_expert_episodes", "warmup_steps"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(f"{name} must be an integer >= 0, got {value!r}")
    for name in ("std_normalise", "keep_checkpoints"):
        if not isinstance(getattr(config, name), bool):
            problems.append(f"{name} must be true or false, got {getattr(config, name)!r}")
    epochs = config.warm_start_epochs
    if epochs is not None and (
        isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1
    ):
        problems.append(f"warm_start_epochs must be an integer >= 1 or null, got {epochs!r}")
    rate = config.warm_start_learning_rate
    if rate is not None and (not isinstance(rate, int | float) or rate <= 0):
        problems.append(f"warm_start_learning_rate must be > 0 or null, got {rate!r}")
    if isinstance(config.group_size, int) and config.group_size == 1:
        problems.append("group_size must be >= 2 (a group of one has no relative advantage)")
    choices = {
        "advantage": ADVANTAGE_ESTIMATORS,
        "normalisation": NORMALISATIONS,
        "behaviour_logprobs": BEHAVIOUR_SOURCES,
        "schedule": ("constant", "cosine"),
    }
    for name, valid in choices.items():
        if getattr(config, name) not in valid:
            problems.append(
                f"{name} must be one of {', '.join(valid)}; got {getattr(config, name)!r}"
            )
    if not isinstance(config.learning_rate, int | float) or config.learning_rate <= 0:
        problems.append(f"learning_rate must be > 0, got {config.learning_rate!r}")
    if not 0 < config.gamma <= 1:
        problems.append(f"gamma must be in (0, 1], got {config.gamma!r}")
    try:
        PolicyGradientObjective(
            clip_low=config.clip_low, clip_high=config.clip_high, kl_coef=config.kl_coef,
            entropy_coef=config.entropy_coef,
        )  # fmt: skip
    except (ValueError, TypeError) as exc:
        problems.append(str(exc))
    if config.ood_env_kwargs is not None and not isinstance(config.ood_env_kwargs, Mapping):
        problems.append(f"ood_env_kwargs must be a mapping or null, got {config.ood_env_kwargs!r}")
    return problems


# ---------------------------------------------------------------------- pure pieces --


def iteration_tasks(train_tasks: int, per_iteration: int, iteration: int, seed: int) -> list[int]:
    """Task indices of ``iteration`` (1-based): a seeded order of the tasks, cycled through.

    >>> iteration_tasks(4, 3, 1, seed=0), iteration_tasks(4, 3, 2, seed=0)
    ([2, 0, 1], [3, 2, 0])
    """
    order = list(range(train_tasks))
    random.Random(seed).shuffle(order)
    start = (iteration - 1) * per_iteration
    return [order[(start + k) % train_tasks] for k in range(min(per_iteration, train_tasks))]


def _policy_turns(trajectory: Trajectory) -> int:
    return sum(1 for message in trajectory.messages if message.trainable)


def group_advantages(
    group: Sequence[Trajectory], *, estimator: str, std_normalise: bool, gamma: float
) -> list[list[float]]:
    """One advantage per policy turn of each episode of a group (see ``advantages``).

    >>> from agentgym.core.trajectory import Message, Step
    >>> def episode(reward, progress):
    ...     t = Trajectory("env", "task", reward=reward)
    ...     for p in progress:
    ...         t.messages.append(Message("assistant", "a", trainable=True))
    ...         t.steps.append(Step("a", "o", 0.0, progress=p))
    ...     return t
    >>> group = [episode(1.0, [1.0, 1.0]), episode(0.0, [0.0, 0.0])]
    >>> group_advantages(group, estimator="episode", std_normalise=False, gamma=1.0)
    [[0.5, 0.5], [-0.5, -0.5]]
    >>> group_advantages(group, estimator="turn", std_normalise=False, gamma=1.0)
    [[0.5, 0.0], [-0.5, 0.0]]
    """
    rewards = [float(t.reward) for t in group]
    if estimator == "episode":
        values = episode_advantages(rewards, std_normalise=std_normalise)
        return [[value] * _policy_turns(t) for value, t in zip(values, group, strict=True)]
    returns = []
    for trajectory, reward in zip(group, rewards, strict=True):
        turns = _policy_turns(trajectory)
        # The k-th policy turn produced the k-th step (an environment error can leave the
        # last turn without a step: its progress is unknown, so it keeps the previous one).
        progress = [step.progress for step in trajectory.steps[:turns]]
        progress += [None] * (turns - len(progress))
        returns.append(
            discounted_returns(turn_rewards(progress, episode_reward=reward), gamma=gamma)
        )
    return turn_advantages(returns, std_normalise=std_normalise)


def build_examples(
    trajectories: Sequence[Trajectory],
    *,
    estimator: str,
    std_normalise: bool,
    gamma: float,
    max_length: int | None,
) -> tuple[list[TrainingExample], dict[str, float]]:
    """Policy-gradient examples of one iteration's groups, and what was kept or dropped.

    Groups are the episodes of one task; a group whose advantages are all zero carries no
    signal and is dropped (counted in ``groups_dropped``).
    """
    groups: dict[str, list[Trajectory]] = defaultdict(list)
    for trajectory in trajectories:
        groups[trajectory.task_id].append(trajectory)
    examples: list[TrainingExample] = []
    dropped = 0
    for task_id in sorted(groups):
        group = sorted(groups[task_id], key=lambda t: t.id)
        advantages = group_advantages(
            group, estimator=estimator, std_normalise=std_normalise, gamma=gamma
        )
        rewards = [float(t.reward) for t in group]
        flat = [a for row in advantages for a in row]
        signal = (
            informative(rewards) if estimator == "episode" else any(abs(a) > 1e-9 for a in flat)
        )
        if len(group) < 2 or not signal:
            dropped += 1
            continue
        for trajectory, row in zip(group, advantages, strict=True):
            if row:
                examples.append(policy_gradient_example(trajectory, row, max_length=max_length))
    stats = {
        "groups": len(groups),
        "groups_kept": len(groups) - dropped,
        "groups_dropped": dropped,
        "examples": len(examples),
    }
    return examples, stats


def _data_digest(examples: Sequence[TrainingExample]) -> str:
    """A short digest of the trained data (the ledger records what each update used)."""
    digest = hashlib.blake2b(digest_size=8)
    for example in examples:
        digest.update(example.trajectory_id.encode())
        digest.update(repr(example.advantages).encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------- the policy --


@dataclass
class PolicyState:
    """The learner, objective and the reference policy of a policy-gradient run.

    ``updates_done`` says which update's weights the model holds (``0``: the starting
    policy), so that :meth:`restore` reads a checkpoint only when resuming.
    """

    bench: Workbench
    learner: Learner
    objective: PolicyGradientObjective
    config: Any
    start_iteration: int
    reference: Any = None
    updates_done: int = 0
    extra_state: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, bench: Workbench, config: Any, *, start_iteration: int) -> PolicyState:
        """One learner (AdamW + schedule) for every update of the run."""
        planned = config.iterations * config.epochs * config.mini_batches
        learner = Learner(
            bench.model,
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            warmup_steps=config.warmup_steps,
            total_steps=planned,
            schedule=config.schedule,
            max_grad_norm=config.max_grad_norm,
            packing=bench.sft.packing,
            pad_token_id=bench.tokenizer.pad_token_id or 0,
            gradient_checkpointing=bench.sft.gradient_checkpointing,
            prefix_sharing=bench.sft.prefix_sharing,
            max_tree_tokens=bench.sft.max_tokens_per_micro_batch,
        )
        objective = PolicyGradientObjective(
            clip_low=config.clip_low,
            clip_high=config.clip_high,
            kl_coef=config.kl_coef,
            entropy_coef=config.entropy_coef,
            normalisation=config.normalisation,
            temperature=bench.sampling.temperature,
            top_p=bench.sampling.top_p,
        )
        return cls(bench, learner, objective, config, start_iteration)

    def checkpoint_name(self, update: int) -> str:
        return f"policy-{update}"

    def restore(self, updates: int) -> None:
        """Bring the model, optimizer and engine to the state after ``updates`` updates."""
        if updates == self.updates_done:
            return
        bench = self.bench
        if updates == 0:
            bench.restore(self.start_iteration)
            self.learner = PolicyState.create(
                bench, self.config, start_iteration=self.start_iteration
            ).learner
        else:
            name = self.checkpoint_name(updates)
            path = bench.run.checkpoint(name)
            state = bench.run.trainer_state(name)
            if path is None or state is None:
                raise RuntimeError(
                    f"cannot resume: checkpoint {name!r} with its optimizer state is missing "
                    f"from {bench.run.path}"
                )
            bench.load_checkpoint(path)
            self.learner.load_state_dict(state["learner"])
            self.extra_state = dict(state.get("extra", {}))
            bench.sync_engine(self.learner.steps_done)
        self.updates_done = updates

    def reference_model(self) -> Any:
        """The KL reference: the starting policy (LoRA: the adapter-disabled base model)."""
        if self.reference is None and not _is_lora(self.bench.model):
            self.reference = _frozen_copy_of_start(self.bench, self.start_iteration)
        return self.reference

    def update(self, iteration: int, examples: Sequence[TrainingExample]) -> dict[str, Any]:
        """Optimizer steps on one iteration's examples; checkpoint and sync after them."""
        bench, config = self.bench, self.config
        pad = bench.tokenizer.pad_token_id or 0
        budget = bench.sft.max_tokens_per_micro_batch
        temperature, top_p = self.objective.temperature, self.objective.top_p
        if config.behaviour_logprobs == "trainer":
            examples = score_examples(
                bench.model,
                examples,
                "behaviour_logprobs",
                temperature=temperature,
                top_p=top_p,
                max_tokens_per_micro_batch=budget,
                pad_token_id=pad,
                prefix_sharing=bench.sft.prefix_sharing,
            )
        if self.objective.needs_reference:
            examples = self._with_reference(examples, temperature, top_p, budget, pad)
        rng = random.Random(task_seed(bench.seed, 7919 + iteration))
        per_step = max(1, math.ceil(len(examples) / config.mini_batches))
        history = []
        for _ in range(config.epochs):
            for micro_batches in batches(
                examples,
                batch_size=per_step,
                micro_batch_size=bench.sft.micro_batch_size,
                max_tokens_per_micro_batch=budget,
                rng=rng,
                packing=bench.sft.packing,
            ):
                metrics = self.learner.step(
                    micro_batches, self.objective, constant=float(bench.max_context_tokens)
                )
                history.append(metrics)
                bench.run.log(
                    {f"train/{k}": v for k, v in metrics.items() if k != "step"},
                    step=self.learner.steps_done,
                )
        return {
            "optimizer_steps": len(history),
            "learner_steps_done": self.learner.steps_done,
            "trained_tokens": sum(int(h["trained_tokens"]) for h in history),
            "data_digest": _data_digest(examples),
            **{
                f"last_{k}": history[-1][k]
                for k in ("loss", "clip_fraction", "approx_kl", "kl", "entropy", "grad_norm")
                if history and k in history[-1]
            },
        }

    def _with_reference(
        self, examples: Sequence[TrainingExample], temperature: float, top_p: float,
        budget: int, pad: int,
    ) -> list[TrainingExample]:  # fmt: skip
        model = self.bench.model
        settings = {"temperature": temperature, "top_p": top_p,
                    "max_tokens_per_micro_batch": budget, "pad_token_id": pad,
                    "prefix_sharing": self.bench.sft.prefix_sharing}  # fmt: skip
        if _is_lora(model):
            with model.disable_adapter():
                return score_examples(model, examples, "reference_logprobs", **settings)
        return score_examples(self.reference_model(), examples, "reference_logprobs", **settings)

    def commit(self, iteration: int, extra: Mapping[str, Any] | None = None) -> None:
        """Save weights + optimizer + schedule as one checkpoint, then sync the engine."""
        bench = self.bench
        self.extra_state = dict(extra or {})
        bench.run.save_checkpoint(
            self.checkpoint_name(iteration),
            bench.model,
            bench.tokenizer,
            trainer_state={"learner": self.learner.state_dict(), "extra": self.extra_state},
        )
        bench.sync_engine(self.learner.steps_done)
        self.updates_done = iteration

    def prune(self, iteration: int) -> None:
        """Drop the previous update's checkpoint once this one is recorded as done."""
        if not self.config.keep_checkpoints and iteration > 1:
            self.bench.run.remove_checkpoint(self.checkpoint_name(iteration - 1))


def _is_lora(model: Any) -> bool:
    from agentgym.trainers.lora import is_lora

    return is_lora(model)


def _frozen_copy_of_start(bench: Workbench, start_iteration: int) -> Any:
    """A frozen copy of the policy the run started from (warm-start checkpoint or base)."""
    from transformers import AutoModelForCausalLM

    path = None
    for k in range(start_iteration, 0, -1):
        path = bench.run.checkpoint(f"iter-{k}")
        if path is not None:
            break
    source = path if path is not None else bench.base_model_path
    if source is None:
        raise ValueError("a KL penalty with full fine-tuning needs the base model's path")
    reference = AutoModelForCausalLM.from_pretrained(source, dtype=bench.model.dtype)
    reference.to(next(bench.model.parameters()).device).eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return reference


# ---------------------------------------------------------------------- the recipe --


def group_specs(
    bench: Workbench,
    iteration: int,
    task_indices: Sequence[int],
    group_size: int,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    prefix: str = "grpo",
) -> list[EpisodeSpec]:
    """``group_size`` episodes of each task, with stable ids and distinct sampling seeds."""
    tasks = bench.collector_for("train", expert=True, env_kwargs=env_kwargs).envs[0].unwrapped.tasks
    return [
        EpisodeSpec(
            f"{prefix}{iteration}-{tasks.id_at(i)}-g{j}",
            task_id=tasks.id_at(i),
            seed=task_seed(bench.seed + iteration, i * 1000 + j) % (2**31),
        )
        for i in task_indices
        for j in range(group_size)
    ]


def warm_start(bench: Workbench, config: Any) -> list[dict[str, Any]]:
    """Evaluate the base model and, if configured, SFT it on the expert's successes."""
    rows = [bench.evaluate(0, "base model")]
    if config.warm_start_tasks == 0:
        return rows
    bench.restore(1)
    expert = select_successes(
        collect_expert(bench, config.warm_start_tasks, config.warm_start_expert_episodes)
    )
    changes: dict[str, Any] = {}
    if config.warm_start_epochs is not None:
        changes["epochs"] = config.warm_start_epochs
    if config.warm_start_learning_rate is not None:
        changes["learning_rate"] = float(config.warm_start_learning_rate)
    policy_sft = bench.sft
    bench.sft = dataclasses.replace(policy_sft, **changes)
    try:
        bench.finetune(1, expert)
    finally:
        bench.sft = policy_sft  # the memory settings of later updates come from `sft`
    rows.append(bench.evaluate(1, "SFT warm start"))
    return rows


def rl_iteration(
    state: PolicyState,
    iteration: int,
    task_indices: Sequence[int],
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Collect one iteration's groups, update the policy, commit; returns the update's record."""
    bench, config = state.bench, state.config
    if bench.run.done("update", iteration):  # resumed run: nothing to redo
        return dict(bench.run.result("update", iteration) or {})
    state.restore(iteration - 1)  # on resume: the policy this iteration samples from
    specs = group_specs(bench, iteration, task_indices, config.group_size, env_kwargs=env_kwargs)
    trajectories = bench.collect(f"rollout-{iteration}", specs, iteration=iteration,
                                 env_kwargs=env_kwargs, namespace="rollout")  # fmt: skip

    def work() -> dict[str, Any]:
        examples, counts = build_examples(
            trajectories,
            estimator=config.advantage,
            std_normalise=config.std_normalise,
            gamma=config.gamma,
            max_length=bench.max_context_tokens,
        )
        bench.run.log({f"rl/{k}": v for k, v in counts.items()}, step=iteration)
        result: dict[str, Any] = {**counts}
        if examples:
            result.update(state.update(iteration, examples))
        state.commit(iteration, extra)
        return result

    result = bench.phase("update", iteration, work)
    state.prune(iteration)
    return result


def grpo_recipe(bench: Workbench, config: GRPOConfig) -> list[dict[str, Any]]:
    """The GRPO loop; returns one summary row per evaluation."""
    rows = warm_start(bench, config)
    start = 1 if config.warm_start_tasks else 0
    state = PolicyState.create(bench, config, start_iteration=start)
    bench.restore(start)
    ood = None if config.ood_env_kwargs is None else {**bench.eval_env_kwargs,
                                                      **config.ood_env_kwargs}  # fmt: skip
    if ood is not None:
        rows.append(bench.evaluate(start, "start (out of distribution)", name="ood",
                                   env_kwargs=ood))  # fmt: skip
    for iteration in range(1, config.iterations + 1):
        tasks = iteration_tasks(config.train_tasks, config.tasks_per_iteration, iteration,
                                bench.seed)  # fmt: skip
        rl_iteration(state, iteration, tasks)
        if iteration % config.eval_every == 0 or iteration == config.iterations:
            index = start + iteration
            if not bench.run.done("eval", index):
                state.restore(iteration)
            rows.append(bench.evaluate(index, f"GRPO iteration {iteration}"))
            if ood is not None:
                label = f"GRPO iteration {iteration} (out of distribution)"
                rows.append(bench.evaluate(index, label, name="ood", env_kwargs=ood))
    return rows
