"""The seeded task generator of ``agentgym/ToolUse-v0``.

Task ``i`` of a configuration is a pure function of the configuration and ``i``: it draws
its domains and initial configurations, then builds user turns from the domains' intents
while running their ground-truth calls on live backends (so the ground truth is known to
execute and later turns see the state earlier turns left). Categories as in BFCL:

* ``base``: every turn states everything needed.
* ``miss_param``: one turn leaves out a value. Its ground truth is empty and the expected
  reply is a question; the next user turn supplies the value and carries the calls.
* ``miss_func``: a tool needed in one turn is withheld. That turn's ground truth is
  empty (the agent should say a capability is missing); the next turn reveals the tool
  and carries the calls. ``metadata["withheld_tool"]`` and ``metadata["reveal_turn"]``
  tell the environment what to hide and when to reveal it.
* ``long_context``: the initial states hold hundreds of extra entries (files, orders,
  messages, bookings) and the environment pads tool outputs with noisy log lines.

Difficulty sets the number of base turns, domains per task, intents per turn and how
many dependent calls an intent chains (see :data:`DIFFICULTIES`). The train and test
splits use disjoint index ranges, and a hash of the task text assigns every possible text
to one split only (:func:`split_of_text`), so no test task repeats a train task's text.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agentgym.core.parsing import ToolCall
from agentgym.core.tasks import GeneratedTaskSet
from agentgym.core.tool_env import ToolTask
from agentgym.envs.tooluse.backends import BACKENDS, tool_index
from agentgym.envs.tooluse.scenarios import CONFIG_BUILDERS, INTENTS, Intent, Scene
from agentgym.envs.tooluse.scenarios.common import GenerationError

__all__ = [
    "CATEGORIES",
    "DEFAULT_DOMAINS",
    "DIFFICULTIES",
    "SPLITS",
    "Difficulty",
    "generate_task",
    "make_task_set",
    "split_of_text",
]

CATEGORIES = ("base", "miss_param", "miss_func", "long_context")
#: The built-in domains (registered custom domains are used only when asked for).
DEFAULT_DOMAINS = ("filesystem", "trading", "messaging", "travel", "vehicle")


@dataclass(frozen=True)
class Difficulty:
    """How hard the tasks of a difficulty level are.

    Attributes:
        turns: User turns before a miss_param / miss_func turn is added.
        domains: Smallest and largest number of domains a task involves.
        max_intents: Most requests in one user turn.
        levels: Intent levels allowed (1: one call, 2: two calls or a lookup, 3: a chain).
    """

    turns: int
    domains: tuple[int, int]
    max_intents: int
    levels: tuple[int, ...]


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(turns=2, domains=(1, 1), max_intents=1, levels=(1, 2)),
    "medium": Difficulty(turns=3, domains=(1, 2), max_intents=1, levels=(1, 2, 3)),
    "hard": Difficulty(turns=4, domains=(2, 3), max_intents=2, levels=(2, 3)),
}
#: split -> (first index, number of tasks); the index ranges are disjoint.
SPLITS: dict[str, tuple[int, int]] = {"train": (0, 100_000), "test": (1_000_000, 2_000)}

_REVEAL_TEXTS = (
    "I have now given you access to the tool you were missing. Please go ahead with my "
    "previous request.",
    "You should have the function you needed now. Please complete what I asked before.",
    "I added the missing capability to your tools. Carry on with my last request.",
)


def _pick_intent(
    rng: np.random.Generator,
    scene: Scene,
    domain: str,
    levels: Sequence[int],
    need_missing: bool,
    used: set[str],
) -> Intent:
    """A feasible intent of ``domain``, preferring allowed levels and intents not yet used."""
    specs = [s for s in INTENTS[domain] if not need_missing or s.missing]
    fresh = [s for s in specs if s.name not in used]
    pools = (
        [s for s in fresh if s.level in levels],
        fresh,
        [s for s in specs if s.level in levels],
        specs,
    )
    tried: set[str] = set()
    for pool in pools:
        for position in rng.permutation(len(pool)):
            spec = pool[int(position)]
            if spec.name in tried:
                continue
            tried.add(spec.name)
            built = spec.build(rng, scene)
            if built is None:
                continue
            if need_missing and built.vague is None:
                raise GenerationError(f"intent {spec.name!r} gave no miss_param variant")
            built.calls = scene.take_calls()
            used.add(spec.name)
            return built
    raise GenerationError(f"no feasible intent for domain {domain!r}")


def generate_task(
    task_id: str,
    rng: np.random.Generator,
    *,
    category: str,
    difficulty: str,
    domains: Sequence[str],
) -> ToolTask:
    """Build one task from ``rng`` (see the module docstring for the rules)."""
    level = DIFFICULTIES[difficulty]
    low, high = level.domains
    count = min(int(rng.integers(low, high + 1)), len(domains))
    chosen = [domains[int(i)] for i in rng.choice(len(domains), size=count, replace=False)]
    long_context = category == "long_context"
    configs = {domain: CONFIG_BUILDERS[domain](rng, long_context) for domain in chosen}
    scene = Scene({domain: BACKENDS[domain](configs[domain]) for domain in chosen})
    missing_turn = int(rng.integers(level.turns)) if category == "miss_param" else None

    turns: list[str] = []
    truth: list[tuple[ToolCall, ...]] = []
    answers: list[str] = []
    missing_param_turn: int | None = None
    used: set[str] = set()
    for position in range(level.turns):
        domain = chosen[position % count]
        if position == missing_turn:
            built = _pick_intent(rng, scene, domain, level.levels, True, used)
            assert built.vague and built.ask and built.supply
            missing_param_turn = len(turns)
            turns += [built.vague, built.supply]
            truth += [(), tuple(built.calls)]
            answers += [built.ask, built.answer]
            continue
        parts = [_pick_intent(rng, scene, domain, level.levels, False, used)]
        if level.max_intents > 1 and rng.random() < 0.5:
            other = chosen[int(rng.integers(count))]
            parts.append(_pick_intent(rng, scene, other, level.levels, False, used))
        turns.append(" Also: ".join(part.text for part in parts))
        truth.append(tuple(call for part in parts for call in part.calls))
        answers.append(" ".join(part.answer for part in parts))

    withheld: str | None = None
    reveal_turn: int | None = None
    if category == "miss_func":
        options = []
        for position, calls in enumerate(truth):
            earlier = {call.name for previous in truth[:position] for call in previous}
            options += [
                (position, n) for n in dict.fromkeys(c.name for c in calls) if n not in earlier
            ]
        position, withheld = options[int(rng.integers(len(options)))]
        reveal_turn = position + 1
        turns.insert(reveal_turn, _REVEAL_TEXTS[int(rng.integers(len(_REVEAL_TEXTS)))])
        truth.insert(reveal_turn, truth[position])
        answers.insert(reveal_turn, answers[position])
        truth[position] = ()
        answers[position] = (
            "I can't do that yet: none of my available tools can do this. Could you provide "
            "a function for it?"
        )

    return ToolTask(
        id=task_id,
        turns=tuple(turns),
        initial_state=configs,
        ground_truth=tuple(truth),
        answers=tuple(answers),
        metadata={
            "category": category,
            "difficulty": difficulty,
            "domains": tuple(chosen),
            "withheld_tool": withheld,
            "reveal_turn": reveal_turn,
            "missing_param_turn": missing_param_turn,
        },
    )


def task_id_prefix(difficulty: str, categories: Sequence[str], domains: Sequence[str]) -> str:
    """Ids name the configuration, e.g. ``tooluse-easy-`` or ``tooluse-hard-base-travel-``."""
    parts = ["tooluse", difficulty]
    if tuple(categories) != CATEGORIES:
        parts.append("+".join(categories))
    if tuple(domains) != DEFAULT_DOMAINS:
        parts.append("+".join(domains))
    return "-".join(parts) + "-"


def split_of_text(turns: Sequence[str]) -> str:
    """The split a task's text belongs to: a stable hash sends a quarter of all possible
    texts to ``test``. Each split keeps drawing until its task's text is its own, so no
    test task has the text of any train task (short tasks repeat texts otherwise)."""
    return "test" if zlib.crc32("\n".join(turns).encode()) % 4 == 0 else "train"


@functools.lru_cache(maxsize=64)
def make_task_set(
    split: str,
    difficulty: str,
    categories: tuple[str, ...],
    domains: tuple[str, ...],
    num_tasks: int | None = None,
) -> GeneratedTaskSet[ToolTask]:
    """The (shared, cached) task set of one configuration.

    Task ``i`` (absolute index ``offset + i``) has category ``categories[i % k]`` and, for
    ``difficulty="mixed"``, difficulty easy/medium/hard in turn every ``k`` tasks, so every
    slice of consecutive tasks is balanced.
    """
    offset, size = SPLITS[split]
    if num_tasks is not None:
        size = num_tasks
    tool_index(list(domains))  # fail early on clashing tool names
    prefix = task_id_prefix(difficulty, categories, domains)
    levels = list(DIFFICULTIES)

    def generate(index: int, rng: np.random.Generator) -> ToolTask:
        category = categories[index % len(categories)]
        level = difficulty
        if difficulty == "mixed":
            level = levels[(index // len(categories)) % len(levels)]
        for _ in range(200):
            task = generate_task(
                f"{prefix}{index}", rng, category=category, difficulty=level, domains=domains
            )
            if split_of_text(task.turns) == split:
                return task
        raise GenerationError(f"no {split} task found for index {index}")  # pragma: no cover

    return GeneratedTaskSet(
        size,
        generate,
        id_prefix=prefix,
        base_seed=zlib.crc32(prefix.encode()),
        offset=offset,
        cache_size=256,
    )
