"""Registering a tool environment checks it up front (issue 17, item 7).

Ground-truth calls are checked against the tools at registration; async tools run to
completion; ``tuple[int, int]`` is a pair; infinities are refused like NaN.
"""

from __future__ import annotations

import asyncio
import math

import gymnasium as gym
import pytest

from agentgym import ToolCall, ToolSet, ToolTask, register_tool_env, tool
from agentgym.core.tool_env import ground_truth_problems


@tool
def move(position: tuple[int, int], steps: int = 1) -> str:
    """Move a marker.

    Args:
        position: Where the marker is, as (row, column).
        steps: How far to move it to the right.
    """
    row, column = position
    return f"({row}, {column + steps}) from a {type(position).__name__}"


@tool
def label(pair: tuple[str, int]) -> str:
    """Label a number.

    Args:
        pair: The label and the number.
    """
    return f"{pair[0]}={pair[1]}"


@tool
def scale(factor: float) -> float:
    """Scale by a factor.

    Args:
        factor: Any finite number.
    """
    return 2 * factor


@tool
async def fetch(key: str) -> str:
    """Fetch a value asynchronously.

    Args:
        key: What to fetch.
    """
    await asyncio.sleep(0)
    return key.upper()


@tool
async def fail_later(key: str) -> str:
    """An async tool that raises.

    Args:
        key: Anything.
    """
    await asyncio.sleep(0)
    raise RuntimeError(f"no {key}")


def _task(task_id: str, *calls: ToolCall) -> ToolTask:
    return ToolTask(id=task_id, turns=("Do it.",), ground_truth=(calls,))


def _checker(episode: object) -> bool:
    return True


def test_fixed_length_tuples_are_enforced_and_arrive_as_tuples() -> None:
    assert move.parameters["properties"]["position"]["minItems"] == 2
    assert move.validate({"position": [1, 2, 3]}) == ["'position' must have exactly 2 items, got 3"]
    assert move.validate({"position": [1]}) == ["'position' must have exactly 2 items, got 1"]
    assert move.validate({"position": [1, "a"]}) == [
        "'position[1]' must be an integer, got string 'a'"
    ]
    assert move.invoke({"position": [1, 2]}).content == "(1, 3) from a tuple"
    assert label.validate({"pair": ["x", "y"]}) == ["'pair[1]' must be an integer, got string 'y'"]
    assert label.invoke({"pair": ["x", 3]}).content == "x=3"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(value: float) -> None:
    result = scale.invoke({"factor": value})
    assert not result.ok and result.error_kind == "invalid_arguments"
    assert f"'factor' must be a finite number, got {value!r}" in result.content
    assert move.validate({"position": [1, 2], "steps": value})  # for integers too


def test_infinity_from_json_overflow_is_refused() -> None:
    # `1e999` is valid JSON and parses to inf; the tool must not receive it.
    from agentgym.core.parsing import get_parser

    action = get_parser("hermes").parse(
        '<tool_call>{"name": "scale", "arguments": {"factor": 1e999}}</tool_call>'
    )
    (call,) = action.tool_calls
    result = ToolSet([scale]).call(call)
    assert not result.ok and "must be a finite number, got inf" in result.content


def test_async_tools_are_awaited() -> None:
    result = fetch.invoke({"key": "abc"})
    assert result.ok and result.content == "ABC"
    failed = fail_later.invoke({"key": "x"})
    assert not failed.ok and failed.error_kind == "execution_error"
    assert "RuntimeError: no x" in failed.content


def test_async_tools_are_awaited_inside_a_running_event_loop() -> None:
    async def main() -> str:
        return fetch.invoke({"key": "loop"}).content

    assert asyncio.run(main()) == "LOOP"


def test_an_async_tool_env_runs_an_episode() -> None:
    register_tool_env(
        "tests/AsyncFetch-v0",
        tools=[fetch],
        tasks=[_task("t", ToolCall("fetch", {"key": "k"}))],
        checker=lambda episode: any(r.result.content == "K" for r in episode.calls),
        description="Async tool.",
        override=True,
    )
    env = gym.make("tests/AsyncFetch-v0")
    env.reset(seed=0)
    observation, *_ = env.step(
        '<tool_call>{"name": "fetch", "arguments": {"key": "k"}}</tool_call>'
    )
    assert "K" in observation
    _, reward, terminated, _, info = env.step("Done.")
    assert terminated and reward == 1.0 and info["success"]


def test_registration_lists_every_ground_truth_problem() -> None:
    tasks = [
        _task("ok", ToolCall("move", {"position": [0, 0]})),
        _task("typo", ToolCall("mvoe", {"position": [0, 0]})),
        _task("pair", ToolCall("move", {"position": [0, 0, 0]})),
        _task("args", ToolCall("move", {"positon": [0, 0]}), ToolCall("scale", {"factor": "2"})),
    ]
    with pytest.raises(ValueError) as excinfo:
        register_tool_env(
            "tests/BadTruth-v0", tools=[move, scale], tasks=tasks, checker=_checker,
            description="Bad ground truth.", override=True,
        )  # fmt: skip
    message = str(excinfo.value)
    assert message.startswith("cannot register 'tests/BadTruth-v0': 4 problem(s):")
    for expected in (
        "task 'typo', turn 0, call 0: unknown tool 'mvoe'. Did you mean 'move'?",
        "task 'pair', turn 0, call 0 move(...): 'position' must have exactly 2 items, got 3",
        "task 'args', turn 0, call 0 move(...): missing required argument 'position'; "
        "unknown argument 'positon'. Did you mean 'position'?",
        "task 'args', turn 0, call 1 scale(...): 'factor' must be a number, got string '2'",
    ):
        assert expected in message, expected
    assert "tests/BadTruth-v0" not in gym.registry


def test_registration_checks_argument_types() -> None:
    with pytest.raises(ValueError, match=r"max_steps_per_turn='3': expected int, got str"):
        register_tool_env(
            "tests/BadKwargs-v0", tools=[move], tasks=[_task("ok")], checker=_checker,
            description="Bad kwargs.", max_steps_per_turn="3", override=True,
        )  # fmt: skip


def test_ground_truth_problems_are_limited() -> None:
    tasks = [_task(f"t{i}", ToolCall("nope", {})) for i in range(30)]
    problems = ground_truth_problems(ToolSet([move]), tasks, limit=5)
    assert len(problems) == 6 and problems[-1] == "... and 25 more"
