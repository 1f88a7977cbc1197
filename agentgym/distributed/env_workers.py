"""Environment copies hosted in Ray actors, used through ordinary Gymnasium environments.

:class:`RayEnvWorkers` starts ``workers`` :class:`EnvHost` actors and builds environment
copies in them, round robin. Each copy is driven through a :class:`RemoteEnv`, a
``gymnasium.Env`` whose ``reset`` and ``step`` run in the actor (the real environment there
is built by ``gymnasium.make``, with its time limit and checkers). ``env.unwrapped`` reads
attributes of the remote environment and calls its methods (``tasks``, ``task``,
``evaluate()``); ``make_expert()`` builds the scripted expert in the actor, beside the
environment state it reads. So the collector works on it unchanged. An exception inside
the remote environment is raised by ``RemoteEnv`` as the same exception type, and the
collector records it in the episode as for a local one.

Pass the workers as the collector's ``env_factory``: the collector's worker threads then
wait on the actors in parallel, so slow environments (the code sandbox, a search backend)
run beside generation on other cores or other machines.

Example:
    >>> RemoteEnv.__mro__[1].__name__
    'Env'
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym

from agentgym.core.policy import ScriptedPolicy

__all__ = ["EnvHost", "RayEnvWorkers", "RemoteEnv"]

logger = logging.getLogger(__name__)


class EnvHost:
    """Environment copies in one Ray actor, addressed by integer keys."""

    def __init__(self) -> None:
        self._envs: dict[int, gym.Env] = {}
        self._experts: dict[int, ScriptedPolicy] = {}
        self._next_key = 0

    def make(self, env_id: str, env_kwargs: Mapping[str, Any]) -> tuple[int, Any, Any, dict]:
        """Build a copy; its key, spaces and metadata."""
        env = gym.make(env_id, **dict(env_kwargs))
        key, self._next_key = self._next_key, self._next_key + 1
        self._envs[key] = env
        return key, env.observation_space, env.action_space, dict(env.metadata)

    def reset(self, key: int, seed: int | None, options: dict[str, Any] | None) -> Any:
        return self._envs[key].reset(seed=seed, options=options)

    def step(self, key: int, action: Any) -> Any:
        return self._envs[key].step(action)

    def _resolve(self, key: int, path: tuple[str, ...]) -> Any:
        value = self._envs[key].unwrapped
        for name in path:
            value = getattr(value, name)
        return value

    def inspect(self, key: int, path: tuple[str, ...]) -> tuple[str, Any]:
        """What ``env.unwrapped.<path>`` is: ``("method", None)``, ``("value", v)``, or
        ``("object", None)`` for a value that cannot be sent (read it through its path)."""
        value = self._resolve(key, path)
        if callable(value):
            return "method", None
        try:
            pickle.dumps(value)
        except Exception:  # e.g. a task set with per-instance caches
            return "object", None
        return "value", value

    def call(self, key: int, path: tuple[str, ...], args: tuple, kwargs: dict[str, Any]) -> Any:
        """``env.unwrapped.<path>(*args, **kwargs)``; ``path`` may end in ``__len__`` etc."""
        return self._resolve(key, path)(*args, **kwargs)

    def make_expert(self, key: int, kwargs: dict[str, Any]) -> str:
        """Build the copy's scripted expert here, beside the environment it reads."""
        expert = self._envs[key].unwrapped.make_expert(**kwargs)
        self._experts[key] = expert
        return expert.name

    def expert_reset(self, key: int, observation: str, info: dict[str, Any]) -> None:
        self._experts[key].reset(self._envs[key], observation, info)

    def expert_act(self, key: int, observation: str, info: dict[str, Any]) -> str:
        return self._experts[key].act(observation, info)

    def close(self, key: int) -> None:
        self._experts.pop(key, None)
        env = self._envs.pop(key, None)
        if env is not None:
            env.close()


class _RemoteObject:
    """An object in the actor, reached through its attribute path from ``env.unwrapped``.

    Reading an attribute sends its value when it can travel, else another path proxy;
    calling a method, ``len()`` and indexing run in the actor.
    """

    def __init__(self, env: RemoteEnv, path: tuple[str, ...]) -> None:
        self._env = env
        self._path = path

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        path = (*self._path, name)
        kind, value = self._env._call("inspect", path)
        if kind == "value":
            return value
        if kind == "object":
            return _RemoteObject(self._env, path)

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._env._call("call", path, args, kwargs)

        method.__name__ = name
        return method

    def __len__(self) -> int:
        return self._env._call("call", (*self._path, "__len__"), (), {})

    def __getitem__(self, index: Any) -> Any:
        return self._env._call("call", (*self._path, "__getitem__"), (index,), {})


class _RemoteUnwrapped(_RemoteObject):
    """``RemoteEnv.unwrapped``: the remote environment's attributes and methods."""

    def __init__(self, env: RemoteEnv) -> None:
        super().__init__(env, ())

    def make_expert(self, **kwargs: Any) -> ScriptedPolicy:
        """The environment's expert, run in the actor (it reads the environment's state)."""
        return _RemoteExpert(self._env, kwargs)


class _RemoteExpert(ScriptedPolicy):
    """A scripted expert living in the actor beside its environment copy."""

    def __init__(self, env: RemoteEnv, kwargs: dict[str, Any]) -> None:
        self._env = env
        self.name = env._call("make_expert", kwargs)  # type: ignore[misc]

    def reset(self, env: Any, observation: str, info: Mapping[str, Any]) -> None:
        self._env._call("expert_reset", observation, dict(info))

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        return self._env._call("expert_act", observation, dict(info))


class RemoteEnv(gym.Env):
    """A Gymnasium environment whose copy lives in an :class:`EnvHost` actor.

    Args:
        host: The actor handle.
        key: The copy's key in the actor.
        observation_space / action_space / metadata: The remote environment's.
    """

    def __init__(
        self, host: Any, key: int, observation_space: Any, action_space: Any, metadata: dict
    ) -> None:
        self._host = host
        self._key = key
        self.observation_space = observation_space
        self.action_space = action_space
        self.metadata = metadata
        self._closed = False

    def _call(self, method: str, *args: Any) -> Any:
        import ray

        if self._closed:
            raise RuntimeError("this RemoteEnv is closed")
        # A remote exception comes back as an instance of its own type too (ValueError, ...).
        return ray.get(getattr(self._host, method).remote(self._key, *args))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        return self._call("reset", seed, options)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        return self._call("step", action)

    @property
    def unwrapped(self) -> Any:  # type: ignore[override]
        return _RemoteUnwrapped(self)

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._call("close")
        except Exception as exc:  # the actor may already be gone
            logger.debug("closing a remote environment failed: %s", exc)
        self._closed = True


class RayEnvWorkers:
    """``workers`` actors that host environment copies; call it like ``gym.make``.

    Args:
        workers: Number of :class:`EnvHost` actors; copies are spread round robin.
        cpus_per_worker: CPUs Ray reserves per actor (0: environments mostly wait, and
            the replicas keep the cores).

    Ray must be initialised (:func:`agentgym.distributed.start_ray`).
    """

    def __init__(self, workers: int = 2, *, cpus_per_worker: float = 0) -> None:
        import ray

        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        host_class = ray.remote(EnvHost)
        self._hosts = [host_class.options(num_cpus=cpus_per_worker).remote()
                       for _ in range(workers)]  # fmt: skip
        self._next = 0

    @property
    def factory(self) -> Callable[[str, dict[str, Any]], gym.Env]:
        """The collector's ``env_factory``."""
        return self.make

    def make(self, env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> RemoteEnv:
        """A new copy of ``env_id`` in the next actor."""
        import ray

        host = self._hosts[self._next % len(self._hosts)]
        self._next += 1
        key, observation_space, action_space, metadata = ray.get(
            host.make.remote(env_id, dict(env_kwargs or {}))
        )
        return RemoteEnv(host, key, observation_space, action_space, metadata)

    def close(self) -> None:
        """Stop the actors and the copies in them (idempotent)."""
        import ray

        hosts, self._hosts = self._hosts, []
        for host in hosts:
            ray.kill(host)
