"""Critics: who judges a proposal. The oracle, a model on any engine, an OpenAI-compatible server.

A critic turns :class:`~agentgym.critique.protocol.CritiqueRequest` records into
:class:`~agentgym.critique.protocol.Critique` records, a batch at a time (model critics
answer a batch in one engine call). Three ship:

* :class:`OracleCritic` (``"oracle"``): tries the proposal on a copy of the episode and
  writes the environment's own verdicts as a step-level critique (see
  :mod:`agentgym.critique.oracle`): failing hidden tests for CodeExec, violated
  constraints for TravelPlanner, failed calls and turn checks for ToolUse, purchase terms
  for WebShop. Never wrong about correctness, never shows what the environment hides.
* :class:`ModelCritic` (``"model"``): prompts a language model on any
  :class:`~agentgym.engines.base.Engine` (the actor's own, or a separate one) with
  :func:`~agentgym.critique.protocol.critic_prompt` and parses its answer.
* :class:`OpenAICritic` (``"openai"``): a :class:`ModelCritic` on an
  :class:`~agentgym.engines.openai.OpenAIEngine` (vLLM, SGLang, a hosted API).

A custom critic is a subclass with one method::

    class LengthCritic(Critic):
        '''Rejects answers longer than a limit (a toy).'''
        name = "length"

        def critique(self, requests):
            return [
                Critique(len(r.proposal) < 500, f"Final answer: "
                         f"{'Correct' if len(r.proposal) < 500 else 'Wrong'}")
                for r in requests
            ]

Example:
    >>> critic = make_critic("oracle")
    >>> request = CritiqueRequest("agentgym/Calculator-v0", {}, "calc-easy-3", 7, (),
    ...                           "I do not know.")
    >>> [critique] = critic.critique([request])
    >>> critique.verdict, critique.text.splitlines()[-1].startswith("Final answer: Wrong")
    (False, True)
    >>> critic.close()
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from agentgym.core.registry import check_choice
from agentgym.critique.oracle import TrialRunner, judge, judgement_critique
from agentgym.critique.protocol import (
    CRITIC_SYSTEM_PROMPT,
    Critique,
    CritiqueRequest,
    critic_prompt,
    parse_critique,
)
from agentgym.engines.base import Engine, SamplingParams

__all__ = [
    "CRITICS",
    "Critic",
    "ModelCritic",
    "OpenAICritic",
    "OracleCritic",
    "critic_conversation",
    "make_critic",
    "openai_critic",
]

#: Names :func:`make_critic` knows.
CRITICS = ("oracle", "model", "openai")


class Critic(ABC):
    """Judges proposals. Subclasses implement :meth:`critique`; :meth:`close` is optional."""

    #: Short name for logs and trajectory metadata.
    name: ClassVar[str] = "critic"

    @abstractmethod
    def critique(self, requests: Sequence[CritiqueRequest]) -> list[Critique]:
        """One critique per request, in order."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release resources (environments, engines the critic owns)."""

    def __enter__(self) -> Critic:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class OracleCritic(Critic):
    """The environment's own judgement, as a step-level critique (see the module docstring).

    Args:
        runner: Where proposals are tried (default: a runner of its own).
    """

    name = "oracle"

    def __init__(self, *, runner: TrialRunner | None = None) -> None:
        self._owns_runner = runner is None
        self.runner = runner or TrialRunner()

    def critique(self, requests: Sequence[CritiqueRequest]) -> list[Critique]:
        critiques = []
        for request in requests:
            trial = self.runner.run(
                request.env_id,
                request.env_kwargs,
                task_id=request.task_id,
                episode_seed=request.episode_seed,
                actions=request.actions,
                proposal=request.proposal,
            )
            env = self.runner.env_for(request.env_id, request.env_kwargs)
            critiques.append(judgement_critique(judge(request.env_id, trial, env)))
        return critiques

    def close(self) -> None:
        if self._owns_runner:
            self.runner.close()


def critic_conversation(
    request: CritiqueRequest,
    *,
    system_prompt: str = CRITIC_SYSTEM_PROMPT,
    max_history_chars: int = 6000,
) -> list[dict[str, str]]:
    """The chat a model critic answers for ``request`` (also the prompt of critic training)."""
    prompt = critic_prompt(request, max_history_chars=max_history_chars)
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": prompt}]


class ModelCritic(Critic):
    """A language model prompted to critique (any engine).

    Args:
        engine: The engine that writes critiques (the actor's own engine is fine).
        sampling: How to sample critiques (default: greedy, 512 tokens).
        system_prompt: The critic's instructions.
        max_history_chars: How much of the episode's history the prompt shows.
        owns_engine: Close the engine with the critic.
    """

    name = "model"

    def __init__(
        self,
        engine: Engine,
        *,
        sampling: SamplingParams | None = None,
        system_prompt: str = CRITIC_SYSTEM_PROMPT,
        max_history_chars: int = 6000,
        owns_engine: bool = False,
    ) -> None:
        self.engine = engine
        self.sampling = sampling or SamplingParams(temperature=0.0, max_tokens=512)
        if self.sampling.n != 1:
            raise ValueError("ModelCritic samples one critique per request (sampling.n = 1)")
        self.system_prompt = system_prompt
        self.max_history_chars = max_history_chars
        self.owns_engine = owns_engine

    def conversation(self, request: CritiqueRequest) -> list[dict[str, str]]:
        """The chat the critic model answers for ``request``."""
        return critic_conversation(request, system_prompt=self.system_prompt,
                                   max_history_chars=self.max_history_chars)  # fmt: skip

    def critique(self, requests: Sequence[CritiqueRequest]) -> list[Critique]:
        if not requests:
            return []
        completions = self.engine.chat([self.conversation(r) for r in requests], self.sampling)
        return [parse_critique(choices[0].text) for choices in completions]

    def close(self) -> None:
        if self.owns_engine:
            self.engine.close()


class OpenAICritic(ModelCritic):
    """A :class:`ModelCritic` served by an OpenAI-compatible server at ``base_url``.

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8000`` (``/v1`` optional).
        model: The name the server serves.
        api_key: Bearer token (default: ``$OPENAI_API_KEY``, else ``EMPTY``).
        sampling: How to sample critiques.
        engine_kwargs: :class:`~agentgym.engines.openai.OpenAIEngine` options (timeouts,
            retries, concurrency).
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        sampling: SamplingParams | None = None,
        **engine_kwargs: Any,
    ) -> None:
        from agentgym.engines.openai import OpenAIEngine

        engine = OpenAIEngine(base_url, model, api_key=api_key, **engine_kwargs)
        super().__init__(engine, sampling=sampling, owns_engine=True)


#: The ``"openai"`` critic's constructor, by the name the issue and docs use.
openai_critic = OpenAICritic


def make_critic(
    spec: str | Critic,
    *,
    engine: Engine | None = None,
    sampling: SamplingParams | None = None,
    **kwargs: Any,
) -> Critic:
    """A critic from a name (``"oracle"``, ``"model"``, ``"openai"``) or a ready instance.

    Args:
        spec: The critic's name, or a :class:`Critic` (returned as is).
        engine: The model critic's engine (``"model"``); ``None`` builds one from
            ``kwargs``: ``model`` (a registered name or checkpoint) and ``engine_name``
            (``"hf"`` or ``"vllm"``, default ``"hf"``).
        sampling: The model critic's sampling.
        kwargs: ``"openai"``: ``base_url``, ``model``, ``api_key`` and engine options;
            ``"model"`` without ``engine``: see above.
    """
    if isinstance(spec, Critic):
        return spec
    check_choice("critic", spec, CRITICS)
    if spec == "oracle":
        if kwargs:
            raise TypeError(f"the oracle critic takes no arguments, got {sorted(kwargs)}")
        return OracleCritic()
    if spec == "openai":
        missing = [key for key in ("base_url", "model") if not kwargs.get(key)]
        if missing:
            raise ValueError(f"the openai critic needs {' and '.join(missing)}")
        return OpenAICritic(sampling=sampling, **kwargs)
    if engine is not None:
        if kwargs:
            raise TypeError(f"a model critic given an engine takes no {sorted(kwargs)}")
        return ModelCritic(engine, sampling=sampling)
    return ModelCritic(_build_engine(**kwargs), sampling=sampling, owns_engine=True)


def _build_engine(
    *, model: str | None = None, engine_name: str = "hf", **engine_kwargs: Any
) -> Engine:
    if not model:
        raise ValueError("a model critic needs an engine or model=<registered name or checkpoint>")
    from agentgym.engines import make_engine
    from agentgym.models import resolve_model

    return make_engine(engine_name, model=str(resolve_model(model)), **engine_kwargs)


def critic_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of a config's critic kwargs without empty values (``null`` = default)."""
    return {key: value for key, value in dict(settings or {}).items() if value is not None}
