"""agentgym/BFCL-MultiTurn-v0: the oracle, the checker, bad inputs, miss_func, determinism."""

from __future__ import annotations

import copy
import itertools
import json
import re
import sys

import gymnasium as gym
import pytest

pytest.importorskip(
    "bfcl_eval",
    reason="bfcl-eval is not installed (pip install --no-deps bfcl-eval==2026.3.23 mpmath)",
)

import agentgym
from agentgym.envs import bfcl
from agentgym.envs.bfcl import (
    CATEGORIES,
    INSTALL_COMMAND,
    BFCLMultiTurnEnv,
    convert_schema,
    public_state,
)

ENV_ID = "agentgym/BFCL-MultiTurn-v0"


@pytest.fixture(scope="module")
def envs() -> dict[str, BFCLMultiTurnEnv]:
    """One environment copy per parser, and a strict one, reused across tests."""
    copies = {p: BFCLMultiTurnEnv(parser=p) for p in ("python", "hermes", "think_answer")}
    copies["strict"] = BFCLMultiTurnEnv(strict=True)
    return copies


def _reset(env: BFCLMultiTurnEnv, task_id: str) -> tuple[str, dict]:
    return env.reset(options={"task_id": task_id})


def _states(env: BFCLMultiTurnEnv) -> dict:
    return {name: copy.deepcopy(public_state(b)) for name, b in env.backends.items()}


def _run_expert(env: BFCLMultiTurnEnv, expert, task_index: int) -> tuple[float, dict, list]:
    observation, info = env.reset(options={"task_index": task_index})
    expert.reset(env, observation, info)
    observations = [observation]
    terminated = truncated = False
    reward = 0.0
    while not (terminated or truncated):
        observation, reward, terminated, truncated, info = env.step(expert.act(observation, info))
        observations.append(observation)
        assert len(observations) < 100, "the oracle did not finish"
    return reward, info, observations


def _first_task(env: BFCLMultiTurnEnv, predicate) -> str:
    return next(t.id for t in (env.tasks[i] for i in range(len(env.tasks))) if predicate(t))


# ------------------------------------------------------------------------------ oracle --


@pytest.mark.parametrize("parser", ["python", "hermes", "think_answer"])
def test_oracle_solves_every_entry_of_every_category(envs, parser: str) -> None:
    env = envs[parser]
    expert = env.make_expert()
    assert len(env.tasks) == 800
    solved = dict.fromkeys(CATEGORIES, 0)
    for index in range(len(env.tasks)):
        reward, info, _ = _run_expert(env, expert, index)
        assert info["success"] is True, (env.task.id, info["verdicts"], env.evaluate().feedback)
        assert reward == 1.0 and info["progress"] == 1.0
        # Every ground-truth call passes validation and runs without an exception.
        assert all(outcome.kind == "ok" for _, outcome in env.call_log), env.task.id
        solved[env.task.category] += 1
    assert solved == dict.fromkeys(CATEGORIES, 200)


def test_ground_truth_is_never_mutated_by_episodes(envs) -> None:
    # post_tweet keeps its `mentions` list in the backend and mention() extends it later.
    env = envs["python"]
    task = env.tasks[env.tasks.index_of("multi_turn_base_147")]
    before = copy.deepcopy(task.ground_truth)
    config = copy.deepcopy(task.initial_config)
    expert = env.make_expert()
    first = _run_expert(env, expert, env.tasks.index_of(task.id))
    second = _run_expert(env, expert, env.tasks.index_of(task.id))
    assert task.ground_truth == before and task.initial_config == config
    assert first[2] == second[2] and first[1]["success"] and second[1]["success"]


# --------------------------------------------------------------------------- bad input --


def test_malformed_call_is_an_error_and_changes_nothing(envs) -> None:
    env = envs["python"]
    _reset(env, "multi_turn_base_0")
    before = _states(env)
    observation, reward, terminated, _, info = env.step("[cd(folder='document'")
    assert "Could not parse the function calls" in observation
    assert info["action_valid"] is False and not terminated and reward == 0.0
    assert info["turn"] == 0 and _states(env) == before
    observation, *_ = env.step("[cd('document', 'extra')]")
    assert "2 positional arguments, but cd takes at most 1: cd(folder)" in observation
    assert _states(env) == before


@pytest.mark.parametrize(
    ("mode", "action", "kind", "message"),
    [
        (
            "python",
            "[teleport(to='x')]",
            "unknown_function",
            "function 'teleport' is not available",
        ),
        ("python", "[GorillaFileSystem.pwd()]", "unknown_function", "Did you mean 'pwd'?"),
        (
            "python",
            "[cd(fodler='x')]",
            "invalid_arguments",
            "unknown argument 'fodler'. Did you mean 'folder'",
        ),
        ("python", "[mkdir()]", "invalid_arguments", "missing required argument 'dir_name'"),
        # Types are checked only with strict=True (BFCL's executor passes values as given).
        (
            "strict",
            "[cd(folder=3)]",
            "invalid_arguments",
            "'folder' must be a string, got integer 3",
        ),
        (
            "strict",
            "[tail(file_name='a.txt', lines='ten')]",
            "invalid_arguments",
            "'lines' must be an integer",
        ),
    ],
)
def test_invalid_calls_give_clear_errors_and_leave_state_unchanged(
    envs, mode: str, action: str, kind: str, message: str
) -> None:
    env = envs[mode]
    _reset(env, "multi_turn_base_0")
    before = _states(env)
    observation, _, terminated, _, info = env.step(action)
    assert observation.startswith("Error during execution:")
    assert message in observation
    assert info["tool_results"][0]["kind"] == kind
    assert info["action_valid"] is False and not terminated
    assert info["observation_role"] == "tool"
    assert _states(env) == before


def test_backend_exception_is_reported_like_bfcl(envs) -> None:
    env = envs["python"]
    _reset(env, _first_task(env, lambda t: "TravelAPI" in t.involved_classes))
    before = _states(env)
    observation, _, _, _, info = env.step(
        "[get_flight_cost(travel_from='XXX', travel_to='YYY', travel_date='2024-11-15', "
        "travel_class='economy')]"
    )
    assert observation == "Error during execution: No available route for the given airports."
    assert info["tool_results"] == [{"name": "get_flight_cost", "kind": "exception"}]
    assert _states(env) == before


def test_backend_exception_rolls_back_partial_changes_in_strict_mode(envs, monkeypatch) -> None:
    env = envs["strict"]
    _reset(env, "multi_turn_base_0")
    twitter = type(env.backends["TwitterAPI"])
    original = twitter.post_tweet

    def post_then_fail(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise RuntimeError("boom")

    monkeypatch.setattr(twitter, "post_tweet", post_then_fail)
    before = _states(env)
    observation, *_ = env.step("[post_tweet(content='hello')]")
    assert observation == "Error during execution: boom"
    assert _states(env) == before


def test_several_calls_in_one_action_each_get_a_result(envs) -> None:
    env = envs["python"]
    _reset(env, "multi_turn_base_0")
    observation, _, _, _, info = env.step("[cd(folder='document'), nope(), ls()]")
    lines = [json.loads(line) for line in observation.splitlines()]
    assert [line["name"] for line in lines] == ["cd", "nope", "ls"]
    assert "final_report.pdf" in lines[2]["result"]
    assert [r["kind"] for r in info["tool_results"]] == ["ok", "unknown_function", "ok"]
    assert info["action_valid"] is False


# ---------------------------------------------------------------------------- miss_func --


def test_withheld_function_is_refused_until_its_turn_reveals_it_in_strict_mode(envs) -> None:
    env = envs["strict"]
    observation, info = _reset(env, "multi_turn_miss_func_0")
    task = env.task
    assert task.revealed == {3: ("sort",)}
    assert "sort" not in [t["function"]["name"] for t in info["tools"]]
    assert "sort(" not in info["system_prompt"]
    before = _states(env)
    observation, _, _, _, step_info = env.step("[sort(file_name='final_report.pdf')]")
    assert "function 'sort' is not available" in observation
    assert "sort" not in observation.split("Available functions:")[1].split(", ")
    assert step_info["tool_results"][0]["kind"] == "withheld_function"
    assert _states(env) == before
    # Play the ground truth of turns 0-2; turn 3 reveals `sort`.
    for turn in range(3):
        if task.ground_truth[turn]:
            env.step(env.parser.format_calls(task.ground_truth[turn]))
        observation, _, _, _, step_info = env.step("Done.")
    assert step_info["turn"] == 3
    assert step_info["new_tools"] == ["sort"]
    assert "sort" in [t["function"]["name"] for t in step_info["tools"]]
    assert "sort(file_name: string)" in observation
    assert "I have updated some more functions" in observation
    observation, *_ = env.step("[sort(file_name='final_report.pdf')]")
    assert "sorted_content" in observation


def test_function_the_ground_truth_calls_early_is_not_withheld(envs) -> None:
    # BFCL data quirk: multi_turn_miss_func_49 withholds `tail` until turn 3, but its ground
    # truth calls tail in turn 1.
    env = envs["python"]
    task = env.tasks[env.tasks.index_of("multi_turn_miss_func_49")]
    assert task.revealed == {3: ("wc", "cat")}
    assert "tail" in task.functions and task.metadata["not_withheld"] == ["tail"]


# ----------------------------------------------------------------------------- checker --


def test_wrong_call_sequence_fails_the_state_check_with_a_useful_message(envs) -> None:
    env = envs["python"]
    _reset(env, "multi_turn_base_0")
    # The ground truth moves final_report.pdf into a new 'temp'; this moves the other file.
    env.step("[cd(folder='document'), mkdir(dir_name='temp')]")
    env.step("[mv(source='previous_report.pdf', destination='temp')]")
    _, _, terminated, _, info = env.step("Done, moved it.")
    assert not terminated and info["progress"] == 0.0
    evaluation = env.evaluate()
    assert evaluation.verdicts["turn_0_state"] is False
    assert evaluation.verdicts["turn_0_response"] is False
    assert evaluation.verdicts["turn_0_called"] is True
    assert "turn 0" in evaluation.feedback
    assert "GorillaFileSystem.root" in evaluation.feedback
    assert "final_report.pdf" in evaluation.feedback or "previous_report.pdf" in evaluation.feedback
    assert evaluation.success is False


def test_response_check_and_call_check(envs) -> None:
    env = envs["python"]
    task_id = "multi_turn_base_1"
    _reset(env, task_id)
    assert [c.name for c in env.task.ground_truth[0]] == ["ls"]
    env.step("[pwd()]")  # read-only like the ground truth's ls(a=True), other result
    env.step("Here they are.")
    verdicts = env.evaluate().verdicts
    assert verdicts["turn_0_state"] is True and verdicts["turn_0_response"] is False
    assert "expected result(s) were never obtained (from ls)" in env.evaluate().feedback
    _reset(env, task_id)
    env.step("I am not sure what you mean.")
    verdicts = env.evaluate().verdicts
    assert verdicts["turn_0_called"] is False
    assert "no function was called" in env.evaluate().feedback


def test_progress_counts_checked_turns_and_verdicts_name_them(envs) -> None:
    env = envs["python"]
    _, info = _reset(env, "multi_turn_miss_param_0")
    task = env.task
    checked = task.checked_turns
    assert len(checked) < len(task.turns)  # miss_param has a turn without ground truth
    for turn, calls in enumerate(task.ground_truth):
        if calls and turn != checked[-1]:
            env.step(env.parser.format_calls(calls))
        *_, terminated, _, info = env.step("ok")
    assert terminated and info["success"] is False
    assert info["progress"] == pytest.approx((len(checked) - 1) / len(checked))
    assert set(info["verdicts"]) == {
        f"turn_{t}_{check}" for t in checked for check in ("state", "response", "called")
    } | {"within_step_limit"}


def test_step_limit_ends_the_turn_and_fails_the_episode(envs) -> None:
    env = BFCLMultiTurnEnv(categories="base", max_steps_per_turn=2)
    _reset(env, "multi_turn_base_1")
    for _ in range(2):
        *_, info = env.step("[pwd()]")
        assert info["turn"] == 0
    observation, _, _, _, info = env.step("[pwd()]")
    assert info["turn"] == 1 and "[Turn ended: more than 2 steps" in observation
    assert info["action_valid"] is False and info["observation_role"] == "user"
    for calls in env.task.ground_truth[1:]:
        env.step(env.parser.format_calls(calls))
        *_, terminated, _, info = env.step("Done.")
    assert terminated and info["success"] is False
    assert info["verdicts"]["within_step_limit"] is False


def test_unfinished_episode_evaluates_as_failure(envs) -> None:
    env = envs["python"]
    _reset(env, "multi_turn_base_0")
    env.step(env.parser.format_calls(env.task.ground_truth[0]))
    env.step("Done.")
    evaluation = env.evaluate()
    assert evaluation.success is False and evaluation.reward == 0.0
    assert evaluation.progress == pytest.approx(1 / len(env.task.checked_turns))
    assert "ended after 1 of 4 turns" in evaluation.feedback


# --------------------------------------------------------- agreement with BFCL's checker --


def _bfcl_source(call) -> str:
    return f"{call.name}(" + ", ".join(f"{k}={v!r}" for k, v in call.arguments.items()) + ")"


def test_verdicts_agree_with_bfcl_own_checker() -> None:
    # Long-context backends share module-level objects in BFCL's own runs; keep them out so
    # this test cannot leave changed globals behind for other tests.
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    env = BFCLMultiTurnEnv(categories=("base", "miss_param", "miss_func"))
    counter = itertools.count()
    outcomes = set()
    for error_rate, seed in ((0.0, 0), (1.0, 1)):
        expert = env.make_expert(error_rate=error_rate, seed=seed)
        for index in range(0, len(env.tasks), 7):
            observation, info = env.reset(options={"task_index": index})
            expert.reset(env, observation, info)
            steps: list[list[list[str]]] = [[] for _ in env.task.turns]
            terminated = False
            while not terminated:
                action = expert.act(observation, info)
                calls = env.parser.parse(action).tool_calls
                if calls:
                    steps[env._turn].append([_bfcl_source(c) for c in calls])
                observation, _, terminated, _, info = env.step(action)
            entry = {
                "id": env.task.id,
                "initial_config": copy.deepcopy(env.task.initial_config),
                "involved_classes": list(env.task.involved_classes),
            }
            ground_truth = [list(c) for c in env.task.ground_truth_source]
            theirs = multi_turn_checker(
                steps, ground_truth, entry, "multi_turn", f"agentgym_check_{next(counter)}"
            )
            assert info["success"] == theirs["valid"], (env.task.id, expert.injected, theirs)
            outcomes.add(info["success"])
    assert outcomes == {True, False}


# ---------------------------------------------------------------------------- settings --


def test_categories_are_validated() -> None:
    with pytest.raises(ValueError, match=r"categories='bse' is not valid\. Did you mean 'base'"):
        BFCLMultiTurnEnv(categories=["bse"])
    with pytest.raises(ValueError, match="must not be empty"):
        BFCLMultiTurnEnv(categories=[])
    with pytest.raises(ValueError, match="parser='json' is not valid"):
        BFCLMultiTurnEnv(parser="json")
    with pytest.raises(TypeError, match="Did you mean 'categories'"):
        gym.make(ENV_ID, category="base")
    env = gym.make(ENV_ID, categories="miss_func")
    assert len(env.unwrapped.tasks) == 200
    assert all(i.startswith("multi_turn_miss_func_") for i in env.unwrapped.tasks.ids)
    env = gym.make(ENV_ID, categories=("long_context", "base", "base"))
    assert env.unwrapped.categories == ("long_context", "base")
    assert env.unwrapped.tasks.ids[0] == "multi_turn_long_context_0"
    assert len(env.unwrapped.tasks) == 400


def test_tasks_are_shared_between_env_copies() -> None:
    first, second = BFCLMultiTurnEnv(categories="base"), BFCLMultiTurnEnv(categories="base")
    assert first.tasks is second.tasks and first.tasks[0] is second.tasks[0]


def test_tools_are_openai_schemas_with_json_types(envs) -> None:
    env = envs["hermes"]
    _, info = _reset(env, _first_task(env, lambda t: "TicketAPI" in t.involved_classes))
    schemas = {t["function"]["name"]: t["function"] for t in info["tools"]}
    text = json.dumps(info["tools"])
    assert '"dict"' not in text and '"float"' not in text
    updates = schemas["edit_ticket"]["parameters"]["properties"]["updates"]
    assert updates["type"] == "object"
    assert updates["properties"]["priority"]["type"] == "integer"
    assert schemas["edit_ticket"]["parameters"]["required"] == ["ticket_id", "updates"]
    assert info["tools"][0]["function"]["name"] in info["system_prompt"]
    assert "<tool_call>" in info["system_prompt"]
    assert convert_schema({"type": "tuple", "items": {"type": "float"}}) == {
        "type": "array",
        "items": {"type": "number"},
    }
    assert convert_schema({"type": "any", "description": "x"}) == {"description": "x"}


def test_long_context_backends_return_long_results(envs) -> None:
    env = envs["python"]
    lengths = {}
    for category in ("base", "long_context"):
        _reset(env, f"multi_turn_{category}_1")
        assert env.backends["GorillaFileSystem"].long_context is (category == "long_context")
        # 'archive' is an innermost directory: long context fills it with many files.
        observation, *_ = env.step("[cd(folder='workspace'), cd(folder='archive'), ls()]")
        lengths[category] = len(observation)
    assert lengths["long_context"] > 5 * lengths["base"]


# ------------------------------------------------------------------------- determinism --


def test_same_task_same_episode_in_fresh_env_copies() -> None:
    # MessageAPI (random message ids) and VehicleControlAPI (random temperatures) seed their
    # own RNG from the task; every episode must start from the same RNG state.
    def run(task_id: str) -> list:
        env = BFCLMultiTurnEnv()
        expert = env.make_expert()
        return [_run_expert(env, expert, env.tasks.index_of(task_id))[2] for _ in range(2)]

    for predicate in (
        lambda t: "MessageAPI" in t.involved_classes,
        lambda t: any(
            c.name == "get_outside_temperature_from_google"
            for c in itertools.chain(*t.ground_truth)
        ),
    ):
        task_id = _first_task(BFCLMultiTurnEnv(), predicate)
        first, second = run(task_id), run(task_id)
        assert first == second and first[0] == first[1]


def test_env_copies_do_not_share_state(envs) -> None:
    one, two = BFCLMultiTurnEnv(categories="base"), BFCLMultiTurnEnv(categories="base")
    _reset(one, "multi_turn_base_0")
    _reset(two, "multi_turn_base_0")
    initial = _states(two)
    one.step("[cd(folder='document'), mkdir(dir_name='temp')]")
    assert _states(two) == initial != _states(one)
    assert one.backends["GorillaFileSystem"] is not two.backends["GorillaFileSystem"]


# ----------------------------------------------------------------------------- expert --


def test_expert_injects_errors_and_resumes_mid_episode(envs) -> None:
    env = envs["python"]
    failures = 0
    expert = env.make_expert(error_rate=1.0, seed=3)
    for index in range(0, 800, 40):
        _, info, _ = _run_expert(env, expert, index)
        assert expert.injected in ("wrong_argument", "skip_call", "wrong_order", None)
        failures += not info["success"]
    assert failures > 10
    # A fresh oracle picks up an episode someone else started.
    observation, info = _reset(env, "multi_turn_base_0")
    env.step(env.parser.format_calls(env.task.ground_truth[0][:2]))
    oracle = env.make_expert()
    oracle.reset(env, observation, info)
    assert oracle.act(observation, info) == "[mv(source='final_report.pdf', destination='temp')]"
    terminated = False
    while not terminated:
        observation, _, terminated, _, info = env.step(oracle.act(observation, info))
    assert info["success"] is True


def test_missing_package_gives_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "bfcl_eval", None)
    with pytest.raises(ImportError, match=re.escape(INSTALL_COMMAND)):
        BFCLMultiTurnEnv()
    assert INSTALL_COMMAND in bfcl.__doc__
    assert ENV_ID in agentgym.list_envs()


# ------------------------------------------------------------- official semantics --


def test_positional_arguments_bind_as_bfcl_executor_binds_them(envs) -> None:
    env = envs["python"]
    _reset(env, "multi_turn_miss_func_0")
    observation, *_ = env.step("[cd('document')]")
    assert observation == '{"current_working_directory": "document"}'
    # The Python signature's order, not the doc's (they differ for purchase_insurance).
    parser = env.parser
    call = parser.parse("[purchase_insurance('t', 'comprehensive', 'b1', 50.0, 'c1')]")
    assert call.tool_calls[0].arguments == {
        "access_token": "t",
        "insurance_type": "comprehensive",
        "booking_id": "b1",
        "insurance_cost": 50.0,
        "card_id": "c1",
    }
    # The ground truth itself is written positionally in places (sort('final_report.pdf')).
    assert any("('" in s for turn in env.task.ground_truth_source for s in turn)


def test_values_of_another_type_reach_the_backend_unless_strict(envs) -> None:
    # BFCL's executor eval-s the call: a float where the doc declares an integer runs.
    for mode, expected_kind in (("python", "ok"), ("strict", "invalid_arguments")):
        env = envs[mode]
        _reset(env, "multi_turn_base_0")
        observation, *_ = env.step("[get_tweet(tweet_id=0.0)]")
        assert env.call_log[-1][1].kind == expected_kind, observation
    assert '"id": 0' in envs["python"].call_log[-1][1].content


def test_withheld_function_runs_when_called_early_as_in_bfcl(envs) -> None:
    env = envs["python"]
    _reset(env, "multi_turn_miss_func_0")
    observation, _, _, _, info = env.step(
        "[cd(folder='document'), sort(file_name='final_report.pdf')]"
    )
    assert [r["kind"] for r in info["tool_results"]] == ["ok", "ok"]
    assert "sorted_content" in observation
    # ... but the function stays out of the list until its turn, as BFCL shows it.
    assert "sort" not in [t["function"]["name"] for t in env.tool_schemas()]


def test_backend_exception_keeps_partial_changes_as_in_bfcl(envs, monkeypatch) -> None:
    env = envs["python"]
    _reset(env, "multi_turn_base_0")
    twitter = type(env.backends["TwitterAPI"])

    def post_then_fail(self, *args, **kwargs):
        self.tweets[999] = {"id": 999, "content": "half-done"}
        raise RuntimeError("boom")

    monkeypatch.setattr(twitter, "post_tweet", post_then_fail)
    observation, *_ = env.step("[post_tweet(content='hello')]")
    assert observation == "Error during execution: boom"
    assert env.backends["TwitterAPI"].tweets[999]["content"] == "half-done"


def test_float_precision_is_guarded_whatever_its_type(envs) -> None:
    env = envs["python"]
    _reset(env, _first_task(env, lambda t: "MathAPI" in t.involved_classes))
    observation, *_ = env.step("[logarithm(value=10.0, base=2.0, precision=1e9)]")
    assert "precision must be at most 1000" in observation


# ------------------------------------------------------------------------ step limits --


def _longest_turn_and_episode() -> tuple[tuple[int, str], tuple[int, str]]:
    tasks = [t for c in CATEGORIES for t in bfcl.load_category(c)]
    turn = max((len(calls), t.id) for t in tasks for calls in t.ground_truth)
    # One call per step, then a reply: sum over turns of (calls + 1).
    episode = max((sum(len(c) + 1 for c in t.ground_truth), t.id) for t in tasks)
    return turn, episode


def test_limits_let_every_entry_be_solved_one_call_per_step() -> None:
    (turn_calls, turn_task), (episode_steps, episode_task) = _longest_turn_and_episode()
    assert turn_calls == 34  # the number, from the data
    assert BFCLMultiTurnEnv().max_steps_per_turn >= turn_calls
    registered = gym.spec(ENV_ID).max_episode_steps
    assert registered >= episode_steps
    for task_id in (turn_task, episode_task):
        env = gym.make(ENV_ID)  # with the registered time limit
        env.reset(options={"task_id": task_id})
        task = env.unwrapped.task
        terminated = truncated = False
        for calls in task.ground_truth:
            for call in calls:
                *_, terminated, truncated, info = env.step(
                    env.unwrapped.parser.format_calls([call])
                )
                assert not (terminated or truncated)
            *_, terminated, truncated, info = env.step("Done.")
        assert terminated and not truncated and info["success"] is True, task_id


def test_every_step_info_has_progress(envs) -> None:
    env = gym.make(ENV_ID, max_action_length=200)
    _, info = env.reset(options={"task_id": "multi_turn_base_1"})
    assert info["progress"] == 0.0
    task = env.unwrapped.task
    actions = [
        "[ls(",  # parse error
        "x" * 500,  # too long
        "[teleport()]",  # unknown function
        env.unwrapped.parser.format_calls(task.ground_truth[0]),
        "Done.",
    ]
    for calls in task.ground_truth[1:]:
        actions += [env.unwrapped.parser.format_calls(calls), "Done."] if calls else ["Done."]
    seen = []
    for action in actions:
        *_, terminated, _, info = env.step(action)
        assert isinstance(info["progress"], float), (action, info)
        seen.append(info["progress"])
    assert terminated and seen[-1] == 1.0 and seen[0] == 0.0
    assert seen == sorted(seen)  # progress never goes down along a passing episode


# --------------------------------------------------------------- selection of entries --


def test_train_and_test_split_are_disjoint_halves_paired_by_scenario() -> None:
    train = BFCLMultiTurnEnv(split="train").tasks
    test = BFCLMultiTurnEnv(split="test").tasks
    assert len(train) == len(test) == 400
    assert set(train.ids).isdisjoint(test.ids)
    assert set(train.ids) | set(test.ids) == set(BFCLMultiTurnEnv().tasks.ids)
    for tasks in (train, test):
        per_category = {
            c: sum(tasks[i].category == c for i in range(len(tasks))) for c in CATEGORIES
        }
        assert per_category == dict.fromkeys(CATEGORIES, 100)
        backends = {c for i in range(len(tasks)) for c in tasks[i].involved_classes}
        assert backends == set(bfcl.BACKENDS)
    # Entry i of every category is the same scenario: all in one split.
    numbers = {i.rsplit("_", 1)[1] for i in train.ids}
    assert all(i.rsplit("_", 1)[1] in numbers for i in train.ids)
    assert not numbers & {i.rsplit("_", 1)[1] for i in test.ids}
    assert train.ids[:3] == ("multi_turn_base_0", "multi_turn_base_2", "multi_turn_base_4")
    assert BFCLMultiTurnEnv(split="train").tasks is train  # shared, not rebuilt
    with pytest.raises(ValueError, match=r"split='tran' is not valid\. Did you mean 'train'"):
        BFCLMultiTurnEnv(split="tran")


def test_backend_filters_hold_a_backend_out() -> None:
    held_out = BFCLMultiTurnEnv(backends=["TravelAPI"]).tasks
    rest = BFCLMultiTurnEnv(exclude_backends="TravelAPI").tasks
    assert len(held_out) == 200 and len(held_out) + len(rest) == 800
    assert all("TravelAPI" in held_out[i].involved_classes for i in range(len(held_out)))
    assert all("TravelAPI" not in rest[i].involved_classes for i in range(len(rest)))
    both = BFCLMultiTurnEnv(
        split="test",
        categories="base",
        backends="TravelAPI,MathAPI",
        exclude_backends=["TwitterAPI"],
    ).tasks
    for i in range(len(both)):
        classes = both[i].involved_classes
        assert {"TravelAPI", "MathAPI"} & set(classes) and "TwitterAPI" not in classes
        assert bfcl.split_of(both[i]) == "test"
    with pytest.raises(
        ValueError, match=r"backends='TravelApi' is not valid\. Did you mean 'TravelAPI'"
    ):
        BFCLMultiTurnEnv(backends=["TravelApi"])
    with pytest.raises(ValueError, match=r"Did you mean 'GorillaFileSystem'"):
        gym.make(ENV_ID, exclude_backends=["GorillaFilesystem"])
    with pytest.raises(ValueError, match="No BFCL entry matches"):
        BFCLMultiTurnEnv(backends=["MathAPI"], exclude_backends=["MathAPI"])
    with pytest.raises(ValueError, match="backends must not be empty"):
        BFCLMultiTurnEnv(backends=[])


def test_num_tasks_keeps_the_first_entries() -> None:
    env = BFCLMultiTurnEnv(split="train", num_tasks=5)
    assert env.tasks.ids == BFCLMultiTurnEnv(split="train").tasks.ids[:5]
    with pytest.raises(ValueError, match=r"num_tasks must be in \[1, 400\]"):
        BFCLMultiTurnEnv(split="test", num_tasks=401)


# ------------------------------------------------------------------------- rewards --


def test_reward_modes(envs) -> None:
    def play(reward_mode: str, fail_last_checked_turn: bool) -> tuple[float, dict]:
        env = BFCLMultiTurnEnv(categories="miss_param", reward_mode=reward_mode)
        _reset(env, "multi_turn_miss_param_0")
        task = env.task
        env.step("[cd(")  # one format error
        env.step("[teleport()]")  # one erroneous call
        for turn, calls in enumerate(task.ground_truth):
            if calls and not (fail_last_checked_turn and turn == task.checked_turns[-1]):
                env.step(env.parser.format_calls(calls))
            *_, info = env.step("ok")
        return env.evaluate().reward, info

    env = envs["python"]
    task = env.tasks[env.tasks.index_of("multi_turn_miss_param_0")]
    checked = len(task.checked_turns)
    assert play("binary", False)[0] == 1.0 and play("binary", True)[0] == 0.0
    reward, info = play("progress", True)
    assert reward == pytest.approx((checked - 1) / checked) == info["progress"]
    assert info["success"] is False
    reward, info = play("format", True)
    # Actions: a format error, a bad call, the calls of the checked turns but the last
    # (all correct), and one reply per turn.
    good = sum(len(task.ground_truth[t]) for t in task.checked_turns[:-1])
    num_actions = 2 + (checked - 1) + len(task.turns)
    expected = (num_actions - 1) / num_actions + good / (good + 1)
    assert reward == pytest.approx(expected)
    assert info["success"] is False and 0.0 < reward < 2.0
    with pytest.raises(ValueError, match=r"reward_mode='dense' is not valid"):
        BFCLMultiTurnEnv(reward_mode="dense")


def test_format_reward_of_an_unfinished_episode_counts_what_was_done() -> None:
    env = BFCLMultiTurnEnv(categories="base", reward_mode="format")
    _reset(env, "multi_turn_base_0")
    assert env.evaluate().reward == 0.0  # no call yet: I_tool = 0
    env.step("[pwd(), teleport()]")
    assert env.evaluate().reward == pytest.approx(1.0 + 0.5)
    assert env.evaluate().success is False


# ---------------------------------------------------------------- actionable hints --

_HINT_CASES = [
    ("GorillaFileSystem", "[cd(folder='document/sub')]", "Paths are not allowed"),
    ("GorillaFileSystem", "[cat(file_name='nope_zz.txt')]", "Use pwd to see where you are"),
    ("GorillaFileSystem", "[mkdir(dir_name='a:b')]", "Paths are not allowed"),
    (
        "TravelAPI",
        "[get_flight_cost(travel_from='QQQ', travel_to='ZZZ', travel_date='2024-11-15', "
        "travel_class='economy')]",
        "list_all_airports or get_nearest_airport_by_city",
    ),
    (
        "TravelAPI",
        "[compute_exchange_rate(base_currency='QQQ', target_currency='ZZZ', value=1.0)]",
        "Use currency codes",
    ),
    ("TradingBot", "[get_stock_info(symbol='QQQZ')]", "get_symbol_by_name"),
    ("MessageAPI", "[get_user_id(user='Nobody Qq')]", "list_users"),
    ("TicketAPI", "[get_ticket(ticket_id=987654)]", "get_user_tickets"),
    ("MathAPI", "[divide(a=1.0, b=0.0)]", "must not be zero"),
    ("VehicleControlAPI", "[setHeadlights(mode='qqq')]", "Use one of the values"),
    ("TwitterAPI", "[get_tweet(tweet_id=987654)]", "get_user_tweets or search_tweets"),
    ("TwitterAPI", "[get_tweet(tweet_id=[1])]", "Check each value against"),  # generic
    ("GorillaFileSystem", "[teleport(to='qq')]", "Call only functions from the list"),
    ("GorillaFileSystem", "[cd(fodler='qq')]", "Compare the call with the function's signature"),
]


@pytest.mark.parametrize(("backend", "action", "phrase"), _HINT_CASES)
def test_augmentation_turns_vague_errors_into_hints(backend: str, action: str, phrase: str) -> None:
    plain, augmented = BFCLMultiTurnEnv(), BFCLMultiTurnEnv(augment=True)
    task_id = _first_task(plain, lambda t: backend in t.involved_classes)
    _reset(plain, task_id)
    _reset(augmented, task_id)
    without, *_ = plain.step(action)
    with_hint, *_ = augmented.step(action)
    assert "Hint:" not in without
    assert with_hint.startswith(without + "\nHint: ")
    hint = with_hint[len(without) + len("\nHint: ") :]
    assert phrase in hint
    # Hints are fixed texts: no value from the call (or from the ground truth) leaks in.
    for value in re.findall(r"'([^']*)'", action):
        assert value not in hint
    # The checker compares the result itself, never the hint.
    assert augmented.call_log[-1][1].content == plain.call_log[-1][1].content


def test_augmentation_keeps_the_oracle_passing_and_refuses_withheld_functions() -> None:
    env = BFCLMultiTurnEnv(augment=True, strict=True)
    expert = env.make_expert()
    for index in range(0, len(env.tasks), 9):
        _, info, _ = _run_expert(env, expert, index)
        assert info["success"] is True, env.task.id
    _reset(env, "multi_turn_miss_func_0")
    observation, *_ = env.step("[sort(file_name='final_report.pdf')]")
    assert "not available" in observation and "Hint: A function this request needs" in observation
    assert "tell the user which function or value is missing and wait" in observation
    hinted = [h for h in bfcl.HINTS if h.backend not in ("*", *bfcl.BACKENDS)]
    assert hinted == []  # every row names a real backend


def test_expert_errors_are_verified_to_fail(envs) -> None:
    env = envs["python"]
    expert = env.make_expert(error_rate=1.0, seed=11)
    outcomes = []
    for index in range(0, 800, 25):
        _, info, _ = _run_expert(env, expert, index)
        outcomes.append((expert.injected, info["success"]))
    assert all(success is (kind is None) for kind, success in outcomes), outcomes
    assert sum(kind is not None for kind, _ in outcomes) >= 28
    with pytest.raises(ValueError, match="max_attempts must be >= 1"):
        env.make_expert(max_attempts=0)


def test_docs_list_every_hint() -> None:
    from pathlib import Path

    from agentgym.envs.bfcl.hints import GENERIC_EXCEPTION_HINT, KIND_HINTS

    docs = (Path(__file__).parents[1] / "docs" / "envs" / "bfcl.md").read_text(encoding="utf-8")
    texts = [h.text for h in bfcl.HINTS] + list(KIND_HINTS.values()) + [GENERIC_EXCEPTION_HINT]
    assert [t for t in texts if t not in docs] == []
