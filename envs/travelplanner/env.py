"""TravelPlanner-v0: plan a multi-day trip under a budget and constraints (Xie et al., 2024).

Two modes, as in the benchmark:

* ``two-stage``: the agent gathers information with the benchmark's tools in ReAct format
  (``Action: FlightSearch[Austin, Denver, 2022-03-16]``), records results with
  ``NotebookWrite``, then calls ``Planner[...]``; the environment answers with the notebook
  and the query, and the agent's next message is the plan.
* ``sole-planning``: the reference information is given up front and the agent writes only
  the plan.

The plan (a JSON list of day records) is judged by the benchmark's evaluator
(:mod:`agentgym.envs.travelplanner.judge`): with the intended ``"strict"`` rules by
default, or with the official script's verdicts (``evaluator="official"``). The chosen
evaluator's per-check verdicts go into ``info["verdicts"]`` (both evaluators' are under its
``"strict"`` and ``"official"`` keys, which is how ``agentgym eval`` reports both metrics)
and, in the FAFT format, into the final observation and ``info["feedback"]``.

Example:
    >>> import gymnasium as gym
    >>> import agentgym
    >>> env = gym.make("agentgym/TravelPlanner-v0", mode="sole-planning",
    ...                database_size="small", split="validation")
    >>> observation, info = env.reset(seed=0)
    >>> expert = env.unwrapped.make_expert()
    >>> expert.reset(env, observation, info)
    >>> _, reward, terminated, _, info = env.step(expert.act(observation, info))
    >>> reward, terminated, info["verdicts"]["is_not_absent"]
    (1.0, True, True)
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentgym.core.env import Evaluation, TextEnv, Transition
from agentgym.core.parsing import ReActParser
from agentgym.core.registry import check_choice, renamed_argument
from agentgym.core.tasks import GeneratedTaskSet, TaskSet
from agentgym.envs.travelplanner.database import TravelDatabase, get_database
from agentgym.envs.travelplanner.expert import TravelPlannerExpert, expert_plan, plan_cities
from agentgym.envs.travelplanner.judge import (
    EVALUATORS,
    PlanEvaluation,
    evaluate,
    success_feedback,
    summarize_verdicts,
)
from agentgym.envs.travelplanner.plans import (
    Plan,
    TravelQuery,
    parse_plan,
)
from agentgym.envs.travelplanner.tasks import LEVELS, SPLITS, generate_query
from agentgym.envs.travelplanner.tools import (
    TOOL_SIGNATURES,
    TravelTools,
    reference_information,
)

__all__ = ["TravelPlannerEnv", "condition_on_feedback"]

MODES = ("two-stage", "sole-planning")
REWARD_MODES = ("final", "shaped")
#: The reference agent stops after more than this many consecutive failures of one tool.
MAX_TOOL_FAILURES = 3
#: ... or when the same action is repeated this many times in a row.
MAX_REPEATS = 3

PLAN_INSTRUCTIONS = (
    "Write the travel plan as a JSON list with one object per day and the keys days, "
    "current_city, transportation, breakfast, attraction, lunch, dinner, accommodation. "
    "current_city is 'from A to B' on travel days; copy transportation from the information "
    "(e.g. 'Flight Number: F0123456, from A to B, Departure Time: 10:00, Arrival Time: 12:00' "
    "or 'Self-driving, from A to B, ...'). Write places as 'Name, City', attractions "
    "separated by ';', and '-' for nothing. Use only the given information."
)
TWO_STAGE_PROMPT = (
    "You are a travel agent. Gather the information a trip plan needs, one tool call per "
    "turn, written as 'Action: Tool[arguments]' (a 'Thought: ...' line before it is "
    "optional). Tools:\n"
    + "\n".join(f"{example} - {', '.join(args)}" for args, example in TOOL_SIGNATURES.values())
    + "\nNotebookWrite stores the previous tool result; Planner ends the search and shows "
    "you the notebook, then you write the plan."
)
SOLE_PLANNING_PROMPT = "You are a travel agent. " + PLAN_INSTRUCTIONS


def _section(title: str, body: str) -> str:
    return f"{title}:\n{body}\n"


def condition_on_feedback(observation: str, feedback: str) -> str:
    """Put ``feedback`` into a planning prompt (replacing any feedback already there).

    This is FAFT's conditioning: training prompts carry the evaluator's feedback on the plan
    that follows; at inference the all-success feedback asks for a plan that passes.

    >>> prompt = "query:\\nGo to Reno.\\ntravel plan:"
    >>> print(condition_on_feedback(prompt, "is_not_absent: success"))
    query:
    Go to Reno.
    feedback:
    is_not_absent: success
    travel plan:
    >>> condition_on_feedback(condition_on_feedback(prompt, "a"), "b").count("feedback:")
    1
    """
    head, marker, _ = observation.rpartition("travel plan:")
    if not marker:
        raise ValueError("not a planning prompt: it has no 'travel plan:' line")
    query_at = head.rfind("query:\n")
    feedback_at = head.rfind("feedback:\n")
    if feedback_at > query_at >= 0:
        head = head[:feedback_at]
    return head + _section("feedback", feedback) + "travel plan:"


class TravelPlannerEnv(TextEnv):
    """TravelPlanner: gather travel information with tools (or read it), then write a plan.

    ## Description
    A query asks for a 3-, 5- or 7-day trip from an origin city to 1-3 cities under a
    budget and up to three local constraints (house rule, cuisine, room type,
    transportation). The database (cities by state, flights, distances, accommodations,
    restaurants, attractions) is generated from a seed or loaded from the benchmark's files.

    ## Action Space
    Text. Two-stage mode: ``Action: Tool[arguments]`` with the tools FlightSearch,
    GoogleDistanceMatrix, AccommodationSearch, RestaurantSearch, AttractionSearch,
    CitySearch, NotebookWrite and Planner; after Planner (and in sole-planning mode) the
    plan: a JSON list of day records (code fences, single quotes, trailing commas and the
    benchmark's ``Day 1:`` text layout are accepted).

    ## Observation Space
    Text: the query; tool results (tables with the benchmark's columns) or an error saying
    what was wrong; the planning prompt (``reference information`` / ``query`` /
    ``feedback`` / ``travel plan:``); at the end the evaluator's feedback, one line per check.

    ## Rewards
    ``reward_mode="final"``: 1.0 when the plan passes all 8 commonsense and all applicable
    hard constraints (the benchmark's final pass), else 0.0. ``"shaped"``: 1.0 for a final
    pass, else the mean of the commonsense and hard micro pass rates of the plan. The
    ``evaluator`` argument chooses whose verdicts count. Queries of the official test split
    (no constraints published) are not judged: reward 0.0, ``info["verdicts"]["judged"]``
    is ``False``.

    ## Episode End
    Terminated when a plan is evaluated, when ``max_plan_attempts`` answers in a row are not
    a readable plan, or (two-stage) on the reference agent's early stops: more than 3
    consecutive failures of one tool or the same action 3 times in a row. Truncated at
    ``max_episode_steps`` (30, the reference agent's limit).

    ## Arguments
    * ``mode``: ``"two-stage"`` or ``"sole-planning"``.
    * ``split``: ``"train"`` (45), ``"validation"`` (180) or ``"test"`` (1,000 queries).
    * ``difficulty``: the queries' level, ``"easy"``, ``"medium"``, ``"hard"`` or
      ``"mixed"`` (``level=`` is a deprecated alias).
    * ``days``: only 3-, 5- or 7-day trips (``None``: all; 3-day prompts suit small models).
    * ``num_tasks``: use only the first ``num_tasks`` queries.
    * ``database_size``: ``"full"`` (44 states, 261 cities, benchmark-like listing counts) or
      ``"small"`` (12 states, short listings: compact prompts for small models).
    * ``database_seed``: seed of the generated database.
    * ``data_dir``: the benchmark's ``database`` folder (loads the real tables instead).
    * ``queries_file``: a query file of any official split as published (CSV, JSONL, JSON or
      Parquet); else queries are generated.
    * ``reward_mode``: ``"final"`` or ``"shaped"``.
    * ``evaluator``: ``"strict"`` (the benchmark's intended rules) or ``"official"`` (the
      official script's verdicts, quirks included, for scores comparable with published
      ones); see ``docs/envs/travelplanner.md``.
    * ``feedback_conditioning``: put the all-success feedback into the planning prompt
      (FAFT inference).
    * ``extra_reference_cities``: sole-planning reference information covers the expert's
      cities plus this many other cities of the destination state (distractors).
    * ``compact_reference``: drop the attractions' address, phone, website and coordinates.
    * ``max_plan_attempts``: unreadable plans allowed before the episode ends undelivered.

    ## Version History
    * v0: initial version. Revised before any release: the real files load as the official
      tools read them, padded plans are judged on their first ``days`` records, the
      ``evaluator`` argument, and generated drives of a day or more are no valid
      information (as the official tool answers).
    """

    def __init__(
        self,
        *,
        mode: str = "two-stage",
        split: str = "train",
        difficulty: str = "mixed",
        days: int | None = None,
        num_tasks: int | None = None,
        database_size: str = "full",
        database_seed: int = 0,
        data_dir: str | None = None,
        queries_file: str | None = None,
        reward_mode: str = "final",
        evaluator: str = "strict",
        feedback_conditioning: bool = False,
        extra_reference_cities: int = 1,
        compact_reference: bool = False,
        max_plan_attempts: int = 3,
        max_observation_length: int = 65_536,
        max_action_length: int = 16_384,
        render_mode: str | None = None,
        level: str | None = None,
    ) -> None:
        difficulty = renamed_argument("level", level, "difficulty", difficulty, "mixed")
        check_choice("mode", mode, MODES)
        check_choice("split", split, list(SPLITS))
        check_choice("difficulty", difficulty, [*LEVELS, "mixed"])
        check_choice("days", days, [None, 3, 5, 7])
        check_choice("reward_mode", reward_mode, REWARD_MODES)
        check_choice("evaluator", evaluator, EVALUATORS)
        if max_plan_attempts < 1 or extra_reference_cities < 0:
            raise ValueError("max_plan_attempts must be >= 1 and extra_reference_cities >= 0")
        super().__init__(
            max_observation_length=max_observation_length,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        self.mode = mode
        self.reward_mode = reward_mode
        self.evaluator = evaluator
        self.feedback_conditioning = feedback_conditioning
        self.extra_reference_cities = extra_reference_cities
        self.compact_reference = compact_reference
        self.max_plan_attempts = max_plan_attempts
        self.database = _database(database_size, database_seed, data_dir)
        self.tools = TravelTools(self.database)
        self.difficulty = difficulty
        self.tasks = _tasks(self.database, split, difficulty, days, num_tasks, queries_file)
        self._parser = ReActParser()
        self._phase = "plan"
        self._notebook: list[tuple[str, str]] = []
        self._last_result: str | None = None
        self._failures: dict[str, int] = {}
        self._recent_actions: list[str] = []
        self._plan_attempts = 0

    # ------------------------------------------------------------------ episode --

    def _start(self, task: TravelQuery) -> tuple[str, dict[str, Any]]:
        self._notebook = []
        self._last_result = None
        self._failures = {}
        self._recent_actions = []
        self._plan_attempts = 0
        if self.mode == "sole-planning":
            self._phase = "plan"
            observation = self.planning_prompt(task, self._reference_text(task))
            prompt = SOLE_PLANNING_PROMPT
        else:
            self._phase = "gather"
            observation = f"Query: {task.query}"
            prompt = TWO_STAGE_PROMPT
        return observation, {"system_prompt": prompt, "tools": [], "observation_role": "user"}

    def planning_prompt(self, query: TravelQuery, reference: str) -> str:
        """The prompt the plan answers: reference information, query, (feedback), plan."""
        text = _section("reference information", reference) + _section("query", query.query)
        if self.mode == "two-stage":
            text = PLAN_INSTRUCTIONS + "\n" + text
        if self.feedback_conditioning:
            text += _section("feedback", success_feedback(query))
        return text + "travel plan:"

    def _reference_text(self, query: TravelQuery) -> str:
        if query.reference_information is not None:
            return query.reference_information
        if not query.judgeable:
            return "(no reference information was published for this query)"
        plan = query.annotated_plan or expert_plan(query, self.database)
        cities = plan_cities(plan) if plan else []
        if query.visiting_city_number > 1:
            others = [c for c in self.database.cities_in(query.dest) if c not in cities]
            cities += others[: self.extra_reference_cities]
        elif not cities:
            cities = [query.dest]
        entries = reference_information(
            query, self.database, cities, compact=self.compact_reference
        )
        return _notebook_text(entries)

    @staticmethod
    def condition_on_feedback(prompt: str, feedback: str) -> str:
        """FAFT's conditioning (:class:`agentgym.core.feedback.FeedbackConditioned`): a
        planning prompt with the evaluator's ``feedback`` in it."""
        return condition_on_feedback(prompt, feedback)

    def _act(self, action: str) -> Transition:
        if self._phase == "plan":
            return self._submit_plan(action)
        parsed = self._parser.parse(action)
        # The reference agent stops when the same action comes 3 times in a row; a tool call
        # is compared by name and arguments, anything else by its text.
        key = (
            f"{parsed.tool_calls[0].name}[{parsed.tool_calls[0].raw_arguments or ''}]"
            if parsed.tool_calls and not parsed.error
            else " ".join(action.split())
        )
        self._recent_actions = [*self._recent_actions[-(MAX_REPEATS - 1) :], key]
        if len(self._recent_actions) == MAX_REPEATS and len(set(self._recent_actions)) == 1:
            return self._early_stop(
                f"the action {key[:200]!r} was repeated {MAX_REPEATS} times in a row"
            )
        if (parsed.error or not parsed.tool_calls) and parse_plan(action)[0] is not None:
            return self._invalid(
                "Invalid action: this looks like a plan, but the search is still open. Call "
                "Action: Planner[the query] first; then write the plan."
            )
        if parsed.error or not parsed.tool_calls:
            return self._invalid(
                f"Invalid action: {parsed.error or 'no tool call found.'} Valid tools: "
                + ", ".join(TOOL_SIGNATURES)
                + "."
            )
        call = parsed.tool_calls[0]
        name, arguments = call.name, call.raw_arguments or ""
        if name not in TOOL_SIGNATURES:
            close = difflib.get_close_matches(name, list(TOOL_SIGNATURES), n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            return self._invalid(
                f"Invalid action: unknown tool '{name}'.{hint} Valid tools: "
                + ", ".join(TOOL_SIGNATURES)
                + "."
            )
        if name == "NotebookWrite":
            if self._last_result is None:
                return self._tool_failure(
                    name, "There is no new search result to record; call a search tool first."
                )
            self._notebook.append((arguments.strip() or "(no description)", self._last_result))
            self._last_result = None
            self._failures[name] = 0
            return Transition(
                observation=f"The information has been recorded in Notebook, and its index is "
                f"{len(self._notebook) - 1}.",
                observation_role="user",
            )
        if name == "Planner":
            self._phase = "plan"
            prompt = self.planning_prompt(self.task, _notebook_text(self._notebook))
            return Transition(observation=prompt, feedback="Planning stage: write the plan.")
        result = self.tools.run(name, arguments)
        if not result.ok:
            return self._tool_failure(name, result.observation)
        self._failures[name] = 0
        self._last_result = result.observation
        return Transition(observation=result.observation)

    def _tool_failure(self, name: str, message: str) -> Transition:
        self._failures[name] = self._failures.get(name, 0) + 1
        if self._failures[name] > MAX_TOOL_FAILURES:
            return self._early_stop(
                f"{name} failed {self._failures[name]} times in a row (last: {message})"
            )
        return Transition(observation=message, feedback=message)

    def _early_stop(self, reason: str) -> Transition:
        evaluation = self._evaluation(None)
        message = f"Early stop: {reason}. No plan was delivered.\n{evaluation.feedback}"
        return Transition(
            observation=message,
            terminated=True,
            feedback=evaluation.feedback,
            evaluation=evaluation,
            action_valid=False,
        )

    def _submit_plan(self, action: str) -> Transition:
        plan, error = parse_plan(action)
        if plan is None:
            self._plan_attempts += 1
            if self._plan_attempts >= self.max_plan_attempts:
                return self._early_stop(
                    f"{self._plan_attempts} answers were not a readable plan (last: {error})"
                )
            return self._invalid(f"Invalid action: {error}")
        evaluation = self._evaluation(plan)
        verdict = "The plan passes every check." if evaluation.success else "The plan fails."
        if evaluation.verdicts.get("judged") is False:
            verdict = "The plan was recorded."
        return Transition(
            observation=f"{verdict}\n{evaluation.feedback}",
            reward=evaluation.reward,
            terminated=True,
            feedback=evaluation.feedback,
            progress=evaluation.progress,
            evaluation=evaluation,
        )

    def _evaluation(self, plan: Plan | None) -> Evaluation:
        query: TravelQuery = self.task
        if not query.judgeable:
            message = (
                "Not judged: this query has no published constraints (the official test split "
                "keeps them for its leaderboard)."
            )
            verdicts = {"judged": False, "delivered": bool(plan)}
            return Evaluation(success=False, reward=0.0, verdicts=verdicts, feedback=message)
        results: dict[str, PlanEvaluation] = {
            name: evaluate(query, plan, self.database, evaluator=name) for name in EVALUATORS
        }
        result = results[self.evaluator]
        reward = (
            result.shaped_reward() if self.reward_mode == "shaped" else float(result.final_pass)
        )
        verdicts = result.as_info()
        verdicts.update({name: other.as_info() for name, other in results.items()})
        return Evaluation(
            success=result.final_pass,
            reward=reward,
            verdicts=verdicts,
            feedback=result.feedback,
            progress=result.shaped_reward(),
        )

    def benchmark_metrics(self, verdicts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The benchmark's metrics over episodes' ``info["verdicts"]``, by both evaluators.

        ``agentgym eval`` prints these next to the success rate: delivery rate, commonsense
        and hard micro/macro pass rates and the final pass rate, once with the strict rules
        and once with the official script's (whichever one the reward used). Episodes of
        unjudgeable queries (the official test split) are counted apart.

        >>> env = TravelPlannerEnv(mode="sole-planning", database_size="small")
        >>> metrics = env.benchmark_metrics([{}])
        >>> sorted(metrics), metrics["official"]["final_pass_rate"]
        (['episodes', 'not_judged', 'official', 'strict'], 0.0)
        """
        judged = [v for v in verdicts if v.get("judged", True)]
        return {
            "episodes": len(verdicts),
            "not_judged": len(verdicts) - len(judged),
            **{name: summarize_verdicts([v.get(name, {}) for v in judged]) for name in EVALUATORS},
        }

    def evaluate(self) -> Evaluation:
        """An episode cut by the time limit delivered no plan."""
        if self.task is None:
            return Evaluation(success=False, reward=0.0, feedback="No episode was started.")
        return self._evaluation(None)

    def make_expert(
        self,
        error_rate: float = 0.0,
        error_kinds: Sequence[str] | None = None,
        seed: int = 0,
    ) -> TravelPlannerExpert:
        """The expert: the planner's plan (two-stage: after the tool calls that find it).

        Args:
            error_rate: Probability that an episode's plan carries one injected error.
            error_kinds: Kinds to draw from (default: all of ``ERROR_KINDS``).
            seed: Mixed with each episode's seed to draw the errors.
        """
        return TravelPlannerExpert(error_rate=error_rate, error_kinds=error_kinds, seed=seed)


# ------------------------------------------------------------------------ helpers --


def _notebook_text(entries: Sequence[tuple[str, str]]) -> str:
    if not entries:
        return "(the notebook is empty)"
    return "\n".join(
        f"[{i}] {description}\n{content}" for i, (description, content) in enumerate(entries)
    )


def _database(size: str, seed: int, data_dir: str | None) -> TravelDatabase:
    if data_dir is None:
        return get_database(size, seed)
    from agentgym.envs.travelplanner.loaders import load_database

    return load_database(Path(data_dir))


_TASK_CACHE: dict[tuple, TaskSet] = {}


def _tasks(
    db: TravelDatabase,
    split: str,
    level: str,
    days: int | None,
    num_tasks: int | None,
    queries_file: str | None,
) -> TaskSet[TravelQuery]:
    key = (db.name, split, level, days, num_tasks, queries_file)
    if key in _TASK_CACHE:
        return _TASK_CACHE[key]
    if queries_file is not None:
        from agentgym.envs.travelplanner.loaders import load_queries

        queries = load_queries(Path(queries_file), split=split)
        if level != "mixed":
            queries = [q for q in queries if q.level == level]
        if days is not None:
            queries = [q for q in queries if q.days == days]
        if num_tasks is not None:
            queries = queries[:num_tasks]
        tasks: TaskSet[TravelQuery] = TaskSet.from_list(queries, id_of=lambda q: q.id)
    else:
        size = SPLITS[split][0]
        if num_tasks is not None:
            if not 1 <= num_tasks <= size:
                raise ValueError(f"num_tasks must be in [1, {size}] for split={split!r}")
            size = num_tasks

        def generate(index: int, rng: np.random.Generator) -> TravelQuery:
            return generate_query(db, index=index, split=split, level=level, days=days)

        tasks = GeneratedTaskSet(size, generate, id_prefix=f"tp-{split}-{level}{days or ''}-")
    _TASK_CACHE[key] = tasks
    return tasks
