"""Actor and critic as a PettingZoo game over any agentgym environment.

:func:`critique_game` wraps a registered environment in a turn-based
:class:`pettingzoo.AECEnv` with two agents:

* ``actor`` proposes the environment's next action (a whole solution in single-answer
  environments such as CodeExec or TravelPlanner sole-planning, one step in multi-step ones
  such as ToolUse or WebShop);
* ``critic`` reads the task, the history, the proposal and (``feedback=True``) what the
  environment answers to it on a copy of the episode, and writes a step-level critique
  ending in a verdict (:mod:`agentgym.critique.protocol`'s format).

A verdict of ``Wrong`` sends the critique back to the actor, who refines its proposal, up to
``rounds`` times per step; then (or on ``Correct``, or on a critique without a readable
verdict) the proposal is committed to the environment. The next step starts with the
environment's answer, and the game ends with the episode.

Rewards come at each commit: the actor gets the environment's reward; the critic gets 1.0
when its last verdict on the committed proposal agrees with the environment's own judgement
of it (:mod:`agentgym.critique.oracle`), else 0.0 (no readable verdict never agrees).

With ``critic=`` a built-in critic (``"oracle"``, ``"model"`` with ``critic_engine=``,
``"openai"`` with ``critic_kwargs=``, or a :class:`~agentgym.critique.critics.Critic`)
plays the critic's part inside the game: the only agent is then ``actor``, and each of its
proposals is critiqued at once (the critic's agreement is in the actor's
``info["critic_agreement"]``).

The game is turn-based, so PettingZoo's ``turn_based_aec_to_parallel`` converts it to the
parallel API; ``aec_to_parallel`` does not apply (the critic must see the proposal it
judges), which ``metadata["is_parallelizable"] = False`` declares.

Example:
    >>> game = critique_game("agentgym/Calculator-v0", rounds=1)
    >>> game.reset(seed=0)
    >>> game.agent_selection, game.infos["actor"]["phase"]
    ('actor', 'propose')
    >>> game.step("I do not know.")
    >>> game.agent_selection, game.observe("critic").startswith("## The agent's instructions")
    ('critic', True)
    >>> game.step("Final answer: Wrong  Explanation: no calculation was made.")
    >>> game.agent_selection, game.infos["actor"]["phase"]
    ('actor', 'refine')
    >>> game.observe("actor").startswith("A reviewer checked your answer")
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
from pettingzoo import AECEnv

from agentgym.core.env import InfoKeys
from agentgym.core.registry import make
from agentgym.core.spaces import AgentText, sanitize_text
from agentgym.critique.critics import Critic, make_critic
from agentgym.critique.oracle import (
    Trial,
    TrialRunner,
    judge,
    judgement_critique,
    step_trial,
    visible_feedback,
)
from agentgym.critique.protocol import (
    CRITIC_SYSTEM_PROMPT,
    Critique,
    CritiqueRequest,
    critic_prompt,
    parse_critique,
    refinement_prompt,
)

__all__ = ["ACTOR", "CRITIC", "CritiqueGame", "critique_game"]

ACTOR = "actor"
CRITIC = "critic"
_RESET_OPTIONS = ("task_id", "task_index", "episode_seed")


def critique_game(
    env_id: str,
    *,
    critic: str | Critic | None = None,
    rounds: int = 1,
    feedback: bool = False,
    critic_engine: Any = None,
    critic_kwargs: Mapping[str, Any] | None = None,
    max_observation_length: int = 131_072,
    max_critique_length: int = 16_384,
    render_mode: str | None = None,
    **env_kwargs: Any,
) -> CritiqueGame:
    """A PettingZoo AEC game of actor and critic over the environment ``env_id``.

    Args:
        env_id: A registered environment id.
        critic: ``None``: the critic is an agent of the game; otherwise the built-in critic
            that plays its part (a name or a :class:`~agentgym.critique.critics.Critic`).
        rounds: Refinements allowed per environment step (0: critique only, no refinement).
        feedback: Show the critic what the environment answers to the proposal (tried on a
            copy of the episode by deterministic replay).
        critic_engine: The engine of a built-in ``"model"`` critic.
        critic_kwargs: Arguments of a built-in ``"openai"`` critic (``base_url``, ``model``).
        max_observation_length: Longest observation either agent gets (longer ones are cut
            with a visible mark).
        max_critique_length: Longest critique the critic agent may write.
        render_mode: ``None``, ``"ansi"`` or ``"human"``.
        env_kwargs: The environment's arguments.
    """
    return CritiqueGame(
        env_id,
        critic=critic,
        rounds=rounds,
        feedback=feedback,
        critic_engine=critic_engine,
        critic_kwargs=critic_kwargs,
        max_observation_length=max_observation_length,
        max_critique_length=max_critique_length,
        render_mode=render_mode,
        env_kwargs=env_kwargs,
    )


class CritiqueGame(AECEnv[str, str, str]):
    """Propose, critique, refine, commit: see the module docstring and :func:`critique_game`."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "critique_game_v0",
        "render_modes": ["ansi", "human"],
        "is_parallelizable": False,
    }

    def __init__(
        self,
        env_id: str,
        *,
        critic: str | Critic | None = None,
        rounds: int = 1,
        feedback: bool = False,
        critic_engine: Any = None,
        critic_kwargs: Mapping[str, Any] | None = None,
        max_observation_length: int = 131_072,
        max_critique_length: int = 16_384,
        render_mode: str | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
            raise ValueError(f"rounds must be an integer >= 0, got {rounds!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is not supported; valid: None, "
                             "'ansi', 'human'")  # fmt: skip
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.env: gym.Env = make(env_id, **self.env_kwargs)
        self.rounds = rounds
        self.feedback = bool(feedback)
        self.render_mode = render_mode
        self.max_observation_length = max_observation_length
        self.critic: Critic | None = None
        if critic is not None:
            self.critic = make_critic(critic, engine=critic_engine, **dict(critic_kwargs or {}))
        self._owns_critic = critic is not None and not isinstance(critic, Critic)
        self._runner = TrialRunner()
        self.possible_agents = [ACTOR] if self.critic is not None else [ACTOR, CRITIC]
        action_length = int(getattr(self.env.action_space, "max_length", 16_384))
        self._observation_spaces = {
            agent: AgentText(max_observation_length) for agent in self.possible_agents
        }
        self._action_spaces = {ACTOR: AgentText(action_length)}
        if self.critic is None:
            self._action_spaces[CRITIC] = AgentText(max_critique_length)
        self.agents: list[str] = []
        self.log: list[dict[str, Any]] = []
        self._started = False

    # ------------------------------------------------------------------ spaces --

    def observation_space(self, agent: str) -> AgentText:
        """Text, for both agents (the same object on every call)."""
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> AgentText:
        """Text: the actor's proposal, the critic's critique."""
        return self._action_spaces[agent]

    # ------------------------------------------------------------------ episode --

    def reset(self, seed: int | None = None, options: Mapping[str, Any] | None = None) -> None:
        """Start an episode of the environment (``options``: ``task_id``, ``task_index``,
        ``episode_seed`` go to the environment's ``reset``; other keys are ignored)."""
        env_options = {k: v for k, v in dict(options or {}).items() if k in _RESET_OPTIONS}
        observation, info = self.env.reset(seed=seed, options=env_options)
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.task_id = str(info[InfoKeys.TASK_ID])
        self.episode_seed = int(info[InfoKeys.EPISODE_SEED])
        self.system_prompt = str(info.get(InfoKeys.SYSTEM_PROMPT) or "")
        self.env_info: dict[str, Any] = dict(info)
        self.observation = observation
        self.transcript: list[tuple[str, str]] = [("user", observation)]
        self.actions: list[Any] = []
        self.phase = "propose"
        self.proposal: Any = None
        self.critique: Critique | None = None
        self.refinements = 0
        self.log = [{"event": "reset", "observation": observation}]
        self._skip_agent_selection = None
        self._started = True
        self.agent_selection = ACTOR
        self.infos = {agent: {} for agent in self.agents}
        self._update_infos()

    def observe(self, agent: str) -> TextObservation:
        """The actor's current prompt, or the critic's view of the proposal under review."""
        if agent == ACTOR:
            text = (
                refinement_prompt(self.critique)
                if self.phase == "refine" and self.critique is not None
                else self.observation
            )
        elif self.proposal is None:
            text = ""
        else:
            text = critic_prompt(self.request())
        return TextObservation(sanitize_text(text, self.max_observation_length))

    def request(self) -> CritiqueRequest:
        """The critique request for the proposal under review."""
        proposal = _text(self.proposal)
        trial_feedback = None
        if self.feedback and self.proposal is not None:
            trial_feedback = visible_feedback(self.env_id, self._trial(proposal))
        return CritiqueRequest(
            env_id=self.env_id,
            env_kwargs=self.env_kwargs,
            task_id=self.task_id,
            episode_seed=self.episode_seed,
            actions=tuple(self.actions),
            proposal=proposal,
            system_prompt=self.system_prompt,
            transcript=tuple(self.transcript),
            trial_feedback=trial_feedback,
        )

    def step(self, action: Any) -> None:
        """Apply the selected agent's action (``None`` for an agent whose game is over)."""
        if not self._started:
            raise RuntimeError("Call reset() before step().")
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        self._clear_rewards()
        if agent == ACTOR:
            self.proposal = action
            self.log.append({"event": self.phase, "agent": ACTOR, "text": _text(action)})
            if self.critic is None:
                self.phase = "critique"
                self.agent_selection = CRITIC
            else:
                [critique] = self.critic.critique([self.request()])
                self._after_critique(critique)
        else:
            self._after_critique(parse_critique(action if isinstance(action, str) else ""))
        self._update_infos()
        self._accumulate_rewards()

    def _after_critique(self, critique: Critique) -> None:
        self.critique = critique
        self.log.append({"event": "critique", "agent": CRITIC, "text": critique.text,
                         "verdict": critique.verdict})  # fmt: skip
        if critique.verdict is False and self.refinements < self.rounds:
            self.refinements += 1
            self.phase = "refine"
            self.agent_selection = ACTOR
            return
        self._commit()

    def _commit(self) -> None:
        """Apply the proposal to the environment and pay both agents."""
        critique = self.critique
        trial = step_trial(self.env, self.proposal, self.env_info)
        judgement = judge(self.env_id, trial, self.env)
        agreement = float(
            critique is not None
            and critique.verdict is not None
            and critique.verdict == judgement.correct
        )
        self.rewards[ACTOR] = trial.reward
        if CRITIC in self.agents:
            self.rewards[CRITIC] = agreement
        # The raw action, so that replays (trial feedback) apply exactly what was committed.
        self.actions.append(self.proposal)
        self.transcript += [("assistant", trial.action),
                            (str(trial.info.get(InfoKeys.OBSERVATION_ROLE, "user")),
                             trial.observation)]  # fmt: skip
        self.observation = trial.observation
        self.env_info = {**self.env_info, **trial.info}
        self.log.append({"event": "commit", "action": trial.action, "observation":
                         trial.observation, "reward": trial.reward, "correct":
                         judgement.correct, "critic_agreement": agreement})  # fmt: skip
        self._last_commit = {"reward": trial.reward, "correct": judgement.correct,
                             "critic_agreement": agreement,
                             "judgement": judgement_critique(judgement).to_dict()}  # fmt: skip
        self.phase = "propose"
        self.proposal = None
        self.critique = None
        self.refinements = 0
        self.agent_selection = ACTOR
        if trial.ended:
            for agent in self.agents:
                self.terminations[agent] = trial.terminated
                self.truncations[agent] = trial.truncated and not trial.terminated
            self.log.append({"event": "end", "success": trial.success})

    def _trial(self, proposal: str) -> Trial:
        return self._runner.run(self.env_id, self.env_kwargs, task_id=self.task_id,
                                episode_seed=self.episode_seed, actions=self.actions,
                                proposal=proposal)  # fmt: skip

    def _update_infos(self) -> None:
        common = {"phase": self.phase, "round": self.refinements, "step": len(self.actions)}
        last = getattr(self, "_last_commit", None) if len(self.actions) else None
        for agent in self.agents:
            info = dict(common)
            if last is not None:
                info["last_commit"] = last
            if agent == ACTOR:
                info["env_info"] = self.env_info
                info[InfoKeys.SYSTEM_PROMPT] = self.system_prompt
                if self.critic is not None and last is not None:
                    info["critic_agreement"] = last["critic_agreement"]
            else:
                info[InfoKeys.SYSTEM_PROMPT] = CRITIC_SYSTEM_PROMPT
            self.infos[agent] = info

    # ------------------------------------------------------------------ display --

    def render(self) -> str | None:
        """The game so far: proposals, critiques and commits (``ansi``), or print it."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi'.")
            return None
        lines = []
        for event in self.log:
            kind = event["event"]
            if kind in ("reset",):
                lines.append(f"<<< {event['observation']}")
            elif kind in ("propose", "refine"):
                lines.append(f"[actor {kind}] {event['text']}")
            elif kind == "critique":
                lines.append(f"[critic] {event['text']}")
            elif kind == "commit":
                lines.append(f">>> {event['action']}\n<<< {event['observation']}")
            elif kind == "end":
                lines.append(f"[episode over: success={event['success']}]")
        text = "\n".join(lines)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        """Close the environment, the trial runner and a critic the game built."""
        self.env.close()
        self._runner.close()
        if self.critic is not None and self._owns_critic:
            self.critic.close()


class TextObservation(str):
    """A ``str`` that carries ``dtype = str``, the dtype of gymnasium's Text spaces.

    PettingZoo's ``api_test`` compares each observation's ``dtype`` with its space's (it was
    written for NumPy observations), and a plain ``str`` has no ``dtype``. Everything else
    sees the plain ``str`` it is.

    >>> TextObservation("hi") == "hi", TextObservation("hi").dtype
    (True, <class 'str'>)
    """

    __slots__ = ()
    dtype = str


def _text(action: Any) -> str:
    """A proposal as text (a non-string action is shown by its repr; the env rejects it)."""
    if action is None:
        return ""
    return action if isinstance(action, str) else repr(action)
