"""Critique-in-the-loop: an actor proposes, a critic judges step by step, the actor refines.

* :func:`critique_game`: the PettingZoo AEC game of ``actor`` and ``critic`` over any
  registered environment (:mod:`agentgym.critique.game`);
* critics: the environment's oracle, a model on any engine, an OpenAI-compatible server,
  or your own :class:`Critic` subclass (:mod:`agentgym.critique.critics`);
* the critique format, prompts and parser shared by all of them
  (:mod:`agentgym.critique.protocol`);
* test-time refinement and critic-filtered majority voting (:mod:`agentgym.critique.vote`);
* the ``critique`` trainer: ``agentgym train trainer=critique`` (``trainers/critique.py``).

See ``docs/critique.md``.
"""

from agentgym.critique.critics import (
    CRITICS,
    Critic,
    ModelCritic,
    OpenAICritic,
    OracleCritic,
    make_critic,
    openai_critic,
)
from agentgym.critique.game import CritiqueGame, critique_game
from agentgym.critique.oracle import Judgement, Trial, TrialRunner, judge, register_judge
from agentgym.critique.protocol import (
    Critique,
    CritiqueRequest,
    StepCritique,
    format_critique,
    parse_critique,
)

__all__ = [
    "CRITICS",
    "Critic",
    "Critique",
    "CritiqueGame",
    "CritiqueRequest",
    "Judgement",
    "ModelCritic",
    "OpenAICritic",
    "OracleCritic",
    "StepCritique",
    "Trial",
    "TrialRunner",
    "critique_game",
    "format_critique",
    "judge",
    "make_critic",
    "openai_critic",
    "parse_critique",
    "register_judge",
]
