"""Scripted policies: experts and oracles that environments ship.

A scripted policy acts from privileged knowledge (the environment's current task, its
ground truth) rather than from a language model. Rollout code runs it exactly like a model
policy, so expert trajectories (successful and failed) come out in the same format as the
agent's own, ready for SFT, RFT or EEF.

Every shipped expert derives from :class:`ErrorInjectingExpert`, which makes one deliberate
error in a share ``error_rate`` of its episodes (the failed trajectories EEF, FAFT and LeTI
learn from). The base owns the randomness: at every ``reset`` it re-seeds its RNG from
``(seed, episode seed)`` and draws whether this episode gets an error, so a fresh expert
per episode (as the rollout collector makes) still varies across episodes, and the same
episode always gets the same error. Subclasses only say how to act and what an error is.

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

import numpy as np

__all__ = ["ErrorInjectingExpert", "ScriptedPolicy", "check_error_injection", "episode_rng"]


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


def episode_rng(seed: int, episode_seed: int | None) -> np.random.Generator:
    """The RNG of one expert episode: a pure function of the expert's and episode's seeds.

    Example:
        >>> a, b = episode_rng(0, 7), episode_rng(0, 7)
        >>> float(a.random()) == float(b.random())
        True
        >>> float(episode_rng(0, 7).random()) == float(episode_rng(0, 8).random())
        False
    """
    # Seed sequences take non-negative integers; modular wrapping keeps any int usable.
    return np.random.default_rng([int(seed) % 2**64, int(episode_seed or 0) % 2**64])


class ErrorInjectingExpert(ScriptedPolicy):
    """Base of every shipped expert: acts correctly, except for one injected error in a
    share ``error_rate`` of its episodes.

    ``reset`` does the same for every expert: it re-seeds :attr:`rng` from ``(seed,
    info["episode_seed"])``, calls :meth:`plan_episode` (prepare the correct behaviour for
    the new episode), then draws ``rng.random() < error_rate`` and, when it hits, calls
    :meth:`inject_error`, which changes the plan by one error of a kind in
    :attr:`error_kinds` (drawn with :attr:`rng`) and returns the kind, or ``None`` when
    no kind applies to this episode. :attr:`injected` records the outcome.

    Because the draw depends on the episode's seed and not on how many episodes the
    expert has played, a fresh expert per episode (what the rollout collector makes)
    injects errors at the configured rate, and replaying an episode replays its error.

    Args:
        error_rate: Probability that an episode gets one injected error.
        error_kinds: Kinds to draw from (default: all of the class's ``ERROR_KINDS``).
        seed: Seed of the expert's draws, combined with each episode's seed.

    Example:
        >>> class Echo(ErrorInjectingExpert):
        ...     ERROR_KINDS = ("shout",)
        ...     def plan_episode(self, env, observation, info):
        ...         self.reply = observation
        ...     def inject_error(self):
        ...         self.reply = self.reply.upper()
        ...         return "shout"
        ...     def act(self, observation, info):
        ...         return self.reply
        >>> expert = Echo(error_rate=0.5)
        >>> outcomes = []
        >>> for episode_seed in range(200):
        ...     expert.reset(None, "hi", {"episode_seed": episode_seed})
        ...     outcomes.append(expert.injected)
        >>> 70 < outcomes.count("shout") < 130
        True
        >>> Echo(error_rate=0.5, error_kinds=["whisper"])
        Traceback (most recent call last):
        ...
        ValueError: Unknown error kinds ['whisper']; valid: ['shout']
    """

    #: Every kind of error the expert can make (subclasses list theirs).
    ERROR_KINDS: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        error_rate: float = 0.0,
        error_kinds: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        kinds = self.ERROR_KINDS if error_kinds is None else error_kinds
        self.error_kinds = check_error_injection(error_rate, kinds, self.ERROR_KINDS)
        self.error_rate = float(error_rate)
        self.seed = int(seed)
        self.rng = episode_rng(self.seed, None)
        self.injected: str | None = None

    def reset(self, env: Any, observation: str, info: Mapping[str, Any]) -> None:
        """Re-seed from the episode, plan the episode, then draw (and inject) its error."""
        self.rng = episode_rng(self.seed, info.get("episode_seed"))
        self.injected = None
        self.plan_episode(env, observation, info)
        # The draw is made whenever kinds are configured, so the RNG stream after it (the
        # error's details) does not depend on the episode's plan.
        if self.error_kinds and self.rng.random() < self.error_rate:
            self.injected = self.inject_error()

    @abstractmethod
    def plan_episode(self, env: Any, observation: str, info: Mapping[str, Any]) -> None:
        """Prepare the correct behaviour for the episode that ``env`` just started."""

    @abstractmethod
    def inject_error(self) -> str | None:
        """Change the planned behaviour by one error drawn with :attr:`rng`.

        Returns the kind of error made, or ``None`` when none of :attr:`error_kinds`
        applies to this episode (the episode then stays correct).
        """
