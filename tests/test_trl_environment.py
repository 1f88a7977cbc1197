"""agentgym tool environments as TRL environment_factory classes (in-process and served).

TRL discovers an environment class's tools with ``inspect.getmembers(type(instance),
inspect.isfunction)`` and renders them with ``transformers.utils.get_json_schema``; these
tests use exactly those two calls, then play the rollout TRL would (reset, tool calls,
final reply scored by the reward function).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import gymnasium as gym
import pytest
from transformers.utils import get_json_schema

from agentgym.serving.trl_environment import agentgym_reward, trl_environment_factory

CALCULATOR = "agentgym/Calculator-v0"


def _trl_tools(instance: object) -> dict:
    """The tools GRPOTrainer would expose: public class functions other than reset."""
    return {
        name: getattr(instance, name)
        for name, _ in inspect.getmembers(type(instance), predicate=inspect.isfunction)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    }


def _rollout(instance: object, seed: int, answer_offset: int = 0) -> list[float]:
    """TRL's loop for a one-turn Calculator task: reset, the ground-truth call, a reply."""
    local = gym.make(CALCULATOR, difficulty="easy")
    observation, _ = local.reset(seed=seed)
    assert instance.reset(seed=seed, prompt="ignored column") == observation
    call = local.unwrapped.task.ground_truth[0][0]
    result = _trl_tools(instance)[call.name](**call.arguments)
    completion = [
        {"role": "assistant", "content": "", "tool_calls": [{"name": call.name}]},
        {"role": "tool", "content": result},
        {"role": "assistant", "content": f"The answer is {float(result) + answer_offset:g}."},
    ]
    local.close()
    return agentgym_reward([completion], [instance])


def test_tools_render_to_the_environments_schemas() -> None:
    environment_class = trl_environment_factory(CALCULATOR, env_kwargs={"difficulty": "easy"})
    instance = environment_class()
    env = gym.make(CALCULATOR, difficulty="easy")
    _, info = env.reset(seed=0)
    tools = _trl_tools(instance)
    assert list(tools) == sorted(schema["function"]["name"] for schema in info["tools"])
    for schema in info["tools"]:
        rendered = get_json_schema(tools[schema["function"]["name"]])["function"]
        assert rendered["description"] == schema["function"]["description"]
        expected = schema["function"]["parameters"]
        assert rendered["parameters"]["required"] == expected["required"]
        for name, prop in expected["properties"].items():
            assert rendered["parameters"]["properties"][name]["type"] == prop["type"]
            assert rendered["parameters"]["properties"][name]["description"] == prop["description"]


def test_a_trl_rollout_is_judged_by_the_environment() -> None:
    environment_class = trl_environment_factory(CALCULATOR, env_kwargs={"difficulty": "easy"})
    instance = environment_class()
    assert _rollout(instance, seed=3) == [1.0]
    assert _rollout(instance, seed=4, answer_offset=1) == [0.0]  # a wrong final number
    assert _rollout(instance, seed=3) == [1.0]  # instances are reset and reused by TRL


def test_bad_calls_come_back_as_tool_answers() -> None:
    instance = trl_environment_factory(CALCULATOR, env_kwargs={"difficulty": "easy"})()
    instance.reset(seed=0)
    tools = _trl_tools(instance)
    assert tools["add"](a=1) == (
        "Error: invalid arguments for add: missing required argument 'b'. "
        "Expected: add(a: number, b: number)."
    )
    assert tools["divide"](a=1, b=0) == "Error: division by zero: b must not be 0."
    agentgym_reward(["The answer is 3."], [instance])
    with pytest.raises(ValueError, match="episode is over"):
        tools["add"](a=1, b=2)


@pytest.fixture
def served_calculator() -> Iterator[object]:
    pytest.importorskip("uvicorn")
    from serve_env_process import start_server

    server = start_server(CALCULATOR, "difficulty=easy")
    yield server
    server.stop()


def test_a_served_environment_trains_the_same_way(served_calculator) -> None:
    environment_class = trl_environment_factory(
        CALCULATOR, url=served_calculator.url, token=served_calculator.token
    )
    instance = environment_class()
    assert sorted(_trl_tools(instance)) == ["add", "divide", "multiply", "subtract"]
    assert _rollout(instance, seed=3) == [1.0]
    assert _rollout(instance, seed=5, answer_offset=-2) == [0.0]
    instance.env.close()


def test_an_environment_without_tools_is_refused() -> None:
    with pytest.raises(ValueError, match="no tools"):
        trl_environment_factory("agentgym/WebShop-v0")
