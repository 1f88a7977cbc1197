"""Critique-in-the-loop learning study: SmolLM2-135M on CodeExec-v0 (easy problems, one attempt).

Protocol (fixed before any result was seen; every run is reported, partial ones labelled):

* environment: CodeExec-v0, the generated problem set at ``difficulty=easy`` (five
  one-line function families: scale-and-shift, sum of multiples, count a character,
  reverse words, clamp), one submission per episode (``max_attempts=1``: every proposal is
  a whole solution, judged once, so critique and voting act on the answer), failing
  assertions shown in feedback (the environment's default, hence in the oracle's
  critique); 128 new tokens per proposal;
* held-out tasks: the first 24 problems of the test split; training tasks: the first 16
  of the train split (disjoint);
* **test time**, per seed, from ONE set of N_max = 8 proposals per held-out problem
  (temperature 0.8, proposal seeds derived from the study seed, the problem and the
  proposal's number), the first N of them for N in {1, 2, 4, 8}
  (:func:`agentgym.critique.testtime.run_test_time`; its lanes share samples):
  - ``majority vote``: the most frequent answer (code compared by syntax tree);
  - ``oracle-filtered vote``: the majority among the proposals the oracle critic judges
    correct, plain majority when none is (rounds = 0);
  - ``oracle refine + vote``: every proposal the oracle judges wrong is refined once with
    its critique in view (rounds = 1), then the filtered vote; N = 1 is refinement alone;
  - ``trained-critic vote``: the filtered vote with the critic trained below judging
    (greedy, at most 256 critique tokens, rounds = 0);
  the 8 proposals and refinements are recorded once (``samples.jsonl``) and replayed, so
  every policy judges the very same proposals and the trained critic needs no actor model;
* **critic training** (``trainer=critic``), per seed: oracle critiques of the base policy's
  proposals (2 per training task) and of the environment's expert (1 per task, half with
  injected errors, so correct proposals exist), majority verdict down-sampled, one
  fine-tuning phase; verdict accuracy on the base policy's proposals on the 24 held-out
  problems before and after;
* **training time**, per seed, one iteration each from the base model:
  - ``trainer=critique``: K = 4 samples per training task, successes kept (one per task),
    failures critiqued by the oracle and refined once (one refinement per critique, kept
    when it succeeds), fine-tuned on the kept data;
  - ``trainer=rft`` at an equal sampling budget: K' = 4 + ceil(refinement samples of the
    same seed's critique run / 16) samples per task, successes kept (one per task);
  no expert data in either; greedy evaluation on the 24 held-out problems before and after;
* every fine-tuning phase: learning rate 1e-4, 3 epochs (as the ToolUse studies);
* seeds 0 and 1; success rates pool the seeds' episodes into one Wilson 95% interval, and
  per-seed rates are kept.

vLLM runs with whole prefills (the engine turns chunked prefill off on the CPU; this script
did it itself before the engine did, with the same 8,192-token step budget): vLLM 0.32 on
the CPU crashes ("CPU Generator does not use offset") when a request with its own seed has
its prompt prefilled in chunks, which large seeded batches (N proposals, refinements) cause.

The order (each part covered by one seed before any part gets a second): for the first seed
test time with the oracle, ``trainer=critique``, ``trainer=rft``; test time with the oracle
for the other seeds; ``trainer=critic`` and test time with the trained critic for the first
seed; then the remaining runs seed by seed. Runs live in ``--runs``; re-running
the script resumes them (``agentgym train`` runs resume from their ledgers, the test-time
workers from their recorded samples and finished phases). After every run the report in
``--out`` is rewritten: ``results.json`` (every run's rows), ``results.md``,
``critique_testtime.png`` and ``critique_training.png``. Run::

    nice -n 19 .venv/bin/python benchmarks/critique_learning.py --seeds 0 1
    # the pipeline end to end in about a minute, on the tiny random model:
    .venv/bin/python benchmarks/critique_learning.py --smoke --runs /tmp/cs --out /tmp/cs/out
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentgym.engines.base import Completion, Engine, SamplingParams
from agentgym.evaluation import wilson_interval
from agentgym.trainers.run import completed_phases

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Protocol:
    """Everything that sizes the study (the module docstring describes the full one)."""

    model: str = "smollm2-135m"
    engine: str = "vllm"
    heldout: int = 24  # first N problems of the test split
    train_tasks: int = 16  # first N problems of the train split
    samples_per_task: int = 4  # K of trainer=critique
    ns: tuple[int, ...] = (1, 2, 4, 8)
    temperature: float = 0.8
    max_tokens: int = 128
    critic_samples_per_task: int = 2
    critique_tokens: int = 256
    epochs: int = 3
    learning_rate: float = 1e-4


#: The tiny random model through the whole pipeline (checks plumbing, not learning).
SMOKE = Protocol(model="tiny-random-llama", engine="hf", heldout=2, train_tasks=2,
                 samples_per_task=2, ns=(1, 2), max_tokens=12, critic_samples_per_task=1,
                 critique_tokens=16, epochs=1)  # fmt: skip

ENV_KWARGS = {"problems": "generated", "difficulty": "easy", "max_attempts": 1}
#: vLLM on the CPU: short episodes need little KV cache (the default 2 GB is shared memory).
VLLM_KWARGS = {"kv_cache_space_gb": 1.0, "max_model_len": 2048}

TESTTIME_LABELS = {
    "plain": "majority vote",
    "oracle-vote": "oracle-filtered vote",
    "oracle-refine": "oracle refine (1 round) + vote",
    "trained-vote": "trained-critic vote",
}
TRAIN_LABELS = {"critique": "trainer=critique (1 iteration)", "rft": "trainer=rft (equal budget)"}


# ---------------------------------------------------------------------------- protocol --


def env_overrides(protocol: Protocol) -> list[str]:
    """The ``agentgym`` overrides of the environment and the model (every run)."""
    overrides = [
        "env=codeexec", *(f"env.kwargs.{k}={v}" for k, v in ENV_KWARGS.items()),
        f"model={protocol.model}", f"engine={protocol.engine}",
        f"sampling.max_tokens={protocol.max_tokens}", "max_context_tokens=1024",
        f"sft.learning_rate={protocol.learning_rate}", f"sft.epochs={protocol.epochs}",
        "sft.gradient_checkpointing=true",
    ]  # fmt: skip
    if protocol.engine == "vllm":
        overrides += [f"engine.kwargs.{k}={v}" for k, v in VLLM_KWARGS.items()]
    return overrides


def trainer_overrides(name: str, protocol: Protocol, rft_samples: int | None) -> list[str]:
    """The trainer's own overrides (``rft_samples``: RFT's K at the critique run's budget)."""
    common = ["trainer.iterations=1", f"trainer.train_tasks={protocol.train_tasks}"]
    if name == "critique":
        return ["trainer=critique", *common,
                f"trainer.samples_per_task={protocol.samples_per_task}", "trainer.critic=oracle",
                "trainer.rounds=1", "trainer.refinements_per_critique=1",
                "trainer.expert_episodes_per_task=0", "trainer.max_per_task=1"]  # fmt: skip
    if name == "rft":
        assert rft_samples is not None
        return ["trainer=rft", *common, f"trainer.samples_per_task={rft_samples}",
                "trainer.expert_episodes_per_task=0", "trainer.max_per_task=1"]  # fmt: skip
    if name == "critic":
        return ["trainer=critic", f"trainer.train_tasks={protocol.train_tasks}",
                f"trainer.samples_per_task={protocol.critic_samples_per_task}",
                "trainer.expert_episodes_per_task=1", "expert.error_rate=0.5",
                "trainer.heldout_samples_per_task=1", "trainer.balance=true",
                f"trainer.critique_tokens={protocol.critique_tokens}"]  # fmt: skip
    raise ValueError(f"unknown trainer {name!r}")


def run_dir(name: str, seed: int, args: argparse.Namespace) -> Path:
    return Path(args.runs).resolve() / f"{name}-seed{seed}"


# ------------------------------------------------------------- recorded proposals --


class RecordedEngine(Engine):
    """An engine that records every completion to a JSONL file and replays it.

    A completion is keyed by its prompt's token ids, its own seed and the sampling
    settings, so a later call with the same prompt and seed gets the same text without a
    model (``inner=None`` replays only). Several test-time policies thereby judge the very
    same proposals, and a killed worker resumes without sampling again.
    """

    name = "recorded"

    def __init__(
        self, path: Path, tokenizer: Any, inner: Engine | None = None, *, record: bool = True
    ) -> None:
        self.path = path
        self.inner = inner
        self.record = record
        self._tokenizer = tokenizer
        self.records: dict[str, dict[str, Any]] = {}
        self.misses = 0
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
                self.records[record["key"]] = record

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @staticmethod
    def key(prompt: Sequence[int], params: SamplingParams, seed: int | None) -> str:
        settings = [list(prompt), params.temperature, params.top_p, params.max_tokens,
                    list(params.stop), seed]  # fmt: skip
        return hashlib.blake2b(json.dumps(settings).encode(), digest_size=16).hexdigest()

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        if params.n != 1:
            raise ValueError("RecordedEngine records one completion per prompt (n = 1)")
        keys = [self.key(p, params, params.seed_for(i)) for i, p in enumerate(prompts)]
        missing = [i for i, k in enumerate(keys) if k not in self.records]
        if missing:
            if self.inner is None:
                raise RuntimeError(f"{len(missing)} completions were never recorded in "
                                   f"{self.path}; run the oracle phase first")  # fmt: skip
            seeds = tuple(params.seed_for(i) or 0 for i in missing)
            fresh = self.inner.generate([prompts[i] for i in missing],
                                        params.with_(prompt_seeds=seeds))  # fmt: skip
            with self.path.open("a") if self.record else _Discard() as handle:
                for i, choices in zip(missing, fresh, strict=True):
                    completion = choices[0]
                    record = {"key": keys[i], "text": completion.text,
                              "token_ids": list(completion.token_ids),
                              "finish_reason": completion.finish_reason}  # fmt: skip
                    self.records[keys[i]] = record
                    handle.write(json.dumps(record) + "\n")
            self.misses += len(missing)
        return [
            [Completion(r["text"], r["token_ids"], [], r["finish_reason"])]
            for r in (self.records[k] for k in keys)
        ]

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


class _Discard:
    """A file that forgets what is written (a replay that must not extend the recording)."""

    def __enter__(self) -> _Discard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def write(self, text: str) -> int:
        return len(text)


class BlankEngine(Engine):
    """Empty completions: stands in for a proposal that a replay cannot find."""

    name = "blank"

    @property
    def tokenizer(self) -> Any:
        raise NotImplementedError

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        return [[Completion("", [], [], "stop")] for _ in prompts]


def _make_engine(engine: str, model: str) -> Engine:
    from agentgym.engines import make_engine
    from agentgym.models import resolve_model

    kwargs = dict(VLLM_KWARGS) if engine == "vllm" else {}
    return make_engine(engine, model=str(resolve_model(model)), **kwargs)


def testtime_worker(phase: str, seed: int, protocol: Protocol, args: argparse.Namespace) -> None:
    """One test-time phase in this process (the study runs it as a subprocess).

    ``oracle``: samples the proposals and refinements (recorded), runs the oracle with
    rounds = 1 and rounds = 0. ``trained``: replays the proposals, the trained critic judges.
    ``refine-stats``: replays rounds = 1 and counts the oracle's verdicts on the first
    proposals and on the refinements (a refinement whose prompt changed since the recording,
    because the oracle's critique did, e.g. a test that timed out under load, is counted as
    a miss and judged as an empty answer).
    """
    import gymnasium as gym
    from transformers import AutoTokenizer

    import agentgym  # noqa: F401  (registers the environments)
    from agentgym.critique.critics import ModelCritic, OracleCritic
    from agentgym.critique.testtime import TestTimeConfig, run_test_time
    from agentgym.models import resolve_model

    folder = run_dir("testtime", seed, args)
    folder.mkdir(parents=True, exist_ok=True)
    env_id = "agentgym/CodeExec-v0"
    env_kwargs = {**ENV_KWARGS, "split": "test"}
    env = gym.make(env_id, **env_kwargs)
    tasks = env.unwrapped.tasks
    env.close()
    episodes = [(tasks.id_at(i), seed + i) for i in range(protocol.heldout)]
    sampling = SamplingParams(temperature=protocol.temperature, max_tokens=protocol.max_tokens,
                              seed=seed)  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(protocol.model)))
    if phase == "refine-stats":
        actor = RecordedEngine(folder / "samples.jsonl", tokenizer, BlankEngine(), record=False)
        verdicts: list[list[bool | None]] = []

        class CountingOracle(OracleCritic):
            def critique(self, requests: Sequence[Any]) -> list[Any]:
                critiques = super().critique(requests)
                verdicts.append([c.verdict for c in critiques])
                return critiques

        with CountingOracle() as oracle:
            run_test_time(env_id, env_kwargs, actor, oracle, episodes=episodes, sampling=sampling,
                          config=TestTimeConfig(ns=protocol.ns, rounds=1))  # fmt: skip
        refined = [v for batch in verdicts[1:] for v in batch]
        stats = {"proposals": len(verdicts[0]), "proposals_correct": verdicts[0].count(True),
                 "refinements": len(refined), "refinements_correct": refined.count(True),
                 "replay_misses": actor.misses}  # fmt: skip
        (folder / "refine-stats.json").write_text(json.dumps(stats) + "\n")
        print(f"testtime refine-stats seed {seed}: {json.dumps(stats)}", flush=True)
        return
    if phase == "oracle":
        plan = [("oracle-refine", 1), ("oracle-vote", 0)]
        actor = RecordedEngine(folder / "samples.jsonl", tokenizer,
                               _make_engine(protocol.engine, protocol.model))  # fmt: skip
        critic_factory = OracleCritic
    else:
        plan = [("trained-vote", 0)]
        actor = RecordedEngine(folder / "samples.jsonl", tokenizer)
        checkpoint = run_dir("critic", seed, args) / "checkpoints" / "iter-1"

        def critic_factory() -> ModelCritic:
            critic_sampling = SamplingParams(temperature=0.0, max_tokens=protocol.critique_tokens)
            return ModelCritic(_make_engine(protocol.engine, str(checkpoint)),
                               sampling=critic_sampling, owns_engine=True)  # fmt: skip

    try:
        for name, rounds in plan:
            target = folder / f"{name}.json"
            if target.exists():
                continue
            started = time.perf_counter()
            config = TestTimeConfig(ns=protocol.ns, rounds=rounds)
            with critic_factory() as critic:
                result = run_test_time(env_id, env_kwargs, actor, critic, episodes=episodes,
                                       sampling=sampling, config=config)  # fmt: skip
            report = {"summary": result.summary, "critic": result.critic,
                      "counts": result.counts, "episodes": result.episodes,
                      "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
            target.write_text(json.dumps(report, indent=1) + "\n")
            print(f"testtime {name} seed {seed}: {json.dumps(result.summary)}", flush=True)
    finally:
        actor.close()


# ------------------------------------------------------------------------- runs --


def run_testtime(phase: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) a test-time worker; its phase reports."""
    names = ["oracle-refine", "oracle-vote"] if phase == "oracle" else ["trained-vote"]
    workers = [(phase, names)]
    if phase == "oracle":  # then count the oracle's verdicts on the refinements
        names.append("refine-stats")
        workers.append(("refine-stats", ["refine-stats"]))
    folder = run_dir("testtime", seed, args)
    for worker, outputs in workers:
        if all((folder / f"{n}.json").exists() for n in outputs):
            continue
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", worker,
                   "--seed", str(seed), "--runs", args.runs,
                   *(["--smoke"] if args.smoke else [])]  # fmt: skip
        print("$", " ".join(command[1:]), flush=True)
        if subprocess.run(command, check=False, cwd=ROOT).returncode != 0:
            raise SystemExit(f"test-time {worker} seed {seed} failed")
    return {n: json.loads((folder / f"{n}.json").read_text()) for n in names}


def share_base_evaluation(name: str, seed: int, args: argparse.Namespace) -> None:
    """RFT's iteration-0 evaluation is the base model's, which the critique run made (same
    weights, greedy, same tasks and seeds): copy it under the new ids instead of re-running."""
    target = run_dir(name, seed, args) / "trajectories" / "eval-0.jsonl"
    source = run_dir("critique", seed, args) / "trajectories" / "eval-0.jsonl"
    if name != "rft" or target.exists() or not source.exists():
        return
    from agentgym.core.trajectory import TrajectoryStore

    with TrajectoryStore(source, readonly=True) as store:
        episodes = list(store)
    target.parent.mkdir(parents=True, exist_ok=True)
    with TrajectoryStore(target) as store:
        store.append(episodes)


def rft_budget(seed: int, protocol: Protocol, args: argparse.Namespace) -> int:
    """K' = K + ceil(the critique run's refinement samples per training task)."""
    critique = run_dir("critique", seed, args)
    refine = [r["result"] for r in completed_phases(critique) if r["phase"] == "refine"]
    if not refine:  # an RFT budget of K would silently break the equal-budget comparison
        raise SystemExit(f"rft seed {seed}: the critique run ({critique}) must refine first")
    extra = refine[-1]["refinement_samples"]
    return protocol.samples_per_task + math.ceil(extra / protocol.train_tasks)


def sampled(path: Path) -> dict[str, int] | None:
    """How many training episodes a run sampled, and how many succeeded (its budget)."""
    if not path.exists():
        return None
    from agentgym.core.trajectory import TrajectoryStore

    with TrajectoryStore(path, readonly=True) as store:
        episodes = list(store)
    return {"episodes": len(episodes), "successes": sum(bool(e.success) for e in episodes)}


def run_training(name: str, seed: int, protocol: Protocol, args: argparse.Namespace) -> dict:
    """Run (or resume) one ``agentgym train`` run; its summary rows, ledger and wall time."""
    share_base_evaluation(name, seed, args)
    rft_samples = rft_budget(seed, protocol, args) if name == "rft" else None
    path = run_dir(name, seed, args)
    command = [
        sys.executable, str(Path(__file__).resolve()), "agentgym", "train",
        *env_overrides(protocol), *trainer_overrides(name, protocol, rft_samples), f"seed={seed}",
        f"eval.episodes={protocol.heldout}", f"run_dir={path}",
        f"progress={'true' if args.progress else 'false'}",
    ]  # fmt: skip
    print("$", " ".join(command[3:]), flush=True)
    path.mkdir(parents=True, exist_ok=True)
    (path / "command.json").write_text(json.dumps(command[4:]) + "\n")
    started = time.perf_counter()
    if subprocess.run(command, check=False, cwd=ROOT).returncode != 0:
        raise SystemExit(f"{name} seed {seed} failed")
    return training_result(path, round(time.perf_counter() - started, 1))


#: The ledger phase that ends each training run.
FINAL_PHASE = {"critique": "eval", "rft": "eval", "critic": "critic_eval"}


def training_result(path: Path, seconds: float | None) -> dict[str, Any]:
    """A finished training run's summary rows, sampled budget and ledger phases."""
    phases = completed_phases(path)
    command = path / "command.json"
    return {
        "seconds": seconds,
        "command": json.loads(command.read_text()) if command.exists() else None,
        "rows": json.loads((path / "summary.json").read_text())["rows"],
        "sampled": sampled(path / "trajectories" / "collect-1.jsonl"),
        "phases": {f"{r['phase']}-{r['iteration']}": r["result"] for r in phases
                   if r["phase"] in ("refine", "critiques", "train")},
    }  # fmt: skip


# ----------------------------------------------------------------------- report --


def pool(cells: Sequence[tuple[int, float, int]]) -> dict[str, Any]:
    """(seed, success rate, episodes) cells -> pooled rate, Wilson interval, per-seed rates.

    >>> pool([(0, 0.5, 4), (1, 0.25, 4)])["success_rate"]
    0.375
    """
    successes = sum(round(rate * n) for _, rate, n in cells)
    episodes = sum(n for _, _, n in cells)
    low, high = wilson_interval(successes, episodes)
    per_seed = {str(seed): rate for seed, rate, _ in cells}
    return {"success_rate": successes / max(1, episodes), "success_ci95": [low, high],
            "per_seed": per_seed, "episodes": episodes}  # fmt: skip


def testtime_rows(runs: dict[str, dict[str, Any]], ns: Sequence[int]) -> list[dict[str, Any]]:
    """Success vs N per test-time policy, pooled over seeds (plain from the oracle phase)."""
    rows = []
    for policy in TESTTIME_LABELS:
        source, mode = ("oracle-refine", "plain") if policy == "plain" else (policy, "critic")
        by_n = {}
        for n in ns:
            cells = [(int(seed), report[source]["summary"][mode][str(n)]["success_rate"],
                      report[source]["summary"][mode][str(n)]["episodes"])
                     for seed, report in sorted(runs.items()) if source in report]  # fmt: skip
            if cells:
                by_n[str(n)] = pool(cells)
        if by_n:
            rows.append({"policy": policy, "label": TESTTIME_LABELS[policy], "by_n": by_n})
    return rows


def plain_consistency(runs: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """Whether every phase of a seed saw the same plain votes (the recording replayed)."""
    checks = {}
    for seed, report in runs.items():
        plains = [json.dumps(r["summary"]["plain"], sort_keys=True) for r in report.values()
                  if "summary" in r]  # fmt: skip
        checks[seed] = len(set(plains)) == 1
    return checks


def training_rows(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Greedy held-out success: the base model, then each trainer's iteration 1."""
    rows = []
    base = [(int(s), r["rows"][0]["success_rate"], r["rows"][0]["episodes"])
            for s, r in sorted(runs.get("critique", {}).items())]  # fmt: skip
    if base:
        rows.append({"method": "base", "label": "base model (greedy)", **pool(base)})
    for name in ("critique", "rft"):
        done = {s: r for s, r in sorted(runs.get(name, {}).items()) if len(r["rows"]) > 1}
        if not done:
            continue
        cells = [(int(s), r["rows"][-1]["success_rate"], r["rows"][-1]["episodes"])
                 for s, r in done.items()]  # fmt: skip
        phases = {s: r["phases"] for s, r in done.items()}
        budget = {s: r.get("sampled") for s, r in done.items()}
        rows.append({"method": name, "label": TRAIN_LABELS[name], **pool(cells),
                     "phases": phases, "sampled": budget})  # fmt: skip
    return rows


def critic_rows(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The critic's verdict accuracy on held-out proposals before and after training."""
    rows = []
    by_seed = runs.get("critic", {})
    for index, label in ((0, "base model as critic"), (1, "trained critic")):
        present = {
            s: r["rows"][index] for s, r in sorted(by_seed.items()) if len(r["rows"]) > index
        }
        if not present:
            continue
        cells = [(int(s), row["success_rate"], row["episodes"]) for s, row in present.items()]
        balanced = {s: row["mean_reward"] for s, row in present.items()}
        readable = {s: row.get("readable") for s, row in present.items()}
        rows.append({"label": label, **pool(cells), "balanced_accuracy": balanced,
                     "readable": readable})  # fmt: skip
    return rows


def _cell(block: dict[str, Any]) -> str:
    low, high = block["success_ci95"]
    return f"{block['success_rate']:.3f} [{low:.3f}, {high:.3f}]"


def _seeds(block: dict[str, Any]) -> str:
    return ", ".join(f"{v:.3f}" for _, v in sorted(block["per_seed"].items()))


def write_report(runs: dict[str, Any], meta: dict[str, Any], out: Path) -> None:
    """results.json (every run's rows), results.md and the plots."""
    ns = meta["protocol"]["ns"]
    tables = {
        "testtime": testtime_rows(runs.get("testtime", {}), ns),
        "training": training_rows(runs),
        "critic": critic_rows(runs),
        "plain_votes_identical_across_phases": plain_consistency(runs.get("testtime", {})),
    }
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "tables": tables, "runs": runs}, indent=1) + "\n"
    )
    protocol = meta["protocol"]
    done = {k: sorted(v) for k, v in runs.items()}
    lines = [
        f"# Critique in the loop: {protocol['model']} on CodeExec-v0 (easy, one attempt)", "",
        f"Status: {'COMPLETE' if meta['complete'] else 'PARTIAL'}; finished runs (seeds): "
        f"{json.dumps(done)}. Protocol: `benchmarks/critique_learning.py` (docstring). "
        f"Success pooled over seeds with a Wilson 95% interval; per-seed rates after it.", "",
        f"## Test time: success vs N ({protocol['heldout']} held-out problems per seed, "
        f"one set of {max(ns)} proposals per problem at T={protocol['temperature']}, the "
        "first N used)", "",
        "| policy | " + " | ".join(f"N={n}" for n in ns) + " |",
        "|---|" + "---|" * len(ns),
    ]  # fmt: skip
    for row in tables["testtime"]:
        cells = [f"{_cell(row['by_n'][str(n)])} ({_seeds(row['by_n'][str(n)])})"
                 if str(n) in row["by_n"] else "-" for n in ns]  # fmt: skip
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    for seed, report in sorted(runs.get("testtime", {}).items()):
        if "refine-stats" in report:
            stats = report["refine-stats"]
            lines.append(f"\nSeed {seed}, the oracle's verdicts: {stats['proposals_correct']} of "
                         f"{stats['proposals']} proposals correct, "
                         f"{stats['refinements_correct']} of {stats['refinements']} "
                         f"refinements of wrong ones correct ({stats['replay_misses']} "
                         "refinement prompts not found on replay, judged as empty).")  # fmt: skip
        for name, phase in report.items():
            if "summary" not in phase:
                continue
            agreement = phase["critic"].get("agreement_with_environment")
            lines.append(f"\nSeed {seed}, {name}: work {json.dumps(phase['counts'])}; critic "
                         f"verdicts on committed proposals agree with the environment: "
                         f"{agreement}; {phase['seconds']} s.")  # fmt: skip
    lines += ["", "## Training time: greedy held-out success after one iteration", "",
              "| run | success [95% CI] | per seed | episodes |", "|---|---|---|---|"]  # fmt: skip
    for row in tables["training"]:
        lines.append(f"| {row['label']} | {_cell(row)} | {_seeds(row)} | {row['episodes']} |")
    for row in tables["training"]:
        for seed, phases in row.get("phases", {}).items():
            budget = row["sampled"][seed]
            lines.append(f"\n{row['method']} seed {seed}: sampled {json.dumps(budget)}; "
                         f"{json.dumps(phases)}")  # fmt: skip
    lines += ["", "## Critic training: verdict accuracy on the base policy's held-out proposals",
              "", "| critic | accuracy [95% CI] | per seed | balanced accuracy | readable | "
              "proposals |", "|---|---|---|---|---|---|"]  # fmt: skip
    for row in tables["critic"]:
        lines.append(f"| {row['label']} | {_cell(row)} | {_seeds(row)} | "
                     f"{json.dumps(row['balanced_accuracy'])} | {json.dumps(row['readable'])} "
                     f"| {row['episodes']} |")  # fmt: skip
    lines += ["", "Plain votes identical in every test-time phase of a seed (same recorded "
              f"proposals): {json.dumps(tables['plain_votes_identical_across_phases'])}",
              "", "Wall time per run (s): " + json.dumps(meta["seconds"]), ""]  # fmt: skip
    (out / "results.md").write_text("\n".join(lines))
    plot(tables, ns, protocol["model"], out)


def plot(tables: dict[str, Any], ns: Sequence[int], model: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4))
    for offset, row in enumerate(tables["testtime"]):
        xs = [n for n in ns if str(n) in row["by_n"]]
        rates = [row["by_n"][str(n)]["success_rate"] for n in xs]
        intervals = [row["by_n"][str(n)]["success_ci95"] for n in xs]
        errors = [[r - ci[0] for r, ci in zip(rates, intervals, strict=True)],
                  [ci[1] - r for r, ci in zip(rates, intervals, strict=True)]]  # fmt: skip
        shifted = [n * (1 + 0.03 * (offset - 1.5)) for n in xs]  # keep error bars apart
        axis.errorbar(shifted, rates, yerr=errors, marker="o", capsize=3, label=row["label"])
    axis.set_xscale("log", base=2)
    axis.set_xticks(list(ns), [str(n) for n in ns])
    axis.set_ylim(0, 1)
    axis.set_xlabel("proposals per problem (N)")
    axis.set_ylabel("held-out success (95% CI)")
    axis.set_title(f"{model}, CodeExec-v0 easy: test-time critique")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "critique_testtime.png", dpi=120)
    plt.close(figure)

    rows = tables["training"]
    figure, axis = plt.subplots(figsize=(5.5, 4))
    rates = [row["success_rate"] for row in rows]
    errors = [[r - row["success_ci95"][0] for r, row in zip(rates, rows, strict=True)],
              [row["success_ci95"][1] - r for r, row in zip(rates, rows, strict=True)]]  # fmt: skip
    axis.bar(range(len(rows)), rates, yerr=errors, capsize=4, color="#4c72b0")
    axis.set_xticks(range(len(rows)), [row["label"] for row in rows], rotation=15, ha="right",
                    fontsize=8)  # fmt: skip
    axis.set_ylim(0, 1)
    axis.set_ylabel("greedy held-out success (95% CI)")
    axis.set_title(f"{model}, CodeExec-v0 easy: one training iteration")
    figure.tight_layout()
    figure.savefig(out / "critique_training.png", dpi=120)
    plt.close(figure)


# ------------------------------------------------------------------------- main --

#: (kind, name): the runs of one seed, in order.
PLAN = (("testtime", "oracle"), ("train", "critique"), ("train", "rft"), ("train", "critic"),
        ("testtime", "trained"))  # fmt: skip


def schedule(seeds: Sequence[int]) -> list[tuple[int, str, str]]:
    """Every run as (seed, kind, name), in the order of the module docstring.

    >>> [f"{name}{seed}" for seed, _, name in schedule([0, 1])]  # doctest: +NORMALIZE_WHITESPACE
    ['oracle0', 'critique0', 'rft0', 'oracle1', 'critic0', 'trained0', 'critique1', 'rft1',
     'critic1', 'trained1']
    """
    first, *others = seeds
    runs = [(first, kind, name) for kind, name in PLAN[:3]]
    runs += [(seed, *PLAN[0]) for seed in others]
    runs += [(first, kind, name) for kind, name in PLAN[3:]]
    return runs + [(seed, kind, name) for seed in others for kind, name in PLAN[1:]]


def report_finished(
    steps: Sequence[tuple[int, str, str]],
    protocol: Protocol,
    args: argparse.Namespace,
    out: Path,
    new_seconds: dict[str, float] | None = None,
) -> None:
    """The report of every run that has finished, starting nothing (while the study runs).

    Wall times come from the earlier report in ``out``, updated with ``new_seconds``.
    """
    earlier = out / "results.json"
    seconds = json.loads(earlier.read_text())["meta"]["seconds"] if earlier.exists() else {}
    seconds.update(new_seconds or {})
    runs: dict[str, dict[str, Any]] = {}
    finished = 0
    for seed, kind, name in steps:
        if kind == "testtime":
            folder = run_dir("testtime", seed, args)
            names = ["oracle-refine", "oracle-vote", "refine-stats"] if name == "oracle" else [
                "trained-vote"]  # fmt: skip
            found = {n: json.loads((folder / f"{n}.json").read_text()) for n in names
                     if (folder / f"{n}.json").exists()}  # fmt: skip
            if found:
                runs.setdefault("testtime", {}).setdefault(str(seed), {}).update(found)
            finished += len(found) == len(names)
            continue
        path = run_dir(name, seed, args)
        done = any(
            r["phase"] == FINAL_PHASE[name] and r["iteration"] == 1 for r in completed_phases(path)
        )
        if done and (path / "summary.json").exists():
            result = training_result(path, seconds.get(f"{kind}-{name}-seed{seed}"))
            runs.setdefault(name, {})[str(seed)] = result
            finished += 1
    meta = {"protocol": asdict(protocol), "env_kwargs": ENV_KWARGS, "seeds": args.seeds,
            "plan": list(steps), "seconds": seconds,
            "complete": finished == len(steps)}  # fmt: skip
    write_report(runs, meta, out)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["agentgym"]:  # `agentgym <command> ...`, the study's launcher
        from agentgym.cli import main as agentgym_main

        raise SystemExit(agentgym_main(argv[1:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--smoke", action="store_true", help="the tiny random model, tiny sizes (plumbing only)"
    )
    parser.add_argument("--out", default="docs/results/critique")
    parser.add_argument("--runs", default="runs/critique_study")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--worker", choices=["oracle", "trained", "refine-stats"],
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="+", choices=sorted({name for _, name in PLAN}),
                        help="run only these steps of the schedule (e.g. to run another "
                        "seed's critic beside this one); the report still covers every run "
                        "that has finished")  # fmt: skip
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from finished runs; start none")  # fmt: skip
    args = parser.parse_args(argv)
    protocol = SMOKE if args.smoke else Protocol()
    if args.worker:
        testtime_worker(args.worker, args.seed, protocol, args)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    steps = schedule(args.seeds)
    if args.report_only:
        report_finished(steps, protocol, args, out)
        return
    todo = [s for s in steps if args.only is None or s[2] in args.only]
    for step, (seed, kind, name) in enumerate(todo, start=1):
        started = time.perf_counter()
        if kind == "testtime":
            reports = run_testtime(name, seed, args)
            runs.setdefault("testtime", {}).setdefault(str(seed), {}).update(reports)
        else:
            runs.setdefault(name, {})[str(seed)] = run_training(name, seed, protocol, args)
        seconds[f"{kind}-{name}-seed{seed}"] = round(time.perf_counter() - started, 1)
        if args.only:  # the other runs are not in `runs`: report every finished one
            report_finished(steps, protocol, args, out, seconds)
            continue
        meta = {"protocol": asdict(protocol), "env_kwargs": ENV_KWARGS, "seeds": args.seeds,
                "plan": steps, "seconds": seconds, "complete": step == len(steps)}  # fmt: skip
        write_report(runs, meta, out)  # a partial report after every run
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
