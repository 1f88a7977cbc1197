"""Registration of agentgym environments with Gymnasium.

Every environment is registered once, by a versioned id, through :func:`register_env`,
which records a one-line description for :func:`list_envs` and wraps the entry point so
that an unknown keyword argument fails with the list of valid ones (and a "did you mean")
instead of a bare ``TypeError``. Entry points are import paths, so registering does not
import heavy environment modules; the module loads on the first ``gymnasium.make``.

Example:
    >>> import gymnasium as gym
    >>> import agentgym
    >>> "agentgym/Calculator-v0" in agentgym.list_envs()
    True
    >>> gym.make("agentgym/Calculator-v0", difficulty="easy").spec.max_episode_steps
    24
    >>> gym.make("agentgym/Calculator-v0", dificulty="easy")
    Traceback (most recent call last):
    ...
    agentgym.core.registry.EnvArgumentError: agentgym/Calculator-v0 got an unknown argument \
'dificulty'. Did you mean 'difficulty'? Valid arguments: ...
    >>> gym.make("agentgym/Calculator-v0", num_tasks="5")
    Traceback (most recent call last):
    ...
    agentgym.core.registry.EnvArgumentError: agentgym/Calculator-v0: num_tasks='5': expected \
int or None, got str
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym

from agentgym.core.arguments import argument_problems
from agentgym.core.wrappers import VERDICTS_AT_TRUNCATION

__all__ = [
    "EnvArgumentError",
    "EnvFactory",
    "check_choice",
    "list_envs",
    "make",
    "register_env",
    "register_tool_env",
    "renamed_argument",
    "reward_range",
]

NAMESPACE = "agentgym"
_DESCRIPTIONS: dict[str, str] = {}
_REWARD_RANGES: dict[str, tuple[float, float]] = {}


class EnvArgumentError(TypeError):
    """Constructor arguments of a registered environment that are unknown or of a wrong type.

    ``gymnasium.make`` re-raises a constructor's ``TypeError`` as ``type(e)(f"{e} was raised
    from the environment creator for <id> with kwargs (...)")``; this class keeps only the
    original sentence, which already names the environment and every bad argument.
    """

    _GYMNASIUM_SUFFIX = " was raised from the environment creator for "

    def __init__(self, message: str) -> None:
        super().__init__(message.split(self._GYMNASIUM_SUFFIX, 1)[0])


class EnvFactory:
    """A picklable entry point that imports the class lazily and checks keyword arguments."""

    def __init__(self, target: str | Callable[..., gym.Env], env_id: str) -> None:
        self.target = target
        self.env_id = env_id

    def resolve(self) -> Callable[..., gym.Env]:
        """The environment class (or factory function) this entry point builds."""
        if callable(self.target):
            return self.target
        module_name, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attribute)

    @property
    def metadata(self) -> Mapping[str, Any]:
        # gymnasium.make reads render modes from the entry point's metadata.
        return getattr(self.resolve(), "metadata", {"render_modes": []})

    def valid_arguments(self) -> list[str]:
        """Keyword arguments the constructor accepts."""
        signature = inspect.signature(self.resolve())
        return [
            name
            for name, parameter in signature.parameters.items()
            if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
        ]

    def argument_problems(
        self, kwargs: Mapping[str, Any], *, prefix: str = "", noun: str = "argument"
    ) -> list[str]:
        """Unknown names and wrong types among constructor ``kwargs`` (empty: all fine).

        Types are read from the constructor's annotations (:mod:`agentgym.core.arguments`),
        so every environment, built in or registered by a user, gets the same checks.
        """
        return argument_problems(self.resolve(), kwargs, prefix=prefix, noun=noun)

    def __call__(self, **kwargs: Any) -> gym.Env:
        target = self.resolve()
        valid = self.valid_arguments()
        unknown = [name for name in kwargs if name not in valid]
        if unknown:
            name = unknown[0]
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise EnvArgumentError(
                f"{self.env_id} got an unknown argument '{name}'.{hint} "
                f"Valid arguments: {', '.join(valid)}"
            )
        wrong_types = self.argument_problems(kwargs)
        if wrong_types:
            raise EnvArgumentError(f"{self.env_id}: {'; '.join(wrong_types)}")
        return target(**kwargs)

    def __repr__(self) -> str:
        return f"EnvFactory({self.target!r})"

    def __eq__(self, other: object) -> bool:
        # Equal after a pickle round trip, so a copied environment's spec equals the original's.
        return (
            isinstance(other, EnvFactory)
            and self.target == other.target
            and self.env_id == other.env_id
        )

    def __hash__(self) -> int:
        return hash((self.env_id, self.target if isinstance(self.target, str) else id(self.target)))


def register_env(
    env_id: str,
    entry_point: str | Callable[..., gym.Env],
    *,
    description: str,
    max_episode_steps: int | None,
    kwargs: Mapping[str, Any] | None = None,
    reward_range: tuple[float, float] | None = None,
    override: bool = False,
) -> None:
    """Register an environment with Gymnasium (and :func:`list_envs`).

    Args:
        env_id: Versioned id, e.g. ``"agentgym/ToolUse-v0"`` or ``"myorg/Shop-v0"``.
        entry_point: ``"module:Class"`` (imported on first make) or a callable.
        description: One line shown by :func:`list_envs`.
        max_episode_steps: Time limit applied by ``gymnasium.make`` (``None``: no limit).
        kwargs: Default constructor arguments (overridable in ``make``).
        reward_range: Smallest and largest total reward of an episode, for every argument
            choice; summaries keep confidence intervals of the mean reward inside it
            (``None``: unknown, intervals are not clipped).
        override: Replace an existing registration with the same id.
    """
    existing = gym.registry.get(env_id)
    if (
        existing is not None
        and not override
        and isinstance(existing.entry_point, EnvFactory)
        and isinstance(entry_point, str)
        and existing.entry_point.target == entry_point
    ):
        # The same module imported twice (e.g. under another name by a test runner).
        return
    if existing is not None and not override:
        raise ValueError(
            f"Environment id {env_id!r} is already registered; pick another id or pass "
            "override=True to replace it."
        )
    if "\n" in description:
        raise ValueError("description must be one line")
    if reward_range is not None and not reward_range[0] <= reward_range[1]:
        raise ValueError(f"reward_range must be (low, high) with low <= high, got {reward_range}")
    gym.register(
        id=env_id,
        entry_point=EnvFactory(entry_point, env_id),
        max_episode_steps=max_episode_steps,
        kwargs=dict(kwargs or {}),
        # Outside TimeLimit: a truncated step reports success and verdicts like an ended one.
        additional_wrappers=(VERDICTS_AT_TRUNCATION,),
    )
    _DESCRIPTIONS[env_id] = description
    if reward_range is None:
        _REWARD_RANGES.pop(env_id, None)
    else:
        _REWARD_RANGES[env_id] = (float(reward_range[0]), float(reward_range[1]))


def reward_range(env_id: str) -> tuple[float, float] | None:
    """The registered range of an episode's total reward (``None``: not declared).

    >>> import agentgym
    >>> reward_range("agentgym/Calculator-v0")
    (0.0, 1.0)
    """
    return _REWARD_RANGES.get(env_id)


def register_tool_env(
    env_id: str,
    *,
    tools: Sequence[Any],
    tasks: Sequence[Any],
    checker: Callable[..., Any],
    description: str,
    max_episode_steps: int = 50,
    override: bool = False,
    **env_kwargs: Any,
) -> None:
    """Register a :class:`~agentgym.core.tool_env.ToolEnv` built from your tools and tasks.

    One call makes ``gymnasium.make(env_id)`` work; ``env_kwargs`` (``turn_checker``,
    ``system_prompt``, ``parser``, ``max_steps_per_turn``, ...) become the defaults.

    Raises:
        ValueError: Listing every problem found at registration: arguments of the wrong
            type, and tasks' ground-truth calls to unknown tools or with arguments the
            tools refuse.

    Example:
        >>> from agentgym import ToolTask, tool, register_tool_env
        >>> @tool
        ... def shout(text: str) -> str:
        ...     '''Upper-case a text.
        ...
        ...     Args:
        ...         text: What to shout.
        ...     '''
        ...     return text.upper()
        >>> register_tool_env(
        ...     "docs/Shout-v0", tools=[shout], description="Shout back.",
        ...     tasks=[ToolTask(id="hi", turns=("Shout 'hi'.",))],
        ...     checker=lambda ep: any(r.result.content == "HI" for r in ep.calls),
        ...     override=True)
        >>> import gymnasium as gym
        >>> gym.make("docs/Shout-v0").reset(seed=0)[0]
        "Shout 'hi'."
    """
    from agentgym.core.tool_env import ToolEnv, ground_truth_problems
    from agentgym.core.tools import ToolSet

    kwargs = {
        "tools": tools if isinstance(tools, ToolSet) else list(tools),
        "tasks": list(tasks),
        "checker": checker,
        **env_kwargs,
    }
    # Checked now, not at the first episode: wrong argument types, then ground-truth calls
    # that name unknown tools or pass arguments the tools refuse (every one listed).
    problems = argument_problems(ToolEnv, kwargs)
    if not problems:
        toolset = kwargs["tools"] if isinstance(tools, ToolSet) else ToolSet(kwargs["tools"])
        problems = ground_truth_problems(toolset, kwargs["tasks"])
    if problems:
        raise ValueError(
            f"cannot register {env_id!r}: {len(problems)} problem(s):\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )
    register_env(
        env_id,
        ToolEnv,
        description=description,
        max_episode_steps=max_episode_steps,
        kwargs=kwargs,
        override=override,
    )


def list_envs(namespace: str | None = None) -> dict[str, str]:
    """Registered agentgym environments (and users' own) with one-line descriptions.

    Args:
        namespace: Only ids in this namespace (e.g. ``"agentgym"``); ``None``: all.
    """
    return {
        env_id: description
        for env_id, description in sorted(_DESCRIPTIONS.items())
        if namespace is None or env_id.startswith(f"{namespace}/")
    }


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make``, with an error listing every registered id for an unknown id."""
    if env_id not in gym.registry:
        known = list(_DESCRIPTIONS) or sorted(gym.registry)
        close = difflib.get_close_matches(env_id, known, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise gym.error.NameNotFound(
            f"Unknown environment id {env_id!r}.{hint} Registered agentgym environments: "
            f"{', '.join(known)}"
        )
    entry_point = gym.spec(env_id).entry_point
    if isinstance(entry_point, EnvFactory):
        # Checked here too: gymnasium.make reads render_mode before calling the entry point.
        problems = entry_point.argument_problems(kwargs)
        if problems:
            raise EnvArgumentError(f"{env_id}: {'; '.join(problems)}")
    return gym.make(env_id, **kwargs)


def renamed_argument(old: str, old_value: Any, new: str, new_value: Any, default: Any) -> Any:
    """The value of an argument renamed from ``old`` to ``new``; the old name warns.

    Environments name one concept the same way (``difficulty`` everywhere); an old name
    keeps working for a while with a ``DeprecationWarning``. Giving both names with
    different values is an error. ``old_value`` is None when the old name was not passed.

    >>> renamed_argument("level", None, "difficulty", "hard", "mixed")
    'hard'
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     renamed_argument("level", "easy", "difficulty", "mixed", "mixed")
    ...     print(caught[0].message)
    'easy'
    level= is deprecated, use difficulty= (same values): difficulty='easy'
    """
    if old_value is None:
        return new_value
    if new_value != default and new_value != old_value:
        raise ValueError(
            f"{old}={old_value!r} and {new}={new_value!r} both given; {old} is the old name "
            f"of {new}: pass only {new}={old_value!r}"
        )
    warnings.warn(
        f"{old}= is deprecated, use {new}= (same values): {new}={old_value!r}",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise ``ValueError`` naming the valid choices when ``value`` is not one of them.

    >>> check_choice("split", "tset", ["train", "test"])
    Traceback (most recent call last):
    ...
    ValueError: split='tset' is not valid. Did you mean 'test'? Valid: 'train', 'test'
    """
    if value in choices:
        return
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{name}={value!r} is not valid.{hint} Valid: {', '.join(map(repr, choices))}")
