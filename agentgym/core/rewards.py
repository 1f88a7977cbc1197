"""Episode rewards shared by the tool-use environments (Environment Tuning's rewards).

Pure functions of an episode's verdicts and counts, so that every environment that offers
them (``agentgym/ToolUse-v0``, ``agentgym/BFCL-MultiTurn-v0``) computes them alike:

* ``binary``: 1.0 when every turn passes the checker, else 0.0 (BFCL accuracy).
* ``progress``: the fraction of turns whose state and response checks both pass,
  ``R_P = (1/T) * sum_t state_ok_t * response_ok_t`` (a dense signal for RL).
* ``format``: the stage-1 reward for well-formed, valid tool use,
  ``I_tool * (R_format + R_tool)`` with ``R_format = (N - format errors) / N`` over the
  agent's ``N`` actions and ``R_tool = correct calls / (correct + erroneous calls)``;
  ``I_tool`` is 1 when the agent made at least one tool call. It ranges over [0, 2].

Example:
    >>> progress_reward([True, False, True, True])
    0.75
    >>> binary_reward([True, True], num_turns=3)  # a turn never reached fails the episode
    0.0
    >>> format_reward(num_actions=4, format_errors=1, correct_calls=3, erroneous_calls=1)
    1.5
    >>> format_reward(num_actions=2, format_errors=0, correct_calls=0, erroneous_calls=0)
    0.0
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["REWARD_MODES", "binary_reward", "format_reward", "progress_reward"]

REWARD_MODES = ("binary", "progress", "format")


def binary_reward(turns_passed: Sequence[bool], num_turns: int) -> float:
    """1.0 when all ``num_turns`` turns were judged and passed."""
    return float(len(turns_passed) == num_turns and all(turns_passed))


def progress_reward(turns_passed: Sequence[bool], num_turns: int | None = None) -> float:
    """Passed turns over all turns (turns never reached count as failed)."""
    total = len(turns_passed) if num_turns is None else num_turns
    return sum(map(bool, turns_passed)) / total if total else 0.0


def format_reward(
    *, num_actions: int, format_errors: int, correct_calls: int, erroneous_calls: int
) -> float:
    """``I_tool * (R_format + R_tool)`` (see the module docstring)."""
    calls = correct_calls + erroneous_calls
    if calls == 0 or num_actions == 0:
        return 0.0
    r_format = (num_actions - format_errors) / num_actions
    r_tool = correct_calls / calls
    return r_format + r_tool
