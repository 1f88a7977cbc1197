"""Test doubles and fixtures shared by the critique tests."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from agentgym.engines.base import Completion, Engine, SamplingParams

CODE = "agentgym/CodeExec-v0"
# Answers to CodeExec's task gen-easy-0 (sum of the multiples of 4).
WRONG = "```python\ndef sum_of_multiples(nums):\n    return 12345\n```"
RIGHT = "```python\ndef sum_of_multiples(nums):\n    return sum(n for n in nums if n % 4 == 0)\n```"
# The same program, written differently: it must vote with RIGHT.
RIGHT_AGAIN = (
    "Sure:\n```python\ndef sum_of_multiples(nums):\n    # multiples of four\n"
    "    return sum((n for n in nums if n % 4 == 0))\n```"
)


class ScriptedActor(Engine):
    """A test double for the actor: the k-th sample at a state is ``script[k]``; a request to
    refine after a critique gets ``refinement``."""

    name = "scripted"

    def __init__(self, script: Sequence[str], refinement: str = RIGHT) -> None:
        self.script = list(script)
        self.refinement = refinement
        self.seen: Counter[str] = Counter()
        self.calls = 0
        self.conversations: list[list[dict[str, Any]]] = []

    @property
    def tokenizer(self) -> Any:
        raise NotImplementedError("the scripted actor answers chats only")

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> Any:
        raise NotImplementedError("the scripted actor answers chats only")

    def chat(
        self,
        conversations: Sequence[Sequence[Mapping[str, Any]]],
        params: SamplingParams,
        *,
        tools: Any = None,
    ) -> list[list[Completion]]:
        self.calls += 1
        assert params.prompt_seeds is not None and len(params.prompt_seeds) == len(conversations)
        replies = []
        for conversation in conversations:
            self.conversations.append([dict(message) for message in conversation])
            if conversation[-1]["content"].startswith("A reviewer checked your answer"):
                text = self.refinement
            else:
                key = json.dumps(conversation)
                text = self.script[min(self.seen[key], len(self.script) - 1)]
                self.seen[key] += 1
            replies.append([Completion(text, [])])
        return replies
