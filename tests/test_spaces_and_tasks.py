"""Text spaces and task sets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgym import AgentText, GeneratedTaskSet, TaskSet
from agentgym.core.spaces import sanitize_text
from agentgym.core.tasks import task_seed


def test_agent_text_admits_unicode_json_and_newlines() -> None:
    space = AgentText(200)
    assert space.contains('{"ville": "Zürich", "日本": [1, 2.5, null]}\n\tnext line\r\n')
    assert space.contains("")
    assert not space.contains("x" * 201)
    assert not space.contains("bell\x07")
    assert not space.contains("\ud800")
    assert not space.contains(b"bytes")
    assert AgentText(10) == AgentText(10) != AgentText(11)


def test_agent_text_samples_are_members_and_seeded() -> None:
    a, b = AgentText(50, seed=3), AgentText(50, seed=3)
    samples = [a.sample() for _ in range(20)]
    assert samples == [b.sample() for _ in range(20)]
    assert all(a.contains(s) for s in samples)
    assert any(any(ord(c) > 127 for c in s) for s in samples)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.integers(1, 300))
def test_sanitize_always_yields_a_member(text: str, limit: int) -> None:
    clean = sanitize_text(text, limit)
    assert AgentText(limit).contains(clean)
    if AgentText(limit).contains(text):
        assert clean == text


def test_sanitize_marks_truncation() -> None:
    assert sanitize_text("a" * 100, 40).endswith("…[truncated]")


def test_task_set_lookup_and_errors() -> None:
    tasks = TaskSet.from_list([{"id": "alpha"}, {"id": "beta"}], id_of=lambda t: t["id"])
    assert tasks.index_of("beta") == 1 and tasks.id_at(0) == "alpha"
    with pytest.raises(KeyError, match="Did you mean 'alpha'"):
        tasks.index_of("alpah")
    with pytest.raises(ValueError, match="Duplicate task ids"):
        TaskSet.from_list([{"id": "a"}, {"id": "a"}], id_of=lambda t: t["id"])


def test_generated_task_set_is_deterministic_and_lazy() -> None:
    built: list[int] = []

    def generate(index: int, rng: np.random.Generator) -> dict:
        built.append(index)
        return {"index": index, "value": int(rng.integers(1_000_000))}

    tasks = GeneratedTaskSet(10_000, generate, id_prefix="g-", base_seed=4, offset=100)
    assert built == []
    first = tasks[7]
    again = GeneratedTaskSet(10_000, generate, id_prefix="g-", base_seed=4, offset=100)[7]
    assert first == again and first["index"] == 107
    assert tasks.id_at(7) == "g-107" and tasks.index_of("g-107") == 7
    assert tasks[-1]["index"] == 10_099
    with pytest.raises(IndexError):
        tasks[10_000]
    with pytest.raises(KeyError, match=r"g-100 \.\. g-10099"):
        tasks.index_of("g-5")
    other_seed = GeneratedTaskSet(10, generate, id_prefix="g-", base_seed=5, offset=100)
    assert other_seed[7]["value"] != first["value"]
    assert task_seed(0, 1) != task_seed(1, 0)
