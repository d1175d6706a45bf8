"""Settings of the binding service (DESIGN section 3); built by ``b2bua.config``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BindingSettings"]


@dataclass(frozen=True)
class BindingSettings:
    """Lifecycle and allocation settings of bindings.

    - ``cooling_period_s``: after a binding on X ends (or loses a participant), that
      participant cannot be bound to X again for this long, so a late callback never
      reaches a stranger.
    - ``require_order_id``: 700 rules tie every binding to a real order.
    - ``require_consent``: refuse bindings whose ``consent`` flag is not set.
    - ``max_ttl_s``: upper bound of ``ttl_s`` (default 90 days).
    - ``max_group_size``: longest GXB hunt list.
    - ``allowed_modes``: modes any tenant may use; ``tenant_modes`` narrows it per
      tenant id (a tenant missing from the mapping gets ``allowed_modes``).
    - ``sweep_interval_s``: how often expired bindings are marked and their numbers
      freed; routing never depends on it (expiry is checked at lookup time).
    - ``follow_interval_s``: how often a node polls the shared change sequence when
      no notification arrived (PostgreSQL NOTIFY wakes it sooner).
    - ``allocation_attempts``: candidates tried when the store reports that another
      node took the chosen number first.
    """

    cooling_period_s: float = 120.0
    require_order_id: bool = True
    require_consent: bool = False
    max_ttl_s: int = 90 * 24 * 3600
    max_group_size: int = 20
    allowed_modes: frozenset[str] = frozenset({"AXB", "AXYB", "GXB", "AXN"})
    tenant_modes: dict[str, frozenset[str]] = field(default_factory=dict)
    sweep_interval_s: float = 5.0
    follow_interval_s: float = 0.25
    allocation_attempts: int = 8

    @classmethod
    def from_config(cls, section: Any) -> BindingSettings:
        """Settings from the ``[bindings]`` config section (any object with those
        attribute names; missing ones keep their defaults)."""
        if section is None:
            return cls()
        defaults = cls()
        return cls(
            cooling_period_s=float(getattr(section, "cooling_period_s", defaults.cooling_period_s)),
            require_order_id=bool(getattr(section, "require_order_id", defaults.require_order_id)),
            require_consent=bool(getattr(section, "require_consent", defaults.require_consent)),
            max_ttl_s=int(getattr(section, "max_ttl_s", defaults.max_ttl_s)),
            allowed_modes=frozenset(getattr(section, "allowed_modes", defaults.allowed_modes)),
        )

    def modes_for(self, tenant_id: str) -> frozenset[str]:
        """Modes ``tenant_id`` may create bindings in."""
        return self.tenant_modes.get(tenant_id, self.allowed_modes)
