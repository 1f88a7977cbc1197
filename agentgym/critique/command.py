"""``agentgym eval ... critic=<oracle|model|openai>``: success vs N with and without a critic.

``agentgym eval`` runs this instead of its plain evaluation when the ``critic`` config
group is not ``none``. The ``critique`` section of ``configs/eval.yaml`` sets the N values,
the refinement rounds, whether the critic sees the environment's answer to each proposal,
and the sampling temperature of the N proposals; ``critic.kwargs`` configure the critic:

* ``critic=oracle``: the environment's own judgement (an upper bound for any critic);
* ``critic=model``: ``critic.kwargs.model=null`` prompts the actor's own model (same
  engine), or name another model (``critic.kwargs.model=smollm2-135m``,
  ``critic.kwargs.engine_name=hf|vllm``);
* ``critic=openai``: ``critic.kwargs.base_url=http://host:8000 critic.kwargs.model=NAME``.

It writes ``eval.json`` (the summary, with a ``critique`` block) and
``critique_episodes.jsonl`` (one record per episode, policy and N) to the run directory and
prints success vs N with Wilson 95% intervals.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from agentgym.critique.critics import CRITICS, Critic, ModelCritic, make_critic
from agentgym.critique.testtime import TestTimeConfig, TestTimeResult, run_test_time

__all__ = ["CRITIQUE_KEYS", "critique_config_problems", "run_critique_eval"]

#: Keys of the eval config's ``critique`` section.
CRITIQUE_KEYS = ("n", "rounds", "feedback", "temperature", "max_steps")


def critique_config_problems(data: Mapping[str, Any]) -> list[str]:
    """Problems with the ``critic`` and ``critique`` sections of an eval config."""
    from agentgym.config import _unknown_keys

    problems: list[str] = []
    critic = data.get("critic")
    if not isinstance(critic, Mapping):
        return ["critic must be a mapping with keys 'name' and 'kwargs' (e.g. critic=oracle)"]
    problems += _unknown_keys("critic", critic, ("name", "kwargs"))
    name = critic.get("name")
    valid = ["none", *CRITICS]
    if name not in valid:
        problems.append(f"critic.name={name!r} is not known. Valid: {', '.join(valid)}")
    distributed = data.get("distributed")
    if name != "none" and isinstance(distributed, Mapping) and distributed.get("name") == "ray":
        # The critique search replays episodes in this process, not through the collector.
        problems.append(
            f"critic={name} runs in this process only: drop distributed=ray (or use critic=none)"
        )
    if not isinstance(critic.get("kwargs") or {}, Mapping):
        problems.append("critic.kwargs must be a mapping")
    section = data.get("critique")
    if not isinstance(section, Mapping):
        return [*problems, "critique must be a mapping (see configs/eval.yaml)"]
    problems += _unknown_keys("critique", section, CRITIQUE_KEYS)
    n = section.get("n")
    try:
        TestTimeConfig(
            ns=tuple(n) if isinstance(n, list | tuple) else (n,),
            rounds=section.get("rounds", 0),
            max_steps=section.get("max_steps"),
        )
    except (ValueError, TypeError) as exc:
        problems.append(f"critique: {exc}")
    if not isinstance(section.get("feedback", False), bool):
        problems.append(f"critique.feedback must be true or false, got {section['feedback']!r}")
    temperature = section.get("temperature", 1.0)
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or (temperature < 0)
    ):
        problems.append(f"critique.temperature must be a number >= 0, got {temperature!r}")
    return problems


def _build_critic(cfg: DictConfig, engine: Any) -> Critic:
    from agentgym.commands import _container
    from agentgym.critique.critics import critic_settings

    name = cfg.critic.name
    kwargs = critic_settings(_container(cfg.critic.kwargs))
    if name == "model" and "model" not in kwargs:
        return ModelCritic(engine)  # the actor's own model judges
    return make_critic(name, **kwargs)


def run_critique_eval(cfg: DictConfig) -> dict[str, Any]:
    """Success vs N with and without ``cfg.critic`` on the first ``cfg.episodes`` tasks."""
    import gymnasium as gym

    from agentgym.commands import (
        _constructor_arguments,
        _container,
        _policy_label,
        _run_dir,
        _sampling,
        build_engine,
    )
    from agentgym.config import ConfigError, validate_config
    from agentgym.core.durable import write_json_atomic

    env_kwargs = dict(_container(cfg.env.kwargs) or {})
    uses_split = "split" in _constructor_arguments(cfg.env.id)
    if uses_split:
        env_kwargs["split"] = cfg.split
    section = _container(cfg.critique)
    try:
        validate_config(cfg, "eval")
        # _sampling shifts sampling.seed by the run's seed, so `seed=` varies the proposals.
        sampling = _sampling(cfg).with_(temperature=float(section["temperature"]))
        config = TestTimeConfig(ns=tuple(section["n"]), rounds=section["rounds"],
                                feedback=section["feedback"],
                                max_steps=section.get("max_steps"))  # fmt: skip
        env = gym.make(cfg.env.id, **env_kwargs)
        tasks = env.unwrapped.tasks
        env.close()
        if cfg.engine.name == "expert":
            raise ValueError("a critique evaluation samples proposals from a model: use "
                             "engine=hf, vllm or openai (not expert)")  # fmt: skip
        if cfg.episodes > len(tasks):
            raise ValueError(f"episodes={cfg.episodes} but the split has only {len(tasks)} "
                             "tasks; lower episodes")  # fmt: skip
    except (ConfigError, ValueError, TypeError) as exc:
        print(f"agentgym eval: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    engine = build_engine(cfg)
    assert engine is not None  # validated: not the expert
    critic = _build_critic(cfg, engine)
    run_dir = _run_dir(cfg)
    episodes = [(tasks.id_at(i), cfg.seed + i) for i in range(cfg.episodes)]
    try:
        result = run_test_time(cfg.env.id, env_kwargs, engine, critic, episodes=episodes,
                               sampling=sampling, config=config)  # fmt: skip
    finally:
        critic.close()
        engine.close()
    summary = _summary(cfg, result, run_dir, critic.name, uses_split)
    with (run_dir / "critique_episodes.jsonl").open("w") as handle:
        for record in result.episodes:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    write_json_atomic(run_dir / "eval.json", summary)
    split = f" [{cfg.split}]" if uses_split else ""
    print(f"eval {cfg.env.id}{split} with {_policy_label(cfg)}, critic={critic.name}, "
          f"rounds={config.rounds}: success vs N over {cfg.episodes} tasks (95% CI)")  # fmt: skip
    for line in report_lines(result):
        print(line)
    return summary


def _summary(cfg: DictConfig, result: TestTimeResult, run_dir: Any, critic: str,
             uses_split: bool) -> dict[str, Any]:  # fmt: skip
    from agentgym.commands import policy_record

    best = result.summary.get("critic") or result.summary["plain"]
    top = best[max(best, key=int)]
    return {
        "env": cfg.env.id,
        "split": cfg.split if uses_split else None,
        **policy_record(cfg),
        "episodes": cfg.episodes,
        "success_rate": top["success_rate"],
        "success_ci95": top["success_ci95"],
        "critique": {
            "critic": critic,
            "rounds": int(cfg.critique.rounds),
            "feedback": bool(cfg.critique.feedback),
            "temperature": float(cfg.critique.temperature),
            "success_vs_n": result.summary,
            "critic_stats": result.critic,
            "counts": result.counts,
        },
        "run_dir": str(run_dir),
    }


def report_lines(result: TestTimeResult) -> list[str]:
    """A table of success vs N, one column per policy.

    >>> from agentgym.critique.testtime import TestTimeResult
    >>> block = {"success_rate": 0.5, "success_ci95": [0.1, 0.9]}
    >>> result = TestTimeResult({"plain": {"1": block}, "critic": {"1": block}}, [], {}, {})
    >>> print("\\n".join(report_lines(result)))
         N  plain                  critic
         1  0.500 [0.100, 0.900]   0.500 [0.100, 0.900]
    """
    modes = list(result.summary)
    lines = ["     N  " + "".join(f"{mode:<23}" for mode in modes).rstrip()]
    for n in next(iter(result.summary.values())):
        cells = []
        for mode in modes:
            block = result.summary[mode][n]
            low, high = block["success_ci95"]
            cells.append(f"{block['success_rate']:.3f} [{low:.3f}, {high:.3f}]".ljust(23))
        lines.append(f"{n:>6}  " + "".join(cells).rstrip())
    agreement = result.critic.get("agreement_with_environment")
    if agreement is not None:
        lines.append(f"  critic verdicts on committed proposals agree with the environment: "
                     f"{agreement:.3f} ({result.critic['committed_judged']} judged)")  # fmt: skip
    return lines
