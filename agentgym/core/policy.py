"""Scripted policies: experts and oracles that environments ship.

A scripted policy acts from privileged knowledge (the environment's current task, its
ground truth) rather than from a language model. Rollout code runs it exactly like a model
policy, so expert trajectories (successful and failed) come out in the same format as the
agent's own, ready for SFT, RFT or EEF.

Example:
    >>> class Echo(ScriptedPolicy):
    ...     name = "echo"
    ...     def act(self, observation, info):
    ...         return observation
    >>> Echo().act("hi", {})
    'hi'
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = ["ScriptedPolicy", "check_error_injection"]


def check_error_injection(
    error_rate: float, error_kinds: Sequence[str] = (), valid_kinds: Sequence[str] = ()
) -> tuple[str, ...]:
    """Validate an expert's error-injection settings; the error kinds as a tuple.

    Every shipped expert injects errors the same way (one per episode with probability
    ``error_rate``, of a kind drawn from ``error_kinds``), so they share one check and
    one wording of what is wrong.

    Example:
        >>> check_error_injection(0.5, ["skip_call"], ["skip_call", "wrong_order"])
        ('skip_call',)
        >>> check_error_injection(0.5, ["typo"], ["skip_call"])
        Traceback (most recent call last):
        ...
        ValueError: Unknown error kinds ['typo']; valid: ['skip_call']
    """
    unknown = sorted(set(error_kinds) - set(valid_kinds))
    if unknown:
        raise ValueError(f"Unknown error kinds {unknown}; valid: {list(valid_kinds)}")
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
    return tuple(error_kinds)


class ScriptedPolicy(ABC):
    """A policy that maps an observation to an action without a model.

    ``reset`` is called after every ``env.reset`` with the (possibly wrapped) environment, so
    an expert can read ``env.unwrapped.task``; ``act`` then returns one action per step.
    """

    name: ClassVar[str] = "scripted"

    def reset(self, env: Any, observation: str, info: Mapping[str, Any]) -> None:  # noqa: B027
        """Prepare for a new episode (default: nothing to prepare)."""

    @abstractmethod
    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        """The next action."""
