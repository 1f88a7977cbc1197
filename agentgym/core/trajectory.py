"""Trajectory data model and a crash-safe, append-only JSONL store.

A :class:`Trajectory` is one episode of an LLM agent in an environment: the chat
:class:`Message` list the policy saw and produced (with token ids and log-probs where
known) and the environment :class:`Step` list (action, observation, reward, ...).
Together with ``env_id``, ``env_kwargs``, ``task_id`` and ``episode_seed``, the actions
are enough to rebuild any intermediate environment state, which is what restarting an
episode from a prefix of another one relies on.

:class:`TrajectoryStore` persists trajectories as one JSON object per line. Its
guarantees (a trainer's resume logic builds on them):

* a record is either completely on disk or absent after a crash (``kill -9``) at any
  point; a torn final line is repaired on the next writable open and its bytes are kept
  in ``<path>.torn``;
* appending a trajectory whose ``id`` is already stored is a no-op, so re-running the
  work that was interrupted never duplicates records;
* only one writer at a time (advisory ``flock`` on ``<path>.lock``).

>>> traj = Trajectory(env_id="echo-v0", task_id="t1", id="abc")
>>> traj.messages.append(Message("user", "say hi"))
>>> traj.messages.append(Message("assistant", "hi", trainable=True))
>>> traj.steps.append(Step(action="hi", observation="ok", reward=1.0, terminated=True))
>>> Trajectory.from_json(traj.to_json()) == traj
True
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from agentgym.core.durable import AppendOnlyFile, FileLock, LockHeldError, scan_jsonl

if TYPE_CHECKING:
    import datasets

__all__ = ["Message", "Role", "Step", "Trajectory", "TrajectoryStore"]

logger = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant", "tool"]
VALID_ROLES: tuple[str, ...] = get_args(Role)


def _check_keys(kind: str, data: Any, required: Iterable[str], allowed: Iterable[str]) -> None:
    """Reject non-dicts, missing required keys and unknown keys with one clear message.

    Unknown keys are an error rather than being dropped: silently ignoring them would
    hide schema drift between the code that wrote a record and the code reading it.
    """
    if not isinstance(data, dict):
        raise TypeError(f"{kind}.from_dict expects a dict, got {type(data).__name__}")
    missing = [key for key in required if key not in data]
    if missing:
        raise ValueError(f"{kind}.from_dict: missing required key(s) {missing}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(
            f"{kind}.from_dict: unknown key(s) {unknown}; valid keys are {sorted(allowed)}"
        )


def _field_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


@dataclass
class Message:
    """One chat message of an episode, in OpenAI chat format plus training annotations.

    ``trainable`` marks the messages the loss is computed on (the policy's own assistant
    turns); ``token_ids`` are the exact ids of the message as produced or seen during the
    rollout, chat-template tokens included, and ``logprobs`` has one entry per sampled token.

    >>> msg = Message("assistant", "hello", trainable=True, token_ids=[1, 2])
    >>> msg.to_dict()
    {'role': 'assistant', 'content': 'hello', 'trainable': True, 'token_ids': [1, 2]}
    >>> Message.from_dict(msg.to_dict()) == msg
    True
    """

    role: Role
    content: str
    trainable: bool = False
    tool_calls: list[dict] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None

    def __post_init__(self) -> None:
        if self.role not in VALID_ROLES:
            valid = ", ".join(VALID_ROLES)
            raise ValueError(f"unknown message role {self.role!r}; valid roles: {valid}")

    def to_dict(self) -> dict:
        """Return a JSON-safe dict; optional fields that are ``None`` are left out."""
        data: dict[str, Any] = {
            "role": self.role,
            "content": self.content,
            "trainable": self.trainable,
        }
        if self.tool_calls is not None:
            data["tool_calls"] = copy.deepcopy(self.tool_calls)
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            data["name"] = self.name
        if self.token_ids is not None:
            data["token_ids"] = list(self.token_ids)
        if self.logprobs is not None:
            data["logprobs"] = list(self.logprobs)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Message:
        """Inverse of :meth:`to_dict`; unknown roles or keys raise ``ValueError``.

        >>> Message.from_dict({"role": "robot", "content": "beep"})
        Traceback (most recent call last):
        ...
        ValueError: unknown message role 'robot'; valid roles: system, user, assistant, tool
        """
        _check_keys("Message", data, ("role", "content"), _MESSAGE_KEYS)
        return cls(**data)


_MESSAGE_KEYS = _field_names(Message)


@dataclass
class Step:
    """One environment transition: the agent's action and what the environment returned.

    ``action_valid`` is False when the action could not be parsed or executed,
    ``feedback`` is textual feedback for that action, ``progress`` an optional
    fraction of the task completed, and ``info`` holds JSON-safe extras.

    >>> step = Step(action="look", observation="a room", reward=0.0)
    >>> step.to_dict()["action_valid"]
    True
    >>> Step.from_dict(step.to_dict()) == step
    True
    """

    action: str
    observation: str
    reward: float
    terminated: bool = False
    truncated: bool = False
    action_valid: bool = True
    feedback: str = ""
    progress: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return a JSON-safe dict with every field (``info`` is deep-copied)."""
        return {
            "action": self.action,
            "observation": self.observation,
            "reward": self.reward,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "action_valid": self.action_valid,
            "feedback": self.feedback,
            "progress": self.progress,
            "info": copy.deepcopy(self.info),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Step:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        _check_keys("Step", data, ("action", "observation", "reward"), _STEP_KEYS)
        return cls(**data)


_STEP_KEYS = _field_names(Step)


@dataclass
class Trajectory:
    """A complete (or failed) episode: messages, environment steps and the outcome.

    ``parent_id``/``restart_step`` are set when the episode was restarted from the first
    ``restart_step`` actions of another trajectory; ``error`` holds the exception text when
    the environment failed mid-episode.

    >>> traj = Trajectory(env_id="maze-v0", task_id="7", id="t-1", created_at=0.0)
    >>> traj.steps.append(Step("north", "wall", 0.0, action_valid=False))
    >>> traj.actions, traj.num_steps
    (['north'], 1)
    >>> Trajectory.from_dict({**traj.to_dict(), "score": 1})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Trajectory.from_dict: unknown key(s) ['score']; valid keys are [...]
    """

    env_id: str
    task_id: str
    messages: list[Message] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    episode_seed: int | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    policy: str = ""
    iteration: int | None = None
    parent_id: str | None = None
    restart_step: int | None = None
    reward: float = 0.0
    success: bool | None = None
    terminated: bool = False
    truncated: bool = False
    truncation_reason: str | None = None
    verdicts: dict[str, Any] = field(default_factory=dict)
    feedback: str = ""
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    @property
    def actions(self) -> list[str]:
        """The actions taken, in order (replaying them after a seeded reset rebuilds state)."""
        return [step.action for step in self.steps]

    @property
    def num_steps(self) -> int:
        """Number of environment steps taken."""
        return len(self.steps)

    @property
    def trainable_messages(self) -> list[Message]:
        """The messages the training loss is computed on."""
        return [message for message in self.messages if message.trainable]

    def to_dict(self) -> dict:
        """Return a JSON-safe dict of every field; :meth:`from_dict` inverts it exactly."""
        data: dict[str, Any] = {}
        for name in _TRAJECTORY_KEYS:
            value = getattr(self, name)
            if name in ("messages", "steps"):
                value = [item.to_dict() for item in value]
            elif isinstance(value, dict):
                # Free-form dicts are copied so that editing the result never edits self.
                value = copy.deepcopy(value)
            data[name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Trajectory:
        """Inverse of :meth:`to_dict`. Unknown top-level keys raise ``ValueError``.

        Keys that are missing take their defaults, so records written before a field was
        added still load.
        """
        _check_keys("Trajectory", data, ("env_id", "task_id"), _TRAJECTORY_KEYS)
        kwargs = dict(data)
        kwargs["messages"] = [Message.from_dict(item) for item in data.get("messages", [])]
        kwargs["steps"] = [Step.from_dict(item) for item in data.get("steps", [])]
        return cls(**kwargs)

    def to_json(self) -> str:
        """Serialize to a single line of compact JSON (non-ASCII kept as is).

        >>> Trajectory("e", "t", id="x", created_at=1.5).to_json()[:40]
        '{"env_id":"e","task_id":"t","messages":['
        """
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str | bytes) -> Trajectory:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(line))


_TRAJECTORY_KEYS = _field_names(Trajectory)


def _encode_record(trajectory: Trajectory) -> bytes:
    """Encode one trajectory as a UTF-8 JSON line ending in a newline.

    ``ensure_ascii=False`` keeps files readable, but a lone surrogate (e.g. from a
    tokenizer decoding half a character with ``surrogateescape``) cannot be encoded as
    UTF-8; escaping that record as ASCII keeps it storable and still round-trips exactly.
    """
    text = trajectory.to_json()
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        ascii_text = json.dumps(trajectory.to_dict(), ensure_ascii=True, separators=(",", ":"))
        return ascii_text.encode("ascii") + b"\n"


def _record_id(line: bytes) -> str | None:
    """Return the id of a complete JSONL record, or None if the line is not a valid record."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    if not isinstance(record, dict):
        return None
    record_id = record.get("id")
    return record_id if isinstance(record_id, str) else None


class TrajectoryStore:
    """Append-only JSONL file of trajectories, safe against crashes (kill -9) at any point.

    Only the ids are kept in memory; iteration streams records from disk, so large
    stores stay cheap. A writable store holds an exclusive lock for its lifetime.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "runs" / "trajectories.jsonl"
    >>> with TrajectoryStore(path) as store:
    ...     store.append([Trajectory("e", "t", id="a"), Trajectory("e", "t", id="b")])
    ...     store.append(Trajectory("e", "t", id="a"))  # already stored: skipped
    2
    0
    >>> reader = TrajectoryStore(path, readonly=True)
    >>> len(reader), "b" in reader, [t.id for t in reader]
    (2, True, ['a', 'b'])
    """

    def __init__(
        self, path: str | os.PathLike, *, fsync: bool = True, readonly: bool = False
    ) -> None:
        self._path = Path(path)
        self._fsync = fsync
        self._readonly = readonly
        self._ids: set[str] = set()
        # 1-based numbers of lines that are not served by __iter__ (corrupt or duplicate).
        self._skipped_lines: set[int] = set()
        # Byte offset just past the last complete line; reads never go beyond it, which
        # keeps len() and iteration consistent even if the file grows behind a reader.
        self._end_offset = 0
        self._lock = FileLock(self.lock_path)
        self._file: AppendOnlyFile | None = None
        self._closed = False

        if readonly:
            if not self._path.is_file():
                raise FileNotFoundError(f"trajectory store {self._path} does not exist")
            self._scan(repair=False)
            return

        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self._file = AppendOnlyFile(self._path)
            self._scan(repair=True)
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- opening

    @property
    def lock_path(self) -> Path:
        """The lock file that serializes writers (``<path>.lock``)."""
        return self._path.with_name(self._path.name + ".lock")

    @property
    def torn_path(self) -> Path:
        """Where bytes of torn records removed during repair are kept (``<path>.torn``)."""
        return self._path.with_name(self._path.name + ".torn")

    def _acquire_lock(self) -> None:
        # A separate lock file (rather than the data file) keeps the lock independent of
        # the truncation done during repair, and it is never deleted: unlinking a lock
        # file lets two processes end up locking different inodes.
        try:
            self._lock.acquire(blocking=False)
        except LockHeldError:
            raise RuntimeError(
                f"cannot open trajectory store {self._path} for writing: another process "
                f"(or another open TrajectoryStore) holds the lock on {self.lock_path}; "
                "open it with readonly=True to read it concurrently"
            ) from None

    def _scan(self, *, repair: bool) -> None:
        """Index the ids of complete records and find (and, if ``repair``, fix) a torn tail."""
        scan = scan_jsonl(self._path, decode=_record_id)
        for line_number, _, record_id in scan.records:
            if record_id in self._ids:
                logger.warning(
                    "%s:%d: duplicate trajectory id %r; keeping the first occurrence",
                    self._path,
                    line_number,
                    record_id,
                )
                self._skipped_lines.add(line_number)
            else:
                self._ids.add(record_id)
        for bad_line in scan.invalid_lines:
            logger.warning(
                "%s:%d: skipping a line that is not a valid JSON trajectory record "
                "(left in place; inspect or remove it by hand)",
                self._path,
                bad_line,
            )
            self._skipped_lines.add(bad_line)

        self._end_offset = scan.good_end
        if not scan.torn:
            return
        if repair:
            assert self._file is not None
            self._file.repair(scan.good_end, self.torn_path)
            logger.warning(
                "%s: removed a torn final record (%d bytes, probably from a crash during "
                "append); its bytes were appended to %s",
                self._path,
                scan.size - scan.good_end,
                self.torn_path,
            )
        else:
            logger.warning(
                "%s: ignoring %d bytes of an incomplete final line "
                "(a writer is mid-append or crashed; the next writable open repairs it)",
                self._path,
                scan.size - scan.good_end,
            )

    # ----------------------------------------------------------------- writing

    def append(self, trajectories: Trajectory | Iterable[Trajectory]) -> int:
        """Append trajectories whose ids are not stored yet; return how many were written.

        All records of one call go to disk in a single ``os.write``, so a crash leaves
        either the whole batch or a prefix of it with at most one torn final line.
        """
        self._check_open()
        if self._readonly or self._file is None:
            raise PermissionError(f"trajectory store {self._path} was opened readonly")
        if isinstance(trajectories, Trajectory):
            trajectories = [trajectories]

        new_ids: set[str] = set()
        chunks: list[bytes] = []
        for trajectory in trajectories:
            if trajectory.id in self._ids or trajectory.id in new_ids:
                continue
            # Encoding everything before writing means a non-JSON-safe value fails the
            # call without touching the file.
            chunks.append(_encode_record(trajectory))
            new_ids.add(trajectory.id)
        if not chunks:
            return 0

        # One write for the batch; a failed write is truncated away, so the file stays
        # consistent with the in-memory index.
        self._end_offset += self._file.append(b"".join(chunks), fsync=self._fsync)
        self._ids.update(new_ids)
        return len(chunks)

    # ----------------------------------------------------------------- reading

    def __iter__(self) -> Iterator[Trajectory]:
        """Stream the stored trajectories from disk, in append order."""
        self._check_open()
        with open(self._path, "rb") as file:
            offset = 0
            for line_number, line in enumerate(file, start=1):
                offset += len(line)
                if offset > self._end_offset:
                    break
                if line_number in self._skipped_lines:
                    continue
                try:
                    yield Trajectory.from_json(line)
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"{self._path}:{line_number}: {exc}") from exc

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, trajectory_id: object) -> bool:
        return trajectory_id in self._ids

    @property
    def ids(self) -> frozenset[str]:
        """Ids of all stored trajectories."""
        return frozenset(self._ids)

    @property
    def path(self) -> Path:
        """Path of the JSONL file."""
        return self._path

    @property
    def readonly(self) -> bool:
        return self._readonly

    def read(self) -> list[Trajectory]:
        """Load every stored trajectory into memory."""
        return list(self)

    def to_dataset(self) -> datasets.Dataset:
        """Return the store as a Hugging Face ``datasets.Dataset`` with a fixed schema.

        Scalar fields become columns, ``messages`` a list of ``{role, content, trainable}``
        structs (the chat format TRL/transformers expect), and the free-form fields
        (``steps``, ``env_kwargs``, ``verdicts``, ``metadata``) JSON strings, so that rows
        whose dicts have different keys never break Arrow's schema inference.
        """
        # Imported here: the conversion imports ``datasets``, which takes seconds.
        from agentgym.core.trajectory_dataset import trajectories_to_dataset

        return trajectories_to_dataset(self)

    # ----------------------------------------------------------------- lifecycle

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"trajectory store {self._path} is closed")

    def close(self) -> None:
        """Release the file and the writer lock. Safe to call more than once."""
        self._closed = True
        if self._file is not None:
            self._file.close()
            self._file = None
        self._lock.release()

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "readonly" if self._readonly else "writable"
        state = "closed" if self._closed else mode
        return f"TrajectoryStore({str(self._path)!r}, {len(self)} trajectories, {state})"
