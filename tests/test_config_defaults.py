"""Each config default is written once: the YAML in configs/ agrees with the code's defaults.

``agentgym train|rollout|eval`` read the YAML; Python users get the dataclass and
constructor defaults. Every key of every shipped YAML that has a default in code is compared
with it, so the two cannot drift apart (issue 17, item 10). The few deliberate differences
are listed in :data:`DELIBERATE`, each with its reason, and must still be differences.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import yaml

import agentgym  # noqa: F401  (registers the environments)
from agentgym.core.policy import ErrorInjectingExpert
from agentgym.critique.testtime import TestTimeConfig
from agentgym.engines import ENGINES
from agentgym.engines.base import SamplingParams
from agentgym.trainers import TRAINERS
from agentgym.trainers.data_parallel import init_from_environment
from agentgym.trainers.lora import LoRAConfig
from agentgym.trainers.sft import SFTConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

#: (config file, key) -> why the YAML value differs from the code's default on purpose.
DELIBERATE: dict[tuple[str, str], str] = {
    ("train.yaml", "sft.seed"): "null stands for the run's seed, filled in by agentgym train",
    ("sampling/default.yaml", "seed"): "commands seed sampling (repeatable runs); the library "
    "default None draws fresh samples on every call",
    ("sampling/greedy.yaml", "seed"): "as sampling/default.yaml",
    ("sampling/greedy.yaml", "temperature"): "the preset's purpose: greedy decoding",
}

_MISSING = object()


def _load(relative: str) -> dict[str, Any]:
    return yaml.safe_load((CONFIGS / relative).read_text())


def _defaults(target: Callable[..., Any]) -> dict[str, Any]:
    """Default values of a dataclass's fields or a callable's keyword parameters."""
    if dataclasses.is_dataclass(target):
        values = {}
        for field in dataclasses.fields(target):
            if field.default is not dataclasses.MISSING:
                values[field.name] = field.default
            elif field.default_factory is not dataclasses.MISSING:
                values[field.name] = field.default_factory()
        return values
    return {
        name: parameter.default
        for name, parameter in inspect.signature(target).parameters.items()
        if parameter.default is not parameter.empty
    }


def _as_yaml(value: Any) -> Any:
    """A code default as YAML would hold it (tuples are lists, ints equal floats)."""
    return yaml.safe_load(yaml.safe_dump(value)) if not isinstance(value, float) else value


def _compare(
    relative: str,
    prefix: str,
    values: Mapping[str, Any],
    defaults: Mapping[str, Any],
    effective: Callable[[str, Any], Any] | None = None,
) -> Iterator[tuple[str, str, Any, Any]]:
    """(file, key, YAML value, code default) for every key whose values differ."""
    for key, value in values.items():
        default = defaults.get(key, _MISSING)
        if default is _MISSING:
            continue  # no default in code (a required argument): nothing can disagree
        same = _as_yaml(default) == value
        if not same and effective is not None:
            same = effective(key, default) == effective(key, value)
        if not same:
            yield relative, f"{prefix}{key}", value, default


def _env_effective(env_id: str) -> Callable[[str, Any], Any]:
    """The value an environment ends up with for an argument (``None`` often means "all")."""

    def resolve(key: str, value: Any) -> Any:
        env = gym.make(env_id, **{key: value})
        try:
            return _as_yaml(getattr(env.unwrapped, key, _MISSING))
        finally:
            env.close()

    return resolve


def _engine_class(name: str) -> type:
    module, _, attribute = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def _all_differences() -> list[tuple[str, str, Any, Any]]:
    differences: list[tuple[str, str, Any, Any]] = []
    train = _load("train.yaml")
    differences += _compare("train.yaml", "sft.", train["sft"], _defaults(SFTConfig))
    differences += _compare(
        "train.yaml", "training.lora.", train["training"]["lora"], _defaults(LoRAConfig)
    )
    differences += _compare(
        "train.yaml", "expert.", train["expert"], _defaults(ErrorInjectingExpert)
    )
    differences += _compare(  # training.device and training.parallel
        "train.yaml", "training.", train["training"], _defaults(init_from_environment)
    )
    critique = dict(_load("eval.yaml")["critique"])
    critique["ns"] = critique.pop("n")
    differences += _compare("eval.yaml", "critique.", critique, _defaults(TestTimeConfig))
    for path in sorted((CONFIGS / "trainer").glob("*.yaml")):
        config = _load(f"trainer/{path.name}")
        name = config.pop("name")
        differences += _compare(f"trainer/{path.name}", "", config, _defaults(TRAINERS[name][0]))
    for path in sorted((CONFIGS / "engine").glob("*.yaml")):
        config = _load(f"engine/{path.name}")
        target = (
            ErrorInjectingExpert if config["name"] == "expert" else _engine_class(config["name"])
        )
        differences += _compare(
            f"engine/{path.name}", "kwargs.", config["kwargs"], _defaults(target)
        )
    for path in sorted((CONFIGS / "sampling").glob("*.yaml")):
        differences += _compare(
            f"sampling/{path.name}", "", _load(f"sampling/{path.name}"), _defaults(SamplingParams)
        )
    for path in sorted((CONFIGS / "env").glob("*.yaml")):
        config = _load(f"env/{path.name}")
        spec = gym.spec(config["id"])
        defaults = {**_defaults(spec.entry_point.resolve()), **(spec.kwargs or {})}
        differences += _compare(
            f"env/{path.name}", "kwargs.", config["kwargs"], defaults, _env_effective(config["id"])
        )
    return differences


@pytest.fixture(scope="module")
def differences() -> list[tuple[str, str, Any, Any]]:
    return _all_differences()


def test_yaml_and_code_defaults_agree(differences: list[tuple[str, str, Any, Any]]) -> None:
    unexplained = [d for d in differences if (d[0], d[1]) not in DELIBERATE]
    report = "\n".join(
        f"  configs/{file}: {key} = {value!r} in the YAML, {default!r} in the code"
        for file, key, value, default in unexplained
    )
    assert not unexplained, f"config defaults disagree (change one side):\n{report}"


def test_deliberate_differences_are_still_differences(
    differences: list[tuple[str, str, Any, Any]],
) -> None:
    found = {(file, key) for file, key, _, _ in differences}
    assert set(DELIBERATE) <= found, sorted(set(DELIBERATE) - found)


def test_trainer_configs_list_every_field() -> None:
    # A YAML that spells out every field is where a user reads what can be set.
    for path in sorted((CONFIGS / "trainer").glob("*.yaml")):
        config = _load(f"trainer/{path.name}")
        fields = {f.name for f in dataclasses.fields(TRAINERS[config["name"]][0]) if f.init}
        assert fields <= set(config), (path.name, sorted(fields - set(config)))


def test_a_disagreement_is_found() -> None:
    # The comparison itself: a changed YAML value is reported, an equal one is not.
    defaults = {"learning_rate": 2e-5, "epochs": 2, "stop": ()}
    found = list(
        _compare("x.yaml", "sft.", {"learning_rate": 1e-5, "epochs": 2, "stop": []}, defaults)
    )
    assert found == [("x.yaml", "sft.learning_rate", 1e-5, 2e-5)]
