"""A user's mistake gets one clear message naming the field and the fix, never a traceback.

Covers issue 17, items 4 and 5: wrong value types in ``gymnasium.make`` and ``reset`` and on
the command line, typos in keys and config-group options, engine arguments checked before
any model loads, unusable run directories, and ``model=`` taking a registered name, a
checkpoint directory or a hub id, with the tool-call parser selectable from the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import yaml

import agentgym
from agentgym.cli import main
from agentgym.core.arguments import describe_type, matches_type, parameter_types
from agentgym.core.registry import EnvArgumentError, EnvFactory
from agentgym.core.trajectory import TrajectoryStore
from agentgym.models import resolve_model
from agentgym.preflight import UsageError, rewrite_overrides, run_dir_problems

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"
ENV_IDS = sorted(agentgym.list_envs("agentgym"))
# Values of different types: for each parameter, the first that its annotation refuses.
CANDIDATE_WRONG_VALUES: tuple[Any, ...] = ("5", 5, 2.5, ["x"], {"a": 1}, object())


def _agentgym(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentgym.cli", *args],
        cwd=cwd, capture_output=True, text=True, env={**os.environ, **env}, timeout=300,
    )  # fmt: skip


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def _wrong_value(annotation: Any) -> Any:
    return next(v for v in CANDIDATE_WRONG_VALUES if not matches_type(v, annotation))


# ------------------------------------------------------------------ gymnasium.make / reset


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_argument_of_every_environment_refuses_a_wrong_type(env_id: str) -> None:
    factory = gym.spec(env_id).entry_point
    assert isinstance(factory, EnvFactory)
    parameters = parameter_types(factory.resolve())
    assert parameters, env_id
    for name, annotation in parameters.items():
        value = _wrong_value(annotation)
        # gymnasium.make reads render_mode itself before calling the entry point;
        # agentgym.make checks every argument first.
        make = agentgym.make if name == "render_mode" else gym.make
        with pytest.raises(EnvArgumentError) as excinfo:
            make(env_id, **{name: value})
        message = str(excinfo.value)
        assert message.startswith(f"{env_id}: {name}="), message
        assert f": expected {describe_type(annotation)}, got {type(value).__name__}" in message
        assert "was raised from the environment creator" not in message


def test_the_issue_examples_name_the_field_and_the_type() -> None:
    with pytest.raises(TypeError, match=r"difficulty=3: expected str, got int"):
        gym.make("agentgym/Calculator-v0", difficulty=3)
    with pytest.raises(TypeError, match=r"num_tasks='5': expected int or None, got str"):
        gym.make("agentgym/ToolUse-v0", num_tasks="5")
    env = gym.make("agentgym/Calculator-v0")
    with pytest.raises(TypeError, match=r"options\['episode_seed'\]='abc': expected int or None"):
        env.reset(options={"episode_seed": "abc"})
    with pytest.raises(TypeError, match=r"options\['task_index'\]='0': expected int, got str"):
        env.reset(options={"task_index": "0"})
    observation, info = env.reset(options={"task_index": 0, "episode_seed": 7})
    assert info["episode_seed"] == 7 and observation


@pytest.mark.parametrize("path", sorted((CONFIG_ROOT / "env").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_env_configs_pass_the_type_check(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    assert gym.spec(config["id"]).entry_point.argument_problems(config["kwargs"]) == []


# ------------------------------------------------------------------ the command line


def test_a_wrong_type_on_the_command_line_is_one_line_with_exit_code_2(tmp_path: Path) -> None:
    result = _agentgym(
        "train", "engine=hf", "model=tiny-random-llama", "sft.learning_rate=abc",
        f"run_dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "sft.learning_rate='abc': expected float, got str" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # checked before Hydra creates the run directory


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("rollout", "env.kwargs.num_tasks='5'"), "env.kwargs.num_tasks='5': expected int or None"),
        (("rollout", "env.kwargs.difficulty=3"), "env.kwargs.difficulty=3: expected str, got int"),
        (("rollout", "epsiodes=3"), "unknown key 'epsiodes'. Did you mean 'episodes'? Valid keys:"),
        (("rollout", "sampling.temprature=1"), "Did you mean 'temperature'? Valid keys: temp"),
        (("rollout", "env.kwargs.dificulty=easy"), "Did you mean 'difficulty'? Valid keys: split"),
        (("train", "trainer=rtf"), "trainer=rtf is not a trainer config. Did you mean 'rft'?"),
        (("train", "trainer=sft,rtf", "-m"), "trainer=rtf is not a trainer config"),
        (
            ("eval", "env=calculatr"),
            "env=calculatr is not an env config. Did you mean 'calculator'",
        ),
        (("train", "trainer.iteratons=2"), "unknown key 'trainer.iteratons'. Did you mean 'iter"),
        (("train", "training.lora.rank=big"), "training.lora.rank='big': expected int, got str"),
        (("eval", "episodes=5000"), "episodes=5000 but split 'test' has only 1000 tasks"),
        (("rollout", "env.kwargs.domains=[a,b"), "cannot read the override 'env.kwargs.doma"),
        (("rollout", "-m", "--cfg", "job"), "-m and --cfg cannot be combined: pass one of"),
    ],
)
def test_command_line_mistakes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    code, err = _run(capsys, *args, "engine=hf", "model=tiny-random-llama",
                     f"run_dir={tmp_path / 'run'}")  # fmt: skip
    assert code == 2
    assert expected in err, err
    assert err.startswith(f"agentgym {args[0]}: ")
    assert not (tmp_path / "run").exists()


def test_constructor_arguments_need_no_plus(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # num_tasks is not in configs/env/calculator.yaml; the parser is, with react by name.
    code, err = _run(
        capsys, "rollout", "env.kwargs.num_tasks=3", "env.kwargs.parser=react", "episodes=3",
        "progress=false", f"run_dir={tmp_path}",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["success_rate"] == 1.0
    with TrajectoryStore(tmp_path / "trajectories.jsonl", readonly=True) as store:
        actions = [m.content for t in store for m in t.messages if m.role == "assistant"]
    assert any(a.startswith("Action: Finish[") for a in actions)
    assert yaml.safe_load((CONFIG_ROOT / "env" / "calculator.yaml").read_text())["kwargs"]["parser"]


@pytest.mark.parametrize("parser", ["python", "react", "think_answer"])
def test_tooluse_parser_is_selectable_by_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, parser: str
) -> None:
    code, err = _run(capsys, "rollout", "env=tooluse", f"env.kwargs.parser={parser}",
                     "episodes=2", "progress=false", f"run_dir={tmp_path}")  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "summary.json").read_text())["success_rate"] == 1.0


def test_engine_arguments_are_checked_before_any_model_loads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, err = _run(
        capsys, "rollout", "engine=hf", "engine.kwargs.dtype=fp8", "engine.kwargs.max_batch_size=0",
        "model=tiny-random-llama", f"run_dir={tmp_path / 'r'}",
    )  # fmt: skip
    assert code == 2
    assert "dtype='fp8' is not known; valid: auto, bf16" in err
    assert "max_batch_size=0: must be >= 1" in err
    code, err = _run(
        capsys, "rollout", "engine=openai", "engine.kwargs.base_url=localhost:8000",
        "engine.kwargs.timeout=fast", f"run_dir={tmp_path / 'r'}",
    )  # fmt: skip
    assert code == 2
    assert "engine.kwargs.timeout='fast': expected float, got str" in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("rollout", "engine.kwargs.eror_rate=0.1"), "unknown key 'engine.kwargs.eror_rate'. Did"),
        (("rollout", "env=travelplanner", "engine.kwargs.error_rate=abc"),
         "engine.kwargs.error_rate='abc': expected float, got str"),
        (("train", "engine=hf", "model=tiny-random-llama", "expert.eror_rate=0.1"),
         "unknown key 'expert.eror_rate'. Did you mean 'error_rate'?"),
        (("rollout", "engine=vllm", "engine.kwargs.dtype=fp8"), "dtype='fp8' is not known"),
        (("rollout", "engine=vllm", "engine.kwargs.gpu_memory_utilization=2"),
         "gpu_memory_utilization=2: must be in (0, 1]"),
    ],
)  # fmt: skip
def test_expert_and_vllm_arguments_are_checked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    code, err = _run(capsys, *args, f"run_dir={tmp_path / 'run'}")
    assert code == 2
    assert expected in err, err


# ------------------------------------------------------------------ run directories


def test_run_dir_that_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a directory")
    code, err = _run(capsys, "rollout", f"run_dir={tmp_path / 'taken'}")
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "is a file, not a directory; pass run_dir=" in err
    code, err = _run(capsys, "eval", f"run_dir={tmp_path / 'taken' / 'below'}")
    assert code == 2 and "is a file, so the directory cannot be created" in err


@contextlib.contextmanager
def _read_only_directory(path: Path) -> Iterator[None]:
    """``path`` made unwritable, for root too (which ignores permission bits): immutable."""
    path.chmod(0o555)
    immutable = os.geteuid() == 0 and shutil.which("chattr") is not None
    if immutable:
        immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


def test_run_dir_that_is_read_only(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    with _read_only_directory(locked):
        try:
            tempfile.mkdtemp(dir=locked)
        except OSError:
            pass
        else:
            pytest.skip("cannot make a directory read-only here (root without chattr)")
        code, err = _run(capsys, "rollout", f"run_dir={locked / 'run'}")
    assert code == 2
    assert f"run_dir={locked / 'run'} is not writable ({locked} is read-only); pass " in err


def test_busy_rollout_run_dir(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with TrajectoryStore(tmp_path / "trajectories.jsonl"):  # another run writing
        code, err = _run(capsys, "rollout", "episodes=2", f"run_dir={tmp_path}")
    assert code == 2
    assert "is in use by another run (it holds the lock); wait for it" in err
    code, err = _run(capsys, "rollout", "episodes=2", "progress=false", f"run_dir={tmp_path}")
    assert code == 0, err


def _train_config(run_dir: Path) -> dict[str, Any]:
    """The resolved train config for ``run_dir``, composed as the CLI composes it."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    overrides = rewrite_overrides("train", ["engine=hf", f"run_dir={run_dir}"])
    with initialize_config_module("agentgym.configs", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def test_busy_or_different_train_run_dir(tmp_path: Path) -> None:
    from agentgym.trainers.run import RunDir

    config = _train_config(tmp_path)
    run = RunDir(tmp_path, config=config, tensorboard=False)  # another run writing
    try:
        assert "is in use by another run" in run_dir_problems(tmp_path, "train", config)[0]
    finally:
        run.close()
    assert run_dir_problems(tmp_path, "train", config) == []
    (problem,) = run_dir_problems(tmp_path, "train", {**config, "seed": 5})
    assert "was started with a different config (differs in seed); resume" in problem


def _drop(config: dict[str, Any], *dotted: str) -> dict[str, Any]:
    """A copy of ``config`` without the dotted keys: a config stored by an older agentgym."""
    import copy

    old = copy.deepcopy(config)
    for key in dotted:
        *parents, leaf = key.split(".")
        node = old
        for parent in parents:
            node = node[parent]
        del node[leaf]
    return old


def test_a_train_run_started_before_a_config_key_existed_resumes_at_its_default(
    tmp_path: Path,
) -> None:
    from agentgym.preflight import PRE_UPGRADE_CONFIG, check_command_line

    overrides = rewrite_overrides("train", ["engine=hf", f"run_dir={tmp_path}"])
    old = _drop(_train_config(tmp_path), "rollout", "training.parallel", "distributed")
    original = yaml.safe_dump(old, sort_keys=False)
    (tmp_path / "config.yaml").write_text(original)

    (note,) = check_command_line("train", "train", overrides)

    assert "was started before agentgym had distributed.name, rollout." in note
    assert "training.parallel; resuming with their defaults" in note
    stored = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert stored["rollout"]["mode"] == "async" and stored["training"]["parallel"] == "replicate"
    assert (tmp_path / PRE_UPGRADE_CONFIG).read_text() == original
    assert run_dir_problems(tmp_path, "train", _train_config(tmp_path)) == []
    assert check_command_line("train", "train", overrides) == []  # already upgraded


def test_a_new_key_set_off_its_default_still_refuses_an_older_run_dir(tmp_path: Path) -> None:
    from agentgym.preflight import PRE_UPGRADE_CONFIG, check_command_line

    old = _drop(_train_config(tmp_path), "rollout")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    overrides = rewrite_overrides(
        "train", ["engine=hf", f"run_dir={tmp_path}", "rollout.mode=sync"]
    )
    with pytest.raises(UsageError, match=r"differs in rollout\.mode\)"):
        check_command_line("train", "train", overrides)
    stored = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert "mode" not in stored["rollout"]  # the other rollout keys are at their defaults
    assert (tmp_path / PRE_UPGRADE_CONFIG).exists()


def test_a_rollout_run_dir_from_an_older_agentgym_resumes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = ("rollout", "episodes=2", "progress=false", f"run_dir={tmp_path}")
    assert _run(capsys, *base)[0] == 0
    stored = yaml.safe_load((tmp_path / "config.yaml").read_text())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_drop(stored, "rollout")))
    code, err = _run(capsys, *base, "episodes=3")
    assert code == 0, err
    assert "was started before agentgym had rollout.env_workers" in err
    assert len((tmp_path / "trajectories.jsonl").read_text().splitlines()) == 3


def test_resuming_a_rollout_with_another_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = ("rollout", "episodes=2", "progress=false", f"run_dir={tmp_path}")
    assert _run(capsys, *base)[0] == 0
    assert _run(capsys, *base, "episodes=3")[0] == 0  # more episodes: a resume
    code, err = _run(capsys, *base, "env.kwargs.difficulty=hard", "seed=4")
    assert code == 2
    assert "was started with a different config (differs in env.kwargs.difficulty, seed)" in err


# ------------------------------------------------------------------ model=


def test_model_overrides_are_rewritten() -> None:
    assert rewrite_overrides("eval", ["model=tiny-random-llama"]) == ["model=tiny-random-llama"]
    assert rewrite_overrides("eval", ["model=runs/x/checkpoints/iter-2"]) == [
        "model.name=runs/x/checkpoints/iter-2"
    ]
    assert rewrite_overrides("train", ["model=HuggingFaceTB/SmolLM2-135M"]) == [
        "model.name=HuggingFaceTB/SmolLM2-135M"
    ]
    assert rewrite_overrides("rollout", ["-m", "model=tiny-random-llama,/ckpt a"]) == [
        "-m", "model.name=tiny-random-llama,'/ckpt a'"
    ]  # fmt: skip
    with pytest.raises(UsageError, match="Did you mean 'greedy'"):
        rewrite_overrides("eval", ["sampling=gredy"])


@pytest.mark.parametrize("command", ["rollout", "eval"])
def test_model_takes_a_checkpoint_directory(tmp_path: Path, command: str) -> None:
    checkpoint = resolve_model("tiny-random-llama")
    result = _agentgym(
        command, "engine=hf", f"model={checkpoint}", "episodes=1", "num_envs=1", "max_turns=1",
        "sampling.max_tokens=4", "progress=false", f"run_dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = "summary.json" if command == "rollout" else "eval.json"
    assert json.loads((tmp_path / "run" / report).read_text())["model"] == str(checkpoint)


def test_train_accepts_a_checkpoint_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from agentgym.preflight import check_command_line

    checkpoint = resolve_model("tiny-random-llama")
    overrides = rewrite_overrides(
        "train", ["engine=hf", f"model={checkpoint}", f"run_dir={tmp_path / 'run'}"]
    )
    check_command_line("train", "train", overrides)  # composes and validates: no error
    code, err = _run(capsys, "train", "engine=hf", f"model={tmp_path / 'missing'}")
    assert code == 2 and f"no checkpoint directory {tmp_path / 'missing'} exists" in err
    (tmp_path / "empty").mkdir()
    code, err = _run(capsys, "train", "engine=hf", f"model={tmp_path / 'empty'}")
    assert code == 2 and "the directory has no config.json" in err


def test_a_hub_id_is_refused_clearly_when_the_hub_is_off(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = _run(capsys, "rollout", "engine=hf", "model=SomeOrg/some-model",
                     f"run_dir={tmp_path / 'r'}")  # fmt: skip
    assert code == 2
    assert "model=SomeOrg/some-model: not a registered model" in err
    assert "a hub id (HF_HUB_OFFLINE is set)" in err
