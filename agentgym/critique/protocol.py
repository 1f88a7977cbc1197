"""The words actor and critic exchange: requests, the critique format, prompts and parsing.

Every part of critique-in-the-loop (the PettingZoo game, the critics, test-time voting and
the ``critique`` trainer) speaks through this module, so that a critique written by the
oracle, by a prompted model or by a person reads the same and parses the same.

The critique format is the step-level one of Xi et al. (arXiv 2411.16579)::

    Step 1: <a part of the proposal>  Correctness: Correct  Explanation: <why>
    Step 2: <another part>  Correctness: Wrong  Explanation: <why>
    Final answer: Wrong  Explanation: <summary>

:func:`parse_critique` reads it leniently (case, ``Incorrect`` for ``Wrong``, explanations
spanning several lines, text around it); a critique without a ``Final answer`` line has no
verdict (``None``), which the game treats as "no objection" and scores as a wrong verdict.

Example:
    >>> critique = parse_critique(
    ...     "Step 1: def f  Correctness: Correct  Explanation: fine\\n"
    ...     "Step 2: return x + 1  Correctness: Wrong  Explanation: off by one\\n"
    ...     "Final answer: Wrong  Explanation: the result is one too large")
    >>> critique.verdict, critique.wrong_step, critique.steps[1].explanation
    (False, 2, 'off by one')
    >>> print(format_critique([StepCritique(1, "the code loads", True)], False, "2 of 3 passed."))
    Step 1: the code loads  Correctness: Correct
    Final answer: Wrong  Explanation: 2 of 3 passed.
    >>> parse_critique("looks fine to me").verdict is None
    True
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CRITIC_SYSTEM_PROMPT",
    "Critique",
    "CritiqueRequest",
    "StepCritique",
    "critic_prompt",
    "format_critique",
    "parse_critique",
    "refinement_prompt",
]

#: The critic's system message (model critics; the game shows it in the critic's info).
CRITIC_SYSTEM_PROMPT = (
    "You are a careful reviewer. An agent is solving a task in an environment and proposes "
    "its next answer. Check the proposal step by step and say for each step whether it is "
    "correct. Use exactly this format:\n"
    "Step 1: <a part of the proposal>  Correctness: Correct|Wrong  Explanation: <why>\n"
    "...\n"
    "Final answer: Correct|Wrong  Explanation: <summary>"
)

_STEP = re.compile(r"^[ \t*#>-]*step[ \t]*(\d{1,4})[ \t]*[:.)][ \t]*", re.IGNORECASE | re.MULTILINE)
_FINAL = re.compile(r"^[ \t*#>-]*final[ \t]+answer[ \t]*:[ \t]*", re.IGNORECASE | re.MULTILINE)
_CORRECTNESS = re.compile(r"correctness[ \t*]*:[ \t*]*(correct|incorrect|wrong)", re.IGNORECASE)
_LEADING_VERDICT = re.compile(r"[ \t*]*(correct|incorrect|wrong)\b[ \t*.,;]*", re.IGNORECASE)
_EXPLANATION = re.compile(r"explanation[ \t*]*:[ \t]*", re.IGNORECASE)


@dataclass(frozen=True)
class StepCritique:
    """The critic's judgement of one step of a proposal.

    Attributes:
        index: 1-based step number.
        step: What the step is (a line of code, a day of a plan, a tool call, a check).
        correct: Whether the critic finds the step correct.
        explanation: Why.
    """

    index: int
    step: str
    correct: bool
    explanation: str = ""


@dataclass(frozen=True)
class Critique:
    """A critique: the text as written, its step judgements and its verdict.

    Attributes:
        verdict: ``True`` (the proposal is correct), ``False`` (wrong) or ``None`` (the text
            has no readable ``Final answer`` line).
        text: The critique as the critic wrote it (what the actor reads when refining).
        steps: The ``Step k`` lines that carry a correctness judgement.
        explanation: The final verdict's explanation.
    """

    verdict: bool | None
    text: str
    steps: tuple[StepCritique, ...] = ()
    explanation: str = ""

    @property
    def wrong_step(self) -> int | None:
        """The number of the first step judged wrong (``None`` if none is)."""
        return next((step.index for step in self.steps if not step.correct), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (trajectory metadata, game info)."""
        return {
            "verdict": self.verdict,
            "wrong_step": self.wrong_step,
            "text": self.text,
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class CritiqueRequest:
    """Everything a critic may look at to judge one proposal.

    The episode's identity (environment id and arguments, task, episode seed and the
    actions committed so far) lets the oracle rebuild the episode by deterministic replay
    and try the proposal on a copy; a model critic reads the text fields.

    Attributes:
        env_id: The environment.
        env_kwargs: Its constructor arguments.
        task_id: The episode's task.
        episode_seed: The episode's seed.
        actions: The actions already committed, in order.
        proposal: The action under review.
        system_prompt: The instructions the actor follows.
        transcript: The actor's view so far: ``(role, text)`` pairs, first the task (the
            first observation), then each committed action (``"assistant"``) and the
            environment's answer to it.
        trial_feedback: The environment's feedback on the proposal, tried on a copy of the
            episode (shown to the critic when the game or runner is asked for feedback).
    """

    env_id: str
    env_kwargs: Mapping[str, Any]
    task_id: str
    episode_seed: int
    actions: tuple[str, ...]
    proposal: str
    system_prompt: str = ""
    transcript: tuple[tuple[str, str], ...] = ()
    trial_feedback: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        """The task as the actor first saw it."""
        return self.transcript[0][1] if self.transcript else ""


def format_critique(steps: Sequence[StepCritique], verdict: bool, explanation: str = "") -> str:
    """Write a critique in the step-level format (what the oracle produces)."""
    lines = []
    for step in steps:
        line = f"Step {step.index}: {_one_line(step.step)}  Correctness: "
        line += "Correct" if step.correct else "Wrong"
        if step.explanation:
            line += f"  Explanation: {step.explanation.strip()}"
        lines.append(line)
    final = f"Final answer: {'Correct' if verdict else 'Wrong'}"
    if explanation:
        final += f"  Explanation: {explanation.strip()}"
    lines.append(final)
    return "\n".join(lines)


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_correct(word: str) -> bool:
    return word.lower() == "correct"


def parse_critique(text: str) -> Critique:
    """Read a critique written in the step-level format (any text: never raises).

    Each ``Step k:`` or ``Final answer:`` line opens a block that runs to the next one, so
    explanations may span lines. The last ``Final answer`` gives the verdict.
    """
    if not isinstance(text, str):
        return Critique(None, "")
    starts = sorted(
        [(m.start(), m.end(), int(m.group(1))) for m in _STEP.finditer(text)]
        + [(m.start(), m.end(), 0) for m in _FINAL.finditer(text)]
    )
    steps: list[StepCritique] = []
    verdict: bool | None = None
    explanation = ""
    for position, (_, body_start, number) in enumerate(starts):
        end = starts[position + 1][0] if position + 1 < len(starts) else len(text)
        body = text[body_start:end]
        if number == 0:  # a Final answer block
            match = _LEADING_VERDICT.match(body)
            if match is None:
                continue
            verdict = _is_correct(match.group(1))
            rest = body[match.end() :]
            found = _EXPLANATION.search(rest)
            explanation = (rest[found.end() :] if found else rest).strip()
            continue
        correctness = _CORRECTNESS.search(body)
        if correctness is None:
            continue
        found = _EXPLANATION.search(body, correctness.end())
        steps.append(
            StepCritique(
                index=number,
                step=body[: correctness.start()].strip(),
                correct=_is_correct(correctness.group(1)),
                explanation=body[found.end() :].strip() if found else "",
            )
        )
    return Critique(verdict, text, tuple(steps), explanation)


def critic_prompt(request: CritiqueRequest, *, max_history_chars: int = 6000) -> str:
    """The text a critic reads for ``request`` (the critic agent's observation in the game).

    Earlier steps are kept from the most recent backwards up to ``max_history_chars``
    characters; older ones are summarised by their count, so long episodes stay readable.
    """
    parts = []
    if request.system_prompt:
        parts.append(f"## The agent's instructions\n{request.system_prompt.strip()}")
    parts.append(f"## Task\n{request.task.strip()}")
    history = list(request.transcript[1:])
    if history:
        shown: list[str] = []
        used = 0
        for offset in range(len(history) - 1, -1, -1):
            role, content = history[offset]
            label = "Agent" if role == "assistant" else "Environment"
            entry = f"{label}: {content.strip()}"
            if used + len(entry) > max_history_chars and shown:
                shown.append(f"({offset + 1} earlier messages not shown)")
                break
            shown.append(entry)
            used += len(entry)
        parts.append("## Earlier steps\n" + "\n".join(reversed(shown)))
    parts.append(f"## Proposed next answer\n{request.proposal.strip()}")
    if request.trial_feedback is not None:
        parts.append(
            "## What the environment answers to this proposal (tried on a copy)\n"
            + request.trial_feedback.strip()
        )
    parts.append(
        "Check the proposed answer step by step. Write one line per step:\n"
        "Step k: <step>  Correctness: Correct|Wrong  Explanation: <why>\n"
        "and end with\nFinal answer: Correct|Wrong  Explanation: <summary>"
    )
    return "\n\n".join(parts)


def refinement_prompt(critique: Critique | str) -> str:
    """The message that asks the actor to refine its proposal after a critique.

    >>> refinement_prompt("Final answer: Wrong").startswith("A reviewer checked")
    True
    """
    text = critique.text if isinstance(critique, Critique) else str(critique)
    return (
        "A reviewer checked your answer step by step:\n\n"
        f"{text.strip()}\n\n"
        "Using this critique, write a new, corrected answer to the same task, in the format "
        "the task asks for."
    )
