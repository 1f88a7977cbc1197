"""What ``agentgym train|rollout|eval`` check before Hydra runs (and creates any directory).

A user's mistake on the command line ends in one message and exit code 2, never in a
traceback, and before any model loads:

* ``key=value`` overrides of plain keys become ``++key=value``, so a key the YAML does not
  spell out (``env.kwargs.num_tasks=5``: any constructor argument) needs no ``+``, and a
  misspelt key is reported by :func:`agentgym.config.validate_config` with the valid keys
  and a "did you mean" instead of Hydra's "Key 'x' is not in struct";
* ``group=option`` overrides name an existing option (``trainer=rtf`` -> did you mean
  ``rft``?), except ``model=``, which also takes a checkpoint directory or a hub id (it
  becomes ``model.name=<value>``, which :func:`agentgym.models.resolve_model` resolves);
* the composed config is validated as the command will validate it, the environment's
  constructor runs once, and the run directory is checked: not a file, writable, not in use
  by another run, and not started with a different config.

Multirun (``-m``) jobs skip the composition here; each job validates its own config.

Example:
    >>> rewrite_overrides("rollout", ["episodes=4", "model=/ckpt/run1", "+x=1", "-m"])
    ['++episodes=4', 'model.name=/ckpt/run1', '+x=1', '-m']
    >>> rewrite_overrides("train", ["trainer=rtf"])
    Traceback (most recent call last):
    ...
    agentgym.preflight.UsageError: trainer=rtf is not a trainer config. Did you mean 'rft'? \
Valid: critic, critique, eef, envtune, faft, grpo, leti, rft, sft
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from agentgym.core.durable import FileLock, LockHeldError, write_atomic

__all__ = [
    "RESUMABLE_KEYS",
    "UsageError",
    "backfilled",
    "check_run_dir",
    "config_groups",
    "rewrite_overrides",
    "run_dir_problems",
    "store_run_config",
    "upgrade_stored_config",
]

#: Keys of a rollout/eval config that may differ when a run directory is resumed.
#: ``distributed`` says where the episodes run, not which (like ``num_envs``); run
#: directories from before rollout/eval had the group stored no such key.
RESUMABLE_KEYS = ("episodes", "progress", "num_envs", "run_dir", "distributed")

#: The config file that a rollout or eval run directory keeps (train's RunDir keeps its own).
RUN_CONFIG = "config.yaml"

# Writers' lock files: a train run's RunDir locks `<run_dir>/.lock`, rollout and eval lock
# their trajectory store (`trajectories.jsonl.lock`). tests/test_user_errors.py holds the
# real locks and checks that these names find them.
_LOCK_FILES = {"train": ".lock", "rollout": "trajectories.jsonl.lock",
               "eval": "trajectories.jsonl.lock"}  # fmt: skip

# An override Hydra reads as `key=value` (no +, ++ or ~ prefix, no group path or package).
_PLAIN_OVERRIDE = re.compile(r"(?P<key>[A-Za-z_][\w.-]*)=(?P<value>.*)", re.DOTALL)
# Flags whose next argument is their value, never an override.
_FLAGS_WITH_VALUE = {
    "--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
    "--config-dir", "-cd", "--experimental-rerun",
}  # fmt: skip
# Hydra's modes, of which one command line may use one (flag -> mode).
_EXCLUSIVE_MODES = {
    "--run": "run", "-r": "run", "--multirun": "multirun", "-m": "multirun", "--cfg": "cfg",
    "-c": "cfg", "--info": "info", "-i": "info", "--shell-completion": "sc", "-sc": "sc",
}  # fmt: skip
# A value that needs no quoting in Hydra's override grammar.
_BARE_VALUE = re.compile(r"[\w./~:@+-]+")


class UsageError(ValueError):
    """A command-line mistake; the message says what is wrong and how to fix it."""


def config_groups() -> dict[str, list[str]]:
    """The config groups of ``agentgym.configs`` and their options (file names)."""
    root = resources.files("agentgym.configs")
    return {
        entry.name: sorted(
            item.name.removesuffix(".yaml")
            for item in entry.iterdir()
            if item.name.endswith(".yaml")
        )
        for entry in root.iterdir()
        if entry.is_dir() and not entry.name.startswith(("_", "."))
    }


def _quoted(value: str) -> str:
    if _BARE_VALUE.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sweep_items(value: str) -> list[str] | None:
    """The items of a simple sweep ``a,b,c`` (or one value); ``None`` for sweep functions."""
    if any(char in value for char in "()[]{}'\"$"):
        return None
    return [item.strip() for item in value.split(",")]


def rewrite_overrides(command: str, argv: Sequence[str]) -> list[str]:
    """Hydra overrides with plain keys made addable and ``model=<path or hub id>`` resolved.

    Raises:
        UsageError: A ``group=option`` override names no option of the group.
    """
    modes = [a for a in argv if a in _EXCLUSIVE_MODES]
    if len({_EXCLUSIVE_MODES[a] for a in modes}) > 1:
        raise UsageError(
            f"{' and '.join(modes)} cannot be combined: pass one of --run, --multirun (-m), "
            "--cfg (-c), --info (-i), --shell-completion (-sc)"
        )
    groups = config_groups()
    rewritten: list[str] = []
    takes_value = False
    for argument in argv:
        if takes_value or argument.startswith(("-", "+", "~")):
            takes_value = argument in _FLAGS_WITH_VALUE
            rewritten.append(argument)
            continue
        match = _PLAIN_OVERRIDE.fullmatch(argument)
        if match is None:
            rewritten.append(argument)  # Hydra reports malformed overrides itself
            continue
        key, value = match["key"], match["value"]
        if key.split(".")[0] == "hydra":
            rewritten.append(argument)
        elif key in groups:
            rewritten.append(_group_override(command, key, value, groups[key]))
        else:
            rewritten.append(f"++{argument}")
    return rewritten


def _group_override(command: str, group: str, value: str, options: list[str]) -> str:
    items = _sweep_items(value)
    if items is None or value == "null":
        return f"{group}={value}"
    unknown = [item for item in items if item not in options]
    if not unknown:
        return f"{group}={value}"
    if group == "model":
        # A checkpoint directory or a hub id (README: model= takes a registered name, a
        # local checkpoint directory or a hub id): the model section has only a name.
        return "model.name=" + ",".join(_quoted(item) for item in items)
    item = unknown[0]
    close = difflib.get_close_matches(item, options, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise UsageError(
        f"{group}={item} is not a{'n' if group[0] in 'aeiou' else ''} {group} config.{hint} "
        f"Valid: {', '.join(options)}"
    )


# ------------------------------------------------------------------------- run directory


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _writable(directory: Path) -> bool:
    """Try it: permission bits do not tell (root ignores them; read-only mounts refuse)."""
    try:
        probe = tempfile.mkdtemp(prefix=".agentgym-write-test-", dir=directory)
    except OSError:
        return False
    os.rmdir(probe)
    return True


def _locked(lock: Path) -> bool:
    """Whether another process holds the writer's lock on ``lock`` (released at once)."""
    if not lock.exists():
        return False
    probe = FileLock(lock)
    try:
        probe.acquire(blocking=False)
    except LockHeldError:
        return True
    except OSError:  # cannot even open it: the run directory check reports what is wrong
        return False
    probe.release()
    return False


def _differences(stored: Any, given: Any, prefix: str = "") -> list[str]:
    if isinstance(stored, Mapping) and isinstance(given, Mapping):
        keys = list(dict.fromkeys([*stored, *given]))
        return [d for k in keys for d in _differences(stored.get(k), given.get(k), f"{prefix}{k}.")]
    return [] if stored == given else [prefix.rstrip(".")]


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    plain = yaml.safe_load(yaml.safe_dump(dict(config)))  # compare as stored: YAML types
    return {k: v for k, v in plain.items() if k not in RESUMABLE_KEYS and k != "hydra"}


def run_dir_problems(
    path: str | os.PathLike[str], command: str, config: Mapping[str, Any] | None = None
) -> list[str]:
    """Why ``path`` cannot be this run's directory, each with the fix (empty: it can).

    ``config`` is the resolved config: a directory started with a different one is refused
    (train compares it with its ``config.yaml`` the way resuming does).

    >>> import tempfile, pathlib
    >>> file = pathlib.Path(tempfile.mkstemp()[1])
    >>> run_dir_problems(file, "rollout")  # doctest: +ELLIPSIS
    ['run_dir=... is a file, not a directory; pass run_dir=<a new or existing directory>']
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        return [f"run_dir={path} is a file, not a directory; pass run_dir=<a new or existing "
                "directory>"]  # fmt: skip
    existing = _nearest_existing(path)
    if not existing.is_dir():
        return [f"run_dir={path}: {existing} is a file, so the directory cannot be created; "
                "pass another run_dir="]  # fmt: skip
    if not _writable(existing):
        return [f"run_dir={path} is not writable ({existing} is read-only); pass "
                "run_dir=<a writable directory>"]  # fmt: skip
    if not path.is_dir():
        return []
    if _locked(path / _LOCK_FILES[command]):
        return [f"run_dir={path} is in use by another run (it holds the lock); wait for it "
                "to finish or pass another run_dir="]  # fmt: skip
    if config is None:
        return []
    if command == "train":
        return _train_config_problems(path, config)
    stored_file = path / RUN_CONFIG
    if not stored_file.exists():
        return []
    stored = yaml.safe_load(stored_file.read_text()) or {}
    differing = _differences(_comparable(stored), _comparable(config))
    if differing:
        return [f"run_dir={path} was started with a different config (differs in "
                f"{', '.join(differing[:6])}{', ...' if len(differing) > 6 else ''}); resume "
                f"with the same settings (see {stored_file}) or pass a new run_dir="]  # fmt: skip
    return []


def _train_config_problems(path: Path, config: Mapping[str, Any]) -> list[str]:
    if not (path / "config.yaml").exists():
        return []
    from agentgym.trainers.run import ConfigMismatchError, RunDir

    try:
        RunDir(path, config=config, readonly=True, tensorboard=False).close()
    except ConfigMismatchError as exc:
        keys = exc.keys
        return [f"run_dir={path} was started with a different config (differs in "
                f"{', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''}); resume with the "
                f"same settings (see {path / 'config.yaml'}) or pass a new run_dir="]  # fmt: skip
    return []


#: The stored config as it was before :func:`upgrade_stored_config` first added keys to it.
PRE_UPGRADE_CONFIG = "config.pre-upgrade.yaml"
_ABSENT = object()


def backfilled(
    stored: Mapping[str, Any], given: Mapping[str, Any], defaults: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """``stored`` plus the keys it lacks whose ``given`` value is the ``defaults`` value.

    Returns the completed copy and the dotted keys added. Keys are compared leaf by leaf: a
    section the stored config lacks is added only where the given values are the defaults.

    >>> stored = {"seed": 0, "rollout": {"episodes": 4}}
    >>> given = {"seed": 0, "rollout": {"episodes": 4, "mode": "async", "workers": 2},
    ...          "parallel": "replicate"}
    >>> defaults = {"seed": 1, "rollout": {"episodes": 8, "mode": "async", "workers": 1},
    ...             "parallel": "replicate"}
    >>> backfilled(stored, given, defaults)
    ({'seed': 0, 'rollout': {'episodes': 4, 'mode': 'async'}, 'parallel': 'replicate'}, \
['rollout.mode', 'parallel'])
    """
    from agentgym.trainers.run.config import same_value  # NaN == NaN, True != 1

    completed = dict(stored)
    added: list[str] = []
    for key, value in given.items():
        default = defaults.get(key, _ABSENT) if isinstance(defaults, Mapping) else _ABSENT
        if key in stored:
            if isinstance(stored[key], Mapping) and isinstance(value, Mapping):
                inner, inner_added = backfilled(stored[key], value, default)  # type: ignore[arg-type]
                completed[key] = inner
                added += [f"{key}.{name}" for name in inner_added]
        elif isinstance(value, Mapping) and value and isinstance(default, Mapping):
            inner, inner_added = backfilled({}, value, default)
            if inner_added:
                completed[key] = inner
                added += [f"{key}.{name}" for name in inner_added]
        elif default is not _ABSENT and same_value(value, default):
            completed[key] = value
            added.append(str(key))
    return completed, added


def upgrade_stored_config(
    path: str | os.PathLike[str],
    command: str,
    config: Mapping[str, Any],
    defaults: Mapping[str, Any],
) -> list[str]:
    """Give a run directory's stored config the keys it predates, at their defaults.

    A run directory keeps the config it started with, and a resume must give the same one.
    When a later agentgym adds a config key (``rollout.mode``, ``training.parallel``), no
    command line can leave that key out, so without this a directory started before the key
    existed could never be resumed. A key the stored config lacks is added to it when the
    resumed run's value is the packaged default for the same config groups (``defaults``):
    the run goes on with what a new run would get, and the user passes nothing new. A key
    set to anything else stays missing, so the resume is refused as before, naming it. The
    first upgrade keeps the original file as ``config.pre-upgrade.yaml``. A directory that
    another run holds, or that cannot be written, is left alone.

    Returns the dotted keys added (empty: nothing to do).
    """
    path = Path(path).expanduser()
    stored_file = path / RUN_CONFIG
    if not stored_file.is_file() or _locked(path / _LOCK_FILES[command]):
        return []
    try:
        text = stored_file.read_text()
        stored = yaml.safe_load(text) or {}
        # Compare as stored: YAML types.
        given, packaged = (yaml.safe_load(yaml.safe_dump(dict(c))) for c in (config, defaults))
        completed, added = backfilled(stored, given, packaged)
        if added:
            original = path / PRE_UPGRADE_CONFIG
            if not original.exists():
                write_atomic(original, text)
            write_atomic(
                stored_file, yaml.safe_dump(completed, sort_keys=False, allow_unicode=True)
            )
    except (OSError, yaml.YAMLError):
        return []  # the resume check then explains what differs
    return added


def check_run_dir(
    path: str | os.PathLike[str], command: str, config: Mapping[str, Any] | None = None
) -> None:
    """Raise :class:`UsageError` with :func:`run_dir_problems`' first problem, if any."""
    problems = run_dir_problems(path, command, config)
    if problems:
        raise UsageError(problems[0])


def store_run_config(path: str | os.PathLike[str], config: Mapping[str, Any]) -> None:
    """Keep a rollout/eval run's config in its directory (first run only), for resumes."""
    target = Path(path) / RUN_CONFIG
    if not target.exists():
        write_atomic(target, yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True))


# ------------------------------------------------------------------------- the command line

# Flags that inspect rather than run (print the config, help, completion) or run many jobs:
# no composition here (multirun jobs check their own configs).
_NO_PREFLIGHT = {
    "-m", "--multirun", "--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help",
    "--shell-completion", "-sc", "--version", "--resolve", "--experimental-rerun",
    "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
}  # fmt: skip


def _check_grammar(overrides: Sequence[str]) -> None:
    """Name the override Hydra cannot parse (its own message does not say which one)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for override in overrides:
        if override.startswith("-"):
            continue
        try:
            parser.parse_overrides([override])
        except OverrideParseException as exc:
            reason = str(exc).strip().splitlines()[0]
            raise UsageError(
                f"cannot read the override {override.lstrip('+')!r}: {reason}. Quote values "
                "with special characters, e.g. key='a value' (https://hydra.cc/docs/1.2/"
                "advanced/override_grammar/basic)"
            ) from None


def check_command_line(command: str, config_name: str, overrides: Sequence[str]) -> list[str]:
    """Compose the config as Hydra will and check it (:func:`agentgym.commands.check_config`).

    A run directory started before some of today's config keys existed first gets them at
    their defaults (:func:`upgrade_stored_config`).

    Returns:
        Notes for the user (the keys added to a resumed run's stored config).

    Raises:
        UsageError: Every mistake, with its fix (the config's problems all listed at once).
    """
    if any(argument.split("=", 1)[0] in _NO_PREFLIGHT for argument in overrides):
        return []
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from agentgym.commands import check_config
    from agentgym.config import ConfigError

    _check_grammar(overrides)
    try:
        with initialize_config_module("agentgym.configs", version_base="1.3"):
            cfg = compose(config_name, overrides=list(overrides))
            # The packaged defaults matter only to a run directory that already has a config.
            resumed = (Path(str(cfg.run_dir)).expanduser() / RUN_CONFIG).is_file()
            defaults = (
                compose(config_name, overrides=_group_choices(overrides)) if resumed else None
            )
    except (HydraException, OmegaConfBaseException) as exc:
        raise UsageError(str(exc).strip()) from None
    notes = []
    try:
        added: list[str] = []
        if defaults is not None:
            container, packaged = (OmegaConf.to_container(c, resolve=True) for c in (cfg, defaults))
            added = upgrade_stored_config(cfg.run_dir, command, container, packaged)  # type: ignore[arg-type]
        if added:
            notes.append(
                f"run_dir={cfg.run_dir} was started before agentgym had "
                f"{', '.join(added)}; resuming with their defaults (added to its config.yaml; "
                f"the original is kept in {PRE_UPGRADE_CONFIG})"
            )
        check_config(cfg, command)
    except (ConfigError, ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    return notes


def _group_choices(overrides: Sequence[str]) -> list[str]:
    """The overrides that pick a config group's option (``trainer=grpo``), nothing else.

    >>> _group_choices(["trainer=grpo", "++seed=3", "model.name=/ckpt", "+critic=oracle"])
    ['trainer=grpo', '+critic=oracle']
    """
    groups = config_groups()
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~").split("@")[0] in groups]
