"""Asynchronous rollouts: the same trajectories as the synchronous collector, and overlap.

The equality tests run each mode with a different number of environment copies (and, in
async mode, engine calls that take whatever is queued), so episodes are batched differently
in the two runs: equal trajectories then show that every sample depends only on its own
episode, turn and seed. The vLLM tests start one in-process engine for the module and are
skipped when vLLM cannot be imported.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from agentgym import Evaluation, ToolCall, ToolTask, register_env, tool
from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.core.tool_env import ToolEnv
from agentgym.core.trajectory import Trajectory, TrajectoryStore
from agentgym.engines.base import Completion, Engine, SamplingParams
from agentgym.engines.hf import HFEngine
from agentgym.engines.requests import BatchingQueue, GenerationRequest
from agentgym.models import resolve_model

TINY = "tiny-random-llama"
GREEDY = SamplingParams(temperature=0.0, max_tokens=10)
SEEDED = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=10, seed=11)


def comparable(trajectories: Sequence[Trajectory]) -> list[dict[str, Any]]:
    """Trajectories as dicts without their creation time, log-probs rounded.

    Everything else must be equal; log-probs are computed in batches of other shapes, which
    changes their last bits (1e-6), so they are compared to 4 decimals.
    """
    rows = []
    for trajectory in trajectories:
        row = {k: v for k, v in trajectory.to_dict().items() if k != "created_at"}
        for message in row["messages"]:
            if message.get("logprobs"):
                message["logprobs"] = [round(value, 4) for value in message["logprobs"]]
        rows.append(row)
    return rows


def collect(
    engine: Engine | None,
    sampling: SamplingParams,
    *,
    mode: str,
    num_envs: int,
    episodes: int = 6,
    max_turns: int | None = 3,
    **options: Any,
) -> list[Trajectory]:
    collector = RolloutCollector(
        "agentgym/Calculator-v0",
        engine=engine,
        env_kwargs={"difficulty": "medium"},
        sampling=sampling,
        num_envs=num_envs,
        max_turns=max_turns,
        max_context_tokens=1024,
        mode=mode,
        **options,
    )
    # Two samples of each task: equal prompts must still draw differently.
    specs = [EpisodeSpec(f"ep-{i}", seed=i // 2) for i in range(episodes)]
    trajectories = collector.run(specs, progress=False)
    collector.close()
    return trajectories


@pytest.fixture(scope="module")
def hf_tiny() -> HFEngine:
    return HFEngine(str(resolve_model(TINY)))


@pytest.mark.parametrize("sampling", [GREEDY, SEEDED], ids=["greedy", "seeded"])
def test_hf_async_gives_the_sync_trajectories(hf_tiny, sampling) -> None:
    sync = collect(hf_tiny, sampling, mode="sync", num_envs=4)
    asynchronous = collect(hf_tiny, sampling, mode="async", num_envs=3, gather_seconds=0.0)
    assert comparable(asynchronous) == comparable(sync)
    assert all(len(t.steps) >= 1 and t.messages[-2].token_ids for t in sync)
    first_actions = [tuple(t.messages[2].token_ids) for t in sync]
    if sampling is SEEDED:  # the two samples of one task differ
        assert first_actions[0] != first_actions[1]


def test_expert_async_gives_the_sync_trajectories() -> None:
    sync = collect(None, GREEDY, mode="sync", num_envs=2, episodes=8, max_turns=None)
    asynchronous = collect(None, GREEDY, mode="async", num_envs=5, episodes=8, max_turns=None,
                           env_workers=2)  # fmt: skip
    assert comparable(asynchronous) == comparable(sync)
    assert any(t.success for t in sync) and len({t.task_id for t in sync}) == 4


def test_batching_queue_gives_per_request_samples(hf_tiny) -> None:
    """One engine call over requests of different budgets equals one call per request."""
    tokenizer = hf_tiny.tokenizer
    prompts = [tokenizer.encode(text) for text in ["Hello there", "The cat sat on", "1 2 3"]]
    queue = BatchingQueue(hf_tiny)
    for index, prompt in enumerate(prompts):
        params = SEEDED.with_(seed=100 + index, max_tokens=4 + 3 * index)
        queue.submit(GenerationRequest(f"r{index}", prompt, params))
    together = dict(queue.poll())
    assert queue.pending == 0 and queue.calls == 1
    for index, prompt in enumerate(prompts):
        params = SEEDED.with_(max_tokens=4 + 3 * index, prompt_seeds=(100 + index,))
        [[alone]] = hf_tiny.generate([prompt], params)
        assert together[f"r{index}"].token_ids == alone.token_ids
        assert together[f"r{index}"].logprobs == pytest.approx(alone.logprobs, abs=1e-5)


# ----------------------------------------------------------------- overlap with slow envs


@tool
def ping(note: str) -> str:
    """Answer pong.

    Args:
        note: Anything.
    """
    return "pong"


class GatedEnv(ToolEnv):
    """Task ``slow`` blocks in its first step until the test's gate opens (a slow backend)."""

    gate = threading.Event()

    def __init__(self) -> None:
        names = ["slow", *(f"fast{i}" for i in range(5))]
        tasks = [
            ToolTask(id=name, turns=("ping twice",),
                     ground_truth=((ToolCall("ping", {"note": "a"}),),))
            for name in names
        ]  # fmt: skip
        super().__init__(tools=[ping], tasks=tasks, checker=lambda e: Evaluation(True, 1.0))

    def _act(self, action: str):
        if self.task_id == "slow" and not self.gate.wait(timeout=60):
            raise TimeoutError("the gate never opened: the other episodes did not advance")
        return super()._act(action)


class GateOpeningEngine(Engine):
    """Replies with a tool call; opens the gate once it has served ``after`` prompts."""

    name = "gate-opener"

    def __init__(self, tokenizer: Any, after: int) -> None:
        self._tokenizer = tokenizer
        self.after = after
        self.served = 0

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def generate(self, prompts, params):
        self.served += len(prompts)
        if self.served >= self.after:
            GatedEnv.gate.set()
        text = '<tool_call>{"name": "ping", "arguments": {"note": "a"}}</tool_call>'
        ids = [
            *self._tokenizer.encode(text, add_special_tokens=False),
            self._tokenizer.eos_token_id,
        ]
        return [[Completion(text, ids[: params.max_tokens], [])] for _ in prompts]


@pytest.fixture
def gated_env() -> Iterator[str]:
    register_env("tests/Gated-v0", GatedEnv, description="one slow task", max_episode_steps=3,
                 override=True)  # fmt: skip
    GatedEnv.gate.clear()
    yield "tests/Gated-v0"
    GatedEnv.gate.set()  # never leave a worker blocked


def test_a_slow_environment_step_does_not_hold_back_the_others(tmp_path, gated_env, hf_tiny):
    # The five fast episodes need 15 prompts (3 turns each) while the slow episode's first
    # step is blocked; the engine opens the gate only after serving them all. A collector
    # that waits for every environment step of a turn never gets there.
    engine = GateOpeningEngine(hf_tiny.tokenizer, after=1 + 15)
    collector = RolloutCollector(gated_env, engine=engine, num_envs=6, max_turns=3,
                                 gather_seconds=0.05)  # fmt: skip
    specs = [EpisodeSpec("slow", task_id="slow"), *(
        EpisodeSpec(f"fast{i}", task_id=f"fast{i}") for i in range(5))]  # fmt: skip
    with TrajectoryStore(tmp_path / "t.jsonl") as store:
        trajectories = collector.run(specs, store=store, progress=False)
        finished_order = [t.id for t in store]
    assert all(t.error is None and t.num_steps == 3 for t in trajectories), [
        t.error for t in trajectories
    ]
    assert finished_order[-1] == "slow"


def test_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        RolloutCollector("agentgym/Calculator-v0", engine=None, mode="parallel")


# ------------------------------------------------------------------------------- vLLM


@pytest.fixture(scope="module")
def vllm_tiny() -> Iterator[Any]:
    try:
        import vllm  # noqa: F401
    except Exception as exc:  # not installed, or a broken install
        pytest.skip(f"vllm cannot be imported ({type(exc).__name__}: {exc})")
    from agentgym.engines.vllm import VLLMEngine

    engine = VLLMEngine(TINY, device="cpu", max_model_len=1024, kv_cache_space_gb=1)
    yield engine
    engine.close()


@pytest.mark.parametrize("sampling", [GREEDY, SEEDED], ids=["greedy", "seeded"])
def test_vllm_async_gives_the_sync_trajectories(vllm_tiny, sampling) -> None:
    sync = collect(vllm_tiny, sampling, mode="sync", num_envs=4)
    asynchronous = collect(vllm_tiny, sampling, mode="async", num_envs=3)
    assert comparable(asynchronous) == comparable(sync)
    assert all(t.messages[2].token_ids for t in sync)


def test_vllm_step_queue_matches_generate_and_releases_requests(vllm_tiny) -> None:
    tokenizer = vllm_tiny.tokenizer
    prompts = [tokenizer.encode(text) for text in ["Hello there", "The cat sat on", "1 2 3"]]
    queue = vllm_tiny.completion_queue()
    assert queue.continuous
    for index, prompt in enumerate(prompts):
        params = SEEDED.with_(seed=7 + index, max_tokens=3 + 4 * index)
        queue.submit(GenerationRequest(index, prompt, params))
    finished: dict[Any, Completion] = {}
    order = []
    while queue.pending:
        for key, completion in queue.poll():
            finished[key] = completion
            order.append(key)
    assert order == [0, 1, 2]  # the shortest budget left the batch first
    reference = vllm_tiny.generate(prompts, SEEDED.with_(max_tokens=11, prompt_seeds=(7, 8, 9)))
    for index in range(3):
        assert finished[index].token_ids == reference[index][0].token_ids[: 3 + 4 * index]
    # Closing a queue with requests in flight aborts them; the engine stays usable.
    queue.submit(GenerationRequest("left", prompts[0], SEEDED.with_(max_tokens=50)))
    queue.poll()
    queue.close()
    assert not vllm_tiny.llm.llm_engine.has_unfinished_requests()
    assert len(vllm_tiny.generate(prompts[:1], GREEDY)[0][0].token_ids) == GREEDY.max_tokens


# ----------------------------------------------------------------------------- config


def test_rollout_section_reaches_the_collector_and_bad_values_are_listed() -> None:
    from hydra import compose, initialize_config_module

    from agentgym.commands import rollout_options
    from agentgym.config import ConfigError, validate_config

    with initialize_config_module("agentgym.configs", version_base="1.3"):
        good = compose(config_name="rollout", overrides=["rollout.mode=sync"])
        bad = compose(
            config_name="eval",
            overrides=["rollout.mode=parallel", "rollout.gather_seconds=-1",
                       "+rollout.workers=2", "rollout.env_workers=0"],
        )  # fmt: skip
    validate_config(good, "rollout")
    options = rollout_options(good)
    assert options == {"mode": "sync", "env_workers": None, "gather_seconds": 1.0}
    collector = RolloutCollector("agentgym/Calculator-v0", engine=None, **options)
    assert collector.mode == "sync" and collector.env_workers == len(collector.envs) == 8
    with pytest.raises(ConfigError) as excinfo:
        validate_config(bad, "eval")
    text = str(excinfo.value)
    for problem in ("rollout.mode='parallel'", "rollout.gather_seconds=-1",
                    "unknown key 'rollout.workers'", "rollout.env_workers=0"):  # fmt: skip
        assert problem in text, text
