"""Validation of composed Hydra configs, before any environment or model is built.

Each command's config is checked against the keys it may have and the rules for their
values; the environment's and the engine's constructor signatures are checked too. All
problems are collected and raised together in one :class:`ConfigError`, each with the
valid options and a "did you mean" where a key or value is close to a valid one.

Example:
    >>> from omegaconf import OmegaConf
    >>> cfg = OmegaConf.create({
    ...     "env": {"id": "agentgym/Calculator-v0", "kwargs": {}},
    ...     "engine": {"name": "expert", "kwargs": {}}, "model": {"name": "smollm2-135m"},
    ...     "sampling": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 8, "stop": [],
    ...                  "seed": 0},
    ...     "episodes": 0, "seed": 0, "num_envs": 8, "max_turns": None,
    ...     "max_context_tokens": 2048, "run_dir": "x", "progress": True, "epsiodes": 3})
    >>> validate_config(cfg, "rollout")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    agentgym.config.ConfigError: 2 problem(s) in the config:
      - unknown key 'epsiodes'. Did you mean 'episodes'? Valid keys: env, ...
      - episodes=0: must be an integer >= 1
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
from omegaconf import DictConfig, OmegaConf

from agentgym.core.arguments import argument_problems, dataclass_problems, well_typed
from agentgym.core.registry import EnvFactory, list_envs

__all__ = ["COMMAND_KEYS", "ConfigError", "validate_config"]

#: Top-level keys of each command's config.
COMMAND_KEYS: dict[str, tuple[str, ...]] = {
    "rollout": (
        "env", "engine", "model", "sampling", "episodes", "seed", "num_envs", "max_turns",
        "max_context_tokens", "run_dir", "progress", "rollout", "distributed",
    ),
    "train": (
        "env", "engine", "model", "trainer", "sampling", "seed", "num_envs", "max_turns",
        "max_context_tokens", "eval", "expert", "sft", "training", "run_dir", "progress",
        "tensorboard", "wandb", "distributed", "rollout",
    ),
    "eval": (
        "env", "engine", "model", "sampling", "split", "episodes", "seed", "num_envs",
        "max_turns", "max_context_tokens", "run_dir", "progress", "critic", "critique",
        "rollout", "distributed",
    ),
}  # fmt: skip

SAMPLING_KEYS = ("temperature", "top_p", "max_tokens", "stop", "seed")
#: Keys a command's config may leave out (``distributed``: local when absent; ``rollout``:
#: the collector's defaults).
OPTIONAL_KEYS = frozenset({"distributed", "rollout"})
#: Keys of the ``rollout`` section: the collector's scheduling (agentgym.collector).
ROLLOUT_KEYS = ("mode", "env_workers", "gather_seconds")


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
        # Names and types from the constructor's signature (agentgym.core.arguments).
        problems += entry_point.argument_problems(kwargs, prefix="env.kwargs.", noun="key")
    return problems


def engine_problems(engine_cfg: Any) -> list[str]:
    """Problems with an ``engine`` section: a known engine and its constructor arguments."""
    from agentgym.engines import ENGINES

    valid_names = ["expert", *ENGINES]
    if not isinstance(engine_cfg, Mapping):
        return ["engine must be a mapping with keys 'name' and 'kwargs'"]
    problems = _unknown_keys("engine", engine_cfg, ("name", "kwargs"))
    name = engine_cfg.get("name")
    kwargs = engine_cfg.get("kwargs") or {}
    if name not in valid_names:
        close = difflib.get_close_matches(str(name), valid_names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return [
            *problems,
            f"engine.name={name!r} is not known.{hint} Valid: {', '.join(valid_names)}",
        ]
    if name == "expert":
        return problems  # the expert's arguments depend on the environment; checked at build
    module_name, _, class_name = ENGINES[name].partition(":")
    try:
        engine_class = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        return [*problems, f"engine.name={name!r} cannot be used here: {exc}"]
    # `model` (and the OpenAI engine's `tokenizer`) come from the model section.
    problems += argument_problems(
        engine_class, kwargs, prefix="engine.kwargs.", noun="key",
        skip=("model", "tokenizer", "model_instance"),
    )  # fmt: skip
    # Values each engine refuses (a dtype it does not know, a URL without a scheme): checked
    # here so a bad value fails before any model loads, not after minutes of loading.
    check_values = getattr(engine_class, "argument_problems", None)
    if check_values is not None and not problems:
        problems += [f"engine.kwargs: {problem}" for problem in check_values(dict(kwargs))]
    return problems


def model_problems(model_cfg: Any, engine_name: Any) -> list[str]:
    """Problems with a ``model`` section: a registered name or an existing checkpoint dir."""
    from agentgym.models import MODELS, hub_offline, looks_like_hub_id

    if not isinstance(model_cfg, Mapping):
        return ["model must be a mapping with key 'name'"]
    problems = _unknown_keys("model", model_cfg, ("name",))
    name = model_cfg.get("name")
    if engine_name in ("expert", "openai"):
        return problems  # the expert needs no model; a server names its own
    if not isinstance(name, str) or not name:
        return [*problems, f"model.name={name!r}: expected a model name, path or hub id"]
    if name in MODELS:
        return problems
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            problems.append(
                f"model={name}: the directory has no config.json, so it is not a Hugging Face "
                "checkpoint; pass the folder that contains config.json"
            )
        return problems
    if looks_like_hub_id(name) and not hub_offline():
        return problems  # fetched (or refused with what was tried) before any model loads
    close = difflib.get_close_matches(name, list(MODELS), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    hub = (
        " or a hub id (HF_HUB_OFFLINE is set)"
        if looks_like_hub_id(name)
        else " or a hub id like 'HuggingFaceTB/SmolLM2-135M-Instruct'"
    )
    problems.append(
        f"model={name}: not a registered model, and no checkpoint directory {path} exists."
        f"{hint} Use one of {', '.join(MODELS)}, a local checkpoint directory{hub}."
    )
    return problems


def sampling_problems(sampling_cfg: Any) -> list[str]:
    """Problems with a ``sampling`` section (the rules of :class:`SamplingParams`)."""
    from agentgym.engines.base import SamplingParams

    if not isinstance(sampling_cfg, Mapping):
        return ["sampling must be a mapping"]
    problems = _unknown_keys("sampling", sampling_cfg, SAMPLING_KEYS)
    try:
        SamplingParams(**{k: v for k, v in sampling_cfg.items() if k in SAMPLING_KEYS})
    except (ValueError, TypeError) as exc:
        problems.append(f"sampling: {exc}")
    return problems


def trainer_problems(data: Mapping[str, Any]) -> list[str]:
    """Problems with the ``trainer``, ``sft``, ``eval`` and ``training`` sections of ``train``."""
    from agentgym.trainers import TRAINERS
    from agentgym.trainers.fsdp import FSDP_MESSAGE_LORA, PARALLEL_MODES
    from agentgym.trainers.lora import LoRAConfig
    from agentgym.trainers.sft import SFTConfig

    problems: list[str] = []
    trainer = data.get("trainer")
    if not isinstance(trainer, Mapping):
        return ["trainer must be a mapping with a 'name'"]
    name = trainer.get("name")
    if name not in TRAINERS:
        close = difflib.get_close_matches(str(name), list(TRAINERS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return [f"trainer.name={name!r} is not known.{hint} Valid: {', '.join(TRAINERS)}"]
    config_class = TRAINERS[name][0]
    settings = {k: v for k, v in trainer.items() if k != "name"}
    # Names and types first; the dataclass's own checks then see the well-typed values.
    problems += dataclass_problems(config_class, settings, prefix="trainer.")
    try:
        config_class(**well_typed(config_class, settings))
    except (ValueError, TypeError) as exc:
        problems.append(f"trainer: {exc}")
    sft = dict(data.get("sft") or {})
    if sft.get("seed", 0) is None:
        del sft["seed"]  # sft.seed: null means "the run's seed" (filled in by agentgym train)
    problems += dataclass_problems(SFTConfig, sft, prefix="sft.", skip=("progress",))
    try:
        SFTConfig(**well_typed(SFTConfig, sft, skip=("progress",)))
    except (ValueError, TypeError) as exc:
        problems.append(f"sft: {exc}")
    problems += _unknown_keys("eval", data.get("eval") or {}, ("episodes", "split", "temperature"))
    problems += _positive_int(data.get("eval") or {}, "episodes")
    training = data.get("training") or {}
    problems += _unknown_keys("training", training, ("device", "dtype", "parallel", "lora"))
    parallel = training.get("parallel", "replicate")
    if parallel not in PARALLEL_MODES:
        close = difflib.get_close_matches(str(parallel), PARALLEL_MODES, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        problems.append(
            f"training.parallel={parallel!r} is not known.{hint} Valid: "
            f"{', '.join(PARALLEL_MODES)} (how torchrun's ranks share a step: whole "
            "replicas, or FSDP's shards)"
        )
    lora = training.get("lora") or {}
    if not isinstance(lora, Mapping):
        problems.append(f"training.lora must be a mapping, got {lora!r}")
    else:
        problems += dataclass_problems(LoRAConfig, lora, prefix="training.lora.")
        try:
            LoRAConfig(**well_typed(LoRAConfig, lora))
        except (ValueError, TypeError) as exc:
            problems.append(f"training.lora: {exc}")
        if parallel == "fsdp" and lora.get("enabled"):
            problems.append(FSDP_MESSAGE_LORA)
    if training.get("dtype") not in (None, "float32", "bfloat16", "float16"):
        problems.append(
            f"training.dtype={training.get('dtype')!r}: use float32, bfloat16 or float16"
        )
    if data.get("engine", {}).get("name") in ("expert", "openai"):
        problems.append(
            "engine must be 'vllm' or 'hf' for training (the policy's weights must be updated)"
        )
    return problems


def _positive_int(data: Mapping[str, Any], key: str, *, optional: bool = False) -> list[str]:
    if key not in data or (optional and data[key] is None):
        return []
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        suffix = " or null" if optional else ""
        return [f"{key}={value!r}: must be an integer >= 1{suffix}"]
    return []


def rollout_problems(section: Any) -> list[str]:
    """Problems with the optional ``rollout`` section (how the collector schedules episodes).

    Example:
        >>> rollout_problems({"mode": "parallel", "gather_seconds": -1})
        ["rollout.mode='parallel': must be 'async' or 'sync'", 'rollout.gather_seconds=-1: must be a number >= 0']
    """  # noqa: E501
    if section is None:
        return []
    if not isinstance(section, Mapping):
        return [f"rollout must be a mapping with keys {', '.join(ROLLOUT_KEYS)}"]
    problems = _unknown_keys("rollout", section, ROLLOUT_KEYS)
    mode = section.get("mode", "async")
    if mode not in ("async", "sync"):
        problems.append(f"rollout.mode={mode!r}: must be 'async' or 'sync'")
    problems += [f"rollout.{p}" for p in _positive_int(section, "env_workers", optional=True)]
    gather = section.get("gather_seconds", 1.0)
    if isinstance(gather, bool) or not isinstance(gather, (int, float)) or gather < 0:
        problems.append(f"rollout.gather_seconds={gather!r}: must be a number >= 0")
    return problems


def validate_config(cfg: DictConfig | Mapping[str, Any], command: str) -> None:
    """Check a composed config of ``command``; raise :class:`ConfigError` listing every problem."""
    data = _as_dict(cfg)
    valid_keys = COMMAND_KEYS[command]
    problems = _unknown_keys("", data, valid_keys)
    problems += [
        f"missing key '{key}'" for key in valid_keys if key not in data and key not in OPTIONAL_KEYS
    ]
    problems += _positive_int(data, "episodes")
    if "distributed" in data:
        from agentgym.distributed import distributed_problems

        engine = data.get("engine")
        problems += distributed_problems(
            data["distributed"], engine=engine.get("name") if isinstance(engine, Mapping) else None
        )
    problems += env_problems(data.get("env"))
    problems += engine_problems(data.get("engine"))
    engine_name = (
        (data.get("engine") or {}).get("name") if isinstance(data.get("engine"), Mapping) else None
    )
    problems += model_problems(data.get("model"), engine_name)
    problems += sampling_problems(data.get("sampling"))
    if command == "train":
        problems += trainer_problems(data)
    if command == "eval":
        from agentgym.critique.command import critique_config_problems

        problems += critique_config_problems(data)
    problems += _positive_int(data, "num_envs")
    problems += rollout_problems(data.get("rollout"))
    problems += _positive_int(data, "max_turns", optional=True)
    problems += _positive_int(data, "max_context_tokens")
    if "seed" in data and (isinstance(data["seed"], bool) or not isinstance(data["seed"], int)):
        problems.append(f"seed={data['seed']!r}: must be an integer")
    if problems:
        raise ConfigError(problems)
