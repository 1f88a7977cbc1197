"""The multi-turn rollout collector, asynchronous by default.

:class:`RolloutCollector` plays many episodes over a pool of environment copies at once, in
one of two modes that produce the same trajectories:

* ``mode="async"`` (default): every episode advances on its own. Its next prompt goes to the
  engine's request queue (:meth:`Engine.completion_queue
  <agentgym.engines.base.Engine.completion_queue>`) as soon as its environment step is done,
  and its completion is stepped as soon as it is ready. Environment resets, steps and
  evaluations run on a pool of worker threads (``env_workers``), so slow environments (a
  code sandbox, a search backend) overlap with generation and with each other. With vLLM
  the queue batches continuously (a request joins the running batch at the next decoding
  step); with other engines each engine call takes every prompt queued so far, after
  waiting at most ``gather_seconds`` for environment steps still running.
* ``mode="sync"``: at every turn the prompts of all active episodes go into **one**
  ``engine.generate`` call, then each environment is stepped in turn; the batch waits for
  its slowest completion and its slowest environment.

Both modes then retire finished episodes and start queued ones in the freed slots.
Trajectories do not depend on the mode or on how episodes were batched: each turn samples
with its own seed, derived from the run's seed, the episode's id and the turn (vLLM's
per-request seeds; per-row generators in :class:`~agentgym.engines.hf.HFEngine`), and each
episode's environment is reset from its own seed. Only floating-point differences between
batch shapes could change a sample, which the tests do not see on the tiny model.

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
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym

from agentgym.chat import ChatTemplateError, TokenConversation
from agentgym.core.env import InfoKeys
from agentgym.core.policy import ScriptedPolicy
from agentgym.core.trajectory import Message, Step, Trajectory, TrajectoryStore
from agentgym.engines.base import Completion, Engine, SamplingParams
from agentgym.engines.requests import GenerationRequest, cut

__all__ = ["ROLLOUT_MODES", "EpisodeSpec", "RolloutCollector", "RolloutStats"]

RolloutMode = Literal["async", "sync"]
#: The collector's modes (see the module docstring).
ROLLOUT_MODES: tuple[str, ...] = ("async", "sync")

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
    """Throughput and outcome counters of one :meth:`RolloutCollector.run`.

    ``engine_calls`` counts ``generate`` calls (vLLM's asynchronous queue: scheduler steps);
    ``env_seconds`` adds up the time of every environment call, so with worker threads it
    can exceed ``wall_seconds``.
    """

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
class _EnvOutcome:
    """What one environment call returned (computed on a worker thread in async mode)."""

    transition: tuple[str, float, bool, bool, dict[str, Any]] | None = None
    error: str | None = None
    evaluation: Any | None = None
    evaluation_error: str | None = None
    seconds: float = 0.0


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
        mode: ``"async"`` (default) or ``"sync"`` (see the module docstring); the same
            trajectories either way.
        env_workers: Worker threads for environment calls in async mode (default:
            ``num_envs``, one per environment copy).
        gather_seconds: Async mode with an engine that does not batch continuously (HF,
            OpenAI-compatible): how long queued prompts wait for environment steps still
            running before an engine call starts without them.
        env_factory: Builds each environment copy from ``(env_id, env_kwargs)`` (default:
            ``gym.make``); e.g. :class:`agentgym.distributed.RayEnvWorkers` hosts them in
            Ray actors.
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
        mode: RolloutMode = "async",
        env_workers: int | None = None,
        gather_seconds: float = 1.0,
        env_factory: Callable[[str, dict[str, Any]], gym.Env] | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if mode not in ROLLOUT_MODES:
            raise ValueError(f"mode must be one of {ROLLOUT_MODES}, got {mode!r}")
        if env_workers is not None and env_workers < 1:
            raise ValueError(f"env_workers must be >= 1, got {env_workers}")
        if gather_seconds < 0:
            raise ValueError(f"gather_seconds must be >= 0, got {gather_seconds}")
        self.mode = mode
        self.env_workers = env_workers or num_envs
        self.gather_seconds = gather_seconds
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
        make_env = env_factory or (lambda env_id, kwargs: gym.make(env_id, **kwargs))
        self.envs = [make_env(env_id, dict(self.env_kwargs)) for _ in range(num_envs)]
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
        pending = deque(spec for spec in specs if spec.trajectory_id not in done)
        bar = tqdm(total=len(specs), initial=len(done), desc=desc, disable=not progress,
                   unit="ep", dynamic_ncols=True)  # fmt: skip
        try:
            if self.mode == "sync":
                self._run_sync(pending, done, store, iteration, bar)
            else:
                self._run_async(pending, done, store, iteration, bar)
        finally:
            bar.close()
        self.stats.wall_seconds = time.perf_counter() - started
        return [done[spec.trajectory_id] for spec in specs if spec.trajectory_id in done]

    def _run_sync(
        self,
        pending: deque[EpisodeSpec],
        done: dict[str, Trajectory],
        store: TrajectoryStore | None,
        iteration: int | None,
        bar: Any,
    ) -> None:
        """One engine call per turn over all active episodes, then every environment step."""
        slots: list[_Active | None] = [None] * len(self.envs)
        while pending or any(slots):
            for index, slot in enumerate(slots):
                while slot is None and pending:
                    spec = pending.popleft()
                    slot = self._open(index, spec, iteration, self._reset_work(index, spec))
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

    def _run_async(
        self,
        pending: deque[EpisodeSpec],
        done: dict[str, Trajectory],
        store: TrajectoryStore | None,
        iteration: int | None,
        bar: Any,
    ) -> None:
        """Each episode advances when its own completion or environment call is done.

        The main thread owns the engine queue, the tokenizer (conversations) and the
        trajectories; worker threads only call ``reset``/``step``/``evaluate`` on the one
        environment copy of their episode, which nothing else touches meanwhile.
        """
        queue = self.engine.completion_queue() if self.engine is not None else None
        slots: list[_Active | None] = [None] * len(self.envs)
        free = deque(range(len(self.envs)))
        # A future's owner: the slot index and the spec (reset) or the action's text (step;
        # None when the episode ran out of context and only needs its evaluation).
        jobs: dict[Future[Any], tuple[int, EpisodeSpec | None, str | None]] = {}
        gather_started: float | None = None
        pool = ThreadPoolExecutor(self.env_workers, thread_name_prefix="agentgym-env")

        def end(index: int) -> None:
            slot = slots[index]
            assert slot is not None
            self._finish(slot, done, store, bar)
            slots[index] = None
            free.append(index)

        def submit_step(index: int, slot: _Active, action: Completion | str | None) -> None:
            try:
                text = None if action is None else self._take_action(slot, action)
            except ChatTemplateError:
                raise
            except Exception as exc:
                _record_error(slot.trajectory, "step", exc)
                end(index)
                return
            work = pool.submit(self._env_work, index, text, self._last_turn(slot))
            jobs[work] = (index, None, text)

        def next_turn(index: int, slot: _Active) -> None:
            if slot.expert is not None:
                submit_step(index, slot, slot.expert.act(slot.observation, slot.info))
                return
            assert queue is not None and slot.conversation is not None
            limit = self._turn_limit(slot)
            if limit < 1:
                submit_step(index, slot, None)  # the context is full: truncate
                return
            seed = None
            if self.sampling.seed is not None:
                seed = _turn_seed(self.sampling.seed, slot.spec.trajectory_id, slot.turns)
            params = self.sampling.with_(max_tokens=limit, seed=seed)
            key = (index, slot.spec.trajectory_id, slot.turns)
            queue.submit(GenerationRequest(key, list(slot.conversation.token_ids), params))

        def completed(key: Hashable, completion: Completion) -> None:
            index, _, _ = key  # type: ignore[misc]
            slot = slots[index]
            assert slot is not None
            self.stats.generated_tokens += len(completion.token_ids)
            submit_step(index, slot, completion)

        try:
            while True:
                while free and pending:
                    index, spec = free.popleft(), pending.popleft()
                    jobs[pool.submit(self._reset_work, index, spec)] = (index, spec, None)
                for work in [work for work in jobs if work.done()]:
                    index, spec, text = jobs.pop(work)
                    if spec is not None:  # a reset finished
                        slot = self._open(index, spec, iteration, work.result())
                        slots[index] = slot
                        if slot.trajectory.error is not None:
                            end(index)
                        else:
                            next_turn(index, slot)
                        continue
                    slot = slots[index]
                    assert slot is not None
                    if self._record(slot, text, work.result()):
                        end(index)
                    else:
                        next_turn(index, slot)
                waiting = queue.pending if queue is not None else 0
                if not jobs and not waiting:
                    if pending and free:
                        continue
                    break
                if waiting and queue is not None:
                    if gather_started is None:
                        gather_started = time.perf_counter()
                    gathered = time.perf_counter() - gather_started
                    if queue.continuous or not jobs or gathered >= self.gather_seconds:
                        gather_started = None
                        for key, completion in queue.poll():
                            completed(key, completion)
                        continue
                    wait(jobs, timeout=self.gather_seconds - gathered, return_when=FIRST_COMPLETED)
                else:
                    wait(jobs, return_when=FIRST_COMPLETED)
        finally:
            if queue is not None:
                self.stats.engine_calls += queue.calls
                self.stats.engine_seconds += queue.seconds
                queue.close()
            pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ pieces --

    def _reset_work(
        self, index: int, spec: EpisodeSpec
    ) -> tuple[str, dict[str, Any], str, dict[str, Any]] | str:
        """Reset environment ``index`` for ``spec`` (worker-safe); an error's text if it fails."""
        try:
            return self._reset(self.envs[index], spec)
        except Exception as exc:  # a broken environment must not stop the run
            return _format_error("reset", exc)

    def _open(
        self,
        index: int,
        spec: EpisodeSpec,
        iteration: int | None,
        reset: tuple[str, dict[str, Any], str, dict[str, Any]] | str,
    ) -> _Active:
        """The episode's trajectory and conversation after its reset (main thread)."""
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
        if isinstance(reset, str):
            trajectory.error = reset
            trajectory.truncated = True
            trajectory.truncation_reason = "env_error"
            return _Active(spec, trajectory, "", {})
        opening_observation, opening_info, observation, info = reset
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
            limit = self._turn_limit(slot)
            if limit < 1:
                actions[position] = None  # the context is full: truncate this episode
                continue
            prompts.append(slot.conversation.token_ids)
            owners.append((position, limit))
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
                completion = cut(completions[0], limit)
                self.stats.generated_tokens += len(completion.token_ids)
                actions[position] = completion
        return actions

    def _turn_limit(self, slot: _Active) -> int:
        """The next completion's token budget (< 1: the context is full)."""
        assert slot.conversation is not None
        room = self.max_context_tokens - len(slot.conversation.token_ids)
        return min(room, self.sampling.max_tokens)

    def _last_turn(self, slot: _Active) -> bool:
        """Whether the coming action is the last the collector's ``max_turns`` allows."""
        return self.max_turns is not None and slot.turns + 1 >= self.max_turns

    def _step(self, index: int, slot: _Active, action: Completion | str | None) -> bool:
        """Apply one action in this thread; return whether the episode ended."""
        try:
            text = None if action is None else self._take_action(slot, action)
        except ChatTemplateError:
            raise  # a property of the model's template, not of one episode: stop clearly
        except Exception as exc:
            _record_error(slot.trajectory, "step", exc)
            return True
        return self._record(slot, text, self._env_work(index, text, self._last_turn(slot)))

    def _take_action(self, slot: _Active, action: Completion | str) -> str:
        """Append the policy's action to the trajectory (main thread); return its text."""
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
        slot.trajectory.messages.append(message)
        return text

    def _env_work(self, index: int, text: str | None, last_turn: bool) -> _EnvOutcome:
        """Step environment ``index`` with ``text``, then evaluate it if the episode ends
        unfinished; ``text=None`` only evaluates (the context is full). Worker-safe: it
        touches nothing but that environment copy.
        """
        env = self.envs[index]
        outcome = _EnvOutcome()
        started = time.perf_counter()
        evaluate = text is None
        if text is not None:
            try:
                outcome.transition = env.step(text)
            except Exception as exc:
                outcome.error = _format_error("step", exc)
            else:
                _, _, terminated, truncated, _ = outcome.transition
                evaluate = not terminated and (truncated or last_turn)
        if evaluate:
            try:
                outcome.evaluation = env.unwrapped.evaluate()
            except Exception as exc:
                outcome.evaluation_error = _format_error("evaluate", exc)
        outcome.seconds = time.perf_counter() - started
        return outcome

    def _record(self, slot: _Active, text: str | None, outcome: _EnvOutcome) -> bool:
        """Apply an environment outcome to the episode (main thread); return whether it ended."""
        trajectory = slot.trajectory
        self.stats.env_seconds += outcome.seconds
        if text is None:
            trajectory.truncated = True
            trajectory.truncation_reason = "max_context"
            _apply_evaluation(trajectory, outcome)
            return True
        if outcome.error is not None or outcome.transition is None:
            trajectory.error = outcome.error
            trajectory.truncated = True
            trajectory.truncation_reason = "env_error"
            return True
        observation, reward, terminated, truncated, info = outcome.transition
        try:
            role = self._chat_role(info.get(InfoKeys.OBSERVATION_ROLE, "user"))
            observation_message = Message(role, observation)
            if slot.conversation is not None:
                observation_message.token_ids = slot.conversation.add_message(role, observation)
        except ChatTemplateError:
            raise  # a property of the model's template, not of one episode: stop clearly
        except Exception as exc:
            _record_error(trajectory, "step", exc)
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
            _apply_evaluation(trajectory, outcome)
            return True
        return False

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


def _record_error(trajectory: Trajectory, where: str, exc: BaseException) -> None:
    """End ``trajectory`` with an environment error."""
    trajectory.error = _format_error(where, exc)
    trajectory.truncated = True
    trajectory.truncation_reason = "env_error"


def _apply_evaluation(trajectory: Trajectory, outcome: _EnvOutcome) -> None:
    """Judge an episode that ended unfinished with the environment's evaluation."""
    if outcome.evaluation_error is not None or outcome.evaluation is None:
        trajectory.error = outcome.evaluation_error or "environment evaluate was not run"
        trajectory.success = False
        return
    trajectory.success = bool(outcome.evaluation.success)
    trajectory.verdicts = dict(outcome.evaluation.verdicts)
    trajectory.feedback = outcome.evaluation.feedback


def _format_error(where: str, exc: BaseException) -> str:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"environment {where} failed: {type(exc).__name__}: {exc}\n" + "".join(lines[-6:])
