"""MCP in both directions, with real MCP client/server pairs over stdio (subprocesses).

`agentgym serve-tools` is driven by the mcp SDK's own client session (inside
:class:`MCPClient`); :class:`MCPToolEnv` is driven against our server and against a server
written with the SDK's high-level ``MCPServer`` (schemas we did not generate).
"""

from __future__ import annotations

import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("mcp")

from agentgym.core.parsing import ToolCall
from agentgym.envs.calculator import CalculatorEnv, calculator_tools, check_episode, check_turn
from agentgym.serving.mcp_tools import MCPClient, MCPToolEnv, main

SERVE_TOOLS = [sys.executable, "-m", "agentgym.cli", "serve-tools"]
CALCULATOR_TOOLS = [*SERVE_TOOLS, "agentgym.envs.calculator:calculator_tools"]


@pytest.fixture(scope="module")
def calculator_client() -> Iterator[MCPClient]:
    with MCPClient(CALCULATOR_TOOLS) as client:
        yield client


def _calculator_env_kwargs() -> dict:
    local = CalculatorEnv()
    return {
        "tasks": local.tasks,
        "checker": check_episode,
        "turn_checker": check_turn,
        "system_prompt": local.system_prompt,
        "max_steps_per_turn": local.max_steps_per_turn,
        "max_observation_length": local.max_observation_length,
        "max_action_length": local.max_action_length,
    }


def test_served_tools_have_the_local_schemas(calculator_client: MCPClient) -> None:
    served = {tool.name: tool for tool in calculator_client.tools}
    assert list(served) == list(calculator_tools)
    for name, local in calculator_tools.items():
        assert served[name].description == local.description
        assert served[name].input_schema == local.parameters


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("add", {"a": 2, "b": 3.5}),
        ("multiply", {"a": -4, "b": 12}),
        ("divide", {"a": 1, "b": 0}),  # a ToolError: an MCP tool error with the same text
        ("add", {"a": "two", "b": 1}),  # invalid arguments, judged by the server's ToolSet
        ("sqrt", {"x": 4}),  # unknown tool
    ],
)
def test_served_calls_answer_as_the_local_tools(
    calculator_client: MCPClient, name: str, arguments: dict
) -> None:
    served = calculator_client.call_tool(name, arguments)
    local = calculator_tools.call(ToolCall(name, arguments))
    assert (served.ok, served.content) == (local.ok, local.content)


def test_mcp_tool_env_replays_calculator_episodes() -> None:
    remote = MCPToolEnv(server_command=CALCULATOR_TOOLS, **_calculator_env_kwargs())
    local = CalculatorEnv()
    try:
        for seed in (0, 1, 2):
            records = []
            for env in (remote, local):
                observation, info = env.reset(seed=seed)
                expert = env.make_expert(error_rate=0.5, seed=seed)
                expert.reset(env, observation, info)
                record = [observation, info["tools"], info["system_prompt"]]
                terminated = False
                while not terminated:
                    observation, reward, terminated, _, info = env.step(
                        expert.act(observation, info)
                    )
                    record += [observation, reward, info.get("success")]
                records.append(record)
            assert records[0] == records[1]
    finally:
        remote.close()


def test_mcp_tool_env_passes_check_env() -> None:
    env = MCPToolEnv(server_command=CALCULATOR_TOOLS, **_calculator_env_kwargs())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_proxy_tools_validate_before_sending(calculator_client: MCPClient) -> None:
    env = MCPToolEnv(server_command=CALCULATOR_TOOLS, **_calculator_env_kwargs())
    try:
        env.reset(seed=0)
        observation = env.step('<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>')[0]
        assert observation == (
            "Error: invalid arguments for add: missing required argument 'b'. "
            "Expected: add(a: number, b: number)."
        )
        observation = env.step('<tool_call>{"name": "ad", "arguments": {}}</tool_call>')[0]
        assert "unknown tool 'ad'. Did you mean 'add'?" in observation
    finally:
        env.close()


def test_tool_environment_tools_act_on_one_episode_state() -> None:
    env = gym.make("agentgym/ToolUse-v0")
    _, info = env.reset(seed=3)
    names = [schema["function"]["name"] for schema in info["tools"]]
    with MCPClient([*SERVE_TOOLS, "agentgym/ToolUse-v0", "--seed", "3"]) as client:
        assert [tool.name for tool in client.tools] == names
        task = env.unwrapped.task
        for call in [c for turn in task.ground_truth for c in turn][:6]:
            served = client.call_tool(call.name, call.arguments)
            local = env.unwrapped.call_tool(call)
            # Stateful backends: the calls change each side's state the same way.
            assert (served.ok, served.content) == (local.ok, local.content)
    env.close()


def test_mcp_tool_env_uses_a_server_written_with_the_sdk(tmp_path: Path) -> None:
    script = tmp_path / "notes_server.py"
    script.write_text(
        textwrap.dedent(
            '''
            from mcp.server.mcpserver import MCPServer
            from mcp.server.mcpserver.exceptions import ToolError

            server = MCPServer("notes")
            notes: list[str] = []

            @server.tool()
            def add_note(text: str, pinned: bool | None = None) -> str:
                """Store a note and return how many there are."""
                notes.append(text)
                return f"{len(notes)} notes"

            @server.tool()
            def fail() -> str:
                """Always fails."""
                raise ToolError("no luck")

            server.run("stdio")
            '''
        )
    )
    from agentgym import ToolTask

    task = ToolTask(id="note", turns=("Write a note saying hi.",))
    env = MCPToolEnv(
        server_command=[sys.executable, str(script)],
        tasks=[task],
        checker=lambda episode: any(r.result.content == "1 notes" for r in episode.calls),
    )
    try:
        _, info = env.reset(seed=0)
        assert [schema["function"]["name"] for schema in info["tools"]] == ["add_note", "fail"]
        call = '<tool_call>{"name": "add_note", "arguments": {"text": "hi", "pinned": null}}'
        assert env.step(call + "</tool_call>")[0] == "1 notes"
        failed = env.step('<tool_call>{"name": "fail", "arguments": {}}</tool_call>')
        assert "no luck" in failed[0] and failed[4]["action_valid"] is False
        _, reward, terminated, _, info = env.step("I wrote it.")
        assert terminated and reward == 1.0 and info["success"] is True
    finally:
        env.close()


def test_a_server_that_does_not_start_is_reported() -> None:
    command = [sys.executable, "-c", "import sys; sys.exit(3)"]
    with pytest.raises(RuntimeError, match="did not start"):
        MCPClient(command, call_timeout=20)


def test_serve_tools_refuses_bad_specs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agentgym.envs.calculator:no_such_tools"]) == 2
    assert "cannot load" in capsys.readouterr().err
    assert main(["agentgym/WebShp-v0"]) == 2
    assert "Did you mean 'agentgym/WebShop-v0'" in capsys.readouterr().err
    assert main(["agentgym/Remote-v0", "url=http://127.0.0.1:9"]) == 2
    assert "cannot reach" in capsys.readouterr().err


def test_a_server_that_dies_gives_error_results_not_hangs() -> None:
    psutil = pytest.importorskip("psutil")
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    client = MCPClient(CALCULATOR_TOOLS, call_timeout=30)
    try:
        assert client.call_tool("add", {"a": 1, "b": 2}).content == "3"
        server = [c for c in psutil.Process().children(recursive=True) if c.pid not in before]
        for child in server:
            child.kill()
        psutil.wait_procs(server, timeout=10)
        result = client.call_tool("add", {"a": 1, "b": 2})
        assert not result.ok and "the tool server failed on add" in result.content
    finally:
        client.close()
