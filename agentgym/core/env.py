"""The environment contract every agentgym environment follows.

:class:`TextEnv` is a :class:`gymnasium.Env` whose observations and actions are text. A
subclass supplies a :class:`~agentgym.core.tasks.TaskSet` and two hooks, ``_start`` (begin
an episode on a task) and ``_act`` (apply one action); the base class does everything that
must be identical across environments:

* task selection: ``reset(options={"task_id": ...})``, ``{"task_index": ...}``, or a task
  drawn from the environment's own RNG (``self.np_random``);
* per-episode randomness: every episode gets an ``episode_seed`` (drawn from
  ``self.np_random`` or passed in ``options``) and a private ``self.episode_rng``, so an
  episode is a pure function of (task, episode_seed, actions) and can be replayed
  (see :mod:`agentgym.core.replay`);
* bad actions: non-strings and over-long strings become an invalid-action observation
  instead of an exception; control characters are removed from observations and long
  observations are cut with a visible marker so they always lie in the observation space;
* the ``info`` conventions below, identical in every environment, so trainers and
  collectors need no environment-specific code.

``info`` keys (constants in :class:`InfoKeys`):

========================  ============================================================
``task_id``               id of the episode's task (reset and step)
``episode_seed``          seed of ``episode_rng``; with the task id and actions it
                          rebuilds the episode (reset and step)
``system_prompt``         the system message a policy should use (reset)
``tools``                 OpenAI function schemas of the tools, ``[]`` if none (reset)
``observation_role``      how a chat policy should present the observation:
                          ``"user"`` or ``"tool"`` (reset and step)
``feedback``              textual feedback on the last action (step)
``action_valid``          whether the last action was well-formed and allowed (step)
``progress``              partial progress in [0, 1] or ``None`` (step)
``turn``                  index of the current user turn (reset and step)
``verdicts``              evaluator verdicts ``{check: bool | value}`` (at episode end)
``success``               whether the episode succeeded (at episode end)
========================  ============================================================

Copies and pickles (vector environments in subprocesses, Ray, ``multiprocessing``) are
made the way replay works: a copy is built from the same constructor arguments, reset to
the same task and episode seed, and given the same actions, then takes over the RNG of
``reset`` and the spaces. It continues the episode exactly as the original would, and no
environment needs copy code of its own. Attributes changed after construction are not
carried; pass them as constructor arguments instead.

Example:
    >>> import copy, pickle
    >>> import gymnasium as gym
    >>> import agentgym
    >>> env = gym.make("agentgym/Calculator-v0")
    >>> _ = env.reset(seed=0)
    >>> twin = pickle.loads(pickle.dumps(env))
    >>> env.step("I do not know.")[0] == twin.step("I do not know.")[0]
    True
    >>> copy.deepcopy(env).unwrapped.task_id == env.unwrapped.task_id
    True
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded

from agentgym.core.arguments import type_problem
from agentgym.core.policy import ScriptedPolicy
from agentgym.core.spaces import AgentText, sanitize_text
from agentgym.core.tasks import TaskSet

__all__ = ["Evaluation", "InfoKeys", "TextEnv", "Transition"]

ObservationRole = Literal["user", "tool"]


class InfoKeys:
    """Names of the ``info`` entries shared by every environment."""

    TASK_ID = "task_id"
    EPISODE_SEED = "episode_seed"
    SYSTEM_PROMPT = "system_prompt"
    TOOLS = "tools"
    OBSERVATION_ROLE = "observation_role"
    FEEDBACK = "feedback"
    ACTION_VALID = "action_valid"
    PROGRESS = "progress"
    TURN = "turn"
    VERDICTS = "verdicts"
    SUCCESS = "success"


@dataclass(slots=True)
class Evaluation:
    """An evaluator's judgement of an episode.

    Attributes:
        success: Whether the task was solved.
        reward: The reward the environment pays for this judgement.
        verdicts: One entry per check (``True``/``False`` or a measured value).
        feedback: Text explaining the verdicts, written for the agent.
        progress: Partial progress in [0, 1], where the environment defines it.
    """

    success: bool
    reward: float
    verdicts: dict[str, Any] = field(default_factory=dict)
    feedback: str = ""
    progress: float | None = None


@dataclass(slots=True)
class Transition:
    """What a subclass's ``_act`` returns for one action.

    Attributes:
        observation: The next observation text.
        reward: Reward for this step.
        terminated: Whether the episode reached a terminal state.
        action_valid: Whether the action was well-formed and allowed.
        feedback: Text feedback on the action (``observation`` usually contains it too).
        progress: Partial progress in [0, 1] after this step, if defined.
        observation_role: ``"tool"`` for tool results, ``"user"`` for user/env messages.
        evaluation: The final evaluation; required when ``terminated``.
        info: Extra environment-specific ``info`` entries.
    """

    observation: str
    reward: float = 0.0
    terminated: bool = False
    action_valid: bool = True
    feedback: str = ""
    progress: float | None = None
    observation_role: ObservationRole = "user"
    evaluation: Evaluation | None = None
    info: dict[str, Any] = field(default_factory=dict)


#: Reset options and the types they take (checked, so a wrong type is named, not cast).
_RESET_OPTIONS: dict[str, Any] = {"task_id": str, "task_index": int, "episode_seed": int | None}


class TextEnv(gym.Env[str, str]):
    """Base class of agentgym environments (text in, text out).

    Subclasses set ``self.tasks`` in ``__init__`` (after calling ``super().__init__``) and
    implement ``_start`` and ``_act``; they may override ``evaluate`` for episodes cut by a
    time limit. Constructors take keyword arguments only and never accept ``**kwargs``.

    Args:
        max_observation_length: Longest observation in characters; longer ones are cut.
        max_action_length: Longest accepted action; longer ones are rejected with feedback.
        render_mode: ``None``, ``"ansi"`` (render returns the transcript) or ``"human"``
            (render prints it).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "render_fps": 4}

    def __new__(cls, *args: Any, **kwargs: Any) -> TextEnv:
        # The arguments of the outermost constructor call, whatever the subclass: copies
        # and pickles rebuild the environment from them (see ``__reduce__``).
        env = super().__new__(cls)
        env._constructor_arguments = (args, dict(kwargs))
        return env

    def __init__(
        self,
        *,
        max_observation_length: int = 32_768,
        max_action_length: int = 16_384,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; "
                f"valid: None, {', '.join(map(repr, self.metadata['render_modes']))}"
            )
        if max_observation_length < 1 or max_action_length < 1:
            raise ValueError("max_observation_length and max_action_length must be >= 1")
        self.render_mode = render_mode
        self.max_observation_length = max_observation_length
        self.max_action_length = max_action_length
        self.observation_space = AgentText(max_observation_length)
        self.action_space = AgentText(max_action_length)
        self.tasks: TaskSet[Any] = TaskSet((), ())
        self.task: Any = None
        self.task_id: str | None = None
        self.episode_seed: int | None = None
        self.episode_rng: np.random.Generator = np.random.default_rng(0)
        self._transcript: list[tuple[str, str]] = []
        self._actions: list[str] = []  # the episode's actions that reached ``_act``
        self._episode_over = True
        self._started = False
        self._turn = 0

    # ------------------------------------------------------------------ subclass hooks --

    @abstractmethod
    def _start(self, task: Any) -> tuple[str, dict[str, Any]]:
        """Begin an episode on ``task``; return the first observation and ``info`` entries.

        The returned info must include ``system_prompt`` and, for tool environments,
        ``tools``. Use ``self.episode_rng`` for any randomness.
        """

    @abstractmethod
    def _act(self, action: str) -> Transition:
        """Apply one (string, length-checked) action to the current episode."""

    def make_expert(self, **kwargs: Any) -> ScriptedPolicy:
        """The environment's scripted expert policy (see :mod:`agentgym.core.policy`)."""
        raise NotImplementedError(f"{type(self).__name__} does not ship an expert policy.")

    def evaluate(self) -> Evaluation:
        """Judge the current episode as it stands (used when a time limit cuts it short).

        The default scores an unfinished episode as a failure; environments with partial
        credit override this.
        """
        return Evaluation(success=False, reward=0.0, feedback="The episode did not finish.")

    # ------------------------------------------------------------------ gymnasium API --

    def reset(
        self, *, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode.

        Args:
            seed: Seeds ``self.np_random`` (task choice and episode seeds).
            options: ``task_id`` or ``task_index`` selects the task; ``episode_seed`` fixes
                the episode's randomness (replay uses it).
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - set(_RESET_OPTIONS))
        if unknown:
            raise ValueError(
                f"Unknown reset option(s) {unknown}; valid options: {list(_RESET_OPTIONS)}"
            )
        wrong_types = [
            problem
            for name, value in options.items()
            if (problem := type_problem(f"options[{name!r}]", value, _RESET_OPTIONS[name]))
        ]
        if wrong_types:
            raise TypeError(f"reset: {'; '.join(wrong_types)}")
        if len(self.tasks) == 0:
            raise RuntimeError(f"{type(self).__name__} has no tasks to reset to.")
        index = self._select_task_index(options)
        episode_seed = options.get("episode_seed")
        if episode_seed is None:
            episode_seed = int(self.np_random.integers(0, 2**63 - 1))
        self.episode_seed = int(episode_seed)
        self.episode_rng = np.random.default_rng(self.episode_seed)
        self.task = self.tasks[index]
        self.task_id = self.tasks.id_at(index)
        self._turn = 0
        self._actions = []
        self._episode_over = False
        self._started = True
        observation, start_info = self._start(self.task)
        observation = sanitize_text(observation, self.max_observation_length)
        self._transcript = [("observation", observation)]
        info = {
            InfoKeys.TASK_ID: self.task_id,
            InfoKeys.EPISODE_SEED: self.episode_seed,
            InfoKeys.SYSTEM_PROMPT: "",
            InfoKeys.TOOLS: [],
            InfoKeys.OBSERVATION_ROLE: "user",
            InfoKeys.TURN: self._turn,
        }
        info.update(start_info)
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Apply ``action``; malformed actions give feedback, never an exception."""
        if not self._started:
            raise ResetNeeded("Call reset() before step().")
        if self._episode_over:
            transition = Transition(
                observation="The episode is over. Call reset() to start a new one.",
                terminated=True,
                action_valid=False,
                feedback="step() after the episode ended",
                evaluation=self.evaluate(),
            )
        elif not isinstance(action, str):
            transition = self._invalid(
                f"Invalid action: expected text, got {type(action).__name__}. Answer with a string."
            )
        elif len(action) > self.max_action_length:
            transition = self._invalid(
                f"Invalid action: it has {len(action)} characters, more than the limit of "
                f"{self.max_action_length}. Answer more briefly."
            )
        else:
            transition = self._act(action)
            self._actions.append(action)
        observation = sanitize_text(transition.observation, self.max_observation_length)
        info = {
            InfoKeys.TASK_ID: self.task_id,
            InfoKeys.EPISODE_SEED: self.episode_seed,
            InfoKeys.OBSERVATION_ROLE: transition.observation_role,
            InfoKeys.FEEDBACK: transition.feedback,
            InfoKeys.ACTION_VALID: transition.action_valid,
            InfoKeys.PROGRESS: transition.progress,
            InfoKeys.TURN: self._turn,
        }
        info.update(transition.info)
        if transition.terminated:
            self._episode_over = True
            evaluation = transition.evaluation or self.evaluate()
            info[InfoKeys.VERDICTS] = evaluation.verdicts
            info[InfoKeys.SUCCESS] = evaluation.success
            if evaluation.progress is not None:
                info[InfoKeys.PROGRESS] = evaluation.progress
        if self.render_mode is not None:
            self._transcript.append(("action", action if isinstance(action, str) else repr(action)))
            self._transcript.append(("observation", observation))
        return observation, float(transition.reward), transition.terminated, False, info

    def render(self) -> str | None:
        """The transcript so far (``ansi``), or print it (``human``)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi'.")
            return None
        lines = [
            f"{'>>>' if kind == 'action' else '<<<'} {text}" for kind, text in self._transcript
        ]
        text = "\n".join(lines)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    # ------------------------------------------------------------------ copies --

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle (and deep-copy) as constructor arguments plus the episode to replay."""
        args, kwargs = getattr(self, "_constructor_arguments", ((), {}))
        snapshot = {
            "episode": (
                (self.task_id, self.episode_seed, list(self._actions)) if self._started else None
            ),
            "np_random": self._np_random,
            "np_random_seed": self._np_random_seed,
            "spaces": (self.observation_space, self.action_space),
            "transcript": list(self._transcript),
            "spec": self.spec,
        }
        return (_rebuild_text_env, (type(self), args, kwargs, snapshot))

    # ------------------------------------------------------------------ helpers --

    def _invalid(self, message: str) -> Transition:
        """A transition that rejects the action and leaves the state unchanged."""
        return Transition(observation=message, action_valid=False, feedback=message)

    def _select_task_index(self, options: Mapping[str, Any]) -> int:
        if "task_id" in options and "task_index" in options:
            raise ValueError("Pass either options['task_id'] or options['task_index'], not both.")
        if "task_id" in options:
            return self.tasks.index_of(str(options["task_id"]))
        if "task_index" in options:
            index = int(options["task_index"])
            if not 0 <= index < len(self.tasks):
                raise ValueError(
                    f"options['task_index']={index} is out of range; "
                    f"this environment has {len(self.tasks)} tasks (0..{len(self.tasks) - 1})."
                )
            return index
        return int(self.np_random.integers(0, len(self.tasks)))


def _rebuild_text_env(
    cls: type[TextEnv], args: tuple[Any, ...], kwargs: dict[str, Any], snapshot: dict[str, Any]
) -> TextEnv:
    """Unpickle a :class:`TextEnv`: construct it again and replay its current episode."""
    env = cls(*args, **kwargs)
    if snapshot["episode"] is not None:
        task_id, episode_seed, actions = snapshot["episode"]
        env.reset(options={"task_id": task_id, "episode_seed": episode_seed})
        for action in actions:
            env.step(action)
    # Replay draws nothing from ``np_random`` (task and seed are given); take over the
    # original's generator so the next ``reset()`` draws the same task and seed.
    env._np_random = snapshot["np_random"]
    env._np_random_seed = snapshot["np_random_seed"]
    env.observation_space, env.action_space = snapshot["spaces"]
    env._transcript = snapshot["transcript"]
    env.spec = snapshot["spec"]
    return env
