"""From the agent's reply to a program, and from an execution to feedback text.

* :func:`extract_code`: the program in a reply: the last fenced block that defines the
  entry point (else the last fenced block; an unclosed fence runs to the end), or an
  unfenced reply that is valid Python defining the entry point. Linear in the reply's
  length (every search moves forward), so no reply can stall the environment.
* :func:`execution_feedback`: what the agent reads after an attempt: tests passed, then
  each failing test with the failing assertion, expected and actual values, the traceback
  cut to the agent's own code, or ``timeout``. With ``reveal_tests=False`` a failing test
  is worded from its outcome alone (``wrong result``, ``raised ValueError``): no test
  source, no inputs, no expected or returned values, no exception messages and nothing
  the program printed, since a program can print its arguments or put them in a message.
* :func:`with_execution_feedback` and :func:`conditioned_prompt`: LeTI's input layout
  (reward token, feedback, problem); the environment offers the first as its
  ``condition_on_feedback`` (:class:`agentgym.core.feedback.FeedbackConditioned`) and uses
  the second for generation conditioned on the good token.

Example:
    >>> extract_code("Here:\\n```python\\ndef f():\\n    return 1\\n```\\nDone.", "f")
    'def f():\\n    return 1\\n'
    >>> extract_code("no code here", "f") is None
    True
    >>> conditioned_prompt("<|bad|>", "Write f.", "Test 1 failed.")
    '<|bad|>\\nExecution feedback:\\nTest 1 failed.\\n\\nWrite f.'
"""

from __future__ import annotations

import functools
import re

from agentgym.envs.codeexec.sandbox import ExecutionResult, TestResult

__all__ = ["conditioned_prompt", "execution_feedback", "extract_code", "with_execution_feedback"]

_LANGUAGE = re.compile(r"[ \t]*([A-Za-z0-9_+-]*)")
_PYTHON_LANGUAGES = ("", "python", "py", "python3")
_MAX_SHOWN_FAILURES = 3
_MAX_ERROR_CHARS = 600
_MAX_STDOUT_CHARS = 400


def _fenced_blocks(reply: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order; an unclosed fence runs to the end.

    Each ``find`` starts where the previous one stopped, so this is linear in the reply.
    """
    blocks = []
    position = 0
    while (start := reply.find("```", position)) >= 0:
        header_end = reply.find("\n", start + 3)
        if header_end < 0:
            break  # a fence without a line break after it has no body, nor has any later one
        language = _LANGUAGE.match(reply, start + 3, header_end).group(1)  # type: ignore[union-attr]
        close = reply.find("```", header_end + 1)
        blocks.append((language, reply[header_end + 1 : close if close >= 0 else len(reply)]))
        if close < 0:
            break
        position = close + 3
    return blocks


@functools.lru_cache(maxsize=1024)
def _definition(entry_point: str) -> re.Pattern[str]:
    # No leading \s* under MULTILINE here: it would rescan runs of blank lines (quadratic).
    return re.compile(rf"\bdef[ \t]+{re.escape(entry_point)}[ \t]*\(")


def extract_code(reply: str, entry_point: str) -> str | None:
    """The program in ``reply``, or ``None`` when it holds no code."""
    definition = _definition(entry_point)
    blocks = [
        body
        for language, body in _fenced_blocks(reply)
        if language.lower() in _PYTHON_LANGUAGES and body.strip()
    ]
    defining = [block for block in blocks if definition.search(block)]
    if defining or blocks:
        code = (defining or blocks)[-1]
        return code if code.endswith("\n") else code + "\n"
    if any(definition.match(line.lstrip()) for line in reply.split("\n")):
        try:
            compile(reply, "<reply>", "exec")
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return None
        return reply if reply.endswith("\n") else reply + "\n"
    return None


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 15] + "\n[... cut ...]"


def execution_feedback(
    result: ExecutionResult, tests: tuple[str, ...], *, reveal_tests: bool = True
) -> str:
    """Feedback on one execution, written for the agent.

    Args:
        result: The sandbox's result.
        tests: The tests' source (shown for failing tests when ``reveal_tests``).
        reveal_tests: Show failing assertions, values, messages and printed output;
            otherwise only each failing test's number and outcome.
    """
    total = len(result.tests)
    # Loading happens before any test input exists, so its errors reveal nothing.
    if result.status == "syntax_error":
        return "Your code has a syntax error:\n" + _clip(result.error, _MAX_ERROR_CHARS)
    if result.status == "error":
        return "Your code raised an error while loading:\n" + _clip(result.error, _MAX_ERROR_CHARS)
    lines = [f"{result.num_passed} of {total} tests passed."]
    if result.status in ("timeout", "output_limit", "crashed"):
        lines.append(result.error)
    failures = [test for test in result.tests if not test.passed]
    previous_error = None
    for test in failures[:_MAX_SHOWN_FAILURES]:
        header = f"Test {test.index + 1} failed"
        if not reveal_tests:
            lines.append(f"{header}: {_outcome(test)}")
            continue
        lines.append(header + ":\n" + _indent(_clip(tests[test.index], _MAX_ERROR_CHARS)))
        if test.got is not None:
            lines.append(f"  expected {test.expected}, got {test.got}")
        elif test.error and test.error != "AssertionError":
            same = test.error == previous_error
            lines.append(
                "  (the same error)" if same else _indent(_clip(test.error, _MAX_ERROR_CHARS))
            )
            previous_error = test.error
    if len(failures) > _MAX_SHOWN_FAILURES:
        lines.append(f"... and {len(failures) - _MAX_SHOWN_FAILURES} more failing tests.")
    if reveal_tests and failures and result.stdout.strip():
        lines.append("Your program printed:\n" + _indent(_clip(result.stdout, _MAX_STDOUT_CHARS)))
    return "\n".join(lines)


def _outcome(test: TestResult) -> str:
    """A failing test in words that carry nothing of its inputs or expected values."""
    if test.outcome == "exception":
        return (
            f"your function raised {test.exception}"
            if test.exception
            else ("your function raised an exception")
        )
    return {
        "wrong_result": "wrong result",
        "bad_value": "your function returned a value that is not plain data (return only "
        "None, bool, int, float, complex, str, bytes and lists, tuples, sets, dicts of them)",
        "stopped": "the run ended during this test (see above)",
        "not_run": "not run",
        "broken_test": "the test itself could not run",
    }.get(test.outcome, "failed")


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def with_execution_feedback(problem: str, feedback: str) -> str:
    """The problem with an ``Execution feedback:`` block before it (none for empty feedback).

    >>> print(with_execution_feedback("Write f.", "Test 1 failed."))
    Execution feedback:
    Test 1 failed.
    <BLANKLINE>
    Write f.
    """
    if not feedback.strip():
        return problem
    return "Execution feedback:\n" + feedback.strip() + "\n\n" + problem


def conditioned_prompt(token: str, problem: str, feedback: str = "") -> str:
    """LeTI's layout: reward token, then execution feedback (if any), then the problem."""
    return token + "\n" + with_execution_feedback(problem, feedback)
