"""What the ``rollout`` and ``eval`` commands do, given a validated Hydra config.

Both build the same pieces from the config (environment, engine or expert, sampling) and
run the batched :class:`~agentgym.collector.RolloutCollector`; they differ in which tasks
they run and what they report.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig, OmegaConf

from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.config import ConfigError, validate_config
from agentgym.core.durable import write_json_atomic
from agentgym.core.trajectory import TrajectoryStore
from agentgym.engines.base import Engine, SamplingParams
from agentgym.evaluation import benchmark_lines, benchmark_metrics, summarize
from agentgym.preflight import store_run_config

__all__ = [
    "build_engine",
    "check_config",
    "env_factory",
    "policy_record",
    "run_eval",
    "run_rollout",
    "run_train",
]


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_engine(
    cfg: DictConfig, runtime: Any = None, *, tokenizer: Any | None = None
) -> Engine | None:
    """The engine named by ``cfg.engine`` for ``cfg.model`` (``None`` for the expert).

    With a Ray ``runtime`` (``distributed=ray``) it is ``distributed.replicas`` copies of
    the engine in Ray actors, used as one engine (train, rollout and eval alike);
    ``tokenizer`` spares the pool loading its own.
    """
    name = cfg.engine.name
    if name == "expert":
        return None
    from agentgym.engines import make_engine
    from agentgym.models import resolve_model

    kwargs = dict(_container(cfg.engine.kwargs) or {})
    if name == "openai":
        # The served model name, and the tokenizer for token-level generation.
        return make_engine(name, model=cfg.model.name, tokenizer=cfg.model.name, **kwargs)
    path = str(resolve_model(cfg.model.name))
    if runtime is not None:
        # Each replica loads the checkpoint itself (a trainer sends weights after updates).
        return runtime.engine_pool(name, {"model": path, **kwargs}, tokenizer=tokenizer)
    return make_engine(name, model=path, **kwargs)


def env_factory(runtime: Any) -> Any:
    """The collectors' ``env_factory``: Ray's environment actors, or ``None`` (``gym.make``)."""
    return runtime.env_workers.make if runtime is not None else None


def _sampling(cfg: DictConfig) -> SamplingParams:
    """The run's sampling settings; the run's ``seed`` shifts ``sampling.seed``.

    Every per-turn sampling seed derives from ``sampling.seed`` and the episode's id, and
    the trainers' episode ids name the task, not the run: without the shift, runs that
    differ only in ``seed`` sampled the very same completions from the same model (a
    study's "second seed" repeated the first). ``seed=0`` keeps ``sampling.seed`` itself,
    so seed-0 runs sample as before; ``sampling.seed=null`` stays unseeded.
    """
    values = dict(_container(cfg.sampling))
    values["stop"] = tuple(values.get("stop") or ())
    if values.get("seed") is not None and cfg.get("seed") is not None:
        values["seed"] = int(values["seed"]) + int(cfg.seed)
    return SamplingParams(**values)


def _run_dir(cfg: DictConfig, *, create: bool = True) -> Path:
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(
        HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else cfg.run_dir
    )
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _fail(command: str, exc: BaseException) -> NoReturn:
    # A bad config is the user's to fix: say what is wrong, without a traceback.
    print(f"agentgym {command}: {exc}", file=sys.stderr)
    raise SystemExit(2) from None


def _env_kwargs(cfg: DictConfig, command: str) -> list[dict[str, Any]]:
    """The environment arguments a command builds with (train: its train and eval splits).

    Environments without splits (e.g. BFCL, itself a held-out benchmark) use all their tasks.
    """
    kwargs = dict(_container(cfg.env.kwargs) or {})
    has_splits = "split" in _constructor_arguments(cfg.env.id)
    if command == "train":
        train, evaluation = dict(kwargs), dict(kwargs)
        if has_splits:
            train["split"], evaluation["split"] = "train", cfg.eval.split
        return [train, evaluation]
    if command == "eval" and has_splits:
        kwargs["split"] = cfg.split
    return [kwargs]


def check_config(
    cfg: DictConfig, command: str, run_dir: str | Path | None = None
) -> list[dict[str, Any]]:
    """Everything that can be checked before a model loads; the environment arguments.

    The config's keys and values, the environment's constructor (built once), the sampling
    settings, the run directory (``run_dir``, default ``cfg.run_dir``: see
    :func:`agentgym.preflight.run_dir_problems`) and the model's name are checked.

    Raises:
        ConfigError, UsageError, ValueError, TypeError: What the user has to fix.
    """
    import gymnasium as gym

    from agentgym.models import ModelNotFoundError, resolve_model
    from agentgym.preflight import UsageError, check_run_dir

    validate_config(cfg, command)
    variants = _env_kwargs(cfg, command)
    for kwargs in variants:
        env = gym.make(cfg.env.id, **kwargs)  # constructor-level checks, cheap
        try:
            if command == "train" or cfg.engine.name == "expert":
                section = "expert" if command == "train" else "engine.kwargs"
                settings = _container(cfg.expert if command == "train" else cfg.engine.kwargs)
                problems = _expert_problems(env.unwrapped, settings or {}, f"{section}.")
                if problems:
                    raise ConfigError(problems)
            critic = (cfg.get("critic") or {}).get("name", "none")
            tasks = len(env.unwrapped.tasks)
            if command == "eval" and critic == "none" and cfg.episodes > tasks:
                where = f"split {cfg.split!r}" if "split" in kwargs else cfg.env.id
                raise UsageError(
                    f"episodes={cfg.episodes} but {where} has only {tasks} tasks; lower episodes."
                )
        finally:
            env.close()
    _sampling(cfg)
    check_run_dir(cfg.run_dir if run_dir is None else run_dir, command, _container(cfg))
    if cfg.engine.name not in ("expert", "openai"):
        try:
            resolve_model(cfg.model.name)  # a hub id is fetched here, a registered model built
        except ModelNotFoundError as exc:
            raise UsageError(str(exc)) from None
    return variants


def _expert_problems(env: Any, settings: dict[str, Any], prefix: str) -> list[str]:
    """Unknown or mistyped arguments of the environment's expert (its class or make_expert)."""
    import inspect
    import typing

    from agentgym.core.arguments import argument_problems

    target: Any = env.make_expert
    parameters = inspect.signature(target).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        # make_expert(**kwargs) forwards to the expert class named by its return annotation.
        try:
            returned = typing.get_type_hints(target).get("return")
        except Exception:  # an annotation that cannot be resolved: nothing to check against
            returned = None
        if not isinstance(returned, type):
            return []
        target = returned
    return argument_problems(target, settings, prefix=prefix, noun="key")


@contextmanager
def _collection(cfg: DictConfig, command: str) -> Iterator[tuple[RolloutCollector, dict[str, Any]]]:
    """Check, then build the collector; on exit close it, the engine and Ray's actors.

    Bad values surface before any model loads or Ray starts. ``distributed=ray`` places
    the engine replicas and environment copies in Ray actors as ``agentgym train`` does
    (:func:`build_engine`, :func:`env_factory`); the loop and the store stay here.
    """
    try:
        env_kwargs = check_config(cfg, command, _run_dir(cfg, create=False))[0]
    except (ConfigError, ValueError, TypeError) as exc:
        _fail(command, exc)
    sampling = _sampling(cfg)
    with ExitStack() as cleanup:  # closed in reverse: collector, engine, runtime
        runtime = _ray_runtime(cfg)
        if runtime is not None:
            cleanup.callback(runtime.close)
        engine = build_engine(cfg, runtime)
        if engine is not None:
            cleanup.callback(engine.close)
        collector = RolloutCollector(
            cfg.env.id,
            engine=engine,
            env_kwargs=env_kwargs,
            sampling=sampling,
            num_envs=cfg.num_envs,
            max_turns=cfg.max_turns,
            max_context_tokens=cfg.max_context_tokens,
            expert_kwargs=_container(cfg.engine.kwargs) if engine is None else None,
            env_factory=env_factory(runtime),
            **rollout_options(cfg),
        )
        cleanup.callback(collector.close)
        yield collector, env_kwargs


def rollout_options(cfg: DictConfig) -> dict[str, Any]:
    """The collector's scheduling options from the ``rollout`` section (absent: defaults)."""
    section = dict(_container(cfg.get("rollout")) or {})
    keys = ("mode", "env_workers", "gather_seconds")
    return {key: section[key] for key in keys if key in section}


def _report(collector: RolloutCollector, summary: dict[str, Any]) -> None:
    stats = collector.stats
    summary["throughput"] = {
        "generated_tokens": stats.generated_tokens,
        "tokens_per_second": round(stats.tokens_per_second, 2),
        "engine_calls": stats.engine_calls,
        "engine_seconds": round(stats.engine_seconds, 3),
        "env_seconds": round(stats.env_seconds, 3),
        "wall_seconds": round(stats.wall_seconds, 3),
    }


def run_rollout(cfg: DictConfig) -> dict[str, Any]:
    """Collect ``cfg.episodes`` episodes (resumable) and write trajectories and a summary."""
    with _collection(cfg, "rollout") as (collector, _):
        run_dir = _run_dir(cfg)
        store_run_config(run_dir, _container(cfg))
        specs = [EpisodeSpec(f"rollout-{cfg.seed}-{i}", seed=cfg.seed + i)
                 for i in range(cfg.episodes)]  # fmt: skip
        with TrajectoryStore(run_dir / "trajectories.jsonl") as store:
            resumed = sum(spec.trajectory_id in store for spec in specs)
            trajectories = collector.run(specs, store=store, progress=cfg.progress)
    summary = summarize(trajectories)
    summary.update(
        {"env": cfg.env.id, **policy_record(cfg), "resumed_from": resumed,
         "run_dir": str(run_dir)}
    )  # fmt: skip
    _report(collector, summary)
    write_json_atomic(run_dir / "summary.json", summary)
    print(
        f"{summary['episodes']} episodes of {cfg.env.id} with {_policy_label(cfg)}: success rate "
        f"{summary['success_rate']:.3f} {list(summary['success_ci95'])}, mean reward "
        f"{summary['mean_reward']:.3f}, {summary['throughput']['tokens_per_second']} tokens/s "
        f"-> {run_dir}"
    )
    return summary


def run_eval(cfg: DictConfig) -> dict[str, Any]:
    """Run the first ``cfg.episodes`` tasks of the held-out split once each; report with CIs.

    With a critic (``critic=oracle|model|openai``) it reports success vs N with and without
    the critic instead (:mod:`agentgym.critique.command`).
    """
    if (cfg.get("critic") or {}).get("name", "none") != "none":
        from agentgym.critique.command import run_critique_eval

        return run_critique_eval(cfg)
    with _collection(cfg, "eval") as (collector, env_kwargs):
        uses_split = "split" in env_kwargs
        tasks = collector.envs[0].unwrapped.tasks
        run_dir = _run_dir(cfg)
        store_run_config(run_dir, _container(cfg))
        task_ids = [tasks.id_at(i) for i in range(cfg.episodes)]
        specs = [EpisodeSpec(f"eval-{task_id}", task_id=task_id, seed=cfg.seed + i)
                 for i, task_id in enumerate(task_ids)]  # fmt: skip
        with TrajectoryStore(run_dir / "trajectories.jsonl") as store:
            trajectories = collector.run(specs, store=store, progress=cfg.progress, desc="eval")
        # e.g. TravelPlanner's rates (the environment copy must still be open)
        metrics = benchmark_metrics(collector.envs[0], trajectories)
    summary = summarize(trajectories)
    if metrics is not None:
        summary["benchmark_metrics"] = metrics
    summary.update(
        {"env": cfg.env.id, "split": cfg.split if uses_split else None, **policy_record(cfg),
         "run_dir": str(run_dir)}
    )  # fmt: skip
    _report(collector, summary)
    write_json_atomic(run_dir / "eval.json", summary)
    print(
        f"eval {cfg.env.id}{f' [{cfg.split}]' if uses_split else ''} with {_policy_label(cfg)}: "
        "success "
        f"{summary['success_rate']:.3f} (95% CI {summary['success_ci95'][0]:.3f}-"
        f"{summary['success_ci95'][1]:.3f}), mean reward {summary['mean_reward']:.3f} over "
        f"{summary['episodes']} tasks"
    )
    for group, block in summary["groups"].items():
        print(f"  {group}: success {block['success_rate']:.3f} {list(block['success_ci95'])}")
    for line in benchmark_lines(summary.get("benchmark_metrics")):
        print(line)
    return summary


def run_train(cfg: DictConfig) -> list[dict[str, Any]]:
    """Train with ``cfg.trainer``: validate, build the workbench, run the recipe, report."""
    import importlib

    try:
        train_kwargs, eval_kwargs = check_config(cfg, "train", _run_dir(cfg, create=False))
    except (ConfigError, ValueError, TypeError) as exc:
        _fail("train", exc)

    from agentgym.trainers import TRAINERS

    config_class, recipe_path = TRAINERS[cfg.trainer.name]
    recipe_config = config_class(
        **{k: v for k, v in _container(cfg.trainer).items() if k != "name"}
    )
    module_name, _, function_name = recipe_path.partition(":")
    recipe = getattr(importlib.import_module(module_name), function_name)
    from agentgym.trainers import data_parallel

    group = data_parallel.init_from_environment(  # torchrun's ranks
        cfg.training.device, cfg.training.get("parallel", "replicate")
    )
    if group is not None and not group.is_driver:
        return _serve_training(cfg, group)
    data_parallel.set_group(group)
    runtime = _ray_runtime(cfg)  # distributed=ray: the cluster, replicas and env actors
    try:
        bench = _workbench(cfg, train_kwargs, eval_kwargs, runtime)
        try:
            rows = recipe(bench, recipe_config)
            bench.run.write_summary(rows)
            plots = bench.run.plot()
        except BaseException:
            bench.close(interrupted=True)
            raise
        bench.close()
    finally:
        data_parallel.stop_workers(group)
        data_parallel.set_group(None)
        if runtime is not None:
            runtime.close()
    print(f"agentgym train ({cfg.trainer.name}) -> {bench.run.path}")
    for row in rows:
        low, high = row["success_ci95"]
        print(
            f"  {row['stage']:<28} held-out success {row['success_rate']:.3f} "
            f"[{low:.3f}, {high:.3f}]  mean reward {row['mean_reward']:.3f}  "
            f"({row['episodes']} tasks)"
        )
    print(f"  plots: {', '.join(p.name for p in plots)}")
    return rows


def _ray_runtime(cfg: DictConfig) -> Any:
    """The Ray runtime of ``distributed=ray`` (``None`` for ``distributed=local``)."""
    from agentgym.distributed import DistributedConfig, RayRuntime

    config = DistributedConfig.from_mapping(_container(cfg.get("distributed")))
    return RayRuntime(config) if config.uses_ray else None


def _workbench(
    cfg: DictConfig,
    train_kwargs: dict[str, Any],
    eval_kwargs: dict[str, Any],
    runtime: Any = None,
) -> Any:
    """The model, engine and run directory of a training run (``runtime``: Ray's actors)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentgym.engines import make_engine
    from agentgym.models import resolve_model
    from agentgym.trainers.common import Workbench
    from agentgym.trainers.lora import LoRAConfig, apply_lora, trainable_fraction
    from agentgym.trainers.run import RunDir

    torch.manual_seed(cfg.seed)
    path = resolve_model(cfg.model.name)
    dtype = getattr(torch, cfg.training.dtype)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(cfg.training.device)
    lora = LoRAConfig(**(_container(cfg.training.get("lora")) or {}))
    model = apply_lora(model, lora)
    if lora.enabled:
        print(f"LoRA: rank {lora.rank}, {trainable_fraction(model):.2%} of parameters trained")
    engine_kwargs = dict(_container(cfg.engine.kwargs) or {})
    if runtime is not None:
        # Replicas load the checkpoint themselves and get the weights after every update.
        engine = build_engine(cfg, runtime, tokenizer=tokenizer)
    elif cfg.engine.name == "hf":
        # The HF engine generates with the trainer's own model: no weight copy to sync.
        engine = make_engine(
            "hf", model=str(path), model_instance=model, tokenizer=tokenizer, **engine_kwargs
        )
    else:
        engine = make_engine(cfg.engine.name, model=str(path), **engine_kwargs)
    run = RunDir(
        _run_dir(cfg),
        config=_container(cfg),
        tensorboard=cfg.tensorboard,
        wandb=cfg.wandb,
    )
    sampling = _sampling(cfg)
    return Workbench(
        run=run,
        model=model,
        tokenizer=tokenizer,
        engine=engine,
        env_id=cfg.env.id,
        train_env_kwargs=train_kwargs,
        eval_env_kwargs=eval_kwargs,
        sampling=sampling,
        eval_sampling=sampling.with_(temperature=float(cfg.eval.temperature)),
        sft=_sft_config(cfg),
        num_envs=cfg.num_envs,
        max_turns=cfg.max_turns,
        max_context_tokens=cfg.max_context_tokens,
        eval_episodes=cfg.eval.episodes,
        expert_kwargs=dict(_container(cfg.expert) or {}),
        progress=cfg.progress,
        seed=cfg.seed,
        base_model_path=str(path),
        rollout_options=rollout_options(cfg),
        env_factory=env_factory(runtime),
    )


def _serve_training(cfg: DictConfig, group: Any) -> list[dict[str, Any]]:
    """A torchrun worker (rank > 0): the same model, serving the driver's training steps.

    The driver (rank 0) collects, evaluates and writes the run directory; this rank only
    computes its share of every optimizer step (:mod:`agentgym.trainers.data_parallel`).
    """
    import torch
    from transformers import AutoModelForCausalLM

    from agentgym.models import resolve_model
    from agentgym.trainers.data_parallel import serve_training
    from agentgym.trainers.lora import LoRAConfig, apply_lora

    torch.manual_seed(cfg.seed)
    path = resolve_model(cfg.model.name)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, cfg.training.dtype))
    model = apply_lora(
        model.to(group.device), LoRAConfig(**(_container(cfg.training.get("lora")) or {}))
    )
    steps = serve_training(model, group)
    print(f"agentgym train: rank {group.rank} served {steps} optimizer steps")
    return []


def _sft_config(cfg: DictConfig) -> Any:
    """The fine-tuning settings; ``sft.seed: null`` takes the run's seed.

    So runs of different seeds differ in training (batch order), not only in sampling.
    """
    from agentgym.trainers.sft import SFTConfig

    settings = dict(_container(cfg.sft) or {})
    if settings.get("seed") is None:
        settings["seed"] = cfg.seed
    return SFTConfig(**settings, progress=cfg.progress)


def _constructor_arguments(env_id: str) -> list[str]:
    import gymnasium as gym

    from agentgym.core.registry import EnvFactory

    entry_point = gym.spec(env_id).entry_point if env_id in gym.registry else None
    return entry_point.valid_arguments() if isinstance(entry_point, EnvFactory) else []


def policy_record(cfg: DictConfig) -> dict[str, Any]:
    """Who acted, for ``summary.json`` and ``eval.json``.

    The expert records ``policy: expert`` and its settings (``model`` is ``null``: the
    config's default model was not used); an engine records itself and the model.
    """
    if cfg.engine.name == "expert":
        expert = dict(_container(cfg.engine.get("kwargs")) or {})
        return {"engine": "expert", "model": None, "policy": "expert", "expert": expert}
    return {"engine": cfg.engine.name, "model": cfg.model.name, "policy": _policy_label(cfg)}


def _policy_label(cfg: DictConfig) -> str:
    return "expert" if cfg.engine.name == "expert" else f"{cfg.engine.name}/{cfg.model.name}"
