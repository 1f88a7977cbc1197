"""Tests of ``agentgym/ToolUse-v0``: generator, checker, rewards, augmentation, bad input,
expert with error injection, curriculum and the custom-domain example."""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import agentgym
from agentgym import ToolCall, ToolTask
from agentgym.envs.tooluse import ToolUseEnv, ToolUseExpert
from agentgym.envs.tooluse.augment import GENERIC_HINTS, HINTS, ActionableAugmentation
from agentgym.envs.tooluse.backends import BACKENDS, Backend, register_backend, tool_index
from agentgym.envs.tooluse.curriculum import DEFAULT_CURRICULUM, Curriculum, Plateau, Stage
from agentgym.envs.tooluse.judge import replay_calls
from agentgym.envs.tooluse.rewards import format_reward, progress_reward
from agentgym.envs.tooluse.scenarios import CONFIG_BUILDERS
from agentgym.envs.tooluse.tasks import (
    CATEGORIES,
    DEFAULT_DOMAINS,
    DIFFICULTIES,
    generate_task,
    make_task_set,
    split_of_text,
)

ROOT = Path(__file__).resolve().parents[1]
ENV_ID = "agentgym/ToolUse-v0"


def play(env: gym.Env, expert: Any, **options: Any) -> tuple[float, str, dict[str, Any]]:
    """One expert episode: the last reward, observation and info."""
    observation, info = env.reset(options=options or None)
    expert.reset(env, observation, info)
    reward, done = 0.0, False
    while not done:
        observation, reward, terminated, truncated, info = env.step(expert.act(observation, info))
        done = terminated or truncated
    return reward, observation, info


def call(tool_name: str, /, **arguments: Any) -> str:
    return f"<tool_call>{json.dumps({'name': tool_name, 'arguments': arguments})}</tool_call>"


def snapshot(env: gym.Env) -> dict[str, Any]:
    return {domain: b.public_state() for domain, b in env.unwrapped.backends.items()}


# ----------------------------------------------------------------------------- domains --


def test_five_domains_with_documented_unique_tools() -> None:
    assert set(DEFAULT_DOMAINS) <= set(BACKENDS) and len(DEFAULT_DOMAINS) == 5
    index = tool_index(list(DEFAULT_DOMAINS))
    assert len(index) >= 50
    for name, (_, item) in index.items():
        schema = item.schema["function"]
        assert schema["name"] == name and schema["description"], name
        for parameter, spec in schema["parameters"]["properties"].items():
            assert spec.get("description"), f"{name}.{parameter} is undocumented"


def test_clashing_tool_names_are_rejected() -> None:
    from agentgym.core.tools import tool

    class Clash(Backend):
        domain = "clash_test"

        def load(self, config: dict[str, Any]) -> None:
            self.x = 0

        @tool
        def ls(self) -> int:
            """Shadows the file system's ls."""
            return 0

    with pytest.raises(ValueError, match="'ls' is defined by both 'filesystem' and 'clash_test'"):
        register_backend(Clash)
    assert "clash_test" not in BACKENDS


# --------------------------------------------------------------------------- generator --


@pytest.mark.parametrize("difficulty", list(DIFFICULTIES))
@pytest.mark.parametrize("category", CATEGORIES)
def test_expert_solves_every_category_and_difficulty(category: str, difficulty: str) -> None:
    env = gym.make(ENV_ID, difficulty=difficulty, categories=[category])
    expert = env.unwrapped.make_expert()
    rewards = [play(env, expert, task_index=i)[0] for i in range(12)]
    assert rewards == [1.0] * 12
    # The ground truth of many more tasks replays cleanly through the checker.
    tasks = env.unwrapped.tasks
    for index in range(12, 60):
        task = tasks[index]
        assert all(v.passed for v in replay_calls(task, task.ground_truth)), task.id


@pytest.mark.parametrize("difficulty", list(DIFFICULTIES))
def test_metadata_and_difficulty_rules(difficulty: str) -> None:
    rule = DIFFICULTIES[difficulty]
    tasks = make_task_set("train", difficulty, CATEGORIES, DEFAULT_DOMAINS)
    for index in range(40):
        task = tasks[index]
        meta = task.metadata
        assert meta["category"] == CATEGORIES[index % 4] and meta["difficulty"] == difficulty
        assert rule.domains[0] <= len(meta["domains"]) <= rule.domains[1]
        assert set(meta["domains"]) == set(task.initial_state)
        extra = meta["category"] in ("miss_param", "miss_func")
        assert len(task.turns) == rule.turns + extra
        assert all(len(calls) <= 12 for calls in task.ground_truth)
        assert sum(not calls for calls in task.ground_truth) == extra


def test_mixed_difficulty_interleaves_levels() -> None:
    tasks = make_task_set("train", "mixed", CATEGORIES, DEFAULT_DOMAINS)
    seen = Counter(
        (tasks[i].metadata["difficulty"], tasks[i].metadata["category"]) for i in range(24)
    )
    assert len(seen) == 12 and set(seen.values()) == {2}


def test_miss_param_turn_is_empty_and_answered_with_a_question() -> None:
    tasks = make_task_set("train", "medium", ("miss_param",), DEFAULT_DOMAINS)
    for index in range(20):
        task = tasks[index]
        turn = task.metadata["missing_param_turn"]
        assert task.ground_truth[turn] == () and task.ground_truth[turn + 1]
        assert "?" in task.answers[turn]


def test_miss_func_tool_is_hidden_until_revealed() -> None:
    env = gym.make(ENV_ID, categories=["miss_func"], difficulty="medium")
    for index in range(8):
        observation, info = env.reset(options={"task_index": index})
        meta = env.unwrapped.task.metadata
        withheld, reveal = meta["withheld_tool"], meta["reveal_turn"]
        names = [schema["function"]["name"] for schema in info["tools"]]
        assert withheld not in names and f'"{withheld}"' not in info["system_prompt"]
        assert env.unwrapped.task.ground_truth[reveal - 1] == ()
        # Calling it early is an error that says a function may be missing; nothing changes.
        before = snapshot(env)
        observation, _, terminated, _, info = env.step(call(withheld))
        assert observation.startswith(f"Error: '{withheld}' is not available.")
        assert "may be missing" in observation and not terminated
        assert info["action_valid"] is False and snapshot(env) == before
        # Walk to the reveal turn with the expected replies; the tool then appears.
        for turn in range(reveal):
            if turn > 0:
                for gt_call in env.unwrapped.task.ground_truth[turn]:
                    env.step(call(gt_call.name, **gt_call.arguments))
            observation, _, _, _, info = env.step(env.unwrapped.task.answers[turn])
        assert f"[A new tool is available: {withheld}]" in observation
        assert withheld in [schema["function"]["name"] for schema in info["tools"]]


def test_train_and_test_are_disjoint() -> None:
    for difficulty in ("easy", "hard"):
        train = make_task_set("train", difficulty, CATEGORIES, DEFAULT_DOMAINS)
        test = make_task_set("test", difficulty, CATEGORIES, DEFAULT_DOMAINS)
        assert len(train) == 100_000 and len(test) == 2_000
        train_texts = {"\n".join(train[i].turns) for i in range(600)}
        test_texts = {"\n".join(test[i].turns) for i in range(300)}
        assert len(train_texts) >= 580 and len(test_texts) >= 290  # nearly all distinct
        assert not train_texts & test_texts
        # By construction: every text belongs to one split only.
        assert {split_of_text(text.split("\n")) for text in test_texts} == {"test"}
        assert {split_of_text(text.split("\n")) for text in train_texts} == {"train"}
        assert not set(train.ids[:600]) & set(test.ids[:300])


def test_generation_is_deterministic_and_cheap() -> None:
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    options = {"category": "long_context", "difficulty": "hard", "domains": DEFAULT_DOMAINS}
    assert generate_task("x", rng_a, **options) == generate_task("x", rng_b, **options)
    env_a = ToolUseEnv(difficulty="medium")
    make_task_set.cache_clear()
    env_b = ToolUseEnv(difficulty="medium")
    assert env_a.tasks is not env_b.tasks
    assert [env_a.tasks[i] for i in range(10)] == [env_b.tasks[i] for i in range(10)]
    fresh = make_task_set("train", "hard", CATEGORIES, DEFAULT_DOMAINS)
    built = [fresh[i] for i in range(5_000, 5_040)]
    make_task_set.cache_clear()
    again = make_task_set("train", "hard", CATEGORIES, DEFAULT_DOMAINS)
    assert again is not fresh
    assert [again[i] for i in range(5_000, 5_040)] == built


def test_env_copies_share_task_data() -> None:
    first, second = ToolUseEnv(difficulty="easy"), ToolUseEnv(difficulty="easy")
    assert first.tasks is second.tasks
    assert first.tasks[3] is second.tasks[3]


def test_episode_is_deterministic_including_long_context_noise() -> None:
    def run() -> list[Any]:
        env = gym.make(ENV_ID, categories=["long_context"], difficulty="medium")
        observation, info = env.reset(seed=11)
        expert = env.unwrapped.make_expert()
        expert.reset(env, observation, info)
        out, done = [observation], False
        while not done:
            observation, reward, terminated, truncated, info = env.step(
                expert.act(observation, info)
            )
            out.append((observation, reward))
            done = terminated or truncated
        return out

    first = run()
    assert first == run()
    assert any("--- system log (unrelated to your request) ---" in o[0] for o in first[1:])


# ----------------------------------------------------------------------------- checker --

STOCKS = {"NVTX": {"company": "Novatex Systems", "price": 100.0}}
CHECK_TASK = ToolTask(
    id="check-0",
    turns=(
        "What's the price of NVTX?",
        "What's my balance and what do I hold?",
        "Buy 2 shares of NVTX.",
        "Deposit $50.",
    ),
    initial_state={"trading": {"balance": 1000.0, "stocks": STOCKS}},
    ground_truth=(
        (ToolCall("get_stock_price", {"symbol": "NVTX"}),),
        (ToolCall("get_account_summary"),),
        (ToolCall("buy_stock", {"symbol": "NVTX", "shares": 2}),),
        (ToolCall("deposit_funds", {"amount": 50.0}),),
    ),
    answers=("$100.", "$1,000 and nothing.", "Bought.", "Deposited."),
    metadata={"category": "base", "difficulty": "easy", "domains": ("trading",)},
)
GOOD = [
    [call("get_stock_price", symbol="NVTX"), "It is $100."],
    [call("get_account_summary"), "You have $1,000."],
    [call("buy_stock", symbol="NVTX", shares=2), "Bought."],
    [call("deposit_funds", amount=50), "Deposited."],
]


def run_turns(turns: list[list[str]], **kwargs: Any) -> tuple[float, str, dict[str, Any]]:
    env = gym.make(ENV_ID, domains=["trading"], tasks=[CHECK_TASK], **kwargs)
    env.reset(seed=0)
    for actions in turns:
        for action in actions:
            observation, reward, terminated, _, info = env.step(action)
    assert terminated
    return reward, observation, info


def test_checker_passes_the_ground_truth() -> None:
    reward, observation, info = run_turns(GOOD)
    assert reward == 1.0 and info["success"] is True and "Every turn passed." in observation
    assert info["verdicts"]["state_ok"] and info["verdicts"]["response_ok"]


def test_checker_state_mismatch_fails_that_turn() -> None:
    turns = [*GOOD[:2], [call("buy_stock", symbol="NVTX", shares=3), "Bought."], GOOD[3]]
    reward, observation, info = run_turns(turns)
    verdicts = info["verdicts"]
    assert (verdicts["turn_0"], verdicts["turn_1"], verdicts["turn_2"]) == (True, True, False)
    assert reward == 0.0 and info["success"] is False and verdicts["state_ok"] is False
    assert (
        "turn 3: the TradingAccount state differs from the expected one: balance is 700.0, "
        "expected 800.0"
    ) in observation


def test_checker_missing_response_fails_that_turn() -> None:
    # Right state, but the price was never looked up: the response check fails turn 1.
    turns = [[call("get_account_summary"), "It is $100."], *GOOD[1:]]
    _, observation, info = run_turns(turns)
    assert info["verdicts"]["turn_0"] is False and info["verdicts"]["turn_1"] is True
    assert info["verdicts"]["state_ok"] is True and info["verdicts"]["response_ok"] is False
    assert "turn 1: the result of get_stock_price(symbol='NVTX') was never obtained" in observation
    # No call at all in a turn that needs calls.
    _, observation, info = run_turns([GOOD[0], ["You have $1,000."], *GOOD[2:]])
    assert info["verdicts"]["turn_1"] is False
    assert "turn 2: no tool was called, but this turn needed tool calls" in observation


def test_checker_fails_changes_in_a_turn_with_empty_ground_truth() -> None:
    task = make_task_set("train", "easy", ("miss_param",), ("vehicle",))[0]
    turn = task.metadata["missing_param_turn"]
    calls = [list(c) for c in task.ground_truth]
    calls[turn] = list(task.ground_truth[turn + 1])  # guesses the value instead of asking
    verdicts = replay_calls(task, calls)
    assert verdicts[turn].passed is False and "state differs" in verdicts[turn].message


# ----------------------------------------------------------------------------- rewards --


def test_reward_functions() -> None:
    assert progress_reward([True, False, True, True]) == 0.75
    assert progress_reward([True], 4) == 0.25
    assert format_reward(num_actions=9, format_errors=1, correct_calls=3, erroneous_calls=1) == (
        pytest.approx(8 / 9 + 3 / 4)
    )
    assert format_reward(num_actions=3, format_errors=0, correct_calls=0, erroneous_calls=0) == 0


# turn 0 with a format error first; turn 1 with an erroneous call instead of the right one.
MIXED = [
    ["<tool_call>{oops", call("get_stock_price", symbol="NVTX"), "It is $100."],
    [call("get_stock_price", symbol="XXXX"), "Sorry."],
    *GOOD[2:],
]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("binary", 0.0), ("progress", 0.75), ("format", 8 / 9 + 3 / 4)],
)
def test_reward_modes_on_a_constructed_episode(mode: str, expected: float) -> None:
    reward, _, info = run_turns(MIXED, reward_mode=mode)
    assert reward == pytest.approx(expected)
    assert info["progress"] == 0.75 and info["success"] is False
    assert info["verdicts"]["format_errors"] == 1 and info["verdicts"]["tool_errors"] == 1


def test_unfinished_episode_gets_partial_credit_in_progress_mode() -> None:
    env = gym.make(ENV_ID, domains=["trading"], tasks=[CHECK_TASK], reward_mode="progress")
    env.reset(seed=0)
    for action in GOOD[0] + GOOD[1]:
        env.step(action)
    evaluation = env.unwrapped.evaluate()
    assert (evaluation.success, evaluation.reward, evaluation.progress) == (False, 0.5, 0.5)


# ------------------------------------------------------------------------ augmentation --


def test_augmentation_rewrites_a_vague_error_into_a_hint() -> None:
    task = ToolTask(
        id="fly",
        turns=("Book economy from Boston to Paris on 2025-05-01 with card_1234.",),
        initial_state={
            "travel": {
                "airports": {"BOS": "Boston", "CDG": "Paris"},
                "fares": {"BOS-CDG": 500.0},
                "cards": {"card_1234": {"holder": "A", "balance": 900.0}},
            }
        },
        ground_truth=(
            (
                ToolCall(
                    "book_flight",
                    {
                        "card_id": "card_1234",
                        "origin": "BOS",
                        "destination": "CDG",
                        "date": "2025-05-01",
                    },
                ),
            ),
        ),
    )
    wrong = call(
        "book_flight", card_id="card_1234", origin="Boston", destination="Paris", date="2025-05-01"
    )
    plain = gym.make(ENV_ID, domains=["travel"], tasks=[task])
    plain.reset(seed=0)
    assert plain.step(wrong)[0] == "Error: book_flight: No available route"
    env = gym.make(ENV_ID, domains=["travel"], tasks=[task], augment=True)
    env.reset(seed=0)
    observation = env.step(wrong)[0]
    assert observation == (
        "Error: book_flight: No available route\nHint: " + HINTS[("travel", "*", "invalid_airport")]
    )
    hint = observation.split("Hint: ", 1)[1]
    assert "BOS" not in hint and "CDG" not in hint  # the answer is not leaked
    # Switchable at run time, as a curriculum does between stages.
    env.unwrapped.augment = False
    assert env.step(wrong)[0] == "Error: book_flight: No available route"


def _task_specific(value: Any) -> bool:
    """Ids, codes, names of files, dates: values that identify a task's answer (plain words
    such as 'budget' also occur in hints as English)."""
    return isinstance(value, str) and (
        any(c.isdigit() for c in value)
        or (value.isupper() and len(value) >= 3)
        or "." in value
        or "_" in value
        or " " in value
    )


def test_hints_never_contain_ground_truth_values() -> None:
    texts = list(HINTS.values()) + list(GENERIC_HINTS.values())
    # Values listed in the tools' schemas (enums such as door names) are public.
    public = {
        value
        for _, item in tool_index(list(DEFAULT_DOMAINS)).values()
        for spec in item.parameters["properties"].values()
        for value in spec.get("enum", spec.get("items", {}).get("enum", []))
    } | {".."}  # cd's documented way up
    for difficulty in DIFFICULTIES:
        tasks = make_task_set("train", difficulty, CATEGORIES, DEFAULT_DOMAINS)
        for index in range(60):
            for calls in tasks[index].ground_truth:
                for gt_call in calls:
                    for value in gt_call.arguments.values():
                        values = value if isinstance(value, list) else [value]
                        for item in values:
                            if _task_specific(item) and item not in public:
                                assert not any(item in text for text in texts), item


def test_augmentation_lookup_order() -> None:
    augmentation = ActionableAugmentation()
    specific = augmentation.hint("filesystem", "cd", "not_found")
    assert specific == HINTS[("filesystem", "cd", "not_found")]
    assert (
        augmentation.hint("filesystem", "cat", "not_found")
        == HINTS[("filesystem", "*", "not_found")]
    )
    assert (
        augmentation.hint("anything", "x", "invalid_arguments")
        == GENERIC_HINTS["invalid_arguments"]
    )
    assert augmentation.rewrite("Error: x", "filesystem", "cat", None) == "Error: x"


# --------------------------------------------------------------------------- bad input --


def _all_domains_task() -> ToolTask:
    rng = np.random.default_rng(5)
    configs = {domain: CONFIG_BUILDERS[domain](rng, False) for domain in DEFAULT_DOMAINS}
    configs["vehicle"].update(engine_on=False, brake_pressed=False, parking_brake=True)
    configs["trading"]["holdings"] = {}
    return ToolTask(id="all", turns=("Hello.",), initial_state=configs, ground_truth=((),))


BAD_CALLS = [
    ('<tool_call>{"name": "ls", "arguments": {}</tool_call>', "is not valid JSON"),
    ("<tool_call>[1, 2]</tool_call>", "must be a JSON object"),
    (call("lss"), "Error: unknown tool 'lss'. Did you mean 'ls'?"),
    (call("mkdir", dir_name=5), "'dir_name' must be a string, got integer 5"),
    (call("buy_stock", symbol="NVTX", shares="ten"), "'shares' must be an integer"),
    (call("set_climate"), "missing required argument 'temperature'"),
    (call("cd", folder="a/b"), "Error: cd: a/b: Invalid argument"),
    (call("cat", file_name="missing.txt"), "No such file or directory"),
    (call("rm", name="nothing_here"), "No such file"),
    (call("buy_stock", symbol="ZZZZ", shares=1), "buy_stock: Invalid symbol"),
    (call("withdraw_funds", amount=10**9), "withdraw_funds: Transaction declined"),
    (call("sell_stock", symbol="NVTX", shares=1), "Error: sell_stock:"),
    (call("transfer_funds", to_account="123", amount=5), "transfer_funds: Invalid account"),
    (call("send_message", receiver_id="Ada Abbott", text="hi"), "Receiver not found"),
    (call("delete_message", message_id=-5), "Message not found"),
    (call("get_flight_price", origin="Paris", destination="London"), "No available route"),
    (call("cancel_booking", booking_id="BK9999"), "Invalid booking id"),
    (call("start_engine"), "start_engine: Engine start failed"),
    (call("refuel", liters=1000), "refuel: Invalid amount"),
    (call("set_cruise_control", speed_kmh=80), "Operation not permitted"),
    (call("lock_doors", doors=["trunk"]), "must be one of"),
]


@pytest.mark.parametrize("augment", [False, True])
def test_bad_input_leaves_state_unchanged_and_episode_going(augment: bool) -> None:
    env = gym.make(ENV_ID, tasks=[_all_domains_task()], augment=augment, max_steps_per_turn=99)
    env.reset(seed=0)
    before = snapshot(env)
    for action, message in BAD_CALLS:
        observation, reward, terminated, truncated, info = env.step(action)
        assert message in observation, (action, observation)
        assert info["action_valid"] is False
        assert (reward, terminated, truncated) == (0, False, False)
        assert snapshot(env) == before, action
    if augment:
        assert "Hint: The brake pedal must be pressed" in env.step(call("start_engine"))[0]
    assert env.step(call("ls"))[4]["action_valid"] is True
    assert env.step("All done.")[2] is True


def test_public_state_is_a_copy() -> None:
    env = ToolUseEnv(tasks=[_all_domains_task()])
    env.reset(seed=0)
    state = env.backends["trading"].public_state()
    state["balance"] = -1
    assert env.backends["trading"].balance != -1
    assert all(not key.startswith("_") for key in state)


# ------------------------------------------------------------------------------ expert --


def test_expert_error_injection_rates() -> None:
    env = gym.make(ENV_ID, difficulty="medium")
    always = env.unwrapped.make_expert(error_rate=1.0, seed=1)
    outcomes = []
    for index in range(40):
        reward, _, _ = play(env, always, task_index=index)
        outcomes.append((reward, always.injected))
    assert sum(reward == 0.0 for reward, _ in outcomes) >= 38
    assert {kind for _, kind in outcomes} >= {"wrong_argument", "skip_call"}
    # Every injected error makes the episode fail, every clean episode succeeds.
    assert all((reward == 0.0) == (kind is not None) for reward, kind in outcomes)

    rewards = []
    for index in range(150):
        # A fresh expert per episode, as the rollout collector makes them.
        expert = env.unwrapped.make_expert(error_rate=0.3, seed=0)
        rewards.append(play(env, expert, task_index=index)[0])
    assert 0.18 <= rewards.count(0.0) / len(rewards) <= 0.42


def test_expert_is_a_tool_env_expert() -> None:
    expert = gym.make(ENV_ID).unwrapped.make_expert(error_kinds=["skip_call"])
    assert isinstance(expert, ToolUseExpert) and expert.error_kinds == ("skip_call",)


# -------------------------------------------------------------------------- arguments --


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match=r"difficulty='hrad' is not valid\. Did you mean 'hard'"):
        ToolUseEnv(difficulty="hrad")
    with pytest.raises(ValueError, match="category='miss_parm'"):
        ToolUseEnv(categories=["miss_parm"])
    with pytest.raises(ValueError, match="reward_mode='dense'"):
        ToolUseEnv(reward_mode="dense")
    with pytest.raises(ValueError, match="num_tasks must be in"):
        ToolUseEnv(split="test", num_tasks=5_000)
    with pytest.raises(ValueError, match="uses domains"):
        ToolUseEnv(domains=["vehicle"], tasks=[CHECK_TASK])


def test_domain_and_category_subsets() -> None:
    env = ToolUseEnv(domains="travel,vehicle", categories=["base"], split="test", num_tasks=50)
    assert len(env.tasks) == 50 and env.tasks.id_at(0).startswith(
        "tooluse-easy-base-travel+vehicle-"
    )
    for index in range(10):
        task = env.tasks[index]
        assert set(task.metadata["domains"]) <= {"travel", "vehicle"}
        assert task.metadata["category"] == "base"


@pytest.mark.parametrize("parser", ["think_answer", "python"])
def test_expert_in_other_formats(parser: str) -> None:
    env = gym.make(ENV_ID, parser=parser, difficulty="medium")
    expert = env.unwrapped.make_expert()
    assert [play(env, expert, task_index=i)[0] for i in range(8)] == [1.0] * 8


# -------------------------------------------------------------------------- curriculum --


def test_default_curriculum_has_the_papers_four_stages() -> None:
    names = [stage.name for stage in DEFAULT_CURRICULUM]
    assert names == ["syntax", "basic", "advanced", "alignment"]
    modes = [(stage.reward_mode, stage.augment) for stage in DEFAULT_CURRICULUM]
    assert modes == [("format", True), ("progress", True), ("progress", True), ("progress", False)]
    assert DEFAULT_CURRICULUM[1].env_kwargs["categories"] == ["base"]
    assert set(DEFAULT_CURRICULUM[2].env_kwargs["categories"]) == set(CATEGORIES)
    for stage in DEFAULT_CURRICULUM:  # every stage builds a working environment
        env = gym.make(ENV_ID, **stage.kwargs())
        assert env.unwrapped.reward_mode == stage.reward_mode
        assert env.unwrapped.augment is stage.augment


def test_curriculum_steps_on_plateaus() -> None:
    curriculum = Curriculum(base_kwargs={"parser": "think_answer"})
    assert curriculum.stage.name == "syntax" and curriculum.env_kwargs()["parser"] == "think_answer"
    assert [curriculum.report(m) for m in (0.5, 1.95)] == [False, True]  # target reached
    assert curriculum.stage.name == "basic"
    results = [curriculum.report(m) for m in (0.2, 0.3, 0.4, 0.405, 0.41, 0.40)]
    assert results == [False, False, False, False, False, True]  # no gain for 3 reports
    saved = curriculum.state_dict()
    again = Curriculum()
    again.load_state_dict(saved)
    assert again.stage.name == "advanced" and again.history == curriculum.history
    curriculum.advance()
    assert curriculum.stage.name == "alignment" and curriculum.env_kwargs()["augment"] is False
    seen = []
    for kwargs in curriculum:
        seen.append(kwargs["augment"])
        curriculum.report(0.5)
    assert curriculum.finished and seen == [False] * 4
    with pytest.raises(RuntimeError, match="finished"):
        curriculum.report(0.1)
    env = Curriculum().make_env()
    assert env.unwrapped.reward_mode == "format"


def test_plateau_and_stage_validation() -> None:
    rule = Plateau(patience=2, min_delta=0.0, min_evaluations=1, max_evaluations=5)
    assert not rule.reached([0.1, 0.2, 0.3])
    assert rule.reached([0.3, 0.2, 0.3])
    assert rule.reached([0.1, 0.2, 0.3, 0.4, 0.5])
    with pytest.raises(ValueError, match="reward_mode='dense'"):
        Stage("x", reward_mode="dense")
    with pytest.raises(ValueError, match="not in env_kwargs"):
        Stage("x", {"augment": True})


# ----------------------------------------------------------------------------- example --


@functools.cache
def load_example() -> ModuleType:
    path = ROOT / "examples" / "tooluse_custom_domain.py"
    spec = importlib.util.spec_from_file_location("agentgym_example_tooluse_custom", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_custom_domain_example(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example()
    assert example.ENV_ID in agentgym.list_envs()
    env = gym.make(example.ENV_ID)
    expert = env.unwrapped.make_expert()
    assert [play(env, expert, task_index=i)[0] for i in range(10)] == [1.0] * 10
    example.main()
    out = capsys.readouterr().out
    assert "Expert on 30 generated tasks: mean reward 1.00" in out
    assert "Hand-written task with the expert: reward 1" in out
    assert "Hint: Rooms are named in lower case" in out
    # The built-in environment's default domains are unaffected by the custom registration.
    assert gym.make(ENV_ID).unwrapped.domains == DEFAULT_DOMAINS


def test_a_scenario_module_executed_twice_changes_no_task() -> None:
    """pytest's doctest collection imports envs/ a second time under another name; intents
    registered again must replace, not add to, the domain's list (tasks would change)."""
    from agentgym.envs.tooluse.scenarios.common import INTENTS

    before = {domain: [spec.name for spec in specs] for domain, specs in INTENTS.items()}
    env = gym.make("agentgym/ToolUse-v0")
    first = [env.reset(seed=seed)[1]["system_prompt"] for seed in range(20)]
    for domain in ("filesystem", "messaging", "trading", "travel", "vehicle"):
        path = ROOT / "envs" / "tooluse" / "scenarios" / f"{domain}.py"
        spec = importlib.util.spec_from_file_location(f"_second_copy_of_{domain}", path)
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    after = {domain: [spec.name for spec in specs] for domain, specs in INTENTS.items()}
    assert after == before
    env = gym.make("agentgym/ToolUse-v0")
    assert [env.reset(seed=seed)[1]["system_prompt"] for seed in range(20)] == first
