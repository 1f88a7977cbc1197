"""A test environment whose reward varies even for a tiny random policy (``test/Graded-v0``).

Policy-gradient tests need groups whose rewards differ; the shipped environments pay a
random model nothing. Here each task names a set of characters, and each of the two turns
scores the fraction of the action's characters that belong to it; ``progress`` after a turn
is the mean score so far over both turns, and the final reward (paid at the last step) is
the mean of the two scores. The expert answers with the task's characters (reward 1).

``reward_mode`` and ``augment`` mirror ToolUse-v0's arguments so that curriculum trainers
can be tested: ``binary`` pays 1 only for a perfect episode, ``progress`` (default) the mean
score, ``format`` twice the mean score; ``augment`` adds a hint to the feedback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentgym.core.env import Evaluation, TextEnv, Transition
from agentgym.core.policy import ErrorInjectingExpert
from agentgym.core.registry import register_env
from agentgym.core.tasks import TaskSet

ENV_ID = "test/Graded-v0"
TURNS = 2
ALPHABETS = ("aeiou", "0123456789", "xyz", "lmnop")


def _score(action: str, alphabet: str) -> float:
    text = action.strip()
    return sum(c in alphabet for c in text) / len(text) if text else 0.0


class GradedEnv(TextEnv):
    """Two turns; each turn pays the share of the action's characters in the task's set."""

    def __init__(
        self,
        *,
        split: str = "train",
        num_tasks: int = 32,
        reward_mode: str = "progress",
        augment: bool = False,
        categories: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if reward_mode not in ("binary", "progress", "format"):
            raise ValueError(f"reward_mode must be binary, progress or format; got {reward_mode!r}")
        self.reward_mode, self.augment = reward_mode, augment
        self.categories = list(categories or ["base"])
        offset = 0 if split == "train" else 1000
        tasks = [(f"{split}-{i}", ALPHABETS[(i + offset) % len(ALPHABETS)])
                 for i in range(num_tasks)]  # fmt: skip
        self.tasks = TaskSet.from_list(tasks, id_of=lambda task: task[0])
        self._scores: list[float] = []

    def _start(self, task: Any) -> tuple[str, dict[str, Any]]:
        self._scores = []
        prompt = f"Write only characters from '{task[1]}'."
        return prompt, {"system_prompt": "Answer briefly.", "tools": []}

    def _act(self, action: str) -> Transition:
        self._scores.append(_score(action, self.task[1]))
        progress = sum(self._scores) / TURNS
        if len(self._scores) < TURNS:
            hint = f" Hint: use only {self.task[1]!r}." if self.augment else ""
            return Transition(f"Again.{hint}", progress=progress,
                              feedback=f"score {self._scores[-1]:.2f}{hint}")  # fmt: skip
        evaluation = self.evaluate()
        return Transition(
            "Done.", reward=evaluation.reward, terminated=True, progress=progress,
            evaluation=evaluation,
        )  # fmt: skip

    def evaluate(self) -> Evaluation:
        mean = sum(self._scores) / TURNS
        reward = {"binary": float(mean >= 0.99), "progress": mean, "format": 2 * mean}
        return Evaluation(success=mean >= 0.99, reward=reward[self.reward_mode], progress=mean)

    def make_expert(self, **kwargs: Any) -> ErrorInjectingExpert:
        return _Expert(**kwargs)


class _Expert(ErrorInjectingExpert):
    """Answers with the task's characters; an injected error answers one turn wrongly."""

    ERROR_KINDS = ("wrong_characters",)

    def plan_episode(self, env: Any, observation: str, info: Mapping[str, Any]) -> None:
        alphabet = env.unwrapped.task[1]
        self.replies = [alphabet] * TURNS

    def inject_error(self) -> str | None:
        self.replies[int(self.rng.integers(TURNS))] = "#"
        return "wrong_characters"

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        return self.replies.pop(0) if self.replies else "#"


register_env(ENV_ID, f"{__name__}:GradedEnv", description="test env with graded rewards",
             max_episode_steps=TURNS, kwargs={})  # fmt: skip
