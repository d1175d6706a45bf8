"""The binding model (DESIGN section 3): tenants, pool numbers, bindings and claims.

These are plain records shared by the service and the store; they do no I/O.

A *claim* ``(number, participant)`` is what makes "(caller, number dialled) picks
exactly one binding" hold: every active binding claims, on each middle number it
uses, the participants who may dial that number, and no two live claims may share a
key. A claim outlives its binding by the cooling period so that a late callback
cannot reach a stranger. Claims per mode:

- AXB: ``(X, A)``, ``(X, B)``.
- AXYB: ``(X, A)``, ``(Y, B)``: A dials X and B dials Y; A dialling Y or B dialling X
  is answered "not a participant" unless another binding owns that key.
- GXB: ``(X, g)`` for every group member and ``(X, B)``.
- AXN: ``(X, *)``: anyone may dial X and reach A, so an AXN binding must be the
  only live binding on its X; ``*`` conflicts with every other claim on X, and
  every claim on X conflicts with ``*``. A (dialling X to reach the default callee)
  needs no separate claim because nobody else can hold X.

Times are wall-clock epoch seconds (floats): bindings expire at wall-clock instants
that must mean the same on every node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "ANY_CALLER",
    "Binding",
    "BindingFilter",
    "BindingSpec",
    "BindingState",
    "BindingUpdate",
    "Direction",
    "Mode",
    "PoolNumber",
    "Tenant",
    "claim_keys",
]

ANY_CALLER = "*"
"""The participant of an AXN claim: it stands for every caller."""


class Mode(StrEnum):
    """Binding modes of DESIGN section 3."""

    AXB = "AXB"
    AXYB = "AXYB"
    GXB = "GXB"
    AXN = "AXN"


class Direction(StrEnum):
    """Which way calls may go. A is the A side (group G in GXB); B is B (or N in AXN)."""

    BOTH = "both"
    A_TO_B = "a_to_b"
    B_TO_A = "b_to_a"


class BindingState(StrEnum):
    """Lifecycle state as stored; an ``active`` binding past ``expires_at`` is expired."""

    ACTIVE = "active"
    RELEASED = "released"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Tenant:
    """A business user. ``api_key_hash`` is a SHA-256 hex digest; the key is never stored."""

    id: str
    name: str
    api_key_hash: str
    webhook_url: str | None = None
    suspended: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True)
class PoolNumber:
    """A middle number of one tenant's pool."""

    number: str
    tenant_id: str
    retired: bool = False
    added_at: float = 0.0
    retired_at: float | None = None


@dataclass(frozen=True)
class Binding:
    """A binding as stored: never deleted, released and expired ones stay for tracing."""

    id: str
    tenant_id: str
    mode: Mode
    x: str
    expires_at: float
    a: str | None = None
    b: str | None = None
    group: tuple[str, ...] = ()
    y: str | None = None
    order_id: str | None = None
    direction: Direction = Direction.BOTH
    max_call_s: int | None = None
    label: str | None = None
    record: bool = False
    consent: bool = False
    state: BindingState = BindingState.ACTIVE
    version: int = 1
    created_at: float = 0.0
    updated_at: float = 0.0
    released_at: float | None = None
    created_by: str = ""
    updated_by: str = ""
    released_by: str | None = None

    def state_at(self, now: float) -> BindingState:
        """The effective state at wall-clock ``now`` (expired before any sweep)."""
        if self.state is BindingState.ACTIVE and self.expires_at <= now:
            return BindingState.EXPIRED
        return self.state

    def numbers(self) -> tuple[str, ...]:
        """The middle numbers this binding uses (X, and Y for AXYB)."""
        return (self.x, self.y) if self.y else (self.x,)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready mapping (enums as their values, group as a list)."""
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "mode": self.mode.value,
            "a": self.a,
            "b": self.b,
            "group": list(self.group),
            "x": self.x,
            "y": self.y,
            "expires_at": self.expires_at,
            "order_id": self.order_id,
            "direction": self.direction.value,
            "max_call_s": self.max_call_s,
            "label": self.label,
            "record": self.record,
            "consent": self.consent,
            "state": self.state.value,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "released_at": self.released_at,
            "created_by": self.created_by,
            "updated_by": self.updated_by,
            "released_by": self.released_by,
        }


def claim_keys(
    mode: Mode, x: str, y: str | None, a: str | None, b: str | None, group: tuple[str, ...]
) -> list[tuple[str, str]]:
    """The ``(number, participant)`` claims a binding holds while it is live."""
    if mode is Mode.AXB:
        return [(x, a or ""), (x, b or "")]
    if mode is Mode.AXYB:
        return [(x, a or ""), (y or "", b or "")]
    if mode is Mode.GXB:
        return [(x, member) for member in group] + [(x, b or "")]
    return [(x, ANY_CALLER)]


@dataclass(frozen=True)
class BindingSpec:
    """What a tenant asks for when creating a binding (API ``POST /v1/bindings``).

    Numbers may be in any accepted form; the service normalises them. ``x``/``y``
    left empty are allocated from the tenant's pool.
    """

    mode: Mode | str
    ttl_s: float
    a: str | None = None
    b: str | None = None
    group: tuple[str, ...] = ()
    x: str | None = None
    y: str | None = None
    order_id: str | None = None
    direction: Direction | str = Direction.BOTH
    max_call_s: int | None = None
    label: str | None = None
    record: bool = False
    consent: bool = False


_UNSET = object()


@dataclass(frozen=True)
class BindingUpdate:
    """Changes to a binding (API ``PATCH``); ``None`` leaves a field unchanged.

    ``ttl_s`` restarts the lifetime from now. To clear ``label`` or ``max_call_s``
    pass ``clear=("label",)``.
    """

    ttl_s: float | None = None
    b: str | None = None
    group: tuple[str, ...] | None = None
    direction: Direction | str | None = None
    max_call_s: int | None = None
    label: str | None = None
    clear: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class BindingFilter:
    """Search criteria for ``list_bindings``; all given criteria must hold.

    ``number`` matches any real participant (A, B or a group member); ``state`` is
    the effective state (``expired`` includes active bindings past their expiry).
    """

    tenant_id: str | None = None
    x: str | None = None
    number: str | None = None
    order_id: str | None = None
    state: BindingState | str | None = None
    limit: int = 100
    offset: int = 0
