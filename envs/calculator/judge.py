"""Judging a calculator episode: each turn's reply states the right number, computed by a tool."""

from __future__ import annotations

import re

from agentgym.core.env import Evaluation
from agentgym.core.tool_env import ToolEpisode, ToolTask

__all__ = ["check_episode", "check_turn"]

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def _expected_values(task: ToolTask) -> list[float]:
    assert task.answers is not None
    return [float(_NUMBER.findall(answer)[-1]) for answer in task.answers]


def _reply_is_correct(reply: str, expected: float) -> bool:
    numbers = [float(n.replace(",", "")) for n in _NUMBER.findall(reply)]
    # The last number the agent states is its answer.
    return bool(numbers) and abs(numbers[-1] - expected) < 1e-6


def _turn_verdict(episode: ToolEpisode, turn: int, expected: float) -> bool:
    """The reply states the right number and a calculator call in this turn produced it."""
    computed = any(
        record.result.ok and _reply_is_correct(record.result.content, expected)
        for record in episode.calls_in_turn(turn)
    )
    return computed and _reply_is_correct(episode.responses[turn], expected)


def check_turn(episode: ToolEpisode, turn: int) -> bool:
    """A turn passes when a tool computed the right running result and the reply states it."""
    return _turn_verdict(episode, turn, _expected_values(episode.task)[turn])


def check_episode(episode: ToolEpisode) -> Evaluation:
    """Success when every turn passes; the feedback names the turns that did not."""
    expected = _expected_values(episode.task)
    verdicts: dict[str, bool] = {}
    problems = []
    for turn, reply in enumerate(episode.responses):
        replied = _reply_is_correct(reply, expected[turn])
        verdicts[f"turn_{turn}"] = _turn_verdict(episode, turn, expected[turn])
        if not replied:
            problems.append(f"turn {turn + 1}: the reply does not state the correct result")
        elif not verdicts[f"turn_{turn}"]:
            problems.append(f"turn {turn + 1}: the result was not computed with a tool")
    passed = sum(verdicts.values())
    success = passed == len(expected)
    return Evaluation(
        success=success,
        reward=float(success),
        verdicts=verdicts,
        feedback="All answers are correct." if success else "; ".join(problems) + ".",
        progress=passed / len(expected),
    )
