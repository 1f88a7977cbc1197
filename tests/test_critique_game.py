"""The actor/critic PettingZoo game: PettingZoo's API tests on four environments, and its rules."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from pettingzoo.test import api_test, parallel_api_test
from pettingzoo.utils.conversions import aec_to_parallel, turn_based_aec_to_parallel

import agentgym
from agentgym.critique import CritiqueGame, critique_game
from agentgym.critique.critics import Critic
from agentgym.critique.protocol import Critique, CritiqueRequest

ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "agentgym/CodeExec-v0": {},
    "agentgym/TravelPlanner-v0": {
        "mode": "sole-planning", "database_size": "small", "split": "validation"},
    "agentgym/ToolUse-v0": {},
    "agentgym/WebShop-v0": {"num_products": 300, "index_cache": False},
}  # fmt: skip

WRONG = "```python\ndef sum_of_multiples(nums):\n    return 12345\n```"


@pytest.fixture(autouse=True)
def _quiet() -> Any:
    # PettingZoo's checker warns that text spaces are not Box/Discrete: expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize("env_id", list(ENVIRONMENTS))
def test_pettingzoo_api_test_passes(env_id: str) -> None:
    game = critique_game(env_id, rounds=1, **ENVIRONMENTS[env_id])
    api_test(game, num_cycles=300)
    game.close()


@pytest.mark.parametrize("env_id", list(ENVIRONMENTS))
def test_turn_based_parallel_conversion_passes_the_parallel_api_test(env_id: str) -> None:
    game = critique_game(env_id, **ENVIRONMENTS[env_id])
    parallel_api_test(turn_based_aec_to_parallel(game), num_cycles=300)
    # The plain conversion does not apply: the critic must see what it judges.
    with pytest.raises(AssertionError, match="is_parallelizable"):
        aec_to_parallel(game)
    game.close()


@pytest.mark.parametrize("env_id", list(ENVIRONMENTS))
def test_api_test_passes_with_a_built_in_oracle_critic(env_id: str) -> None:
    game = critique_game(env_id, critic="oracle", **ENVIRONMENTS[env_id])
    assert game.possible_agents == ["actor"]
    api_test(game, num_cycles=300)
    game.close()


def test_exported_from_the_package() -> None:
    assert agentgym.critique_game is critique_game


def _codeexec(**kwargs: Any) -> CritiqueGame:
    game = critique_game("agentgym/CodeExec-v0", max_attempts=1, **kwargs)
    game.reset(seed=0, options={"task_index": 0})
    return game


def _solution(game: CritiqueGame) -> str:
    expert = game.env.unwrapped.make_expert()
    expert.reset(game.env, game.observation, game.env_info)
    return expert.act(game.observation, game.env_info)


def test_wrong_verdict_sends_the_critique_back_then_a_correct_refinement_is_committed() -> None:
    game = _codeexec(rounds=2)
    game.step(WRONG)
    assert game.agent_selection == "critic" and "return 12345" in game.observe("critic")
    critique = "Step 1: return 12345  Correctness: Wrong  Explanation: a constant\n" \
               "Final answer: Wrong  Explanation: it ignores nums"  # fmt: skip
    game.step(critique)
    assert (game.agent_selection, game.phase, game.refinements) == ("actor", "refine", 1)
    assert "it ignores nums" in game.observe("actor")
    assert game.rewards == {"actor": 0.0, "critic": 0.0}  # nothing committed yet
    game.step(_solution(game))
    game.step("Final answer: Correct  Explanation: sums the multiples of 4")
    # Committed: the episode is solved, the critic's verdict agrees with the tests.
    assert game.rewards == {"actor": 1.0, "critic": 1.0}
    assert game.terminations == {"actor": True, "critic": True}
    assert game.infos["actor"]["last_commit"]["correct"] is True
    game.step(None)
    game.step(None)
    assert game.agents == []


def test_refinements_stop_after_the_rounds_and_the_last_proposal_is_committed() -> None:
    game = _codeexec(rounds=2)
    actor_turns = 0
    while game.agents and not game.terminations[game.agent_selection]:
        if game.agent_selection == "actor":
            actor_turns += 1
            game.step(WRONG)
        else:
            game.step("Final answer: Wrong  Explanation: no")
    assert actor_turns == 3  # the proposal and two refinements
    # The critic said Wrong and the environment agrees: the critic is paid, the actor not.
    assert game.rewards == {"actor": 0.0, "critic": 1.0}
    assert game._cumulative_rewards == {"actor": 0.0, "critic": 1.0}


@pytest.mark.parametrize(
    ("critique", "critic_reward"),
    [("Final answer: Correct", 0.0), ("I am not sure.", 0.0), ("Final answer: Wrong", 1.0)],
)
def test_critic_is_paid_when_its_verdict_agrees_with_the_environment(
    critique: str, critic_reward: float
) -> None:
    game = _codeexec(rounds=0)  # no refinement: every critique commits
    game.step(WRONG)
    game.step(critique)
    assert game.rewards == {"actor": 0.0, "critic": critic_reward}
    assert game.terminations["actor"]  # max_attempts=1: one commit ends the episode


def test_multi_step_episode_continues_after_a_commit() -> None:
    game = critique_game("agentgym/CodeExec-v0", max_attempts=2, rounds=0)
    game.reset(options={"task_index": 0})
    game.step(WRONG)
    game.step("Final answer: Wrong")
    assert not game.terminations["actor"] and game.agent_selection == "actor"
    assert game.observe("actor").startswith("0 of 8 tests passed.")  # the env's feedback
    assert game.infos["actor"]["step"] == 1
    game.step(_solution(game))
    game.step("Final answer: Correct")
    assert game.rewards == {"actor": 1.0, "critic": 1.0}
    assert game.terminations == {"actor": True, "critic": True}


def test_feedback_shows_the_critic_the_trial_without_hidden_test_values() -> None:
    game = _codeexec(rounds=1, feedback=True, reveal_tests=False)
    game.step("```python\ndef sum_of_multiples(nums):\n    return nums[0]\n```")
    view = game.observe("critic")
    assert "What the environment answers to this proposal" in view
    assert "tests passed" in view
    # Test 3's input ([42, 43]) is hidden: it is not in the problem text and must not leak.
    assert "[42, 43]" not in view and "expected" not in view
    # Trying it on a copy did not touch the real episode.
    assert game.env.unwrapped.attempts_used == 0


def test_built_in_oracle_critic_refines_the_actor_alone() -> None:
    game = _codeexec(critic="oracle", rounds=1)
    assert game.agents == ["actor"]
    game.step(WRONG)
    assert game.phase == "refine" and game.agent_selection == "actor"
    assert "Final answer: Wrong" in game.observe("actor")
    game.step(_solution(game))
    assert game.rewards == {"actor": 1.0}
    assert game.infos["actor"]["critic_agreement"] == 1.0
    assert game.terminations == {"actor": True}


class _CountingCritic(Critic):
    name = "counting"

    def __init__(self) -> None:
        self.seen: list[CritiqueRequest] = []

    def critique(self, requests: list[CritiqueRequest]) -> list[Critique]:
        self.seen += requests
        return [Critique(True, "Final answer: Correct") for _ in requests]


def test_a_custom_critic_sees_the_task_history_and_proposal() -> None:
    critic = _CountingCritic()
    game = critique_game("agentgym/CodeExec-v0", critic=critic, max_attempts=2)
    game.reset(options={"task_index": 0})
    game.step(WRONG)
    game.step("no code at all")
    first, second = critic.seen
    assert first.actions == () and first.proposal == WRONG
    assert "sum_of_multiples" in first.task
    assert second.actions == (WRONG,)
    assert [role for role, _ in second.transcript] == ["user", "assistant", "user"]
    assert game.terminations["actor"]


def test_bad_input_never_crashes_the_game() -> None:
    game = _codeexec(rounds=1)
    game.step(12345)  # not text: the environment rejects it with a message
    game.step(None)  # the critic's non-text critique has no verdict: commit
    assert game.rewards == {"actor": 0.0, "critic": 0.0}
    assert not game.terminations["actor"]  # a non-text action uses no attempt
    assert game.observe("actor").startswith("Invalid action: expected text")
    with pytest.raises(ValueError, match="rounds"):
        critique_game("agentgym/CodeExec-v0", rounds=-1)


def test_render_shows_proposals_critiques_and_commits() -> None:
    game = critique_game("agentgym/CodeExec-v0", max_attempts=1, render_mode="ansi")
    game.reset(options={"task_index": 0})
    game.step(WRONG)
    game.step("Final answer: Wrong")
    game.step(_solution(game))
    game.step("Final answer: Correct")
    text = game.render()
    assert "[actor propose]" in text and "[actor refine]" in text
    assert "[critic] Final answer: Wrong" in text and "[episode over: success=True]" in text
