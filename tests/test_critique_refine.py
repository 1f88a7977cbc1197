"""Critique-guided refinement of failures and the trainer's selection (constructed episodes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from critique_doubles import CODE, RIGHT, WRONG, ScriptedActor

import agentgym  # noqa: F401  (registers the environments)
from agentgym.collector import RolloutCollector
from agentgym.core.trajectory import Message, Step, Trajectory, TrajectoryStore
from agentgym.critique import Critique, CritiqueRequest, OracleCritic
from agentgym.critique.critics import Critic
from agentgym.critique.refine import RefineSettings, critique_example, refine_failures
from agentgym.engines.base import SamplingParams
from agentgym.trainers.critique import CritiqueConfig, refinement_summary, training_data

SAMPLING = SamplingParams(temperature=1.0, max_tokens=64, seed=0)


def play(env_id: str, kwargs: dict[str, Any], actions: list[str], *, trajectory_id: str,
         task_id: str = "gen-easy-0", seed: int = 0) -> Trajectory:  # fmt: skip
    """An episode of ``actions``, recorded as the collector records one."""
    env = gym.make(env_id, **kwargs)
    observation, info = env.reset(seed=seed, options={"task_id": task_id})
    trajectory = Trajectory(env_id, task_id, id=trajectory_id, env_kwargs=dict(kwargs),
                            episode_seed=info["episode_seed"], policy="test",
                            messages=[Message("system", info["system_prompt"]),
                                      Message("user", observation)])  # fmt: skip
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        trajectory.messages += [Message("assistant", action, trainable=True),
                                Message(info["observation_role"], observation)]  # fmt: skip
        role = {"observation_role": info["observation_role"]}
        trajectory.steps.append(Step(action, observation, reward, terminated, truncated,
                                     info=role))  # fmt: skip
        trajectory.reward += reward
        if terminated or truncated:
            trajectory.success = bool(info.get("success"))
            break
    env.close()
    return trajectory


def _store(tmp_path: Path, name: str = "refine") -> TrajectoryStore:
    return TrajectoryStore(tmp_path / f"{name}.jsonl")


def test_a_refinement_that_succeeds_is_kept_once_per_critique(tmp_path: Path) -> None:
    kwargs = {"max_attempts": 1}
    failures = [play(CODE, kwargs, [WRONG], trajectory_id=f"s{i}") for i in range(2)]
    actor = ScriptedActor([RIGHT], refinement=RIGHT)
    with _store(tmp_path) as store:
        records = refine_failures(failures, engine=actor, critic=OracleCritic(),
                                  sampling=SAMPLING, store=store,
                                  settings=RefineSettings(samples=3))  # fmt: skip
    assert [r.id for r in records] == ["refine-s0", "refine-s1"]
    for record, failure in zip(records, failures, strict=True):
        # Three refinements succeeded, one is kept: the first.
        assert record.success and record.reward == 1.0 and record.parent_id == failure.id
        assert record.metadata["outcome"] == "refined" and record.metadata["attempts"] == 3
        assert record.metadata["sample"] == 0 and record.metadata["refined_step"] == 0
        assert record.metadata["wrong_proposal"] == WRONG
        assert record.metadata["critique"]["verdict"] is False
        assert [s.action for s in record.steps] == [RIGHT]
        last = record.messages[-2]
        assert (last.role, last.content, last.trainable) == ("assistant", RIGHT, True)
    assert actor.calls == 1
    # The refinement was asked for with the wrong proposal and the critique in view.
    asked = actor.conversations[0]
    assert asked[-2] == {"role": "assistant", "content": WRONG}
    assert asked[-1]["content"].startswith("A reviewer checked your answer")
    assert "hidden test 1" in asked[-1]["content"] and "Final answer: Wrong" in asked[-1]["content"]


def test_failed_refinements_are_recorded_and_refined_again_each_round(tmp_path: Path) -> None:
    failure = play(CODE, {"max_attempts": 1}, [WRONG], trajectory_id="s0")
    actor = ScriptedActor([WRONG], refinement=WRONG)
    with _store(tmp_path) as store:
        [record] = refine_failures([failure], engine=actor, critic=OracleCritic(),
                                   sampling=SAMPLING, store=store,
                                   settings=RefineSettings(rounds=3))  # fmt: skip
    assert not record.success and record.metadata["outcome"] == "no_refinement_succeeded"
    assert record.metadata["refinements"] == [WRONG]
    assert actor.calls == 3  # the critic rejected each refinement, so it was refined again


class _Approving(Critic):
    name = "approving"

    def critique(self, requests: list[CritiqueRequest]) -> list[Critique]:
        return [Critique(True, "Final answer: Correct") for _ in requests]


def test_nothing_is_refined_when_the_critic_finds_no_wrong_step(tmp_path: Path) -> None:
    failure = play(CODE, {"max_attempts": 2}, [WRONG, WRONG], trajectory_id="s0")
    actor = ScriptedActor([RIGHT])
    with _store(tmp_path) as store:
        [record] = refine_failures([failure], engine=actor, critic=_Approving(),
                                   sampling=SAMPLING, store=store)  # fmt: skip
    assert record.metadata["outcome"] == "no_step_judged_wrong" and not record.success
    assert actor.calls == 0


def test_the_first_wrong_step_is_located_in_a_multi_step_episode(tmp_path: Path) -> None:
    kwargs = {"num_products": 300, "index_cache": False}
    # A valid search, then a purchase attempt on a results page (rejected): step 2 is wrong.
    failure = play("agentgym/WebShop-v0", kwargs, ["search[shoes]", "click[buy now]"],
                   trajectory_id="w0", task_id=_first_goal(kwargs))  # fmt: skip
    actor = ScriptedActor(["click[< prev]"], refinement="click[next >]")
    with _store(tmp_path) as store:
        [record] = refine_failures([failure], engine=actor, critic=OracleCritic(),
                                   sampling=SAMPLING, store=store)  # fmt: skip
    assert record.metadata["refined_step"] == 1
    assert "not a button" in record.metadata["critique"]["text"]
    # The refinement does not end the episode and no collector continues it: not kept.
    assert record.metadata["outcome"] == "no_refinement_succeeded"


def _first_goal(kwargs: dict[str, Any]) -> str:
    env = gym.make("agentgym/WebShop-v0", **kwargs)
    return env.unwrapped.tasks.id_at(0)


def test_a_refinement_that_does_not_end_the_episode_is_continued_by_the_collector(
    tmp_path: Path,
) -> None:
    kwargs = {"max_attempts": 2}
    failure = play(CODE, kwargs, [WRONG, WRONG], trajectory_id="s0")
    # The refinement has no code (an attempt is used, the episode goes on); the continuing
    # policy (here the environment's expert) then solves it: the refinement is kept.
    actor = ScriptedActor([WRONG], refinement="Let me think about it.")
    collector = RolloutCollector(CODE, engine=None, env_kwargs=kwargs, num_envs=1)
    with _store(tmp_path) as store:
        [record] = refine_failures([failure], engine=actor, critic=OracleCritic(),
                                   sampling=SAMPLING, store=store, collector=collector)  # fmt: skip
    collector.close()
    assert record.success and record.metadata["outcome"] == "refined"
    assert record.steps[0].action == "Let me think about it." and len(record.steps) == 2
    assert all(m.trainable for m in record.messages if m.role == "assistant")


def test_stored_records_are_not_redone(tmp_path: Path) -> None:
    failures = [play(CODE, {"max_attempts": 1}, [WRONG], trajectory_id=f"s{i}") for i in range(3)]
    first = ScriptedActor([RIGHT], refinement=RIGHT)
    with _store(tmp_path) as store:
        records = refine_failures(failures[:2], engine=first, critic=OracleCritic(),
                                  sampling=SAMPLING, store=store)  # fmt: skip
    again = ScriptedActor([RIGHT], refinement=WRONG)
    with _store(tmp_path) as store:
        resumed = refine_failures(failures, engine=again, critic=OracleCritic(),
                                  sampling=SAMPLING, store=store)  # fmt: skip
    assert [r.id for r in resumed] == ["refine-s0", "refine-s1", "refine-s2"]
    assert [r.success for r in resumed] == [True, True, False]  # only s2 was refined anew
    assert resumed[0].to_dict() == records[0].to_dict()
    with TrajectoryStore(tmp_path / "refine.jsonl", readonly=True) as store:
        assert len(store) == 3


def test_training_data_keeps_samples_refinements_and_critique_examples(tmp_path: Path) -> None:
    kwargs = {"max_attempts": 1}
    solved = [play(CODE, kwargs, [RIGHT], trajectory_id=f"ok{i}") for i in range(2)]
    failed = [play(CODE, kwargs, [WRONG], trajectory_id="bad")]
    with _store(tmp_path) as store:
        records = refine_failures(failed, engine=ScriptedActor([RIGHT]), critic=OracleCritic(),
                                  sampling=SAMPLING, store=store)  # fmt: skip
    config = CritiqueConfig(max_per_task=1, train_on_critique=True)
    kept, refined, examples = training_data([*solved, *failed], records, config)
    assert [t.id for t in kept] == ["ok0"]  # two identical successes: one kept (RFT's rule)
    assert [t.id for t in refined] == ["refine-bad"]
    [example] = examples
    roles = [(m.role, m.trainable) for m in example.messages]
    assert roles[-3:] == [("assistant", False), ("user", False), ("assistant", True)]
    assert example.messages[-3].content == WRONG and example.messages[-1].content == RIGHT
    assert example.messages[-2].content.startswith("A reviewer checked your answer")
    assert "Final answer: Wrong" in example.messages[-2].content
    summary = refinement_summary([*solved, *failed], records, kept, refined, examples)
    assert summary == {
        "policy_samples": 3, "failures": 1, "located": 1, "refinement_samples": 1,
        "kept_samples": 1, "kept_refinements": 1, "critique_examples": 1,
    }  # fmt: skip
    assert training_data([*solved, *failed], records, CritiqueConfig())[2] == []
    assert critique_example(records[0].__class__("e", "t"), failed[0]) is None


def test_config_problems_are_listed() -> None:
    with pytest.raises(ValueError) as excinfo:
        CritiqueConfig(critic="oracel", rounds=0, samples_per_task=0, finetune_from="x")
    for expected in ("critic must be one of", "rounds and refinements_per_critique",
                     "samples_per_task must be >= 1", "finetune_from"):  # fmt: skip
        assert expected in str(excinfo.value)
