"""Text environments in Gymnasium's vector environments, in both vectorization modes.

``AsyncVectorEnv`` passes observations through shared memory by default; for text that used
to return every observation as a run of ``'a'`` characters. Every registered environment
must give the same observations in ``async`` (shared memory), ``async`` without shared
memory, and ``sync`` mode, for random Unicode actions too.
"""

from __future__ import annotations

import copy
import multiprocessing

import gymnasium as gym
import numpy as np
import pytest
from env_ids import standalone_env_ids
from gymnasium.vector.utils import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)

from agentgym.core.spaces import AgentText, SharedTextBatch

ENV_IDS = standalone_env_ids()
NUM_ENVS = 2


def _rollout(vector_env: gym.vector.VectorEnv, num_steps: int = 3) -> list:
    """Observations, rewards and ends of a short run with random text actions."""
    vector_env.action_space.seed(3)
    observations, infos = vector_env.reset(seed=7)
    record = [tuple(observations), list(infos["task_id"])]
    for _ in range(num_steps):
        actions = vector_env.action_space.sample()
        observations, rewards, terminated, truncated, infos = vector_env.step(actions)
        record += [tuple(observations), rewards.tolist(), terminated.tolist(), truncated.tolist()]
    vector_env.close()
    return record


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_async_shared_memory_gives_the_same_observations_as_sync(env_id: str) -> None:
    expected = _rollout(gym.make_vec(env_id, num_envs=NUM_ENVS, vectorization_mode="sync"))
    observed = _rollout(gym.make_vec(env_id, num_envs=NUM_ENVS, vectorization_mode="async"))
    assert observed == expected
    assert all(isinstance(text, str) and text for text in expected[0])
    assert expected[0][0] != "a" * len(expected[0][0])


def test_async_without_shared_memory_too() -> None:
    env_id = "agentgym/Calculator-v0"
    expected = _rollout(gym.make_vec(env_id, num_envs=NUM_ENVS, vectorization_mode="sync"))
    vector_kwargs = {"shared_memory": False}
    observed = _rollout(
        gym.make_vec(env_id, NUM_ENVS, vectorization_mode="async", vector_kwargs=vector_kwargs)
    )
    assert observed == expected


def test_async_vector_env_without_copies_returns_a_live_batch() -> None:
    def make() -> gym.Env:
        return gym.make("agentgym/Calculator-v0")

    vector_env = gym.vector.AsyncVectorEnv([make, make], copy=False)
    single = gym.make("agentgym/Calculator-v0")
    try:
        observations, _ = vector_env.reset(seed=[1, 2])
        assert isinstance(observations, SharedTextBatch)
        assert observations[0] == single.reset(seed=1)[0]
        first = observations[1]
        vector_env.step(("I do not know.", "I do not know."))
        # Like a shared array, the batch shows the buffer as it is now.
        assert observations[1] != first
        assert observations == tuple(observations)
    finally:
        vector_env.close()


def test_workers_started_with_spawn_write_text_too() -> None:
    """A fresh interpreter (spawn) registers the text layout when it builds the environment."""
    vector_env = gym.make_vec(
        "agentgym/Calculator-v0",
        num_envs=1,
        vectorization_mode="async",
        vector_kwargs={"context": "spawn"},
    )
    try:
        observations, _ = vector_env.reset(seed=4)
        assert observations == (gym.make("agentgym/Calculator-v0").reset(seed=4)[0],)
    finally:
        vector_env.close()


def test_shared_text_round_trip_keeps_every_character() -> None:
    space = AgentText(16)
    memory = create_shared_memory(space, n=3, ctx=multiprocessing)
    batch = read_from_shared_memory(space, memory, n=3)
    texts = ["中文 🙂 é", "", "x" * 16]
    for index, text in enumerate(texts):
        write_to_shared_memory(space, index, text, memory)
    assert copy.deepcopy(batch) == tuple(texts)
    assert batch[1:] == tuple(texts[1:])
    write_to_shared_memory(space, 2, "short", memory)  # a shorter text leaves no tail behind
    assert batch[2] == "short"


def test_shared_text_refuses_what_does_not_fit() -> None:
    space = AgentText(4)
    memory = create_shared_memory(space, n=1, ctx=multiprocessing)
    with pytest.raises(ValueError, match="5 characters does not fit"):
        write_to_shared_memory(space, 0, "12345", memory)
    with pytest.raises(TypeError, match="got int"):
        write_to_shared_memory(space, 0, 5, memory)  # type: ignore[arg-type]
    assert np.frombuffer(memory.get_obj(), dtype=np.int32)[0] == 0
