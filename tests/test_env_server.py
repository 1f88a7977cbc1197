"""`agentgym serve-env` and `agentgym/Remote-v0`: real server processes, real clients.

The environment contract tests (tests/test_envs.py) skip Remote-v0 because it needs a
server; here it gets the same checks (check_env, same seed -> same episode) against one,
plus what only a server has: concurrent sessions, limits, timeouts, tokens, restarts.
Protocol details (error codes, step timeout) are checked in-process with Starlette's test
client, where a deliberately slow environment can be registered.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("websockets")

from serve_env_process import TOKEN, Server, start_server

import agentgym
from agentgym.serving.env_server import EnvServer, ServerSettings, main
from agentgym.serving.protocol import to_json
from agentgym.serving.remote_env import RemoteEnvError

CALCULATOR = "agentgym/Calculator-v0"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    running = start_server(CALCULATOR, "difficulty=medium", "--max-sessions", "40")
    yield running
    running.stop()


def _remote(server: Server, **kwargs) -> gym.Env:
    return gym.make("agentgym/Remote-v0", url=server.url, token=server.token, **kwargs)


def _episode(env: gym.Env, reference: gym.Env, seed: int) -> list[str]:
    """Run ``env`` with the actions of an expert acting on ``reference`` (same seed),
    every few actions replaced by a random string; record everything ``env`` returns."""
    observation, info = env.reset(seed=seed)
    reference_observation, reference_info = reference.reset(seed=seed)
    expert = reference.unwrapped.make_expert()
    expert.reset(reference, reference_observation, reference_info)
    reference.action_space.seed(seed)
    record = [observation, json.dumps(info, sort_keys=True)]
    terminated = truncated = False
    step = 0
    while not (terminated or truncated):
        if step % 4 == 3:
            action = reference.action_space.sample()
        else:
            action = expert.act(reference_observation, reference_info)
        observation, reward, terminated, truncated, info = env.step(action)
        reference_observation, _, _, _, reference_info = reference.step(action)
        record += [action, observation, repr(reward), repr((terminated, truncated))]
        record.append(json.dumps(info, sort_keys=True))
        step += 1
    return record


def _local_record(seed: int) -> list[str]:
    local = gym.make(CALCULATOR, difficulty="medium")
    reference = gym.make(CALCULATOR, difficulty="medium")
    record = _episode(_JSONInfo(local), reference, seed)
    local.close()
    reference.close()
    return record


class _JSONInfo(gym.Wrapper):
    """A local environment whose info goes through JSON, as it does over the wire."""

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        return observation, to_json(info)

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        return observation, reward, terminated, truncated, to_json(info)


# -------------------------------------------------------------- the Gymnasium contract --


def test_remote_env_passes_check_env(server: Server) -> None:
    env = _remote(server, render_mode="ansi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning is a contract violation
        check_env(env.unwrapped, skip_render_check=False)
    observation, _ = env.reset(seed=0)
    env.step("hello")
    transcript = env.render()  # the served environment's transcript
    assert transcript.startswith(f"<<< {observation}") and ">>> hello" in transcript
    env.close()


def test_remote_episodes_equal_local_ones_and_replay_with_seeds(server: Server) -> None:
    env = _remote(server)
    reference = gym.make(CALCULATOR, difficulty="medium")
    for seed in (0, 7):
        first = _episode(env, reference, seed)
        assert first == _episode(env, reference, seed)  # same seed, same session
        assert first == _local_record(seed)  # and the same as in-process
    env.close()


def test_remote_env_reports_the_served_spaces_and_state(server: Server) -> None:
    env = _remote(server)
    local = gym.make(CALCULATOR, difficulty="medium")
    assert env.observation_space == local.observation_space
    assert env.action_space == local.action_space
    assert env.unwrapped.server_metadata["max_episode_steps"] == 24
    _, info = env.reset(seed=3)
    env.step("hello")
    state = env.unwrapped.state()
    assert state["step_count"] == 1 and state["task_id"] == info["task_id"]
    assert state["env_id"] == CALCULATOR
    env.close()


def test_non_text_actions_get_the_environments_own_answer(server: Server) -> None:
    env = _remote(server)
    env.reset(seed=0)
    local = gym.make(CALCULATOR, difficulty="medium")
    local.reset(seed=0)
    for action in (42, None, ["a"]):
        remote_step = env.step(action)
        local_step = local.step(action)
        assert remote_step[:4] == local_step[:4]
    env.close()


def test_an_action_too_long_for_the_transport_gets_the_environments_feedback(
    server: Server,
) -> None:
    env = _remote(server)
    env.reset(seed=0)
    limit = env.unwrapped.server_metadata["max_message_bytes"]
    observation, reward, terminated, truncated, info = env.step("x" * (limit + 10))
    assert reward == 0.0
    assert observation.startswith("Invalid action: it has 4097 characters, more than the limit")
    assert info["action_valid"] is False and not (terminated or truncated)
    assert env.step("hello")[0]  # the session is intact
    env.close()


# -------------------------------------------------------------------- sessions --


def test_many_concurrent_sessions_each_get_their_own_environment(server: Server) -> None:
    count = 32
    envs = [_remote(server) for _ in range(count)]
    for seed, env in enumerate(envs):
        env.reset(seed=seed)
    server.wait_for_sessions(count)
    records: dict[int, list[str]] = {}

    def run(seed: int) -> None:
        reference = gym.make(CALCULATOR, difficulty="medium")
        records[seed] = _episode(envs[seed], reference, 100 + seed)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(records) == list(range(count))
    for seed in (0, 13, 31):  # interleaved sessions did not disturb each other
        assert records[seed] == _local_record(100 + seed)
    for env in envs:
        env.close()
    server.wait_for_sessions(0)


def test_session_limit_refuses_extra_sessions_with_a_clear_error() -> None:
    limited = start_server(CALCULATOR, "--max-sessions", "2")
    try:
        first, second, third = (_remote(limited) for _ in range(3))
        first.reset(seed=0)
        second.reset(seed=0)
        with pytest.raises(RemoteEnvError, match="limit of 2 sessions") as error:
            third.reset(seed=0)
        assert error.value.code == "CAPACITY_REACHED"
        first.close()
        limited.wait_for_sessions(1)
        assert third.reset(seed=0)[0]  # a slot is free again
        second.close()
        third.close()
    finally:
        limited.stop()


def test_a_client_that_disappears_frees_its_session(server: Server) -> None:
    client = textwrap.dedent(
        f"""
        import time, gymnasium as gym, agentgym
        env = gym.make("agentgym/Remote-v0", url={server.url!r}, token={TOKEN!r})
        env.reset(seed=0)
        print("ready", flush=True)
        time.sleep(120)
        """
    )
    before = server.active_sessions()
    process = subprocess.Popen([sys.executable, "-c", client], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        server.wait_for_sessions(before + 1)
        process.send_signal(signal.SIGKILL)  # no close message, no goodbye
        process.wait()
        server.wait_for_sessions(before)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()


def test_idle_sessions_are_reaped_and_reset_reconnects() -> None:
    quick = start_server(CALCULATOR, "--idle-timeout", "1")
    try:
        env = _remote(quick)
        observation, _ = env.reset(seed=5)
        quick.wait_for_sessions(1)
        time.sleep(2.5)
        quick.wait_for_sessions(0)
        with pytest.raises(RemoteEnvError, match="idle") as error:
            env.step("hello")
        assert error.value.code == "SESSION_EXPIRED"
        assert env.reset(seed=5)[0] == observation  # a new session, the same episode
        assert env.unwrapped.reconnects == 1
        env.close()
    finally:
        quick.stop()


def test_server_restart_gives_a_clear_error_and_reset_reconnects() -> None:
    first = start_server(CALCULATOR)
    env = _remote(first)
    observation, _ = env.reset(seed=11)
    env.step("hello")
    port = first.port
    first.stop()
    second = start_server(CALCULATOR, port=port)  # the same address, a new process
    try:
        with pytest.raises(RemoteEnvError, match="restarted or went away") as error:
            env.step("hello")
        assert error.value.code == "CONNECTION_LOST"
        with pytest.raises(RemoteEnvError, match=r"call reset\(\)"):
            env.step("hello")  # still no session until the user resets
        assert env.reset(seed=11)[0] == observation  # seeded episodes survive the restart
        assert env.unwrapped.reconnects == 1
        env.close()
    finally:
        second.stop()


def test_an_unreachable_server_is_named() -> None:
    with pytest.raises(RemoteEnvError, match="cannot reach") as error:
        gym.make("agentgym/Remote-v0", url="http://127.0.0.1:9", token=TOKEN)
    assert error.value.code == "UNREACHABLE"


# ---------------------------------------------------------------------- tokens --


@pytest.mark.parametrize("token", ["wrong-token", None])
def test_bad_or_missing_tokens_get_401_and_a_clear_error(
    server: Server, token: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    monkeypatch.delenv("AGENTGYM_ENV_TOKEN", raising=False)
    with pytest.raises(RemoteEnvError, match="401 Unauthorized") as error:
        gym.make("agentgym/Remote-v0", url=server.url, token=token)
    assert error.value.code == "HTTP_401"
    assert ("rejected" if token else "no token") in str(error.value)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    assert httpx.get(f"{server.url}/metadata", headers=headers).status_code == 401
    assert httpx.get(f"{server.url}/schema", headers=headers).status_code == 401
    ws_url = server.url.replace("http://", "ws://") + "/ws"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, additional_headers=headers)  # the session route itself refuses
    assert refused.value.response.status_code == 401
    assert httpx.get(f"{server.url}/health").json() == {"status": "healthy"}  # no token


def test_token_from_the_environment_variable(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTGYM_ENV_TOKEN", TOKEN)
    env = gym.make("agentgym/Remote-v0", url=server.url)
    assert env.reset(seed=0)[0]
    env.close()


# ------------------------------------------------------------- OpenEnv's own client --


def test_openenvs_client_runs_an_episode() -> None:
    pytest.importorskip("openenv")
    from openenv.core.generic_client import GenericEnvClient

    # openenv-core 0.3's client sends no headers: serve without a token, on loopback.
    open_server = start_server(CALCULATOR, token=None)
    local = gym.make(CALCULATOR)
    try:
        with GenericEnvClient(base_url=open_server.url).sync() as client:
            result = client.reset(seed=4)
            observation, info = local.reset(seed=4)
            assert result.observation["text"] == observation
            assert result.observation["info"]["task_id"] == info["task_id"]
            assert result.done is False
            expert = local.unwrapped.make_expert()
            expert.reset(local, observation, info)
            while not result.done:
                action = expert.act(observation, info)
                result = client.step({"message": action})
                observation, reward, terminated, truncated, info = local.step(action)
                assert result.observation["text"] == observation
                assert result.reward == reward
                assert result.done == (terminated or truncated)
            assert result.reward == 1.0 and result.observation["info"]["success"] is True
            assert client.state()["env_id"] == CALCULATOR
    finally:
        open_server.stop()
        local.close()


# ------------------------------------------------------- protocol, in-process --


@pytest.fixture(scope="module")
def slow_env_id() -> str:
    from agentgym import ToolTask, register_tool_env, tool

    @tool
    def wait(seconds: float) -> str:
        """Sleep.

        Args:
            seconds: How long.
        """
        time.sleep(seconds)
        return "done"

    register_tool_env(
        "tests/Slow-v0",
        tools=[wait],
        tasks=[ToolTask(id="slow", turns=("Wait.",))],
        checker=lambda episode: True,
        description="A tool that sleeps.",
        override=True,
    )
    return "tests/Slow-v0"


def _call(websocket, message: dict) -> dict:
    websocket.send_text(json.dumps(message))
    return websocket.receive_json()


def test_protocol_errors_are_answered_and_the_session_goes_on(slow_env_id: str) -> None:
    from starlette.testclient import TestClient

    app = EnvServer(ServerSettings(slow_env_id, token=TOKEN)).app
    with (
        TestClient(app) as client,
        client.websocket_connect("/ws", headers={"Authorization": f"Bearer {TOKEN}"}) as ws,
    ):
        ws.send_text("not json")
        assert ws.receive_json()["data"]["code"] == "INVALID_JSON"
        assert _call(ws, {"type": "jump"})["data"]["code"] == "UNKNOWN_TYPE"
        assert _call(ws, {"type": "reset", "data": {"seed": -1}})["data"]["code"] == (
            "VALIDATION_ERROR"
        )
        assert "data.message" in _call(ws, {"type": "step", "data": {}})["data"]["message"]
        reset = _call(ws, {"type": "reset", "data": {"seed": 0}})
        assert reset["type"] == "observation" and reset["data"]["done"] is False
        assert reset["data"]["observation"]["text"] == "Wait."
        step = _call(ws, {"type": "step", "data": {"message": "Done waiting."}})
        assert step["data"]["done"] is True and step["data"]["reward"] == 1.0


def test_a_step_past_the_timeout_ends_the_session(slow_env_id: str) -> None:
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    server = EnvServer(ServerSettings(slow_env_id, token=TOKEN, step_timeout=0.3))
    call = '<tool_call>{"name": "wait", "arguments": {"seconds": 1.5}}</tool_call>'
    with (
        TestClient(server.app) as client,
        client.websocket_connect("/ws", headers={"Authorization": f"Bearer {TOKEN}"}) as ws,
    ):
        _call(ws, {"type": "reset", "data": {"seed": 0}})
        answer = _call(ws, {"type": "step", "data": {"message": call}})
        assert answer["data"]["code"] == "TIMEOUT"
        assert "step timeout of 0.3 s" in answer["data"]["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4504
        assert server.sessions == {}


# ------------------------------------------------------------- command line --


def test_command_line_refuses_bad_setups(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agentgym/Calculatr-v0", "--token", TOKEN]) == 2
    assert "Did you mean 'agentgym/Calculator-v0'" in capsys.readouterr().err
    assert main([CALCULATOR, "dificulty=easy", "--token", TOKEN]) == 2
    assert "dificulty" in capsys.readouterr().err
    assert main([CALCULATOR, "--no-token", "--host", "0.0.0.0"]) == 2
    assert "--no-token is refused on 0.0.0.0" in capsys.readouterr().err
    assert main([CALCULATOR, "difficulty", "--token", TOKEN]) == 2
    assert "expected key=value" in capsys.readouterr().err


def test_remote_v0_is_listed() -> None:
    assert "agentgym/Remote-v0" in agentgym.list_envs()
