"""The registered agentgym ids that tests over "every environment" run on.

Ids are read from the registry at collection time, so environments added later are covered
without editing any test. An id whose constructor requires an argument that its
registration does not supply (``agentgym/Remote-v0`` needs the ``url`` of a running server)
cannot be built on its own; it is listed as a visible skip naming the missing arguments,
never dropped silently.
"""

from __future__ import annotations

import inspect

import gymnasium as gym
import pytest

import agentgym


def missing_arguments(env_id: str) -> list[str]:
    """Constructor arguments without a default that the registration does not supply."""
    spec = gym.registry[env_id]
    entry_point = spec.entry_point
    target = entry_point.resolve() if hasattr(entry_point, "resolve") else entry_point
    if not callable(target):
        return []
    return [
        name
        for name, parameter in inspect.signature(target).parameters.items()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
        and name not in spec.kwargs
    ]


def standalone_env_ids() -> list:
    """Every registered ``agentgym/`` id, as pytest params; unbuildable ones skip visibly."""
    params = []
    for env_id in sorted(agentgym.list_envs(namespace="agentgym")):
        missing = missing_arguments(env_id)
        marks = (
            [pytest.mark.skip(reason=f"{env_id} needs {', '.join(missing)} (a running server)")]
            if missing
            else []
        )
        params.append(pytest.param(env_id, marks=marks, id=env_id))
    return params
