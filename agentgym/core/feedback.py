"""Feedback conditioning: the one thing a feedback-conditioned trainer asks of an environment.

FAFT (:mod:`agentgym.trainers.faft`) trains on ``prompt + evaluator feedback -> answer``;
LeTI (:mod:`agentgym.trainers.leti`) on ``reward token + execution feedback + problem ->
program``. Both need the prompt written *the way the environment writes it* when it is
conditioned at inference, so the environment renders it: an environment class that offers
``condition_on_feedback(prompt, feedback) -> str`` is :class:`FeedbackConditioned`, and a
trainer gets that method through :func:`feedback_conditioner` instead of importing the
environment's modules. Environments implement it as a ``staticmethod`` (it depends on no
episode state), so data transforms can use it without building an environment.

Implemented by ``agentgym/TravelPlanner-v0`` (a ``feedback:`` block before ``travel plan:``)
and ``agentgym/CodeExec-v0`` (an ``Execution feedback:`` block before the problem).

Example:
    >>> class Echo:
    ...     @staticmethod
    ...     def condition_on_feedback(prompt: str, feedback: str) -> str:
    ...         return f"{feedback}\\n{prompt}"
    >>> isinstance(Echo(), FeedbackConditioned)
    True
    >>> feedback_conditioner(Echo(), trainer="faft")("Solve it.", "Last time: wrong.")
    'Last time: wrong.\\nSolve it.'
    >>> feedback_conditioner(object(), trainer="faft", env_id="toy-v0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: trainer=faft needs an environment whose prompts can carry feedback ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

__all__ = ["Conditioner", "FeedbackConditioned", "feedback_conditioner"]

#: ``(prompt, feedback) -> prompt with that feedback in it``.
Conditioner = Callable[[str, str], str]


@runtime_checkable
class FeedbackConditioned(Protocol):
    """An environment whose prompts can carry feedback on the answer that follows."""

    def condition_on_feedback(self, prompt: str, feedback: str) -> str:
        """``prompt`` (an observation that asks for an answer) with ``feedback`` put in.

        Feedback already in the prompt is replaced; empty feedback returns the prompt as the
        unconditioned environment shows it.
        """
        ...


def feedback_conditioner(env: Any, *, trainer: str, env_id: str | None = None) -> Conditioner:
    """``env``'s :meth:`~FeedbackConditioned.condition_on_feedback` (wrappers are looked
    through), or a ``ValueError`` that names the trainer and the environments that have it.
    """
    base = getattr(env, "unwrapped", env)
    if isinstance(base, FeedbackConditioned):
        return base.condition_on_feedback
    name = env_id or type(base).__name__
    raise ValueError(
        f"trainer={trainer} needs an environment whose prompts can carry feedback "
        f"(a condition_on_feedback(prompt, feedback) method, see agentgym.core.feedback); "
        f"{name} has none. Environments with it: agentgym/TravelPlanner-v0 (env=travelplanner), "
        f"agentgym/CodeExec-v0 (env=codeexec)."
    )
