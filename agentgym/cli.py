"""The ``agentgym`` command line.

Commands::

    agentgym list-envs                      # registered environments, one line each
    agentgym rollout [hydra overrides...]   # collect episodes (configs/rollout.yaml)
    agentgym eval [hydra overrides...]      # held-out success with CIs (configs/eval.yaml)
    agentgym view <run dir | .jsonl>        # browse a run in a local web viewer
    agentgym serve-env ENV_ID [k=v...]      # serve an environment (OpenEnv protocol)
    agentgym serve-tools ENV_ID|module:obj  # serve tools as an MCP server (stdio)

Config-driven commands are Hydra applications: every Hydra feature works after the command
name (``key=value`` overrides, ``-m`` multirun, ``--cfg job`` to print the config, ``--help``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

_USAGE = """usage: agentgym <command> [overrides...]

commands:
  list-envs   list the registered environments
  train       train an agent: trainer=sft|rft|eef (Hydra config: train)
  rollout     collect episodes with a policy (Hydra config: rollout)
  eval        held-out success rate and reward with confidence intervals (config: eval)
  serve       serve a model over an OpenAI-compatible API with vLLM (agentgym serve --help)
  view        browse a run or trajectory store in a local web viewer (agentgym view --help)
  serve-env   serve an environment over OpenEnv's protocol (agentgym serve-env --help)
  serve-tools serve a tool set (or a tool env's tools) as an MCP server over stdio

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


def _rollout(cfg: Any) -> Any:
    from agentgym.commands import run_rollout

    return run_rollout(cfg)


def _eval(cfg: Any) -> Any:
    from agentgym.commands import run_eval

    return run_eval(cfg)


def _train(cfg: Any) -> Any:
    from agentgym.commands import run_train

    return run_train(cfg)


_HYDRA_COMMANDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "train": ("train", _train),
    "rollout": ("rollout", _rollout),
    "eval": ("eval", _eval),
}


def multirun_run_dir_note(argv: Sequence[str]) -> str | None:
    """What to tell a user who passes ``run_dir=`` to a multirun (``-m``), else ``None``.

    Hydra gives every job of a sweep its own folder, ``hydra.sweep.dir/<job number>``, and
    the commands write there, so a ``run_dir=`` override has no effect.

    >>> multirun_run_dir_note(["-m", "seed=0,1", "run_dir=runs/mine"])[:45]
    'with -m (multirun) each job writes to its own'
    >>> multirun_run_dir_note(["seed=0", "run_dir=runs/mine"]) is None
    True
    """
    if not any(arg in ("-m", "--multirun") for arg in argv):
        return None
    if not any("=" in arg and arg.lstrip("+~").split("=", 1)[0] == "run_dir" for arg in argv):
        return None
    return (
        "with -m (multirun) each job writes to its own folder, hydra.sweep.dir/<job number> "
        "(default runs/multirun/<time>/<n>), so run_dir= is ignored; pass "
        "hydra.sweep.dir=<folder> instead (the same folder again resumes every job)."
    )


def _run_hydra(command: str, argv: Sequence[str]) -> int:
    import hydra

    from agentgym.preflight import UsageError, check_command_line, rewrite_overrides

    config_name, function = _HYDRA_COMMANDS[command]
    try:
        # Before Hydra creates any directory: typos, wrong types, model=<path>, run_dir.
        argv = rewrite_overrides(command, argv)
        if int(os.environ.get("RANK", "0")) == 0:  # other ranks run rank 0's checked config
            for note in check_command_line(command, config_name, argv):
                print(f"agentgym {command}: {note}", file=sys.stderr)
    except UsageError as exc:
        print(f"agentgym {command}: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) > 0:
        # A torchrun worker: rank 0 owns the run directory; Hydra writes nothing there.
        scratch = Path(tempfile.gettempdir()) / f"agentgym-rank{os.environ['RANK']}"
        argv = [*argv, "hydra.output_subdir=null", f"hydra.run.dir={scratch}"]
    note = multirun_run_dir_note(argv)
    if note is not None:
        print(f"agentgym {command}: {note}", file=sys.stderr)
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
    if command == "serve":
        from agentgym.serve import main as serve_main

        return serve_main(rest)
    if command == "view":
        from agentgym.view.server import main as view_main

        return view_main(rest)
    if command == "serve-env":
        from agentgym.serving.env_server import main as serve_env_main

        return serve_env_main(rest)
    if command == "serve-tools":
        from agentgym.serving.mcp_tools import main as serve_tools_main

        return serve_tools_main(rest)
    if command in _HYDRA_COMMANDS:
        return _run_hydra(command, rest)
    import difflib

    valid = ["list-envs", "serve", "serve-env", "serve-tools", "view", *_HYDRA_COMMANDS]
    close = difflib.get_close_matches(command, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    print(f"agentgym: unknown command '{command}'.{hint}\n\n{_USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
