"""Scale-out: engine replicas and environment copies on Ray (``distributed=ray``).

With ``distributed=local`` (the default) everything runs in the command's process. With
``distributed=ray`` the same config runs:

* ``replicas`` copies of the rollout engine as Ray actors behind one engine
  (:class:`~agentgym.distributed.engine_pool.RayEnginePool`), each sent the trainer's
  weights after every update and probed by the weight-sync check;
* the environment copies in ``env_workers`` actors
  (:class:`~agentgym.distributed.env_workers.RayEnvWorkers`);
* the trainer, the run directory (ledger, stores, checkpoints) and the collector's loop in
  the driver process, unchanged, so collection, training and resume behave as locally.

``address: null`` starts a local cluster in the driver (``num_cpus``, ``object_store_mb``
bound it); ``address: auto`` joins a cluster started with ``ray start --head`` on this
machine, ``ray://host:10001`` a remote one. See ``docs/scaling.md``.

Example:
    >>> config = DistributedConfig(name="ray", replicas=2)
    >>> config.uses_ray, config.replicas
    (True, 2)
    >>> DistributedConfig(name="slurm")
    Traceback (most recent call last):
    ...
    ValueError: Invalid distributed config: name must be 'local' or 'ray', got 'slurm'
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentgym.distributed.engine_pool import RayEnginePool, split_evenly, weight_chunks
from agentgym.distributed.env_workers import RayEnvWorkers, RemoteEnv

__all__ = [
    "REPLICABLE_ENGINES",
    "DistributedConfig",
    "RayEnginePool",
    "RayEnvWorkers",
    "RayRuntime",
    "RemoteEnv",
    "distributed_problems",
    "split_evenly",
    "start_ray",
    "weight_chunks",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedConfig:
    """Where engines and environments run (the ``distributed`` config group).

    Attributes:
        name: ``"local"`` (this process) or ``"ray"``.
        replicas: Engine replicas (actors), each a full copy of the policy.
        env_workers: Actors hosting the environment copies (``num_envs`` spread over them).
        replica_cpus: CPUs reserved per replica (its torch threads).
        replica_gpus: GPUs per replica (``engine.kwargs.tensor_parallel_size`` for vLLM).
        env_worker_cpus: CPUs reserved per environment actor (0: they mostly wait).
        address: ``None``: start a local cluster; ``"auto"`` or ``"ray://host:port"``: join.
        num_cpus: Local cluster only: CPUs it may schedule (``None``: all).
        object_store_mb: Local cluster only: shared-memory object store size.
        weight_chunk_mb: Weights are broadcast in pieces of at most this size.
    """

    name: str = "local"
    replicas: int = 2
    env_workers: int = 2
    replica_cpus: float = 1
    replica_gpus: float = 0
    env_worker_cpus: float = 0
    address: str | None = None
    num_cpus: int | None = None
    object_store_mb: int = 200
    weight_chunk_mb: int = 64

    def __post_init__(self) -> None:
        problems = []
        if self.name not in ("local", "ray"):
            problems.append(f"name must be 'local' or 'ray', got {self.name!r}")
        for key in ("replicas", "env_workers", "object_store_mb", "weight_chunk_mb"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{key} must be an integer >= 1, got {value!r}")
        for key in ("replica_cpus", "replica_gpus", "env_worker_cpus"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                problems.append(f"{key} must be a number >= 0, got {value!r}")
        if self.num_cpus is not None and (not isinstance(self.num_cpus, int) or self.num_cpus < 1):
            problems.append(f"num_cpus must be null or an integer >= 1, got {self.num_cpus!r}")
        if self.object_store_mb < 75 and isinstance(self.object_store_mb, int):
            problems.append(
                f"object_store_mb must be >= 75 (Ray's minimum), got {self.object_store_mb}"
            )
        if problems:
            raise ValueError("Invalid distributed config: " + "; ".join(problems))

    @property
    def uses_ray(self) -> bool:
        return self.name == "ray"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> DistributedConfig:
        """From a config section (``None``: local)."""
        return cls(**dict(data or {}))


#: Engines that ``distributed=ray`` replicates (``expert`` has no engine: only its
#: environment copies move to the actors).
REPLICABLE_ENGINES = ("hf", "vllm")


def distributed_problems(data: Any, *, engine: str | None = None) -> list[str]:
    """Problems with a ``distributed`` section (see :func:`agentgym.config.validate_config`).

    ``engine`` is the config's ``engine.name``: ``distributed=ray`` replicates ``hf`` and
    ``vllm`` engines, runs the expert's environments in actors, and refuses ``openai`` (a
    server scales itself; its replicas would be HTTP clients of the one server).

    >>> distributed_problems({"name": "ray"}, engine="openai")  # doctest: +ELLIPSIS
    ['distributed=ray cannot replicate engine=openai (it runs copies of hf or vllm ...']
    >>> distributed_problems({"name": "ray"}, engine="expert")  # its environments in actors
    []
    """
    if data is None:
        return []
    if not isinstance(data, Mapping):
        return ["distributed must be a mapping with a 'name' (local or ray)"]
    valid = [field.name for field in dataclasses.fields(DistributedConfig)]
    problems = []
    for key in data:
        if key not in valid:
            import difflib

            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            problems.append(
                f"unknown key 'distributed.{key}'.{hint} Valid keys: {', '.join(valid)}"
            )
    try:
        DistributedConfig(**{k: v for k, v in data.items() if k in valid})
    except (ValueError, TypeError) as exc:
        problems.append(f"distributed: {exc}")
    if data.get("name") == "ray" and engine not in (None, "expert", *REPLICABLE_ENGINES):
        problems.append(
            f"distributed=ray cannot replicate engine={engine} (it runs copies of "
            f"{' or '.join(REPLICABLE_ENGINES)} engines): scale the server itself, or use "
            "distributed=local"
        )
    return problems


def start_ray(config: DistributedConfig) -> bool:
    """Connect to (or start) the Ray cluster; whether this call started it.

    A local cluster gets ``num_cpus`` CPUs, an ``object_store_mb`` object store and no
    dashboard; an already initialised Ray (a test, a notebook) is used as it is.
    """
    import ray

    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if config.address is None:
        options["num_cpus"] = config.num_cpus
        options["object_store_memory"] = config.object_store_mb * 2**20
    else:
        options["address"] = config.address
    ray.init(**options)
    return True


class RayRuntime:
    """The Ray cluster, engine pool and environment workers of one command.

    Args:
        config: The ``distributed`` settings (``name: ray``).

    Attributes:
        env_workers: The :class:`RayEnvWorkers`; pass ``env_workers.make`` as the
            collector's ``env_factory``.
        engines: The pools made by :meth:`engine_pool` (closed with the runtime).
    """

    def __init__(self, config: DistributedConfig) -> None:
        self.config = config
        self._started_ray = start_ray(config)
        self.engines: list[RayEnginePool] = []
        try:
            self.env_workers: RayEnvWorkers | None = RayEnvWorkers(
                config.env_workers, cpus_per_worker=config.env_worker_cpus
            )
        except BaseException:
            self.close()
            raise

    def engine_pool(
        self, engine_name: str, engine_kwargs: Mapping[str, Any], *, tokenizer: Any | None = None
    ) -> RayEnginePool:
        """``config.replicas`` replicas of ``engine_name`` (``engine_kwargs`` has ``model``)."""
        pool = RayEnginePool(
            engine_name,
            engine_kwargs,
            replicas=self.config.replicas,
            replica_cpus=self.config.replica_cpus,
            replica_gpus=self.config.replica_gpus,
            weight_chunk_mb=self.config.weight_chunk_mb,
            tokenizer=tokenizer,
        )
        self.engines.append(pool)
        return pool

    def close(self) -> None:
        """Stop the actors, and the cluster if this runtime started it (idempotent)."""
        import ray

        for pool in self.engines:
            pool.close()
        self.engines = []
        if getattr(self, "env_workers", None) is not None:
            self.env_workers.close()
            self.env_workers = None
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
            self._started_ray = False

    def __enter__(self) -> RayRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
