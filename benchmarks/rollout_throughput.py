"""Rollout throughput: our multi-turn collector against raw vLLM on the same token workload.

For each environment in ``--envs`` (default Calculator and CodeExec), in one process with
one ``VLLMEngine``:

(b) ``RolloutCollector`` with ``mode="sync"``: one engine call per turn over all active
    episodes; the calls' prompts and completion lengths are recorded;
(b') ``RolloutCollector`` with ``mode="async"`` (the default): each episode advances on its
    own, vLLM batches continuously, environment steps run on worker threads. It produces the
    same trajectories as (b) (checked: the recorded (prompt, completion) pairs are equal);
(a) raw ``vllm.LLM.generate`` replaying (b)'s calls batch by batch (the limit of a
    collector that makes those calls);
(s) the strict limit: raw ``vllm.LLM.generate`` given **all** of the run's (prompt ids,
    completion length) pairs in **one** call, as if every turn's prompt were known in
    advance (no turn waits for the previous one, no environment, no bookkeeping). It may
    run every pair at once, i.e. more sequences in flight than the collector's
    ``num_envs`` episodes can ever have, which matters where larger batches decode faster;
(c) the same pairs through raw vLLM's request API with at most ``num_envs`` in flight (a
    new one added as soon as one finishes): the strict limit at the collector's
    concurrency.

Raw runs use ``ignore_eos`` with ``min_tokens = max_tokens = `` the recorded length, so
they generate exactly the recorded number of tokens, and start with a cold prefix cache,
as does every collector run. Before each environment's runs a discarded synchronous
collector pass warms the engine up at the run's batch sizes (``--no-warmup`` skips it), so
that the first measured run does not pay for the first batches of a new size.
Raw runs are unseeded: vLLM 0.32 on CPU fails ("CPU Generator does
not use offset") when a seeded request's prefill is split over steps, which the one-call
run of long CodeExec prompts causes. Tokens/s counts generated tokens over wall time; the ratios
divide by (s). Optionally (``--hf``) the HF engine's batched collector and one episode at a
time on the first environment.

Run (the main guard matters: vLLM may spawn processes):

    nice -n 19 .venv/bin/python benchmarks/rollout_throughput.py --episodes 16 --max-tokens 48

The machine's load average is recorded before and after: on a shared machine the numbers
are noisy, the ratios (same process, back to back) less so.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Hashable, Sequence
from typing import Any

from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.engines.base import Completion, Engine, SamplingParams
from agentgym.engines.requests import CompletionQueue, GenerationRequest
from agentgym.models import resolve_model

#: (prompt ids, completion length) of one generated turn.
Pair = tuple[tuple[int, ...], int]


class RecordingQueue(CompletionQueue):
    """Wraps an engine's request queue; records each finished request's prompt and length."""

    def __init__(self, inner: CompletionQueue, pairs: list[Pair]) -> None:
        super().__init__()
        self.inner = inner
        self.continuous = inner.continuous
        self.pairs = pairs
        self.prompts: dict[Hashable, tuple[int, ...]] = {}

    @property
    def pending(self) -> int:
        return self.inner.pending

    def submit(self, request: GenerationRequest) -> None:
        self.prompts[request.key] = tuple(request.prompt)
        self.inner.submit(request)

    def poll(self) -> list[tuple[Hashable, Completion]]:
        finished = self.inner.poll()
        self.calls, self.seconds = self.inner.calls, self.inner.seconds
        for key, completion in finished:
            self.pairs.append((self.prompts.pop(key), len(completion.token_ids)))
        return finished

    def close(self) -> None:
        self.inner.close()


class RecordingEngine(Engine):
    """Wraps an engine; records every generated (prompt, length) pair and each call's batch."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[list[Pair]] = []
        self.pairs: list[Pair] = []

    @property
    def tokenizer(self) -> Any:
        return self.inner.tokenizer

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        results = self.inner.generate(prompts, params)
        # The collector may cut a completion afterwards (context budget); record its length
        # as generated, which is what the engine paid for.
        call = [(tuple(p), len(r[0].token_ids)) for p, r in zip(prompts, results, strict=True)]
        self.calls.append(call)
        self.pairs.extend(call)
        return results

    def completion_queue(self) -> CompletionQueue:
        return RecordingQueue(self.inner.completion_queue(), self.pairs)


def run_collector(
    engine: Engine, args: argparse.Namespace, env_id: str, *, mode: str, num_envs: int
) -> dict[str, Any]:
    env_kwargs = {"difficulty": args.difficulty}
    collector = RolloutCollector(
        env_id,
        engine=engine,
        env_kwargs=env_kwargs,
        sampling=SamplingParams(temperature=1.0, max_tokens=args.max_tokens, seed=0),
        num_envs=num_envs,
        max_turns=args.max_turns,
        max_context_tokens=4096,
        mode=mode,  # type: ignore[arg-type]
    )
    specs = [EpisodeSpec(f"b-{i}", seed=i) for i in range(args.episodes)]
    started = time.perf_counter()
    trajectories = collector.run(specs, progress=False)
    wall = time.perf_counter() - started
    stats = collector.stats
    collector.close()
    return {
        "tokens": stats.generated_tokens,
        "seconds": round(wall, 3),
        "tokens_per_second": round(stats.generated_tokens / wall, 2),
        "engine_calls": stats.engine_calls,
        "engine_share": round(stats.engine_seconds / wall, 3),
        "env_seconds": round(stats.env_seconds, 3),
        "turns": sum(t.num_steps for t in trajectories),
        "successes": stats.successes,
    }


def run_raw_vllm(llm: Any, calls: Sequence[Sequence[Pair]]) -> dict[str, Any]:
    """Generate exactly the given (prompt, length) pairs, one ``generate`` per call."""
    from vllm import SamplingParams as VllmParams
    from vllm.inputs import TokensPrompt

    tokens = 0
    llm.reset_prefix_cache()  # cold, as each collector run starts
    started = time.perf_counter()
    for call in calls:
        params = [
            VllmParams(temperature=1.0, max_tokens=max(1, n), min_tokens=max(1, n),
                       ignore_eos=True)
            for _, n in call
        ]  # fmt: skip
        outputs = llm.generate(
            [TokensPrompt(prompt_token_ids=list(p)) for p, _ in call], params, use_tqdm=False
        )
        tokens += sum(len(o.outputs[0].token_ids) for o in outputs)
    wall = time.perf_counter() - started
    return {
        "tokens": tokens,
        "seconds": round(wall, 3),
        "tokens_per_second": round(tokens / wall, 2),
        "engine_calls": len(calls),
    }


def run_raw_vllm_capped(llm: Any, pairs: Sequence[Pair], in_flight: int) -> dict[str, Any]:
    """Generate the pairs with vLLM's request API, at most ``in_flight`` at a time."""
    from vllm import SamplingParams as VllmParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    engine = llm.llm_engine
    waiting = list(pairs)
    running = tokens = steps = added = 0
    llm.reset_prefix_cache()
    started = time.perf_counter()
    while waiting or running:
        while waiting and running < in_flight:
            prompt, n = waiting.pop(0)
            params = VllmParams(temperature=1.0, max_tokens=max(1, n), min_tokens=max(1, n),
                                ignore_eos=True,
                                output_kind=RequestOutputKind.FINAL_ONLY)  # fmt: skip
            engine.add_request(f"raw-{added}", TokensPrompt(prompt_token_ids=list(prompt)), params)
            running += 1
            added += 1
        for output in engine.step():
            if output.finished:
                running -= 1
                tokens += len(output.outputs[0].token_ids)
        steps += 1
    wall = time.perf_counter() - started
    return {
        "tokens": tokens,
        "seconds": round(wall, 3),
        "tokens_per_second": round(tokens / wall, 2),
        "engine_calls": steps,
    }


def measure_env(vllm_engine: Any, env_id: str, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    llm = vllm_engine.llm

    if args.warmup:
        # A discarded pass at the run's own batch sizes: the first batches of a new size
        # pay for allocation and kernel selection, which would otherwise fall on whichever
        # run goes first (the synchronous collector).
        llm.reset_prefix_cache()
        run_collector(vllm_engine, args, env_id, mode="sync", num_envs=args.num_envs)
    sync_recorder = RecordingEngine(vllm_engine)
    llm.reset_prefix_cache()
    results["b_collector_sync"] = run_collector(
        sync_recorder, args, env_id, mode="sync", num_envs=args.num_envs
    )
    async_recorder = RecordingEngine(vllm_engine)
    llm.reset_prefix_cache()
    results["b_collector_async"] = run_collector(
        async_recorder, args, env_id, mode="async", num_envs=args.num_envs
    )
    results["same_pairs_sync_async"] = sorted(sync_recorder.pairs) == sorted(async_recorder.pairs)
    results["a_raw_vllm_per_call"] = run_raw_vllm(llm, sync_recorder.calls)
    results["s_raw_vllm_one_call"] = run_raw_vllm(llm, [async_recorder.pairs])
    results["c_raw_vllm_at_collector_concurrency"] = run_raw_vllm_capped(
        llm, async_recorder.pairs, args.num_envs
    )
    strict = results["s_raw_vllm_one_call"]["tokens_per_second"]
    results["ratios_vs_strict_limit"] = {
        key: round(value["tokens_per_second"] / strict, 3)
        for key, value in results.items()
        if isinstance(value, dict) and "tokens_per_second" in value
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument(
        "--envs", nargs="+", default=["agentgym/Calculator-v0", "agentgym/CodeExec-v0"]
    )
    parser.add_argument("--difficulty", default="medium")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--kv-cache-gb", type=float, default=2.0, help="vLLM's KV cache on CPU")
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the discarded collector pass that precedes each environment's runs",
    )
    parser.add_argument("--hf", action="store_true", help="also the HF engine (slow on CPU)")
    parser.add_argument("--skip-hf-sequential", action="store_true")
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    model = str(resolve_model(args.model))

    from agentgym.engines.vllm import VLLMEngine

    results: dict[str, Any] = {"config": vars(args), "load_average_before": os.getloadavg()}
    vllm_engine = VLLMEngine(model, kv_cache_space_gb=args.kv_cache_gb)
    # Warm up (first calls compile kernels / allocate) so no side pays for it.
    vllm_engine.generate([[1, 2, 3]], SamplingParams(max_tokens=8))
    for env_id in args.envs:
        results[env_id] = measure_env(vllm_engine, env_id, args)
        print(json.dumps({env_id: results[env_id]["ratios_vs_strict_limit"]}), flush=True)
        if args.output:  # partial results survive a later failure
            with open(args.output, "w") as handle:
                json.dump(results, handle, indent=2)
    vllm_engine.close()

    if args.hf:
        from agentgym.engines.hf import HFEngine

        env_id = args.envs[0]
        hf_engine = HFEngine(model)
        hf_engine.generate([[1, 2, 3]], SamplingParams(max_tokens=4))
        hf: dict[str, Any] = {
            "c_collector_hf_async": run_collector(
                hf_engine, args, env_id, mode="async", num_envs=args.num_envs
            )
        }
        if not args.skip_hf_sequential:
            hf["d_hf_one_episode_at_a_time"] = run_collector(
                hf_engine, args, env_id, mode="sync", num_envs=1
            )
        strict = results[env_id]["s_raw_vllm_one_call"]["tokens_per_second"]
        for value in hf.values():
            value["ratio_vs_strict_limit"] = round(value["tokens_per_second"] / strict, 3)
        results[f"{env_id} (hf)"] = hf
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
