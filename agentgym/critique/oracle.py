"""The environment's own judgement of a proposal, tried on a copy of the episode.

The oracle critic, the game's critic reward and test-time voting all need one answer to
"is this proposal right?", and only the environment can give it. :class:`TrialRunner`
rebuilds the episode by deterministic replay (:func:`agentgym.replay`) on an environment
of its own and applies the proposal there, so the real episode is never touched; a
:data:`Judge` turns the outcome (a :class:`Trial`) into a :class:`Judgement`: a verdict,
step-level findings and an explanation.

What counts as right, by default: when the proposal ends the episode, the episode's
success; when it ends a user turn of a tool environment with a turn checker, whether the
turn passed (the environment's ``progress`` rose); otherwise whether the environment
accepted the action (``info["action_valid"]``). Environments register their own judges
for sharper step-level findings: CodeExec (does the code load, which hidden tests fail),
TravelPlanner (which of the 13 checks fail and why), ToolUse (which calls failed, and for
a finished turn whether its state and response checks passed) and WebShop (product type,
attributes, options and price of a purchase).

Nothing hidden leaks: a judge uses only what the environment itself shows the agent after
such an action (its feedback, respecting e.g. CodeExec's ``reveal_tests=False``) plus
pass/fail facts; ToolUse's turn-check messages, which name expected values, are reduced to
which check failed.

Example:
    >>> runner = TrialRunner()
    >>> trial = runner.run("agentgym/Calculator-v0", {}, task_id="calc-easy-3",
    ...                    episode_seed=7, actions=(), proposal="I do not know.")
    >>> env = runner.env_for("agentgym/Calculator-v0", {})
    >>> judge("agentgym/Calculator-v0", trial, env).correct
    False
    >>> runner.close()
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from agentgym.core.env import InfoKeys
from agentgym.core.replay import replay
from agentgym.critique.protocol import Critique, StepCritique, format_critique

__all__ = [
    "Judge",
    "Judgement",
    "Trial",
    "TrialRunner",
    "judge",
    "judgement_critique",
    "register_judge",
    "visible_feedback",
]


@dataclass
class Trial:
    """What the environment did with one action.

    Attributes:
        action: The action.
        observation: The environment's answer.
        reward: The step's reward.
        terminated / truncated: Whether the episode ended (truncated: by a time limit).
        info: The step's ``info``.
        before: The ``info`` of the state the action was applied in.
        success: When the episode ended, whether it succeeded (``None`` while it goes on).
    """

    action: str
    observation: str
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    before: dict[str, Any] = field(default_factory=dict)
    success: bool | None = None

    @property
    def ended(self) -> bool:
        """Whether the action ended the episode."""
        return self.terminated or self.truncated


@dataclass(frozen=True)
class Judgement:
    """The environment's verdict on one proposal.

    Attributes:
        correct: Whether the proposal is right (see the module docstring).
        steps: Step-level findings, in the critique format's terms.
        explanation: A summary in words the environment itself would show.
    """

    correct: bool
    steps: tuple[StepCritique, ...]
    explanation: str


#: ``judge(trial, env) -> Judgement``; ``env`` is the environment the trial ran in, after it.
Judge = Callable[[Trial, gym.Env], Judgement]
_JUDGES: dict[str, Judge] = {}


def register_judge(env_id: str, judge_fn: Judge) -> None:
    """Use ``judge_fn`` for ``env_id``'s proposals (replacing the default judge)."""
    _JUDGES[env_id] = judge_fn


def judge(env_id: str, trial: Trial, env: gym.Env) -> Judgement:
    """The environment's judgement of ``trial`` (its registered judge, else the default)."""
    return _JUDGES.get(env_id, default_judge)(trial, env)


def judgement_critique(judgement: Judgement) -> Critique:
    """The oracle's critique of a judged proposal, in the step-level format."""
    text = format_critique(judgement.steps, judgement.correct, judgement.explanation)
    return Critique(judgement.correct, text, judgement.steps, judgement.explanation)


class TrialRunner:
    """Tries proposals on copies of episodes, rebuilt by deterministic replay.

    One environment per (id, arguments) is made on first use and reused by every trial,
    so a trial costs a reset, the replayed actions and one step.
    """

    def __init__(self) -> None:
        self._envs: dict[str, gym.Env] = {}

    def env_for(self, env_id: str, env_kwargs: Mapping[str, Any]) -> gym.Env:
        """The runner's environment for ``env_id`` with ``env_kwargs``."""
        key = f"{env_id}|{sorted(env_kwargs.items())!r}"
        if key not in self._envs:
            self._envs[key] = gym.make(env_id, **dict(env_kwargs))
        return self._envs[key]

    def run(
        self,
        env_id: str,
        env_kwargs: Mapping[str, Any],
        *,
        task_id: str,
        episode_seed: int,
        actions: Sequence[str],
        proposal: str,
    ) -> Trial:
        """Replay ``actions`` and apply ``proposal``; the environment stays after it."""
        env = self.env_for(env_id, env_kwargs)
        env, _, before = replay(
            env, task_id=task_id, episode_seed=episode_seed, actions=list(actions)
        )
        return step_trial(env, proposal, before)

    def close(self) -> None:
        """Close every environment the runner made."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def step_trial(env: gym.Env, action: str, before: Mapping[str, Any]) -> Trial:
    """Apply ``action`` to ``env`` (in the state ``before`` describes) and record a Trial."""
    observation, reward, terminated, truncated, info = env.step(action)
    success: bool | None = None
    if terminated:
        success = bool(info.get(InfoKeys.SUCCESS, False))
    elif truncated:
        success = bool(env.unwrapped.evaluate().success)
    text = action if isinstance(action, str) else repr(action)
    return Trial(text, observation, float(reward), terminated, truncated, dict(info),
                 dict(before), success)  # fmt: skip


#: Environments whose episode-ending message names hidden expectations (ToolUse's turn
#: checks list expected values): a critic's trial feedback shows only the outcome there.
_OUTCOME_ONLY_AT_END = {"agentgym/ToolUse-v0"}


def visible_feedback(env_id: str, trial: Trial) -> str:
    """What a critic may read of a trial: the environment's answer to the proposal.

    Where the episode-ending message would reveal hidden expectations before the proposal
    is committed, only the outcome is shown.
    """
    if trial.ended and env_id in _OUTCOME_ONLY_AT_END:
        return _ending(trial)
    return trial.observation


# ------------------------------------------------------------------------ judges --


def _feedback(trial: Trial) -> str:
    return str(trial.info.get(InfoKeys.FEEDBACK) or "").strip()


def _ending(trial: Trial) -> str:
    if trial.success:
        return "The episode ends successfully."
    if trial.truncated and not trial.terminated:
        return "The episode runs out of steps without success."
    return "The episode ends without success."


def _turn_outcome(trial: Trial) -> bool | None:
    """Whether the action ended a user turn that passed (``None``: it ended no checked turn)."""
    before, after = trial.before.get(InfoKeys.TURN), trial.info.get(InfoKeys.TURN)
    progress = trial.info.get(InfoKeys.PROGRESS)
    if not (isinstance(before, int) and isinstance(after, int) and after > before):
        return None
    if progress is None:
        return None
    return float(progress) > float(trial.before.get(InfoKeys.PROGRESS) or 0.0) + 1e-9


def default_judge(trial: Trial, env: gym.Env) -> Judgement:
    """Episode success at the end, turn checks at turn ends, else the action's validity."""
    feedback = _feedback(trial)
    if trial.success is not None:
        explanation = f"{_ending(trial)} {feedback}".strip()
        return Judgement(trial.success, (StepCritique(1, "the answer", trial.success),),
                         explanation)  # fmt: skip
    if not trial.info.get(InfoKeys.ACTION_VALID, True):
        reason = feedback or trial.observation[:500]
        return Judgement(False, (StepCritique(1, "the answer", False, reason),),
                         f"The environment rejects this answer: {reason}")  # fmt: skip
    turn = _turn_outcome(trial)
    if turn is not None:
        words = "passes its check" if turn else "fails its check"
        return Judgement(turn, (StepCritique(1, "the reply that ends this turn", turn),),
                         f"This answer ends the user's turn, and the turn {words}.")  # fmt: skip
    accepted = "The environment accepts the answer; no error shows at this step."
    return Judgement(True, (StepCritique(1, "the answer", True),), accepted)


def _failure_line(feedback: str, number: int) -> str:
    """The rest of the feedback line ``Test <number> failed: ...``, if there is one."""
    match = re.search(rf"^Test {number} failed:?[ \t]*(.*)$", feedback, re.MULTILINE)
    return (match.group(1).strip() or "fails") if match else "fails"


def codeexec_judge(trial: Trial, env: gym.Env) -> Judgement:
    """CodeExec: does the code load, which hidden tests pass (the env's own feedback)."""
    feedback = _feedback(trial)
    execution = trial.info.get("execution") or {}
    status = execution.get("status", "no_code")
    correct = bool(trial.success)
    if status == "no_code":
        steps: list[StepCritique] = [
            StepCritique(1, "the answer holds the function in a ```python block", False)
        ]
    else:
        loads = status not in ("syntax_error", "error")
        steps = [StepCritique(1, "the code loads", loads, "" if loads else status)]
        for number, passed in enumerate(execution.get("tests") or [], start=1):
            explanation = "" if passed else _failure_line(feedback, number)
            steps.append(StepCritique(number + 1, f"hidden test {number}", bool(passed),
                                      explanation))  # fmt: skip
    return Judgement(correct, tuple(steps), feedback or _ending(trial))


_CHECK_LINE = re.compile(r"^([a-z_]+): (success|fail)(?:, reason: (.*))?$")


def travelplanner_judge(trial: Trial, env: gym.Env) -> Judgement:
    """TravelPlanner: one step per evaluator check of a submitted plan (the FAFT lines)."""
    feedback = _feedback(trial)
    lines = [_CHECK_LINE.match(line.strip()) for line in feedback.splitlines()]
    checks = [m for m in lines if m is not None]
    if trial.success is None or not checks:
        return default_judge(trial, env)
    steps = tuple(
        StepCritique(number, match.group(1), match.group(2) == "success", match.group(3) or "")
        for number, match in enumerate(checks, start=1)
    )
    failed = [step.step for step in steps if not step.correct]
    explanation = (
        "The plan passes every check."
        if trial.success
        else f"The plan fails {len(failed)} check(s): {', '.join(failed)}."
    )
    return Judgement(bool(trial.success), steps, explanation)


def tooluse_judge(trial: Trial, env: gym.Env) -> Judgement:
    """ToolUse: each call's outcome; at a turn's end, which of its checks failed.

    The checker's messages name expected values, which the environment shows only once
    the episode is over; the critique says only which check failed.
    """
    steps: list[StepCritique] = []
    results = trial.info.get("tool_results") or []
    feedback = _feedback(trial)
    for result in results:
        ok = bool(result.get("ok"))
        steps.append(StepCritique(len(steps) + 1, f"call {result.get('name')}", ok,
                                  "" if ok else "the call failed"))  # fmt: skip
    if not results and not trial.info.get(InfoKeys.ACTION_VALID, True) and not trial.ended:
        steps.append(StepCritique(1, "the tool call's format", False, feedback))
    before, after = trial.before.get(InfoKeys.TURN), trial.info.get(InfoKeys.TURN)
    ended_turn = trial.terminated or (isinstance(before, int) and isinstance(after, int)
                                      and after > before)  # fmt: skip
    verdicts = getattr(getattr(env.unwrapped, "checker_state", None), "verdicts", None)
    if ended_turn and verdicts:
        verdict = verdicts[-1]
        steps.append(StepCritique(len(steps) + 1, "the state after this turn", verdict.state_ok,
                                  "" if verdict.state_ok else "the backends' state is not what "
                                  "the request requires"))  # fmt: skip
        steps.append(StepCritique(len(steps) + 1, "the results this turn needed",
                                  verdict.response_ok, "" if verdict.response_ok else
                                  "a result the request needs was never obtained"))  # fmt: skip
    if trial.success is not None:
        correct = trial.success
        explanation = _ending(trial)
    elif ended_turn and verdicts:
        correct = verdicts[-1].passed
        explanation = "This reply ends the turn; the turn " + (
            "passes its checks." if correct else "fails its checks.")  # fmt: skip
    else:
        correct = bool(trial.info.get(InfoKeys.ACTION_VALID, True))
        explanation = "Every call succeeds." if correct else f"Errors: {feedback}"
    if not steps:
        steps.append(StepCritique(1, "the answer", correct))
    return Judgement(correct, tuple(steps), explanation)


def webshop_judge(trial: Trial, env: gym.Env) -> Judgement:
    """WebShop: a purchase's type, attribute, option and price terms; else validity."""
    parts = trial.info.get("reward_components")
    if not isinstance(parts, Mapping):
        return default_judge(trial, env)
    steps = (
        StepCritique(1, "the kind of product", parts.get("r_type", 0) >= 1.0),
        StepCritique(2, "the requested attributes", parts.get("attributes_matched")
                     == parts.get("num_attributes"),
                     f"{parts.get('attributes_matched')}/{parts.get('num_attributes')} matched"),
        StepCritique(3, "the requested options", parts.get("options_matched")
                     == parts.get("num_options"),
                     f"{parts.get('options_matched')}/{parts.get('num_options')} selected"),
        StepCritique(4, "the price limit", bool(parts.get("r_price"))),
    )  # fmt: skip
    return Judgement(bool(trial.success), steps, _feedback(trial) or _ending(trial))


register_judge("agentgym/CodeExec-v0", codeexec_judge)
register_judge("agentgym/TravelPlanner-v0", travelplanner_judge)
register_judge("agentgym/ToolUse-v0", tooluse_judge)
register_judge("agentgym/WebShop-v0", webshop_judge)
