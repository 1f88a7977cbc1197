"""Registration, listing and error messages of the environment registry."""

from __future__ import annotations

import pickle

import gymnasium as gym
import pytest

import agentgym
from agentgym import ToolTask, register_env, register_tool_env, tool


@tool
def echo(text: str) -> str:
    """Repeat a text.

    Args:
        text: What to repeat.
    """
    return text


def test_import_registers_builtin_envs_with_descriptions() -> None:
    envs = agentgym.list_envs()
    assert envs["agentgym/Calculator-v0"].startswith("Multi-turn arithmetic")
    assert all(description and "\n" not in description for description in envs.values())
    assert set(agentgym.list_envs(namespace="agentgym")) <= set(envs)


def test_unknown_id_lists_valid_ids() -> None:
    with pytest.raises(gym.error.NameNotFound) as excinfo:
        agentgym.make("agentgym/Calculater-v0")
    message = str(excinfo.value)
    assert "Did you mean 'agentgym/Calculator-v0'" in message
    assert "Registered agentgym environments" in message


def test_unknown_kwarg_lists_valid_arguments() -> None:
    with pytest.raises(TypeError) as excinfo:
        gym.make("agentgym/Calculator-v0", dificulty="easy")
    message = str(excinfo.value)
    assert "unknown argument 'dificulty'" in message
    assert "Did you mean 'difficulty'?" in message
    assert "split" in message and "parser" in message


def test_bad_variant_value_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"split='validation' is not valid.*'train', 'test'"):
        gym.make("agentgym/Calculator-v0", split="validation")


def test_variants_are_kwargs_and_disjoint() -> None:
    train = gym.make("agentgym/Calculator-v0", split="train", difficulty="medium").unwrapped
    test = gym.make("agentgym/Calculator-v0", split="test", difficulty="medium").unwrapped
    assert len(train.tasks) == 10_000 and len(test.tasks) == 1_000
    assert not set(train.tasks.ids) & set(test.tasks.ids)
    train_questions = {train.tasks[i].turns for i in range(300)}
    test_questions = {test.tasks[i].turns for i in range(300)}
    assert len(train_questions & test_questions) < 5  # random collisions of tiny tasks only


def test_duplicate_registration_is_refused_unless_override() -> None:
    register_env(
        "tests/Dup-v0",
        "agentgym.envs.calculator:CalculatorEnv",
        description="dup",
        max_episode_steps=5,
        override=True,
    )
    # Registering the same entry point again (a module imported twice) is a no-op ...
    register_env(
        "tests/Dup-v0",
        "agentgym.envs.calculator:CalculatorEnv",
        description="dup",
        max_episode_steps=5,
    )
    # ... but a different environment under a taken id is refused.
    with pytest.raises(ValueError, match="already registered"):
        register_env(
            "tests/Dup-v0",
            "agentgym.core.tool_env:ToolEnv",
            description="dup",
            max_episode_steps=5,
        )


def test_register_tool_env_in_one_call() -> None:
    register_tool_env(
        "tests/Echo-v0",
        tools=[echo],
        tasks=[ToolTask(id="t", turns=("Echo 'x'.",))],
        checker=lambda episode: any(r.result.content == "x" for r in episode.calls),
        description="Echo test env.",
        max_episode_steps=4,
        override=True,
    )
    env = gym.make("tests/Echo-v0")
    assert env.spec.max_episode_steps == 4
    env.reset(seed=0)
    env.step('<tool_call>{"name": "echo", "arguments": {"text": "x"}}</tool_call>')
    *_, info = env.step("done")
    assert info["success"] is True
    assert "tests/Echo-v0" in agentgym.list_envs()
    assert "tests/Echo-v0" not in agentgym.list_envs(namespace="agentgym")


def test_env_spec_is_picklable() -> None:
    spec = gym.spec("agentgym/Calculator-v0")
    restored = pickle.loads(pickle.dumps(spec))
    assert restored.id == spec.id
    assert restored.make().reset(seed=1)[1]["task_id"] == spec.make().reset(seed=1)[1]["task_id"]


def test_check_choice_message() -> None:
    with pytest.raises(ValueError, match="Did you mean 'test'"):
        agentgym.check_choice("split", "tset", ["train", "test"])
    agentgym.check_choice("split", "test", ["train", "test"])
