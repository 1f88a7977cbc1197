"""Data-parallel training: one driver and N - 1 training workers share every optimizer step.

``torchrun --nproc_per_node=N -m agentgym.cli train ...`` starts N copies of the command.
Rank 0 is the **driver**: it runs the recipe exactly as a single process does (the rollout
engine, the environments, the run directory, checkpoints, the ledger and metrics are its
alone). Ranks 1..N-1 are **training workers**: they load the same model and wait in
:func:`serve_training` for the driver's :class:`~agentgym.trainers.learner.Learner` to
send them work. Every :meth:`Learner.step <agentgym.trainers.learner.Learner.step>`:

1. the driver cuts the step into its forward passes (micro-batches or prefix trees) and
   deals them out across ranks, balanced by token count (:func:`shard`);
2. each rank runs forward and backward on its share; the loss weights were normalised
   over the *whole* step, so the sum of the ranks' gradients is the one-process gradient;
3. the gradients are summed over ranks (one all-reduce of a flat buffer), then every rank
   clips and steps its identical optimizer on identical gradients, so the replicas stay
   equal without sending weights.

Weights that change outside a step (a checkpoint loaded on resume, a reset to the base
model) are caught by a checksum of the parameters before every step; a mismatch makes the
driver broadcast its parameters. The result equals the one-process run up to the order in
which floating-point sums are taken (``tests/test_data_parallel.py`` checks this).

The process group is built directly on a TCP store (not ``torch.distributed``'s default
group), so that an in-process vLLM engine on the driver, which sets up a one-process
default group of its own, does not collide with it. Gradients travel over gloo on CPU and
NCCL on GPUs; control messages (the step's examples) always over gloo.

That is the default, ``training.parallel=replicate``: every rank holds the whole model and
AdamW state. ``training.parallel=fsdp`` shards parameters, gradients and optimizer state
over the ranks with torch's FSDP2 (:mod:`agentgym.trainers.fsdp`): step 2's backward
passes reduce-scatter the gradients, step 3 steps each rank's slice of AdamW, a rank with
fewer passes than another repeats one with zero loss weights (FSDP's collectives need the
same number of passes on every rank), and the driver gathers the updated weights into its
full model after the step. The sharding group is registered with ``torch.distributed``
(FSDP needs that), the driver's default group stays a one-process one for vLLM.

Example (one process: no group, nothing changes):
    >>> import os
    >>> "WORLD_SIZE" in os.environ or init_from_environment() is None
    True
    >>> shard([5, 1, 4, 3], 2)
    [[0, 1], [2, 3]]
"""

from __future__ import annotations

import datetime
import io
import os
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist

from agentgym.trainers.fsdp import PARALLEL_MODES, device_mesh

__all__ = [
    "DataParallelGroup",
    "current_group",
    "init_from_environment",
    "serve_training",
    "set_group",
    "shard",
    "stop_workers",
]

_TIMEOUT = datetime.timedelta(minutes=30)  # a driver may collect rollouts for a long time
_GROUP: DataParallelGroup | None = None


def shard(costs: Sequence[int], world_size: int) -> list[list[int]]:
    """Deal items with ``costs`` (token counts) to ``world_size`` ranks, balancing the total.

    Longest first, each to the rank with the least work so far (lowest rank on ties);
    each rank's indices come back in increasing order. Deterministic, so every rank
    computes the same plan.

    >>> shard([3, 3, 3], 2)
    [[0, 2], [1]]
    >>> shard([], 3)
    [[], [], []]
    """
    loads = [0] * world_size
    plan: list[list[int]] = [[] for _ in range(world_size)]
    for index in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        plan[rank].append(index)
        loads[rank] += costs[index]
    return [sorted(indices) for indices in plan]


class DataParallelGroup:
    """The ranks of one data-parallel training job: all-reduce and object broadcast.

    Args:
        rank: This process's rank (0 is the driver).
        world_size: Number of processes.
        address / port: Where the TCP store listens (rank 0 hosts it unless
            ``store_is_hosted``, as under torchrun, whose agent hosts one).
        backend: ``"gloo"`` (CPU tensors) or ``"nccl"`` (CUDA tensors); control messages
            use gloo either way.
        device: Where this rank's model lives (gradients are reduced there).
        store_is_hosted: The store already runs (torchrun's agent); connect as a client.
        parallel: ``"replicate"`` (every rank holds the whole model and optimizer) or
            ``"fsdp"`` (FSDP2 shards them over the ranks: :mod:`agentgym.trainers.fsdp`;
            :attr:`mesh` is then the sharding group's ``DeviceMesh``).
    """

    def __init__(
        self,
        rank: int,
        world_size: int,
        *,
        address: str = "127.0.0.1",
        port: int = 29500,
        backend: str = "gloo",
        device: torch.device | str = "cpu",
        store_is_hosted: bool = False,
        parallel: str = "replicate",
    ) -> None:
        if backend not in ("gloo", "nccl"):
            raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
        if parallel not in PARALLEL_MODES:
            raise ValueError(
                f"parallel must be one of {', '.join(PARALLEL_MODES)}; got {parallel!r}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
        self.rank = rank
        self.world_size = world_size
        self.backend = backend
        self.device = torch.device(device)
        is_host = rank == 0 and not store_is_hosted
        store = dist.TCPStore(address, port, world_size, is_host, timeout=_TIMEOUT)
        self._control = dist.ProcessGroupGloo(
            dist.PrefixStore("agentgym/dp/control", store), rank, world_size, _TIMEOUT
        )
        if backend == "nccl":
            self._tensors: Any = dist.ProcessGroupNCCL(
                dist.PrefixStore("agentgym/dp/tensors", store), rank, world_size
            )
        else:
            self._tensors = self._control
        self._store = store
        self.parallel = parallel
        self.mesh: Any = None
        if parallel == "fsdp":
            self.mesh = device_mesh(
                store, rank, world_size, device_type=self.device.type, timeout=_TIMEOUT
            )

    @property
    def is_driver(self) -> bool:
        return self.rank == 0

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks, in place."""
        group = self._control if tensor.device.type == "cpu" else self._tensors
        group.allreduce([tensor]).wait()
        return tensor

    def broadcast(self, tensor: torch.Tensor, root: int = 0) -> torch.Tensor:
        """Copy rank ``root``'s ``tensor`` to every rank, in place."""
        options = dist.BroadcastOptions()
        options.rootRank = root
        group = self._control if tensor.device.type == "cpu" else self._tensors
        group.broadcast([tensor], options).wait()
        return tensor

    def broadcast_object(self, value: Any = None, root: int = 0) -> Any:
        """Rank ``root``'s picklable ``value`` on every rank (others pass anything)."""
        if self.rank == root:
            buffer = io.BytesIO()
            pickle.dump(value, buffer, protocol=pickle.HIGHEST_PROTOCOL)
            payload = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
            size = torch.tensor([payload.numel()], dtype=torch.int64)
        else:
            size = torch.zeros(1, dtype=torch.int64)
        self.broadcast(size, root)
        if self.rank != root:
            payload = torch.empty(int(size.item()), dtype=torch.uint8)
        self.broadcast(payload, root)
        if self.rank == root:
            return value
        return pickle.loads(payload.numpy().tobytes())

    def gather_objects(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank (small objects only)."""
        return [self.broadcast_object(value, root=rank) for rank in range(self.world_size)]

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Copy the driver's parameters and buffers into every rank's ``module``."""
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                self.broadcast(tensor.data)

    def close(self) -> None:
        """Drop the process groups (the store closes with the last reference)."""
        self._control = self._tensors = self.mesh = None


def init_from_environment(
    device: str = "cpu", parallel: str = "replicate"
) -> DataParallelGroup | None:
    """The group described by torchrun's variables (``RANK``, ``WORLD_SIZE``, ...).

    ``None`` in a single process. ``device`` ``"cuda"`` becomes ``cuda:<LOCAL_RANK>`` and
    selects NCCL for the gradients. ``parallel`` is ``training.parallel``: ``"replicate"``
    or ``"fsdp"`` (:class:`DataParallelGroup`).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    on_gpu = str(device).startswith("cuda")
    if on_gpu:
        torch.cuda.set_device(local_rank)
    return DataParallelGroup(
        rank,
        world_size,
        address=os.environ.get("MASTER_ADDR", "127.0.0.1"),
        port=int(os.environ.get("MASTER_PORT", "29500")),
        backend="nccl" if on_gpu else "gloo",
        device=f"cuda:{local_rank}" if on_gpu else "cpu",
        store_is_hosted=os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True",
        parallel=parallel,
    )


def set_group(group: DataParallelGroup | None) -> None:
    """Make ``group`` the one new :class:`~agentgym.trainers.learner.Learner` objects use."""
    global _GROUP
    _GROUP = group


def current_group() -> DataParallelGroup | None:
    """The data-parallel group of this process (``None``: one process)."""
    return _GROUP


def stop_workers(group: DataParallelGroup | None) -> None:
    """Tell the training workers the run is over (driver only; a no-op in one process)."""
    if group is not None and group.is_driver:
        group.broadcast_object(("stop",))


def serve_training(
    model: torch.nn.Module,
    group: DataParallelGroup,
    on_step: Callable[[Any], None] | None = None,
) -> int:
    """A training worker's loop: build learners and run step shares until the driver stops.

    ``on_step`` is called with the worker's learner after each of its steps
    (``benchmarks/fsdp_step.py`` measures a worker's memory there). Returns the number of
    optimizer steps taken.
    """
    from agentgym.trainers.learner import Learner

    learners: dict[int, Learner] = {}
    steps = 0
    while True:
        message = group.broadcast_object()
        kind = message[0]
        if kind == "stop":
            return steps
        if kind == "learner":
            _, learner_id, options = message
            learners = {learner_id: Learner(model, **options, group=group)}  # one live learner
        elif kind == "step":
            _, learner_id, plan, objective, constant = message
            learners[learner_id]._run_step(plan, objective, constant=constant)
            steps += 1
            if on_step is not None:
                on_step(learners[learner_id])
        elif kind == "load":
            _, learner_id, state = message
            learners[learner_id]._load_local(state)
        elif kind == "state":  # FSDP: the driver gathers the sharded optimizer state
            learners[message[1]].state_dict()
        else:  # a newer driver speaking a message this worker does not know
            raise RuntimeError(f"training worker {group.rank}: unknown message {kind!r}")


def parameter_checksum(module: torch.nn.Module) -> torch.Tensor:
    """Per-tensor float64 sums of the parameters (cheap test that replicas agree)."""
    with torch.no_grad():
        return torch.stack([tensor.detach().double().sum().cpu() for tensor in module.parameters()])
