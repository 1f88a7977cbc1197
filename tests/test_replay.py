"""Restarting from intermediate states by deterministic replay (used by EEF)."""

from __future__ import annotations

import pytest

import agentgym
from agentgym.collector import EpisodeSpec, RolloutCollector

# Remote-v0 needs a server (and has no expert): tests/test_env_server.py covers it.
ENV_IDS = sorted(set(agentgym.list_envs(namespace="agentgym")) - {"agentgym/Remote-v0"})


#: Experts that solve in one action get an injected error, so the episode has a middle.
EXPERT_KWARGS = {"agentgym/CodeExec-v0": {"error_rate": 1.0}}


def _expert_trajectory(env_id: str, seed: int, **env_kwargs):
    collector = RolloutCollector(
        env_id, engine=None, env_kwargs=env_kwargs, num_envs=1,
        expert_kwargs=EXPERT_KWARGS.get(env_id),
    )  # fmt: skip
    return collector.run([EpisodeSpec("expert", seed=seed)], progress=False)[0]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_restore_reaches_every_prefix_state(env_id: str) -> None:
    trajectory = _expert_trajectory(env_id, seed=3)
    assert trajectory.num_steps >= 2
    for k in range(trajectory.num_steps):
        env, observation, _ = agentgym.restore(trajectory, k)
        expected = trajectory.steps[k - 1].observation if k else trajectory.messages[1].content
        assert observation == expected
        # Continuing with the recorded suffix gives the recorded outcome.
        for step in trajectory.steps[k:]:
            observation, reward, terminated, _truncated, info = env.step(step.action)
            assert observation == step.observation
            assert reward == step.reward
        assert terminated and info["success"] == trajectory.success


def test_restore_with_env_kwargs_and_divergence_detection() -> None:
    trajectory = _expert_trajectory("agentgym/Calculator-v0", seed=1, difficulty="hard")
    env, _, info = agentgym.restore(trajectory, 2)
    assert env.unwrapped.difficulty == "hard"
    assert info["turn"] == 1
    trajectory.steps[0].observation = "something else"
    with pytest.raises(agentgym.ReplayDivergence, match="diverged at action 0"):
        agentgym.restore(trajectory, 2)
    agentgym.restore(trajectory, 2, verify=False)


def test_replay_rejects_prefixes_past_the_end() -> None:
    trajectory = _expert_trajectory("agentgym/Calculator-v0", seed=0)
    with pytest.raises(ValueError, match="out of range"):
        agentgym.restore(trajectory, trajectory.num_steps + 1)
    actions = [*trajectory.actions, "extra"]
    with pytest.raises(ValueError, match="ended after action"):
        agentgym.replay(
            "agentgym/Calculator-v0",
            task_id=trajectory.task_id,
            episode_seed=trajectory.episode_seed,
            actions=actions,
        )


def test_trajectory_without_seed_cannot_be_restored() -> None:
    trajectory = _expert_trajectory("agentgym/Calculator-v0", seed=0)
    trajectory.episode_seed = None
    with pytest.raises(ValueError, match="no episode_seed"):
        agentgym.restore(trajectory, 1)
