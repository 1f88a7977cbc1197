"""What every training recipe needs, built once from the config: the :class:`Workbench`.

A recipe (SFT, RFT, EEF, ...) is a short loop over four verbs the workbench provides:

* :meth:`Workbench.collect`: run episodes with the current policy (or the environment's
  expert) through the batched collector, into a crash-safe store of the run directory;
* :meth:`Workbench.evaluate`: held-out success rate and reward with 95% intervals;
* :meth:`Workbench.finetune`: SFT on chosen trajectories, then a checkpoint and a weight
  sync to the rollout engine;
* :meth:`Workbench.phase`: run a step once: a phase already recorded as done in the run's
  ledger is skipped on resume, so a killed run continues where it stopped, and each
  phase's own store makes a half-finished collection resume without repeating episodes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.collector import EpisodeSpec, RolloutCollector
from agentgym.core.tasks import task_seed
from agentgym.core.trajectory import Trajectory
from agentgym.engines.base import Engine, SamplingParams
from agentgym.evaluation import summarize
from agentgym.trainers.data import trajectories_to_examples
from agentgym.trainers.lora import is_lora, reset_lora
from agentgym.trainers.run import ADAPTER_FOLDER, RunDir
from agentgym.trainers.sft import SFTConfig, train_sft

__all__ = ["Workbench", "phase_sft_config"]


def phase_sft_config(config: SFTConfig, iteration: int) -> SFTConfig:
    """The fine-tuning settings of iteration ``iteration``: its own batch order.

    Each phase shuffles with a seed derived from ``config.seed`` and the iteration, so
    accumulated data is not replayed in the same order every iteration.

    >>> phase_sft_config(SFTConfig(seed=0), 1).seed != phase_sft_config(SFTConfig(seed=0), 2).seed
    True
    """
    return dataclasses.replace(config, seed=task_seed(config.seed, iteration) % (2**31))


@dataclass
class Workbench:
    """The model, engine, environment settings and run directory of one training run.

    Attributes:
        run: The run directory (stores, ledger, metrics, checkpoints, plots).
        model: The trainable ``transformers`` model.
        tokenizer: Its tokenizer.
        engine: The rollout engine (shares or syncs the model's weights).
        env_id: Environment id.
        train_env_kwargs: Environment arguments for training episodes.
        eval_env_kwargs: Environment arguments for held-out evaluation.
        sampling: Sampling for training rollouts.
        eval_sampling: Sampling for evaluation (greedy by default).
        num_envs / max_turns / max_context_tokens: Collector settings.
        eval_episodes: Held-out tasks per evaluation.
        sft: SFT hyper-parameters of every fine-tuning phase.
        expert_kwargs: Arguments of the environment's expert.
        progress: Show progress bars.
        seed: Seeds task choice and episode seeds.
        base_model_path: The base model's checkpoint (fine-tuning "from the base model"
            reloads it; a LoRA model resets its adapters instead).
        sync_tolerance: After every weight sync, the engine's log-probs on a probe must match
            the trainer's within this (:func:`~agentgym.trainers.sync.verify_weight_sync`);
            ``None`` skips the check.
        env_factory: Builds the collectors' environment copies from ``(env_id, kwargs)``
            (``None``: ``gym.make`` in this process; ``distributed=ray``: Ray actors).
        rollout_options: The collectors' scheduling (``mode``, ``env_workers``,
            ``gather_seconds`` of :class:`~agentgym.collector.RolloutCollector`).
    """

    run: RunDir
    model: Any
    tokenizer: Any
    engine: Engine
    env_id: str
    train_env_kwargs: dict[str, Any]
    eval_env_kwargs: dict[str, Any]
    sampling: SamplingParams
    eval_sampling: SamplingParams
    sft: SFTConfig
    num_envs: int = 8
    max_turns: int | None = None
    max_context_tokens: int = 2048
    eval_episodes: int = 20
    expert_kwargs: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    seed: int = 0
    base_model_path: str | None = None
    sync_tolerance: float | None = 1e-3
    env_factory: Callable[[str, dict[str, Any]], Any] | None = None
    rollout_options: dict[str, Any] = field(default_factory=dict)
    _collectors: dict[tuple[Any, ...], RolloutCollector] = field(default_factory=dict)
    # Which fine-tuning iteration the model's weights come from (0: the base model), so that
    # restore() reads a checkpoint from disk only when resuming, not after every phase.
    _weights_iteration: int = 0

    # ------------------------------------------------------------------ phases --

    def phase(
        self, name: str, iteration: int, work: Callable[[], Mapping[str, Any] | None]
    ) -> dict[str, Any]:
        """Run ``work`` unless the ledger says ``(name, iteration)`` is done; return its result."""
        if self.run.done(name, iteration):
            return dict(self.run.result(name, iteration) or {})
        started = time.perf_counter()
        result = dict(work() or {})
        result.setdefault("seconds", round(time.perf_counter() - started, 3))
        self.run.mark_done(name, iteration, result)
        return result

    # ------------------------------------------------------------------ verbs --

    def collector_for(
        self, split: str, *, expert: bool = False, env_kwargs: Mapping[str, Any] | None = None
    ) -> RolloutCollector:
        """The (cached) collector for ``"train"`` or ``"eval"`` episodes.

        ``env_kwargs`` replaces the split's environment arguments (a curriculum stage, an
        out-of-distribution evaluation); each distinct set gets its own cached collector.
        """
        if env_kwargs is None:
            env_kwargs = self.eval_env_kwargs if split == "eval" else self.train_env_kwargs
        key = (split, expert, repr(sorted(env_kwargs.items())))
        if key not in self._collectors:
            self._collectors[key] = RolloutCollector(
                self.env_id,
                engine=None if expert else self.engine,
                env_kwargs=dict(env_kwargs),
                sampling=self.eval_sampling if split == "eval" else self.sampling,
                num_envs=self.num_envs,
                max_turns=self.max_turns,
                max_context_tokens=self.max_context_tokens,
                expert_kwargs=self.expert_kwargs if expert else None,
                env_factory=self.env_factory,
                **self.rollout_options,
            )
        return self._collectors[key]

    def collect(
        self,
        store_name: str,
        specs: Sequence[EpisodeSpec],
        *,
        iteration: int,
        expert: bool = False,
        split: str = "train",
        env_kwargs: Mapping[str, Any] | None = None,
        namespace: str | None = None,
    ) -> list[Trajectory]:
        """Episodes for ``specs`` (resumable: stored ones are not run again).

        Metrics go to ``<namespace>/...`` (default: ``expert``, ``eval`` or ``rollout``).
        """
        collector = self.collector_for(split, expert=expert, env_kwargs=env_kwargs)
        trajectories = collector.run(
            specs,
            store=self.run.store(store_name),
            iteration=iteration,
            progress=self.progress,
            desc=store_name,
        )
        summary = summarize(trajectories)
        if namespace is None:
            namespace = "expert" if expert else ("eval" if split == "eval" else "rollout")
        self.run.log(
            {
                f"{namespace}/success_rate": summary["success_rate"],
                f"{namespace}/mean_reward": summary["mean_reward"],
                f"{namespace}/episodes": summary["episodes"],
            },
            step=iteration,
        )
        return trajectories

    def evaluate(
        self,
        iteration: int,
        label: str,
        *,
        name: str = "eval",
        env_kwargs: Mapping[str, Any] | None = None,
        split: str = "eval",
        episodes: int | None = None,
        first_task: int = 0,
    ) -> dict[str, Any]:
        """Held-out evaluation after ``iteration`` (tasks ``first_task`` to ``+ eval_episodes``).

        ``name`` names the ledger phase, the store (``<name>-<iteration>``) and the metrics
        namespace, so one run can hold several evaluations per iteration (held-out,
        out-of-distribution, a curriculum's validation set on training tasks).
        """

        def work() -> dict[str, Any]:
            collector = self.collector_for(split, env_kwargs=env_kwargs)
            tasks = collector.envs[0].unwrapped.tasks
            stop = min(first_task + (episodes or self.eval_episodes), len(tasks))
            specs = [
                EpisodeSpec(
                    f"{name}-{iteration}-{tasks.id_at(i)}", task_id=tasks.id_at(i),
                    seed=self.seed + i,
                )
                for i in range(first_task, stop)
            ]  # fmt: skip
            trajectories = self.collect(f"{name}-{iteration}", specs, iteration=iteration,
                                        split=split, env_kwargs=env_kwargs,
                                        namespace=name)  # fmt: skip
            summary = summarize(trajectories)
            low, high = summary["success_ci95"]
            self.run.log(
                {f"{name}/success_ci_low": low, f"{name}/success_ci_high": high}, step=iteration
            )
            return {
                "stage": label,
                "iteration": iteration,
                "episodes": summary["episodes"],
                "success_rate": summary["success_rate"],
                "success_ci95": list(summary["success_ci95"]),
                "mean_reward": summary["mean_reward"],
                "reward_ci95": list(summary["reward_ci95"]),
                "groups": summary["groups"],
            }

        return self.phase(name, iteration, work)

    def sync_engine(self, step: int) -> dict[str, float]:
        """Send the model's weights to the engine and verify it serves them (see ``sync``)."""
        self.engine.update_weights(self.model)
        if self.sync_tolerance is None:
            return {}
        from agentgym.trainers.sync import verify_weight_sync

        check = verify_weight_sync(
            self.engine, self.model, self.tokenizer, tolerance=self.sync_tolerance
        )
        self.run.log({"sync/max_abs_logprob_diff": check["max_abs_diff"]}, step=step)
        return check

    def finetune(
        self, iteration: int, trajectories: Sequence[Trajectory], *, from_base: bool = False
    ) -> dict[str, Any]:
        """SFT on ``trajectories``, checkpoint ``iter-<iteration>``, sync the engine.

        ``from_base=True`` starts from the base model's weights instead of continuing from
        the current ones. When the phase is already done (a resumed run), its checkpoint is
        loaded, so the next phase sees the fine-tuned weights either way.
        """

        def work() -> dict[str, Any]:
            if from_base:
                self._reset_to_base()
            examples = trajectories_to_examples(
                trajectories, self.tokenizer, max_length=self.max_context_tokens
            )
            if not examples:
                return {"examples": 0, "trained_tokens": 0, "skipped": True}
            pad = self.tokenizer.pad_token_id or 0
            # train/* metrics use one step axis across iterations.
            offset = sum(
                int((self.run.result("train", k) or {}).get("steps", 0)) for k in range(iteration)
            )

            def on_step(metrics: dict[str, float]) -> None:
                global_step = offset + int(metrics["step"])
                self.run.log(
                    {
                        "train/loss": metrics["loss"],
                        "train/learning_rate": metrics["learning_rate"],
                    },
                    step=global_step,
                )

            config = phase_sft_config(self.sft, iteration)
            history = train_sft(self.model, examples, config, pad_token_id=pad, on_step=on_step)
            self.run.save_checkpoint(f"iter-{iteration}", self.model, self.tokenizer)
            self.sync_engine(iteration)
            self._weights_iteration = iteration
            return {
                "examples": len(examples),
                "trained_tokens": sum(h["trained_tokens"] for h in history),
                "first_loss": history[0]["loss"],
                "last_loss": history[-1]["loss"],
                "steps": len(history),
                "batch_order_seed": config.seed,
            }

        result = self.phase("train", iteration, work)
        self.restore(iteration)
        return result

    def restore(self, iteration: int) -> None:
        """Load the newest checkpoint up to ``iteration`` into the model and the engine.

        A no-op when the model already holds those weights (the normal, uninterrupted flow);
        after a restart it brings back the weights of the last completed fine-tuning phase.
        A checkpoint whose ``train`` phase the ledger does not mark done is ignored: a run
        killed between saving it and marking the phase re-trains that phase from the
        previous weights, not on top of the half-recorded result.
        """
        for k in range(iteration, 0, -1):
            path = self.run.checkpoint(f"iter-{k}") if self.run.done("train", k) else None
            if path is not None and k == self._weights_iteration:
                return
            if path is not None:
                self.load_checkpoint(path)
                self.sync_engine(k)
                self._weights_iteration = k
                return
        if iteration == 0 and self._weights_iteration != 0:
            self._reset_to_base()
            self.sync_engine(0)

    def load_checkpoint(self, path: Any) -> None:
        """Load a checkpoint of this run: the adapters of a LoRA model, else every weight."""
        if is_lora(self.model):
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            adapters = load_file(str(path / ADAPTER_FOLDER / "adapter_model.safetensors"))
            set_peft_model_state_dict(self.model, adapters)
        else:
            self._load_weights_from(path)

    def _reset_to_base(self) -> None:
        """Bring the trainable model back to the base model's weights."""
        if is_lora(self.model):
            reset_lora(self.model)
        elif self.base_model_path is None:
            raise ValueError("fine-tuning from the base model needs Workbench.base_model_path")
        else:
            self._load_weights_from(self.base_model_path)
        self._weights_iteration = 0

    def _load_weights_from(self, path: Any) -> None:
        """Every weight of the (full) model from a Hugging Face checkpoint folder."""
        from transformers import AutoModelForCausalLM

        saved = AutoModelForCausalLM.from_pretrained(path, dtype=self.model.dtype)
        self.model.load_state_dict(saved.state_dict())

    def close(self, *, interrupted: bool = False) -> None:
        """Close the collectors' environments, the engine and the run directory.

        ``interrupted=True`` (an exception or Ctrl-C) tells the run directory to roll back
        metrics logged after the last completed phase, since that phase will run again.
        """
        for collector in self._collectors.values():
            collector.close()
        self.engine.close()
        self.run.close(interrupted=interrupted)
