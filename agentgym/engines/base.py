"""One interface for every generation engine (Hugging Face, vLLM, OpenAI-compatible, ...).

The token-level call is the contract: ``generate(prompts, params)`` takes token-id prompts
and returns, for each prompt, ``params.n`` :class:`Completion` records holding the exact
sampled token ids, their log-probabilities and the decoded text. Rollouts build prompts
token by token and store exactly what was sampled, so training sees precisely the tokens
the policy produced (no re-tokenisation drift). ``chat`` is the convenience layer: it
applies the engine tokenizer's chat template and calls ``generate``.

Example:
    >>> params = SamplingParams(temperature=0.0, max_tokens=16, stop=["\\n\\n"])
    >>> params.greedy
    True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from agentgym.engines.requests import CompletionQueue

__all__ = ["Completion", "Engine", "SamplingParams"]

FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample.

    Attributes:
        temperature: 0 means greedy decoding.
        top_p: Nucleus sampling mass (1.0: off).
        max_tokens: Largest number of new tokens per completion.
        stop: Strings that end a completion; the text is cut before the stop string and
            the token ids after the token that completed it are dropped.
        n: Completions per prompt.
        seed: Seed for sampling (``None``: engine default). Same seed, same samples.
        logprobs: Whether to return the log-probability of each sampled token.
        prompt_seeds: One seed per prompt of a ``generate`` call, overriding ``seed``. The
            collector derives them from each episode's id and turn, so that two episodes
            with the same prompt (K samples of one task) still sample differently while a
            re-run reproduces every episode.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 128
    stop: tuple[str, ...] = ()
    n: int = 1
    seed: int | None = None
    logprobs: bool = True
    prompt_seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.temperature < 0:
            problems.append(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            problems.append(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.n < 1:
            problems.append(f"n must be >= 1, got {self.n}")
        if self.prompt_seeds is not None:
            object.__setattr__(self, "prompt_seeds", tuple(int(x) for x in self.prompt_seeds))
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if problems:
            raise ValueError("Invalid SamplingParams: " + "; ".join(problems))

    @property
    def greedy(self) -> bool:
        """Whether decoding is greedy (temperature 0)."""
        return self.temperature == 0.0

    def seed_for(self, index: int) -> int | None:
        """The seed of prompt ``index`` of a call: its own ``prompt_seeds`` entry, else ``seed``.

        Example:
            >>> SamplingParams(seed=3, prompt_seeds=(7, 8)).seed_for(1)
            8
            >>> SamplingParams(seed=3).seed_for(1)
            3
        """
        if self.prompt_seeds is None:
            return self.seed
        if not 0 <= index < len(self.prompt_seeds):
            raise ValueError(
                f"prompt_seeds has {len(self.prompt_seeds)} seeds; prompt {index} has none "
                "(give one seed per prompt)"
            )
        return self.prompt_seeds[index]

    def with_(self, **changes: Any) -> SamplingParams:
        """A copy with some fields changed."""
        return replace(self, **changes)


@dataclass
class Completion:
    """One sampled continuation of a prompt.

    Attributes:
        text: The decoded text (special tokens removed, cut before a stop string).
        token_ids: The exact sampled token ids, including the end-of-turn token when the
            model produced one.
        logprobs: Log-probability of each sampled token under the sampling policy
            (empty when not requested).
        finish_reason: ``"stop"`` (end-of-sequence or stop string), ``"length"``
            (``max_tokens`` reached) or ``"error"``.
    """

    text: str
    token_ids: list[int]
    logprobs: list[float] = field(default_factory=list)
    finish_reason: FinishReason = "stop"


class Engine(ABC):
    """A text generator over batches of token-id prompts."""

    #: Short name for logs and trajectories (e.g. ``"hf"``, ``"vllm"``).
    name: str = "engine"

    @property
    @abstractmethod
    def tokenizer(self) -> Any:
        """The Hugging Face tokenizer whose chat template and vocabulary the engine uses."""

    @abstractmethod
    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        """For each token-id prompt, ``params.n`` completions (batched in one call)."""

    def chat(
        self,
        conversations: Sequence[Sequence[Mapping[str, Any]]],
        params: SamplingParams,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[list[Completion]]:
        """Apply the chat template (with a generation prompt) to each conversation and generate."""
        prompts = [
            self.tokenizer.apply_chat_template(
                list(conversation),
                tools=list(tools) if tools else None,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
            )
            for conversation in conversations
        ]
        return self.generate(prompts, params)

    def completion_queue(self) -> CompletionQueue:
        """A request-level view of the engine for asynchronous rollouts.

        The default batches whatever is queued into one :meth:`generate` call per poll
        (see :mod:`agentgym.engines.requests`); engines with continuous batching override it.
        """
        from agentgym.engines.requests import BatchingQueue

        return BatchingQueue(self)

    def update_weights(self, model: Any) -> None:
        """Load the weights of a trainer's model (a ``torch.nn.Module``) into the engine."""
        raise NotImplementedError(f"{type(self).__name__} cannot update its weights in place.")

    def close(self) -> None:  # noqa: B027
        """Release the engine's resources (idempotent)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
