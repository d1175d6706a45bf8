"""Abuse controls: rate limits, attempt caps, block lists and fraud patterns.

- :class:`PolicyRouter` wraps any call router with the checks (hot path, memory only);
- :class:`AbusePolicy` holds their state and the counters the metrics module reads;
- :class:`PolicyService` persists block lists in the store and keeps nodes in step;
- :class:`PolicySettings` is the ``[policy]`` configuration section.

Only the dependency-free model and settings are imported eagerly: the store names
:class:`BlockEntry`, and must be able to do so without importing the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from b2bua.policy.model import GLOBAL_SCOPE, BlockEntry, BlockSource
from b2bua.policy.settings import PolicySettings

if TYPE_CHECKING:
    from b2bua.policy.abuse import AbusePolicy, PolicyCounters
    from b2bua.policy.router import PolicyRouter
    from b2bua.policy.service import PolicyService

__all__ = [
    "GLOBAL_SCOPE",
    "AbusePolicy",
    "BlockEntry",
    "BlockSource",
    "PolicyCounters",
    "PolicyRouter",
    "PolicyService",
    "PolicySettings",
]

_LAZY = {
    "AbusePolicy": "b2bua.policy.abuse",
    "PolicyCounters": "b2bua.policy.abuse",
    "PolicyRouter": "b2bua.policy.router",
    "PolicyService": "b2bua.policy.service",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'b2bua.policy' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
