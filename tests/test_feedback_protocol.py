"""Feedback conditioning goes through one protocol on the environment (FAFT, LeTI)."""

from __future__ import annotations

import gymnasium as gym
import pytest

import agentgym  # noqa: F401  (registers the environments)
from agentgym.core.feedback import FeedbackConditioned, feedback_conditioner
from agentgym.envs.codeexec.env import CodeExecEnv
from agentgym.envs.codeexec.feedback import conditioned_prompt
from agentgym.envs.travelplanner.env import TravelPlannerEnv


@pytest.mark.parametrize(
    ("env_class", "prompt"),
    [(TravelPlannerEnv, "query:\nGo.\ntravel plan:"), (CodeExecEnv, "Write f.")],
)
def test_conditioned_environments_implement_the_protocol(env_class: type, prompt: str) -> None:
    assert issubclass(env_class, FeedbackConditioned)
    # A staticmethod: data transforms use it without building an environment.
    assert "it failed" in env_class.condition_on_feedback(prompt, "it failed")


def test_codeexec_renders_the_layout_its_own_prompts_use() -> None:
    problem, feedback = "Write f(x).", "Test 1 failed: f(1) returned 2, expected 1."
    rendered = CodeExecEnv.condition_on_feedback(problem, feedback)
    assert rendered == "Execution feedback:\n" + feedback + "\n\n" + problem
    assert f"<|bad|>\n{rendered}" == conditioned_prompt("<|bad|>", problem, feedback)
    assert CodeExecEnv.condition_on_feedback(problem, "  ") == problem


def test_travelplanner_replaces_the_feedback_block() -> None:
    prompt = "query:\nGo to Reno.\ntravel plan:"
    once = TravelPlannerEnv.condition_on_feedback(prompt, "is_not_absent: fail")
    twice = TravelPlannerEnv.condition_on_feedback(once, "is_not_absent: success")
    assert twice.count("feedback:") == 1 and "success" in twice and "fail" not in twice


def test_an_environment_without_it_is_refused_by_name() -> None:
    env = gym.make("agentgym/Calculator-v0")
    try:
        with pytest.raises(ValueError, match=r"trainer=leti needs .*agentgym/Calculator-v0 has"):
            feedback_conditioner(env, trainer="leti", env_id="agentgym/Calculator-v0")
    finally:
        env.close()
    wrapped = gym.make("agentgym/CodeExec-v0", protections="none")
    try:  # wrappers are looked through
        condition = feedback_conditioner(wrapped, trainer="leti")
        assert condition("p", "f") == CodeExecEnv.condition_on_feedback("p", "f")
    finally:
        wrapped.close()
