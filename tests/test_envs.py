"""The environment contract, checked on every registered environment.

The id list is read from the registry at collection time, so environments added later are
covered without editing this file.
"""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agentgym
from agentgym import InfoKeys

# Remote-v0 runs its episodes on an `agentgym serve-env` server; tests/test_env_server.py
# runs check_env and the same-seed replay on it against a real server process.
ENV_IDS = sorted(set(agentgym.list_envs(namespace="agentgym")) - {"agentgym/Remote-v0"})

ADVERSARIAL_FRAGMENTS = [
    "<tool_call>",
    "</tool_call>",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    '"',
    "'",
    ":",
    ",",
    "Action:",
    "Thought:",
    "\n",
    "\\",
    '{"name": "add", "arguments": {"a": 1}}',
    "add(a=1)",
    "search[",
    "click[x]",
    "null",
    "NaN",
    "1e309",
    "\x00",
    "\ud800",
    "é",
    "中文",
    "🙂",
    " " * 50,
]


def test_at_least_one_environment_is_registered() -> None:
    assert "agentgym/Calculator-v0" in ENV_IDS


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings():
        # Any warning from the checker is a contract violation.
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)
    env.close()


def _serialisable(info: dict) -> str:
    return json.dumps(info, sort_keys=True, default=repr)


def _expert_or_none(env: gym.Env):
    try:
        return env.unwrapped.make_expert()
    except NotImplementedError:
        return None


def _run(env_id: str, seed: int, action_seed: int, num_steps: int = 12) -> list[str]:
    """A mixed rollout: expert actions interleaved with random strings, fully recorded."""
    env = gym.make(env_id)
    env.action_space.seed(action_seed)
    observation, info = env.reset(seed=seed)
    expert = _expert_or_none(env)
    if expert is not None:
        expert.reset(env, observation, info)
    record = [observation, _serialisable(info)]
    for step in range(num_steps):
        if expert is not None and step % 3 != 2:
            action = expert.act(observation, info)
        else:
            action = env.action_space.sample()
        observation, reward, terminated, truncated, info = env.step(action)
        record += [action, observation, repr(reward), repr((terminated, truncated))]
        record.append(_serialisable(info))
        if terminated or truncated:
            observation, info = env.reset()
            if expert is not None:
                expert.reset(env, observation, info)
            record += [observation, _serialisable(info)]
    return record


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_episode(env_id: str) -> None:
    assert _run(env_id, seed=123, action_seed=7) == _run(env_id, seed=123, action_seed=7)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_different_seeds_give_different_tasks(env_id: str) -> None:
    env = gym.make(env_id)
    task_ids = {env.reset(seed=seed)[1][InfoKeys.TASK_ID] for seed in range(20)}
    assert len(task_ids) > 1


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_info_contract(env_id: str) -> None:
    env = gym.make(env_id)
    observation, info = env.reset(seed=0)
    assert isinstance(observation, str) and observation
    for key in (InfoKeys.TASK_ID, InfoKeys.EPISODE_SEED, InfoKeys.SYSTEM_PROMPT, InfoKeys.TOOLS):
        assert key in info, key
    for schema in info[InfoKeys.TOOLS]:
        assert schema["type"] == "function"
        assert {"name", "description", "parameters"} <= set(schema["function"])
    expert = _expert_or_none(env)
    assert expert is not None, f"{env_id} ships no expert policy"
    expert.reset(env, observation, info)
    terminated = truncated = False
    while not (terminated or truncated):
        observation, reward, terminated, truncated, info = env.step(expert.act(observation, info))
        for key in (
            InfoKeys.FEEDBACK,
            InfoKeys.ACTION_VALID,
            InfoKeys.PROGRESS,
            InfoKeys.OBSERVATION_ROLE,
            InfoKeys.TASK_ID,
        ):
            assert key in info, key
        assert info[InfoKeys.OBSERVATION_ROLE] in ("user", "tool")
    assert terminated and not truncated
    assert info[InfoKeys.SUCCESS] is True and reward == 1.0
    assert isinstance(info[InfoKeys.VERDICTS], dict) and info[InfoKeys.VERDICTS]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_options_select_tasks(env_id: str) -> None:
    env = gym.make(env_id)
    _, info = env.reset(seed=0)
    chosen = info[InfoKeys.TASK_ID]
    _, again = env.reset(options={"task_id": chosen})
    assert again[InfoKeys.TASK_ID] == chosen
    _, by_index = env.reset(options={"task_index": 0})
    assert by_index[InfoKeys.TASK_ID] == env.unwrapped.tasks.id_at(0)
    with pytest.raises(ValueError, match="valid options"):
        env.reset(options={"task": chosen})
    with pytest.raises(KeyError, match="Unknown task id"):
        env.reset(options={"task_id": "no-such-task"})
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"task_index": len(env.unwrapped.tasks)})


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_episode_seed_fixes_the_episode(env_id: str) -> None:
    env = gym.make(env_id)
    _, info = env.reset(seed=5)
    first = _run_actions(env, info, ["hello", "[x(", "done"])
    env.reset(seed=99)  # move the env's own RNG elsewhere
    second = _run_actions(env, info, ["hello", "[x(", "done"])
    assert first == second


def _run_actions(env: gym.Env, info: dict, actions: list[str]) -> list:
    observation, _ = env.reset(
        options={"task_id": info[InfoKeys.TASK_ID], "episode_seed": info[InfoKeys.EPISODE_SEED]}
    )
    out = [observation]
    for action in actions:
        observation, reward, terminated, truncated, _ = env.step(action)
        out.append((observation, reward, terminated, truncated))
        if terminated or truncated:
            break
    return out


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_before_reset_raises_reset_needed(env_id: str) -> None:
    env = gym.make(env_id)
    with pytest.raises(gym.error.ResetNeeded):
        env.step("hello")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_bad_actions_become_observations(env_id: str) -> None:
    env = gym.make(env_id)
    env.reset(seed=0)
    unwrapped = env.unwrapped
    for bad in (None, 42, b"bytes", ["list"], "x" * (unwrapped.max_action_length + 1)):
        observation, _reward, terminated, _truncated, info = env.step(bad)  # type: ignore[arg-type]
        assert info[InfoKeys.ACTION_VALID] is False
        assert "Invalid action" in observation
        assert env.observation_space.contains(observation)
        assert not terminated


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_time_limit_truncates(env_id: str) -> None:
    env = gym.make(env_id, max_episode_steps=3)
    env.reset(seed=0)
    # A non-string action is invalid in every environment and never ends a turn or the
    # episode, so only the time limit can stop it.
    outcomes = [env.step(42)[2:4] for _ in range(3)]  # type: ignore[arg-type]
    assert outcomes[-1] == (False, True)
    evaluation = env.unwrapped.evaluate()
    assert evaluation.success is False


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    env_id=st.sampled_from(ENV_IDS),
    actions=st.lists(
        st.one_of(
            st.text(max_size=300),
            st.lists(st.sampled_from(ADVERSARIAL_FRAGMENTS), max_size=25).map("".join),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_random_and_adversarial_actions_never_raise(env_id: str, actions: list[str]) -> None:
    env = gym.make(env_id)
    env.reset(seed=0)
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(observation)
        assert isinstance(info[InfoKeys.ACTION_VALID], bool)
        assert np.isfinite(reward)
        if terminated or truncated:
            env.reset()
