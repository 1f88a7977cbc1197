"""agentgym's environments, installed as ``agentgym.envs``.

Each environment is a package with the same parts: ``env.py`` (the ``gymnasium.Env``),
``tasks.py`` (the task type and generator or selection), ``expert.py`` (the scripted
expert; tool environments built on :class:`~agentgym.ToolEnv` use its ground-truth
expert), ``judge.py`` (the checks behind reward and ``verdicts``), ``loaders.py`` (reading
published data, where there is any), and ``__init__`` exporting the environment and its
expert. Each is registered here, once, by a versioned id.
Entry points are import paths, so ``import agentgym`` stays fast: an environment's module
(and its data) loads on the first ``gymnasium.make`` of that id.
"""

from agentgym.core.registry import register_env

register_env(
    "agentgym/Calculator-v0",
    "agentgym.envs.calculator:CalculatorEnv",
    description="Multi-turn arithmetic with calculator tools (built with the public tools API).",
    max_episode_steps=24,
    reward_range=(0.0, 1.0),
)

register_env(
    "agentgym/BFCL-MultiTurn-v0",
    "agentgym.envs.bfcl:BFCLMultiTurnEnv",
    description="BFCL v4 multi-turn function calling over stateful backends (needs bfcl-eval).",
    max_episode_steps=200,
    reward_range=(0.0, 1.0),
)

register_env(
    "agentgym/ToolUse-v0",
    "agentgym.envs.tooluse:ToolUseEnv",
    description="Multi-turn stateful tool use over 5 simulated backends, BFCL-style checks.",
    max_episode_steps=60,
    reward_range=(0.0, 1.0),
)

register_env(
    "agentgym/WebShop-v0",
    "agentgym.envs.webshop.env:WebShopEnv",
    description="WebShop: search and buy from a generated catalog (BM25), the benchmark's reward.",
    max_episode_steps=15,
    reward_range=(0.0, 1.0),
)

register_env(
    "agentgym/TravelPlanner-v0",
    "agentgym.envs.travelplanner.env:TravelPlannerEnv",
    description="TravelPlanner: tools + plan writing (two-stage / sole-planning), 13 checks.",
    max_episode_steps=30,
    reward_range=(0.0, 1.0),
    kwargs={"mode": "two-stage"},
)

register_env(
    "agentgym/CodeExec-v0",
    "agentgym.envs.codeexec.env:CodeExecEnv",
    description="Write a function, run hidden tests in a sandbox, repair from execution feedback.",
    max_episode_steps=10,
    reward_range=(0.0, 1.0),
)

register_env(
    "agentgym/Remote-v0",
    "agentgym.serving.remote_env:RemoteEnv",
    description="Any environment served by `agentgym serve-env`, over OpenEnv's protocol "
    "(needs url=, token=).",
    max_episode_steps=None,  # the served environment's time limit applies on the server
)
