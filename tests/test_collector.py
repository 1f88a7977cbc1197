"""The batched multi-turn collector: token exactness, batching, budgets, failures, resume."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import pytest
from transformers import AutoTokenizer

from agentgym import Evaluation, ToolCall, ToolTask, register_env, tool
from agentgym.chat import ChatTemplateError, TokenConversation
from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.core.tool_env import ToolEnv
from agentgym.core.trajectory import TrajectoryStore
from agentgym.engines.base import Completion, Engine, SamplingParams
from agentgym.models import resolve_model


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model("tiny-random-llama"))


class ScriptedEngine(Engine):
    """An engine whose 'samples' come from a function of the decoded prompt (for exact tests)."""

    name = "scripted-lm"

    def __init__(self, tokenizer, reply: Callable[[str], str], *, add_eos: bool = True) -> None:
        self._tokenizer = tokenizer
        self.reply = reply
        self.add_eos = add_eos
        self.calls: list[int] = []  # batch size of every call
        self.sampled: list[list[int]] = []

    @property
    def tokenizer(self):
        return self._tokenizer

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams):
        self.calls.append(len(prompts))
        out = []
        for prompt in prompts:
            text = self.reply(self._tokenizer.decode(list(prompt)))
            ids = self._tokenizer(text, add_special_tokens=False)["input_ids"]
            ids = ids[: params.max_tokens]
            finish = "length" if len(ids) == params.max_tokens else "stop"
            if self.add_eos and finish == "stop":
                ids = [*ids, self._tokenizer.eos_token_id]
            self.sampled.append(list(ids))
            out.append([Completion(text, list(ids), [-0.5] * len(ids), finish)])
        return out


def calculator_solver(prompt: str) -> str:
    """Solve Calculator tasks from the conversation text, like a perfect model would."""
    import re

    turns = prompt.split("<|im_start|>")
    last = turns[-2]  # the message before the generation prompt
    if last.startswith("tool\n"):
        value = last.removeprefix("tool\n").split("<|im_end|>")[0]
        return f"The answer is {value}."
    user = last.removeprefix("user\n").split("<|im_end|>")[0]
    numbers = [int(n) for n in re.findall(r"\d+", user)]
    ops = {"plus": "add", "minus": "subtract", "times": "multiply", "Add": "add",
           "subtract": "subtract", "Multiply": "multiply", "divide": "divide"}  # fmt: skip
    op = next(name for word, name in ops.items() if word in user)
    if len(numbers) == 2:
        a, b = numbers
    else:
        answers = re.findall(r"The answer is (-?\d+)", prompt)
        a, b = int(answers[-1]), numbers[0]
    return f'<tool_call>{{"name": "{op}", "arguments": {{"a": {a}, "b": {b}}}}}</tool_call>'


def _flat_ids(trajectory) -> list[int]:
    return [i for m in trajectory.messages for i in (m.token_ids or [])]


def _render(tokenizer, trajectory) -> str:
    messages = [{"role": m.role, "content": m.content} for m in trajectory.messages]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_solver_engine_succeeds_and_token_ids_are_exact(tokenizer) -> None:
    engine = ScriptedEngine(tokenizer, calculator_solver)
    collector = RolloutCollector(
        "agentgym/Calculator-v0", engine=engine, env_kwargs={"difficulty": "hard"}, num_envs=3
    )
    specs = [EpisodeSpec(f"ep-{i}", seed=i) for i in range(7)]
    trajectories = collector.run(specs, progress=False)
    assert [t.id for t in trajectories] == [s.trajectory_id for s in specs]
    assert all(t.success for t in trajectories), [t.feedback for t in trajectories]
    assert all(t.num_steps == 6 for t in trajectories)  # 3 turns x (call + answer)
    # Every turn was one batched call over all active episodes (3 slots).
    assert max(engine.calls) == 3 and sum(engine.calls) == 7 * 6
    sampled = iter(engine.sampled)
    by_call = {}
    for trajectory in trajectories:
        ids = _flat_ids(trajectory)
        # The ids decode to exactly what the chat template renders for the conversation.
        assert tokenizer.decode(ids) == _render(tokenizer, trajectory)
        assistant = [m for m in trajectory.messages if m.role == "assistant"]
        assert all(m.trainable and m.logprobs == [-0.5] * len(m.token_ids) for m in assistant)
        assert all(not m.trainable for m in trajectory.messages if m.role != "assistant")
        by_call[trajectory.id] = [m.token_ids for m in assistant]
    all_assistant_ids = sorted(map(tuple, (x for v in by_call.values() for x in v)))
    assert all_assistant_ids == sorted(map(tuple, sampled))  # the engine's ids, verbatim
    stats = collector.stats
    assert stats.episodes == 7 and stats.successes == 7 and stats.engine_calls == len(engine.calls)


def test_length_cut_completions_still_decode_exactly(tokenizer) -> None:
    engine = ScriptedEngine(tokenizer, lambda prompt: "word " * 50)
    collector = RolloutCollector(
        "agentgym/Calculator-v0",
        engine=engine,
        env_kwargs={"difficulty": "medium"},
        sampling=SamplingParams(max_tokens=8),
        num_envs=2,
    )
    trajectories = collector.run([EpisodeSpec(f"e{i}", seed=i) for i in range(3)], progress=False)
    for trajectory in trajectories:
        assert tokenizer.decode(_flat_ids(trajectory)) == _render(tokenizer, trajectory)
        assistant = [m for m in trajectory.messages if m.role == "assistant"]
        assert all(len(m.token_ids) == 8 for m in assistant)


def test_budgets_truncate_with_reasons(tokenizer) -> None:
    chatter = ScriptedEngine(tokenizer, lambda prompt: "<tool_call>{bad json</tool_call>")
    by_turns = RolloutCollector("agentgym/Calculator-v0", engine=chatter, max_turns=2)
    [trajectory] = by_turns.run([EpisodeSpec("t", seed=0)], progress=False)
    assert trajectory.truncated and trajectory.truncation_reason == "max_turns"
    assert trajectory.num_steps == 2 and trajectory.success is False

    by_limit = RolloutCollector(
        "agentgym/Calculator-v0",
        engine=chatter,
        env_kwargs={"max_steps_per_turn": 50},
    )
    [trajectory] = by_limit.run([EpisodeSpec("t", seed=0)], progress=False)
    assert trajectory.truncation_reason == "max_episode_steps" and trajectory.num_steps == 24

    by_context = RolloutCollector(
        "agentgym/Calculator-v0",
        engine=chatter,
        env_kwargs={"max_steps_per_turn": 50},
        max_context_tokens=700,
    )
    [trajectory] = by_context.run([EpisodeSpec("t", seed=0)], progress=False)
    assert trajectory.truncation_reason == "max_context"
    # Every prompt plus its completion fit the budget; only the last observation, which the
    # policy never saw, may go past it.
    last_assistant = max(i for i, m in enumerate(trajectory.messages) if m.role == "assistant")
    seen = [i for m in trajectory.messages[: last_assistant + 1] for i in m.token_ids or []]
    assert 600 < len(seen) <= 700


@tool
def explode(times: int) -> str:
    """Return a text.

    Args:
        times: How often.
    """
    return "ok" * times


class ExplodingEnv(ToolEnv):
    """A ToolEnv whose step raises on odd-numbered tasks (a buggy third-party env)."""

    def __init__(self) -> None:
        tasks = [
            ToolTask(
                id=f"x{i}", turns=("go",), ground_truth=((ToolCall("explode", {"times": 1}),),)
            )
            for i in range(6)
        ]
        super().__init__(tools=[explode], tasks=tasks, checker=lambda e: Evaluation(True, 1.0))

    def _act(self, action: str):
        if int(self.task_id[1:]) % 2:
            raise RuntimeError("backend crashed")
        return super()._act(action)


def test_a_failing_environment_does_not_stop_the_others(tokenizer) -> None:
    register_env("tests/Exploding-v0", ExplodingEnv, description="raises", max_episode_steps=5,
                 override=True)  # fmt: skip
    engine = ScriptedEngine(tokenizer, lambda prompt: "done")
    collector = RolloutCollector("tests/Exploding-v0", engine=engine, num_envs=3)
    specs = [EpisodeSpec(f"e{i}", task_id=f"x{i}") for i in range(6)]
    trajectories = collector.run(specs, progress=False)
    failed = [t for t in trajectories if t.error]
    assert [t.task_id for t in failed] == ["x1", "x3", "x5"]
    assert all("backend crashed" in t.error and t.truncation_reason == "env_error" for t in failed)
    assert all(t.success for t in trajectories if not t.error)
    assert collector.stats.errors == 3


def test_resume_from_store_skips_finished_episodes(tmp_path, tokenizer) -> None:
    engine = ScriptedEngine(tokenizer, calculator_solver)
    collector = RolloutCollector("agentgym/Calculator-v0", engine=engine, num_envs=2)
    specs = [EpisodeSpec(f"ep-{i}", seed=i) for i in range(5)]
    with TrajectoryStore(tmp_path / "t.jsonl") as store:
        collector.run(specs[:3], store=store, progress=False)
    calls_before = sum(engine.calls)
    with TrajectoryStore(tmp_path / "t.jsonl") as store:
        trajectories = collector.run(specs, store=store, progress=False)
        assert len(store) == 5
    assert [t.id for t in trajectories] == [s.trajectory_id for s in specs]
    assert sum(engine.calls) - calls_before == 2 * 2  # only the two new episodes ran


def test_restart_from_a_prefix_keeps_context_untrained(tokenizer) -> None:
    expert = RolloutCollector("agentgym/Calculator-v0", engine=None,
                              env_kwargs={"difficulty": "medium"})  # fmt: skip
    [parent] = expert.run([EpisodeSpec("parent", seed=4)], progress=False)
    engine = ScriptedEngine(tokenizer, calculator_solver)
    collector = RolloutCollector(
        "agentgym/Calculator-v0", engine=engine, env_kwargs={"difficulty": "medium"}
    )
    [child] = collector.run(
        [EpisodeSpec("child", restart_from=parent, restart_step=2)], progress=False
    )
    assert child.parent_id == "parent" and child.restart_step == 2
    assert child.steps[:2] == parent.steps[:2]
    assert child.success and child.num_steps == parent.num_steps
    assistant = [m for m in child.messages if m.role == "assistant"]
    assert [m.trainable for m in assistant] == [False, False, True, True]
    assert tokenizer.decode(_flat_ids(child)) == _render(tokenizer, child)


def test_restart_after_step_zero_keeps_the_system_prompt_and_tool_list(tokenizer) -> None:
    expert = RolloutCollector("agentgym/Calculator-v0", engine=None,
                              env_kwargs={"difficulty": "hard"})  # fmt: skip
    [parent] = expert.run([EpisodeSpec("parent", seed=7)], progress=False)
    assert parent.messages[0].role == "system" and "<tools>" in parent.messages[0].content
    engine = ScriptedEngine(tokenizer, calculator_solver)
    collector = RolloutCollector(
        "agentgym/Calculator-v0", engine=engine, env_kwargs={"difficulty": "hard"}
    )
    specs = [EpisodeSpec(f"from{k}", restart_from=parent, restart_step=k) for k in (0, 1, 3)]
    children = collector.run(specs, progress=False)
    for child in children:
        # The opening is the parent's (system prompt with the tool list, first user turn),
        # not the observation of the last replayed step.
        assert [m.role for m in child.messages[:2]] == ["system", "user"]
        assert child.messages[0].content == parent.messages[0].content
        assert child.messages[1].content == parent.messages[1].content
        assert child.task_id == parent.task_id and child.episode_seed == parent.episode_seed
        prompt = tokenizer.decode(_flat_ids(child))
        assert prompt == _render(tokenizer, child) and '"name": "multiply"' in prompt
        assert child.success, child.feedback
    fresh = [m.token_ids for m in children[0].messages[:2]]
    assert all([m.token_ids for m in c.messages[:2]] == fresh for c in children[1:])


def test_expert_runs_through_the_collector() -> None:
    collector = RolloutCollector(
        "agentgym/Calculator-v0", engine=None, expert_kwargs={"error_rate": 1.0, "seed": 3},
        env_kwargs={"difficulty": "medium"},
    )  # fmt: skip
    trajectories = collector.run([EpisodeSpec(f"e{i}", seed=i) for i in range(10)], progress=False)
    assert sum(t.success for t in trajectories) <= 2
    assert all(t.messages[0].role == "system" and t.messages[0].token_ids is None
               for t in trajectories)  # fmt: skip
    assert all(t.metadata["task"]["difficulty"] == "medium" for t in trajectories)


def test_sampling_n_must_be_one() -> None:
    with pytest.raises(ValueError, match="one EpisodeSpec per sample"):
        RolloutCollector("agentgym/Calculator-v0", engine=None, sampling=SamplingParams(n=2))


def test_template_that_rewrites_earlier_turns_is_refused(tokenizer) -> None:
    rewriting = (
        "{% for m in messages %}{% if m['role'] != 'assistant' or loop.last %}"
        "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    conversation = TokenConversation(
        tokenizer, [{"role": "user", "content": "hi"}], template_kwargs={"chat_template": rewriting}
    )
    conversation.add_assistant(tokenizer("hello", add_special_tokens=False)["input_ids"]
                               + [tokenizer.eos_token_id])  # fmt: skip
    with pytest.raises(ChatTemplateError, match="rewrites earlier turns"):
        conversation.add_message("user", "again")


def test_env_ids_are_real_gymnasium_ids() -> None:
    assert gym.spec("agentgym/Calculator-v0").max_episode_steps == 24


def test_same_task_episodes_sample_differently_and_reproducibly() -> None:
    from agentgym.engines.hf import HFEngine

    engine = HFEngine(str(resolve_model("tiny-random-llama")))
    sampling = SamplingParams(temperature=1.0, max_tokens=12, seed=0)

    def run() -> list[list[int]]:
        collector = RolloutCollector(
            "agentgym/Calculator-v0", engine=engine, sampling=sampling, num_envs=1, max_turns=2
        )  # one episode per engine call: a call-level seed alone would repeat its samples
        specs = [EpisodeSpec(f"k{j}", task_id=None, seed=5) for j in range(4)]  # one task, K=4
        trajectories = collector.run(specs, progress=False)
        collector.close()
        return [list(t.messages[2].token_ids) for t in trajectories]  # the first action

    first = run()
    assert len({tuple(ids) for ids in first}) > 1, "K samples of one task were identical"
    assert run() == first  # the same episode ids and seed reproduce every sample


def test_prompt_seeds_must_cover_every_prompt() -> None:
    params = SamplingParams(seed=1, prompt_seeds=[4, 5])
    assert params.prompt_seeds == (4, 5) and params.seed_for(1) == 5
    with pytest.raises(ValueError, match="one seed per prompt"):
        params.seed_for(2)
