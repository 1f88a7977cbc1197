"""Voting and test-time critique: answer keys, votes, success vs N with and without a critic."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest
from critique_doubles import CODE, RIGHT, RIGHT_AGAIN, WRONG, ScriptedActor

import agentgym  # noqa: F401  (registers the environments)
from agentgym.critique import OracleCritic
from agentgym.critique.testtime import TestTimeConfig, run_test_time
from agentgym.critique.vote import answer_key, critic_vote, majority_vote
from agentgym.engines import make_engine
from agentgym.engines.base import SamplingParams
from agentgym.models import resolve_model

# ------------------------------------------------------------------------ votes --


def test_majority_vote_counts_answers_and_breaks_ties_by_first_proposal() -> None:
    assert majority_vote(["a", "b", "b"]) == 1
    assert majority_vote(["a", "b", "b", "a"]) == 0
    with pytest.raises(ValueError):
        majority_vote([])


def test_critic_vote_filters_then_falls_back() -> None:
    vote = critic_vote(["a", "a", "b"], [False, False, True])
    assert (vote.index, vote.filtered, vote.approved) == (2, True, 1)
    vote = critic_vote(["a", "a", "b"], [None, False, False])
    assert (vote.index, vote.filtered, vote.approved) == (0, False, 0)
    with pytest.raises(ValueError, match="verdicts"):
        critic_vote(["a"], [True, False])


def test_answer_keys_group_equivalent_answers() -> None:
    assert answer_key(CODE, RIGHT) == answer_key(CODE, RIGHT_AGAIN) != answer_key(CODE, WRONG)
    shop = "agentgym/WebShop-v0"
    assert answer_key(shop, "Thought: buy.\nAction: click[Buy Now]") == "click[buy now]"
    tool = gym.make("agentgym/ToolUse-v0")
    a = '<tool_call>{"name": "f", "arguments": {"x": 1, "y": 2}}</tool_call>'
    b = '<tool_call>\n{"arguments": {"y": 2, "x": 1}, "name": "f"}\n</tool_call>'
    assert answer_key("agentgym/ToolUse-v0", a, tool) == answer_key("agentgym/ToolUse-v0", b, tool)
    plan = '[{"days": 1, "current_city": "A"}]'
    spaced = "```json\n[ {'current_city': 'A', 'days': 1} ]\n```"
    assert answer_key("agentgym/TravelPlanner-v0", plan) == answer_key(
        "agentgym/TravelPlanner-v0", spaced)  # fmt: skip
    assert answer_key("some/Other-v0", "a  b\n") == "a b"
    assert answer_key(CODE, 3) == "3"  # never raises


# ------------------------------------------------------------------------ test time --


def _rates(result: Any) -> dict[str, dict[str, float]]:
    return {mode: {n: block["success_rate"] for n, block in by_n.items()}
            for mode, by_n in result.summary.items()}  # fmt: skip


SAMPLING = SamplingParams(temperature=1.0, max_tokens=64, seed=0)


def test_critic_filtered_vote_beats_the_plain_majority() -> None:
    actor = ScriptedActor([WRONG, WRONG, RIGHT, RIGHT_AGAIN])
    result = run_test_time(CODE, {"max_attempts": 1}, actor, OracleCritic(),
                           episodes=[("gen-easy-0", 0)], sampling=SAMPLING,
                           config=TestTimeConfig(ns=(1, 2, 4), rounds=0))  # fmt: skip
    assert _rates(result) == {
        "plain": {"1": 0.0, "2": 0.0, "4": 0.0},  # 2 wrong vs 2 right: the first answer wins
        "critic": {"1": 0.0, "2": 0.0, "4": 1.0},  # the critic drops the wrong ones
    }
    # Every lane used the same 4 samples, critiqued once each, in one engine call.
    assert result.counts == {"samples": 4, "refinements": 0, "critiques": 4, "trials": 2}
    assert actor.calls == 1
    assert result.critic["agreement_with_environment"] == 1.0
    assert result.critic["filtered_votes"] == 1
    assert result.summary["critic"]["4"]["success_ci95"] == [0.2065, 1.0]


@pytest.mark.parametrize(("rounds", "solved"), [(0, 0.0), (1, 1.0)])
def test_refinement_with_critique_for_r_rounds(rounds: int, solved: float) -> None:
    actor = ScriptedActor([WRONG], refinement=RIGHT)
    result = run_test_time(CODE, {"max_attempts": 1}, actor, OracleCritic(),
                           episodes=[("gen-easy-0", 0)], sampling=SAMPLING,
                           config=TestTimeConfig(ns=(1,), rounds=rounds))  # fmt: skip
    assert _rates(result) == {"plain": {"1": 0.0}, "critic": {"1": solved}}
    assert result.counts["refinements"] == rounds
    assert result.counts["critiques"] == 1 + rounds  # each refinement is critiqued again


def test_multi_step_lanes_share_states_until_they_diverge() -> None:
    # Two attempts per episode: a wrong first attempt leads to a second step.
    actor = ScriptedActor([WRONG, RIGHT])
    result = run_test_time(CODE, {"max_attempts": 2}, actor, OracleCritic(),
                           episodes=[("gen-easy-0", 0)], sampling=SAMPLING,
                           config=TestTimeConfig(ns=(1, 2), rounds=0))  # fmt: skip
    records = {(r["mode"], r["n"]): r for r in result.episodes}
    assert records[("critic", 2)]["steps"] == 1 and records[("critic", 2)]["success"]
    # The plain lanes (and critic N=1) commit WRONG, then meet the same second state, whose
    # first sample is WRONG again (the script restarts per state): two failed attempts.
    for lane in (("plain", 1), ("plain", 2), ("critic", 1)):
        assert records[lane]["actions"] == [WRONG, WRONG] and not records[lane]["success"]
    # Root: 2 samples; the shared second state: 2 more (its lanes need up to N = 2).
    assert result.counts["samples"] == 4


def test_max_steps_ends_an_episode_as_failed() -> None:
    actor = ScriptedActor([WRONG])
    result = run_test_time(CODE, {"max_attempts": 3}, actor, None,
                           episodes=[("gen-easy-0", 0)], sampling=SAMPLING,
                           config=TestTimeConfig(ns=(1,), max_steps=1))  # fmt: skip
    assert list(result.summary) == ["plain"]  # no critic: only the plain policy
    assert result.episodes[0]["steps"] == 1 and not result.episodes[0]["success"]


def test_config_problems_are_listed() -> None:
    with pytest.raises(ValueError) as excinfo:
        TestTimeConfig(ns=(0, 2), rounds=-1, max_steps=0, modes=("greedy",))
    for expected in ("n must be", "rounds must be", "max_steps must be", "modes must be"):
        assert expected in str(excinfo.value)


def test_runs_on_the_hf_engine_and_is_reproducible() -> None:
    engine = make_engine("hf", model=str(resolve_model("tiny-random-llama")))
    sampling = SamplingParams(temperature=1.0, max_tokens=8, seed=3)
    episodes = [("gen-easy-0", 0), ("gen-easy-1", 1)]
    config = TestTimeConfig(ns=(1, 2))
    runs = [
        run_test_time(
            CODE,
            {"max_attempts": 1},
            engine,
            None,
            episodes=episodes,
            sampling=sampling,
            config=config,
        )
        for _ in range(2)
    ]
    engine.close()
    assert len(runs[0].episodes) == 4  # 2 episodes x 2 values of N
    assert runs[0].counts["samples"] == 4  # N_max samples per episode, shared by the lanes
    assert runs[0].episodes == runs[1].episodes  # seeded: the same samples every time
