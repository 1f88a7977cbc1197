"""From the agent's reply to a program, and from an execution to feedback text.

* :func:`extract_code`: the program in a reply: the last fenced block that defines the
  entry point (else the last fenced block; an unclosed fence runs to the end), or an
  unfenced reply that is valid Python defining the entry point.
* :func:`execution_feedback`: what the agent reads after an attempt: tests passed, then
  each failing test with the failing assertion, expected and actual values, the traceback
  cut to the agent's own code, or ``timeout``.
* :func:`conditioned_prompt`: LeTI's input layout (reward token, feedback, problem), shared
  by the environment (generation conditioned on the good token) and the LeTI data transform.

Example:
    >>> extract_code("Here:\\n```python\\ndef f():\\n    return 1\\n```\\nDone.", "f")
    'def f():\\n    return 1\\n'
    >>> extract_code("no code here", "f") is None
    True
    >>> conditioned_prompt("<|bad|>", "Write f.", "Test 1 failed.")
    '<|bad|>\\nExecution feedback:\\nTest 1 failed.\\n\\nWrite f.'
"""

from __future__ import annotations

import re

from agentgym.envs.codeexec.sandbox import ExecutionResult

__all__ = ["conditioned_prompt", "execution_feedback", "extract_code"]

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_MAX_SHOWN_FAILURES = 3
_MAX_ERROR_CHARS = 600
_MAX_STDOUT_CHARS = 400


def extract_code(reply: str, entry_point: str) -> str | None:
    """The program in ``reply``, or ``None`` when it holds no code."""
    blocks = [
        body
        for language, body in _FENCE.findall(reply)
        if language.lower() in ("", "python", "py", "python3") and body.strip()
    ]
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
        reveal_tests: Show failing assertions; otherwise only their numbers and errors.
    """
    total = len(result.tests)
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
        if reveal_tests:
            header += ":\n" + _indent(_clip(tests[test.index], _MAX_ERROR_CHARS))
        lines.append(header)
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
    if failures and result.stdout.strip():
        lines.append("Your program printed:\n" + _indent(_clip(result.stdout, _MAX_STDOUT_CHARS)))
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def conditioned_prompt(token: str, problem: str, feedback: str = "") -> str:
    """LeTI's layout: reward token, then execution feedback (if any), then the problem."""
    parts = [token]
    if feedback:
        parts.append("Execution feedback:\n" + feedback.strip() + "\n")
    parts.append(problem)
    return "\n".join(parts)
