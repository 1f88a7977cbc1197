"""Trajectories to training examples: token ids plus a loss mask, with no re-tokenisation drift.

A trajectory collected by a model engine carries the exact ids of every message
(``Message.token_ids``); those ids are used verbatim, so the trainer sees precisely what the
policy sampled and conditioned on. Trajectories without ids (scripted experts, files from
elsewhere) are tokenised the same way the collector builds contexts
(:class:`~agentgym.chat.TokenConversation`): the chat template's rendering, grown one message
at a time, so both kinds of trajectory produce identical ids for identical conversations.

Labels are ``-100`` (ignored by the loss) everywhere except on the ids of trainable messages
(the policy's own turns, end-of-turn token included).

Example:
    >>> from transformers import AutoTokenizer
    >>> from agentgym.core.trajectory import Message, Trajectory
    >>> from agentgym.models import resolve_model
    >>> tokenizer = AutoTokenizer.from_pretrained(resolve_model("tiny-random-llama"))
    >>> trajectory = Trajectory("env", "t", messages=[
    ...     Message("user", "2+2?"), Message("assistant", "4", trainable=True)])
    >>> example = trajectory_to_example(trajectory, tokenizer)
    >>> trained = [i for i, label in zip(example.input_ids, example.labels) if label != -100]
    >>> tokenizer.decode(trained)
    '4<|im_end|>'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agentgym.chat import TokenConversation
from agentgym.core.trajectory import Message, Trajectory

__all__ = [
    "IGNORE_INDEX",
    "TOKEN_FIELDS",
    "TrainingExample",
    "policy_gradient_example",
    "trajectories_to_examples",
    "trajectory_to_example",
]

#: Label value that the cross-entropy loss ignores.
IGNORE_INDEX = -100

#: Per-position float fields of a :class:`TrainingExample` (collated like ``labels``).
TOKEN_FIELDS = ("advantages", "behaviour_logprobs", "reference_logprobs")


@dataclass(frozen=True)
class TrainingExample:
    """One sequence to train on.

    The optional per-position fields have one value per entry of ``input_ids`` and are read
    only where ``labels`` is not ``IGNORE_INDEX`` (the value at position ``t`` belongs to the
    token at ``t``, which the model predicts from position ``t - 1``):

    Attributes:
        input_ids: The full token sequence.
        labels: ``input_ids`` where the loss applies, ``IGNORE_INDEX`` elsewhere.
        trajectory_id: Where it came from.
        advantages: Policy-gradient advantage of each trained token.
        behaviour_logprobs: Log-probability of each trained token under the policy that
            sampled it (the sampling distribution: temperature and top-p applied).
        reference_logprobs: Log-probability under the reference policy (KL penalty).
    """

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    trajectory_id: str = ""
    advantages: tuple[float, ...] | None = None
    behaviour_logprobs: tuple[float, ...] | None = None
    reference_logprobs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.input_ids) != len(self.labels):
            raise ValueError("input_ids and labels must have the same length")
        for name in TOKEN_FIELDS:
            values = getattr(self, name)
            if values is not None and len(values) != len(self.input_ids):
                raise ValueError(
                    f"{name} has {len(values)} values for {len(self.input_ids)} input ids"
                )

    @property
    def num_trained_tokens(self) -> int:
        """How many positions carry loss."""
        return sum(label != IGNORE_INDEX for label in self.labels)


def _has_exact_ids(messages: Sequence[Message]) -> bool:
    """Whether every non-system message carries ids (system text lives in the first prompt)."""
    return all(m.token_ids is not None for m in messages if m.role != "system")


def _ids_from_messages(messages: Sequence[Message]) -> tuple[list[int], list[bool]]:
    ids: list[int] = []
    trainable: list[bool] = []
    for message in messages:
        segment = message.token_ids or []
        ids.extend(segment)
        trainable.extend([message.trainable] * len(segment))
    return ids, trainable


def _ids_from_template(messages: Sequence[Message], tokenizer: Any) -> tuple[list[int], list[bool]]:
    first_reply = next((i for i, m in enumerate(messages) if m.role == "assistant"), len(messages))
    if first_reply == 0:
        raise ValueError("a trajectory must open with at least one non-assistant message")
    conversation = TokenConversation(
        tokenizer, [{"role": m.role, "content": m.content} for m in messages[:first_reply]]
    )
    trainable_flags = [False] * len(conversation.token_ids)
    end = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    for message in messages[first_reply:]:
        before = len(conversation.token_ids)
        if message.role == "assistant":
            body = tokenizer(message.content, add_special_tokens=False)["input_ids"]
            conversation.add_assistant([*body, *end])
        else:
            conversation.add_message(message.role, message.content)
        trainable_flags += [message.trainable and message.role == "assistant"] * (
            len(conversation.token_ids) - before
        )
    return conversation.token_ids, trainable_flags


def trajectory_to_example(
    trajectory: Trajectory,
    tokenizer: Any,
    *,
    max_length: int | None = None,
    drop_final_observation: bool = True,
) -> TrainingExample:
    """The training example of one trajectory.

    Args:
        trajectory: The episode.
        tokenizer: The policy's tokenizer (used only when the trajectory has no ids).
        max_length: Cut longer sequences to this many ids (the end is dropped).
        drop_final_observation: Leave out messages after the last trainable one (e.g. the
            evaluator's closing message): they carry no loss and only cost compute.
    """
    messages = list(trajectory.messages)
    if drop_final_observation:
        last = max((i for i, m in enumerate(messages) if m.trainable), default=len(messages) - 1)
        messages = messages[: last + 1]
    if _has_exact_ids(messages):
        ids, trainable = _ids_from_messages(messages)
    else:
        ids, trainable = _ids_from_template(messages, tokenizer)
    if max_length is not None:
        ids, trainable = ids[:max_length], trainable[:max_length]
    labels = [token if train else IGNORE_INDEX for token, train in zip(ids, trainable, strict=True)]
    return TrainingExample(tuple(ids), tuple(labels), trajectory.id)


def trajectories_to_examples(
    trajectories: Iterable[Trajectory], tokenizer: Any, *, max_length: int | None = None
) -> list[TrainingExample]:
    """Examples of every trajectory that has at least one trained token."""
    examples = (trajectory_to_example(t, tokenizer, max_length=max_length) for t in trajectories)
    return [example for example in examples if example.num_trained_tokens > 0]


def policy_gradient_example(
    trajectory: Trajectory,
    turn_advantages: Sequence[float],
    *,
    max_length: int | None = None,
) -> TrainingExample:
    """The policy-gradient example of a sampled trajectory: ids, advantages, behaviour log-probs.

    Every trainable message (one policy turn) is trained with its own advantage
    (``turn_advantages[k]`` for the ``k``-th trainable message); environment messages stay in
    the context with their loss masked. The behaviour log-probs are those the engine recorded
    while sampling (the distribution actually sampled from), so the trajectory must carry
    exact token ids and log-probs (a model engine's rollout, not a scripted expert's).

    Example:
        >>> from agentgym.core.trajectory import Message, Trajectory
        >>> trajectory = Trajectory("env", "t", messages=[
        ...     Message("user", "q", token_ids=[1, 2]),
        ...     Message("assistant", "a", trainable=True, token_ids=[3, 4], logprobs=[-0.5, -0.1]),
        ...     Message("user", "o", token_ids=[5]),
        ...     Message("assistant", "b", trainable=True, token_ids=[6], logprobs=[-2.0])])
        >>> example = policy_gradient_example(trajectory, [1.0, -1.0])
        >>> example.labels
        (-100, -100, 3, 4, -100, 6)
        >>> example.advantages, example.behaviour_logprobs
        ((0.0, 0.0, 1.0, 1.0, 0.0, -1.0), (0.0, 0.0, -0.5, -0.1, 0.0, -2.0))
    """
    messages = list(trajectory.messages)
    last = max((i for i, m in enumerate(messages) if m.trainable), default=-1)
    messages = messages[: last + 1]
    trainable = [m for m in messages if m.trainable]
    if len(turn_advantages) != len(trainable):
        raise ValueError(
            f"trajectory {trajectory.id!r} has {len(trainable)} policy turns but "
            f"{len(turn_advantages)} advantages were given"
        )
    ids: list[int] = []
    labels: list[int] = []
    advantages: list[float] = []
    behaviour: list[float] = []
    turn = 0
    for message in messages:
        if message.token_ids is None and message.role != "system":
            raise ValueError(
                f"trajectory {trajectory.id!r} has a {message.role} message without token ids; "
                "policy-gradient training needs a model engine's token-exact rollout"
            )
        segment = list(message.token_ids or [])
        ids += segment
        if message.trainable:
            if message.logprobs is None or len(message.logprobs) != len(segment):
                raise ValueError(
                    f"trajectory {trajectory.id!r}: policy turn {turn} has no log-prob per "
                    "sampled token (collect with SamplingParams(logprobs=True))"
                )
            labels += segment
            advantages += [float(turn_advantages[turn])] * len(segment)
            behaviour += [float(x) for x in message.logprobs]
            turn += 1
        else:
            labels += [IGNORE_INDEX] * len(segment)
            advantages += [0.0] * len(segment)
            behaviour += [0.0] * len(segment)
    if max_length is not None:
        ids, labels = ids[:max_length], labels[:max_length]
        advantages, behaviour = advantages[:max_length], behaviour[:max_length]
    return TrainingExample(
        tuple(ids),
        tuple(labels),
        trajectory.id,
        advantages=tuple(advantages),
        behaviour_logprobs=tuple(behaviour),
    )
