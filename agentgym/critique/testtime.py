"""Test-time critique: N proposals per step, critique, refinement, critic-filtered voting.

:func:`run_test_time` measures success against N, with and without a critic, on any
environment. At every step of an episode the actor samples N proposals; the plain policy
commits their majority answer; the critic policy has each proposal critiqued, lets the actor
refine the ones judged wrong for up to ``rounds`` rounds (re-critiquing each refinement),
and commits the majority among the proposals judged correct, falling back to the plain
majority when none is (:mod:`agentgym.critique.vote`). ``N = 1`` with ``rounds = R`` is
plain refinement with critique for R rounds.

Every (policy, N) pair is a *lane* that plays each episode on its own, but lanes share
work wherever they can: proposals are sampled with seeds derived from the episode, the
state and the proposal's number, so the first N of N_max samples are the same for every
lane at that state; states are keyed by their action history, so lanes that committed the
same actions share samples, critiques and environment steps. In a single-answer
environment (CodeExec with ``max_attempts=1``, TravelPlanner sole-planning) every lane
therefore uses the same N_max samples. States are rebuilt by deterministic replay
(:class:`~agentgym.critique.oracle.TrialRunner`), so nothing is copied.

Example (the environment's expert is not an engine; see ``tests/test_critique_vote.py``
for runs with a model)::

    result = run_test_time("agentgym/CodeExec-v0", {"max_attempts": 1}, engine,
                           OracleCritic(), episodes=[("gen-easy-0", 0)],
                           sampling=SamplingParams(temperature=0.8, max_tokens=256),
                           config=TestTimeConfig(ns=(1, 4), rounds=1))
    result.summary["critic"]["4"]["success_rate"]
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.core.env import InfoKeys
from agentgym.critique.critics import Critic
from agentgym.critique.oracle import TrialRunner, judge, visible_feedback
from agentgym.critique.protocol import Critique, CritiqueRequest, refinement_prompt
from agentgym.critique.vote import answer_key, critic_vote, majority_vote
from agentgym.engines.base import Engine, SamplingParams
from agentgym.evaluation import mean_interval, wilson_interval

__all__ = ["MODES", "TestTimeConfig", "TestTimeResult", "run_test_time"]

#: ``plain``: majority vote of N samples; ``critic``: critique, refine, critic-filtered vote.
MODES = ("plain", "critic")


@dataclass(frozen=True)
class TestTimeConfig:
    """Settings of a test-time critique run.

    Attributes:
        ns: The numbers of proposals per step to compare (success vs N).
        rounds: Refinements of a proposal judged wrong (each re-critiqued).
        feedback: Show the critic the environment's answer to each proposal (tried on a
            copy of the episode).
        max_steps: Commits per episode before it is scored as failed (``None``: only the
            environment's own time limit).
        modes: Which policies to run (:data:`MODES`).
    """

    __test__ = False  # not a pytest class, despite the name

    ns: tuple[int, ...] = (1, 2, 4, 8)
    rounds: int = 0
    feedback: bool = False
    max_steps: int | None = None
    modes: tuple[str, ...] = MODES

    def __post_init__(self) -> None:
        object.__setattr__(self, "ns", tuple(self.ns))
        object.__setattr__(self, "modes", tuple(self.modes))
        problems = []
        if not self.ns or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                              for n in self.ns):  # fmt: skip
            problems.append(f"n must be a non-empty list of integers >= 1, got {list(self.ns)}")
        elif len(set(self.ns)) != len(self.ns):
            problems.append(f"n must not repeat values, got {list(self.ns)}")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 0:
            problems.append(f"rounds must be an integer >= 0, got {self.rounds!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or
                                           self.max_steps < 1):  # fmt: skip
            problems.append(f"max_steps must be an integer >= 1 or null, got {self.max_steps!r}")
        unknown = [mode for mode in self.modes if mode not in MODES]
        if unknown or not self.modes:
            problems.append(f"modes must be a non-empty subset of {list(MODES)}, got "
                            f"{list(self.modes)}")  # fmt: skip
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(eq=False)  # identity: nodes are dict keys
class _Node:
    """A state of an episode, reached by ``actions`` (shared by every lane that reaches it)."""

    episode: int
    actions: tuple[str, ...]
    messages: list[dict[str, str]]
    transcript: tuple[tuple[str, str], ...]
    info: dict[str, Any]
    samples: list[str] = field(default_factory=list)
    # Critic mode: each sample after refinement, its last critique and refinements used.
    refined: list[str] = field(default_factory=list)
    critiques: list[Critique] = field(default_factory=list)
    rounds_used: list[int] = field(default_factory=list)
    children: dict[str, _Child] = field(default_factory=dict)


@dataclass
class _Child:
    """The environment's answer to committing one action at a node."""

    reward: float
    ended: bool
    success: bool
    correct: bool
    observation: str
    role: str
    info: dict[str, Any]


@dataclass
class _Lane:
    episode: int
    mode: str
    n: int
    node: _Node
    reward: float = 0.0
    steps: int = 0
    done: bool = False
    success: bool = False
    actions: list[str] = field(default_factory=list)
    agreements: list[bool] = field(default_factory=list)
    filtered_votes: int = 0


@dataclass
class TestTimeResult:
    """Outcome of :func:`run_test_time`.

    Attributes:
        summary: ``summary[mode][str(n)]``: episodes, success rate with its Wilson 95%
            interval, mean reward with a 95% interval.
        episodes: One record per (episode, mode, N): task, success, reward, steps, actions.
        critic: Critic statistics over committed proposals of the critic lanes: agreement
            with the environment's judgement, votes that the critic filtered.
        counts: Work done: samples, refinements, critiques, environment trials.
    """

    __test__ = False  # not a pytest class, despite the name

    summary: dict[str, dict[str, dict[str, Any]]]
    episodes: list[dict[str, Any]]
    critic: dict[str, Any]
    counts: dict[str, int]


def _seed(base: int | None, *parts: object) -> int:
    text = "/".join(str(part) for part in (base, *parts))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") % (
        2**31
    )


class _Search:
    """The lanes of one run and the states they share."""

    def __init__(
        self,
        env_id: str,
        env_kwargs: Mapping[str, Any],
        engine: Engine,
        critic: Critic | None,
        sampling: SamplingParams,
        config: TestTimeConfig,
    ) -> None:
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs)
        self.engine = engine
        self.critic = critic
        self.sampling = sampling.with_(n=1)
        self.config = config
        self.runner = TrialRunner()
        self.nodes: dict[tuple[int, tuple[str, ...]], _Node] = {}
        self.episode_ids: list[tuple[str, int]] = []
        self.counts = {"samples": 0, "refinements": 0, "critiques": 0, "trials": 0}

    # ------------------------------------------------------------------ states --

    def root(self, episode: int, task_id: str, seed: int) -> _Node:
        env = self.runner.env_for(self.env_id, self.env_kwargs)
        observation, info = env.reset(seed=seed, options={"task_id": task_id})
        self.episode_ids.append((task_id, int(info[InfoKeys.EPISODE_SEED])))
        messages = []
        if info.get(InfoKeys.SYSTEM_PROMPT):
            messages.append({"role": "system", "content": str(info[InfoKeys.SYSTEM_PROMPT])})
        messages.append({"role": "user", "content": observation})
        node = _Node(episode, (), messages, (("user", observation),), dict(info))
        self.nodes[(episode, ())] = node
        return node

    def commit(self, node: _Node, action: str) -> _Child:
        """The environment's answer to ``action`` at ``node`` (tried once, then cached)."""
        if action not in node.children:
            task_id, episode_seed = self.episode_ids[node.episode]
            trial = self.runner.run(self.env_id, self.env_kwargs, task_id=task_id,
                                    episode_seed=episode_seed, actions=node.actions,
                                    proposal=action)  # fmt: skip
            self.counts["trials"] += 1
            env = self.runner.env_for(self.env_id, self.env_kwargs)
            verdict = judge(self.env_id, trial, env)
            role = str(trial.info.get(InfoKeys.OBSERVATION_ROLE, "user"))
            node.children[action] = _Child(trial.reward, trial.ended, bool(trial.success),
                                           verdict.correct, trial.observation, role,
                                           {**node.info, **trial.info})  # fmt: skip
        return node.children[action]

    def child_node(self, node: _Node, action: str) -> _Node:
        key = (node.episode, (*node.actions, action))
        if key not in self.nodes:
            child = node.children[action]
            self.nodes[key] = _Node(
                node.episode,
                key[1],
                [*node.messages, {"role": "assistant", "content": action},
                 {"role": child.role, "content": child.observation}],
                (*node.transcript, ("assistant", action), (child.role, child.observation)),
                child.info,
            )  # fmt: skip
        return self.nodes[key]

    # ------------------------------------------------------------------ actor --

    def _generate(self, conversations: list[list[dict[str, str]]], seeds: list[int]) -> list[str]:
        if not conversations:
            return []
        params = self.sampling.with_(prompt_seeds=tuple(seeds))
        completions = self.engine.chat(conversations, params)
        return [choices[0].text for choices in completions]

    def sample(self, wanted: Mapping[_Node, int]) -> None:
        """Give each node at least ``wanted[node]`` proposals (one batched engine call)."""
        owners, conversations, seeds = [], [], []
        for node, count in wanted.items():
            for index in range(len(node.samples), count):
                owners.append(node)
                conversations.append(node.messages)
                seeds.append(_seed(self.sampling.seed, node.episode, node.actions, index))
        for node, text in zip(owners, self._generate(conversations, seeds), strict=True):
            node.samples.append(text)
        self.counts["samples"] += len(owners)

    # ------------------------------------------------------------------ critic --

    def _request(self, node: _Node, proposal: str) -> CritiqueRequest:
        task_id, episode_seed = self.episode_ids[node.episode]
        feedback = None
        if self.config.feedback:
            trial = self.runner.run(self.env_id, self.env_kwargs, task_id=task_id,
                                    episode_seed=episode_seed, actions=node.actions,
                                    proposal=proposal)  # fmt: skip
            self.counts["trials"] += 1
            feedback = visible_feedback(self.env_id, trial)
        return CritiqueRequest(
            env_id=self.env_id, env_kwargs=self.env_kwargs, task_id=task_id,
            episode_seed=episode_seed, actions=node.actions, proposal=proposal,
            system_prompt=str(node.info.get(InfoKeys.SYSTEM_PROMPT) or ""),
            transcript=node.transcript, trial_feedback=feedback,
        )  # fmt: skip

    def critique(self, wanted: Mapping[_Node, int]) -> None:
        """Critique (and refine, for ``config.rounds``) each node's first proposals."""
        assert self.critic is not None
        pending = []
        for node, count in wanted.items():
            for index in range(len(node.refined), count):
                node.refined.append(node.samples[index])
                node.rounds_used.append(0)
                pending.append((node, index))
        self._critique_batch(pending)
        for round_number in range(1, self.config.rounds + 1):
            wrong = [(node, i) for node, i in pending if node.critiques[i].verdict is False]
            if not wrong:
                break
            conversations = [
                [*node.messages, {"role": "assistant", "content": node.refined[i]},
                 {"role": "user", "content": refinement_prompt(node.critiques[i])}]
                for node, i in wrong
            ]  # fmt: skip
            seeds = [_seed(self.sampling.seed, node.episode, node.actions, i, "refine",
                           round_number) for node, i in wrong]  # fmt: skip
            for (node, i), text in zip(wrong, self._generate(conversations, seeds), strict=True):
                node.refined[i] = text
                node.rounds_used[i] = round_number
            self.counts["refinements"] += len(wrong)
            self._critique_batch(wrong)
            pending = wrong

    def _critique_batch(self, items: Sequence[tuple[_Node, int]]) -> None:
        if not items:
            return
        assert self.critic is not None
        requests = [self._request(node, node.refined[i]) for node, i in items]
        critiques = self.critic.critique(requests)
        self.counts["critiques"] += len(items)
        for (node, i), critique in zip(items, critiques, strict=True):
            if i < len(node.critiques):
                node.critiques[i] = critique
            else:
                node.critiques.append(critique)

    # ------------------------------------------------------------------ lanes --

    def choose(self, lane: _Lane) -> tuple[str, Critique | None]:
        node = lane.node
        env = self.runner.env_for(self.env_id, self.env_kwargs)
        if lane.mode == "plain":
            keys = [answer_key(self.env_id, text, env) for text in node.samples[: lane.n]]
            return node.samples[majority_vote(keys)], None
        texts = node.refined[: lane.n]
        keys = [answer_key(self.env_id, text, env) for text in texts]
        vote = critic_vote(keys, [c.verdict for c in node.critiques[: lane.n]])
        lane.filtered_votes += int(vote.filtered)
        return texts[vote.index], node.critiques[vote.index]

    def close(self) -> None:
        self.runner.close()


def run_test_time(
    env_id: str,
    env_kwargs: Mapping[str, Any],
    engine: Engine,
    critic: Critic | None,
    *,
    episodes: Sequence[tuple[str, int]],
    sampling: SamplingParams,
    config: TestTimeConfig | None = None,
) -> TestTimeResult:
    """Success vs N with and without the critic (see the module docstring).

    Args:
        env_id / env_kwargs: The environment.
        engine: The actor's engine.
        critic: The critic (``None`` runs only the plain policy).
        episodes: ``(task_id, seed)`` pairs; ``seed`` seeds the reset, hence the episode.
        sampling: How the actor samples proposals (and refinements); ``seed`` is mixed into
            every proposal's own seed.
        config: N values, rounds, feedback, step limit, modes.
    """
    config = config or TestTimeConfig()
    modes = [mode for mode in config.modes if mode == "plain" or critic is not None]
    search = _Search(env_id, env_kwargs, engine, critic, sampling, config)
    try:
        lanes = []
        for episode, (task_id, seed) in enumerate(episodes):
            root = search.root(episode, task_id, seed)
            lanes += [_Lane(episode, mode, n, root) for mode in modes for n in config.ns]
        while active := [lane for lane in lanes if not lane.done]:
            samples: dict[_Node, int] = {}
            critiques: dict[_Node, int] = {}
            for lane in active:
                samples[lane.node] = max(samples.get(lane.node, 0), lane.n)
                if lane.mode == "critic":
                    critiques[lane.node] = max(critiques.get(lane.node, 0), lane.n)
            search.sample(samples)
            if critiques:
                search.critique(critiques)
            for lane in active:
                action, critique = search.choose(lane)
                child = search.commit(lane.node, action)
                if critique is not None:
                    lane.agreements.append(critique.verdict is not None
                                           and critique.verdict == child.correct)  # fmt: skip
                lane.actions.append(action)
                lane.reward += child.reward
                lane.steps += 1
                if child.ended:
                    lane.done, lane.success = True, child.success
                elif config.max_steps is not None and lane.steps >= config.max_steps:
                    lane.done = True
                else:
                    lane.node = search.child_node(lane.node, action)
        return _result(lanes, modes, config, search)
    finally:
        search.close()


def _result(
    lanes: Sequence[_Lane], modes: Sequence[str], config: TestTimeConfig, search: _Search
) -> TestTimeResult:
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for mode in modes:
        summary[mode] = {}
        for n in config.ns:
            chosen = [lane for lane in lanes if lane.mode == mode and lane.n == n]
            successes = sum(lane.success for lane in chosen)
            mean, low, high = mean_interval([lane.reward for lane in chosen])
            summary[mode][str(n)] = {
                "episodes": len(chosen),
                "success_rate": round(successes / len(chosen), 4) if chosen else 0.0,
                "success_ci95": list(wilson_interval(successes, len(chosen))),
                "mean_reward": mean,
                "reward_ci95": [low, high],
            }
    records = [
        {
            "task_id": search.episode_ids[lane.episode][0],
            "episode_seed": search.episode_ids[lane.episode][1],
            "mode": lane.mode,
            "n": lane.n,
            "success": lane.success,
            "reward": lane.reward,
            "steps": lane.steps,
            "actions": list(lane.actions),
        }
        for lane in lanes
    ]
    agreements = [ok for lane in lanes for ok in lane.agreements]
    critic = {
        "committed_judged": len(agreements),
        "agreement_with_environment": round(sum(agreements) / len(agreements), 4)
        if agreements
        else None,
        "filtered_votes": sum(lane.filtered_votes for lane in lanes),
        "votes": sum(lane.steps for lane in lanes if lane.mode == "critic"),
    }
    return TestTimeResult(summary, records, critic, dict(search.counts))
