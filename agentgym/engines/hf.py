"""A generation engine on Hugging Face ``transformers`` (``model.generate``).

:class:`HFEngine` is the reference engine: it needs nothing beyond ``transformers``, runs on
CPU or GPU, and can share the trainer's model object (``model_instance=``), so rollouts always
come from the current policy without a copy or a weight transfer. Prompts are token ids;
batches are left-padded with an attention mask and generated in chunks of
``max_batch_size``. Each :class:`~agentgym.engines.base.Completion` holds the exact sampled
ids (up to and including the end-of-sequence token, no padding) and the log-probability of
each under the distribution it was sampled from (after temperature and top-p; greedy
decoding reports the temperature-1 log-probabilities).

Seeds: with ``SamplingParams.seed`` alone, a call samples all its rows from one stream
seeded by it. With ``prompt_seeds`` every row draws from its own generator, seeded by its
prompt's seed (and its sample index when ``n`` > 1), so a prompt's completion does not depend
on which other prompts share the call: the asynchronous collector, which batches episodes
differently from the synchronous one, gets the same samples.

Example:
    >>> from agentgym.engines.hf import HFEngine
    >>> from agentgym.engines.base import SamplingParams
    >>> engine = HFEngine("tiny-random-llama")                       # doctest: +SKIP
    >>> prompt = engine.tokenizer.encode("Hello")                    # doctest: +SKIP
    >>> params = SamplingParams(temperature=0, max_tokens=4)
    >>> [[c]] = engine.generate([prompt], params)                    # doctest: +SKIP
    >>> len(c.token_ids), c.finish_reason                            # doctest: +SKIP
    (4, 'length')
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from agentgym.engines.base import Completion, Engine, FinishReason, SamplingParams

__all__ = ["HFEngine"]

logger = logging.getLogger(__name__)

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


def _torch_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"auto"`` means float32 on CPU (bf16 is emulated and slow there) and bfloat16 on GPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else torch.bfloat16
    try:
        return _DTYPES[dtype.lower()]
    except KeyError:
        raise ValueError(
            f"Unknown dtype {dtype!r}. Valid: auto, {', '.join(sorted(_DTYPES))}"
        ) from None


def _as_id_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.flatten().tolist()]
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def _load_tokenizer(path: str | Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


class _LogprobRecorder:
    """The last logits processor: records log-probs of the tokens generate() samples.

    At step ``t`` it sees the final processed scores (the sampling distribution) and keeps
    their log-softmax; at step ``t + 1`` the token sampled at ``t`` is the last column of
    ``input_ids``, so only its log-prob is kept and the full-vocabulary tensor is dropped.
    Memory stays at one ``(batch, vocab)`` tensor whatever ``max_tokens`` is.
    """

    def __init__(self) -> None:
        self.collected: list[torch.Tensor] = []
        self.pending: torch.Tensor | None = None

    def _gather(self, last_tokens: torch.Tensor) -> None:
        if self.pending is not None:
            picked = self.pending.gather(-1, last_tokens.view(-1, 1).to(self.pending.device))
            self.collected.append(picked.squeeze(-1))
            self.pending = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self._gather(input_ids[:, -1])
        self.pending = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        """``(batch, new_tokens)`` log-probs of the generated tokens."""
        self._gather(sequences[:, -1])
        if not self.collected:
            return torch.zeros(sequences.shape[0], 0)
        return torch.stack(self.collected, dim=1).cpu()


class _StopStringCriteria:
    """Marks a row finished once its generated text contains one of the stop strings."""

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.prompt_length = prompt_length
        self.done: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        if self.done is None:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool)
        generated = input_ids[:, self.prompt_length :].tolist()
        for row, ids in enumerate(generated):
            if not self.done[row]:
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                self.done[row] = any(stop in text for stop in self.stop)
        return self.done.clone().to(input_ids.device)


class HFEngine(Engine):
    """Batched generation with ``transformers`` ``model.generate``.

    Args:
        model: A registered model name, a local checkpoint directory or a hub id (see
            :func:`agentgym.models.resolve_model`). With ``model_instance`` it only names
            where the tokenizer comes from (unless ``tokenizer`` is given).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... (ignored with ``model_instance``:
            the instance's own device is used).
        dtype: ``"float32"`` (default; the fast choice on CPUs without native bf16),
            ``"bfloat16"``, ``"float16"`` or ``"auto"`` (float32 on CPU, bfloat16 on GPU).
        model_instance: A loaded ``transformers`` causal LM (e.g. the trainer's model) to
            generate with directly: no copy, no weight transfer.
        max_batch_size: Sequences per ``generate`` call (prompts x ``n`` are chunked).
        tokenizer: A tokenizer to use instead of loading the one of ``model``.

    Example:
        >>> from agentgym.engines.hf import HFEngine
        >>> from agentgym.engines.base import SamplingParams
        >>> engine = HFEngine("tiny-random-llama")                       # doctest: +SKIP
        >>> out = engine.chat([[{"role": "user", "content": "Hi"}]],
        ...                   SamplingParams(temperature=0, max_tokens=8))  # doctest: +SKIP
        >>> len(out[0][0].token_ids) <= 8                                # doctest: +SKIP
        True
    """

    name = "hf"

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        device: str = "cpu",
        dtype: str = "float32",
        model_instance: Any | None = None,
        max_batch_size: int = 16,
        tokenizer: Any | None = None,
    ) -> None:
        problems = self.argument_problems(
            {"device": device, "dtype": dtype, "max_batch_size": max_batch_size}
        )
        if problems:
            raise ValueError("; ".join(problems))
        self.max_batch_size = max_batch_size
        self.model_name = str(model)
        if model_instance is not None:
            self.model = model_instance
            self.device = next(model_instance.parameters()).device
            if tokenizer is None:
                tokenizer = _load_tokenizer(self._tokenizer_source(model, model_instance))
        else:
            from transformers import AutoModelForCausalLM

            from agentgym.models import resolve_model

            self.device = torch.device(device)
            path = resolve_model(model)
            started = time.perf_counter()
            self.model = AutoModelForCausalLM.from_pretrained(
                path, dtype=_torch_dtype(dtype, self.device)
            ).to(self.device)
            self.model.eval()
            if tokenizer is None:
                tokenizer = _load_tokenizer(path)
            logger.debug("Loaded %s in %.1f s", path, time.perf_counter() - started)
        self._tokenizer = tokenizer
        self.eos_token_ids = self._eos_ids()
        if not self.eos_token_ids:
            raise ValueError(
                f"Neither the model's generation_config nor the tokenizer of {model!r} "
                "defines an end-of-sequence token; generation could never stop early."
            )
        pad = self._tokenizer.pad_token_id
        self.pad_token_id = int(pad) if pad is not None else self.eos_token_ids[0]

    @staticmethod
    def argument_problems(kwargs: dict[str, Any]) -> list[str]:
        """Values of constructor arguments this engine refuses (checked before loading).

        >>> HFEngine.argument_problems({"dtype": "fp8", "max_batch_size": 0})
        ["dtype='fp8' is not known; valid: auto, bf16, bfloat16, float, float16, float32, \
fp16, fp32, half", 'max_batch_size=0: must be >= 1']
        """
        problems = []
        dtype = kwargs.get("dtype", "float32")
        if isinstance(dtype, str) and dtype != "auto" and dtype.lower() not in _DTYPES:
            valid = ", ".join(["auto", *sorted(_DTYPES)])
            problems.append(f"dtype={dtype!r} is not known; valid: {valid}")
        device = kwargs.get("device", "cpu")
        if isinstance(device, str):
            try:
                torch.device(device)
            except RuntimeError:
                problems.append(f"device={device!r} is not a torch device; use cpu, cuda or cuda:N")
        batch = kwargs.get("max_batch_size", 16)
        if isinstance(batch, int) and batch < 1:
            problems.append(f"max_batch_size={batch}: must be >= 1")
        return problems

    @staticmethod
    def _tokenizer_source(model: str, model_instance: Any) -> str | Path:
        """The tokenizer location for a given model instance: ``model`` if it resolves."""
        from agentgym.models import MODELS, resolve_model

        if str(model) in MODELS or Path(str(model)).expanduser().is_dir():
            return resolve_model(model)
        name_or_path = getattr(getattr(model_instance, "config", None), "_name_or_path", "")
        if name_or_path and Path(name_or_path).is_dir():
            return name_or_path
        return resolve_model(model)

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        generation_config = getattr(self.model, "generation_config", None)
        for value in (
            getattr(generation_config, "eos_token_id", None),
            self._tokenizer.eos_token_id,
        ):
            for token in _as_id_list(value):
                if token not in ids:
                    ids.append(token)
        return ids

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face tokenizer (chat template, vocabulary, decoding)."""
        return self._tokenizer

    # ------------------------------------------------------------------ generation

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        """For each token-id prompt, ``params.n`` completions (see the module docstring)."""
        prompts = [[int(t) for t in prompt] for prompt in prompts]
        if not prompts:
            return []
        for index, prompt in enumerate(prompts):
            if not prompt:
                raise ValueError(f"Prompt {index} is empty; every prompt needs >= 1 token.")
        expanded = [prompt for prompt in prompts for _ in range(params.n)]
        results: list[Completion] = []
        row_seeds = _row_seeds(params, len(prompts))
        # One seeded stream for the call, unless each row has its own generator.
        stream_seed = params.seed if params.prompt_seeds is None else None
        with self._eval_mode(), self._rng(stream_seed), torch.no_grad():
            for start in range(0, len(expanded), self.max_batch_size):
                chunk = expanded[start : start + self.max_batch_size]
                chunk_seeds = row_seeds[start : start + self.max_batch_size] if row_seeds else None
                results.extend(self._generate_chunk(chunk, params, chunk_seeds))
        return [results[i * params.n : (i + 1) * params.n] for i in range(len(prompts))]

    @contextlib.contextmanager
    def _eval_mode(self) -> Iterator[None]:
        """Eval mode (no dropout) while generating; a trainer's model gets its mode back."""
        was_training = bool(getattr(self.model, "training", False))
        self.model.eval()
        try:
            yield
        finally:
            if was_training:
                self.model.train()

    @contextlib.contextmanager
    def _rng(self, seed: int | None) -> Iterator[None]:
        """Seeded sampling on a forked RNG, so the global RNG state is left untouched."""
        if seed is None:
            yield
            return
        devices = []
        if self.device.type == "cuda":
            devices = [self.device.index if self.device.index is not None else 0]
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def _generate_chunk(
        self, prompts: list[list[int]], params: SamplingParams, row_seeds: list[int] | None = None
    ) -> list[Completion]:
        from transformers import (
            GenerationConfig,
            LogitsProcessorList,
            StoppingCriteriaList,
            TemperatureLogitsWarper,
            TopPLogitsWarper,
        )

        width = max(len(prompt) for prompt in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            attention_mask[row, width - len(prompt) :] = 1

        # The temperature / top-p warpers are passed explicitly (and HF's own are disabled)
        # so that the recorder runs after them and sees the distribution actually sampled.
        recorder = _LogprobRecorder()
        processors: list[Any] = []
        if not params.greedy:
            if params.temperature != 1.0:
                processors.append(TemperatureLogitsWarper(params.temperature))
            if params.top_p < 1.0:
                processors.append(TopPLogitsWarper(params.top_p))
        processors.append(recorder)
        if row_seeds is not None:
            # Runs after the recorder: it turns the sampling distribution into a one-hot
            # choice, which greedy decoding (do_sample=False below) then takes.
            processors.append(_SeededRowSampler(row_seeds))
        criteria = []
        if params.stop:
            criteria.append(_StopStringCriteria(self._tokenizer, params.stop, width))

        # Every knob that changes the distribution is set explicitly, so that defaults in a
        # checkpoint's generation_config.json (top_k=50, repetition_penalty, ...) do not apply.
        hf_samples = not params.greedy and row_seeds is None
        sampling_only = {"top_k": 0} if hf_samples else {}
        generation_config = GenerationConfig(
            do_sample=hf_samples,
            max_new_tokens=params.max_tokens,
            min_length=0,
            temperature=1.0,
            top_p=1.0,
            typical_p=1.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            num_beams=1,
            num_return_sequences=1,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
            use_cache=True,
            return_dict_in_generate=True,
            **sampling_only,
        )
        output = self.model.generate(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask.to(self.device),
            generation_config=generation_config,
            logits_processor=LogitsProcessorList(processors),
            stopping_criteria=StoppingCriteriaList(criteria),
        )
        sequences = output.sequences if hasattr(output, "sequences") else output
        logprobs = recorder.finish(sequences)
        generated = sequences[:, width:].cpu().tolist()
        return [
            self._completion(ids, row_logprobs, params)
            for ids, row_logprobs in zip(generated, logprobs.tolist(), strict=True)
        ]

    def _completion(
        self, ids: list[int], logprobs: list[float], params: SamplingParams
    ) -> Completion:
        finish: FinishReason = "length"
        eos = set(self.eos_token_ids)
        for position, token in enumerate(ids):
            if token in eos:
                ids = ids[: position + 1]
                finish = "stop"
                break
        text = self._tokenizer.decode(ids, skip_special_tokens=True)
        if params.stop and any(stop in text for stop in params.stop):
            # The first token whose prefix text contains a stop string completed it.
            for position in range(len(ids)):
                prefix = self._tokenizer.decode(ids[: position + 1], skip_special_tokens=True)
                cuts = [prefix.find(stop) for stop in params.stop if stop in prefix]
                if cuts:
                    ids, text, finish = ids[: position + 1], prefix[: min(cuts)], "stop"
                    break
        return Completion(
            text=text,
            token_ids=ids,
            logprobs=logprobs[: len(ids)] if params.logprobs else [],
            finish_reason=finish,
        )

    # ------------------------------------------------------------------ weights

    def update_weights(self, model: Any) -> None:
        """Copy a trainer model's weights into the engine's model (no-op for the same object).

        A LoRA trainer model is copied merged, unless the engine generates with that very
        model (then the adapters are already in its forward pass).
        """
        from agentgym.lora_weights import merged_state_dict

        if model is self.model:
            return
        started = time.perf_counter()
        with torch.no_grad():
            self.model.load_state_dict(merged_state_dict(model))
        logger.debug("HFEngine.update_weights took %.2f s", time.perf_counter() - started)

    def close(self) -> None:
        """Drop the engine's reference to the model (idempotent)."""
        if getattr(self, "model", None) is not None:
            self.model = None
            if self.device.type == "cuda":
                torch.cuda.empty_cache()


class _SeededRowSampler:
    """Samples each row's next token with the row's own generator (batch-independent draws).

    Returns scores that are ``-inf`` everywhere but the drawn token, for greedy decoding to
    pick; ``generate`` keeps calling it for finished rows, whose extra draws are unused.
    """

    def __init__(self, seeds: Sequence[int]) -> None:
        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores.float(), dim=-1).cpu()
        chosen = torch.stack(
            [
                torch.multinomial(row, 1, generator=generator)
                for row, generator in zip(probs, self.generators, strict=True)
            ]
        ).to(scores.device)
        onehot = torch.full_like(scores, float("-inf"))
        return onehot.scatter_(-1, chosen, 0.0)


def _row_seeds(params: SamplingParams, count: int) -> list[int] | None:
    """One seed per generated row (prompt ``i``, sample ``j``) when ``prompt_seeds`` is set.

    >>> _row_seeds(SamplingParams(seed=1), 2) is None
    True
    >>> a = _row_seeds(SamplingParams(prompt_seeds=(5, 6), n=2), 2)
    >>> len(a), len(set(a)), a[2:] == _row_seeds(SamplingParams(prompt_seeds=(6,), n=2), 1)
    (4, 4, True)
    """
    if params.prompt_seeds is None or params.greedy:
        return None
    seeds = []
    for index in range(count):
        for sample in range(params.n):
            key = f"{params.seed_for(index)}/{sample}".encode()
            digest = hashlib.blake2b(key, digest_size=8).digest()
            seeds.append(int.from_bytes(digest, "little") % (2**63))
    return seeds
