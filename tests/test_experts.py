"""Every shipped expert injects errors through one base, at the configured rate."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

import agentgym
from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.core.policy import ErrorInjectingExpert, episode_rng

# CodeExec's expert repairs its bug at the next attempt (its failed first attempts are
# repair demonstrations), so only with a single attempt does the bug decide the episode.
_ENV_KWARGS: dict[str, dict[str, Any]] = {"agentgym/CodeExec-v0": {"max_attempts": 1}}
# Environments that need an optional package to load their data.
_NEEDS = {"agentgym/BFCL-MultiTurn-v0": "bfcl_eval"}
# Remote-v0 runs episodes on a server and has no expert (tests/test_env_server.py).
ENV_IDS = sorted(set(agentgym.list_envs()) - {"agentgym/Remote-v0"})


def _skip_without_package(env_id: str) -> None:
    package = _NEEDS.get(env_id)
    if package is not None and importlib.util.find_spec(package) is None:
        pytest.skip(f"{env_id} needs the {package} package")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_error_rate_half_fails_about_half_of_the_episodes(env_id: str) -> None:
    _skip_without_package(env_id)
    collector = RolloutCollector(
        env_id,
        engine=None,
        env_kwargs=_ENV_KWARGS.get(env_id),
        num_envs=2,
        expert_kwargs={"error_rate": 0.5},
    )
    try:
        # The collector makes a fresh expert for every episode: the draw must still vary.
        trajectories = collector.run(
            [EpisodeSpec(f"ep-{i}", seed=1000 + i) for i in range(100)], progress=False
        )
    finally:
        collector.close()
    assert [t.error for t in trajectories if t.error] == []
    failed = sum(not t.success for t in trajectories)
    assert 30 <= failed <= 70, f"{env_id}: {failed} of 100 episodes failed at error_rate=0.5"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_expert_uses_the_error_injecting_base(env_id: str) -> None:
    _skip_without_package(env_id)
    env = agentgym.make(env_id, **_ENV_KWARGS.get(env_id, {}))
    expert = env.unwrapped.make_expert(error_rate=1.0)
    assert isinstance(expert, ErrorInjectingExpert)
    assert expert.error_kinds and set(expert.error_kinds) <= set(expert.ERROR_KINDS)
    # The same episode seed gives the same error; without errors the expert succeeds.
    outcomes = []
    for _ in range(2):
        observation, info = env.reset(seed=5)
        expert.reset(env, observation, info)
        outcomes.append(expert.injected)
    assert outcomes[0] == outcomes[1]
    clean = env.unwrapped.make_expert()
    observation, info = env.reset(seed=5)
    clean.reset(env, observation, info)
    assert clean.injected is None
    terminated = truncated = False
    while not (terminated or truncated):
        observation, _, terminated, truncated, info = env.step(clean.act(observation, info))
    assert info["success"] is True
    env.close()


class _Shout(ErrorInjectingExpert):
    ERROR_KINDS = ("shout", "never")

    def plan_episode(self, env: Any, observation: str, info: Any) -> None:
        self.reply = observation

    def inject_error(self) -> str | None:
        if "shout" not in self.error_kinds:
            return None
        self.reply = self.reply.upper()
        return "shout"

    def act(self, observation: str, info: Any) -> str:
        return self.reply


def test_base_draws_from_the_episode_seed_not_from_the_history() -> None:
    fresh = [_Shout(error_rate=0.5, seed=3) for _ in range(200)]
    for episode_seed, expert in enumerate(fresh):
        expert.reset(None, "hi", {"episode_seed": episode_seed})
    reused = _Shout(error_rate=0.5, seed=3)
    replayed = []
    for episode_seed in range(200):
        reused.reset(None, "hi", {"episode_seed": episode_seed})
        replayed.append(reused.injected)
    assert [e.injected for e in fresh] == replayed
    assert 70 < replayed.count("shout") < 130
    assert float(reused.rng.random()) != float(episode_rng(3, 199).random())  # rng moved on
    # A kind that does not apply leaves the episode correct, and ``injected`` says so.
    never = _Shout(error_rate=1.0, error_kinds=["never"])
    never.reset(None, "hi", {"episode_seed": 1})
    assert never.injected is None and never.act("", {}) == "hi"


def test_base_checks_rate_and_kinds() -> None:
    with pytest.raises(ValueError, match=r"error_rate must be in \[0, 1\], got 1.5"):
        _Shout(error_rate=1.5)
    with pytest.raises(ValueError, match=r"Unknown error kinds \['whisper'\]"):
        _Shout(error_kinds=["whisper"])
    assert _Shout().error_kinds == ("shout", "never")
    assert _Shout(error_rate=0.0).injected is None
