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
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = ["ScriptedPolicy"]


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
