"""Task-generation content per domain: random initial configurations and user intents.

:data:`CONFIG_BUILDERS` maps a domain to ``random_config(rng, long_context) -> config``;
:data:`~agentgym.envs.tooluse.scenarios.common.INTENTS` maps it to its intent builders.
Register a custom domain's content with :func:`register_scenarios`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from agentgym.envs.tooluse.scenarios import filesystem, messaging, trading, travel, vehicle
from agentgym.envs.tooluse.scenarios.common import INTENTS, Intent, IntentSpec, Scene, intent

__all__ = [
    "CONFIG_BUILDERS",
    "INTENTS",
    "Intent",
    "IntentSpec",
    "Scene",
    "intent",
    "register_scenarios",
]

ConfigBuilder = Callable[[np.random.Generator, bool], dict[str, Any]]

#: domain -> random_config(rng, long_context)
CONFIG_BUILDERS: dict[str, ConfigBuilder] = {
    module.DOMAIN: module.random_config
    for module in (filesystem, trading, messaging, travel, vehicle)
}


def register_scenarios(domain: str, random_config: ConfigBuilder) -> None:
    """Register how to draw initial configurations of ``domain`` (intents register with
    :func:`~agentgym.envs.tooluse.scenarios.common.intent`)."""
    CONFIG_BUILDERS[domain] = random_config
