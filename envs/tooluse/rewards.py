"""Reward modes of ``agentgym/ToolUse-v0`` (Environment Tuning's rewards).

The formulas are :mod:`agentgym.core.rewards`'s (re-exported here); this module adds
:func:`episode_reward`, which reads them off a :class:`~agentgym.ToolEpisode`.

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
    >>> format_reward(num_actions=4, format_errors=1, correct_calls=3, erroneous_calls=1)
    1.5
    >>> format_reward(num_actions=2, format_errors=0, correct_calls=0, erroneous_calls=0)
    0.0
"""

from __future__ import annotations

from collections.abc import Sequence

# The pure reward functions live in the core, shared with BFCL-MultiTurn-v0.
from agentgym.core.rewards import REWARD_MODES, binary_reward, format_reward, progress_reward
from agentgym.core.tool_env import ToolEpisode

__all__ = [
    "REWARD_MODES",
    "binary_reward",
    "episode_reward",
    "format_reward",
    "progress_reward",
]


def episode_reward(
    mode: str, episode: ToolEpisode, turns_passed: Sequence[bool], num_turns: int
) -> float:
    """The reward of ``episode`` under ``mode``, from the checker's turn verdicts."""
    if mode == "binary":
        return binary_reward(turns_passed, num_turns)
    if mode == "progress":
        return progress_reward(turns_passed, num_turns)
    if mode == "format":
        correct = sum(record.result.ok for record in episode.calls)
        return format_reward(
            num_actions=episode.num_actions,
            format_errors=episode.format_errors,
            correct_calls=correct,
            erroneous_calls=len(episode.calls) - correct,
        )
    raise ValueError(f"Unknown reward mode {mode!r}; valid: {', '.join(REWARD_MODES)}")
