"""Validation of composed Hydra configs, before any environment or model is built.

Each command's config is checked against a schema of allowed keys and value rules. All
problems are collected and raised together in one :class:`ConfigError`, each with the
valid options and a "did you mean" where a key or value is close to a valid one.

Example:
    >>> from omegaconf import OmegaConf
    >>> cfg = OmegaConf.create({"env": {"id": "agentgym/Calculator-v0", "kwargs": {}},
    ...                         "policy": {"name": "expert", "kwargs": {}},
    ...                         "episodes": 0, "seed": 0, "run_dir": "x", "progress": True,
    ...                         "epsiodes": 3})
    >>> validate_rollout_config(cfg)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    agentgym.config.ConfigError: 2 problem(s) in the config:
      - unknown key 'epsiodes'. Did you mean 'episodes'? Valid keys: env, ...
      - episodes=0: must be an integer >= 1
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

import gymnasium as gym
from omegaconf import DictConfig, OmegaConf

from agentgym.core.registry import EnvFactory, list_envs

__all__ = ["POLICIES", "ConfigError", "validate_rollout_config"]

#: Policies the rollout command can run (language-model engines come with the engine configs).
POLICIES = ("expert",)


class ConfigError(ValueError):
    """A config with one or more problems; the message lists every one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        body = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{len(problems)} problem(s) in the config:\n{body}")


def _unknown_keys(section: str, keys: Iterable[str], valid: Iterable[str]) -> list[str]:
    valid = list(valid)
    problems = []
    for key in keys:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            where = f"{section}." if section else ""
            problems.append(f"unknown key '{where}{key}'.{hint} Valid keys: {', '.join(valid)}")
    return problems


def _as_dict(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        # Leave interpolations such as ${now:...} unresolved: only Hydra can resolve them.
        return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]
    return dict(cfg)


def env_problems(env_cfg: Any) -> list[str]:
    """Problems with an ``env`` section: ``{id, kwargs}`` naming a registered environment."""
    if not isinstance(env_cfg, Mapping):
        return ["env must be a mapping with keys 'id' and 'kwargs'"]
    problems = _unknown_keys("env", env_cfg, ("id", "kwargs"))
    env_id = env_cfg.get("id")
    kwargs = env_cfg.get("kwargs") or {}
    if env_id not in gym.registry:
        known = list(list_envs())
        close = difflib.get_close_matches(str(env_id), known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        problems.append(
            f"env.id={env_id!r} is not registered.{hint} Registered: {', '.join(known)}"
        )
        return problems
    if not isinstance(kwargs, Mapping):
        return [*problems, "env.kwargs must be a mapping of constructor arguments"]
    entry_point = gym.spec(env_id).entry_point
    if isinstance(entry_point, EnvFactory):
        valid = entry_point.valid_arguments()
        problems += _unknown_keys("env.kwargs", kwargs, valid)
    return problems


def validate_rollout_config(cfg: DictConfig | Mapping[str, Any]) -> None:
    """Check a composed ``rollout`` config; raise :class:`ConfigError` listing every problem."""
    data = _as_dict(cfg)
    valid_keys = ("env", "policy", "episodes", "seed", "run_dir", "progress")
    problems = _unknown_keys("", data, valid_keys)
    problems += [f"missing key '{key}'" for key in valid_keys if key not in data]
    problems += env_problems(data.get("env"))
    policy = data.get("policy")
    if not isinstance(policy, Mapping):
        problems.append("policy must be a mapping with keys 'name' and 'kwargs'")
    else:
        problems += _unknown_keys("policy", policy, ("name", "kwargs"))
        if policy.get("name") not in POLICIES:
            problems.append(
                f"policy.name={policy.get('name')!r} is not known; valid: {', '.join(POLICIES)}"
            )
    episodes = data.get("episodes")
    if "episodes" in data and (not isinstance(episodes, int) or episodes < 1):
        problems.append(f"episodes={episodes!r}: must be an integer >= 1")
    if "seed" in data and not isinstance(data.get("seed"), int):
        problems.append(f"seed={data.get('seed')!r}: must be an integer")
    if problems:
        raise ConfigError(problems)
