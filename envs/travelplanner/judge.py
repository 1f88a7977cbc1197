"""The TravelPlanner judge: 8 commonsense and 5 hard constraints, cost, and metrics.

:func:`evaluate` judges one plan against its query and the database and returns a
:class:`PlanEvaluation`: one :class:`Verdict` per check (pass / fail / not applicable, with a
message), the plan's total cost, and the feedback text in the FAFT format
(``is_not_absent: success`` / ``valid_cost: fail, reason: ...``). :func:`evaluate_batch` adds
the benchmark's metrics (delivery rate, commonsense and hard micro/macro, final pass rate).

Two rule sets (``evaluator=``):

* ``"strict"`` (default): the benchmark's *intended* rules (:mod:`.constraints`). Names
  match exactly (case- and space-insensitive) rather than as substrings, every attraction
  counts whether or not the list ends with ``;``, a non-travel day's items must lie in that
  city, flights must fly the day's route on the day's date, and a 3-day trip must visit the
  query's city.
* ``"official"``: the official evaluation script's verdicts, quirks included
  (:mod:`.official`), so that scores compare with published ones.

Both judge the first ``days`` records of a plan, so answer files padded with empty records
(as the official ones are, to 7 days) are read as the official script reads them; a strict
plan with a further *non-empty* record is too long. See ``docs/envs/travelplanner.md`` for
every difference.

Example:
    >>> from agentgym.envs.travelplanner.database import get_database
    >>> from agentgym.envs.travelplanner.tasks import generate_query
    >>> db = get_database("small")
    >>> query = generate_query(db, index=0, split="validation")
    >>> result = evaluate(query, query.annotated_plan, db)
    >>> result.final_pass, result.feedback.splitlines()[0]
    (True, 'is_valid_information_in_sandbox: success')
    >>> evaluate(query, None, db).verdicts["is_not_absent"].message
    'No plan was delivered.'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentgym.core.registry import check_choice
from agentgym.envs.travelplanner.constraints import (
    COMMONSENSE_CHECKS,
    HARD_CHECKS,
    Verdict,
    strict_verdicts,
    total_cost,
)
from agentgym.envs.travelplanner.database import TravelDatabase
from agentgym.envs.travelplanner.official import official_verdicts
from agentgym.envs.travelplanner.plans import (
    Plan,
    TravelQuery,
)

__all__ = [
    "COMMONSENSE_CHECKS",
    "EVALUATORS",
    "HARD_CHECKS",
    "PlanEvaluation",
    "Verdict",
    "evaluate",
    "evaluate_batch",
    "success_feedback",
    "summarize",
    "summarize_verdicts",
    "total_cost",
]

#: The rule sets :func:`evaluate` offers: the intended rules and the official script's.
EVALUATORS = ("strict", "official")


@dataclass(frozen=True)
class PlanEvaluation:
    """The verdicts on one plan.

    Attributes:
        delivered: Whether a non-empty plan was given.
        verdicts: Check name -> :class:`Verdict` (commonsense first, then hard).
        total_cost: The plan's cost (``None`` when the plan could not be costed).
        evaluator: The rule set that judged it (one of :data:`EVALUATORS`).
    """

    delivered: bool
    verdicts: Mapping[str, Verdict]
    total_cost: int | float | None
    evaluator: str = "strict"

    @property
    def commonsense_pass(self) -> bool:
        return all(self.verdicts[name].passed for name in COMMONSENSE_CHECKS)

    @property
    def hard_pass(self) -> bool:
        return all(self.verdicts[name].passed is not False for name in HARD_CHECKS)

    @property
    def final_pass(self) -> bool:
        return self.commonsense_pass and self.hard_pass

    @property
    def commonsense_passed(self) -> int:
        return sum(bool(self.verdicts[name].passed) for name in COMMONSENSE_CHECKS)

    @property
    def hard_applicable(self) -> int:
        return sum(self.verdicts[name].passed is not None for name in HARD_CHECKS)

    @property
    def hard_passed(self) -> int:
        return sum(bool(self.verdicts[name].passed) for name in HARD_CHECKS)

    @property
    def feedback(self) -> str:
        """One FAFT line per applicable check."""
        return "\n".join(
            verdict.line(name)
            for name, verdict in self.verdicts.items()
            if verdict.passed is not None
        )

    def shaped_reward(self) -> float:
        """1.0 for a final pass, else the mean of the commonsense and hard micro rates."""
        if self.final_pass:
            return 1.0
        hard = self.hard_passed / self.hard_applicable if self.hard_applicable else 1.0
        return 0.5 * self.commonsense_passed / len(COMMONSENSE_CHECKS) + 0.5 * hard

    def as_info(self) -> dict[str, Any]:
        """JSON-safe verdicts for ``info["verdicts"]``."""
        out: dict[str, Any] = {name: v.passed for name, v in self.verdicts.items()}
        out["total_cost"] = self.total_cost
        out["final_pass"] = self.final_pass
        out["delivered"] = self.delivered
        out["evaluator"] = self.evaluator
        return out


def success_feedback(query: TravelQuery) -> str:
    """The all-success feedback for ``query`` (what FAFT conditions on at inference)."""
    names = [*COMMONSENSE_CHECKS]
    names += [n for n, key in HARD_CHECKS.items() if key is None or query.constraint(key)]
    return "\n".join(f"{name}: success" for name in names)


# ------------------------------------------------------------------------ public --


def evaluate(
    query: TravelQuery,
    plan: Plan | None,
    database: TravelDatabase,
    *,
    evaluator: str = "strict",
) -> PlanEvaluation:
    """Judge ``plan`` (``None`` or ``[]``: nothing delivered) for ``query``.

    ``evaluator`` is ``"strict"`` (the intended rules) or ``"official"`` (the official
    script's verdicts); see the module docstring.
    """
    check_choice("evaluator", evaluator, EVALUATORS)
    if not query.judgeable:
        raise ValueError(
            f"query {query.id!r} has no constraints to judge a plan against (the official test "
            "split holds them back: submit its plans to the TravelPlanner leaderboard)"
        )
    if not plan:
        failed = Verdict(False, "No plan was delivered.")
        verdicts = {name: failed for name in COMMONSENSE_CHECKS}
        for name, key in HARD_CHECKS.items():
            verdicts[name] = failed if key is None or query.constraint(key) else Verdict(None)
        return PlanEvaluation(False, verdicts, None, evaluator)
    if evaluator == "official":
        official, official_total = official_verdicts(query, plan, database)
        return PlanEvaluation(True, official, official_total, evaluator)
    verdicts, cost = strict_verdicts(query, plan, database)
    return PlanEvaluation(True, verdicts, cost, evaluator)


def summarize(evaluations: Sequence[PlanEvaluation]) -> dict[str, float]:
    """The benchmark's metrics over evaluated plans (one per query).

    >>> summarize([])["final_pass_rate"]
    0.0
    """
    n = len(evaluations)
    if n == 0:
        return dict.fromkeys(
            (
                "delivery_rate",
                "commonsense_micro",
                "commonsense_macro",
                "hard_micro",
                "hard_macro",
                "final_pass_rate",
            ),
            0.0,
        )
    applicable = sum(e.hard_applicable for e in evaluations)
    return {
        "delivery_rate": sum(e.delivered for e in evaluations) / n,
        "commonsense_micro": sum(e.commonsense_passed for e in evaluations)
        / (len(COMMONSENSE_CHECKS) * n),
        "commonsense_macro": sum(e.commonsense_pass for e in evaluations) / n,
        "hard_micro": sum(e.hard_passed for e in evaluations) / applicable if applicable else 0.0,
        "hard_macro": sum(e.hard_pass and e.delivered for e in evaluations) / n,
        "final_pass_rate": sum(e.final_pass for e in evaluations) / n,
    }


def summarize_verdicts(verdicts: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """:func:`summarize`'s metrics from stored verdicts (:meth:`PlanEvaluation.as_info`).

    This is how ``agentgym eval`` scores recorded episodes: one dict per query, an empty
    dict (an episode that ended in an error) counting as a plan not delivered.

    >>> good = {name: True for name in (*COMMONSENSE_CHECKS, *HARD_CHECKS)}
    >>> good.update(final_pass=True, delivered=True, valid_cuisine=None)
    >>> metrics = summarize_verdicts([good, {}])
    >>> metrics["final_pass_rate"], metrics["hard_micro"], metrics["commonsense_micro"]
    (0.5, 0.8, 0.5)
    """
    evaluations = []
    for info in verdicts:
        if not info:
            info = {name: False for name in COMMONSENSE_CHECKS} | {"valid_cost": False}
            info["delivered"] = False
        checks = {
            name: Verdict(value if isinstance(value := info.get(name), bool) else None)
            for name in (*COMMONSENSE_CHECKS, *HARD_CHECKS)
        }
        evaluations.append(
            PlanEvaluation(bool(info.get("delivered", True)), checks, info.get("total_cost"))
        )
    return summarize(evaluations)


def evaluate_batch(
    queries: Sequence[TravelQuery],
    plans: Sequence[Plan | None],
    database: TravelDatabase,
    *,
    evaluator: str = "strict",
) -> tuple[list[PlanEvaluation], dict[str, float]]:
    """Evaluate one plan per query; return the evaluations and :func:`summarize`'s metrics.

    With an official answer file: ``evaluate_batch(load_queries(...), load_plans(...), db,
    evaluator="official")``.
    """
    if len(queries) != len(plans):
        raise ValueError(f"got {len(queries)} queries but {len(plans)} plans")
    evaluations = [
        evaluate(q, p, database, evaluator=evaluator) for q, p in zip(queries, plans, strict=True)
    ]
    return evaluations, summarize(evaluations)
