"""agentgym's environments, installed as ``agentgym.envs``.

Each environment lives in its own module and is registered here, once, by a versioned id.
Entry points are import paths, so ``import agentgym`` stays fast: an environment's module
(and its data) loads on the first ``gymnasium.make`` of that id.
"""

from agentgym.core.registry import register_env

register_env(
    "agentgym/Calculator-v0",
    "agentgym.envs.calculator:CalculatorEnv",
    description="Multi-turn arithmetic with calculator tools (built with the public tools API).",
    max_episode_steps=24,
)

register_env(
    "agentgym/BFCL-MultiTurn-v0",
    "agentgym.envs.bfcl:BFCLMultiTurnEnv",
    description="BFCL v4 multi-turn function calling over stateful backends (needs bfcl-eval).",
    max_episode_steps=200,
)

register_env(
    "agentgym/ToolUse-v0",
    "agentgym.envs.tooluse:ToolUseEnv",
    description="Multi-turn stateful tool use over 5 simulated backends, BFCL-style checks.",
    max_episode_steps=60,
)
