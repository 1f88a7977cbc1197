"""agentgym: Gymnasium text environments and feedback-driven trainers for LLM agents.

``import agentgym`` registers every environment under the ``agentgym/`` namespace:

>>> import gymnasium as gym
>>> import agentgym
>>> env = gym.make("agentgym/Calculator-v0")
>>> observation, info = env.reset(seed=0)
>>> sorted(info)[:4]
['episode_seed', 'num_turns', 'observation_role', 'system_prompt']
"""

# Importing agentgym.envs registers the built-in environments (import paths only: each
# environment's module loads on its first gymnasium.make).
from agentgym import envs as _envs  # noqa: F401
from agentgym.core.env import Evaluation, InfoKeys, TextEnv, Transition
from agentgym.core.parsing import (
    ParsedAction,
    ToolCall,
    ToolCallParser,
    get_parser,
    list_parsers,
    register_parser,
)
from agentgym.core.policy import ErrorInjectingExpert, ScriptedPolicy
from agentgym.core.registry import (
    check_choice,
    list_envs,
    make,
    register_env,
    register_tool_env,
)
from agentgym.core.replay import ReplayDivergence, replay, restore
from agentgym.core.spaces import AgentText
from agentgym.core.tasks import GeneratedTaskSet, TaskSet
from agentgym.core.tool_env import ToolEnv, ToolEnvExpert, ToolEpisode, ToolTask
from agentgym.core.tools import State, Tool, ToolError, ToolResult, ToolSet, tool
from agentgym.core.trajectory import Message, Step, Trajectory, TrajectoryStore
from agentgym.critique.game import critique_game

__version__ = "0.1.0"

__all__ = [
    "AgentText",
    "ErrorInjectingExpert",
    "Evaluation",
    "GeneratedTaskSet",
    "InfoKeys",
    "Message",
    "ParsedAction",
    "ReplayDivergence",
    "ScriptedPolicy",
    "State",
    "Step",
    "TaskSet",
    "TextEnv",
    "Tool",
    "ToolCall",
    "ToolCallParser",
    "ToolEnv",
    "ToolEnvExpert",
    "ToolEpisode",
    "ToolError",
    "ToolResult",
    "ToolSet",
    "ToolTask",
    "Trajectory",
    "TrajectoryStore",
    "Transition",
    "check_choice",
    "critique_game",
    "get_parser",
    "list_envs",
    "list_parsers",
    "make",
    "register_env",
    "register_parser",
    "register_tool_env",
    "replay",
    "restore",
    "tool",
]
