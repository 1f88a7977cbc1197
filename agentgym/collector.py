"""The batched multi-turn rollout collector.

:class:`RolloutCollector` plays many episodes over a pool of environment copies at once. At
every turn it gathers the prompts of all active episodes into **one** engine call, steps
each environment with its completion, retires finished episodes and starts queued ones in
the freed slots, so the engine always sees a full batch.

Rollouts are token-exact (see :mod:`agentgym.chat`): each trajectory's messages carry the
ids the policy sampled (with their log-probs) and the ids of every observation as appended
to the context, so the concatenation of ``message.token_ids`` is exactly the sequence the
policy conditioned on, and training later uses those ids rather than re-tokenising.

Budgets end episodes with ``truncated=True`` and a reason, never with an exception:
``max_episode_steps`` (the environment's time limit), ``max_turns`` (the collector's),
``max_context`` (the next prompt would not fit). An exception raised inside one environment
ends that episode with the error recorded in ``trajectory.error``; the others go on.

The same collector runs an environment's scripted expert (``engine=None``), producing
trajectories in the same format (without token ids).

Example:
    >>> from agentgym.collector import EpisodeSpec, RolloutCollector
    >>> collector = RolloutCollector("agentgym/Calculator-v0", engine=None, num_envs=4)
    >>> trajectories = collector.run([EpisodeSpec(f"ep-{i}", seed=i) for i in range(6)],
    ...                              progress=False)
    >>> [t.success for t in trajectories]
    [True, True, True, True, True, True]
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from agentgym.chat import ChatTemplateError, TokenConversation
from agentgym.core.env import InfoKeys
from agentgym.core.policy import ScriptedPolicy
from agentgym.core.trajectory import Message, Step, Trajectory, TrajectoryStore
from agentgym.engines.base import Completion, Engine, SamplingParams

__all__ = ["EpisodeSpec", "RolloutCollector", "RolloutStats"]

# info entries not copied into Step.info (already stored elsewhere, or bulky).
_STEP_INFO_SKIP = frozenset(
    {
        InfoKeys.FEEDBACK,
        InfoKeys.ACTION_VALID,
        InfoKeys.PROGRESS,
        InfoKeys.VERDICTS,
        InfoKeys.SUCCESS,
        InfoKeys.TASK_ID,
        InfoKeys.EPISODE_SEED,
        InfoKeys.SYSTEM_PROMPT,
        InfoKeys.TOOLS,
    }
)


@dataclass
class EpisodeSpec:
    """One episode to collect.

    Attributes:
        trajectory_id: Id of the resulting trajectory; episodes whose id is already in the
            store are skipped, which is what makes a killed run resumable.
        seed: ``env.reset(seed=...)`` (task drawn from it unless ``task_id`` is given).
        task_id: Run this task.
        episode_seed: Fix the episode's randomness (replays use it).
        restart_from: Start from the state this trajectory reached after ``restart_step``
            actions (EEF); its actions are replayed and kept as untrained context.
        restart_step: How many of ``restart_from``'s actions to replay.
        metadata: Copied into the trajectory's metadata.
    """

    trajectory_id: str
    seed: int | None = None
    task_id: str | None = None
    episode_seed: int | None = None
    restart_from: Trajectory | None = None
    restart_step: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class RolloutStats:
    """Throughput and outcome counters of one :meth:`RolloutCollector.run`."""

    episodes: int = 0
    successes: int = 0
    truncated: int = 0
    errors: int = 0
    engine_calls: int = 0
    generated_tokens: int = 0
    engine_seconds: float = 0.0
    env_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.wall_seconds if self.wall_seconds else 0.0


def _turn_seed(seed: int | None, episode_id: str, turn: int) -> int:
    """A stable sampling seed for one turn of one episode, derived from the run's seed."""
    digest = hashlib.blake2b(f"{seed}/{episode_id}/{turn}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (2**31)


@dataclass
class _Active:
    """An episode in progress in one slot."""

    spec: EpisodeSpec
    trajectory: Trajectory
    observation: str
    info: dict[str, Any]
    conversation: TokenConversation | None = None
    expert: ScriptedPolicy | None = None
    turns: int = 0


class RolloutCollector:
    """Collect episodes of one environment with an engine (or the env's scripted expert).

    Args:
        env_id: Registered environment id.
        engine: The policy's engine; ``None`` runs the environment's expert
            (``env.unwrapped.make_expert(**expert_kwargs)``).
        env_kwargs: Constructor arguments of the environment (recorded for replay).
        sampling: Sampling parameters for every turn (``n`` must be 1; ask for several
            samples by passing several :class:`EpisodeSpec` for the same task).
        num_envs: Environment copies, i.e. the largest batch per engine call.
        max_turns: Largest number of policy actions per episode (``None``: only the
            environment's time limit).
        max_context_tokens: Largest context (prompt + completion) in tokens.
        expert_kwargs: Arguments of the scripted expert when ``engine`` is ``None``.
        policy_name: Recorded in each trajectory (default: the engine's or expert's name).
        observation_roles: Maps the environment's observation roles to chat roles, for
            templates without a ``tool`` role (e.g. ``{"tool": "user"}``).
    """

    def __init__(
        self,
        env_id: str,
        *,
        engine: Engine | None,
        env_kwargs: Mapping[str, Any] | None = None,
        sampling: SamplingParams | None = None,
        num_envs: int = 8,
        max_turns: int | None = None,
        max_context_tokens: int = 4096,
        expert_kwargs: Mapping[str, Any] | None = None,
        policy_name: str | None = None,
        observation_roles: Mapping[str, str] | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.sampling = sampling or SamplingParams()
        if self.sampling.n != 1:
            raise ValueError(
                "sampling.n must be 1 in multi-turn rollouts (each sample diverges into its own "
                "episode): pass one EpisodeSpec per sample instead."
            )
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.engine = engine
        self.expert_kwargs = dict(expert_kwargs or {})
        self.max_turns = max_turns
        self.max_context_tokens = max_context_tokens
        self.observation_roles = dict(observation_roles or {})
        self.envs = [gym.make(env_id, **self.env_kwargs) for _ in range(num_envs)]
        self.policy_name = policy_name or (engine.name if engine is not None else "expert")
        self.end_token_ids = self._end_token_ids()
        self.stats = RolloutStats()

    def _end_token_ids(self) -> list[int]:
        if self.engine is None:
            return []
        tokenizer = self.engine.tokenizer
        ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        return sorted(ids)

    def close(self) -> None:
        """Close the environment copies (the engine belongs to the caller)."""
        for env in self.envs:
            env.close()

    # ------------------------------------------------------------------ main loop --

    def run(
        self,
        specs: Sequence[EpisodeSpec],
        *,
        store: TrajectoryStore | None = None,
        iteration: int | None = None,
        progress: bool = True,
        desc: str = "rollout",
    ) -> list[Trajectory]:
        """Collect ``specs``; return their trajectories in order (stored ones included).

        Finished trajectories are appended to ``store`` after every turn, so a killed run
        loses at most the episodes in flight; running again skips the stored ones.
        """
        from tqdm.auto import tqdm

        self.stats = RolloutStats()
        started = time.perf_counter()
        done: dict[str, Trajectory] = {}
        if store is not None:
            wanted = {spec.trajectory_id for spec in specs}
            done.update({t.id: t for t in store if t.id in wanted})
        queue = deque(spec for spec in specs if spec.trajectory_id not in done)
        slots: list[_Active | None] = [None] * len(self.envs)
        bar = tqdm(total=len(specs), initial=len(done), desc=desc, disable=not progress,
                   unit="ep", dynamic_ncols=True)  # fmt: skip
        try:
            while queue or any(slots):
                for index, slot in enumerate(slots):
                    while slot is None and queue:
                        slot = self._start(index, queue.popleft(), iteration)
                        if slot.trajectory.error is not None:  # failed to start
                            self._finish(slot, done, store, bar)
                            slot = None
                    slots[index] = slot
                active = [(i, s) for i, s in enumerate(slots) if s is not None]
                if not active:
                    break
                actions = self._act(active)
                finished = []
                for (index, slot), action in zip(active, actions, strict=True):
                    if self._step(index, slot, action):
                        finished.append(slot)
                        slots[index] = None
                for slot in finished:
                    self._finish(slot, done, store, bar)
        finally:
            bar.close()
        self.stats.wall_seconds = time.perf_counter() - started
        return [done[spec.trajectory_id] for spec in specs if spec.trajectory_id in done]

    # ------------------------------------------------------------------ pieces --

    def _start(self, index: int, spec: EpisodeSpec, iteration: int | None) -> _Active:
        env = self.envs[index]
        trajectory = Trajectory(
            env_id=self.env_id,
            task_id=spec.task_id or "",
            id=spec.trajectory_id,
            env_kwargs=dict(self.env_kwargs),
            policy=self.policy_name,
            iteration=iteration,
            metadata=dict(spec.metadata),
        )
        try:
            opening_observation, opening_info, observation, info = self._reset(env, spec)
        except Exception as exc:  # a broken environment must not stop the run
            trajectory.error = _format_error("reset", exc)
            trajectory.truncated = True
            trajectory.truncation_reason = "env_error"
            return _Active(spec, trajectory, "", {})
        trajectory.task_id = str(opening_info[InfoKeys.TASK_ID])
        trajectory.episode_seed = opening_info.get(InfoKeys.EPISODE_SEED)
        task_metadata = getattr(env.unwrapped.task, "metadata", None)
        if isinstance(task_metadata, Mapping) and task_metadata:
            # Lets evaluation report per category / difficulty without env-specific code.
            trajectory.metadata.setdefault("task", dict(task_metadata))
        # The opening comes from reset's info even on a restart: a step's info carries no
        # system prompt (nor tool list), and the policy must see the prompt it starts from.
        opening = []
        if opening_info.get(InfoKeys.SYSTEM_PROMPT):
            opening.append({"role": "system", "content": opening_info[InfoKeys.SYSTEM_PROMPT]})
        opening.append({"role": "user", "content": opening_observation})
        slot = _Active(spec, trajectory, observation, info)
        if self.engine is not None:
            slot.conversation = TokenConversation(
                self.engine.tokenizer, opening, end_token_ids=self.end_token_ids
            )
        else:
            slot.expert = env.unwrapped.make_expert(**self.expert_kwargs)
            slot.expert.reset(env, observation, info)
        trajectory.messages = [Message(m["role"], m["content"]) for m in opening]
        if slot.conversation is not None:
            # The opening prompt's ids (system prompt included) belong to the user message.
            for message, segment in zip(
                trajectory.messages, slot.conversation.segments, strict=True
            ):
                message.token_ids = list(segment.token_ids)
        if spec.restart_from is not None:
            trajectory.parent_id = spec.restart_from.id
            trajectory.restart_step = spec.restart_step
            self._replay_context(slot, spec.restart_from, spec.restart_step)
        return slot

    def _reset(
        self, env: gym.Env, spec: EpisodeSpec
    ) -> tuple[str, dict[str, Any], str, dict[str, Any]]:
        """Reset ``env`` for ``spec`` (replaying a restart's prefix).

        Returns the first observation and reset's info (the episode's opening: system
        prompt, tools, task id), then the current observation and info (the same for a
        fresh episode; those of the last replayed step for a restart).
        """
        if spec.restart_from is None:
            options: dict[str, Any] = {}
            if spec.task_id is not None:
                options["task_id"] = spec.task_id
            if spec.episode_seed is not None:
                options["episode_seed"] = spec.episode_seed
            observation, info = env.reset(seed=spec.seed, options=options)
            return observation, info, observation, info
        parent = spec.restart_from
        first, reset_info = env.reset(
            options={"task_id": parent.task_id, "episode_seed": parent.episode_seed}
        )
        observation, info = first, reset_info
        for step in parent.steps[: spec.restart_step]:
            observation, _, terminated, truncated, info = env.step(step.action)
            if terminated or truncated:
                raise ValueError("restart_step reaches the end of the parent episode")
        return first, reset_info, observation, info

    def _replay_context(self, slot: _Active, parent: Trajectory, restart_step: int) -> None:
        """Add the parent's first actions and observations as untrained context."""
        for step in parent.steps[:restart_step]:
            role = self._chat_role(step.info.get(InfoKeys.OBSERVATION_ROLE, "user"))
            message = Message("assistant", step.action, trainable=False)
            observation_message = Message(role, step.observation)
            if slot.conversation is not None:
                ids = slot.conversation.tokenizer(step.action, add_special_tokens=False)
                sampled = list(ids["input_ids"]) + list(self.end_token_ids[:1])
                slot.conversation.add_assistant(sampled)
                slot.conversation.segments[-1].trainable = False
                message.token_ids = sampled
                observation_message.token_ids = slot.conversation.add_message(
                    role, step.observation
                )
            slot.trajectory.messages += [message, observation_message]
            slot.trajectory.steps.append(step)
        slot.trajectory.reward = sum(step.reward for step in slot.trajectory.steps)

    def _act(self, active: list[tuple[int, _Active]]) -> list[Completion | str | None]:
        """One action per active episode: a single batched engine call for the LM ones."""
        actions: list[Completion | str | None] = [None] * len(active)
        prompts, owners, seeds = [], [], []
        for position, (_, slot) in enumerate(active):
            if slot.expert is not None:
                actions[position] = slot.expert.act(slot.observation, slot.info)
                continue
            assert slot.conversation is not None
            room = self.max_context_tokens - len(slot.conversation.token_ids)
            if room < 1:
                actions[position] = None  # the context is full: truncate this episode
                continue
            prompts.append(slot.conversation.token_ids)
            owners.append((position, min(room, self.sampling.max_tokens)))
            seeds.append(_turn_seed(self.sampling.seed, slot.spec.trajectory_id, slot.turns))
        if prompts:
            assert self.engine is not None
            # One call for every episode; episodes near the context limit get a smaller
            # budget by cutting their completion afterwards (the engine call stays batched).
            started = time.perf_counter()
            budget = max(limit for _, limit in owners)
            # Per-episode seeds: episodes that share a prompt (K samples of one task) must
            # not draw the same random numbers, and a re-run must reproduce each episode.
            params = self.sampling.with_(
                max_tokens=budget,
                prompt_seeds=None if self.sampling.seed is None else tuple(seeds),
            )
            results = self.engine.generate(prompts, params)
            self.stats.engine_seconds += time.perf_counter() - started
            self.stats.engine_calls += 1
            for (position, limit), completions in zip(owners, results, strict=True):
                completion = completions[0]
                if len(completion.token_ids) > limit:
                    completion = Completion(
                        text=completion.text,
                        token_ids=completion.token_ids[:limit],
                        logprobs=completion.logprobs[:limit],
                        finish_reason="length",
                    )
                self.stats.generated_tokens += len(completion.token_ids)
                actions[position] = completion
        return actions

    def _step(self, index: int, slot: _Active, action: Completion | str | None) -> bool:
        """Apply one action; return whether the episode ended."""
        trajectory = slot.trajectory
        if action is None:
            trajectory.truncated = True
            trajectory.truncation_reason = "max_context"
            self._evaluate_unfinished(index, trajectory)
            return True
        try:
            if isinstance(action, Completion):
                assert slot.conversation is not None
                text = slot.conversation.add_assistant(action.token_ids, action.logprobs)
                message = Message(
                    "assistant",
                    text,
                    trainable=True,
                    token_ids=list(action.token_ids),
                    logprobs=list(action.logprobs) or None,
                )
            else:
                text = action
                message = Message("assistant", text, trainable=True)
            trajectory.messages.append(message)
            started = time.perf_counter()
            observation, reward, terminated, truncated, info = self.envs[index].step(text)
            self.stats.env_seconds += time.perf_counter() - started
            role = self._chat_role(info.get(InfoKeys.OBSERVATION_ROLE, "user"))
            observation_message = Message(role, observation)
            if slot.conversation is not None:
                observation_message.token_ids = slot.conversation.add_message(role, observation)
        except ChatTemplateError:
            raise  # a property of the model's template, not of one episode: stop clearly
        except Exception as exc:
            trajectory.error = _format_error("step", exc)
            trajectory.truncated = True
            trajectory.truncation_reason = "env_error"
            return True
        trajectory.messages.append(observation_message)
        trajectory.steps.append(
            Step(
                action=text,
                observation=observation,
                reward=float(reward),
                terminated=terminated,
                truncated=truncated,
                action_valid=bool(info.get(InfoKeys.ACTION_VALID, True)),
                feedback=str(info.get(InfoKeys.FEEDBACK, "")),
                progress=info.get(InfoKeys.PROGRESS),
                info={k: v for k, v in info.items() if k not in _STEP_INFO_SKIP},
            )
        )
        trajectory.reward += float(reward)
        slot.observation, slot.info = observation, info
        slot.turns += 1
        if terminated:
            trajectory.terminated = True
            trajectory.success = bool(info.get(InfoKeys.SUCCESS, False))
            trajectory.verdicts = dict(info.get(InfoKeys.VERDICTS, {}))
            trajectory.feedback = str(info.get(InfoKeys.FEEDBACK, ""))
            return True
        if truncated or (self.max_turns is not None and slot.turns >= self.max_turns):
            trajectory.truncated = True
            trajectory.truncation_reason = "max_episode_steps" if truncated else "max_turns"
            self._evaluate_unfinished(index, trajectory)
            return True
        return False

    def _evaluate_unfinished(self, index: int, trajectory: Trajectory) -> None:
        try:
            evaluation = self.envs[index].unwrapped.evaluate()
        except Exception as exc:
            trajectory.error = _format_error("evaluate", exc)
            trajectory.success = False
            return
        trajectory.success = bool(evaluation.success)
        trajectory.verdicts = dict(evaluation.verdicts)
        trajectory.feedback = evaluation.feedback

    def _finish(
        self,
        slot: _Active,
        done: dict[str, Trajectory],
        store: TrajectoryStore | None,
        bar: Any,
    ) -> None:
        trajectory = slot.trajectory
        if trajectory.success is None:
            trajectory.success = False
        done[trajectory.id] = trajectory
        if store is not None:
            store.append(trajectory)
        self.stats.episodes += 1
        self.stats.successes += int(bool(trajectory.success))
        self.stats.truncated += int(trajectory.truncated)
        self.stats.errors += int(trajectory.error is not None)
        bar.update(1)
        bar.set_postfix(success=f"{self.stats.success_rate:.2f}", errors=self.stats.errors)

    def _chat_role(self, role: str) -> str:
        return self.observation_roles.get(role, role)


def _format_error(where: str, exc: BaseException) -> str:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"environment {where} failed: {type(exc).__name__}: {exc}\n" + "".join(lines[-6:])
