"""Request-level generation: submit one prompt at a time, collect completions as they finish.

:meth:`Engine.generate <agentgym.engines.base.Engine.generate>` is a batch call: it returns
when the slowest prompt of the batch is done. The asynchronous collector instead wants each
episode's next turn generated as soon as that episode's environment step is done, and each
completion back as soon as it is ready. :class:`CompletionQueue` is that contract:

* :meth:`~CompletionQueue.submit` hands over one :class:`GenerationRequest` (token ids, its
  own sampling parameters and seed, its own ``max_tokens``);
* :meth:`~CompletionQueue.poll` advances generation and returns the requests that finished
  (possibly none, for a queue that advances in small steps);
* :attr:`~CompletionQueue.continuous` says whether a request submitted while others are
  being generated joins them at once (continuous batching). The collector gathers a batch
  before polling a queue that is not continuous.

Two queues ship with agentgym:

* :class:`BatchingQueue` serves any :class:`~agentgym.engines.base.Engine`: each poll is
  one ``generate`` call over every request queued so far, exactly the call the synchronous
  collector makes (per-request seeds in ``prompt_seeds``, the largest ``max_tokens`` then
  each completion cut to its own). It is what ``Engine.completion_queue()`` returns by
  default (HF, OpenAI-compatible and test engines).
* :class:`VLLMStepQueue` (:meth:`VLLMEngine.completion_queue
  <agentgym.engines.vllm.VLLMEngine.completion_queue>`) adds each request to the in-process
  vLLM engine and runs one scheduler step per poll: a request joins the running batch at the
  next step and leaves it when done, whatever the others do.

A pool of engine replicas (e.g. Ray actors) fits the same contract: ``submit`` routes a
request to a replica, ``poll`` returns what any replica finished.

Reproducibility: a request carries its own seed, and both queues sample each request from a
stream that depends only on that seed, so a request gives the same completion whatever else
is batched with it (up to floating-point differences between batch shapes).

Example:
    >>> from agentgym.engines.base import SamplingParams
    >>> request = GenerationRequest("ep-1/0", [1, 2, 3], SamplingParams(max_tokens=8, seed=5))
    >>> request.params.seed, len(request.prompt)
    (5, 3)
"""

from __future__ import annotations

import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentgym.engines.base import Completion, Engine, SamplingParams

if TYPE_CHECKING:
    from agentgym.engines.vllm import VLLMEngine

__all__ = ["BatchingQueue", "CompletionQueue", "GenerationRequest", "VLLMStepQueue"]


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete once.

    Attributes:
        key: The caller's name for the request (returned with its completion).
        prompt: Token ids.
        params: Sampling parameters with ``n == 1``; ``params.seed`` is this request's seed
            and ``params.max_tokens`` its own budget.
    """

    key: Hashable
    prompt: list[int]
    params: SamplingParams

    def __post_init__(self) -> None:
        if self.params.n != 1:
            raise ValueError(f"a GenerationRequest asks for one completion, got n={self.params.n}")
        if self.params.prompt_seeds is not None:
            raise ValueError("a GenerationRequest's seed is params.seed, not prompt_seeds")


class CompletionQueue(ABC):
    """Requests in one at a time, completions out as they finish (see the module docstring).

    Attributes:
        continuous: Whether a request submitted during generation joins the running batch.
        calls: How many polls generated something (engine calls or scheduler steps).
        seconds: Wall time spent generating inside :meth:`poll`.
    """

    continuous: bool = False

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0

    @property
    @abstractmethod
    def pending(self) -> int:
        """Requests submitted and not yet returned by :meth:`poll`."""

    @abstractmethod
    def submit(self, request: GenerationRequest) -> None:
        """Queue ``request``; its completion comes back from a later :meth:`poll`."""

    @abstractmethod
    def poll(self) -> list[tuple[Hashable, Completion]]:
        """Advance generation; return ``(key, completion)`` of the requests that finished."""

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Drop the requests still pending (idempotent)."""


class BatchingQueue(CompletionQueue):
    """A :class:`CompletionQueue` over any engine: each poll is one ``generate`` call.

    Requests whose sampling parameters differ only in seed and ``max_tokens`` share a call
    (the largest budget; each completion is cut to its own, which an engine whose samples
    follow per-prompt seeds makes identical to asking for the smaller budget).

    Example:
        >>> from agentgym.engines.base import Completion, Engine, SamplingParams
        >>> class Echo(Engine):
        ...     tokenizer = None
        ...     def generate(self, prompts, params):
        ...         return [[Completion("", list(p) * 3)] for p in prompts]
        >>> queue = BatchingQueue(Echo())
        >>> queue.submit(GenerationRequest("a", [1, 2], SamplingParams(max_tokens=3)))
        >>> queue.submit(GenerationRequest("b", [7], SamplingParams(max_tokens=2)))
        >>> [(key, c.token_ids, c.finish_reason) for key, c in queue.poll()]
        [('a', [1, 2, 1], 'length'), ('b', [7, 7], 'length')]
        >>> queue.pending, queue.calls
        (0, 1)
    """

    continuous = False

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        self._queued: list[GenerationRequest] = []

    @property
    def pending(self) -> int:
        return len(self._queued)

    def submit(self, request: GenerationRequest) -> None:
        self._queued.append(request)

    def poll(self) -> list[tuple[Hashable, Completion]]:
        if not self._queued:
            return []
        groups: dict[SamplingParams, list[GenerationRequest]] = {}
        for request in self._queued:
            # Seeded and unseeded requests go to separate calls (seed 0 marks "seeded").
            seeded = request.params.seed is not None
            shared = request.params.with_(seed=0 if seeded else None, max_tokens=1)
            groups.setdefault(shared, []).append(request)
        self._queued = []
        finished: list[tuple[Hashable, Completion]] = []
        started = time.perf_counter()
        for shared, requests in groups.items():
            params = shared.with_(
                seed=None,
                max_tokens=max(r.params.max_tokens for r in requests),
                prompt_seeds=None
                if shared.seed is None
                else tuple(int(r.params.seed or 0) for r in requests),
            )
            results = self.engine.generate([r.prompt for r in requests], params)
            self.calls += 1
            for request, completions in zip(requests, results, strict=True):
                finished.append((request.key, cut(completions[0], request.params.max_tokens)))
        self.seconds += time.perf_counter() - started
        return finished

    def close(self) -> None:
        self._queued = []


def cut(completion: Completion, limit: int) -> Completion:
    """``completion`` shortened to ``limit`` tokens (then it ended by ``"length"``).

    Example:
        >>> cut(Completion("abc", [1, 2, 3], [-0.1, -0.2, -0.3], "stop"), 2)
        Completion(text='abc', token_ids=[1, 2], logprobs=[-0.1, -0.2], finish_reason='length')
    """
    if len(completion.token_ids) <= limit:
        return completion
    return Completion(
        text=completion.text,
        token_ids=completion.token_ids[:limit],
        logprobs=completion.logprobs[:limit],
        finish_reason="length",
    )


class VLLMStepQueue(CompletionQueue):
    """Continuous batching on an in-process :class:`~agentgym.engines.vllm.VLLMEngine`.

    ``submit`` adds a request to vLLM's scheduler (its own seed and budget); ``poll`` runs
    one engine step (a prefill chunk and/or one decoded token for every running request)
    and returns the requests that finished in it. A request submitted between two polls
    joins the batch at the next step. vLLM's per-request seeds make each completion
    independent of what it was batched with. The queue owns the engine while requests are
    pending: do not call ``engine.generate`` meanwhile (it would consume their outputs).
    """

    continuous = True

    def __init__(self, engine: VLLMEngine) -> None:
        super().__init__()
        self.engine = engine
        self._counter = itertools.count()
        self._in_flight: dict[str, tuple[Hashable, SamplingParams]] = {}

    @property
    def pending(self) -> int:
        return len(self._in_flight)

    def submit(self, request: GenerationRequest) -> None:
        import vllm
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        llm = self.engine._require_llm()
        if self.engine._asleep:
            self.engine.wake_up()
        prompt = [int(t) for t in request.prompt]
        room = self.engine.max_model_len - len(prompt)
        if not prompt or room < 1:
            raise ValueError(
                f"Request {request.key!r} has {len(prompt)} prompt tokens; it needs 1 to "
                f"{self.engine.max_model_len - 1} (max_model_len={self.engine.max_model_len})."
            )
        params = request.params
        sampling = vllm.SamplingParams(
            n=1,
            temperature=params.temperature,
            top_p=params.top_p,
            stop=list(params.stop) or None,
            logprobs=0 if params.logprobs else None,
            max_tokens=min(params.max_tokens, room),
            seed=params.seed,
            output_kind=RequestOutputKind.FINAL_ONLY,  # one output per request, when done
        )
        request_id = f"agentgym-{next(self._counter)}"
        engine_input: Any = TokensPrompt(prompt_token_ids=prompt)
        render = getattr(llm, "_preprocess_cmpl", None)  # vLLM's own path; older: raw prompt
        if callable(render):
            engine_input = render([engine_input])[0]
        llm.llm_engine.add_request(request_id, engine_input, sampling)
        self._in_flight[request_id] = (request.key, params)

    def poll(self) -> list[tuple[Hashable, Completion]]:
        if not self._in_flight:
            return []
        llm = self.engine._require_llm()
        started = time.perf_counter()
        outputs = llm.llm_engine.step()
        self.seconds += time.perf_counter() - started
        self.calls += 1
        finished = []
        for output in outputs:
            if not output.finished or output.request_id not in self._in_flight:
                continue
            key, params = self._in_flight.pop(output.request_id)
            finished.append((key, self.engine._completion(output.outputs[0], params)))
        return finished

    def close(self) -> None:
        if self._in_flight and self.engine.llm is not None:
            self.engine.llm.llm_engine.abort_request(list(self._in_flight))
        self._in_flight.clear()
