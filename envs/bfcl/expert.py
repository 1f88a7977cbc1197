"""The oracle of ``agentgym/BFCL-MultiTurn-v0``: each turn's ground-truth calls, then a reply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentgym.core.parsing import ToolCall
from agentgym.core.tool_env import ToolEnvExpert
from agentgym.envs.bfcl.judge import plan_passes

if TYPE_CHECKING:
    from agentgym.envs.bfcl.env import BFCLMultiTurnEnv

__all__ = ["BFCLExpert"]

# Replies of the expert: after solving a turn, and in turns BFCL expects no call (a
# parameter or function is missing).
_EXPERT_DONE = "Done."
_EXPERT_CANNOT = (
    "I cannot do that yet: a value or a function I need is missing. "
    "Please tell me what is missing or give me the means to do it."
)


class BFCLExpert(ToolEnvExpert):
    """The oracle: per turn, the ground-truth calls in one action, then a short reply.

    It reads the environment's progress (turn index, calls already made in the turn), so
    it stays correct when an episode is restarted from the middle of another trajectory:
    it issues the turn's remaining ground-truth calls, then the reply. Turns without a
    ground truth (a missing parameter or function) get a reply that says something is
    missing.

    ``error_rate`` and ``error_kinds`` inject one error per episode with that probability,
    as in :class:`~agentgym.ToolEnvExpert` (``wrong_argument``, ``skip_call``,
    ``wrong_order``); the draws come from the episode's seed
    (:class:`~agentgym.core.policy.ErrorInjectingExpert`). Injected errors are verified:
    the changed plan is played on private backends and a change that would still pass
    (say, swapping two independent calls) is redrawn, so ``error_rate`` is the rate of
    failed episodes.

    Args:
        error_rate: Probability that an episode gets one injected error.
        error_kinds: The kinds to draw from.
        seed: Seed of the expert's error draws (combined with each episode's seed).
        max_attempts: Changes tried before giving up on an episode (it then stays
            correct, and ``injected`` is ``None``).
    """

    name = "bfcl-oracle"

    def __init__(
        self,
        *,
        error_rate: float = 0.0,
        error_kinds: Sequence[str] | None = None,
        seed: int = 0,
        max_attempts: int = 12,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        super().__init__(error_rate=error_rate, error_kinds=error_kinds, seed=seed)
        self.max_attempts = max_attempts
        self._bfcl_env: BFCLMultiTurnEnv | None = None
        self._planned: list[list[ToolCall]] = []
        self._replies: list[str] = []

    def plan_episode(self, env: Any, observation: str, info: Mapping[str, Any]) -> None:
        bfcl_env = env.unwrapped
        if not hasattr(bfcl_env, "calls_in_turn"):
            raise TypeError(f"BFCLExpert needs a BFCLMultiTurnEnv, got {type(bfcl_env).__name__}")
        task = bfcl_env.task
        if task is None:
            raise ValueError("reset() the environment before the expert.")
        self._bfcl_env = bfcl_env
        self._planned = [list(calls) for calls in task.ground_truth]
        self._replies = [_EXPERT_DONE if calls else _EXPERT_CANNOT for calls in task.ground_truth]

    def inject_error(self) -> str | None:
        assert self._bfcl_env is not None and self._bfcl_env.task is not None
        for _ in range(self.max_attempts):
            trial = [list(calls) for calls in self._planned]
            kind = self._inject(trial)
            if kind is None:
                return None
            if not plan_passes(self._bfcl_env.task, trial, strict=self._bfcl_env.strict):
                self._planned = trial
                return kind
        return None

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        env = self._bfcl_env
        if env is None:
            raise RuntimeError("reset() the expert after the environment.")
        turn = env._turn
        if turn >= len(self._planned):
            return env.parser.format_answer(_EXPERT_DONE)
        remaining = self._planned[turn][len(env.calls_in_turn(turn)) :]
        if remaining:
            return env.parser.format_calls(remaining)
        return env.parser.format_answer(self._replies[turn])
