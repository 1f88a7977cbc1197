"""The ``agentgym`` command line.

Commands::

    agentgym list-envs                      # registered environments, one line each
    agentgym rollout [hydra overrides...]   # collect episodes (configs/rollout.yaml)

Config-driven commands are Hydra applications: every Hydra feature works after the command
name (``key=value`` overrides, ``-m`` multirun, ``--cfg job`` to print the config, ``--help``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

_USAGE = """usage: agentgym <command> [overrides...]

commands:
  list-envs   list the registered environments
  rollout     collect episodes with a policy (Hydra config: rollout)

Run `agentgym <command> --help` for the command's config and options.
"""


def _list_envs(argv: Sequence[str]) -> int:
    import agentgym

    if argv:
        print(f"list-envs takes no arguments (got {' '.join(argv)})", file=sys.stderr)
        return 2
    envs = agentgym.list_envs()
    width = max(map(len, envs), default=0)
    for env_id, description in envs.items():
        print(f"{env_id:<{width}}  {description}")
    return 0


def run_rollout(cfg: Any) -> dict[str, Any]:
    """The ``rollout`` command: run episodes, store trajectories, write a summary."""
    import gymnasium as gym
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf
    from tqdm.auto import tqdm

    from agentgym.config import ConfigError, validate_rollout_config
    from agentgym.core.trajectory import TrajectoryStore
    from agentgym.rollout import run_episode

    try:
        validate_rollout_config(cfg)
        env_kwargs = OmegaConf.to_container(cfg.env.kwargs, resolve=True) or {}
        env = gym.make(cfg.env.id, **env_kwargs)
        policy = env.unwrapped.make_expert(**(OmegaConf.to_container(cfg.policy.kwargs) or {}))
    except (ConfigError, ValueError, TypeError) as exc:
        # A bad config is the user's to fix: say what is wrong, without a traceback.
        print(f"agentgym rollout: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    run_dir = Path(
        HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else cfg.run_dir
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with TrajectoryStore(run_dir / "trajectories.jsonl") as store:
        resumed = len(store)
        bar = tqdm(range(cfg.episodes), desc="rollout", disable=not cfg.progress, unit="ep")
        for index in bar:
            trajectory_id = f"rollout-{cfg.seed}-{index}"
            if trajectory_id in store:
                continue
            trajectory = run_episode(
                env,
                policy,
                seed=cfg.seed + index,
                env_id=cfg.env.id,
                env_kwargs=env_kwargs,
                trajectory_id=trajectory_id,
            )
            store.append(trajectory)
        trajectories = store.read()
    elapsed = time.perf_counter() - started
    summary = summarize(trajectories)
    summary.update(
        {
            "env": cfg.env.id,
            "policy": cfg.policy.name,
            "resumed_from": resumed,
            "seconds": round(elapsed, 3),
            "run_dir": str(run_dir),
        }
    )
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"{summary['episodes']} episodes of {cfg.env.id}: success rate "
        f"{summary['success_rate']:.3f}, mean reward {summary['mean_reward']:.3f} "
        f"-> {run_dir}"
    )
    return summary


def summarize(trajectories: Sequence[Any]) -> dict[str, Any]:
    """Success rate, mean reward and steps over a list of trajectories."""
    count = len(trajectories)
    if count == 0:
        return {"episodes": 0, "success_rate": 0.0, "mean_reward": 0.0, "mean_steps": 0.0}
    return {
        "episodes": count,
        "success_rate": sum(bool(t.success) for t in trajectories) / count,
        "mean_reward": sum(t.reward for t in trajectories) / count,
        "mean_steps": sum(t.num_steps for t in trajectories) / count,
    }


_HYDRA_COMMANDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "rollout": ("rollout", run_rollout),
}


def _run_hydra(command: str, argv: Sequence[str]) -> int:
    import hydra

    config_name, function = _HYDRA_COMMANDS[command]
    # Hydra reads sys.argv; present the overrides as if `agentgym <command>` were the program.
    saved = sys.argv
    sys.argv = [f"agentgym {command}", *argv]
    try:
        hydra.main(
            config_path="pkg://agentgym.configs", config_name=config_name, version_base="1.3"
        )(function)()
    finally:
        sys.argv = saved
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentgym`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command in ("list-envs", "list_envs"):
        return _list_envs(rest)
    if command in _HYDRA_COMMANDS:
        return _run_hydra(command, rest)
    import difflib

    valid = ["list-envs", *_HYDRA_COMMANDS]
    close = difflib.get_close_matches(command, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    print(f"agentgym: unknown command '{command}'.{hint}\n\n{_USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
