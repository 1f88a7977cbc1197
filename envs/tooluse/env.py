"""``agentgym/ToolUse-v0``: multi-turn, stateful tool use in the style of BFCL multi-turn."""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Sequence
from typing import Any

from agentgym.core.env import Evaluation
from agentgym.core.parsing import ToolCall, ToolCallParser
from agentgym.core.registry import check_choice
from agentgym.core.tool_env import ToolEnv, ToolEpisode, ToolTask
from agentgym.core.tools import State, Tool, ToolResult, ToolSet
from agentgym.envs.tooluse.augment import ActionableAugmentation
from agentgym.envs.tooluse.backends import BACKENDS, Backend, tool_index
from agentgym.envs.tooluse.expert import ToolUseExpert
from agentgym.envs.tooluse.judge import (
    MultiTurnChecker,
    TurnVerdict,
    build_backends,
    invoke_on,
    replay_calls,
)
from agentgym.envs.tooluse.rewards import REWARD_MODES, episode_reward, progress_reward
from agentgym.envs.tooluse.tasks import (
    CATEGORIES,
    DEFAULT_DOMAINS,
    DIFFICULTIES,
    SPLITS,
    make_task_set,
)

__all__ = ["SYSTEM_PROMPT", "ToolUseEnv"]

SYSTEM_PROMPT = (
    "You are an assistant that carries out the user's requests by calling tools. The tools "
    "act on the user's real files, accounts, messages, bookings and car: call them only as "
    "the request requires, with the exact values the user gave. If a request lacks a value "
    "you need, ask the user instead of guessing. If none of your tools can do what is "
    "asked, say so. When the request is done, reply to the user in plain text without a "
    "tool call."
)

_NOISE_COMPONENTS = ("cache", "sync", "auth", "scheduler", "indexer", "gateway", "metrics")
_NOISE_EVENTS = (
    "refresh completed in {n}ms",
    "heartbeat ok (node {n})",
    "retrying request {n} after timeout",
    "evicted {n} stale entries",
    "rotated log segment {n}",
    "connection pool size {n}",
    "background job {n} finished",
)


def _parser_key(parser: ToolCallParser) -> tuple[Any, ...]:
    try:
        settings = tuple(sorted(vars(parser).items()))
        hash(settings)
    except TypeError:
        return (id(parser),)
    return (type(parser), settings)


_PROMPTS: dict[tuple[Any, ...], tuple[str, list[dict[str, Any]]]] = {}
_INTERNED: dict[str, str] = {}


def _shared_tools(domains: tuple[str, ...]) -> tuple[dict[str, tuple[str, Tool]], ToolSet]:
    """The tool table and tool set of some domains, shared by every environment copy."""
    return _tools_of(tuple((domain, BACKENDS[domain]) for domain in domains))


@functools.lru_cache(maxsize=64)
def _tools_of(
    classes: tuple[tuple[str, type[Backend]], ...],
) -> tuple[dict[str, tuple[str, Tool]], ToolSet]:
    table = tool_index([domain for domain, _ in classes], dict(classes))
    return table, ToolSet(item for _, item in table.values())


def _prompt_and_schemas(
    parser: ToolCallParser, parser_key: tuple[Any, ...], system_prompt: str, tools: tuple[Tool, ...]
) -> tuple[str, list[dict[str, Any]]]:
    """System prompt and schemas for a tool subset, shared by every environment copy."""
    key = (parser_key, system_prompt, tools)
    cached = _PROMPTS.get(key)
    if cached is None:
        if len(_PROMPTS) >= 1024:
            _PROMPTS.clear()
        schemas = [item.schema for item in tools]
        prompt = f"{system_prompt}\n\n{parser.instructions(schemas)}".strip()
        cached = _PROMPTS[key] = (prompt, schemas)
    return cached


class ToolUseEnv(ToolEnv):
    """Multi-turn, stateful tool use over five simulated backends, checked as in BFCL.

    ## Description
    Each task is an initial state of one to three backends (a file system, a trading
    account, a messaging service, a travel agency, a car) and several user turns. Within a
    turn the agent calls tools until it replies without a call. Categories as in BFCL
    multi-turn: ``base``; ``miss_param`` (a turn lacks a value: the agent should ask, and
    the next turn gives it); ``miss_func`` (a needed tool is withheld until a later turn
    reveals it: the agent should say it is missing); ``long_context`` (large states and
    long, noisy tool outputs). Tasks come from a seeded generator: 100,000 train tasks and
    2,000 disjoint test tasks per configuration.

    ## Action Space
    Text in the parser's format (default ``hermes``: ``<tool_call>{json}</tool_call>``;
    ``think_answer`` is Environment Tuning's format), or a plain reply that ends the turn.

    ## Observation Space
    Text: the user's turn (with the schema of a newly revealed tool), tool results, or an
    error (malformed call, unknown or unavailable tool, bad arguments, a failed
    precondition). Errors never change the state. With ``augment=True`` tool errors carry
    a corrective hint.

    ## Rewards
    At the end of the episode, by ``reward_mode``: ``binary`` (1.0 when every turn passes
    the state and response checks), ``progress`` (the fraction of turns that pass) or
    ``format`` (``I_tool*(R_format + R_tool)``, in [0, 2]). ``info["progress"]`` is the
    fraction of turns passed so far; ``info["success"]`` is whether all passed.

    ## Episode End
    After the reply to the last user turn; truncated at ``max_episode_steps`` (60). A turn
    with ``max_steps_per_turn`` actions and no reply is ended for the agent.

    ## Arguments
    * ``split``: ``"train"`` (100,000 tasks) or ``"test"`` (2,000 disjoint tasks).
    * ``difficulty``: ``"easy"`` (1 domain, 2 turns), ``"medium"`` (1-2 domains, 3 turns),
      ``"hard"`` (2-3 domains, 4 turns, up to 2 requests per turn) or ``"mixed"``.
    * ``categories``: subset of ``base``, ``miss_param``, ``miss_func``, ``long_context``
      (default: all, interleaved).
    * ``domains``: subset of ``filesystem``, ``trading``, ``messaging``, ``travel``,
      ``vehicle`` (default: all).
    * ``reward_mode``: ``"binary"``, ``"progress"`` or ``"format"``.
    * ``augment``: rewrite vague tool errors into corrective hints.
    * ``parser``: tool-call format; ``num_tasks``: use only the first tasks of the split.
    * ``tasks``: your own :class:`~agentgym.ToolTask` list (``initial_state`` maps each
      domain to its configuration) instead of generated tasks.
    * plus ``max_steps_per_turn`` and :class:`~agentgym.core.env.TextEnv`'s text limits.

    ## Version History
    * v0: initial version.
    """

    def __init__(
        self,
        *,
        split: str = "train",
        difficulty: str = "easy",
        categories: Sequence[str] | None = None,
        domains: Sequence[str] | None = None,
        reward_mode: str = "binary",
        augment: bool = False,
        parser: str | ToolCallParser = "hermes",
        num_tasks: int | None = None,
        tasks: Sequence[ToolTask] | None = None,
        max_steps_per_turn: int = 10,
        max_observation_length: int = 16_384,
        max_action_length: int = 8_192,
        render_mode: str | None = None,
    ) -> None:
        check_choice("split", split, list(SPLITS))
        check_choice("difficulty", difficulty, [*DIFFICULTIES, "mixed"])
        check_choice("reward_mode", reward_mode, list(REWARD_MODES))
        categories = tuple(CATEGORIES if categories is None else _as_tuple(categories))
        domains = tuple(DEFAULT_DOMAINS if domains is None else _as_tuple(domains))
        if not categories or not domains:
            raise ValueError("categories and domains must not be empty")
        for category in categories:
            check_choice("category", category, list(CATEGORIES))
        for domain in domains:
            check_choice("domain", domain, list(BACKENDS))
        if len(set(categories)) != len(categories) or len(set(domains)) != len(domains):
            raise ValueError("categories and domains must not repeat entries")
        size = SPLITS[split][1] if tasks is None else len(tasks)
        if num_tasks is not None and not 1 <= num_tasks <= size:
            raise ValueError(f"num_tasks must be in [1, {size}] for split={split!r}")
        if tasks is not None:
            tasks = _check_custom_tasks(tasks, domains)[:num_tasks]
        self.split = split
        self.difficulty = difficulty
        self.categories = categories
        self.domains = domains
        self.reward_mode = reward_mode
        self.augment = bool(augment)
        self.augmentation = ActionableAugmentation()
        self._tool_table, toolset = _shared_tools(domains)
        super().__init__(
            tools=toolset,
            tasks=(
                make_task_set(split, difficulty, categories, domains, num_tasks)
                if tasks is None
                else tasks
            ),
            checker=self._check_episode,
            turn_checker=self._check_turn,
            system_prompt=SYSTEM_PROMPT,
            parser=parser,
            max_steps_per_turn=max_steps_per_turn,
            max_observation_length=max_observation_length,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        self._parser_key = _parser_key(self.parser)
        # Every copy builds the same all-tools prompt: keep one shared string of it.
        self._full_system_prompt = _INTERNED.setdefault(
            self._full_system_prompt, self._full_system_prompt
        )
        self.backends: dict[str, Backend] = {}
        self.checker_state: MultiTurnChecker | None = None
        self._available: frozenset[str] = frozenset()
        self._withheld: str | None = None
        self._reveal_turn: int | None = None
        self._long_context = False

    # ---------------------------------------------------------------- episode hooks --

    def new_state(self, task: ToolTask) -> State:
        metadata = task.metadata
        self._long_context = metadata.get("category") == "long_context"
        self.backends = build_backends(task, long_context=self._long_context)
        self.checker_state = MultiTurnChecker(
            task, build_backends(task, long_context=self._long_context)
        )
        self._withheld = metadata.get("withheld_tool")
        self._reveal_turn = metadata.get("reveal_turn")
        names = [n for n, (domain, _) in self._tool_table.items() if domain in self.backends]
        self._available = frozenset(n for n in names if n != self._withheld)
        # The state the checker and users see: the backend objects, by domain.
        return State(self.backends)

    def begin_turn(self, turn: int) -> tuple[str, dict[str, Any]]:
        assert self.episode is not None
        message = self.episode.task.turns[turn]
        if turn == 0:
            prompt, schemas = self._prompt_and_schemas()
            return message, {"system_prompt": prompt, "tools": schemas}
        if turn == self._reveal_turn and self._withheld is not None:
            self._available = self._available | {self._withheld}
            schema = self._tool_table[self._withheld][1].schema
            note = (
                f"[A new tool is available: {self._withheld}]\n"
                f"{json.dumps(schema, ensure_ascii=False)}"
            )
            return f"{message}\n\n{note}", {"tools": self._prompt_and_schemas()[1]}
        return message, {}

    def call_tool(self, call: ToolCall) -> ToolResult:
        entry = self._tool_table.get(call.name)
        if entry is None or call.name not in self._available:
            if call.name == self._withheld:
                return self._failure(
                    f"Error: '{call.name}' is not available. A function you need may be "
                    "missing; ask the user for it or wait until it is provided.",
                    "*",
                    call.name,
                    "missing_function",
                )
            return self._failure(self._unknown_tool_text(call.name), "*", call.name, "unknown_tool")
        domain, unbound = entry
        backend = self.backends[domain]
        result = invoke_on(unbound, backend, call)
        if not result.ok:
            kind = backend.last_error if result.error_kind == "tool_error" else result.error_kind
            return self._failure(result.content, domain, call.name, kind, result.error_kind)
        if self._long_context:
            result = ToolResult(True, result.content + self._noise(), result.value)
        return result

    # ---------------------------------------------------------------- checking --

    def _check_turn(self, episode: ToolEpisode, turn: int) -> bool:
        assert self.checker_state is not None
        return self.checker_state.check_turn(turn, self.backends, episode.calls).passed

    def _check_episode(self, episode: ToolEpisode) -> Evaluation:
        assert self.checker_state is not None
        verdicts = self.checker_state.verdicts
        passed = [v.passed for v in verdicts]
        num_turns = len(episode.task.turns)
        success = len(passed) == num_turns and all(passed)
        failures = [v.message for v in verdicts if not v.passed]
        return Evaluation(
            success=success,
            reward=episode_reward(self.reward_mode, episode, passed, num_turns),
            verdicts={
                **{f"turn_{v.turn}": v.passed for v in verdicts},
                "state_ok": all(v.state_ok for v in verdicts),
                "response_ok": all(v.response_ok for v in verdicts),
                "format_errors": episode.format_errors,
                "tool_errors": sum(not r.result.ok for r in episode.calls),
            },
            feedback="Every turn passed." if success else "; ".join(failures) + ".",
            progress=progress_reward(passed, num_turns),
        )

    def evaluate(self) -> Evaluation:
        """Score the episode as it stands; an unfinished one earns partial credit in the
        ``progress`` and ``format`` modes but never succeeds."""
        evaluation = super().evaluate()
        if self.episode is not None and not self.episode.finished and self.checker_state:
            passed = [v.passed for v in self.checker_state.verdicts]
            num_turns = len(self.episode.task.turns)
            if self.reward_mode != "binary":
                evaluation.reward = episode_reward(
                    self.reward_mode, self.episode, passed, num_turns
                )
        return evaluation

    def simulate(
        self, turns: Sequence[Sequence[ToolCall]], task: ToolTask | None = None
    ) -> list[TurnVerdict]:
        """Check call lists (one per turn) on ``task`` (default: the current one) without
        touching the episode; returns the turn verdicts."""
        return replay_calls(task if task is not None else self.task, turns)

    def make_expert(self, **kwargs: Any) -> ToolUseExpert:
        """The ground-truth expert with verified error injection (see :class:`ToolUseExpert`)."""
        return ToolUseExpert(**kwargs)

    # ---------------------------------------------------------------- internals --

    def _prompt_and_schemas(self) -> tuple[str, list[dict[str, Any]]]:
        tools = tuple(item for n, (_, item) in self._tool_table.items() if n in self._available)
        return _prompt_and_schemas(self.parser, self._parser_key, self.system_prompt, tools)

    def _failure(
        self,
        content: str,
        domain: str,
        tool_name: str,
        kind: str | None,
        error_kind: str | None = None,
    ) -> ToolResult:
        if self.augment:
            content = self.augmentation.rewrite(content, domain, tool_name, kind)
        return ToolResult(False, content, None, error_kind or kind)

    def _unknown_tool_text(self, name: str) -> str:
        available = [n for n in self._tool_table if n in self._available]
        close = difflib.get_close_matches(name, available, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return f"Error: unknown tool '{name}'.{hint} Available tools: {', '.join(available)}"

    def _noise(self) -> str:
        """Noisy log lines appended to tool outputs in long-context tasks (episode RNG)."""
        rng = self.episode_rng
        count = int(rng.integers(15, 30))
        parts = rng.integers(0, 10_000, size=(count, 4)).tolist()
        lines = [
            f"{1_700_000_000 + a * 37} [{('INFO', 'DEBUG', 'WARN')[b % 3]}] "
            f"{_NOISE_COMPONENTS[c % len(_NOISE_COMPONENTS)]}: "
            + _NOISE_EVENTS[d % len(_NOISE_EVENTS)].format(n=a % 997)
            for a, b, c, d in parts
        ]
        return "\n--- system log (unrelated to your request) ---\n" + "\n".join(lines)


def _check_custom_tasks(tasks: Sequence[ToolTask], domains: Sequence[str]) -> list[ToolTask]:
    """Validate hand-written tasks: ground truth present, domains known and allowed."""
    checked = []
    for task in tasks:
        if not isinstance(task, ToolTask) or task.ground_truth is None:
            raise ValueError(f"Custom tasks must be ToolTasks with ground_truth, got {task!r}")
        unknown = [d for d in task.initial_state if d not in domains]
        if unknown:
            raise ValueError(
                f"Task {task.id!r} uses domains {unknown} that are not in domains={list(domains)}"
            )
        checked.append(task)
    return checked


def _as_tuple(value: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(part) for part in value)
