"""Rollout throughput: our multi-turn collector against the raw engine, in one run.

Four measurements on the same work:

(a) raw ``vllm.LLM.generate``: the limit. It replays exactly the (prompt ids, completion
    length) pairs that the collector's engine calls produced in (b), batch by batch, with
    ``ignore_eos`` so every completion has the same length as in (b);
(b) ``RolloutCollector`` with ``VLLMEngine``: multi-turn episodes of ``--env`` (environment
    steps, observation tokenisation, bookkeeping included);
(c) ``RolloutCollector`` with ``HFEngine`` (batched ``generate``), same episodes;
(d) ``HFEngine`` one episode at a time (``num_envs=1``), same episodes.

Tokens/s counts generated tokens over wall time. Run:

    .venv/bin/python benchmarks/rollout_throughput.py --episodes 16 --max-tokens 48

(the main guard matters: vLLM may spawn processes).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from typing import Any

from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.engines.base import Completion, Engine, SamplingParams
from agentgym.models import resolve_model


class RecordingEngine(Engine):
    """Wraps an engine and records every call's prompts and completion lengths."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[tuple[list[list[int]], list[int]]] = []

    @property
    def tokenizer(self) -> Any:
        return self.inner.tokenizer

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        results = self.inner.generate(prompts, params)
        lengths = [len(result[0].token_ids) for result in results]
        self.calls.append(([list(p) for p in prompts], lengths))
        return results


def run_collector(engine: Engine, args: argparse.Namespace, num_envs: int) -> dict[str, float]:
    collector = RolloutCollector(
        args.env,
        engine=engine,
        env_kwargs={"difficulty": args.difficulty},
        sampling=SamplingParams(temperature=1.0, max_tokens=args.max_tokens, seed=0),
        num_envs=num_envs,
        max_turns=args.max_turns,
        max_context_tokens=4096,
    )
    specs = [EpisodeSpec(f"b-{i}", seed=i) for i in range(args.episodes)]
    started = time.perf_counter()
    collector.run(specs, progress=False)
    wall = time.perf_counter() - started
    stats = collector.stats
    collector.close()
    return {
        "tokens": stats.generated_tokens,
        "seconds": round(wall, 3),
        "tokens_per_second": round(stats.generated_tokens / wall, 2),
        "engine_calls": stats.engine_calls,
        "engine_share": round(stats.engine_seconds / wall, 3),
    }


def run_raw_vllm(llm: Any, calls: list[tuple[list[list[int]], list[int]]]) -> dict[str, float]:
    from vllm import SamplingParams as VllmParams
    from vllm.inputs import TokensPrompt

    tokens = 0
    # The collector's run filled the prefix cache with these very prompts; start cold so the
    # raw engine gets only the prefix reuse it earns itself (turn 2 reuses turn 1's prompt).
    llm.reset_prefix_cache()
    started = time.perf_counter()
    for prompts, lengths in calls:
        params = [
            VllmParams(
                temperature=1.0, max_tokens=max(1, n), min_tokens=max(1, n), ignore_eos=True, seed=0
            )
            for n in lengths
        ]
        outputs = llm.generate(
            [TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False
        )
        tokens += sum(len(o.outputs[0].token_ids) for o in outputs)
    wall = time.perf_counter() - started
    return {
        "tokens": tokens,
        "seconds": round(wall, 3),
        "tokens_per_second": round(tokens / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--env", default="agentgym/Calculator-v0")
    parser.add_argument("--difficulty", default="medium")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--skip-hf-sequential", action="store_true")
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    model = str(resolve_model(args.model))

    from agentgym.engines.hf import HFEngine
    from agentgym.engines.vllm import VLLMEngine

    results: dict[str, Any] = {"config": vars(args)}
    vllm_engine = VLLMEngine(model)
    # Warm up (first calls compile kernels / allocate) so neither side pays for it.
    vllm_engine.generate([[1, 2, 3]], SamplingParams(max_tokens=8))
    recording = RecordingEngine(vllm_engine)
    results["b_collector_vllm"] = run_collector(recording, args, args.num_envs)
    results["a_raw_vllm"] = run_raw_vllm(vllm_engine.llm, recording.calls)
    vllm_engine.close()

    hf_engine = HFEngine(model)
    hf_engine.generate([[1, 2, 3]], SamplingParams(max_tokens=4))
    results["c_collector_hf_batched"] = run_collector(hf_engine, args, args.num_envs)
    if not args.skip_hf_sequential:
        results["d_hf_one_episode_at_a_time"] = run_collector(hf_engine, args, 1)
    raw = results["a_raw_vllm"]["tokens_per_second"]
    results["ratios_vs_raw_vllm"] = {
        key: round(value["tokens_per_second"] / raw, 3)
        for key, value in results.items()
        if isinstance(value, dict) and "tokens_per_second" in value
    }
    print(json.dumps(results, indent=2))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
