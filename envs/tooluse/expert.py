"""The scripted oracle of ``agentgym/ToolUse-v0``, with verified error injection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentgym.core.parsing import ToolCall
from agentgym.core.tool_env import ToolEnvExpert, ToolTask
from agentgym.envs.tooluse.judge import replay_calls

__all__ = ["ToolUseExpert"]


class ToolUseExpert(ToolEnvExpert):
    """The scripted oracle of ``ToolUse-v0``: follows the ground truth, asks for a missing
    value in a miss_param turn and reports a missing function in a miss_func turn (both are
    the task's expected replies), with optional error injection.

    Injected errors (``wrong_argument``, ``skip_call``, ``wrong_order``) are *verified*:
    the perturbed calls are replayed and checked, and a perturbation that would still pass
    (say, swapping two independent calls) is redrawn, so ``error_rate`` is the rate of
    failed episodes on tasks where some error can be made.

    The error draws of an episode come from an RNG seeded with ``(seed, episode_seed)``, so
    they are reproducible per episode and independent across episodes even when a fresh
    expert is made for every episode (as the rollout collector does).

    Args:
        error_rate: Probability that an episode gets one injected error.
        error_kinds: The kinds to draw from.
        seed: Seed of the expert's RNG (mixed with each episode's seed).
        max_attempts: Perturbations tried before giving up on an episode (it then stays
            correct, and ``injected`` is ``None``).
    """

    name = "tooluse-expert"

    def __init__(
        self,
        *,
        error_rate: float = 0.0,
        error_kinds: Sequence[str] = ToolEnvExpert.ERROR_KINDS,
        seed: int = 0,
        max_attempts: int = 12,
    ) -> None:
        super().__init__(error_rate=error_rate, error_kinds=error_kinds, seed=seed)
        self.max_attempts = max_attempts
        self._task: ToolTask | None = None

    def reset(self, env: Any, observation: str, info: Mapping[str, Any]) -> None:
        self._task = env.unwrapped.task
        super().reset(env, observation, info)  # seeds the error draws with the episode seed

    def _inject(self, turns: list[list[ToolCall]]) -> str | None:
        assert self._task is not None
        for _ in range(self.max_attempts):
            trial = [list(calls) for calls in turns]
            kind = super()._inject(trial)
            if kind is None:
                return None
            if not all(v.passed for v in replay_calls(self._task, trial)):
                turns[:] = trial
                return kind
        return None
