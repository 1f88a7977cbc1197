"""Token-exact multi-turn conversations over a chat template.

A multi-turn rollout must train on exactly the tokens the policy saw and sampled. Applying
the chat template to the whole conversation again at training time can give different ids
(a template that strips earlier reasoning, whitespace normalisation, a different split at a
message boundary). :class:`TokenConversation` therefore grows one token sequence
incrementally: the sampled ids are appended verbatim, and for every new environment message
it appends only the ids of the text the template adds, computed by rendering the
conversation before and after and taking the difference.

That difference is only meaningful when the template is *append-only*: rendering a longer
conversation must extend the rendering of the shorter one. Templates that rewrite earlier
turns break that, and :class:`ChatTemplateError` says so (with the first differing text)
instead of silently training on tokens the policy never saw.

Example:
    >>> from agentgym.models import resolve_model          # doctest: +SKIP
    >>> from transformers import AutoTokenizer              # doctest: +SKIP
    >>> tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))  # doctest: +SKIP
    >>> conv = TokenConversation(tok, [{"role": "user", "content": "2+2?"}])  # doctest: +SKIP
    >>> conv.add_assistant(tok.encode("4<|im_end|>"))        # doctest: +SKIP
    >>> conv.add_message("user", "And 3+3?")                # doctest: +SKIP
    >>> tok.decode(conv.token_ids).endswith("<|im_start|>assistant\\n")  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ChatTemplateError", "Segment", "TokenConversation"]


class ChatTemplateError(RuntimeError):
    """The chat template is not append-only, so token-exact multi-turn rollouts are impossible."""


@dataclass
class Segment:
    """A run of token ids that belongs to one message.

    Attributes:
        role: The message's role.
        content: The message's text.
        token_ids: Ids appended to the context for this message (template tokens included).
        trainable: Whether the ids were sampled by the policy.
        logprobs: Log-probabilities of the sampled ids (trainable segments).
    """

    role: str
    content: str
    token_ids: list[int]
    trainable: bool = False
    logprobs: list[float] | None = None


def _first_difference(a: str, b: str) -> int:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return min(len(a), len(b))


class TokenConversation:
    """One conversation as a growing, exact token sequence.

    Args:
        tokenizer: A Hugging Face tokenizer with a chat template.
        messages: The opening messages (system and first user turn).
        template_kwargs: Extra arguments for ``apply_chat_template`` (e.g. ``tools``).
        end_token_ids: Ids that end an assistant turn (default: the tokenizer's eos); they
            are kept in the token sequence but not in the message text.
    """

    def __init__(
        self,
        tokenizer: Any,
        messages: Sequence[Mapping[str, Any]],
        *,
        template_kwargs: Mapping[str, Any] | None = None,
        end_token_ids: Sequence[int] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        if end_token_ids is None:
            end_token_ids = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
        self.end_token_ids = frozenset(end_token_ids)
        self.template_kwargs = dict(template_kwargs or {})
        self.messages: list[dict[str, Any]] = [dict(m) for m in messages]
        prompt = self._render(self.messages, generation_prompt=True)
        ids = self._encode(prompt)
        # The opening prompt is one context segment, attributed to its last message.
        self.segments: list[Segment] = [
            Segment(m["role"], m["content"], []) for m in self.messages[:-1]
        ]
        last = self.messages[-1]
        self.segments.append(Segment(last["role"], last["content"], ids))
        self.token_ids: list[int] = list(ids)
        self._rendered = prompt  # text of token_ids, as the template writes it

    # ------------------------------------------------------------------ rendering --

    def _render(self, messages: Sequence[Mapping[str, Any]], *, generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            list(messages),
            tokenize=False,
            add_generation_prompt=generation_prompt,
            **self.template_kwargs,
        )

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ------------------------------------------------------------------ growing --

    def add_assistant(
        self, sampled_ids: Sequence[int], logprobs: Sequence[float] | None = None
    ) -> str:
        """Append the policy's sampled ids verbatim; return the message text they decode to.

        The message content is the decoded text without the trailing end-of-turn token(s),
        so that rendering the conversation reproduces the sampled text exactly (special
        tokens sampled mid-message stay in the text, as the template would write them).
        """
        body = list(sampled_ids)
        while body and body[-1] in self.end_token_ids:
            body.pop()
        content = self.tokenizer.decode(body, skip_special_tokens=False)
        self.messages.append({"role": "assistant", "content": content})
        self.segments.append(
            Segment(
                "assistant",
                content,
                list(sampled_ids),
                trainable=True,
                logprobs=list(logprobs) if logprobs is not None else None,
            )
        )
        self.token_ids.extend(sampled_ids)
        self._rendered += self.tokenizer.decode(list(sampled_ids), skip_special_tokens=False)
        return content

    def add_message(self, role: str, content: str) -> list[int]:
        """Append an environment message (``user`` or ``tool``) and a generation prompt.

        Returns the ids appended: what the template writes after the last sampled token
        (e.g. the newline after ``<|im_end|>``, or the whole end-of-turn marker when the
        completion was cut by ``max_tokens``), the message, and the next generation prompt.

        Raises:
            ChatTemplateError: When the template rewrites earlier turns.
        """
        previous = self._render(self.messages, generation_prompt=False)
        self.messages.append({"role": role, "content": content})
        extended = self._render(self.messages, generation_prompt=True)
        if not extended.startswith(previous):
            at = _first_difference(previous, extended)
            raise ChatTemplateError(
                "The chat template rewrites earlier turns when a message is added (text "
                f"differs at character {at}: {previous[at : at + 60]!r} became "
                f"{extended[at : at + 60]!r}), so the tokens of a multi-turn rollout would not "
                "be the tokens trained on. Use an append-only template (e.g. pass a custom "
                "chat_template that keeps past turns unchanged)."
            )
        if not previous.startswith(self._rendered):
            at = _first_difference(self._rendered, previous)
            raise ChatTemplateError(
                "The chat template renders the policy's message differently from the sampled "
                f"text (at character {at}: sampled {self._rendered[at : at + 60]!r}, template "
                f"{previous[at : at + 60]!r}). Token-exact rollouts need a template that writes "
                "assistant messages verbatim."
            )
        added_text = extended[len(self._rendered) :]
        ids = self._encode(added_text)
        self.segments.append(Segment(role, content, ids))
        self.token_ids.extend(ids)
        self._rendered = extended
        return ids
