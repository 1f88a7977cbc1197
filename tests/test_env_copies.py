"""Every registered environment pickles and deep-copies, and the copy continues the episode.

Subprocess vector environments, Ray and ``multiprocessing`` move environments between
processes by pickling them. A copy is only useful if it is the same episode: the tests step
the original and its copies with the same actions and require identical results, then
reset them all and require the same next task (the ``reset`` RNG travels too).
"""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import pytest
from env_ids import standalone_env_ids

ENV_IDS = standalone_env_ids()

Outcome = tuple[str, float, bool, bool, str]

# The expert solves CodeExec in one action; a buggy first attempt keeps the episode going.
EXPERT_KWARGS: dict[str, dict[str, Any]] = {"agentgym/CodeExec-v0": {"error_rate": 1.0}}


def _outcome(result: tuple[str, float, bool, bool, dict[str, Any]]) -> Outcome:
    observation, reward, terminated, truncated, info = result
    return (
        observation,
        reward,
        terminated,
        truncated,
        json.dumps(info, sort_keys=True, default=repr),
    )


def _started_episode(env_id: str) -> tuple[gym.Env, Any, str, dict]:
    """An environment one invalid and one expert action into an episode."""
    env = gym.make(env_id)
    env.action_space.seed(5)
    observation, info = env.reset(seed=3)
    expert = env.unwrapped.make_expert(**EXPERT_KWARGS.get(env_id, {}))
    expert.reset(env, observation, info)
    observation, _, _, _, info = env.step(42)  # type: ignore[arg-type]  # invalid everywhere
    observation, _, terminated, truncated, info = env.step(expert.act(observation, info))
    assert not (terminated or truncated), "pick an episode that lasts longer"
    return env, expert, observation, info


COPIERS: dict[str, Callable[[gym.Env], gym.Env]] = {
    "pickle": lambda env: pickle.loads(pickle.dumps(env)),
    "deepcopy": copy.deepcopy,
}


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_copies_continue_the_episode_identically(env_id: str) -> None:
    """Copies taken before every action of an expert episode all follow the original."""
    env = gym.make(env_id)
    env.action_space.seed(5)
    observation, info = env.reset(seed=3)
    expert = env.unwrapped.make_expert(**EXPERT_KWARGS.get(env_id, {}))
    expert.reset(env, observation, info)
    copies: list[gym.Env] = []
    action: Any = 42  # invalid in every environment: it must not disturb the copies
    ended = False
    while not ended:  # to the end, so the final verdicts are compared too
        for copier in COPIERS.values():
            twin = copier(env)
            assert twin.unwrapped is not env.unwrapped
            assert twin.spec == env.spec
            copies.append(twin)
        result = env.step(action)
        expected = _outcome(result)
        for twin in copies:
            assert _outcome(twin.step(action)) == expected
        observation, _, terminated, truncated, info = result
        ended = terminated or truncated
        action = expert.act(observation, info)
    assert len(copies) >= 4
    # The RNG of reset() and of the action space were carried over as well.
    next_task = env.reset()[1]["task_id"]
    assert [twin.reset()[1]["task_id"] for twin in copies] == [next_task] * len(copies)
    sample = env.action_space.sample()
    assert [twin.action_space.sample() for twin in copies] == [sample] * len(copies)


@pytest.mark.parametrize("copier", sorted(COPIERS))
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_copy_before_reset_and_after_the_end(env_id: str, copier: str) -> None:
    fresh = gym.make(env_id)
    twin = COPIERS[copier](fresh)
    assert fresh.reset(seed=11)[0] == twin.reset(seed=11)[0]
    # An ended episode copies as ended: stepping it again says so in both.
    env = gym.make(env_id, max_episode_steps=2)
    env.reset(seed=0)
    env.step("")
    env.step("")
    ended = COPIERS[copier](env)
    assert _outcome(env.step("")) == _outcome(ended.step(""))


def test_copies_are_independent() -> None:
    env, expert, observation, info = _started_episode("agentgym/Calculator-v0")
    twin = copy.deepcopy(env)
    twin.step(expert.act(observation, info))
    assert twin.unwrapped._actions != env.unwrapped._actions


_CHILD = """
import pickle, sys, json
import agentgym
envs = pickle.loads(sys.stdin.buffer.read())
out = []
for env_id, env in envs:
    observation, reward, terminated, truncated, info = env.step("")
    out.append([env_id, observation, terminated, truncated, env.reset()[1]["task_id"]])
json.dump(out, sys.stdout)
"""


def test_pickles_load_in_a_fresh_process() -> None:
    """What a subprocess vector env, Ray or multiprocessing does: unpickle elsewhere."""
    buildable = [param.values[0] for param in ENV_IDS if not param.marks]
    envs = [(env_id, _started_episode(env_id)[0]) for env_id in buildable]
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=pickle.dumps(envs),
        capture_output=True,
        check=True,
        timeout=300,
    )
    expected = []
    for env_id, env in envs:
        observation, _, terminated, truncated, _ = env.step("")
        expected.append([env_id, observation, terminated, truncated, env.reset()[1]["task_id"]])
    assert json.loads(completed.stdout) == expected
