"""Bindings: the model, the four modes, the in-memory lookup index and the lifecycle.

``BindingService`` is imported lazily so that the store (which uses the model) and
the service (which uses the store) do not import each other at load time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from b2bua.bindings.errors import (
    BindingError,
    BindingNotActive,
    BindingNotFound,
    InvalidBinding,
    ModeNotAllowed,
    NoNumberAvailable,
    NumberConflict,
    TenantNotFound,
    TenantSuspended,
)
from b2bua.bindings.index import ActiveBinding, Rejection, RejectReason, Route
from b2bua.bindings.model import (
    Binding,
    BindingFilter,
    BindingSpec,
    BindingState,
    BindingUpdate,
    Direction,
    Mode,
    PoolNumber,
    Tenant,
)
from b2bua.bindings.settings import BindingSettings

if TYPE_CHECKING:
    from b2bua.bindings.service import BindingService

__all__ = [
    "ActiveBinding",
    "Binding",
    "BindingError",
    "BindingFilter",
    "BindingNotActive",
    "BindingNotFound",
    "BindingService",
    "BindingSettings",
    "BindingSpec",
    "BindingState",
    "BindingUpdate",
    "Direction",
    "InvalidBinding",
    "Mode",
    "ModeNotAllowed",
    "NoNumberAvailable",
    "NumberConflict",
    "PoolNumber",
    "RejectReason",
    "Rejection",
    "Route",
    "Tenant",
    "TenantNotFound",
    "TenantSuspended",
]


def __getattr__(name: str) -> Any:
    if name == "BindingService":
        from b2bua.bindings.service import BindingService

        return BindingService
    raise AttributeError(name)
