"""Fully sharded data parallelism (``training.parallel=fsdp``): torch's FSDP2 under the Learner.

In the default replicated mode (:mod:`agentgym.trainers.data_parallel`) every rank holds the
whole model, its gradients and AdamW's two moments: four copies of the weights per rank.
With ``training.parallel=fsdp`` the :class:`~agentgym.trainers.learner.Learner` trains a
module sharded by ``torch.distributed.fsdp.fully_shard`` (FSDP2): every rank keeps
``1/N`` of the parameters, of the gradients and of the optimizer state; each decoder layer's
parameters are all-gathered for its forward and backward pass and freed afterwards, and the
gradients are reduce-scattered, so each rank steps AdamW on its own slice only.

Rank 0 (the driver) still needs the full weights between steps: it generates rollouts
(the HF engine uses the model itself), sends them to the vLLM engine, scores reference
log-probs and writes checkpoints. So the driver keeps its ordinary model (the one every
recipe sees) and trains a *sharded copy* of it; after every optimizer step the trained
parameters are all-gathered into the ordinary model, and weights changed outside a step
(a checkpoint loaded on resume, a reset to the base model) are scattered into the shards
before the next one. Workers (ranks 1..N-1) shard their model in place and keep no full
copy. Per rank, with AdamW: a worker holds about ``4/N`` of the weights' size (plus the
largest layer while it runs); the driver ``1 + 4/N``, against ``4`` for every rank when
replicated.

FSDP's collectives look ranks up through ``torch.distributed``'s default group, which an
in-process vLLM engine on the driver creates for itself (one process) and destroys when it
closes, destroying every group registered next to it. :func:`device_mesh` therefore gives
the driver a one-process default group of its own first (a vLLM engine started later joins
it and leaves it alone), makes the sharding group the default group of each worker (which
never runs vLLM), and registers the sharding group under its own name.

``tests/test_data_parallel.py`` runs two gloo processes in both modes and compares with one process.

Example (the switch; ``torchrun --nproc_per_node=2 -m agentgym.cli train
training.parallel=fsdp ...`` turns it on):
    >>> PARALLEL_MODES
    ('replicate', 'fsdp')
"""

from __future__ import annotations

import copy
import datetime
import itertools
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "FSDP_MESSAGE_LORA",
    "PARALLEL_MODES",
    "clip_sharded_grad_norm_",
    "device_mesh",
    "full_optimizer_state",
    "gather_trained_weights",
    "is_sharded",
    "scatter_full_weights",
    "shard_module",
    "sharded_optimizer_state",
]

#: ``training.parallel`` values: every rank holds everything, or FSDP2 shards.
PARALLEL_MODES = ("replicate", "fsdp")

FSDP_MESSAGE_LORA = (
    "training.parallel=fsdp does not support LoRA (training.lora.enabled=true): the adapters' "
    "gradients and optimizer state are already tiny, and the driver keeps the full base "
    "model for rollouts either way, so sharding would save nothing; use "
    "training.parallel=replicate with LoRA"
)

_GROUP_NUMBERS = itertools.count()  # each sharding group needs its own registered name


def device_mesh(
    store: dist.Store,
    rank: int,
    world_size: int,
    *,
    device_type: str = "cpu",
    timeout: datetime.timedelta = datetime.timedelta(minutes=30),
) -> Any:
    """A one-dimensional ``DeviceMesh`` over a new process group on ``store`` (all ranks call).

    gloo on CPU; on GPUs NCCL for the CUDA tensors and gloo for CPU ones. The group is built
    with torch's own group constructor and registered in ``torch.distributed``'s tables
    (``DeviceMesh.from_group`` and FSDP translate ranks through them), without a default
    group spanning the ranks: see the module docstring for why the driver gets a
    one-process default group and each worker this group as its default.
    """
    from torch.distributed import distributed_c10d as c10d
    from torch.distributed.device_mesh import DeviceMesh

    if rank == 0 and not dist.is_initialized():
        # The driver's world is itself; an in-process vLLM engine started later joins it.
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    backend = "gloo" if device_type == "cpu" else f"cpu:gloo,{device_type}:nccl"
    name = f"agentgym_fsdp_{next(_GROUP_NUMBERS)}"
    # Private torch helpers (``_new_process_group_helper``, ``_world``): the public
    # ``new_group`` needs a default group spanning the ranks, which vLLM's must not be, and
    # ``DeviceMesh.from_group`` refuses a bare gloo backend. They exist in the pinned torch
    # 2.13.0 (pyproject.toml); a torch upgrade must re-run tests/test_data_parallel.py.
    group, _ = c10d._new_process_group_helper(
        world_size, rank, [], backend, dist.PrefixStore("agentgym/fsdp", store),
        group_name=name, timeout=timeout,
    )  # fmt: skip
    c10d._world.pg_group_ranks[group] = {r: r for r in range(world_size)}
    if rank != 0:
        if dist.is_initialized():
            raise RuntimeError(
                f"rank {rank}: torch.distributed already has a default group; an FSDP "
                "training worker makes the sharding group its default (it runs no engine)"
            )
        c10d._update_default_pg(group)
    return DeviceMesh.from_group(group, device_type)


def is_sharded(module: torch.nn.Module) -> bool:
    """Whether ``fully_shard`` has been applied to ``module``."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def shard_module(model: torch.nn.Module, mesh: Any, *, copy_model: bool = False) -> Any:
    """``model`` sharded over ``mesh``: each decoder layer one FSDP unit, the rest the root.

    ``copy_model``: shard a copy and leave ``model`` whole (the driver). The copy is made on
    the meta device and its shards filled by :func:`scatter_full_weights`, so the full weights
    are never held twice; its buffers (rotary tables) are copied from ``model``.

    The units are the classes a ``transformers`` model lists in ``_no_split_modules`` (its
    decoder layers): one all-gather per layer bounds the unsharded memory to one layer.
    Gradients are summed over ranks, not averaged (the Learner normalises the loss over the
    whole step), with plain SUM reductions (gloo has no pre-multiplied sum).
    """
    from torch.distributed.fsdp import fully_shard

    module = model
    if copy_model:
        memo: dict[int, Any] = {}
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            meta = torch.empty_like(tensor, device="meta")
            if isinstance(tensor, torch.nn.Parameter):
                meta = torch.nn.Parameter(meta, requires_grad=tensor.requires_grad)
            memo[id(tensor)] = meta
        module = copy.deepcopy(model, memo)
    unit_names = set(getattr(module, "_no_split_modules", None) or ())
    for submodule in list(module.modules()):
        if submodule is not module and type(submodule).__name__ in unit_names:
            fully_shard(submodule, mesh=mesh)
    fully_shard(module, mesh=mesh)
    for unit in module.modules():  # these setters act on one unit's parameters, not below
        if is_sharded(unit):
            unit.set_gradient_divide_factor(1.0)
            unit.set_force_sum_reduction_for_comms(True)
    if copy_model:
        device = next(model.parameters()).device
        module.to_empty(device=device)
        with torch.no_grad():
            sources = dict(model.named_buffers())
            for name, buffer in module.named_buffers():
                buffer.copy_(sources[name])
    return module


@torch.no_grad()
def scatter_full_weights(module: Any, source: torch.nn.Module | None, rank: int) -> None:
    """Fill every rank's shards of ``module`` from the driver's full ``source`` (all ranks call).

    ``source`` is the driver's ordinary model (``None`` on the other ranks); one parameter
    at a time is scattered from rank 0, so no rank holds more than one extra full tensor.
    """
    from torch.distributed.tensor import distribute_tensor

    full = dict(source.named_parameters()) if source is not None else {}
    for name, parameter in module.named_parameters():
        mesh, placements = parameter.device_mesh, parameter.placements
        if rank == 0:
            tensor = full[name].detach().to(parameter.device, parameter.dtype)
        else:  # the shape the scatter expects; rank 0's values arrive
            tensor = torch.empty(parameter.shape, dtype=parameter.dtype, device=parameter.device)
        parameter.copy_(distribute_tensor(tensor, mesh, placements, src_data_rank=0))


@torch.no_grad()
def clip_sharded_grad_norm_(parameters: list[Any], max_norm: float, group: Any) -> float:
    """Clip sharded gradients to ``max_norm`` (``clip_grad_norm_``'s rule); the gradient norm.

    Each rank takes the squared norm of its shard of every gradient in float64, the squares
    are summed over ranks (``group``: the :class:`~agentgym.trainers.data_parallel.
    DataParallelGroup`), and the gradients are scaled by ``max_norm / (norm + 1e-6)`` if
    that is below 1. float64 because a float32 norm of a large tensor is itself inexact:
    for the 6.3M-entry embedding gradient of ``tiny-random-llama`` torch's float32 norm is
    4.5e-5 off the float64 value, and the norm of two halves lands somewhere else within
    that error; so the sharded norm is the more accurate one, not a bit-copy of one
    process's.
    """
    with_grad = [p for p in parameters if p.grad is not None]
    if not with_grad:
        return 0.0
    local = [p.grad.to_local() for p in with_grad]
    squares = torch.stack([torch.linalg.vector_norm(g, dtype=torch.float64) ** 2 for g in local])
    total = float(group.all_reduce(squares).sum().sqrt())
    coefficient = min(1.0, max_norm / (total + 1e-6))
    if coefficient < 1.0:
        torch._foreach_mul_(local, coefficient)
    return total


@torch.no_grad()
def gather_trained_weights(module: Any, target: torch.nn.Module | None) -> None:
    """All-gather the trainable parameters of ``module`` into the driver's ``target``.

    All ranks call (each parameter is one all-gather); the other ranks pass ``None`` and
    drop the full tensor at once. Frozen parameters are skipped: a step does not change them.
    """
    full = dict(target.named_parameters()) if target is not None else {}
    for name, parameter in module.named_parameters():
        if not parameter.requires_grad:
            continue
        gathered = parameter.full_tensor()
        if target is not None:
            full[name].copy_(gathered)


def full_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``optimizer.state_dict()`` with every sharded tensor gathered whole (all ranks call).

    The result has the layout of an optimizer over ordinary tensors, so a checkpoint written
    under FSDP resumes a replicated run and the other way round.
    """
    from torch.distributed.tensor import DTensor

    state = optimizer.state_dict()
    gathered = {}
    for index in sorted(state["state"]):  # the same order on every rank
        gathered[index] = {
            key: value.full_tensor() if isinstance(value, DTensor) else value
            for key, value in sorted(state["state"][index].items())
        }
    return {"state": gathered, "param_groups": state["param_groups"]}


def sharded_optimizer_state(state: dict[str, Any], parameters: list[Any]) -> dict[str, Any]:
    """A full optimizer ``state`` cut into this rank's shards of ``parameters``.

    Every rank holds the whole ``state`` (the driver sent it) and keeps its own slice of
    each per-parameter tensor that has the parameter's shape (AdamW's moments); scalars
    such as the step count stay whole. No communication.
    """
    from torch.distributed.tensor import distribute_tensor

    sharded = {}
    for index, values in state["state"].items():
        parameter = parameters[int(index)]
        sharded[index] = {
            key: distribute_tensor(
                value.to(parameter.device, parameter.dtype),
                parameter.device_mesh,
                parameter.placements,
                src_data_rank=None,  # every rank has the full tensor: just slice it
            )
            if key != "step" and isinstance(value, torch.Tensor) and value.shape == parameter.shape
            else value
            for key, value in values.items()
        }
    return {"state": sharded, "param_groups": state["param_groups"]}
