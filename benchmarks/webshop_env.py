"""Throughput and memory of ``agentgym/WebShop-v0`` at several catalog sizes.

Each catalog size is measured in a fresh subprocess (clean memory numbers):

* build: generating the catalog and its BM25 index (cold, into an empty cache) and
  loading the saved index (warm, memory-mapped), in seconds;
* the search alone: milliseconds per query never seen before (instruction-length, the
  search cache cleared; best of 3 passes, wall clock and CPU time);
* steps/s of ``search[...]`` steps with queries never seen before (the search cache does
  not help), of cached searches, and of ``click[...]`` steps (open a product, select an
  option, go back, next page: the mix of a browsing session);
* expert episodes: steps/s with the expert's own time included;
* memory: resident memory of the process with the shop loaded, and per environment copy
  for ``--copies`` copies made with ``gymnasium.make``, each reset and walked through a
  search and a product page; the unique (private) memory of the process, which is what each
  extra process costs when the memory-mapped index is shared through the page cache.

Run: ``.venv/bin/python benchmarks/webshop_env.py [--sizes 10000 100000] [--copies 64]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV_ID = "agentgym/WebShop-v0"


def _memory_mb() -> dict[str, float]:
    """RSS and unique (private) memory of this process, in MB (Linux)."""
    values = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
            values[name] = int(rest.split()[0]) / 1024
    return {
        "rss": values["Rss"],
        "pss": values["Pss"],
        "uss": values["Private_Clean"] + values["Private_Dirty"],
    }


def build(size: int) -> dict:
    """Cold build of a catalog's index into the (empty) cache: generate, index, save."""
    from agentgym.envs.webshop.catalog import GeneratedCatalog
    from agentgym.envs.webshop.search import SearchIndex

    start = time.perf_counter()
    SearchIndex.cached(GeneratedCatalog(size))
    return {"build_s": time.perf_counter() - start}


def measure(size: int, copies: int, searches: int, clicks: int, episodes: int) -> dict:
    """All other numbers for one catalog size (in a fresh process, index already cached)."""
    import gc
    import tracemalloc

    import gymnasium as gym

    # Registers the environments and imports the module, so load_s times only the data.
    import agentgym.envs.webshop.env  # noqa: F401

    result: dict = {"num_products": size}
    base = _memory_mb()
    start = time.perf_counter()
    env = gym.make(ENV_ID, num_products=size)  # warm: loads the saved index (mmap)
    result["load_s"] = time.perf_counter() - start
    shop = env.unwrapped.shop
    shop.index.search.cache_clear()
    result["memory_with_shop_mb"] = _memory_mb()
    result["memory_before_shop_mb"] = base

    # search steps, fresh queries: the goals' instructions (distinct texts)
    queries = [shop.goals("train", "mixed", None)[i].instruction_text for i in range(searches)]
    wall, cpu = [], []
    for _ in range(3):  # the search alone, best of 3 passes over new queries
        shop.index.search.cache_clear()
        start, start_cpu = time.perf_counter(), time.process_time()
        for query in queries:
            shop.index.search(query.lower())
        wall.append((time.perf_counter() - start) / searches * 1000)
        cpu.append((time.process_time() - start_cpu) / searches * 1000)
    result["search_ms"], result["search_cpu_ms"] = min(wall), min(cpu)
    shop.index.search.cache_clear()
    env.reset(seed=0)
    elapsed = 0.0
    for query in queries:
        start = time.perf_counter()
        env.step(f"search[{query}]")
        elapsed += time.perf_counter() - start
        env.step("click[back to search]")
    result["search_steps_per_s"] = searches / elapsed
    start = time.perf_counter()
    for query in queries:
        env.step(f"search[{query}]")
        env.step("click[back to search]")
    result["cached_search_and_back_steps_per_s"] = 2 * searches / (time.perf_counter() - start)

    # click steps: product, option, back to results, next page, ...
    env.step("search[wireless bluetooth earbuds black]")
    done = 0
    start = time.perf_counter()
    while done < clicks:
        buttons = env.unwrapped.buttons
        page = env.unwrapped.session.page
        if page == "results":
            products = [b.label for b in buttons if b.kind == "product"]
            action = f"click[{products[done % len(products)]}]"
            if done % 7 == 6 and "next >" in {b.label for b in buttons}:
                action = "click[next >]"
            elif done % 7 == 5 and "< prev" in {b.label for b in buttons}:
                action = "click[< prev]"
        else:
            options = [b.label for b in buttons if b.kind == "option"]
            action = f"click[{options[0]}]" if options and done % 3 == 0 else "click[< prev]"
        env.step(action)
        done += 1
    result["click_steps_per_s"] = clicks / (time.perf_counter() - start)

    # expert episodes on fresh goals
    steps = 0
    rewards = []
    start = time.perf_counter()
    for index in range(5_000, 5_000 + episodes):
        observation, info = env.reset(options={"task_index": index})
        expert = env.unwrapped.make_expert()
        expert.reset(env, observation, info)
        terminated = truncated = False
        while not (terminated or truncated):
            observation, reward, terminated, truncated, info = env.step(
                expert.act(observation, info)
            )
            steps += 1
        rewards.append(reward)
    result["expert_steps_per_s"] = steps / (time.perf_counter() - start)
    result["expert_mean_reward"] = sum(rewards) / len(rewards)

    result["memory_after_browsing_mb"] = _memory_mb()

    # memory per copy: Python allocations of `copies` copies (tracemalloc), first reset
    # only (each copy's own state), then walked through a search and a product page (this
    # adds entries to the shared product and search caches too)
    gc.collect()
    tracemalloc.start()
    start_bytes = tracemalloc.get_traced_memory()[0]
    envs = []
    for index in range(copies):
        copy = gym.make(ENV_ID, num_products=size)
        copy.reset(options={"task_index": index})
        envs.append(copy)
    gc.collect()
    reset_bytes = tracemalloc.get_traced_memory()[0]
    for copy in envs:
        copy.step(f"search[{copy.unwrapped.goal.instruction_text}]")
        copy.step(f"click[{copy.unwrapped.buttons[-1].label}]")
    gc.collect()
    walked_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    result["copies"] = copies
    result["memory_per_copy_kb"] = (reset_bytes - start_bytes) / 1024 / copies
    result["memory_per_copy_walked_kb"] = (walked_bytes - start_bytes) / 1024 / copies
    result["memory_with_copies_mb"] = _memory_mb()
    result["index_on_disk_mb"] = (
        sum(f.stat().st_size for f in Path(os.environ["AGENTGYM_CACHE"]).rglob("*") if f.is_file())
        / 2**20
    )
    return result


def _run(command: list[str], env: dict[str, str]) -> dict:
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--copies", type=int, default=64)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--clicks", type=int, default=3000)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build is not None:
        print(json.dumps(build(args.build)))
        return
    if args.worker is not None:
        print(json.dumps(measure(args.worker, args.copies, args.searches, args.clicks,
                                 args.episodes)))  # fmt: skip
        return
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "AGENTGYM_CACHE": cache}
            built = _run([sys.executable, __file__, "--build", str(size)], env)
            command = [sys.executable, __file__, "--worker", str(size), "--copies",
                       str(args.copies), "--searches", str(args.searches), "--clicks",
                       str(args.clicks), "--episodes", str(args.episodes)]  # fmt: skip
            r = {**built, **_run(command, env)}
        shop, copies = r["memory_with_shop_mb"], r["memory_with_copies_mb"]
        print(f"\n== WebShop-v0, {size:,} products ==")
        print(
            f"build (generate + index + save): {r['build_s']:.1f} s; "
            f"load from cache (mmap): {r['load_s']:.2f} s; index on disk "
            f"{r['index_on_disk_mb']:.1f} MB"
        )
        print(
            f"search alone, new queries: {r['search_ms']:.3f} ms wall, "
            f"{r['search_cpu_ms']:.3f} ms CPU; search step: "
            f"{1000 / r['search_steps_per_s']:.3f} ms"
        )
        print(
            f"search steps/s (new queries): {r['search_steps_per_s']:,.0f}  "
            f"(cached search + back: {r['cached_search_and_back_steps_per_s']:,.0f})"
        )
        print(f"click steps/s: {r['click_steps_per_s']:,.0f}")
        print(
            f"expert: {r['expert_steps_per_s']:,.0f} steps/s, mean reward "
            f"{r['expert_mean_reward']:.3f}"
        )
        browsed = r["memory_after_browsing_mb"]
        print(
            f"process memory: {r['memory_before_shop_mb']['rss']:.0f} MB RSS after imports, "
            f"{shop['rss']:.0f} MB with the shop loaded, {browsed['rss']:.0f} MB RSS / "
            f"{browsed['uss']:.0f} MB private after the runs above"
        )
        print(
            f"{r['copies']} copies in one process: {r['memory_per_copy_kb']:.1f} KB per copy "
            f"(reset), {r['memory_per_copy_walked_kb']:.1f} KB per copy after a search and "
            f"a product page (shared caches included); process {copies['rss']:.0f} MB RSS, "
            f"{copies['uss']:.0f} MB private"
        )
        total_gb = (r["copies"] * browsed["uss"] + r["index_on_disk_mb"]) / 1024
        print(
            f"{r['copies']} processes (one copy each): about {r['copies']} x "
            f"{browsed['uss']:.0f} MB private + {r['index_on_disk_mb']:.0f} MB shared index "
            f"= {total_gb:.1f} GB"
        )


if __name__ == "__main__":
    main()
