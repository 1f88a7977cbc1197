"""Every shipped config composes with Hydra and passes validation, for every group option."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from agentgym.config import ConfigError, validate_config

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"
GROUPS = sorted(p.name for p in CONFIG_ROOT.iterdir() if p.is_dir() and p.name != "__pycache__")
COMMANDS = ["rollout", "eval", "train"]
# Training needs an engine whose weights it can update.
NOT_FOR_TRAINING = {("engine", "expert"), ("engine", "openai")}
OPTIONS = [
    (command, group, option.stem)
    for command in COMMANDS
    for group in GROUPS
    if f"  - {group}:" in (CONFIG_ROOT / f"{command}.yaml").read_text()
    for option in sorted((CONFIG_ROOT / group).glob("*.yaml"))
    if not (command == "train" and (group, option.stem) in NOT_FOR_TRAINING)
]


@pytest.mark.parametrize(("command", "group", "option"), OPTIONS)
def test_config_option_composes_and_validates(command: str, group: str, option: str) -> None:
    with initialize_config_module("agentgym.configs", version_base="1.3"):
        cfg = compose(config_name=command, overrides=[f"{group}={option}"])
    validate_config(cfg, command)


def test_every_group_option_is_used_by_some_command() -> None:
    used = {(group, option) for _, group, option in OPTIONS}
    shipped = {(g, o.stem) for g in GROUPS for o in (CONFIG_ROOT / g).glob("*.yaml")}
    assert used == shipped


def test_train_config_problems_are_all_listed() -> None:
    with initialize_config_module("agentgym.configs", version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                "trainer=rft",
                "+trainer.iteratons=3",
                "trainer.samples_per_task=0",
                "sft.schedule=linear",
                "engine=expert",
                "training.dtype=fp8",
                "+training.lora.rnak=4",
                "training.lora.dropout=2",
                "trainer.finetune_from=scratch",
                "sft.gradient_checkpointing=maybe",
                "sft.seed=x",
            ],
        )
    with pytest.raises(ConfigError) as excinfo:
        validate_config(cfg, "train")
    text = str(excinfo.value)
    for expected in (
        "Did you mean 'iterations'?",
        "samples_per_task must be >= 1",
        "schedule must be 'cosine' or 'constant'",
        "engine must be 'vllm' or 'hf'",
        "training.dtype='fp8'",
        "unknown key 'training.lora.rnak'. Did you mean 'rank'?",
        "dropout must be in [0, 1)",
        "finetune_from must be one of previous, base",
        "sft.gradient_checkpointing='maybe': expected bool, got str",
        "sft.seed='x': expected int, got str",
    ):
        assert expected in text, expected


@pytest.mark.parametrize("path", sorted(CONFIG_ROOT.rglob("*.yaml")), ids=lambda p: p.name)
def test_every_config_file_starts_with_the_command_that_runs_it(path: Path) -> None:
    header = path.read_text().splitlines()[:8]
    assert any("agentgym " in line for line in header if line.startswith("#")), path


def test_a_typo_fails_with_every_problem_listed() -> None:
    with initialize_config_module("agentgym.configs", version_base="1.3"):
        cfg = compose(
            config_name="rollout",
            overrides=["+episods=3", "engine=vllm", "+engine.kwargs.tensor_paralel_size=2",
                       "env.id=agentgym/Calculater-v0"],
        )  # fmt: skip
    with pytest.raises(ConfigError) as excinfo:
        validate_config(cfg, "rollout")
    problems = excinfo.value.problems
    assert len(problems) == 3
    assert "Did you mean 'episodes'?" in problems[0]
    assert any("Did you mean 'agentgym/Calculator-v0'?" in p for p in problems)
    assert any("Did you mean 'tensor_parallel_size'?" in p for p in problems)


def test_training_parallel_is_checked_at_load() -> None:
    # A typo names the fix; FSDP with LoRA is refused (the adapters leave nothing to shard).
    with initialize_config_module("agentgym.configs", version_base="1.3"):
        fsdp = compose(config_name="train", overrides=["training.parallel=fsdp"])
        typo = compose(config_name="train", overrides=["training.parallel=fdsp"])
        lora = compose(
            config_name="train",
            overrides=["training.parallel=fsdp", "training.lora.enabled=true"],
        )
    validate_config(fsdp, "train")
    with pytest.raises(ConfigError) as excinfo:
        validate_config(typo, "train")
    assert "training.parallel='fdsp' is not known. Did you mean 'fsdp'?" in str(excinfo.value)
    with pytest.raises(ConfigError) as excinfo:
        validate_config(lora, "train")
    assert "training.parallel=fsdp does not support LoRA" in str(excinfo.value)
