"""N engine replicas in Ray actors behind the one :class:`~agentgym.engines.base.Engine` API.

:class:`RayEnginePool` is an engine: ``generate(prompts, params)`` splits the prompts into
contiguous parts, sends each part to the least busy replica, and joins the completions in
the prompts' order. The collector, the evaluation and the weight-sync check use it exactly
like a local engine. Each replica is an :class:`EngineReplica` actor running any engine of
:func:`agentgym.engines.make_engine` (``hf``, ``vllm``) on its own copy of the weights.

Weights: the trainer's model stays in the driver process. :meth:`RayEnginePool.update_weights`
sends the merged weights (LoRA folded in; tied matrices once) after every update, in
pieces of at most ``weight_chunk_mb`` so that the object store can stay small: each piece
is put into the object store once and read by every replica, which loads the full set
into its engine when the last piece has arrived. :meth:`RayEnginePool.replicas` gives one
engine view per replica, so :func:`~agentgym.trainers.sync.verify_weight_sync` probes every
replica.

Samples: per-prompt seeds travel with each part, and both vLLM and the HF engine sample
each prompt from a stream seeded by its own seed, so a call gives the same completions with
one replica or many (up to the rounding of different batch shapes).

Example:
    >>> split_evenly(7, 3)
    [(0, 3), (3, 5), (5, 7)]
    >>> [sorted(chunk) for chunk in weight_chunks({"a": torch.zeros(4), "b": torch.zeros(4),
    ...                                            "c": torch.zeros(8)}, max_bytes=32)]
    [['a', 'b'], ['c']]
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from agentgym.engines.base import Completion, Engine, SamplingParams

__all__ = [
    "EngineReplica",
    "RayEnginePool",
    "shared_storage_aliases",
    "split_evenly",
    "weight_chunks",
]

logger = logging.getLogger(__name__)


def split_evenly(count: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ``(start, stop)`` ranges covering ``range(count)``, sizes within 1.

    >>> split_evenly(4, 2), split_evenly(2, 4)
    ([(0, 2), (2, 4)], [(0, 1), (1, 2)])
    """
    parts = max(1, min(parts, count))
    size, extra = divmod(count, parts)
    ranges, start = [], 0
    for index in range(parts):
        stop = start + size + (index < extra)
        ranges.append((start, stop))
        start = stop
    return ranges


def weight_chunks(
    state: Mapping[str, torch.Tensor], *, max_bytes: int
) -> list[dict[str, torch.Tensor]]:
    """Named CPU tensors grouped into pieces of at most ``max_bytes`` (one bigger tensor alone)."""
    chunks: list[dict[str, torch.Tensor]] = []
    current: dict[str, torch.Tensor] = {}
    size = 0
    for name, tensor in state.items():
        tensor = tensor.detach().to("cpu")
        nbytes = tensor.numel() * tensor.element_size()
        if current and size + nbytes > max_bytes:
            chunks.append(current)
            current, size = {}, 0
        current[name] = tensor
        size += nbytes
    if current:
        chunks.append(current)
    return chunks


def shared_storage_aliases(
    state: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors to send once, and ``{name: sent name}`` for views of the same memory.

    >>> weight = torch.zeros(2, 2)
    >>> unique, aliases = shared_storage_aliases({"embed": weight, "head": weight})
    >>> list(unique), aliases
    (['embed'], {'head': 'embed'})
    """
    unique: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[Any, ...], str] = {}
    for name, tensor in state.items():
        key = (tensor.device, tensor.data_ptr(), tuple(tensor.shape), tensor.stride(),
               tensor.dtype)  # fmt: skip
        if key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
            unique[name] = tensor
    return unique, aliases


class _NamedWeights:
    """Stands in for a model in ``Engine.update_weights``: it only has a ``state_dict``."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        self._state = state

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state


class EngineReplica:
    """One engine in a Ray actor (the class is wrapped with ``ray.remote`` when used).

    Args:
        engine_name: ``"hf"`` or ``"vllm"`` (any :data:`agentgym.engines.ENGINES` name).
        engine_kwargs: The engine's constructor arguments (``model`` included).
    """

    def __init__(self, engine_name: str, engine_kwargs: Mapping[str, Any]) -> None:
        from agentgym.engines import make_engine

        self.engine = make_engine(engine_name, **dict(engine_kwargs))
        self._incoming: dict[str, torch.Tensor] = {}
        # The HF engine's model takes each piece as it arrives (no second full copy of the
        # weights in the replica); other engines load the complete set at the end.
        self._in_pieces = engine_name == "hf"
        self._received: set[str] = set()

    def describe(self) -> dict[str, Any]:
        """Where the replica runs (also a readiness probe)."""
        return {"pid": os.getpid(), "host": socket.gethostname(), "engine": self.engine.name,
                "torch_threads": torch.get_num_threads()}  # fmt: skip

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        return self.engine.generate(prompts, params)

    def receive_weights(self, chunk: dict[str, torch.Tensor]) -> int:
        """Take one piece of the new weights; return how many tensors have arrived."""
        if self._in_pieces:
            with torch.no_grad():
                result = self.engine.model.load_state_dict(chunk, strict=False)
            if result.unexpected_keys:
                raise RuntimeError(f"unknown weights {result.unexpected_keys[:3]} for this model")
        else:
            self._incoming.update(chunk)
        self._received.update(chunk)
        return len(self._received)

    def apply_weights(self, expected: int, aliases: Mapping[str, str] | None = None) -> float:
        """Load the received weights into the engine; the seconds it took.

        ``aliases`` maps a tensor that was not sent to the sent one it shares storage with
        (tied input and output embeddings).
        """
        received, self._received = self._received, set()
        incoming, self._incoming = self._incoming, {}
        if len(received) + len(aliases or {}) != expected:
            raise RuntimeError(
                f"engine replica received {len(received)} of {expected} weight tensors"
            )
        started = time.perf_counter()
        if self._in_pieces:  # loaded already; an alias the model does not tie is copied
            tensors = self.engine.model.state_dict(keep_vars=True)
            with torch.no_grad():
                for name, original in (aliases or {}).items():
                    if tensors[name].data_ptr() != tensors[original].data_ptr():
                        tensors[name].data.copy_(tensors[original].data)
            return time.perf_counter() - started
        for name, original in (aliases or {}).items():
            incoming[name] = incoming[original]
        self.engine.update_weights(_NamedWeights(incoming))
        return time.perf_counter() - started

    def close(self) -> None:
        self.engine.close()


class _ReplicaView(Engine):
    """One replica of a pool as an engine (to probe each replica's weights)."""

    def __init__(self, pool: RayEnginePool, index: int) -> None:
        self._pool = pool
        self.index = index
        self.name = f"{pool.name} replica {index}"

    @property
    def tokenizer(self) -> Any:
        return self._pool.tokenizer

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        prompts = [[int(t) for t in prompt] for prompt in prompts]
        return self._pool._get([self._pool._actors[self.index].generate.remote(prompts, params)],
                               [self.index])[0]  # fmt: skip


class RayEnginePool(Engine):
    """``replicas`` copies of one engine in Ray actors, used as a single engine.

    Args:
        engine_name: The engine each replica runs (``"hf"``, ``"vllm"``).
        engine_kwargs: Its constructor arguments, ``model`` (a checkpoint path or a
            registered name every node can resolve) included.
        replicas: How many actors.
        replica_cpus: CPUs reserved per actor (Ray gives the actor that many torch threads).
        replica_gpus: GPUs per actor (a vLLM replica with ``tensor_parallel_size`` > 1 needs
            that many).
        weight_chunk_mb: Size of the pieces weights are broadcast in.
        tokenizer: The tokenizer (default: loaded from ``engine_kwargs["model"]``).

    Ray must be initialised (:func:`agentgym.distributed.start_ray`).
    """

    def __init__(
        self,
        engine_name: str,
        engine_kwargs: Mapping[str, Any],
        *,
        replicas: int = 2,
        replica_cpus: float = 1,
        replica_gpus: float = 0,
        weight_chunk_mb: int = 64,
        tokenizer: Any | None = None,
    ) -> None:
        import ray

        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        if weight_chunk_mb < 1:
            raise ValueError(f"weight_chunk_mb must be >= 1, got {weight_chunk_mb}")
        self.name = engine_name
        self.engine_kwargs = dict(engine_kwargs)
        self.weight_chunk_bytes = weight_chunk_mb * 2**20
        self.last_update_seconds: float | None = None
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self._busy = [0] * replicas  # prompts in flight per replica
        free = ray.available_resources()
        cpus, gpus = replicas * replica_cpus, replicas * replica_gpus
        if cpus > free.get("CPU", 0) + 1e-9 or gpus > free.get("GPU", 0) + 1e-9:
            # Ray would wait for the resources forever: say what is missing instead.
            raise RuntimeError(
                f"{replicas} {engine_name} replicas need {cpus:g} CPUs and {gpus:g} GPUs, but "
                f"the Ray cluster has {free.get('CPU', 0):g} CPUs and {free.get('GPU', 0):g} "
                "GPUs free. Lower distributed.replicas, distributed.replica_cpus or "
                "distributed.replica_gpus, or give the cluster more (distributed.num_cpus, "
                "more nodes)."
            )
        actor_class = ray.remote(EngineReplica)
        started = time.perf_counter()
        self._actors = [
            actor_class.options(num_cpus=replica_cpus, num_gpus=replica_gpus).remote(
                engine_name, self.engine_kwargs
            )
            for _ in range(replicas)
        ]
        try:
            self.placement = self._get([a.describe.remote() for a in self._actors],
                                       list(range(replicas)))  # fmt: skip
        except BaseException:
            self.close()
            raise
        self.start_seconds = time.perf_counter() - started
        logger.info("%d %s replicas ready in %.1f s", replicas, engine_name, self.start_seconds)

    @property
    def size(self) -> int:
        """Number of replicas."""
        return len(self._actors)

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from agentgym.models import resolve_model

            self._tokenizer = AutoTokenizer.from_pretrained(
                resolve_model(self.engine_kwargs["model"])
            )
        return self._tokenizer

    def replicas(self) -> list[Engine]:
        """One engine per replica (each call goes to that replica only)."""
        return [_ReplicaView(self, index) for index in range(self.size)]

    def _get(self, refs: list[Any], owners: list[int]) -> list[Any]:
        """``ray.get`` that names the replica when an actor died."""
        import ray

        try:
            return ray.get(refs)
        except ray.exceptions.RayActorError as exc:
            raise RuntimeError(
                f"an engine replica ({', '.join(map(str, owners))}) of the {self.name} pool "
                f"died: {exc}"
            ) from exc
        except ray.exceptions.OutOfMemoryError as exc:  # Ray's memory monitor killed it
            raise RuntimeError(
                f"Ray stopped an engine replica ({', '.join(map(str, owners))}) of the "
                f"{self.name} pool because the node ran low on memory; rerun the same command "
                f"to resume (fewer distributed.replicas need less memory): {exc}"
            ) from exc

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        """Split ``prompts`` over the least busy replicas; completions in prompt order."""
        prompts = [[int(t) for t in prompt] for prompt in prompts]
        if not prompts:
            return []
        if params.prompt_seeds is not None and len(params.prompt_seeds) != len(prompts):
            raise ValueError(
                f"prompt_seeds has {len(params.prompt_seeds)} seeds for {len(prompts)} prompts"
            )
        parts = split_evenly(len(prompts), self.size)
        with self._lock:
            chosen = sorted(range(self.size), key=lambda i: (self._busy[i], i))[: len(parts)]
            for index, (start, stop) in zip(chosen, parts, strict=True):
                self._busy[index] += stop - start
        try:
            refs = []
            for index, (start, stop) in zip(chosen, parts, strict=True):
                part_params = params
                if params.prompt_seeds is not None:
                    part_params = params.with_(prompt_seeds=params.prompt_seeds[start:stop])
                refs.append(self._actors[index].generate.remote(prompts[start:stop], part_params))
            results = self._get(refs, chosen)
        finally:
            with self._lock:
                for index, (start, stop) in zip(chosen, parts, strict=True):
                    self._busy[index] -= stop - start
        return [completions for part in results for completions in part]

    def update_weights(self, model: Any) -> None:
        """Broadcast ``model``'s merged weights to every replica, piece by piece."""
        import ray

        from agentgym.lora_weights import merged_state_dict

        started = time.perf_counter()
        state = merged_state_dict(model)
        unique, aliases = shared_storage_aliases(state)
        chunks = weight_chunks(unique, max_bytes=self.weight_chunk_bytes)
        owners = list(range(self.size))
        for chunk in chunks:
            shared = ray.put(chunk)  # stored once, read by every replica
            self._get([actor.receive_weights.remote(shared) for actor in self._actors], owners)
            del shared
        self._get([actor.apply_weights.remote(len(state), aliases) for actor in self._actors],
                  owners)  # fmt: skip
        self.last_update_seconds = time.perf_counter() - started
        logger.info("weights sent to %d replicas in %.2f s", self.size, self.last_update_seconds)

    def close(self) -> None:
        """Stop the replicas (idempotent)."""
        import ray

        actors, self._actors = getattr(self, "_actors", []), []
        for actor in actors:
            try:
                ray.get(actor.close.remote(), timeout=60)
            except Exception as exc:  # a dead replica has nothing left to close
                logger.debug("engine replica close failed: %s", exc)
            ray.kill(actor)
