"""Tests of ``ToolEnv``: episodes in every parser format, bad input, checkers, the expert,
registration, and the custom-tools example."""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import pytest

import agentgym
from agentgym import (
    Evaluation,
    State,
    ToolCall,
    ToolEnv,
    ToolEnvExpert,
    ToolEpisode,
    ToolError,
    ToolTask,
    tool,
)
from agentgym.core.parsing import ReActParser, ToolCallParser, get_parser

ROOT = Path(__file__).resolve().parents[1]


@tool
def deposit(amount: int, account: State) -> int:
    """Deposit money and return the new balance.

    Args:
        amount: Amount in dollars (positive).
    """
    if amount <= 0:
        raise ToolError(f"amount must be positive, got {amount}")
    account["balance"] += amount
    return account["balance"]


@tool
def withdraw(amount: int, account: State) -> int:
    """Withdraw money and return the new balance.

    Args:
        amount: Amount in dollars.
    """
    if amount > account["balance"]:
        raise ToolError("insufficient funds")
    account["balance"] -= amount
    return account["balance"]


@tool
def get_balance(account: State) -> int:
    """The current balance."""
    return account["balance"]


BANK_TOOLS = [deposit, withdraw, get_balance]

BANK_TASK = ToolTask(
    id="bank-0",
    turns=("Deposit 5 dollars.", "Now withdraw 3 dollars."),
    initial_state={"balance": 10},
    ground_truth=(
        (ToolCall("deposit", {"amount": 5}),),
        (ToolCall("withdraw", {"amount": 3}),),
    ),
    answers=("The balance is 15.", "The balance is 12."),
)
EXPECTED_CALLS = {0: "deposit", 1: "withdraw"}


def bank_checker(episode: ToolEpisode) -> bool:
    """Success when the final balance is 12."""
    return episode.state["balance"] == 12


def bank_turn_checker(episode: ToolEpisode, turn: int) -> bool:
    """A turn passes when its expected tool ran successfully."""
    return any(
        record.result.ok and record.call.name == EXPECTED_CALLS[turn]
        for record in episode.calls_in_turn(turn)
    )


def make_bank_env(**kwargs: Any) -> ToolEnv:
    options: dict[str, Any] = {
        "tools": BANK_TOOLS,
        "tasks": [BANK_TASK],
        "checker": bank_checker,
        "turn_checker": bank_turn_checker,
    }
    options.update(kwargs)
    return ToolEnv(**options)


def react() -> ReActParser:
    return ReActParser(answer_action="Finish")


# How an agent writes one call and a final answer in each format, by hand (not via the
# parser's own format_* methods, so parsing is tested against real-looking text).
FORMATS: dict[str, tuple[Callable[[], str | ToolCallParser], Callable[..., str], Callable]] = {
    "hermes": (
        lambda: "hermes",
        lambda name, amount: (
            f'Sure.\n<tool_call>{{"name": "{name}", "arguments": {{"amount": {amount}}}}}'
            "</tool_call>"
        ),
        lambda text: text,
    ),
    "python": (
        lambda: "python",
        lambda name, amount: f"[{name}(amount={amount})]",
        lambda text: text,
    ),
    "think_answer": (
        lambda: "think_answer",
        lambda name, amount: (
            f'<think>Call {name}.</think><tool_call>[{{"name": "{name}", '
            f'"arguments": {{"amount": {amount}}}}}]</tool_call>'
        ),
        lambda text: f"<think>Report it.</think><answer>{text}</answer>",
    ),
    "react": (
        react,
        lambda name, amount: f"Thought: I should call {name}.\nAction: {name}[{amount}]",
        lambda text: f"Thought: Done.\nAction: Finish[{text}]",
    ),
}


# ------------------------------------------------------------------------- full episodes --


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_full_episode_in_every_format(fmt: str) -> None:
    make_parser, call_text, answer_text = FORMATS[fmt]
    env = make_bank_env(parser=make_parser())
    observation, info = env.reset(seed=0)
    assert observation == "Deposit 5 dollars."
    assert info["observation_role"] == "user" and info["turn"] == 0 and info["num_turns"] == 2
    assert info["task_id"] == "bank-0"
    assert [schema["function"]["name"] for schema in info["tools"]] == [
        "deposit",
        "withdraw",
        "get_balance",
    ]
    assert info["system_prompt"].startswith("You are a helpful assistant")
    assert "deposit" in info["system_prompt"]

    observation, reward, terminated, truncated, info = env.step(call_text("deposit", 5))
    assert (observation, reward, terminated, truncated) == ("15", 0.0, False, False)
    assert info["observation_role"] == "tool" and info["action_valid"] and info["turn"] == 0
    assert info["tool_results"] == [{"name": "deposit", "ok": True}]
    assert info["progress"] == 0.0

    observation, reward, terminated, _, info = env.step(answer_text("The balance is 15."))
    assert (observation, reward, terminated) == ("Now withdraw 3 dollars.", 0.0, False)
    assert info["observation_role"] == "user" and info["turn"] == 1
    assert info["progress"] == 0.5

    observation, _, _, _, info = env.step(call_text("withdraw", 3))
    assert observation == "12" and info["turn"] == 1

    observation, reward, terminated, truncated, info = env.step(answer_text("12 left."))
    assert observation == "Episode finished: task solved (reward 1)."
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert info["success"] is True
    assert info["verdicts"] == {"turn_0": True, "turn_1": True}
    assert info["progress"] == 1.0 and info["turn"] == 2
    assert env.episode is not None
    assert env.episode.responses == ["The balance is 15.", "12 left."]
    assert [(r.turn, r.call.name) for r in env.episode.calls] == [(0, "deposit"), (1, "withdraw")]
    assert env.episode.state == {"balance": 12}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_expert_solves_in_every_format(fmt: str) -> None:
    env = make_bank_env(parser=FORMATS[fmt][0]())
    expert = env.make_expert()
    rewards = [play(env, expert) for _ in range(2)]
    assert rewards == [1.0, 1.0]
    assert env.episode is not None and env.episode.state == {"balance": 12}


def test_state_is_fresh_every_episode() -> None:
    env = make_bank_env()
    expert = env.make_expert()
    assert play(env, expert) == 1.0
    env.reset(seed=1)
    assert env.episode is not None and env.episode.state == {"balance": 10}
    assert BANK_TASK.initial_state == {"balance": 10}  # the task itself is never mutated


def test_multiple_calls_in_one_action() -> None:
    env = make_bank_env()
    env.reset(seed=0)
    action = (
        '<tool_call>{"name": "deposit", "arguments": {"amount": 5}}</tool_call>\n'
        '<tool_call>{"name": "nope", "arguments": {}}</tool_call>\n'
        '<tool_call>{"name": "get_balance", "arguments": {}}</tool_call>'
    )
    observation, _, _, _, info = env.step(action)
    assert observation.splitlines() == [
        '{"name": "deposit", "result": "15"}',
        '{"name": "nope", "result": "Error: unknown tool \'nope\'. Available tools: deposit, '
        'withdraw, get_balance"}',
        '{"name": "get_balance", "result": "15"}',
    ]
    assert info["action_valid"] is False
    assert info["tool_results"] == [
        {"name": "deposit", "ok": True},
        {"name": "nope", "ok": False},
        {"name": "get_balance", "ok": True},
    ]


# ------------------------------------------------------------------------------ bad input --


BAD_ACTIONS: list[tuple[str, Any, str, str]] = [
    (
        "malformed call",
        '<tool_call>{"name": "deposit", "arguments": {"amount": 5}</tool_call>',
        "<tool_call> block 1 is not valid JSON: Expecting ',' delimiter",
        "user",
    ),
    (
        "unknown tool",
        '<tool_call>{"name": "deposti", "arguments": {"amount": 5}}</tool_call>',
        "Error: unknown tool 'deposti'. Did you mean 'deposit'? Available tools: deposit, "
        "withdraw, get_balance",
        "tool",
    ),
    (
        "wrong argument type",
        '<tool_call>{"name": "deposit", "arguments": {"amount": "5"}}</tool_call>',
        "Error: invalid arguments for deposit: 'amount' must be an integer, got string '5'. "
        "Expected: deposit(amount: integer).",
        "tool",
    ),
    (
        "tool error",
        '<tool_call>{"name": "deposit", "arguments": {"amount": -5}}</tool_call>',
        "Error: amount must be positive, got -5",
        "tool",
    ),
    (
        "huge action",
        "x" * 101,
        "Invalid action: it has 101 characters, more than the limit of 100. Answer more briefly.",
        "user",
    ),
    (
        "non-string action",
        42,
        "Invalid action: expected text, got int. Answer with a string.",
        "user",
    ),
]


@pytest.mark.parametrize(("label", "action", "message", "role"), BAD_ACTIONS)
def test_bad_input_keeps_state_and_episode(
    label: str, action: Any, message: str, role: str
) -> None:
    env = make_bank_env(max_action_length=100)
    env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step(action)
    assert observation.startswith(message), label
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["action_valid"] is False
    assert info["feedback"].startswith(message)
    assert info["observation_role"] == role
    assert info["turn"] == 0
    assert env.episode is not None and env.episode.state == {"balance": 10}
    # The episode goes on and can still be solved.
    assert env.step('<tool_call>{"name": "deposit", "arguments": {"amount": 5}}</tool_call>')[
        0
    ] == ("15")
    env.step("ok")
    env.step('<tool_call>{"name": "withdraw", "arguments": {"amount": 3}}</tool_call>')
    assert env.step("ok")[1:3] == (1.0, True)


def test_every_bad_input_in_a_row_then_success() -> None:
    env = make_bank_env(max_action_length=100)
    env.reset(seed=0)
    for _, action, _, _ in BAD_ACTIONS:
        assert env.step(action)[2] is False
    assert env.episode is not None and env.episode.state == {"balance": 10}
    assert [record.result.error_kind for record in env.episode.calls] == [
        "unknown_tool",
        "invalid_arguments",
        "tool_error",
    ]
    assert env.episode.responses == []


def test_step_after_end_and_before_reset() -> None:
    env = make_bank_env()
    with pytest.raises(gym.error.ResetNeeded):
        env.step("hi")
    play(env, env.make_expert())
    observation, reward, terminated, _, info = env.step("more")
    assert observation == "The episode is over. Call reset() to start a new one."
    assert (reward, terminated, info["action_valid"], info["success"]) == (0.0, True, False, True)


# -------------------------------------------------------------------- max_steps_per_turn --


CALL_DEPOSIT = '<tool_call>{"name": "deposit", "arguments": {"amount": 5}}</tool_call>'


def test_max_steps_per_turn_ends_the_turn() -> None:
    env = make_bank_env(max_steps_per_turn=2)
    env.reset(seed=0)
    assert env.step(CALL_DEPOSIT)[0] == "15"
    observation, reward, terminated, _, info = env.step(CALL_DEPOSIT)
    assert observation == (
        "20\n\n[Turn ended: 2 steps without a final answer.]\nNow withdraw 3 dollars."
    )
    assert (reward, terminated) == (0.0, False)
    assert info["turn"] == 1 and info["action_valid"] is False
    assert info["observation_role"] == "user"
    assert info["progress"] == 0.5  # the turn checker still judged turn 0
    assert env.episode is not None and env.episode.responses == [""]
    # A malformed action as the last step of the last turn ends the episode, with its error.
    assert env.step("<tool_call>{</tool_call>")[2] is False
    assert env.episode.responses == [""]
    observation, reward, terminated, _, info = env.step("<tool_call>{</tool_call>")
    assert terminated and reward == 0.0 and info["success"] is False
    assert observation.startswith("<tool_call> block 1 is not valid JSON")
    assert "[Turn ended: 2 steps without a final answer.]\nEpisode finished: task not solved" in (
        observation
    )
    assert info["verdicts"] == {"turn_0": True, "turn_1": False}


def test_max_steps_per_turn_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_steps_per_turn must be >= 1, got 0"):
        make_bank_env(max_steps_per_turn=0)


# ------------------------------------------------------------------------------ checkers --


@pytest.mark.parametrize(
    ("result", "success", "reward", "feedback"),
    [
        (True, True, 1.0, ""),
        (False, False, 0.0, ""),
        (0.25, False, 0.25, ""),
        (1.0, True, 1.0, ""),
        (
            Evaluation(success=True, reward=0.75, verdicts={"polite": True}, feedback="Nice."),
            True,
            0.75,
            "Nice.",
        ),
    ],
)
def test_checker_return_types(result: Any, success: bool, reward: float, feedback: str) -> None:
    env = make_bank_env(checker=lambda episode: result, turn_checker=None)
    expert = env.make_expert()
    observation, info = env.reset(seed=0)
    expert.reset(env, observation, info)
    terminated = False
    while not terminated:
        observation, got_reward, terminated, _, info = env.step(expert.act(observation, info))
    assert got_reward == reward
    assert info["success"] is success
    verdict = "solved" if success else "not solved"
    assert observation == f"Episode finished: task {verdict} (reward {reward:g})." + (
        f"\n{feedback}" if feedback else ""
    )
    assert info["feedback"] == feedback
    if isinstance(result, Evaluation):
        assert info["verdicts"] == {"polite": True}
    assert info["progress"] is None  # no turn checker, no progress


def test_checker_with_wrong_return_type_fails_loudly() -> None:
    env = make_bank_env(checker=lambda episode: "yes", turn_checker=None)
    env.reset(seed=0)
    env.step("ok")
    with pytest.raises(TypeError, match="A checker must return Evaluation, bool or float, got str"):
        env.step("ok")


def test_evaluation_from_checker_keeps_its_turn_verdicts() -> None:
    env = make_bank_env(
        checker=lambda episode: Evaluation(success=False, reward=0.0, verdicts={"turn_0": False})
    )
    expert = env.make_expert()
    observation, info = env.reset(seed=0)
    expert.reset(env, observation, info)
    terminated = False
    while not terminated:
        observation, _, terminated, _, info = env.step(expert.act(observation, info))
    # The checker's own verdict wins over the turn checker's; the others are added.
    assert info["verdicts"] == {"turn_0": False, "turn_1": True}
    assert info["progress"] == 1.0  # from the turn checker, as the checker gave none
    assert info["success"] is False


def test_evaluate_unfinished_episode() -> None:
    env = make_bank_env()
    env.reset(seed=0)
    env.step(CALL_DEPOSIT)
    env.step("done")
    evaluation = env.evaluate()
    assert evaluation == Evaluation(
        success=False,
        reward=0.0,
        verdicts={"turn_0": True},
        feedback="The episode ended after 1 of 2 turns.",
        progress=0.5,
    )


# ------------------------------------------------------------------------------ ToolTask --


def test_tool_task_validation() -> None:
    with pytest.raises(ValueError, match=r"ToolTask 'empty' needs at least one user turn\."):
        ToolTask(id="empty", turns=())
    with pytest.raises(TypeError, match=r"ToolTask 's': turns must be a sequence of strings\."):
        ToolTask(id="s", turns="Deposit 5 dollars.")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"ToolTask 'gt': ground_truth has 1 turns but turns has 2\."
    ):
        ToolTask(id="gt", turns=("a", "b"), ground_truth=((ToolCall("get_balance"),),))
    with pytest.raises(
        ValueError, match=r"ToolTask 'ans': answers has 3 entries but turns has 1\."
    ):
        ToolTask(id="ans", turns=("a",), answers=("x", "y", "z"))


def test_expert_needs_ground_truth_and_valid_options() -> None:
    env = make_bank_env(tasks=[ToolTask(id="free", turns=("Hi.",))])
    observation, info = env.reset(seed=0)
    with pytest.raises(
        ValueError, match=r"Task 'free' has no ground_truth; the expert cannot act\."
    ):
        env.make_expert().reset(env, observation, info)
    with pytest.raises(ValueError, match=r"Unknown error kinds \['typo'\]; valid: "):
        ToolEnvExpert(error_kinds=["typo"])
    with pytest.raises(ValueError, match=r"error_rate must be in \[0, 1\], got 1.5"):
        ToolEnvExpert(error_rate=1.5)


# ------------------------------------------------------------------------ the calculator --


def play(env: gym.Env, expert: ToolEnvExpert, **reset_options: Any) -> float:
    """Run one episode with ``expert``; return the last reward."""
    observation, info = env.reset(options=reset_options or None)
    expert.reset(env, observation, info)
    reward, done = 0.0, False
    while not done:
        observation, reward, terminated, truncated, info = env.step(expert.act(observation, info))
        done = terminated or truncated
    return reward


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_calculator_expert_solves_every_task(difficulty: str) -> None:
    env = gym.make("agentgym/Calculator-v0", difficulty=difficulty)
    expert = env.unwrapped.make_expert()
    rewards = [play(env, expert, task_index=index) for index in range(30)]
    assert rewards == [1.0] * 30
    assert expert.injected is None


def test_calculator_expert_with_errors_fails_realistically() -> None:
    env = gym.make("agentgym/Calculator-v0", difficulty="medium")
    expert = env.unwrapped.make_expert(error_rate=1.0, seed=3)
    rewards, kinds = [], Counter()
    for index in range(30):
        rewards.append(play(env, expert, task_index=index))
        kinds[expert.injected] += 1
    assert sum(rewards) <= 6, rewards  # most episodes fail
    # One call per turn: nothing to reorder, so only these two kinds can be injected.
    assert set(kinds) <= {"wrong_argument", "skip_call"} and sum(kinds.values()) == 30
    assert len(kinds) == 2


def test_calculator_expert_error_kinds_filter() -> None:
    env = gym.make("agentgym/Calculator-v0", difficulty="medium")
    expert = env.unwrapped.make_expert(error_rate=1.0, error_kinds=["skip_call"])
    assert play(env, expert, task_index=0) == 0.0
    assert expert.injected == "skip_call"
    only_order = env.unwrapped.make_expert(error_rate=1.0, error_kinds=["wrong_order"])
    # Nothing can be reordered in one-call turns: the episode stays correct.
    assert play(env, only_order, task_index=0) == 1.0
    assert only_order.injected is None


# -------------------------------------------------------------------------- registration --


def test_register_tool_env_and_make() -> None:
    agentgym.register_tool_env(
        "tool_env_tests/Bank-v0",
        tools=BANK_TOOLS,
        tasks=[BANK_TASK],
        checker=bank_checker,
        description="A tiny bank for the tests.",
        max_episode_steps=10,
        turn_checker=bank_turn_checker,
        override=True,
    )
    assert agentgym.list_envs("tool_env_tests")["tool_env_tests/Bank-v0"] == (
        "A tiny bank for the tests."
    )
    env = gym.make("tool_env_tests/Bank-v0", max_steps_per_turn=3)
    assert env.spec is not None and env.spec.max_episode_steps == 10
    assert isinstance(env.unwrapped, ToolEnv)
    assert env.unwrapped.max_steps_per_turn == 3
    assert play(env, env.unwrapped.make_expert()) == 1.0
    with pytest.raises(TypeError) as info:
        gym.make("tool_env_tests/Bank-v0", max_step_per_turn=3)
    message = str(info.value)
    assert message.startswith(
        "tool_env_tests/Bank-v0 got an unknown argument 'max_step_per_turn'. "
        "Did you mean 'max_steps_per_turn'? Valid arguments: "
    )
    for name in ("tools", "tasks", "checker", "turn_checker", "parser", "max_action_length"):
        assert name in message.split("Valid arguments: ")[1].split(", ")


def test_register_twice_needs_override() -> None:
    options: dict[str, Any] = {
        "tools": BANK_TOOLS,
        "tasks": [BANK_TASK],
        "checker": bank_checker,
        "description": "Again.",
    }
    agentgym.register_tool_env("tool_env_tests/Twice-v0", override=True, **options)
    with pytest.raises(ValueError, match="'tool_env_tests/Twice-v0' is already registered"):
        agentgym.register_tool_env("tool_env_tests/Twice-v0", **options)


def test_time_limit_truncates() -> None:
    agentgym.register_tool_env(
        "tool_env_tests/BankShort-v0",
        tools=BANK_TOOLS,
        tasks=[BANK_TASK],
        checker=bank_checker,
        description="A tiny bank with a short time limit.",
        max_episode_steps=3,
        override=True,
    )
    env = gym.make("tool_env_tests/BankShort-v0")
    env.reset(seed=0)
    results = [env.step(CALL_DEPOSIT) for _ in range(3)]
    assert [(r[2], r[3]) for r in results] == [(False, False), (False, False), (False, True)]
    assert results[-1][0] == "25"
    evaluation = env.unwrapped.evaluate()
    assert (evaluation.success, evaluation.reward) == (False, 0.0)
    assert evaluation.feedback == "The episode ended after 0 of 2 turns."


# ------------------------------------------------------------------------------ example --


@functools.cache
def load_example() -> ModuleType:
    """Import ``examples/custom_tools.py`` by path (once: importing registers the env)."""
    path = ROOT / "examples" / "custom_tools.py"
    spec = importlib.util.spec_from_file_location("agentgym_example_custom_tools", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_custom_tools_example() -> None:
    example = load_example()
    assert example.ENV_ID in agentgym.list_envs()
    env = gym.make(example.ENV_ID)
    assert len(env.unwrapped.tasks) >= 3
    expert = env.unwrapped.make_expert()
    for index in range(len(env.unwrapped.tasks)):
        assert play(env, expert, task_index=index) == 1.0
    # Doing nothing leaves the list wrong, with feedback that says what is wrong.
    observation, _ = env.reset(options={"task_id": "groceries"})
    env.step("I will do it later.")
    observation, reward, terminated, _, info = env.step("Later.")
    assert (reward, terminated, info["success"]) == (0.0, True, False)
    assert "'Buy eggs' is missing" in observation
    assert "'Buy milk' has done=False, expected True" in observation


def test_custom_tools_example_backend_errors() -> None:
    example = load_example()
    tools = example.TOOLS
    state = State(items=[], next_id=1)
    assert tools.call(ToolCall("add_item", {"title": "A", "priority": "high"}), state=state).ok
    assert state["items"] == [{"id": 1, "title": "A", "priority": "high", "done": False}]
    duplicate = tools.call(ToolCall("add_item", {"title": "a"}), state=state)
    assert duplicate.content == "Error: There is already an open item titled 'a'."
    missing = tools.call(ToolCall("complete_item", {"item_id": 7}), state=state)
    assert missing.content == "Error: There is no item with id 7. Existing ids: 1."
    bad_priority = tools.call(ToolCall("set_priority", {"item_id": 1, "priority": "urgent"}))
    assert '\'priority\' must be one of "low", "normal", "high"' in bad_priority.content


def test_parser_instances_pass_through() -> None:
    parser = react()
    env = make_bank_env(parser=parser)
    assert env.parser is parser
    assert get_parser("react").answer_action is None


def test_fresh_experts_inject_errors_at_the_configured_rate() -> None:
    """The collector builds one expert per episode; injection must still follow the rate."""
    from agentgym.collector import EpisodeSpec, RolloutCollector

    collector = RolloutCollector(
        "agentgym/Calculator-v0",
        engine=None,
        env_kwargs={"difficulty": "medium"},
        expert_kwargs={"error_rate": 0.5, "error_kinds": ["wrong_argument"], "seed": 0},
    )
    trajectories = collector.run([EpisodeSpec(f"e{i}", seed=i) for i in range(60)], progress=False)
    failures = sum(not t.success for t in trajectories)
    assert 18 <= failures <= 42  # Binomial(60, 0.5): far from all-or-nothing
    again = collector.run([EpisodeSpec(f"e{i}", seed=i) for i in range(60)], progress=False)
    assert [t.success for t in again] == [t.success for t in trajectories]
