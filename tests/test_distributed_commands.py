"""``agentgym rollout`` and ``agentgym eval`` with ``distributed=ray``, as ``train`` uses it.

One local Ray cluster for the module (2 CPUs, 200 MB object store); the commands find it
initialised and use it, as they would a cluster joined with ``distributed.address``. Checks:
the collector really gets the engine replicas and the environment actors; the episodes
equal ``distributed=local``'s for the same seeds (the expert; two replicas of
``tiny-random-llama``, sampling with the collector's seeds); an interrupted rollout closes
its actors and resumes to the same trajectories; bad ``distributed`` settings fail before
Ray starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hydra import compose, initialize_config_module

import agentgym.distributed
from agentgym.commands import run_eval, run_rollout
from agentgym.core.trajectory import Trajectory, TrajectoryStore
from agentgym.distributed import RayEnginePool, RayRuntime, RemoteEnv
from agentgym.preflight import UsageError, check_command_line, run_dir_problems, store_run_config

ray = pytest.importorskip("ray")

TINY = "tiny-random-llama"
# The module's cluster has 2 CPUs: one per HF replica; the environment actors take none.
RAY = ["distributed=ray", "distributed.replicas=2", "distributed.env_workers=2"]


def _config(command: str, run_dir: Path, *overrides: str) -> Any:
    with initialize_config_module("agentgym.configs", version_base="1.3"):
        return compose(command, overrides=[f"run_dir={run_dir}", "progress=false", *overrides])


def _episodes(trajectories: list[Trajectory]) -> list[tuple[Any, ...]]:
    """What the policy did and got (not timings, log-probs or creation times)."""
    return [(t.id, t.task_id, t.episode_seed, [s.action for s in t.steps],
             [s.reward for s in t.steps], t.reward, t.success, t.error)
            for t in trajectories]  # fmt: skip


def _stored(run_dir: Path) -> list[Trajectory]:
    with TrajectoryStore(run_dir / "trajectories.jsonl", readonly=True) as store:
        return sorted(store, key=lambda t: t.id)


# ---------------------------------------------------------------- before Ray starts --


def test_bad_distributed_settings_fail_at_load_time() -> None:
    with pytest.raises(UsageError, match="Did you mean 'replicas'"):
        check_command_line("rollout", "rollout", ["distributed=ray", "++distributed.replica=2"])
    with pytest.raises(UsageError, match="cannot replicate engine=openai"):
        check_command_line("eval", "eval", ["distributed=ray", "engine=openai"])
    with pytest.raises(UsageError, match="critic=oracle runs in this process only"):
        check_command_line("eval", "eval", ["distributed=ray", "critic=oracle"])
    check_command_line("eval", "eval", ["distributed=ray", "engine=expert"])  # accepted


def test_a_rollout_directory_resumes_under_either_layout(tmp_path: Path) -> None:
    # Stored before rollout had the group (no `distributed` key), resumed with distributed=ray.
    stored = {"env": {"id": "agentgym/Calculator-v0", "kwargs": {}}, "seed": 0, "episodes": 4}
    store_run_config(tmp_path, stored)
    ray_config = {**stored, "distributed": {"name": "ray", "replicas": 2}}
    assert run_dir_problems(tmp_path, "rollout", ray_config) == []
    [problem] = run_dir_problems(tmp_path, "rollout", {**ray_config, "seed": 1})
    assert "differs in seed" in problem  # what the episodes are still has to match


def test_the_command_line_refuses_a_bad_cluster_without_starting_one(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "agentgym.cli", "rollout", "distributed=ray",
               "distributed.replicas=0", f"run_dir={tmp_path / 'run'}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "HYDRA_FULL_ERROR": "0"})  # fmt: skip
    assert result.returncode == 2
    assert "replicas must be an integer >= 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr and "Ray" not in result.stderr
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- on a cluster --


class _Recording(RayRuntime):
    """A runtime that keeps what the command built with it, to look at afterwards."""

    opened: ClassVar[list[_Recording]] = []

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.remote_envs: list[Any] = []
        self.pools: list[RayEnginePool] = []
        make = self.env_workers.make

        def recording_make(env_id: str, env_kwargs: Any = None) -> Any:
            self.remote_envs.append(make(env_id, env_kwargs))
            return self.remote_envs[-1]

        self.env_workers.make = recording_make  # type: ignore[method-assign]
        _Recording.opened.append(self)

    def engine_pool(self, *args: Any, **kwargs: Any) -> RayEnginePool:
        self.pools.append(super().engine_pool(*args, **kwargs))
        return self.pools[-1]

    @property
    def closed(self) -> bool:
        return self.env_workers is None and self.engines == []


@pytest.fixture
def recording(ray_cluster, monkeypatch: pytest.MonkeyPatch) -> list[_Recording]:
    _Recording.opened = []
    monkeypatch.setattr(agentgym.distributed, "RayRuntime", _Recording)
    return _Recording.opened


@pytest.mark.slow
def test_an_interrupted_expert_rollout_on_ray_resumes_to_the_local_episodes(
    tmp_path: Path, recording: list[_Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    common = ["env=calculator", "engine=expert", "engine.kwargs.error_rate=0.3", "episodes=6",
              "num_envs=3", "seed=5"]  # fmt: skip
    local = run_rollout(_config("rollout", tmp_path / "local", *common))
    assert recording == []  # distributed=local starts no runtime

    # Killed (Ctrl-C) after 2 stored episodes: the actors are closed all the same.
    append = TrajectoryStore.append

    def interrupted(store: TrajectoryStore, trajectories: Any) -> int:
        if len(store) >= 2:
            raise KeyboardInterrupt
        return append(store, trajectories)

    monkeypatch.setattr(TrajectoryStore, "append", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_rollout(_config("rollout", tmp_path / "ray", *common, *RAY))
    monkeypatch.setattr(TrajectoryStore, "append", append)
    [first] = recording
    assert first.closed and first.pools == []  # the expert needs no engine replicas
    assert len(first.remote_envs) == 3 and all(isinstance(e, RemoteEnv) for e in first.remote_envs)
    assert len(_stored(tmp_path / "ray")) == 2

    resumed = run_rollout(_config("rollout", tmp_path / "ray", *common, *RAY))
    assert resumed["resumed_from"] == 2 and recording[1].closed
    assert _episodes(_stored(tmp_path / "ray")) == _episodes(_stored(tmp_path / "local"))
    assert resumed["success_rate"] == local["success_rate"] < 1.0  # errors were injected
    assert resumed["mean_reward"] == local["mean_reward"]


@pytest.mark.slow
def test_eval_with_two_replicas_gives_the_local_episodes(
    tmp_path: Path, recording: list[_Recording]
) -> None:
    # Sampled, not greedy: the random model's greedy text is a run of newlines, the same
    # everywhere. Each turn's seed comes from the collector, so the split batch samples what
    # one local engine samples.
    common = ["env=calculator", "engine=hf", f"model={TINY}", "sampling=default", "episodes=4",
              "num_envs=4", "sampling.max_tokens=8", "max_turns=2"]  # fmt: skip
    local = run_eval(_config("eval", tmp_path / "local", *common))
    remote = run_eval(_config("eval", tmp_path / "ray", *common, *RAY))
    [runtime] = recording
    assert runtime.closed
    [pool] = runtime.pools
    assert len({p["pid"] for p in pool.placement}) == 2  # two replica processes served it
    assert pool.size == 0  # and were stopped with the runtime
    assert len(runtime.remote_envs) == 4
    episodes = _episodes(_stored(tmp_path / "ray"))
    assert len({tuple(actions) for _, _, _, actions, *_ in episodes}) == 4  # distinct texts
    assert episodes == _episodes(_stored(tmp_path / "local"))
    for key in ("episodes", "success_rate", "mean_reward", "engine", "model", "split"):
        assert remote[key] == local[key], key
    stored = json.loads((tmp_path / "ray" / "eval.json").read_text())
    assert stored["throughput"]["engine_calls"] >= 1
