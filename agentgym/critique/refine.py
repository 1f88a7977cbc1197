"""Refining failed episodes with a critic: the data side of critique-guided self-training.

Given the policy's failed episodes, :func:`refine_failures` does what Xi et al. (arXiv
2411.16579) do with wrong answers, step by step for multi-step environments:

1. **locate**: the critic judges the episode's steps in order (one batched call per
   depth) until it finds a wrong one; the critique of that step is the one to act on;
2. **refine**: the actor answers the same state again, now with its wrong proposal and the
   critique in the conversation (:func:`~agentgym.critique.protocol.refinement_prompt`),
   ``samples`` times; a refinement the critic still rejects is refined again, up to
   ``rounds`` rounds;
3. **judge**: each refinement is tried on a copy of the episode (deterministic replay);
   one that does not end the episode is continued by the policy through the rollout
   collector (a restart from the refined state, as EEF restarts from expert states);
4. **keep at most one per critique**: the first refinement whose episode succeeds.

Every failure leaves one record in the store (``refine-<id>``): the kept refinement, or
the failed attempt with why it failed, so a killed run resumes without redoing any.
:func:`critique_example` turns a kept record into a "(task, wrong proposal, critique) ->
refinement" training example. Trajectories here are rebuilt from their text; training
tokenises them with the chat template.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.core.env import InfoKeys
from agentgym.core.trajectory import Message, Step, Trajectory, TrajectoryStore
from agentgym.critique.critics import Critic
from agentgym.critique.oracle import Trial, TrialRunner
from agentgym.critique.protocol import (
    Critique,
    CritiqueRequest,
    parse_critique,
    refinement_prompt,
)
from agentgym.engines.base import Engine, SamplingParams

__all__ = [
    "RefineSettings",
    "critique_example",
    "episode_view",
    "refine_failures",
    "refinement_id",
    "step_requests",
]


def refinement_id(trajectory_id: str) -> str:
    """The store id of a failure's refinement record."""
    return f"refine-{trajectory_id}"


@dataclass(frozen=True)
class RefineSettings:
    """How failures are refined.

    Attributes:
        rounds: Refinement rounds per sample (a refinement the critic rejects is refined
            again with the new critique).
        samples: Refinements sampled per critique (at most one is kept).
        min_reward: A refined episode succeeds when it succeeds and earns at least this.
    """

    rounds: int = 1
    samples: int = 1
    min_reward: float = 1.0

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.samples < 1:
            raise ValueError("rounds and samples per critique must be >= 1")


@dataclass
class _Episode:
    """The parts of a stored episode a critique and a refinement need."""

    trajectory: Trajectory
    system_prompt: str
    observations: list[tuple[str, str]]  # (role, text) of the state before each step
    step: int = 0  # the step under review
    critique: Critique | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)


def episode_view(trajectory: Trajectory) -> tuple[str, list[tuple[str, str]]]:
    """``(system prompt, observations)``: ``observations[k]`` is what the policy saw before
    step ``k`` (the first observation, then the answer to each step).

    >>> t = Trajectory("e", "t", messages=[Message("system", "be brief"), Message("user", "2+2?")],
    ...                steps=[Step("4", "right", 1.0, info={"observation_role": "user"})])
    >>> episode_view(t)
    ('be brief', [('user', '2+2?'), ('user', 'right')])
    """
    messages = trajectory.messages
    system = messages[0].content if messages and messages[0].role == "system" else ""
    first = next((m.content for m in messages if m.role == "user"), "")
    observations = [("user", first)]
    for step in trajectory.steps:
        observations.append((str(step.info.get(InfoKeys.OBSERVATION_ROLE, "user")),
                             step.observation))  # fmt: skip
    return system, observations


def _transcript(episode: _Episode, upto: int) -> tuple[tuple[str, str], ...]:
    parts = [episode.observations[0]]
    for k in range(upto):
        parts += [("assistant", episode.trajectory.steps[k].action), episode.observations[k + 1]]
    return tuple(parts)


def _conversation(episode: _Episode, upto: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": episode.system_prompt}] if episode.system_prompt \
        else []  # fmt: skip
    return messages + [{"role": role, "content": text} for role, text in
                       _transcript(episode, upto)]  # fmt: skip


def _request(episode: _Episode, step: int, proposal: str) -> CritiqueRequest:
    trajectory = episode.trajectory
    assert trajectory.episode_seed is not None
    return CritiqueRequest(
        env_id=trajectory.env_id, env_kwargs=trajectory.env_kwargs, task_id=trajectory.task_id,
        episode_seed=trajectory.episode_seed,
        actions=tuple(s.action for s in trajectory.steps[:step]), proposal=proposal,
        system_prompt=episode.system_prompt, transcript=_transcript(episode, step),
    )  # fmt: skip


def step_requests(trajectory: Trajectory) -> list[CritiqueRequest]:
    """One critique request per step of a stored episode: the state before it, its action."""
    if trajectory.episode_seed is None:
        raise ValueError(f"Trajectory {trajectory.id} has no episode_seed; it cannot be replayed.")
    system, observations = episode_view(trajectory)
    episode = _Episode(trajectory, system, observations)
    return [_request(episode, k, step.action) for k, step in enumerate(trajectory.steps)]


def _seed(base: int | None, *parts: object) -> int:
    text = "/".join(str(part) for part in (base, *parts))
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (2**31)


def _locate(critic: Critic, episodes: list[_Episode]) -> None:
    """Critique each episode's steps in order until one is judged wrong (batched by depth)."""
    pending = [e for e in episodes if e.trajectory.steps]
    depth = 0
    while pending:
        requests = [_request(e, depth, e.trajectory.steps[depth].action) for e in pending]
        critiques = critic.critique(requests)
        still = []
        for episode, critique in zip(pending, critiques, strict=True):
            if critique.verdict is False:
                episode.step, episode.critique = depth, critique
            elif depth + 1 < len(episode.trajectory.steps):
                still.append(episode)
        pending = still
        depth += 1


def _generate(engine: Engine, conversations: list[list[dict[str, str]]], seeds: list[int],
              sampling: SamplingParams) -> list[str]:  # fmt: skip
    if not conversations:
        return []
    params = sampling.with_(n=1, prompt_seeds=tuple(seeds))
    return [choices[0].text for choices in engine.chat(conversations, params)]


@dataclass
class _Attempt:
    """One refinement: its text, the critique it answered, and the episode it led to."""

    episode: _Episode
    sample: int
    text: str
    critique: Critique
    round: int
    result: Trajectory | None = None


def _refine(
    engine: Engine,
    critic: Critic,
    episodes: list[_Episode],
    settings: RefineSettings,
    sampling: SamplingParams,
) -> list[_Attempt]:
    """Every sample's final refinement (refined again while the critic rejects it)."""
    current = [
        _Attempt(e, j, e.trajectory.steps[e.step].action, e.critique, 0)
        for e in episodes
        if e.critique is not None
        for j in range(settings.samples)
    ]
    finished: list[_Attempt] = []
    for round_number in range(1, settings.rounds + 1):
        conversations = [
            [
                *_conversation(a.episode, a.episode.step),
                {"role": "assistant", "content": a.text},
                {"role": "user", "content": refinement_prompt(a.critique)},
            ]
            for a in current
        ]
        seeds = [_seed(sampling.seed, a.episode.trajectory.id, a.sample, round_number)
                 for a in current]  # fmt: skip
        texts = _generate(engine, conversations, seeds, sampling)
        refined = [dataclasses.replace(a, text=text, round=round_number)
                   for a, text in zip(current, texts, strict=True)]  # fmt: skip
        if round_number == settings.rounds:
            finished += refined
            break
        verdicts = critic.critique([_request(a.episode, a.episode.step, a.text) for a in refined])
        current = []
        for attempt, verdict in zip(refined, verdicts, strict=True):
            if verdict.verdict is False:  # refine again, answering the new critique
                current.append(dataclasses.replace(attempt, critique=verdict))
            else:
                finished.append(attempt)
        if not current:
            break
    return finished


def _refined_trajectory(episode: _Episode, refinement: str, trial: Trial) -> Trajectory:
    """The episode with its wrong step replaced by ``refinement`` (which ended it)."""
    original = episode.trajectory
    k = episode.step
    messages = [Message(m["role"], m["content"], trainable=m["role"] == "assistant")
                for m in _conversation(episode, k)]  # fmt: skip
    role = str(trial.info.get(InfoKeys.OBSERVATION_ROLE, "user"))
    messages += [Message("assistant", refinement, trainable=True), Message(role, trial.observation)]
    step = Step(
        action=refinement, observation=trial.observation, reward=trial.reward,
        terminated=trial.terminated, truncated=trial.truncated,
        action_valid=bool(trial.info.get(InfoKeys.ACTION_VALID, True)),
        feedback=str(trial.info.get(InfoKeys.FEEDBACK, "")),
        progress=trial.info.get(InfoKeys.PROGRESS),
    )  # fmt: skip
    steps = [*original.steps[:k], step]
    return Trajectory(
        env_id=original.env_id, task_id=original.task_id, messages=messages, steps=steps,
        episode_seed=original.episode_seed, env_kwargs=dict(original.env_kwargs),
        policy=original.policy, parent_id=original.id, restart_step=k,
        reward=sum(s.reward for s in steps), success=bool(trial.success),
        terminated=trial.terminated, truncated=trial.truncated and not trial.terminated,
        truncation_reason="max_episode_steps" if trial.truncated and not trial.terminated
        else None,
        verdicts=dict(trial.info.get(InfoKeys.VERDICTS) or {}),
        feedback=str(trial.info.get(InfoKeys.FEEDBACK, "")),
    )  # fmt: skip


def _continuation_parent(episode: _Episode, refinement: str, trial: Trial) -> Trajectory:
    """A parent for a collector restart: the original steps up to the refined one, then it."""
    original = episode.trajectory
    step = Step(refinement, trial.observation, trial.reward,
                info={InfoKeys.OBSERVATION_ROLE: trial.info.get(InfoKeys.OBSERVATION_ROLE,
                                                                "user")})  # fmt: skip
    return dataclasses.replace(original, steps=[*original.steps[: episode.step], step])


def refine_failures(
    failures: Sequence[Trajectory],
    *,
    engine: Engine,
    critic: Critic,
    sampling: SamplingParams,
    store: TrajectoryStore,
    settings: RefineSettings | None = None,
    collector: RolloutCollector | None = None,
    iteration: int | None = None,
) -> list[Trajectory]:
    """Critique, refine and judge ``failures``; one stored record per failure (see above).

    Args:
        failures: Failed episodes of the policy (with episode seeds, so they replay).
        engine: The actor's engine.
        critic: The critic.
        sampling: How refinements are sampled (``seed`` is mixed into every sample's seed).
        store: Where records go (ids ``refine-<failure id>``); stored ones are not redone.
        settings: Rounds, samples per critique, success threshold.
        collector: Continues refinements that do not end their episode (``None``: such a
            refinement is judged by its step alone and never kept).
        iteration: Recorded in the records.

    Returns:
        The records of ``failures``, in order: ``success`` marks a kept refinement;
        ``metadata["critique"]`` has the critique, ``metadata["outcome"]`` says what happened.
    """
    settings = settings or RefineSettings()
    done = {t.id: t for t in store if t.id in {refinement_id(f.id) for f in failures}}
    episodes = []
    for failure in failures:
        if refinement_id(failure.id) in done or failure.episode_seed is None:
            continue
        system, observations = episode_view(failure)
        episodes.append(_Episode(failure, system, observations))
    _locate(critic, episodes)
    runner = TrialRunner()
    try:
        attempts = _refine(engine, critic, episodes, settings, sampling)
        continuing: list[tuple[_Attempt, EpisodeSpec]] = []
        for attempt in attempts:
            trial = _try(runner, attempt)
            if trial.ended:
                attempt.result = _refined_trajectory(attempt.episode, attempt.text, trial)
            elif collector is not None:
                parent = _continuation_parent(attempt.episode, attempt.text, trial)
                spec = EpisodeSpec(
                    f"{refinement_id(attempt.episode.trajectory.id)}-{attempt.sample}",
                    restart_from=parent,
                    restart_step=attempt.episode.step + 1,
                )
                continuing.append((attempt, spec))
        if continuing:
            assert collector is not None
            specs = [spec for _, spec in continuing]
            continued = collector.run(specs, progress=False, iteration=iteration, desc="refine")
            by_id = {t.id: t for t in continued}
            for attempt, spec in continuing:
                attempt.result = by_id.get(spec.trajectory_id)
                for message in attempt.result.messages if attempt.result else []:
                    message.trainable = message.role == "assistant"  # the policy's own actions
    finally:
        runner.close()
    for episode in episodes:
        mine = sorted((a for a in attempts if a.episode is episode), key=lambda a: a.sample)
        record = _record(episode, mine, settings, critic.name, iteration)
        store.append(record)
        done[record.id] = record
    return [done[refinement_id(f.id)] for f in failures if refinement_id(f.id) in done]


def _try(runner: TrialRunner, attempt: _Attempt) -> Trial:
    trajectory = attempt.episode.trajectory
    assert trajectory.episode_seed is not None
    return runner.run(
        trajectory.env_id,
        trajectory.env_kwargs,
        task_id=trajectory.task_id,
        episode_seed=trajectory.episode_seed,
        actions=[step.action for step in trajectory.steps[: attempt.episode.step]],
        proposal=attempt.text,
    )


def _succeeded(result: Trajectory | None, min_reward: float) -> bool:
    return (
        result is not None and bool(result.success) and result.reward >= min_reward
        and result.error is None
    )  # fmt: skip


def _record(
    episode: _Episode,
    attempts: list[_Attempt],
    settings: RefineSettings,
    critic_name: str,
    iteration: int | None,
) -> Trajectory:
    """The stored outcome of one failure: its first successful refinement, else the attempt."""
    original = episode.trajectory
    metadata: dict[str, Any] = {
        "critic": critic_name, "refined_step": episode.step, "attempts": len(attempts),
    }  # fmt: skip
    if episode.critique is not None:
        metadata["critique"] = episode.critique.to_dict()
        metadata["wrong_proposal"] = original.steps[episode.step].action
    kept = next((a for a in attempts if _succeeded(a.result, settings.min_reward)), None)
    if kept is None or kept.result is None:
        metadata["outcome"] = ("no_step_judged_wrong" if episode.critique is None
                               else "no_refinement_succeeded")  # fmt: skip
        metadata["refinements"] = [a.text for a in attempts]
        return dataclasses.replace(original, id=refinement_id(original.id), messages=[],
                                   steps=[], success=False, reward=0.0, parent_id=original.id,
                                   iteration=iteration, metadata=metadata)  # fmt: skip
    metadata.update({"outcome": "refined", "refinement": kept.text, "sample": kept.sample,
                     "round": kept.round, "answered_critique": kept.critique.text})  # fmt: skip
    return dataclasses.replace(kept.result, id=refinement_id(original.id), parent_id=original.id,
                               restart_step=episode.step, iteration=iteration,
                               metadata={**original.metadata, **metadata})  # fmt: skip


def critique_example(record: Trajectory, original: Trajectory) -> Trajectory | None:
    """A "(task, wrong proposal, critique) -> refinement" example from a kept refinement.

    The context is the original episode up to the refined step, the wrong proposal and the
    critique (all with the loss masked); only the refinement is trained.
    """
    metadata = record.metadata
    if metadata.get("outcome") != "refined":
        return None
    system, observations = episode_view(original)
    episode = _Episode(original, system, observations, step=int(metadata["refined_step"]))
    messages = [Message(m["role"], m["content"]) for m in _conversation(episode, episode.step)]
    critique = parse_critique(str(metadata["answered_critique"]))
    messages += [
        Message("assistant", str(metadata["wrong_proposal"])),
        Message("user", refinement_prompt(critique)),
        Message("assistant", str(metadata["refinement"]), trainable=True),
    ]
    return Trajectory(original.env_id, original.task_id, messages=messages,
                      id=f"critique-{original.id}", parent_id=original.id,
                      episode_seed=original.episode_seed, env_kwargs=dict(original.env_kwargs),
                      reward=record.reward, success=True,
                      metadata={"kind": "critique_example"})  # fmt: skip
