"""Data-parallel training (two gloo processes) gives the one-process weights.

The driver (rank 0) runs SFT and policy-gradient steps through the ordinary
:class:`~agentgym.trainers.learner.Learner`; rank 1 serves its share of every step
(:func:`~agentgym.trainers.data_parallel.serve_training`). The final weights must equal a
one-process run's up to floating-point summation order, and must differ from the start
(so equality is not the trivial "nothing trained").
"""

from __future__ import annotations

import copy
import json
import random
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from transformers import AutoModelForCausalLM

from agentgym.models import resolve_model
from agentgym.trainers.data import TrainingExample
from agentgym.trainers.data_parallel import (
    DataParallelGroup,
    serve_training,
    set_group,
    shard,
    stop_workers,
)
from agentgym.trainers.learner import Learner
from agentgym.trainers.objectives import PolicyGradientObjective
from agentgym.trainers.sft import SFTConfig, train_sft

pytestmark = pytest.mark.slow

# The summed gradients agree to float rounding (the ranks add their shares in another
# order). AdamW's first steps move each weight by about lr * sign(gradient), so the few
# weights whose gradient is ~0 may move differently: almost every weight must agree to
# 1e-5, and none by more than a tenth of the learning rate.
TOLERANCE = 1e-5
MAX_DIFFERENCE = 1e-3
# Gradient norms: replicas compute torch's float32 norm of whole gradients, as one process
# does. FSDP adds up the squared norms of the shards in float64; one process's float32 norm
# of the 6.3M-entry embedding gradient is itself 4.5e-5 off the float64 value, so FSDP's
# (more accurate) norm cannot match it to 1e-5.
NORM_TOLERANCE = {"replicate": 1e-5, "fsdp": 1e-4}


def _examples(count: int = 10) -> list[TrainingExample]:
    """Examples of different lengths sharing prompts (so prefix trees form, as in GRPO)."""
    rng = random.Random(0)
    prompts = [tuple(rng.randrange(5, 200) for _ in range(12)) for _ in range(3)]
    examples = []
    for index in range(count):
        prompt = prompts[index % len(prompts)]
        answer = tuple(rng.randrange(5, 200) for _ in range(4 + index % 5))
        length = len(prompt) + len(answer)
        examples.append(
            TrainingExample(
                prompt + answer,
                (-100,) * len(prompt) + answer,
                trajectory_id=f"t{index}",
                advantages=(rng.uniform(-1, 1),) * length,
                behaviour_logprobs=(-5.3,) * length,
            )
        )
    return examples


def _train(model: torch.nn.Module) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """Two SFT steps (a fresh learner), two policy-gradient steps (another learner), then a
    resume: a third learner loads the second's state and takes a prefix-tree step.

    Returns the steps' metrics and the saved learner state. Every step has three forward
    passes, so two ranks get unequal numbers of them (FSDP pads: see Learner._fsdp_share).
    """
    examples = _examples()
    config = SFTConfig(learning_rate=1e-2, epochs=1, batch_size=6, micro_batch_size=2,
                       warmup_ratio=0.0, seed=3, progress=False)  # fmt: skip
    history = train_sft(model, examples, config)
    learner = Learner(model, learning_rate=5e-3, prefix_sharing=False, max_grad_norm=0.5)
    objective = PolicyGradientObjective()
    for start in (0, 5):
        step = examples[start : start + 5]
        history.append(learner.step([step[:2], step[2:4], step[4:]], objective))
    state = copy.deepcopy(learner.state_dict())  # a snapshot, as a checkpoint file holds
    resumed = Learner(model, learning_rate=5e-3, prefix_sharing=True, max_grad_norm=0.5)
    resumed.load_state_dict(copy.deepcopy(state))  # torch's loader keeps the given tensors
    history.append(resumed.step([examples[:4], examples[4:]], objective))
    return history, state


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random-llama"))


def _rank(rank: int, world_size: int, port: int, out: str, parallel: str) -> None:
    torch.set_num_threads(1)
    group = DataParallelGroup(rank, world_size, port=port, parallel=parallel)
    model = _model()
    if rank != 0:
        torch.manual_seed(1234)  # a different start: the driver's weights must arrive
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        steps = serve_training(model, group)
        # A replica's weights must equal the driver's; FSDP workers hold only shards.
        weights = model.state_dict() if parallel == "replicate" else None
        torch.save({"weights": weights, "steps": steps}, Path(out) / f"rank{rank}.pt")
        return
    set_group(group)
    try:
        history, state = _train(model)
    finally:
        stop_workers(group)
        set_group(None)
    saved = {"weights": model.state_dict(), "history": history, "state": state}
    torch.save(saved, Path(out) / "rank0.pt")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def one_process() -> dict[str, Any]:
    """The one-process run both parallel modes are compared with."""
    single = _model()
    start = {name: tensor.clone() for name, tensor in single.state_dict().items()}
    history, state = _train(single)
    return {"start": start, "weights": single.state_dict(), "history": history, "state": state}


@pytest.mark.parametrize("parallel", ["replicate", "fsdp"])
def test_two_gloo_processes_train_like_one(
    parallel: str, one_process: dict[str, Any], tmp_path: Path
) -> None:
    mp.spawn(_rank, args=(2, _free_port(), str(tmp_path), parallel), nprocs=2, join=True)
    saved = torch.load(tmp_path / "rank0.pt")
    driver, history = saved["weights"], saved["history"]
    worker = torch.load(tmp_path / "rank1.pt")
    expected_history = one_process["history"]
    # Same steps, same losses, same gradient norms (the summed gradient), same tokens.
    assert len(history) == len(expected_history) == 5
    assert worker["steps"] == 5
    for got, want in zip(history, expected_history, strict=True):
        assert got["trained_tokens"] == want["trained_tokens"]
        assert got["input_tokens"] == want["input_tokens"]  # FSDP's padding passes not counted
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
        assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=NORM_TOLERANCE[parallel])
    expected, start = one_process["weights"], one_process["start"]
    moved = max((expected[n] - start[n]).abs().max().item() for n in expected)
    assert moved > 10 * MAX_DIFFERENCE  # training changed the weights
    total = outside = 0
    for name, tensor in expected.items():
        difference = (driver[name] - tensor).abs()
        assert difference.max().item() <= MAX_DIFFERENCE, name
        outside += int((difference > TOLERANCE).sum())
        total += tensor.numel()
        if worker["weights"] is not None:  # the replicas stay identical
            assert torch.equal(driver[name], worker["weights"][name]), name
    assert outside / total < 1e-4
    # The saved optimizer state is whole (gathered from the shards under FSDP): same
    # layout and moments as one process's, so either mode resumes the other.
    got_state, want_state = saved["state"]["optimizer"], one_process["state"]["optimizer"]
    assert got_state["state"].keys() == want_state["state"].keys()
    for index, moments in want_state["state"].items():
        for key, value in moments.items():
            assert got_state["state"][index][key].shape == value.shape
            assert torch.allclose(got_state["state"][index][key], value, rtol=1e-3, atol=1e-6)


def test_shard_balances_tokens_and_covers_every_pass() -> None:
    costs = [40, 10, 30, 20, 25]
    plan = shard(costs, 2)
    assert sorted(i for part in plan for i in part) == list(range(len(costs)))
    loads = [sum(costs[i] for i in part) for part in plan]
    assert max(loads) - min(loads) <= max(costs)
    assert shard(costs, 1) == [[0, 1, 2, 3, 4]]


TRAIN = [
    "trainer=sft", "env=calculator", "model=tiny-random-llama", "engine=hf", "num_envs=4",
    "sampling.max_tokens=8", "eval.episodes=2", "sft.epochs=1", "sft.learning_rate=1e-3",
    "sft.batch_size=4", "sft.micro_batch_size=2", "trainer.train_tasks=8", "progress=false",
    "tensorboard=false",
]  # fmt: skip


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`agentgym train` in one process: the run directory both torchrun modes must match."""
    import subprocess
    import sys

    single = tmp_path_factory.mktemp("single") / "run"
    one = subprocess.run(
        [sys.executable, "-m", "agentgym.cli", "train", *TRAIN, f"run_dir={single}"],
        capture_output=True, text=True, timeout=600, cwd=single.parent,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    return single


@pytest.mark.parametrize("mode", ["replicate", "fsdp"])
def test_torchrun_train_matches_one_process(
    mode: str, one_process_run: Path, tmp_path: Path
) -> None:
    """`torchrun --nproc_per_node=2 -m agentgym.cli train` == `agentgym train`, rank 0 writes.

    With ``training.parallel=fsdp`` the driver's rollouts (the HF engine generates with the
    driver's full model), evaluation and checkpoints see the weights gathered from the shards.
    """
    import subprocess
    import sys

    from transformers import AutoModelForCausalLM as Model

    torchrun = Path(sys.executable).with_name("torchrun")
    single, parallel = one_process_run, tmp_path / "parallel"
    two = subprocess.run(
        [str(torchrun), "--nproc_per_node=2", f"--master_port={_free_port()}", "-m",
         "agentgym.cli", "train", *TRAIN, f"training.parallel={mode}", f"run_dir={parallel}"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    train = next(json.loads(line)["result"] for line in (single / "ledger.jsonl").open()
                 if json.loads(line)["phase"] == "train")  # fmt: skip
    assert train["steps"] >= 2
    assert f"rank 1 served {train['steps']} optimizer steps" in two.stdout
    expected = Model.from_pretrained(single / "checkpoints" / "iter-1").state_dict()
    got = Model.from_pretrained(parallel / "checkpoints" / "iter-1").state_dict()
    for name, tensor in expected.items():
        assert (got[name] - tensor).abs().max().item() <= MAX_DIFFERENCE, name
    ledger = [line for line in (parallel / "ledger.jsonl").read_text().splitlines() if line]
    assert len(ledger) == len((single / "ledger.jsonl").read_text().splitlines())
