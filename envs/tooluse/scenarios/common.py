"""Building blocks of the task generator: intents, the live scene, shared word pools.

An *intent* is one thing a user asks for ("move report.txt into archive"). Its builder
looks at the live backends of the task being generated, picks values that make the
request feasible, runs the ground-truth calls on the live backends through
:meth:`Scene.run` (so the next request sees the changed state, and every ground-truth call
is known to succeed) and returns an :class:`Intent`: the request text, the calls, the
assistant's reply, and, when the request can be made without one of its values (the
``miss_param`` category), the vague request, the assistant's question and the user's
follow-up that supplies the value.

A builder decides whether it is feasible *before* running any call and returns ``None``
when it is not, so the scene is never left half-changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentgym.core.parsing import ToolCall
from agentgym.envs.tooluse.backends import Backend, tool_index

__all__ = [
    "INTENTS",
    "Intent",
    "IntentSpec",
    "Scene",
    "choice",
    "intent",
    "sample",
]


@dataclass
class Intent:
    """One user request and its ground truth.

    Attributes:
        text: The request.
        calls: The ground-truth calls, in order.
        answer: The assistant's reply once the calls are done.
        vague: The request without one needed value (``None``: no miss_param variant).
        ask: The assistant's question for the missing value.
        supply: The user's follow-up that gives the value.
    """

    text: str
    calls: list[ToolCall] = field(default_factory=list)
    answer: str = "Done."
    vague: str | None = None
    ask: str | None = None
    supply: str | None = None


class GenerationError(RuntimeError):
    """A ground-truth call failed while generating a task (a bug in an intent builder)."""


class Scene:
    """The live backends of a task being generated; :meth:`run` executes ground truth."""

    def __init__(self, backends: Mapping[str, Backend]) -> None:
        self.backends = dict(backends)
        self._index = tool_index(list(self.backends))
        self.calls: list[ToolCall] = []

    def __getitem__(self, domain: str) -> Any:
        return self.backends[domain]

    def run(self, tool_name: str, /, **arguments: Any) -> Any:
        """Run one ground-truth call on the live backends and return its value."""
        domain, unbound = self._index[tool_name]
        result = unbound.__get__(self.backends[domain]).invoke(arguments)
        if not result.ok:
            raise GenerationError(
                f"ground-truth call {tool_name}({arguments}) failed: {result.content}"
            )
        self.calls.append(ToolCall(tool_name, dict(arguments)))
        return result.value

    def take_calls(self) -> list[ToolCall]:
        """The calls run since the last ``take_calls``."""
        calls, self.calls = self.calls, []
        return calls


Builder = Callable[[np.random.Generator, Scene], "Intent | None"]


@dataclass(frozen=True)
class IntentSpec:
    """A registered intent builder.

    Attributes:
        domain: The backend it uses.
        name: A short name (for debugging and tests).
        level: 1 (one call), 2 (two calls or a lookup) or 3 (a chain of dependencies).
        missing: Whether it can produce a miss_param variant.
        build: The builder.
    """

    domain: str
    name: str
    level: int
    missing: bool
    build: Builder


#: domain -> registered intents
INTENTS: dict[str, list[IntentSpec]] = {}


def intent(domain: str, *, level: int, missing: bool = False) -> Callable[[Builder], Builder]:
    """Register an intent builder for ``domain`` (a decorator).

    Registering a name again replaces the earlier builder in place: a module executed twice
    (imported under a second name, as pytest's doctest collection does) must not add its
    intents twice, which would change every generated task that draws from the domain.
    """

    def register(build: Builder) -> Builder:
        spec = IntentSpec(domain, build.__name__, level, missing, build)
        specs = INTENTS.setdefault(domain, [])
        for position, known in enumerate(specs):
            if known.name == spec.name:
                specs[position] = spec
                break
        else:
            specs.append(spec)
        return build

    return register


def choice(rng: np.random.Generator, options: Any) -> Any:
    """One element of a sequence, drawn with ``rng``."""
    options = list(options)
    return options[int(rng.integers(len(options)))]


def sample(rng: np.random.Generator, options: Any, k: int) -> list[Any]:
    """``k`` distinct elements of a sequence, in random order."""
    options = list(options)
    picks = rng.choice(len(options), size=min(k, len(options)), replace=False)
    return [options[int(i)] for i in picks]


def money(value: float) -> str:
    """``1234.5`` -> ``'$1,234.50'``."""
    return f"${value:,.2f}"


FIRST_NAMES = (
    "Ada", "Bruno", "Chloe", "Dmitri", "Elena", "Farah", "Gustavo", "Hana", "Ivan", "Jonas",
    "Keiko", "Liam", "Maya", "Nikhil", "Olga", "Pedro", "Quinn", "Rosa", "Samir", "Tara",
    "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Abbott", "Baptiste", "Castillo", "Dubois", "Eriksen", "Fischer", "Gallo", "Haddad",
    "Ibarra", "Jansen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov",
    "Quintero", "Rossi", "Sato", "Tanaka", "Umarov", "Varga", "Weber", "Yilmaz", "Zhou",
)  # fmt: skip
WORDS = (
    "alpha", "budget", "client", "deadline", "estimate", "forecast", "growth", "hiring",
    "invoice", "launch", "milestone", "network", "onboarding", "pipeline", "quarter",
    "review", "schedule", "target", "update", "vendor", "workshop", "backlog", "sprint",
    "release", "contract", "audit", "payroll", "shipment", "survey", "training",
)  # fmt: skip
MESSAGES = (
    "Can we move our call to {day}?",
    "The {word} numbers look good, thanks!",
    "Please send me the {word} file before {day}.",
    "Reminder: the {word} meeting is on {day}.",
    "I pushed the {word} changes, can you take a look?",
    "Lunch on {day}? I found a new place near the office.",
    "Did you get my note about the {word}?",
    "Happy to help with the {word} next week.",
    "The {word} review went well, nice work.",
    "Could you confirm the {word} details by {day}?",
)  # fmt: skip
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


def person(rng: np.random.Generator) -> str:
    """A random full name."""
    return f"{choice(rng, FIRST_NAMES)} {choice(rng, LAST_NAMES)}"


def sentence(rng: np.random.Generator) -> str:
    """A random short message text."""
    return choice(rng, MESSAGES).format(word=choice(rng, WORDS), day=choice(rng, DAYS))
