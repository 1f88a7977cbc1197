"""Mean-reward confidence intervals stay inside the environment's reward range.

Each built-in id registers the range of an episode's total reward; the tests check that
declaration against real episodes (the expert with injected errors, and random text), and
that summaries clip intervals to it, and only to it.
"""

from __future__ import annotations

import gymnasium as gym
import pytest
from env_ids import standalone_env_ids

from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.core.registry import reward_range
from agentgym.core.trajectory import Trajectory
from agentgym.evaluation import summarize

ENV_IDS = standalone_env_ids()


def _episodes(env_id: str, rewards: list[float]) -> list[Trajectory]:
    return [
        Trajectory(env_id, f"task-{i}", reward=reward, success=reward == 1.0)
        for i, reward in enumerate(rewards)
    ]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_environment_declares_a_range_its_episodes_respect(env_id: str) -> None:
    bounds = reward_range(env_id)
    assert bounds is not None, f"register {env_id} with reward_range=(low, high)"
    collector = RolloutCollector(env_id, engine=None, expert_kwargs={"error_rate": 0.5})
    specs = [EpisodeSpec(f"expert-{seed}", seed=seed) for seed in range(6)]
    rewards = [trajectory.reward for trajectory in collector.run(specs, progress=False)]
    env = gym.make(env_id)
    env.action_space.seed(0)
    for seed in range(3):  # random text until the episode ends (time limit at the latest)
        env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total, done = total + float(reward), terminated or truncated
        rewards.append(total)
    assert all(bounds[0] <= reward <= bounds[1] for reward in rewards), rewards


def test_binary_rewards_never_report_a_negative_mean() -> None:
    summary = summarize(_episodes("agentgym/Calculator-v0", [1.0] + [0.0] * 23))
    low, high = summary["reward_ci95"]
    assert low == 0.0 and 0.04 < high < 0.13  # the normal interval alone starts at -0.04
    perfect = summarize(_episodes("agentgym/Calculator-v0", [1.0, 1.0, 0.0]))
    assert perfect["reward_ci95"][1] == 1.0  # 0.667 + 1.96 * 0.333 would pass 1.0


def test_groups_are_clipped_too() -> None:
    episodes = _episodes("agentgym/Calculator-v0", [1.0] + [0.0] * 9)
    for episode in episodes:
        episode.metadata["task"] = {"difficulty": "easy"}
    summary = summarize(episodes, group_by=("difficulty",))
    assert summary["groups"]["difficulty=easy"]["reward_ci95"][0] == 0.0


def test_no_clipping_without_a_declared_range_or_against_the_data() -> None:
    undeclared = summarize(_episodes("mybank/Deposit-v0", [1.0] + [0.0] * 9))
    assert undeclared["reward_ci95"][0] < 0
    # A reward outside the declared range shows the declaration is wrong: left unclipped.
    beyond = summarize(_episodes("agentgym/Calculator-v0", [3.0, 0.0, 0.0, 0.0]))
    assert beyond["reward_ci95"][1] > 1.0
    explicit = summarize(_episodes("mybank/Deposit-v0", [1.0, 0.0, 0.0]), reward_bounds=(0, 1))
    assert explicit["reward_ci95"][0] == 0.0
