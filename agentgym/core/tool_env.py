"""Multi-turn tool-use environments built from your own tools and tasks.

A :class:`ToolEnv` runs conversations in which a user gives one or more turns of
instructions and the agent calls tools (in the format of a pluggable parser) until it
answers without a call, which ends the turn. A checker judges the whole episode.

The parts you provide:

* tools: functions or methods decorated with :func:`agentgym.tool`; a parameter typed
  :class:`~agentgym.core.tools.State` receives the episode's state;
* tasks: :class:`ToolTask` records (initial state, user turns, optionally the ground-truth
  calls of each turn and the expected answer);
* a checker: ``checker(episode) -> Evaluation | bool | float`` looking at the final
  :class:`ToolEpisode` (state, calls, responses); optionally a ``turn_checker`` for
  per-turn verdicts, which also gives partial ``progress``.

Register it under your own id in one call with :func:`agentgym.register_tool_env`, then
``gymnasium.make`` it like any other environment.

Subclasses can change how an episode runs through three hooks: :meth:`ToolEnv.new_state`
(build the per-episode state, e.g. backend objects), :meth:`ToolEnv.call_tool` (route,
hide or rewrite tool calls) and :meth:`ToolEnv.begin_turn` (the message that opens a turn,
and info such as a changed tool list).

Example:
    >>> from agentgym import State, ToolEnv, ToolTask, tool
    >>> @tool
    ... def deposit(amount: int, account: State) -> int:
    ...     '''Deposit money and return the new balance.
    ...
    ...     Args:
    ...         amount: Amount in dollars.
    ...     '''
    ...     account["balance"] += amount
    ...     return account["balance"]
    >>> task = ToolTask(id="t0", turns=("Deposit 5 dollars.",), initial_state={"balance": 10})
    >>> env = ToolEnv(tools=[deposit], tasks=[task],
    ...               checker=lambda episode: episode.state["balance"] == 15)
    >>> observation, info = env.reset(seed=0)
    >>> observation
    'Deposit 5 dollars.'
    >>> env.step('<tool_call>{"name": "deposit", "arguments": {"amount": 5}}</tool_call>')[0]
    '15'
    >>> observation, reward, terminated, truncated, info = env.step("Done, the balance is 15.")
    >>> reward, terminated, info["success"]
    (1.0, True, True)
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentgym.core.env import Evaluation, TextEnv, Transition
from agentgym.core.parsing import ReActParser, ToolCall, ToolCallParser, get_parser
from agentgym.core.policy import ErrorInjectingExpert
from agentgym.core.tasks import TaskSet
from agentgym.core.tools import State, Tool, ToolResult, ToolSet

__all__ = [
    "CallRecord",
    "Checker",
    "ToolEnv",
    "ToolEnvExpert",
    "ToolEpisode",
    "ToolTask",
    "final_transition",
    "normalize_evaluation",
]

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant that solves the user's request by calling tools. "
    "Call tools when you need information or need to change something; when the request "
    "is done, answer the user in plain text without a tool call."
)

#: The action that ends a turn when the ReAct parser is chosen by name (``parser="react"``).
REACT_ANSWER_ACTION = "Finish"


@dataclass(frozen=True)
class ToolTask:
    """One task of a tool environment.

    Attributes:
        id: Unique task id.
        turns: The user's messages, one per turn; the first opens the episode.
        initial_state: The state the tools start from (deep-copied per episode).
        ground_truth: For each turn, the calls that solve it (used by experts and checkers).
        answers: For each turn, the expected final reply (used by experts and checkers).
        metadata: Anything else (difficulty, category, ...).
    """

    id: str
    turns: tuple[str, ...]
    initial_state: Mapping[str, Any] = field(default_factory=dict)
    ground_truth: tuple[tuple[ToolCall, ...], ...] | None = None
    answers: tuple[str, ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.turns:
            raise ValueError(f"ToolTask {self.id!r} needs at least one user turn.")
        if isinstance(self.turns, str):
            raise TypeError(f"ToolTask {self.id!r}: turns must be a sequence of strings.")
        if self.ground_truth is not None and len(self.ground_truth) != len(self.turns):
            raise ValueError(
                f"ToolTask {self.id!r}: ground_truth has {len(self.ground_truth)} turns but "
                f"turns has {len(self.turns)}."
            )
        if self.answers is not None and len(self.answers) != len(self.turns):
            raise ValueError(
                f"ToolTask {self.id!r}: answers has {len(self.answers)} entries but turns "
                f"has {len(self.turns)}."
            )


def ground_truth_problems(
    tools: ToolSet, tasks: Iterable[ToolTask], *, limit: int = 20
) -> list[str]:
    """Ground-truth calls of ``tasks`` that the ``tools`` would refuse (empty: all valid).

    Each problem names the task, the turn and the call: an unknown tool (with a "did you
    mean") or arguments the tool's own validation refuses. At most ``limit`` are listed,
    then a count of the rest.

    >>> from agentgym.core.tools import tool
    >>> @tool
    ... def add(a: int, b: int) -> int:
    ...     '''Add.
    ...
    ...     Args:
    ...         a: First.
    ...         b: Second.
    ...     '''
    ...     return a + b
    >>> calls = (ToolCall("ad", {"a": 1}), ToolCall("add", {"a": "1", "b": 2}))
    >>> task = ToolTask(id="t1", turns=("Add.",), ground_truth=(calls,))
    >>> for problem in ground_truth_problems(ToolSet([add]), [task]):
    ...     print(problem)
    task 't1', turn 0, call 0: unknown tool 'ad'. Did you mean 'add'? Tools: add
    task 't1', turn 0, call 1 add(...): 'a' must be an integer, got string '1'
    """
    problems: list[str] = []
    for task in tasks:
        for turn, calls in enumerate(task.ground_truth or ()):
            for index, call in enumerate(calls):
                where = f"task {task.id!r}, turn {turn}, call {index}"
                if call.name not in tools:
                    close = difflib.get_close_matches(call.name, list(tools), n=1)
                    hint = f" Did you mean '{close[0]}'?" if close else ""
                    problems.append(
                        f"{where}: unknown tool '{call.name}'.{hint} Tools: {', '.join(tools)}"
                    )
                    continue
                tool = tools[call.name]
                issues = tool.validate(tool.resolve_arguments(call))
                if issues:
                    problems.append(f"{where} {call.name}(...): {'; '.join(issues)}")
    if len(problems) > limit:
        problems = [*problems[:limit], f"... and {len(problems) - limit} more"]
    return problems


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One tool call the agent made, with its result."""

    turn: int
    call: ToolCall
    result: ToolResult


@dataclass
class ToolEpisode:
    """Everything a checker may look at: the task, final state, calls and responses.

    ``num_actions`` counts the agent's actions that reached the parser and
    ``format_errors`` those of them it could not parse (for format rewards).
    """

    task: ToolTask
    state: State
    calls: list[CallRecord] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    finished: bool = False
    num_actions: int = 0
    format_errors: int = 0

    def calls_in_turn(self, turn: int) -> list[CallRecord]:
        """The calls made during ``turn``."""
        return [record for record in self.calls if record.turn == turn]


Checker = Callable[[ToolEpisode], "Evaluation | bool | float"]
TurnChecker = Callable[[ToolEpisode, int], bool]


def normalize_evaluation(result: Evaluation | bool | float) -> Evaluation:
    """Accept a checker's ``Evaluation``, ``bool`` or ``float`` (reward; 1.0 is success)."""
    if isinstance(result, Evaluation):
        # A copy, because the environment adds turn verdicts and progress to it.
        return dataclasses.replace(result, verdicts=dict(result.verdicts))
    if isinstance(result, bool | np.bool_):
        return Evaluation(success=bool(result), reward=float(result))
    if isinstance(result, int | float | np.number):
        value = float(result)
        return Evaluation(success=value >= 1.0, reward=value)
    raise TypeError(
        f"A checker must return Evaluation, bool or float, got {type(result).__name__}."
    )


class ToolEnv(TextEnv):
    """A multi-turn, stateful tool-use environment over user-supplied tools and tasks.

    ## Description
    Each episode is one task: the user's turns arrive one at a time; within a turn the
    agent calls tools until it replies without a call. The episode ends after the last
    turn, and the checker scores it.

    ## Action Space
    Text in the parser's format (default ``hermes``: ``<tool_call>{json}</tool_call>``).

    ## Observation Space
    Text: the user's turn, tool results, or an error that says what was wrong and what is
    valid (malformed call, unknown tool, bad arguments). Errors never change the state.

    ## Rewards
    The checker's reward at the end of the episode (1.0 for success by default), 0 before.

    ## Episode End
    Terminates after the agent's reply to the last turn. Truncation comes from
    ``max_episode_steps`` at registration. A turn whose ``max_steps_per_turn`` actions
    bring no final answer is ended for the agent.

    ## Arguments
    ``tools``, ``tasks``, ``checker``, ``turn_checker``, ``system_prompt``, ``parser``
    (a name: ``hermes``, ``python``, ``think_answer``, ``react`` — ending a turn with
    ``Finish[answer]`` — or a :class:`~agentgym.core.parsing.ToolCallParser`),
    ``max_steps_per_turn``, plus :class:`~agentgym.core.env.TextEnv`'s arguments.

    ## Version History
    * v0: initial version.
    """

    def __init__(
        self,
        *,
        tools: Sequence[Tool | Callable[..., Any]] | ToolSet,
        tasks: Sequence[ToolTask] | TaskSet[ToolTask],
        checker: Checker,
        turn_checker: TurnChecker | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        parser: str | ToolCallParser = "hermes",
        max_steps_per_turn: int = 20,
        max_observation_length: int = 32_768,
        max_action_length: int = 16_384,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            max_observation_length=max_observation_length,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        if max_steps_per_turn < 1:
            raise ValueError(f"max_steps_per_turn must be >= 1, got {max_steps_per_turn}")
        self.toolset = tools if isinstance(tools, ToolSet) else ToolSet(tools)
        self.tasks = tasks if isinstance(tasks, TaskSet) else TaskSet.from_list(list(tasks))
        self.checker = checker
        self.turn_checker = turn_checker
        # By name (a config value), "react" ends a turn with Finish[answer]: a ToolEnv needs an
        # answer action, and a name cannot carry one.
        self.parser = (
            ReActParser(answer_action=REACT_ANSWER_ACTION)
            if parser == "react"
            else get_parser(parser)
        )
        if isinstance(self.parser, ReActParser) and self.parser.answer_action is None:
            raise ValueError(
                "A ReAct parser without an answer action cannot end a turn in a ToolEnv: pass "
                "parser=ReActParser(answer_action='Finish') (or another action name)."
            )
        self.max_steps_per_turn = max_steps_per_turn
        self.system_prompt = system_prompt
        self._full_system_prompt = (
            f"{system_prompt}\n\n{self.parser.instructions(self.toolset.schemas)}".strip()
        )
        self.episode: ToolEpisode | None = None
        self._steps_in_turn = 0
        self._turn_verdicts: list[bool] = []

    # ---------------------------------------------------------------- episode hooks --

    def _start(self, task: ToolTask) -> tuple[str, dict[str, Any]]:
        self.episode = ToolEpisode(task=task, state=self.new_state(task))
        self._steps_in_turn = 0
        self._turn_verdicts = []
        info = {
            "system_prompt": self._full_system_prompt,
            "tools": self.toolset.schemas,
            "observation_role": "user",
            "num_turns": len(task.turns),
        }
        observation, turn_info = self.begin_turn(0)
        info.update(turn_info)
        return observation, info

    # ---------------------------------------------------------------- subclass hooks --

    def new_state(self, task: ToolTask) -> State:
        """The state an episode of ``task`` starts from (called once per reset).

        The default is a deep copy of ``task.initial_state``. Override it to build richer
        per-episode state, e.g. backend objects constructed from the task's configuration.
        """
        return State(copy.deepcopy(dict(task.initial_state)))

    def call_tool(self, call: ToolCall) -> ToolResult:
        """Run one of the agent's calls on the episode's state; never raises.

        The default dispatches through ``self.toolset``. Override it to route calls to
        per-episode backends, hide tools, or rewrite results; the result is recorded in
        ``episode.calls`` as returned.
        """
        assert self.episode is not None
        return self.toolset.call(call, state=self.episode.state)

    def begin_turn(self, turn: int) -> tuple[str, dict[str, Any]]:
        """The observation that opens user turn ``turn``, and extra ``info`` entries.

        Called at reset (turn 0) and whenever a turn starts. The default is the task's
        message for that turn and no extra info; override it to change the environment
        between turns (e.g. reveal a tool and update ``info["tools"]``).
        """
        assert self.episode is not None
        return self.episode.task.turns[turn], {}

    def _act(self, action: str) -> Transition:
        assert self.episode is not None
        parsed = self.parser.parse(action)
        self._steps_in_turn += 1
        self.episode.num_actions += 1
        if parsed.error is not None:
            self.episode.format_errors += 1
            if self._steps_in_turn >= self.max_steps_per_turn:
                forced = self._end_turn("", forced=True)
                forced.observation = f"{parsed.error}\n\n{forced.observation}"
                return forced
            return self._invalid(parsed.error)
        if parsed.tool_calls:
            transition = self._run_calls(parsed.tool_calls)
            if self._steps_in_turn >= self.max_steps_per_turn:
                forced = self._end_turn("", forced=True)
                forced.observation = f"{transition.observation}\n\n{forced.observation}"
                return forced
            return transition
        return self._end_turn(parsed.answer if parsed.answer is not None else parsed.content)

    def evaluate(self) -> Evaluation:
        """Score the episode as it stands; unfinished episodes cannot succeed."""
        assert self.episode is not None
        if self.episode.finished:
            return normalize_evaluation(self.checker(self.episode))
        progress = self._progress()
        return Evaluation(
            success=False,
            reward=0.0,
            verdicts={f"turn_{i}": ok for i, ok in enumerate(self._turn_verdicts)},
            feedback=(
                f"The episode ended after {self._turn} of {len(self.episode.task.turns)} turns."
            ),
            progress=progress,
        )

    # ---------------------------------------------------------------- internals --

    def _run_calls(self, calls: Sequence[ToolCall]) -> Transition:
        assert self.episode is not None
        results = []
        for call in calls:
            result = self.call_tool(call)
            self.episode.calls.append(CallRecord(self._turn, call, result))
            results.append((call, result))
        all_ok = all(result.ok for _, result in results)
        observation = self.format_results(results)
        return Transition(
            observation=observation,
            action_valid=all_ok,
            feedback="" if all_ok else "; ".join(r.content for _, r in results if not r.ok),
            observation_role="tool",
            progress=self._progress(),
            info={"tool_results": [{"name": c.name, "ok": r.ok} for c, r in results]},
        )

    def format_results(self, results: Sequence[tuple[ToolCall, ToolResult]]) -> str:
        """The observation for one action's tool results (one result: its content alone)."""
        if len(results) == 1:
            return results[0][1].content
        return "\n".join(
            json.dumps({"name": call.name, "result": result.content}, ensure_ascii=False)
            for call, result in results
        )

    def _end_turn(self, response: str, *, forced: bool = False) -> Transition:
        assert self.episode is not None
        episode = self.episode
        episode.responses.append(response)
        if self.turn_checker is not None:
            self._turn_verdicts.append(bool(self.turn_checker(episode, self._turn)))
        self._turn += 1
        self._steps_in_turn = 0
        note = (
            f"[Turn ended: {self.max_steps_per_turn} steps without a final answer.]\n"
            if forced
            else ""
        )
        if self._turn < len(episode.task.turns):
            message, turn_info = self.begin_turn(self._turn)
            return Transition(
                observation=note + message,
                action_valid=not forced,
                feedback=note.strip(),
                progress=self._progress(),
                observation_role="user",
                info=turn_info,
            )
        episode.finished = True
        evaluation = normalize_evaluation(self.checker(episode))
        if evaluation.progress is None and self.turn_checker is not None:
            evaluation.progress = self._progress()
        if self._turn_verdicts:
            for index, ok in enumerate(self._turn_verdicts):
                evaluation.verdicts.setdefault(f"turn_{index}", ok)
        return final_transition(evaluation, note=note, forced=forced)

    def _progress(self) -> float | None:
        if self.turn_checker is None or self.episode is None:
            return None
        return sum(self._turn_verdicts) / len(self.episode.task.turns)

    def make_expert(self, **kwargs: Any) -> ToolEnvExpert:
        """A scripted expert that replays each task's ground truth (see :class:`ToolEnvExpert`)."""
        return ToolEnvExpert(**kwargs)


def final_transition(evaluation: Evaluation, *, note: str = "", forced: bool = False) -> Transition:
    """The last transition of an episode: the verdict, reward and feedback for the agent."""
    verdict = "solved" if evaluation.success else "not solved"
    observation = f"{note}Episode finished: task {verdict} (reward {evaluation.reward:g})."
    if evaluation.feedback:
        observation += f"\n{evaluation.feedback}"
    return Transition(
        observation=observation,
        reward=evaluation.reward,
        terminated=True,
        action_valid=not forced,
        feedback=evaluation.feedback,
        progress=evaluation.progress,
        evaluation=evaluation,
    )


class ToolEnvExpert(ErrorInjectingExpert):
    """Follows a task's ground-truth calls, optionally injecting errors.

    Per turn it sends the ground-truth calls (all in one action when the parser allows
    several, else one per action), then the turn's entry of ``task.answers`` (or "Done.")
    as the final reply. Error injection (RNG, draw) is :class:`ErrorInjectingExpert`'s.

    Args:
        error_rate: Probability that an episode gets one injected error.
        error_kinds: Which errors to inject: ``"wrong_argument"`` (one argument value
            changed), ``"skip_call"`` (one call left out), ``"wrong_order"`` (two calls of
            a turn swapped).
        seed: Seed of the expert's error draws (combined with each episode's seed).
    """

    name = "tool-expert"
    ERROR_KINDS = ("wrong_argument", "skip_call", "wrong_order")

    def __init__(
        self,
        *,
        error_rate: float = 0.0,
        error_kinds: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(error_rate=error_rate, error_kinds=error_kinds, seed=seed)
        self._env: ToolEnv | None = None
        self._turns: list[list[ToolCall]] = []
        self._answers: list[str] = []

    def plan_episode(self, env: Any, observation: str, info: Mapping[str, Any]) -> None:
        tool_env = env.unwrapped
        if not isinstance(tool_env, ToolEnv):
            raise TypeError(f"ToolEnvExpert needs a ToolEnv, got {type(tool_env).__name__}")
        task: ToolTask = tool_env.task
        if task.ground_truth is None:
            raise ValueError(f"Task {task.id!r} has no ground_truth; the expert cannot act.")
        self._env = tool_env
        self._turns = [list(calls) for calls in task.ground_truth]
        self._answers = [str(a) for a in (task.answers or ("Done.",) * len(self._turns))]

    def inject_error(self) -> str | None:
        return self._inject(self._turns)

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        """The next action, read off the environment's progress in the current turn.

        Acting on the environment's state (turn index, calls already made in the turn)
        rather than on a fixed script keeps the expert correct when an episode is restarted
        from the middle of another trajectory (EEF explores that way): it issues the
        turn's remaining planned calls, then the turn's answer.
        """
        env = self._env
        assert env.episode is not None, "reset() the expert after the environment"
        turn = env._turn
        if turn >= len(self._turns):
            return env.parser.format_answer("Done.")
        planned = self._turns[turn]
        remaining = planned[len(env.episode.calls_in_turn(turn)) :]
        if not remaining:
            return env.parser.format_answer(self._answers[turn])
        if isinstance(env.parser, ReActParser):  # one action per step in ReAct
            return env.parser.format_calls(remaining[:1])
        return env.parser.format_calls(remaining)

    def _inject(self, turns: list[list[ToolCall]]) -> str | None:
        kinds = list(self.error_kinds)
        self.rng.shuffle(kinds)
        for kind in kinds:
            if kind == "wrong_order":
                candidates = [t for t, calls in enumerate(turns) if len(calls) >= 2]
            else:
                candidates = [t for t, calls in enumerate(turns) if calls]
            if kind == "wrong_argument":
                candidates = [t for t in candidates if any(c.arguments for c in turns[t])]
            if not candidates:
                continue
            turn = candidates[int(self.rng.integers(len(candidates)))]
            calls = turns[turn]
            if kind == "skip_call":
                calls.pop(int(self.rng.integers(len(calls))))
            elif kind == "wrong_order":
                i = int(self.rng.integers(len(calls) - 1))
                calls[i], calls[i + 1] = calls[i + 1], calls[i]
            else:
                index = int(self.rng.choice([i for i, c in enumerate(calls) if c.arguments]))
                calls[index] = _perturb_call(calls[index], self.rng)
            return kind
        return None


def _perturb_call(call: ToolCall, rng: np.random.Generator) -> ToolCall:
    """The same call with one argument value changed to a plausible wrong value."""
    name = sorted(call.arguments)[int(rng.integers(len(call.arguments)))]
    value = call.arguments[name]
    if isinstance(value, bool):
        wrong: Any = not value
    elif isinstance(value, int):
        wrong = value + int(rng.integers(1, 10))
    elif isinstance(value, float):
        wrong = value + float(rng.integers(1, 10))
    elif isinstance(value, str):
        wrong = value[::-1] if len(set(value)) > 1 else value + "x"
    else:
        wrong = None
    arguments = dict(call.arguments)
    arguments[name] = wrong
    return ToolCall(call.name, arguments, id=call.id)
