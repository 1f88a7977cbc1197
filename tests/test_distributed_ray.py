"""distributed=ray on a local CPU cluster: engine replicas, weight broadcast, remote envs.

Two replicas of ``tiny-random-llama`` on the HF engine (the cluster gets 2 CPUs and a
200 MB object store). Checks: completions come back in prompt order and greedy ones equal a
local engine's; a stale replica fails the weight-sync probe and every replica passes it
after the broadcast; environments in actors give the local trajectories; ``agentgym train
distributed=ray`` trains, writes the run directory and resumes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.distributed import (
    DistributedConfig,
    RayEnvWorkers,
    distributed_problems,
    split_evenly,
    weight_chunks,
)
from agentgym.engines.base import SamplingParams
from agentgym.models import resolve_model

ray = pytest.importorskip("ray")

TINY = "tiny-random-llama"


# ---------------------------------------------------------------- without a cluster --


def test_split_evenly_covers_in_order() -> None:
    for count in range(0, 9):
        for parts in range(1, 5):
            ranges = split_evenly(count, parts)
            covered = [i for start, stop in ranges for i in range(start, stop)]
            assert covered == list(range(count))
            sizes = [stop - start for start, stop in ranges]
            assert max(sizes) - min(sizes) <= 1


def test_weight_chunks_keep_every_tensor_under_the_bound() -> None:
    state = {f"w{i}": torch.full((i + 1, 4), float(i)) for i in range(6)}
    chunks = weight_chunks(state, max_bytes=64)
    assert [name for chunk in chunks for name in chunk] == list(state)
    for chunk in chunks:
        size = sum(t.numel() * t.element_size() for t in chunk.values())
        assert size <= 64 or len(chunk) == 1


def test_distributed_config_problems_are_listed() -> None:
    assert distributed_problems({"name": "ray", "replicas": 2}) == []
    problems = distributed_problems({"name": "ray", "replica": 2, "object_store_mb": 10})
    assert any("Did you mean 'replicas'" in p for p in problems)
    assert any("object_store_mb must be >= 75" in p for p in problems)
    with pytest.raises(ValueError, match="replicas must be an integer >= 1"):
        DistributedConfig(name="ray", replicas=0)


# ---------------------------------------------------------------- the command --

TRAIN = [
    "trainer=sft", "env=calculator", f"model={TINY}", "engine=hf", "num_envs=4",
    "sampling.max_tokens=12", "eval.episodes=4", "sft.epochs=1", "sft.learning_rate=1e-3",
    "trainer.train_tasks=6", "progress=false", "tensorboard=false", "distributed=ray",
    "distributed.num_cpus=2", "distributed.object_store_mb=200",
]  # fmt: skip


def _train(run_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "agentgym.cli", "train", *TRAIN, f"run_dir={run_dir}", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=900,
                          cwd=run_dir.parent)  # fmt: skip


@pytest.mark.slow
def test_train_with_ray_replicas_syncs_and_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "ray-sft"
    result = _train(run_dir)
    assert result.returncode == 0, result.stderr[-4000:]
    ledger = [json.loads(line) for line in (run_dir / "ledger.jsonl").open()]
    assert {(r["phase"], r["iteration"]) for r in ledger} >= {("eval", 0), ("train", 1),
                                                              ("eval", 1)}  # fmt: skip
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    syncs = [m["sync/max_abs_logprob_diff"] for m in metrics if "sync/max_abs_logprob_diff" in m]
    assert syncs and max(syncs) < 1e-3  # both replicas serve the fine-tuned weights
    with (run_dir / "trajectories" / "expert.jsonl").open() as store:
        assert sum(1 for _ in store) == 6
    summary = json.loads((run_dir / "summary.json").read_text())
    # Resuming the finished run does nothing again and reports the same rows.
    again = _train(run_dir)
    assert again.returncode == 0, again.stderr[-4000:]
    assert [json.loads(line) for line in (run_dir / "ledger.jsonl").open()] == ledger
    assert json.loads((run_dir / "summary.json").read_text())["rows"] == summary["rows"]


# ---------------------------------------------------------------- in-process cluster --


@pytest.fixture(scope="module")
def pool(ray_cluster):
    from agentgym.distributed import RayEnginePool

    engine = RayEnginePool("hf", {"model": TINY}, replicas=2, weight_chunk_mb=1)
    yield engine
    engine.close()


@pytest.mark.slow
def test_pool_generates_in_prompt_order_like_a_local_engine(pool) -> None:
    from agentgym.engines.hf import HFEngine

    local = HFEngine(TINY)
    prompts = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10], [11, 12]]
    greedy = SamplingParams(temperature=0.0, max_tokens=6)
    # One prompt per call: the same single-row batch locally and in a replica.
    for prompt in prompts:
        [[remote]] = pool.generate([prompt], greedy)
        [[expected]] = local.generate([prompt], greedy)
        assert remote.token_ids == expected.token_ids
        assert remote.logprobs == pytest.approx(expected.logprobs, abs=1e-5)
    # A batch is split over both replicas and comes back in order, reproducibly.
    sampled = SamplingParams(temperature=1.0, max_tokens=6, prompt_seeds=(1, 2, 3, 4, 5))
    first = pool.generate(prompts, sampled)
    assert len(first) == len(prompts) and all(len(c) == 1 for c in first)
    assert [c[0].token_ids for c in pool.generate(prompts, sampled)] == [
        c[0].token_ids for c in first
    ]
    # Per-prompt seeds: the split batch samples what one local engine samples.
    expected = local.generate(prompts, sampled)
    assert [c[0].token_ids for c in first] == [c[0].token_ids for c in expected]
    placements = {p["pid"] for p in pool.placement}
    assert len(placements) == 2  # two actor processes


@pytest.mark.slow
def test_replicas_the_cluster_cannot_place_are_refused_at_once(pool) -> None:
    from agentgym.distributed import RayEnginePool

    with pytest.raises(RuntimeError, match=r"need 2 CPUs .* has 0 CPUs"):
        RayEnginePool("hf", {"model": TINY}, replicas=2)


@pytest.mark.slow
def test_weight_broadcast_reaches_every_replica_and_is_verified(pool) -> None:
    from transformers import AutoModelForCausalLM

    from agentgym.trainers.sync import WeightSyncError, verify_weight_sync

    model = AutoModelForCausalLM.from_pretrained(resolve_model(TINY))
    tokenizer = pool.tokenizer
    assert verify_weight_sync(pool, model, tokenizer)["replicas"] == 2
    with torch.no_grad():  # an update the replicas have not received
        for parameter in model.parameters():
            parameter.mul_(1.5)
    with pytest.raises(WeightSyncError, match="replica"):
        verify_weight_sync(pool, model, tokenizer)
    pool.update_weights(model)  # 1 MB pieces: many puts, each read by both replicas
    check = verify_weight_sync(pool, model, tokenizer)
    assert check["replicas"] == 2 and check["max_abs_diff"] < 1e-4


@pytest.mark.slow
def test_environments_in_actors_give_the_local_trajectories(ray_cluster) -> None:
    workers = RayEnvWorkers(2)
    specs = [EpisodeSpec(f"ep-{i}", seed=i) for i in range(5)]
    try:
        remote = RollouterPair(workers)
        local_runs, remote_runs = remote.run(specs)
    finally:
        workers.close()

    def content(trajectory):
        return {k: v for k, v in trajectory.to_dict().items() if k != "created_at"}

    assert [content(t) for t in remote_runs] == [content(t) for t in local_runs]
    assert all(t.success for t in remote_runs)


class RollouterPair:
    """The same expert episodes collected with local and with remote environment copies."""

    def __init__(self, workers: RayEnvWorkers) -> None:
        options = {"engine": None, "num_envs": 3, "env_kwargs": {"num_tasks": 20}}
        self.local = RolloutCollector("agentgym/Calculator-v0", **options)
        self.remote = RolloutCollector("agentgym/Calculator-v0", env_factory=workers.make,
                                       **options)  # fmt: skip

    def run(self, specs):
        try:
            local = self.local.run(specs, progress=False)
            remote = self.remote.run(specs, progress=False)
        finally:
            self.local.close()
            self.remote.close()
        return local, remote


@pytest.mark.slow
def test_remote_environment_errors_are_the_environments_own(ray_cluster) -> None:
    workers = RayEnvWorkers(1)
    try:
        env = workers.make("agentgym/Calculator-v0", {})
        with pytest.raises(Exception) as raised:
            env.reset(options={"task_id": "no-such-task"})
        assert "no-such-task" in str(raised.value)
        observation, info = env.reset(seed=0)
        assert isinstance(observation, str) and info
        assert len(env.unwrapped.tasks) > 0
        env.close()
        with pytest.raises(Exception, match="unknown argument 'no_such_argument'"):
            workers.make("agentgym/Calculator-v0", {"no_such_argument": 1})
    finally:
        workers.close()


@pytest.mark.slow
def test_a_vllm_replica_generates_and_takes_broadcast_weights(ray_cluster) -> None:
    """One vLLM replica (two would be two vLLM engines at once on a small CI machine)."""
    pytest.importorskip("vllm")
    from transformers import AutoModelForCausalLM

    from agentgym.distributed import RayEnginePool
    from agentgym.trainers.sync import WeightSyncError, verify_weight_sync

    # No CPU reserved: the module's HF pool holds both of the cluster's CPUs.
    engine = RayEnginePool("vllm", {"model": TINY, "kv_cache_space_gb": 1, "max_model_len": 512},
                           replicas=1, replica_cpus=0, weight_chunk_mb=1)  # fmt: skip
    try:
        model = AutoModelForCausalLM.from_pretrained(resolve_model(TINY))
        sampled = SamplingParams(temperature=1.0, max_tokens=5, prompt_seeds=(3, 4))
        first = engine.generate([[1, 2, 3], [4, 5]], sampled)
        assert [c[0].token_ids for c in engine.generate([[1, 2, 3], [4, 5]], sampled)] == [
            c[0].token_ids for c in first
        ]
        assert verify_weight_sync(engine, model, engine.tokenizer)["replicas"] == 1
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.mul_(1.5)
        with pytest.raises(WeightSyncError):
            verify_weight_sync(engine, model, engine.tokenizer)
        engine.update_weights(model)
        assert verify_weight_sync(engine, model, engine.tokenizer)["max_abs_diff"] < 1e-3
    finally:
        engine.close()
