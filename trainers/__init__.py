"""agentgym's trainers, installed as ``agentgym.trainers``.

Each recipe is a short loop over the verbs of :class:`~agentgym.trainers.common.Workbench`
(collect, select, fine-tune, evaluate); ``TRAINERS`` maps the config name to its settings
class and recipe (``"module:function"``, imported when used).
"""

from __future__ import annotations

from agentgym.trainers.critic import CriticConfig
from agentgym.trainers.critique import CritiqueConfig
from agentgym.trainers.eef import EEFConfig
from agentgym.trainers.envtune import EnvTuneConfig
from agentgym.trainers.faft import FAFTConfig
from agentgym.trainers.grpo import GRPOConfig
from agentgym.trainers.leti import LeTIConfig
from agentgym.trainers.rft import RFTConfig, SFTRecipeConfig

#: trainer name -> (settings dataclass, "module:recipe")
TRAINERS: dict[str, tuple[type, str]] = {
    "sft": (SFTRecipeConfig, "agentgym.trainers.rft:sft_recipe"),
    "rft": (RFTConfig, "agentgym.trainers.rft:rft_recipe"),
    "eef": (EEFConfig, "agentgym.trainers.eef:eef_recipe"),
    "faft": (FAFTConfig, "agentgym.trainers.faft:faft_recipe"),
    "leti": (LeTIConfig, "agentgym.trainers.leti:leti_recipe"),
    "grpo": (GRPOConfig, "agentgym.trainers.grpo:grpo_recipe"),
    "envtune": (EnvTuneConfig, "agentgym.trainers.envtune:envtune_recipe"),
    "critique": (CritiqueConfig, "agentgym.trainers.critique:critique_recipe"),
    "critic": (CriticConfig, "agentgym.trainers.critic:critic_recipe"),
}

__all__ = ["TRAINERS"]
