"""Critic training from environment feedback (``trainer=critic``).

Read top to bottom in :func:`critic_recipe`:

1. collect the policy's own proposals: episodes of the base model (and, if asked, of the
   environment's expert; ``expert.error_rate`` > 0 gives it wrong proposals too) on
   training tasks, and of the base model on held-out tasks;
2. have the oracle critic (:class:`~agentgym.critique.critics.OracleCritic`) critique every
   step of every episode: the environment's own judgement, written in the step-level
   format; each becomes a training conversation (the model critic's prompt -> the oracle's
   critique), stored, so a killed run does not redo it;
3. measure the model *as a critic* on the held-out proposals: its verdicts against the
   environment's (accuracy with a Wilson interval, balanced accuracy, how often it writes
   a readable verdict, precision and recall at finding wrong proposals);
4. fine-tune it on the training critiques (with ``balance=true`` the majority verdict is
   down-sampled to the minority's size, so that a constant verdict is not a solution),
   then measure again; repeat for ``iterations``.

Summary rows: ``success_rate`` is the verdict accuracy, ``mean_reward`` the balanced
accuracy, ``episodes`` the number of held-out proposals.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from agentgym.collector import EpisodeSpec
from agentgym.core.tasks import task_seed
from agentgym.core.trajectory import Message, Trajectory
from agentgym.critique.critics import ModelCritic, OracleCritic, critic_conversation
from agentgym.critique.protocol import CritiqueRequest
from agentgym.critique.refine import step_requests
from agentgym.engines.base import SamplingParams
from agentgym.evaluation import wilson_interval
from agentgym.trainers.common import Workbench
from agentgym.trainers.rft import collect_expert, finetune_from_problems, task_specs

__all__ = [
    "CriticConfig",
    "balance_verdicts",
    "critic_recipe",
    "oracle_critiques",
    "verdict_metrics",
]

#: A proposal to judge and the oracle's critique of it (a training conversation).
Judged = tuple[CritiqueRequest, Trajectory]


@dataclass
class CriticConfig:
    """Critic training from environment feedback.

    Attributes:
        iterations: Fine-tune -> measure rounds on the same critique data.
        train_tasks: Training tasks whose proposals are critiqued (first N of the train split).
        samples_per_task: Policy episodes per training task.
        expert_episodes_per_task: Expert episodes per training task (their steps are
            proposals too; set ``expert.error_rate`` for wrong ones).
        heldout_samples_per_task: Policy episodes per held-out task (``eval.episodes``
            tasks of the held-out split); their steps are the measured proposals.
        balance: Down-sample the majority verdict of the training critiques.
        critique_tokens: Longest critique the model may write when measured.
        finetune_from: ``"previous"`` or ``"base"``, as in RFT.
    """

    iterations: int = 1
    train_tasks: int = 16
    samples_per_task: int = 2
    expert_episodes_per_task: int = 0
    heldout_samples_per_task: int = 1
    balance: bool = True
    critique_tokens: int = 256
    finetune_from: str = "previous"

    def __post_init__(self) -> None:
        problems = finetune_from_problems(self.finetune_from)
        if self.iterations < 1:
            problems.append(f"iterations must be >= 1, got {self.iterations}")
        if self.train_tasks < 1 or self.samples_per_task < 1:
            problems.append("train_tasks and samples_per_task must be >= 1")
        if self.heldout_samples_per_task < 1 or self.critique_tokens < 1:
            problems.append("heldout_samples_per_task and critique_tokens must be >= 1")
        if self.expert_episodes_per_task < 0:
            problems.append("expert_episodes_per_task must be >= 0")
        if not isinstance(self.balance, bool):
            problems.append(f"balance must be true or false, got {self.balance!r}")
        if problems:
            raise ValueError("Invalid critic config: " + "; ".join(problems))


def oracle_critiques(
    bench: Workbench, store_name: str, episodes: list[Trajectory], oracle: OracleCritic
) -> list[Judged]:
    """The oracle's critique of every step of ``episodes``, each as a critic training
    conversation (stored in ``store_name``; stored ones are not redone)."""
    store = bench.run.store(store_name)
    done = {t.id: t for t in store}
    judged: list[Judged] = []
    for episode in episodes:
        if episode.episode_seed is None or episode.error is not None:
            continue
        requests = step_requests(episode)
        ids = [f"critique-{episode.id}-{k}" for k in range(len(requests))]
        missing = [k for k, name in enumerate(ids) if name not in done]
        fresh = []
        for k, critique in zip(missing, oracle.critique([requests[k] for k in missing]),
                               strict=True):  # fmt: skip
            messages = [Message(m["role"], m["content"])
                        for m in critic_conversation(requests[k])]  # fmt: skip
            messages.append(Message("assistant", critique.text, trainable=True))
            fresh.append(Trajectory(
                episode.env_id, episode.task_id, messages=messages, id=ids[k],
                episode_seed=episode.episode_seed, env_kwargs=dict(episode.env_kwargs),
                parent_id=episode.id, restart_step=k, policy=episode.policy,
                reward=float(bool(critique.verdict)), success=bool(critique.verdict),
                metadata={"verdict": critique.verdict, "step": k},
            ))  # fmt: skip
        store.append(fresh)
        done.update({t.id: t for t in fresh})
        judged += [(request, done[name]) for request, name in zip(requests, ids, strict=True)]
    return judged


def balance_verdicts(critiques: list[Trajectory]) -> list[Trajectory]:
    """The critiques with the majority verdict down-sampled to the minority's count.

    The choice is a pure function of the ids. With one verdict only, all are kept.

    >>> make = lambda i, ok: Trajectory("e", "t", id=f"c{i}", metadata={"verdict": ok})
    >>> kept = balance_verdicts([make(0, True), make(1, False), make(2, False), make(3, False)])
    >>> sorted(t.metadata["verdict"] for t in kept)
    [False, True]
    """
    right = [t for t in critiques if t.metadata.get("verdict") is True]
    wrong = [t for t in critiques if t.metadata.get("verdict") is False]
    if not right or not wrong:
        return list(critiques)

    def order(t: Trajectory) -> str:
        return hashlib.blake2b(t.id.encode(), digest_size=8).hexdigest()

    size = min(len(right), len(wrong))
    return sorted(right, key=order)[:size] + sorted(wrong, key=order)[:size]


def verdict_metrics(truth: list[bool], verdicts: list[bool | None]) -> dict[str, Any]:
    """A critic's verdicts against the environment's (``None``: no readable verdict, a miss).

    >>> metrics = verdict_metrics([True, False, False, True], [True, False, None, False])
    >>> metrics["accuracy"], metrics["balanced_accuracy"], metrics["readable"]
    (0.5, 0.5, 0.75)
    """
    total = len(truth)
    pairs = list(zip(truth, verdicts, strict=True))
    hits = sum(v is not None and v == t for t, v in pairs)
    right = [v for t, v in pairs if t]
    wrong = [v for t, v in pairs if not t]
    recalls = []
    if right:
        recalls.append(sum(v is True for v in right) / len(right))
    if wrong:
        recalls.append(sum(v is False for v in wrong) / len(wrong))
    flagged = sum(v is False for v in verdicts)
    return {
        "proposals": total,
        "correct_proposals": len(right),
        "accuracy": round(hits / total, 4) if total else 0.0,
        "accuracy_ci95": list(wilson_interval(hits, total)),
        "balanced_accuracy": round(sum(recalls) / len(recalls), 4) if recalls else 0.0,
        "readable": round(sum(v is not None for v in verdicts) / total, 4) if total else 0.0,
        "wrong_precision": round(sum(v is False for v in wrong) / flagged, 4) if flagged else None,
        "wrong_recall": round(sum(v is False for v in wrong) / len(wrong), 4) if wrong else None,
    }


def measure(
    bench: Workbench, iteration: int, label: str, heldout: list[Judged], config: CriticConfig
) -> dict[str, Any]:
    """The model's verdicts on the held-out proposals against the oracle's (a ledger phase)."""

    def work() -> dict[str, Any]:
        sampling = SamplingParams(temperature=0.0, max_tokens=config.critique_tokens)
        critic = ModelCritic(bench.engine, sampling=sampling)
        verdicts = [c.verdict for c in critic.critique([request for request, _ in heldout])]
        truth = [bool(critique.metadata["verdict"]) for _, critique in heldout]
        metrics = verdict_metrics(truth, verdicts)
        numbers = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        bench.run.log({f"critic/{k}": v for k, v in numbers.items()}, step=iteration)
        return {
            "stage": label, "iteration": iteration, "episodes": metrics["proposals"],
            "success_rate": metrics["accuracy"], "success_ci95": metrics["accuracy_ci95"],
            "mean_reward": metrics["balanced_accuracy"], "reward_ci95": None, **metrics,
        }  # fmt: skip

    return bench.phase("critic_eval", iteration, work)


def heldout_specs(bench: Workbench, per_task: int) -> list[EpisodeSpec]:
    """``per_task`` episodes on each of the first ``eval.episodes`` held-out tasks."""
    tasks = bench.collector_for("eval").envs[0].unwrapped.tasks
    return [
        EpisodeSpec(f"heldout-{tasks.id_at(i)}-s{j}", task_id=tasks.id_at(i),
                    seed=task_seed(bench.seed, 10_000_000 + i * 1000 + j) % (2**31))
        for i in range(min(bench.eval_episodes, len(tasks)))
        for j in range(per_task)
    ]  # fmt: skip


def critic_recipe(bench: Workbench, config: CriticConfig) -> list[dict[str, Any]]:
    """Collect proposals, critique them with the oracle, train and measure the critic."""
    bench.restore(0)  # the proposals are the base policy's
    specs = task_specs(bench, "train", config.train_tasks, config.samples_per_task, 0)
    episodes = bench.collect("proposals-train", specs, iteration=0, namespace="proposals")
    episodes += collect_expert(bench, config.train_tasks, config.expert_episodes_per_task)
    heldout_episodes = bench.collect(
        "proposals-heldout", heldout_specs(bench, config.heldout_samples_per_task),
        iteration=0, split="eval", namespace="heldout_proposals",
    )  # fmt: skip
    with OracleCritic() as oracle:
        train = [critique for _, critique in oracle_critiques(bench, "critiques-train",
                                                              episodes, oracle)]  # fmt: skip
        heldout = oracle_critiques(bench, "critiques-heldout", heldout_episodes, oracle)
    data = balance_verdicts(train) if config.balance else train
    wrong = sum(t.metadata["verdict"] is False for t in data)
    bench.phase("critiques", 0, lambda: _log_data(bench, len(train), len(data), wrong))
    rows = [measure(bench, 0, "base model as critic", heldout, config)]
    for iteration in range(1, config.iterations + 1):
        bench.restore(iteration - 1)
        bench.finetune(iteration, data, from_base=config.finetune_from == "base")
        rows.append(measure(bench, iteration, f"critic iteration {iteration}", heldout, config))
    return rows


def _log_data(bench: Workbench, critiques: int, examples: int, wrong: int) -> dict[str, int]:
    counts = {"train_critiques": critiques, "train_examples": examples, "train_wrong": wrong}
    bench.run.log({f"critic/{k}": v for k, v in counts.items()}, step=0)
    return counts
