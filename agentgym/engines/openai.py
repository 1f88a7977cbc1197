"""A generation engine that talks to an OpenAI-compatible HTTP server (vLLM, SGLang, ...).

:class:`OpenAIEngine` is a client: the model runs elsewhere (``vllm serve`` on another
machine, a hosted API) and the engine sends HTTP requests to it. It serves as the policy of a
rollout, as an expert that writes demonstrations, or as a critic that judges them.

Token level: :meth:`OpenAIEngine.generate` posts each token-id prompt to
``/v1/completions`` (the prompt *as a list of token ids*, so the server sees exactly the
tokens the rollout built). To give back the exact sampled ids it asks for two vLLM
extensions, which vLLM 0.32 answers as follows:

* ``return_token_ids: true``: each choice carries ``token_ids``, the sampled ids. This works
  without log-probabilities and includes the end-of-sequence token when the model produced
  one (e.g. ``[2]`` for SmolLM2's ``<|im_end|>``, with ``text == ""`` since special tokens
  are removed from the text, ``finish_reason == "stop"``, ``stop_reason == None``). When a
  stop *string* ends the completion, ``text`` is cut before it and ``token_ids`` end with the
  token that completed the stop string (``stop_reason`` is the string), the same convention
  as :class:`~agentgym.engines.base.Completion`.
* ``return_tokens_as_token_ids: true``: with ``logprobs``, every entry of
  ``logprobs.tokens`` is ``"token_id:<id>"`` instead of a text piece (the eos token appears
  as ``"token_id:2"`` too), so ids can be recovered even where ``token_ids`` is missing.

A server that ignores both (the OpenAI API, older vLLM) gets its ``text`` re-tokenised with
the engine's tokenizer instead: that is approximate (tokenisation drift, and the eos id is
appended only when the completion stopped and no stop strings were requested), it is logged
once and :attr:`OpenAIEngine.token_ids_exact` turns ``False``; log-probabilities are then
kept only when they line up with the re-tokenised ids. A server that *rejects* the unknown
fields with a 400 is retried once without them, and the engine stops sending them.

Log-probabilities are whatever the server computes. vLLM's default
(``--logprobs-mode raw_logprobs``) is the log-softmax of the raw logits, *before*
temperature, top-p and logit bias; start the server with
``--logprobs-mode processed_logprobs`` to get the log-probabilities of the distribution
actually sampled from, the convention of the in-process ``hf`` and ``vllm`` engines (needed
for importance ratios in policy-gradient training).

Chat level: :meth:`OpenAIEngine.chat` posts the conversations to ``/v1/chat/completions``
(the *server* applies its chat template, and ``tools`` go in OpenAI format) and returns
:class:`~agentgym.engines.base.Completion` records. Tool calls that the server parsed out of
the output (``message.tool_calls``) are written back into the text in Hermes format
(``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, the ``"hermes"`` parser of
:mod:`agentgym.core.parsing`), after the message content and after the ``reasoning`` as a
``<think>`` block. Token ids are the exact sampled ids when the server returns them (vLLM);
otherwise the *rendered* text is encoded with the engine's tokenizer (approximate, and empty
without a tokenizer). vLLM only accepts ``tools`` when started with
``--enable-auto-tool-choice --tool-call-parser hermes`` (or the parser matching the model);
otherwise it answers 400, and the engine then retries once with ``tool_choice: "none"``: the
tools still reach the chat template, and calls stay in the text for agentgym's parser.
:meth:`OpenAIEngine.complete_chat` returns the raw assistant message instead (a dict with
``content``, ``tool_calls``, ...), for experts and critics that want the structured form.
:meth:`Engine.chat <agentgym.engines.base.Engine.chat>`'s client-side templating stays
available by applying the tokenizer's chat template and calling :meth:`generate`.

Transport: one ``httpx.Client`` (connection pooling, a per-request ``timeout``) shared by a
thread pool of ``max_concurrency`` workers, so a batch of prompts is sent concurrently with
at most that many requests in flight and the results keep the order of the prompts. The calls
are blocking and use no event loop, so they work from any thread, including one where an
asyncio loop is running (a Jupyter cell). Connection errors, timeouts, 429 and 5xx are retried
``max_retries`` times with exponential backoff and jitter (a ``Retry-After`` header is
honoured); other 4xx fail at once. The final error (:class:`OpenAIEngineError`) names the
URL, the HTTP status and the server's message.

Example:
    >>> from agentgym.engines.openai import OpenAIEngine
    >>> from agentgym.engines.base import SamplingParams
    >>> engine = OpenAIEngine("http://127.0.0.1:8000", "tiny-random-llama",
    ...                       tokenizer="tiny-random-llama")        # doctest: +SKIP
    >>> prompt = engine.tokenizer.encode("Hello")                     # doctest: +SKIP
    >>> [[c]] = engine.generate([prompt], SamplingParams(temperature=0, max_tokens=4))
    ...                                                                # doctest: +SKIP
    >>> len(c.token_ids), c.finish_reason                             # doctest: +SKIP
    (4, 'length')
    >>> [[reply]] = engine.chat([[{"role": "user", "content": "Hi"}]],
    ...                         SamplingParams(max_tokens=8))         # doctest: +SKIP
    >>> engine.close()                                                # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from agentgym.engines.base import Completion, Engine, SamplingParams
from agentgym.engines.openai_wire import (
    MAX_WAIT_SECONDS,
    RETRY_STATUSES,
    TOKEN_ID_PREFIX,
    VLLM_TOKEN_FIELDS,
    OpenAIEngineError,
    finish_reason,
    normalise_base_url,
    normalise_tools,
    render_hermes,
    retry_after_seconds,
    server_message,
    wire_message,
)

__all__ = ["OpenAIEngine", "OpenAIEngineError", "render_hermes"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class OpenAIEngine(Engine):
    """Generation through an OpenAI-compatible HTTP server (see the module docstring).

    Args:
        base_url: The server, ``http(s)://host[:port][/prefix]``; a trailing ``/v1`` (as in
            the OpenAI SDK's ``base_url``) is accepted and not doubled.
        model: The model name the server serves (``--served-model-name`` for vLLM).
        api_key: Sent as ``Authorization: Bearer <key>``; default ``$OPENAI_API_KEY`` or
            ``"EMPTY"``.
        tokenizer: A model name or path for :func:`agentgym.models.resolve_model` whose
            Hugging Face tokenizer the engine exposes (chat templates, token-level prompts,
            re-tokenising text from servers that do not return ids). Loaded on first use.
        max_concurrency: Most requests in flight at once.
        timeout: Seconds per request (connect, each read and write).
        max_retries: Extra tries after a failure that is worth retrying (so up to
            ``max_retries + 1`` requests).
        backoff: The first wait between tries, in seconds; doubled each try, with jitter.
        extra_body: Extra JSON fields for every request, such as server-specific sampling
            options (vLLM's ``top_k``, ``min_p``, ``repetition_penalty``) or ``logit_bias``.

    Attributes:
        token_ids_exact: ``False`` once a response had to be re-tokenised (its ids are
            approximate), ``True`` before.
        max_model_len: The server's context length when it reports one (vLLM's
            ``/v1/models``), used to shorten ``max_tokens`` so requests fit; ``None`` when
            unknown.
    """

    name = "openai"

    @staticmethod
    def argument_problems(kwargs: Mapping[str, Any]) -> list[str]:
        """Values of constructor arguments this engine refuses (checked before any request).

        >>> OpenAIEngine.argument_problems({"base_url": "localhost:8000", "timeout": 0})
        ["base_url must start with http:// or https:// and name a host, got 'localhost:8000' \
(for example 'http://127.0.0.1:8000' or 'http://127.0.0.1:8000/v1').", 'timeout=0: must be > 0']
        """
        problems = []
        if "base_url" not in kwargs:
            problems.append(
                "base_url is required (e.g. engine.kwargs.base_url=http://127.0.0.1:8000)"
            )
        else:
            try:
                normalise_base_url(kwargs["base_url"])
            except ValueError as exc:
                problems.append(str(exc))
        limits = (("max_concurrency", 1, ">= 1"), ("timeout", 0, "> 0"),
                  ("max_retries", 0, ">= 0"), ("backoff", 0, ">= 0"))  # fmt: skip
        for key, bound, rule in limits:
            value = kwargs.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                too_small = value <= bound if rule == "> 0" else value < bound
                if too_small:
                    problems.append(f"{key}={value}: must be {rule}")
        return problems

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        tokenizer: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - vLLM and most setups bring httpx
            raise ImportError(
                "OpenAIEngine needs httpx (a dependency of agentgym): `pip install httpx`."
            ) from exc
        if not model:
            raise ValueError("model must be the name the server serves, got an empty value")
        problems = self.argument_problems(
            {"base_url": base_url, "max_concurrency": max_concurrency, "timeout": timeout,
             "max_retries": max_retries, "backoff": backoff}
        )  # fmt: skip
        if problems:
            raise ValueError("; ".join(problems))
        self.base_url = normalise_base_url(base_url)
        self.model = model
        self.tokenizer_name = tokenizer
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.extra_body = dict(extra_body or {})
        self.token_ids_exact = True
        self.max_model_len: int | None = None
        self._model_len_checked = False
        self._send_vllm_fields = True
        self._tools_need_fallback = False
        self._tokenizer: Any | None = None
        self._lock = threading.Lock()
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "EMPTY")
        self._client: Any | None = httpx.Client(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"OpenAIEngine(base_url={self.base_url!r}, model={self.model!r})"

    # ------------------------------------------------------------------ plumbing

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face tokenizer named by ``tokenizer=`` (loaded on first use)."""
        if self._tokenizer is None:
            if self.tokenizer_name is None:
                raise RuntimeError(
                    "This OpenAIEngine has no tokenizer: pass tokenizer=<model name or path> "
                    "(the model the server runs) to use token-level prompts, client-side chat "
                    "templates or re-tokenisation."
                )
            with self._lock:
                if self._tokenizer is None:
                    from transformers import AutoTokenizer

                    from agentgym.models import resolve_model

                    self._tokenizer = AutoTokenizer.from_pretrained(
                        resolve_model(self.tokenizer_name)
                    )
        return self._tokenizer

    def url(self, endpoint: str) -> str:
        """The full URL of an endpoint such as ``"completions"``."""
        return f"{self.base_url}/v1/{endpoint.lstrip('/')}"

    def _require_client(self) -> Any:
        if self._client is None:
            raise RuntimeError("This OpenAIEngine is closed; create a new one.")
        return self._client

    def _map(self, function: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        """``function`` over ``items`` with at most ``max_concurrency`` at once, in order."""
        if len(items) <= 1:
            return [function(item) for item in items]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.max_concurrency, thread_name_prefix="openai-engine"
                )
            pool = self._pool
        return list(pool.map(function, items))

    def _wait(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_WAIT_SECONDS)
        delay = min(self.backoff * 2**attempt, MAX_WAIT_SECONDS)
        return delay / 2 + random.uniform(0, delay / 2)  # "equal jitter"

    def post(self, endpoint: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST JSON to ``/v1/<endpoint>`` with retries; the decoded JSON response.

        Raises:
            OpenAIEngineError: After the last try, or at once for a 4xx other than 408/409/
                425/429, or when the response is not JSON.
        """
        import httpx

        client = self._require_client()
        url = self.url(endpoint)
        attempts = 0
        while True:
            attempts += 1
            retry_after: float | None = None
            try:
                response = client.post(url, json=payload)
            except httpx.TransportError as exc:  # connection refused/reset, timeouts
                status, message = None, f"{type(exc).__name__}: {exc or 'no details'}"
                if isinstance(exc, httpx.TimeoutException):
                    message += f" (timeout={self.timeout:g} s)"
            else:
                if response.is_success:
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise OpenAIEngineError(
                            url, response.status_code, f"response is not JSON: {exc}", attempts
                        ) from exc
                status, message = response.status_code, server_message(response)
                if status not in RETRY_STATUSES:
                    raise OpenAIEngineError(url, status, message, attempts)
                retry_after = retry_after_seconds(response)
            if attempts > self.max_retries:
                raise OpenAIEngineError(url, status, message, attempts)
            wait = self._wait(attempts - 1, retry_after)
            logger.warning(
                "POST %s failed (%s: %s); try %d of %d in %.2f s",
                url,
                status if status is not None else "no response",
                message[:200],
                attempts + 1,
                self.max_retries + 1,
                wait,
            )
            time.sleep(wait)

    def _post_with_fallbacks(self, endpoint: str, payload: dict[str, Any]) -> dict[str, Any]:
        """:meth:`post`, retried once without vLLM's extra fields or ``tools`` support."""
        if self._send_vllm_fields:
            payload = {**payload, **VLLM_TOKEN_FIELDS}
        if self._tools_need_fallback and "tools" in payload and "tool_choice" not in payload:
            payload = {**payload, "tool_choice": "none"}
        try:
            return self.post(endpoint, payload)
        except OpenAIEngineError as exc:
            message = exc.server_message
            if exc.status is None or not 400 <= exc.status < 500:
                raise
            if self._send_vllm_fields and any(key in message for key in VLLM_TOKEN_FIELDS):
                logger.warning(
                    "%s rejects vLLM's token-id fields (%s); sending requests without them, "
                    "so token ids come from re-tokenising the text (approximate).",
                    self.base_url,
                    message[:200],
                )
                self._send_vllm_fields = False
                payload = {k: v for k, v in payload.items() if k not in VLLM_TOKEN_FIELDS}
                return self._post_with_fallbacks(endpoint, payload)
            if (
                "tools" in payload
                and "tool_choice" not in payload
                and any(word in message for word in ("tool choice", "tool_choice", "tool-call"))
            ):
                logger.warning(
                    "%s does not parse tool calls (%s); sending tools with tool_choice='none' "
                    "so that calls stay in the text (start vLLM with --enable-auto-tool-choice "
                    "--tool-call-parser hermes to get structured tool_calls).",
                    self.base_url,
                    message[:200],
                )
                self._tools_need_fallback = True
                return self.post(endpoint, {**payload, "tool_choice": "none"})
            raise

    def _context_length(self) -> int | None:
        """The server's ``max_model_len`` from ``/v1/models`` (vLLM), looked up once."""
        if self._model_len_checked:
            return self.max_model_len
        with self._lock:
            if not self._model_len_checked:
                try:
                    response = self._require_client().get(self.url("models"))
                    models = response.json().get("data", []) if response.is_success else []
                    for entry in models:
                        if entry.get("id") == self.model and entry.get("max_model_len"):
                            self.max_model_len = int(entry["max_model_len"])
                except Exception as exc:  # optional information: never fail because of it
                    logger.debug("GET %s failed: %s", self.url("models"), exc)
                self._model_len_checked = True
        return self.max_model_len

    def _sampling_fields(self, params: SamplingParams) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            # vLLM refuses n > 1 with greedy decoding; all n would be the same anyway.
            "n": 1 if params.greedy else params.n,
        }
        if params.stop:
            fields["stop"] = list(params.stop)
        if params.seed is not None:
            fields["seed"] = params.seed
        fields.update(self.extra_body)
        return fields

    # ------------------------------------------------------------------ token ids

    def _mark_approximate(self, where: str) -> None:
        if self.token_ids_exact:
            logger.warning(
                "%s returned no token ids for %s; re-tokenising the text with %s instead "
                "(approximate). Use a vLLM server for exact ids.",
                self.base_url,
                where,
                self.tokenizer_name,
            )
            self.token_ids_exact = False

    def _encode(self, text: str) -> list[int]:
        if self.tokenizer_name is None:
            return []
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _token_ids(
        self, choice: Mapping[str, Any], tokens: Sequence[Any], text: str, stopped_at_eos: bool
    ) -> tuple[list[int], bool]:
        """(ids, exact): the choice's ``token_ids``, else ``token_id:<id>`` tokens, else encode."""
        ids = choice.get("token_ids")
        if isinstance(ids, list) and all(isinstance(t, int) for t in ids):
            return [int(t) for t in ids], True
        if tokens and all(isinstance(t, str) and t.startswith(TOKEN_ID_PREFIX) for t in tokens):
            return [int(t[len(TOKEN_ID_PREFIX) :]) for t in tokens], True
        self._mark_approximate("a completion")
        ids = self._encode(text)
        if stopped_at_eos and self.tokenizer_name is not None:
            eos = self.tokenizer.eos_token_id
            if eos is not None and (not ids or ids[-1] != eos):
                ids.append(int(eos))
        return ids, False

    @staticmethod
    def _aligned_logprobs(values: Sequence[Any], ids: Sequence[int], exact: bool) -> list[float]:
        """The log-probabilities, or ``[]`` when they do not line up with the token ids."""
        logprobs = [float(v) if v is not None else 0.0 for v in values]
        if len(logprobs) == len(ids):
            return logprobs
        if exact:
            logger.warning(
                "%d log-probabilities for %d token ids; dropping them.", len(logprobs), len(ids)
            )
        return []

    # ------------------------------------------------------------------ generation

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        """For each token-id prompt, ``params.n`` completions from ``/v1/completions``.

        One request per prompt, sent concurrently (at most ``max_concurrency`` in flight);
        the result keeps the order of ``prompts``. ``max_tokens`` is shortened to fit the
        server's context length when the server reports it. Greedy requests ask for one
        completion and repeat it ``n`` times (vLLM refuses ``n`` > 1 with temperature 0).
        """
        self._require_client()
        prompts = [[int(t) for t in prompt] for prompt in prompts]
        if not prompts:
            return []
        context = self._context_length()
        payloads = []
        for index, prompt in enumerate(prompts):
            if not prompt:
                raise ValueError(f"Prompt {index} is empty; it needs at least one token.")
            payload = {**self._sampling_fields(params), "prompt": prompt}
            if params.seed_for(index) is not None:
                payload["seed"] = params.seed_for(index)
            if context is not None:
                room = context - len(prompt)
                if room < 1:
                    raise ValueError(
                        f"Prompt {index} has {len(prompt)} tokens; the server's context "
                        f"length is {context}, so it needs 1 to {context - 1}."
                    )
                payload["max_tokens"] = min(params.max_tokens, room)
            if params.logprobs:
                payload["logprobs"] = 1
            payloads.append(payload)
        responses = self._map(lambda p: self._post_with_fallbacks("completions", p), payloads)
        return [self._completions(response, params) for response in responses]

    def _choices(
        self, response: Mapping[str, Any], params: SamplingParams, endpoint: str
    ) -> list[Mapping[str, Any]]:
        """The response's choices in order; a greedy request's one choice repeated ``n`` times."""
        choices = sorted(response.get("choices") or [], key=lambda c: c.get("index", 0))
        expected = 1 if params.greedy else params.n
        if len(choices) != expected:
            raise OpenAIEngineError(
                self.url(endpoint), 200, f"expected {expected} choices, got {len(choices)}", 1
            )
        return choices * params.n if params.greedy else choices

    def _completions(self, response: Mapping[str, Any], params: SamplingParams) -> list[Completion]:
        completions = []
        for choice in self._choices(response, params, "completions"):
            text = choice.get("text") or ""
            finish = finish_reason(choice.get("finish_reason"))
            logprob_block = choice.get("logprobs") or {}
            tokens = logprob_block.get("tokens") or []
            ids, exact = self._token_ids(
                choice, tokens, text, stopped_at_eos=finish == "stop" and not params.stop
            )
            logprobs: list[float] = []
            if params.logprobs:
                logprobs = self._aligned_logprobs(
                    logprob_block.get("token_logprobs") or [], ids, exact
                )
            completions.append(Completion(text, ids, logprobs, finish))
        return completions

    # ------------------------------------------------------------------ chat

    def _chat_payload(
        self,
        conversation: Sequence[Mapping[str, Any]],
        params: SamplingParams,
        tools: Sequence[Mapping[str, Any]] | None,
    ) -> dict[str, Any]:
        payload = {
            **self._sampling_fields(params),
            "messages": [wire_message(message) for message in conversation],
        }
        if tools:
            payload["tools"] = normalise_tools(tools)
        if params.logprobs:
            payload["logprobs"] = True
        return payload

    def chat(
        self,
        conversations: Sequence[Sequence[Mapping[str, Any]]],
        params: SamplingParams,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[list[Completion]]:
        """``params.n`` completions per conversation from ``/v1/chat/completions``.

        The server applies its chat template. Structured ``tool_calls`` are rendered into the
        text in Hermes format (see :func:`render_hermes`). Token ids are exact when the
        server returns them (vLLM), else the rendered text encoded with the tokenizer
        (approximate; empty without a tokenizer).
        """
        self._require_client()
        payloads = [self._chat_payload(c, params, tools) for c in conversations]
        responses = self._map(lambda p: self._post_with_fallbacks("chat/completions", p), payloads)
        return [self._chat_completions(response, params) for response in responses]

    def _chat_completions(
        self, response: Mapping[str, Any], params: SamplingParams
    ) -> list[Completion]:
        completions = []
        for choice in self._choices(response, params, "chat/completions"):
            message = choice.get("message") or {}
            text = render_hermes(message)
            finish = finish_reason(choice.get("finish_reason"))
            entries = (choice.get("logprobs") or {}).get("content") or []
            tokens = [entry.get("token") for entry in entries]
            ids, exact = self._token_ids(
                choice, tokens, text, stopped_at_eos=finish == "stop" and not params.stop
            )
            logprobs: list[float] = []
            if params.logprobs and entries:
                logprobs = self._aligned_logprobs(
                    [entry.get("logprob") for entry in entries], ids, exact
                )
            completions.append(Completion(text, ids, logprobs, finish))
        return completions

    def complete_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        params: SamplingParams,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The raw assistant message (``role``, ``content``, ``tool_calls``, ...) for one
        conversation, as the server returns it (one completion: ``params.n`` is ignored).
        The choice's ``finish_reason`` is added under that key.
        """
        self._require_client()
        payload = self._chat_payload(messages, params.with_(n=1), tools)
        payload.pop("logprobs", None)
        response = self._post_with_fallbacks("chat/completions", payload)
        choices = response.get("choices") or []
        if not choices:
            raise OpenAIEngineError(self.url("chat/completions"), 200, "no choices", 1)
        message = dict(choices[0].get("message") or {})
        message.setdefault("role", "assistant")
        message["finish_reason"] = choices[0].get("finish_reason")
        return message

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the HTTP client and the worker threads (idempotent)."""
        client, self._client = self._client, None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if client is not None:
            client.close()
