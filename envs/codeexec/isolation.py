"""How a run is isolated on this host: what is available, and the pieces that do it.

* :func:`detect_protections` (once per process): finds an interpreter the sandbox can run,
  learns what it needs to read (its binary, loader, standard library and the shared
  libraries its extension modules map: the new root's allowlist), then probes the
  protection sets from the strongest down (namespaces and a private root, as root or in
  a user namespace; cgroups; ``no_new_privs``) and keeps the first that works.
* :func:`command`, :func:`harness_settings`, :func:`minimal_env`: how a run is started.
* re-exported from :mod:`.resources`: :class:`MemoryCgroups`, :func:`lease_uids`,
  :func:`processes_of`, :func:`kill_uid`, :func:`remove_tree` (what a run holds and leaves).

Example:
    >>> capabilities = detect_protections()
    >>> {"process_group", "rlimits"} <= capabilities.protections
    True
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import logging
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agentgym.envs.codeexec import judge
from agentgym.envs.codeexec._session import Session
from agentgym.envs.codeexec.limits import Limits
from agentgym.envs.codeexec.resources import (
    MemoryCgroups,
    kill_uid,
    lease_uids,
    processes_of,
    release_leases,
    remove_tree,
    warn_once,
)

__all__ = [
    "ALL_PROTECTIONS",
    "NAMESPACE_FLAGS",
    "OPTIONAL_PROTECTIONS",
    "Capabilities",
    "MemoryCgroups",
    "command",
    "detect_protections",
    "harness_settings",
    "kill_uid",
    "lease_uids",
    "minimal_env",
    "processes_of",
    "release_leases",
    "remove_tree",
    "warn_once",
]

logger = logging.getLogger("agentgym.envs.codeexec.sandbox")

ALL_PROTECTIONS: tuple[str, ...] = (
    "process_group",
    "rlimits",
    "unprivileged_user",
    "network_namespace",
    "pid_namespace",
    "ipc_namespace",
    "private_mounts",
    "no_new_privs",
)
OPTIONAL_PROTECTIONS: tuple[str, ...] = ("memory_cgroup",)
NAMESPACE_FLAGS = (
    ("network_namespace", "--net"),
    ("pid_namespace", "--pid"),
    ("ipc_namespace", "--ipc"),
    ("private_mounts", "--mount"),
)
_HARNESS_SOURCE = (Path(__file__).with_name("_harness.py")).read_text(encoding="utf-8")

# ---------------------------------------------------------------------- detection --


def _candidate_interpreters() -> list[str]:
    found = [os.path.realpath(sys.executable)]
    for name in ("/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3")):
        if name and os.path.exists(name):
            found.append(os.path.realpath(name))
    return list(dict.fromkeys(found))


def _elf_interpreter(path: str) -> str | None:
    """The dynamic loader a 64-bit ELF binary names (its ``PT_INTERP``), if any."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(64)
            if header[:4] != b"\x7fELF" or header[4] != 2:
                return None
            order = "<" if header[5] == 1 else ">"
            (table,) = struct.unpack_from(order + "Q", header, 0x20)
            entry_size, entries = struct.unpack_from(order + "HH", header, 0x36)
            for index in range(entries):
                handle.seek(table + index * entry_size)
                entry = handle.read(entry_size)
                if struct.unpack_from(order + "I", entry, 0)[0] == 3:  # PT_INTERP
                    (offset,) = struct.unpack_from(order + "Q", entry, 8)
                    (size,) = struct.unpack_from(order + "Q", entry, 32)
                    handle.seek(offset)
                    return handle.read(size).rstrip(b"\0").decode()
    except (OSError, struct.error, UnicodeDecodeError):
        return None
    return None


def _readable_paths(python: str, facts: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What the new root shows (the allowlist) and site-packages folders masked inside it.

    The interpreter, its loader, its ``sys.path`` (the standard library) and the folders
    of every file mapped into an interpreter that imported each extension module it has.
    """
    wanted = {os.path.realpath(python)}
    loader = _elf_interpreter(python)
    if loader:
        wanted.add(loader)
    for folder in facts.get("path", []):
        if isinstance(folder, str) and os.path.exists(folder):
            wanted.add(os.path.realpath(folder))
    for mapped in facts.get("mapped", []):
        if not isinstance(mapped, str) or os.path.realpath(mapped) in wanted:
            continue  # the interpreter itself
        if os.path.isfile(mapped) and not mapped.startswith(("/proc/", "/dev/", "/sys/")):
            wanted.add(os.path.dirname(os.path.realpath(mapped)))
    if os.path.isfile("/etc/ld.so.cache"):
        wanted.add("/etc/ld.so.cache")
    expose: list[str] = []
    for path in sorted(wanted, key=len):
        if path != "/" and not any(path.startswith(done + "/") for done in expose):
            expose.append(path)
    masks = []
    for folder in expose:
        if not os.path.isdir(folder):
            continue
        for inner in (folder, *(e.path for e in _subfolders(folder))):
            masks += [e.path for e in _subfolders(inner) if e.name.endswith("-packages")]
    return tuple(expose), tuple(sorted(set(masks)))


def _subfolders(folder: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return [e for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _stage(expose: Sequence[str]) -> str | None:
    """A host directory to build the new root on: one that holds nothing it exposes."""
    for stage in ("/tmp", "/mnt", "/media", "/srv", "/opt", "/var/tmp", "/dev/shm"):
        if os.path.isdir(stage) and not os.path.islink(stage):
            inside = [p for p in expose if (os.path.realpath(p) + "/").startswith(stage + "/")]
            if not inside:
                return stage
    return None


_PROBE_PROGRAM = """
import marshal, os, sys

def probe(modules, harness):
    if modules is None:
        folders = [p for p in sys.path if p.endswith("lib-dynload") and os.path.isdir(p)]
        modules = sorted({n.split(".")[0] for f in folders for n in os.listdir(f)
                          if n.endswith(".so")})
    loaded = []
    for name in modules:
        try:
            __import__(name)
            loaded.append(name)
        except BaseException:
            pass
    with open("/proc/self/maps") as handle:
        mapped = sorted({parts[5].strip() for parts in (line.split(None, 5) for line in handle)
                         if len(parts) == 6})
    with open("/proc/self/status") as handle:
        status = dict(line.rstrip("\\n").split(":\\t", 1) for line in handle if ":\\t" in line)
    try:
        import collections, decimal, json, math, re  # what programs import all the time
        stdlib = True
    except BaseException:
        stdlib = False
    return {"path": [p for p in sys.path if p], "mapped": mapped, "loaded": loaded,
            "stdlib": stdlib, "uid": os.getuid(), "pid": os.getpid(),
            "no_new_privs": status.get("NoNewPrivs", "").strip(),
            "harness": marshal.dumps(compile(harness, "<string>", "exec", optimize=2))}
"""


# Runs the harness from its code object, compiled once by this very interpreter (in the
# probe): compiling the harness's source costs more than a millisecond per run.
_BOOTSTRAP = (
    "import binascii, marshal, sys; exec(marshal.loads(binascii.a2b_base64(sys.argv.pop(1))))"
)
_MAX_ARGUMENT = 120_000  # the kernel refuses a single argument over 128 KiB


def command(
    python: str, namespaces: Sequence[str], *, user_namespace: bool, harness: bytes | None = None
) -> list[str]:
    """The command line of one run, without the settings argument.

    ``harness`` is the harness's marshalled code (``None``: its source, compiled per run).
    """
    prefix: list[str] = []
    if namespaces:
        unshare = shutil.which("unshare") or "/usr/bin/unshare"
        prefix = [unshare, *(("--user", "--map-root-user") if user_namespace else ()), *namespaces]
        if "--pid" in namespaces:
            prefix += ["--fork", "--kill-child"]
        prefix.append("--")
    # -S: no site-packages; -s: no user site; -B: no .pyc files. The environment is ours
    # (PYTHONHASHSEED=0 keeps set/dict order of strings reproducible), so no -E/-I.
    encoded = binascii.b2a_base64(harness, newline=False).decode() if harness else ""
    code = [_BOOTSTRAP, encoded] if 0 < len(encoded) < _MAX_ARGUMENT else [_HARNESS_SOURCE]
    return [*prefix, python, "-S", "-s", "-B", "-c", *code]


def minimal_env(home: str) -> dict[str, str]:
    """The run's whole environment: nothing of the parent's is passed on."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": home,
        "TMPDIR": home,
        "PYTHONHASHSEED": "0",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONSAFEPATH": "1",
    }


@dataclass(frozen=True)
class Capabilities:
    """What :func:`detect_protections` found: the interpreter, protections and allowlist."""

    python: str
    protections: frozenset[str]
    user_namespace: bool
    expose: tuple[str, ...]
    mask: tuple[str, ...]
    stage: str | None
    notes: tuple[str, ...]
    cgroups: MemoryCgroups | None
    harness: bytes | None = None


def harness_settings(limits: Limits, **extra: object) -> dict:
    """The harness's settings for ``limits`` (see ``_harness.py``), plus ``extra``."""
    return {
        "rlimits": True,
        "cpu_s": limits.cpu_seconds,
        "memory_mb": limits.memory_mb,
        "file_size_mb": limits.file_size_mb,
        "open_files": limits.open_files,
        "processes": limits.processes,
        "tmpfs_mb": limits.tmpfs_mb,
        "tmpfs_files": limits.tmpfs_files,
        "private_mounts": False,
        "host_mount_namespace": _HOST_MOUNT_NAMESPACE,
        "drop": False,
        **extra,
    }


# The harness refuses to build a root in this mount namespace (a bug must not mount on us).
_HOST_MOUNT_NAMESPACE = os.readlink("/proc/self/ns/mnt")
_PROBE_LIMITS = Limits(timeout_s=30, memory_mb=1024, processes=64, startup_timeout_s=30)


def _probe(
    python: str,
    settings: dict,
    namespaces: Sequence[str],
    *,
    user_namespace: bool,
    workdir: str,
    modules: list[str] | None,
) -> dict | None:
    """Run the probe program with these protections; what it reports, or None."""
    session = Session(_PROBE_LIMITS)
    private = bool(settings.get("private_mounts"))
    try:
        session.start(
            command(python, namespaces, user_namespace=user_namespace),
            cwd="/" if private else workdir,
            env=minimal_env("/tmp/work" if private else workdir),
            settings=settings,
        )
        session.send({"program": _PROBE_PROGRAM})
        loaded = session.wait_for_program()
        if loaded is None or loaded.get("status") != "ok":
            return None
        facts = session.call("probe", (modules, _HARNESS_SOURCE), {})
    except (judge.RunOver, Exception) as exc:  # a failed probe means "not like this"
        logger.debug("sandbox probe failed: %s", exc)
        return None
    finally:
        uid = settings.get("uid")
        session.close(kill_first=None if uid is None else functools.partial(kill_uid, uid))
        if session.stderr and not session.ready:
            stderr = bytes(session.stderr[-2000:]).decode(errors="replace")
            logger.debug("sandbox probe: %s", stderr)
    return facts if isinstance(facts, dict) else None


@functools.lru_cache(maxsize=4)
def detect_protections(uid_base: int = 64_000) -> Capabilities:
    """Which protections work on this machine (probed once per process and ``uid_base``).

    First finds an interpreter the sandbox can run (and what it needs to read), then tries
    the strongest set of protections and drops what fails, so a machine without namespaces
    or without root still runs code, with the missing protections reported.
    """
    notes: list[str] = []
    root = os.geteuid() == 0
    unshare = shutil.which("unshare")
    if not root:
        notes.append("not running as root: the program runs as your own user")
    if not unshare:
        notes.append("the util-linux 'unshare' command is missing: no namespaces")
    uid, leases = None, []
    if root:
        (uid,), leases = lease_uids(1, uid_base)
    with contextlib.ExitStack() as stack:
        stack.callback(release_leases, leases)
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="agentgym-probe-"))
        # Prefer an interpreter the unprivileged uid can run; else run as ourselves.
        for probe_uid in (uid, None) if root else (None,):
            for python in _candidate_interpreters():
                owner = {} if probe_uid is None else {"uid": probe_uid, "gid": probe_uid}
                os.chown(workdir, probe_uid or os.geteuid(), probe_uid or os.getegid())
                settings = harness_settings(_PROBE_LIMITS, **owner)
                facts = _probe(
                    python, settings, (), user_namespace=False, workdir=workdir, modules=None
                )
                if facts is not None and facts.get("stdlib") is True:
                    return _strongest(python, facts, owner, bool(unshare), workdir, notes)
                if probe_uid is not None:
                    notes.append(
                        f"{python} cannot run as uid {probe_uid} (not readable by others?)"
                    )
    raise RuntimeError("No Python interpreter can run in the sandbox: " + "; ".join(notes) + ".")


def _strongest(
    python: str, facts: dict, owner: dict, unshare: bool, workdir: str, notes: list[str]
) -> Capabilities:
    """Probe the protection sets from the strongest down; the first that works."""
    root = os.geteuid() == 0
    expose, mask = _readable_paths(python, facts)
    stage = _stage(expose)
    modules = [str(name) for name in facts.get("loaded", [])]
    cgroups, why = MemoryCgroups.find() if root else (None, "not root")
    if cgroups is None:
        notes.append(
            f"no memory cgroup ({why}): a run's memory is bounded by processes x memory_mb"
        )
    # (namespaces, private file system); the private root needs its own mount namespace.
    ladder: list[tuple[tuple[str, ...], bool]] = [((), False)]
    if unshare:
        ladder = [
            (("--net", "--pid", "--ipc", "--uts", "--mount"), True),
            (("--net", "--pid", "--ipc", "--uts"), False),
            (("--net",), False),
            *ladder,
        ]
    for namespaces, private in ladder:
        if private and stage is None:
            continue
        for cgroup in (True, False) if cgroups is not None else (False,):
            settings = harness_settings(
                _PROBE_LIMITS,
                **owner,
                private_mounts=private,
                drop=True,
                expose=list(expose),
                mask=list(mask),
                stage=stage,
            )
            try:
                path = settings["cgroup"] = cgroups.create(_PROBE_LIMITS) if cgroup else None
            except OSError as exc:
                notes.append(f"cannot make a cgroup for a run: {exc}")
                continue
            try:
                user_namespace = bool(namespaces) and not root
                result = _probe(
                    python,
                    settings,
                    namespaces,
                    user_namespace=user_namespace,
                    workdir=workdir,
                    modules=modules,
                )
            finally:
                if path is not None:
                    cgroups.remove(path, 5.0)  # type: ignore[union-attr]
            if result is None:
                continue
            if private and set(result.get("loaded", [])) != set(modules):
                missing = sorted(set(modules) - set(result.get("loaded", [])))
                notes.append(f"modules {missing} do not load in the private file system")
                continue
            protections = {"process_group", "rlimits"}
            protections |= {name for name, flag in NAMESPACE_FLAGS if flag in namespaces}
            if owner and result.get("uid") == owner["uid"]:
                protections.add("unprivileged_user")
            if result.get("pid") != 1:
                protections.discard("pid_namespace")
            if not private:
                protections.discard("private_mounts")
            if result.get("no_new_privs") == "1":
                protections.add("no_new_privs")
            if cgroup:
                protections.add("memory_cgroup")
            if user_namespace:
                notes.append("the namespaces are made in a user namespace")
            harness = facts.get("harness")
            return Capabilities(
                python,
                frozenset(protections),
                user_namespace,
                expose,
                mask,
                stage,
                tuple(notes),
                cgroups if cgroup else None,
                harness if isinstance(harness, bytes) else None,
            )
    raise RuntimeError(f"{python} runs, but not even with resource limits alone.")
