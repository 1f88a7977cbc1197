"""The domain backends of ``agentgym/ToolUse-v0``, one stateful class per domain.

:data:`BACKENDS` maps a domain name to its class; :func:`tool_index` maps every tool name
to its domain and (unbound) tool, and checks that tool names are unique across domains.
Add your own domain with :func:`register_backend`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agentgym.core.tools import Tool
from agentgym.envs.tooluse.backends.base import Backend, BackendError, clone
from agentgym.envs.tooluse.backends.filesystem import FileSystem
from agentgym.envs.tooluse.backends.messaging import MessagingService
from agentgym.envs.tooluse.backends.trading import TradingAccount
from agentgym.envs.tooluse.backends.travel import TravelAgency
from agentgym.envs.tooluse.backends.vehicle import VehicleControl

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "FileSystem",
    "MessagingService",
    "TradingAccount",
    "TravelAgency",
    "VehicleControl",
    "clone",
    "register_backend",
    "tool_index",
]

#: domain name -> backend class
BACKENDS: dict[str, type[Backend]] = {
    cls.domain: cls
    for cls in (FileSystem, TradingAccount, MessagingService, TravelAgency, VehicleControl)
}


def register_backend(cls: type[Backend], *, override: bool = False) -> type[Backend]:
    """Add a backend class under its ``domain`` (usable as a class decorator).

    Raises ``ValueError`` for a taken domain name or a tool name another domain uses.
    """
    if not (isinstance(cls, type) and issubclass(cls, Backend)) or not cls.domain:
        raise TypeError(f"{cls!r} must be a Backend subclass with a non-empty `domain`.")
    if cls.domain in BACKENDS and BACKENDS[cls.domain] is not cls and not override:
        raise ValueError(f"Domain {cls.domain!r} is already registered; pass override=True.")
    candidates = {**BACKENDS, cls.domain: cls}
    tool_index(list(candidates), candidates)  # raises on duplicate tool names
    BACKENDS[cls.domain] = cls
    return cls


def tool_index(
    domains: Sequence[str], backends: Mapping[str, type[Backend]] | None = None
) -> dict[str, tuple[str, Tool]]:
    """``{tool name: (domain, unbound tool)}`` over ``domains``; duplicate names raise."""
    classes = BACKENDS if backends is None else backends
    index: dict[str, tuple[str, Tool]] = {}
    for domain in domains:
        for name, item in classes[domain].tools().items():
            if name in index:
                raise ValueError(
                    f"Tool name {name!r} is defined by both {index[name][0]!r} and {domain!r}; "
                    "tool names must be unique across domains."
                )
            index[name] = (domain, item)
    return index
