"""A real run directory for the viewer's tests, built once per test session.

``agentgym train trainer=eef`` on Calculator-v0 with the tiny random model (a few seconds on
a CPU) gives every kind of store a run has (expert, collect, explore with restarts, eval),
sampled tokens with log-probs, a ledger, metrics and a summary. Two stores are added by hand:
``tooluse`` (real ToolUse-v0 expert episodes: multi-turn tool calls with JSON results) and
``hostile``: episodes whose every text field holds HTML and script, which the viewer must
show as text.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.core.trajectory import Message, Step, Trajectory, TrajectoryStore

#: Text that would run code if a page inserted it as markup.
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold</b>'

TRAIN = [
    "trainer=eef", "env=calculator", "model=tiny-random-llama", "engine=hf", "num_envs=4",
    "sampling.max_tokens=12", "eval.episodes=4", "sft.epochs=1", "progress=false",
    "trainer.iterations=1", "trainer.train_tasks=4", "trainer.budget=3", "max_turns=4",
    "tensorboard=false",
]  # fmt: skip


def hostile_trajectories() -> list[Trajectory]:
    """Episodes with markup in every field a page shows."""
    messages = [
        Message("system", f"System {HOSTILE}"),
        Message("user", f"Task {HOSTILE}"),
        Message("assistant", f"<tool_call>{{\"name\": \"{HOSTILE}\"}}</tool_call>", trainable=True,
                token_ids=[1, 2], logprobs=[-0.1, -2.0]),
        Message("tool", f'{{"result": "{HOSTILE}"}}', tool_call_id=HOSTILE),
        Message("assistant", HOSTILE, trainable=True,
                tool_calls=[{"function": {"name": HOSTILE, "arguments": "{}"}}]),
    ]  # fmt: skip
    steps = [
        Step(f"<tool_call>{HOSTILE}</tool_call>", HOSTILE, 0.5, feedback=HOSTILE,
             info={HOSTILE: HOSTILE}),
        Step(HOSTILE, HOSTILE, 0.0, truncated=True, action_valid=False, feedback=HOSTILE),
    ]  # fmt: skip
    first = Trajectory(
        "agentgym/Calculator-v0", f"task {HOSTILE}", messages=messages, steps=steps,
        id="hostile-1", policy=HOSTILE, iteration=7, reward=0.5, success=False, truncated=True,
        truncation_reason=HOSTILE, verdicts={HOSTILE: True}, feedback=HOSTILE,
        error=f"Traceback: {HOSTILE}", metadata={"task": {"category": HOSTILE}},
        env_kwargs={"split": HOSTILE},
    )  # fmt: skip
    second = Trajectory.from_dict({**first.to_dict(), "id": f"hostile-{HOSTILE}"})
    return [first, second]


def tooluse_trajectories(count: int = 6) -> list[Trajectory]:
    """Real multi-turn ToolUse-v0 episodes of the scripted expert (some with errors)."""
    collector = RolloutCollector(
        "agentgym/ToolUse-v0", engine=None, num_envs=2, expert_kwargs={"error_rate": 0.4, "seed": 1}
    )
    specs = [EpisodeSpec(f"tooluse-{i}", seed=i) for i in range(count)]
    return collector.run(specs, progress=False)


def build(path: Path) -> Path:
    """Train the tiny EEF run into ``path`` and add the extra stores; returns ``path``."""
    result = subprocess.run(
        [sys.executable, "-m", "agentgym.cli", "train", *TRAIN, f"run_dir={path}"],
        capture_output=True, text=True, timeout=600, cwd=path.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    with TrajectoryStore(path / "trajectories" / "hostile.jsonl") as store:
        store.append(hostile_trajectories())
    with TrajectoryStore(path / "trajectories" / "tooluse.jsonl") as store:
        store.append(tooluse_trajectories())
    return path


def session_run(factory: pytest.TempPathFactory) -> Path:
    """The session's run directory (built by whichever test module asks first)."""
    path = factory.getbasetemp() / "view-run"
    if not (path / "summary.json").is_file():
        build(path)
    return path
