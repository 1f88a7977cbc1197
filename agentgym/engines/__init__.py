"""Generation engines behind one interface (:class:`~agentgym.engines.base.Engine`).

``make_engine("hf" | "vllm" | "openai", model=..., **options)`` builds one; each engine's
module is imported only when it is used (vLLM is an optional extra).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from agentgym.engines.base import Completion, Engine, SamplingParams

__all__ = ["ENGINES", "Completion", "Engine", "SamplingParams", "make_engine"]

#: engine name -> "module:Class"
ENGINES: dict[str, str] = {
    "hf": "agentgym.engines.hf:HFEngine",
    "vllm": "agentgym.engines.vllm:VLLMEngine",
    "openai": "agentgym.engines.openai:OpenAIEngine",
}


def make_engine(name: str, **kwargs: Any) -> Engine:
    """Build the engine called ``name`` with its constructor arguments."""
    if name not in ENGINES:
        close = difflib.get_close_matches(name, list(ENGINES), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"Unknown engine {name!r}.{hint} Valid: {', '.join(ENGINES)}")
    module_name, _, class_name = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)(**kwargs)
