"""Critiques: the format and parser, the oracle on four environments, model and OpenAI critics."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import gymnasium as gym
import pytest

import agentgym  # noqa: F401  (registers the environments)
from agentgym.critique import (
    CritiqueRequest,
    ModelCritic,
    OpenAICritic,
    OracleCritic,
    StepCritique,
    format_critique,
    make_critic,
    parse_critique,
)
from agentgym.critique.protocol import critic_prompt
from agentgym.engines import make_engine
from agentgym.engines.base import SamplingParams
from agentgym.models import resolve_model

# ------------------------------------------------------------------------ format --


def test_parse_reads_steps_verdict_and_multi_line_explanations() -> None:
    critique = parse_critique(
        "Let me check.\n"
        "**Step 1:** read nums  Correctness: Correct  Explanation: fine\n"
        "Step 2: `n % 3 == 0`  Correctness: **Incorrect**  Explanation: the task says 4,\n"
        "  not 3.\n"
        "**Final answer:** Wrong. Explanation: uses the wrong divisor"
    )
    assert critique.verdict is False
    assert [(s.index, s.correct) for s in critique.steps] == [(1, True), (2, False)]
    assert critique.steps[1].explanation == "the task says 4,\n  not 3."
    assert critique.wrong_step == 2
    assert critique.explanation == "uses the wrong divisor"


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Final answer: Correct", True),
        ("final answer: WRONG", False),
        ("Final answer: Wrong\nthen again...\nFinal answer: Correct", True),  # the last counts
        ("Step 1: x  Correctness: Wrong", None),  # no final verdict
        ("Final answer: maybe", None),
        ("", None),
    ],
)
def test_verdict(text: str, verdict: bool | None) -> None:
    assert parse_critique(text).verdict is verdict


def test_format_and_parse_round_trip() -> None:
    steps = [StepCritique(1, "the code loads", True), StepCritique(2, "test 1", False, "wrong")]
    critique = parse_critique(format_critique(steps, False, "1 of 2 passed."))
    assert critique.steps == tuple(steps)
    assert (critique.verdict, critique.explanation) == (False, "1 of 2 passed.")


def test_parser_is_linear_on_hostile_text() -> None:
    # Many step headers and no verdicts: every search moves forward, so this stays fast.
    text = "Step 1: " * 20_000 + "Correctness: " * 20_000
    assert parse_critique(text).verdict is None


def test_critic_prompt_keeps_recent_history_within_budget() -> None:
    history = [("assistant", f"action {i}") if i % 2 == 0 else ("user", f"result {i}")
               for i in range(200)]  # fmt: skip
    transcript = (("user", "the task"), *history)
    request = CritiqueRequest("e", {}, "t", 0, (), "my proposal", "instructions", transcript)
    prompt = critic_prompt(request, max_history_chars=200)
    assert "the task" in prompt and "result 199" in prompt and "action 0\n" not in prompt
    assert "earlier messages not shown" in prompt and "my proposal" in prompt


# ------------------------------------------------------------------------ oracle --


def _start(env_id: str, **kwargs: Any) -> tuple[gym.Env, str, dict[str, Any]]:
    env = gym.make(env_id, **kwargs)
    observation, info = env.reset(seed=0, options={"task_index": 0})
    return env, observation, info


def _request(env_id: str, kwargs: dict[str, Any], info: dict[str, Any], proposal: str,
             actions: tuple[str, ...] = ()) -> CritiqueRequest:  # fmt: skip
    return CritiqueRequest(env_id, kwargs, info["task_id"], info["episode_seed"], actions,
                           proposal)  # fmt: skip


def test_oracle_codeexec_lists_failing_tests_without_hidden_values() -> None:
    kwargs = {"reveal_tests": False}
    env, observation, info = _start("agentgym/CodeExec-v0", **kwargs)
    expert = env.unwrapped.make_expert()
    expert.reset(env, observation, info)
    solution = expert.act(observation, info)
    wrong = "```python\ndef sum_of_multiples(nums):\n    return nums[0]\n```"
    with OracleCritic() as oracle:
        right, bad = oracle.critique([
            _request("agentgym/CodeExec-v0", kwargs, info, solution),
            _request("agentgym/CodeExec-v0", kwargs, info, wrong),
        ])  # fmt: skip
    assert right.verdict is True and all(step.correct for step in right.steps)
    assert bad.verdict is False
    assert bad.steps[0].step == "the code loads" and bad.steps[0].correct
    assert next(s.step for s in bad.steps if not s.correct).startswith("hidden test")
    # Hidden tests: none of their inputs that the problem text does not show may appear.
    for test in env.unwrapped.task.tests:
        arguments = test.split("(", 1)[1].rsplit(")", 1)[0]
        if arguments not in observation:
            assert arguments not in bad.text
    assert "expected" not in bad.text and "wrong result" in bad.text


def test_oracle_codeexec_shows_values_when_the_environment_does() -> None:
    _, _, info = _start("agentgym/CodeExec-v0", reveal_tests=True)
    wrong = "```python\ndef sum_of_multiples(nums):\n    return 12345\n```"
    [critique] = OracleCritic().critique(
        [_request("agentgym/CodeExec-v0", {"reveal_tests": True}, info, wrong)]
    )
    assert "expected 8, got 12345" in critique.text  # what the environment itself prints


def test_oracle_travelplanner_names_the_violated_constraints() -> None:
    kwargs = {"mode": "sole-planning", "database_size": "small", "split": "validation"}
    env, observation, info = _start("agentgym/TravelPlanner-v0", **kwargs)
    good = env.unwrapped.make_expert()
    good.reset(env, observation, info)
    bad = env.unwrapped.make_expert(error_rate=1.0)
    bad.reset(env, observation, info)
    oracle = OracleCritic()
    right, wrong, unreadable = oracle.critique([
        _request("agentgym/TravelPlanner-v0", kwargs, info, good.act(observation, info)),
        _request("agentgym/TravelPlanner-v0", kwargs, info, bad.act(observation, info)),
        _request("agentgym/TravelPlanner-v0", kwargs, info, "I would fly."),
    ])  # fmt: skip
    assert right.verdict is True and len(right.steps) >= 8
    assert wrong.verdict is False
    failed = [step for step in wrong.steps if not step.correct]
    assert failed and all(step.explanation for step in failed)  # the evaluator's reasons
    assert "fails" in wrong.explanation
    assert unreadable.verdict is False and "rejects" in unreadable.explanation
    oracle.close()


def test_oracle_tooluse_judges_calls_and_turn_checks_without_expected_values() -> None:
    env, observation, info = _start("agentgym/ToolUse-v0")
    expert = env.unwrapped.make_expert()
    expert.reset(env, observation, info)
    call = expert.act(observation, info)
    observation_2, _, _, _, info_2 = env.step(call)
    reply = expert.act(observation_2, info_2)
    oracle = OracleCritic()
    good_call, bad_call, early_reply, good_reply = oracle.critique([
        _request("agentgym/ToolUse-v0", {}, info, call),
        _request("agentgym/ToolUse-v0", {}, info, '<tool_call>{"name": "nope"}</tool_call>'),
        _request("agentgym/ToolUse-v0", {}, info, "All done!"),
        _request("agentgym/ToolUse-v0", {}, info, reply, (call,)),
    ])  # fmt: skip
    assert good_call.verdict is True
    assert bad_call.verdict is False and "unknown tool 'nope'" in bad_call.text
    assert early_reply.verdict is False
    # Answering before calling anything fails the turn's response check, and its state
    # check too when the turn's task changes state (which depends on the task drawn).
    failed = [s.step for s in early_reply.steps if not s.correct]
    assert "the results this turn needed" in failed
    assert set(failed) <= {"the state after this turn", "the results this turn needed"}
    assert "search_messages(" not in early_reply.text  # the checker's message is not shown
    assert good_reply.verdict is True


def test_oracle_webshop_scores_a_purchase() -> None:
    kwargs = {"num_products": 300, "index_cache": False}
    env, _, info = _start("agentgym/WebShop-v0", **kwargs)
    _, _, _, _, info = env.step("search[shoes]")
    product = info["available_actions"]["clickables"][2]
    actions = ("search[shoes]", f"click[{product}]")
    with OracleCritic() as oracle:
        [buy, bad_click] = oracle.critique([
            _request("agentgym/WebShop-v0", kwargs, info, "click[buy now]", actions),
            _request("agentgym/WebShop-v0", kwargs, info, "click[no such button]", actions),
        ])  # fmt: skip
    assert [step.step for step in buy.steps] == [
        "the kind of product", "the requested attributes", "the requested options",
        "the price limit"]  # fmt: skip
    assert buy.verdict is (all(step.correct for step in buy.steps))
    assert bad_click.verdict is False and "not a button" in bad_click.text


# ------------------------------------------------------------------------ model critics --


@pytest.fixture(scope="module")
def tiny_engine() -> Iterator[Any]:
    engine = make_engine("hf", model=str(resolve_model("tiny-random-llama")))
    yield engine
    engine.close()


def test_model_critic_runs_on_the_hf_engine(tiny_engine: Any) -> None:
    critic = make_critic("model", engine=tiny_engine,
                         sampling=SamplingParams(temperature=0.0, max_tokens=12))  # fmt: skip
    assert isinstance(critic, ModelCritic)
    requests = [CritiqueRequest("agentgym/CodeExec-v0", {}, "gen-easy-0", 0, (), f"answer {i}",
                                transcript=(("user", "Write f."),)) for i in range(3)]  # fmt: skip
    critiques = critic.critique(requests)
    assert len(critiques) == 3
    # A random model writes no verdict: the critiques are parsed, not invented.
    assert all(isinstance(c.text, str) and c.text and c.verdict is None for c in critiques)
    conversation = critic.conversation(requests[0])
    assert conversation[0]["role"] == "system" and "answer 0" in conversation[1]["content"]


@pytest.fixture
def chat_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An OpenAI-compatible chat server that answers every request with a fixed critique."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, **body})
            wrong = "12345" in body["messages"][-1]["content"]
            verdict = "Wrong  Explanation: a constant" if wrong else "Correct"
            text = f"Step 1: the function  Correctness: Correct\nFinal answer: {verdict}"
            reply = {"choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": text}}]}  # fmt: skip
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_openai_critic_asks_the_server_and_parses_its_verdicts(
    chat_server: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = chat_server
    critic = make_critic("openai", base_url=url, model="critic-model", timeout=5.0)
    assert isinstance(critic, OpenAICritic) and critic.name == "openai"
    requests = [
        CritiqueRequest("agentgym/CodeExec-v0", {}, "t", 0, (), "return 12345",
                        transcript=(("user", "Write f."),)),
        CritiqueRequest("agentgym/CodeExec-v0", {}, "t", 0, (), "return sum(nums)",
                        transcript=(("user", "Write f."),)),
    ]  # fmt: skip
    wrong, right = critic.critique(requests)
    critic.close()
    assert (wrong.verdict, right.verdict) == (False, True)
    assert wrong.explanation == "a constant"
    assert {r["path"] for r in received} == {"/v1/chat/completions"}
    assert all(r["model"] == "critic-model" for r in received)
    assert received[0]["messages"][0]["role"] == "system"
    assert "Write f." in received[0]["messages"][1]["content"]


def test_make_critic_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="Did you mean 'oracle'"):
        make_critic("orcale")
    with pytest.raises(ValueError, match="base_url"):
        make_critic("openai", model="m")
    with pytest.raises(ValueError, match="model="):
        make_critic("model")
    with pytest.raises(TypeError, match="no arguments"):
        make_critic("oracle", model="x")
