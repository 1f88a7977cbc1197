"""Voting among proposals: plain majority, and majority among those the critic approves.

Test-time critique (Xi et al., arXiv 2411.16579) samples N proposals, lets the critic judge
each, and takes the majority among the proposals judged correct, falling back to the plain
majority when the critic approves none. Proposals vote by their *answer*, not their
wording: :func:`answer_key` maps a proposal to what the environment will act on (the code's
syntax tree for CodeExec, the parsed plan for TravelPlanner, the parsed tool calls for
ToolUse, the parsed action for WebShop, the whitespace-normalised text otherwise).
Environments register their own with :func:`register_answer_key`.

Ties go to the answer proposed first, so a vote is a pure function of its inputs.

Example:
    >>> majority_vote(["a", "b", "b", "a", "c"])
    0
    >>> vote = critic_vote(["x = 1", "x = 2", "x = 2"], [True, False, False])
    >>> vote.index, vote.filtered
    (0, True)
    >>> critic_vote(["x = 1", "x = 2", "x = 2"], [False, None, False]).index
    1
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AnswerKey",
    "Vote",
    "answer_key",
    "critic_vote",
    "majority_vote",
    "register_answer_key",
]

#: ``key(text, env) -> str``: what a proposal votes for (``env`` may be ``None``).
AnswerKey = Callable[[str, Any], str]
_KEYS: dict[str, AnswerKey] = {}


def _normalised(text: str) -> str:
    return " ".join(text.split())


def register_answer_key(env_id: str, key: AnswerKey) -> None:
    """Use ``key`` to group ``env_id``'s proposals into answers."""
    _KEYS[env_id] = key


def answer_key(env_id: str, text: str, env: Any = None) -> str:
    """What ``text`` votes for in ``env_id`` (see the module docstring).

    >>> a = "```python\\ndef f(x):\\n    return x  # same\\n```"
    >>> b = "Here:\\n```python\\ndef f(x):\\n    return (x)\\n```"
    >>> answer_key("agentgym/CodeExec-v0", a) == answer_key("agentgym/CodeExec-v0", b)
    True
    """
    if not isinstance(text, str):
        return repr(text)
    try:
        return _KEYS.get(env_id, lambda t, e: _normalised(t))(text, env)
    except Exception:  # a key must never stop a vote: fall back to the text itself
        return _normalised(text)


def _code_key(text: str, env: Any) -> str:
    from agentgym.envs.codeexec.feedback import extract_code

    # Any name: with no block defining it, the last Python block is taken.
    code = extract_code(text, "\x00") or text
    try:
        return ast.dump(ast.parse(code))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return _normalised(code)


def _plan_key(text: str, env: Any) -> str:
    from agentgym.envs.travelplanner.plans import parse_plan

    plan, _ = parse_plan(text)
    return _normalised(text) if plan is None else json.dumps(plan, sort_keys=True, default=str)


def _tool_key(text: str, env: Any) -> str:
    parser = getattr(getattr(env, "unwrapped", None), "parser", None)
    if parser is None:
        from agentgym.core.parsing import get_parser

        parser = get_parser("hermes")
    parsed = parser.parse(text)
    if parsed.error is not None:
        return "error:" + _normalised(text)
    if parsed.tool_calls:
        calls = [[call.name, call.arguments] for call in parsed.tool_calls]
        return "calls:" + json.dumps(calls, sort_keys=True, default=str)
    return "reply:" + _normalised(parsed.answer if parsed.answer is not None else parsed.content)


def _shop_key(text: str, env: Any) -> str:
    from agentgym.envs.webshop.env import parse_action

    parsed = parse_action(text)
    return _normalised(text) if parsed is None else f"{parsed[0]}[{parsed[1]}]"


register_answer_key("agentgym/CodeExec-v0", _code_key)
register_answer_key("agentgym/TravelPlanner-v0", _plan_key)
register_answer_key("agentgym/ToolUse-v0", _tool_key)
register_answer_key("agentgym/WebShop-v0", _shop_key)


def majority_vote(keys: Sequence[str]) -> int:
    """The index of the first proposal of the most frequent answer (``keys``: answer keys)."""
    if not keys:
        raise ValueError("majority_vote needs at least one proposal")
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for index, key in enumerate(keys):
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, index)
    best = max(counts, key=lambda key: (counts[key], -first[key]))
    return first[best]


@dataclass(frozen=True)
class Vote:
    """The outcome of a critic-filtered vote.

    Attributes:
        index: The chosen proposal.
        filtered: Whether the critic approved at least one proposal (else plain voting).
        approved: How many proposals the critic approved.
    """

    index: int
    filtered: bool
    approved: int


def critic_vote(keys: Sequence[str], verdicts: Sequence[bool | None]) -> Vote:
    """Majority among the proposals judged correct; plain majority when none is.

    Args:
        keys: Each proposal's answer key.
        verdicts: The critic's verdict on each (``None``: no readable verdict, not approved).
    """
    if len(keys) != len(verdicts):
        raise ValueError(f"{len(keys)} proposals but {len(verdicts)} verdicts")
    approved = [index for index, verdict in enumerate(verdicts) if verdict is True]
    if not approved:
        return Vote(majority_vote(keys), False, 0)
    chosen = majority_vote([keys[index] for index in approved])
    return Vote(approved[chosen], True, len(approved))
