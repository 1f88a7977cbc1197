"""TravelPlanner-v0: a generated travel database, the benchmark's tools, and its evaluator.

Parts:

* :mod:`~agentgym.envs.travelplanner.env`: :class:`TravelPlannerEnv` (two-stage and
  sole-planning modes).
* :mod:`~agentgym.envs.travelplanner.tasks`: the query generator (splits, levels, days).
* :mod:`~agentgym.envs.travelplanner.expert`: the scripted expert :class:`TravelPlannerExpert`;
  :mod:`~agentgym.envs.travelplanner.planner`: the trip planner it uses and its error
  injection.
* :mod:`~agentgym.envs.travelplanner.judge`: judging a plan and the benchmark's metrics,
  with the commonsense and hard constraints of
  :mod:`~agentgym.envs.travelplanner.constraints` (``evaluator="strict"``) or the official
  script's verdicts of :mod:`~agentgym.envs.travelplanner.official`
  (``evaluator="official"``).
* :mod:`~agentgym.envs.travelplanner.loaders`: the benchmark's database and query files.
* :mod:`~agentgym.envs.travelplanner.database`, :mod:`~agentgym.envs.travelplanner.tools`,
  :mod:`~agentgym.envs.travelplanner.plans`: the travel database, the tools over it, and
  the plan format; :mod:`~agentgym.envs.travelplanner.generator` (with
  :mod:`~agentgym.envs.travelplanner.vocabulary`) generates databases.
"""

from agentgym.envs.travelplanner.env import TravelPlannerEnv
from agentgym.envs.travelplanner.expert import TravelPlannerExpert

__all__ = ["TravelPlannerEnv", "TravelPlannerExpert"]
