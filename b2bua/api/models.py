"""Request and response models of the provisioning API (DESIGN section 6).

Request models forbid unknown fields and use strict scalar types, so ``"ttl_s":
"60"`` or ``"record": 1`` is a 422 naming the field rather than a silent coercion.
Numbers are plain strings here: their form is checked by the numbering rules in the
routes, which know the configured plan and name the exact field (``group.1``).
Times leave the API as RFC 3339 UTC strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from b2bua.bindings.model import Binding, PoolNumber, Tenant

__all__ = [
    "BindingCreate",
    "BindingList",
    "BindingOut",
    "BindingPatch",
    "CallRecordList",
    "CallRecordOut",
    "DirectionName",
    "ModeName",
    "NumberList",
    "NumberOut",
    "NumbersAdded",
    "NumbersImport",
    "StateName",
    "TenantCreate",
    "TenantCreated",
    "TenantList",
    "TenantOut",
    "TenantPatch",
    "rfc3339",
]

ModeName = Literal["AXB", "AXYB", "GXB", "AXN"]
DirectionName = Literal["both", "a_to_b", "b_to_a"]
StateName = Literal["active", "released", "expired"]

# Generous bounds: they stop abuse (megabyte labels), the numbering rules do the rest.
NumberText = Annotated[StrictStr, Field(min_length=1, max_length=64, examples=["13800138000"])]
MiddleNumberText = Annotated[
    StrictStr, Field(min_length=1, max_length=64, examples=["700123456789012"])
]
OrderId = Annotated[StrictStr, Field(min_length=1, max_length=128)]
Label = Annotated[StrictStr, Field(max_length=64)]
WebhookUrl = Annotated[StrictStr, Field(max_length=2048, pattern=r"^https?://[^\s]+$")]
TenantName = Annotated[StrictStr, Field(min_length=1, max_length=200)]
TtlSeconds = Annotated[StrictInt, Field(ge=1, description="Lifetime in seconds (1..max_ttl_s)")]
MaxCallSeconds = Annotated[StrictInt, Field(ge=1, le=86_400)]


def rfc3339(epoch: float | None) -> datetime | None:
    """Epoch seconds -> aware UTC datetime (serialised as RFC 3339 ``...Z``)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC)


def rfc3339_text(epoch: float | None) -> str | None:
    """Epoch seconds -> RFC 3339 UTC text, exactly as pydantic writes a UTC datetime."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def binding_json(binding: Binding, now: float) -> dict[str, object]:
    """The JSON body of :class:`BindingOut` for ``binding``, built without pydantic.

    Binding creation is the API's hot path; answering with this mapping skips
    FastAPI's validate-then-serialise round trip of the response model (a test
    checks that both give the same body).
    """
    return {
        "id": binding.id,
        "tenant_id": binding.tenant_id,
        "mode": binding.mode.value,
        "a": binding.a,
        "b": binding.b,
        "group": list(binding.group),
        "x": binding.x,
        "y": binding.y,
        "order_id": binding.order_id,
        "direction": binding.direction.value,
        "max_call_s": binding.max_call_s,
        "label": binding.label,
        "record": binding.record,
        "consent": binding.consent,
        "state": binding.state_at(now).value,
        "version": binding.version,
        "expires_at": rfc3339_text(binding.expires_at),
        "created_at": rfc3339_text(binding.created_at),
        "updated_at": rfc3339_text(binding.updated_at),
        "released_at": rfc3339_text(binding.released_at),
        "created_by": binding.created_by,
        "updated_by": binding.updated_by,
        "released_by": binding.released_by,
    }


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- tenants -------------------------------------------------------------------
class TenantCreate(_Request):
    """``POST /v1/tenants``."""

    name: TenantName
    webhook_url: WebhookUrl | None = None


class TenantPatch(_Request):
    """``PATCH /v1/tenants/{id}``; ``webhook_url: null`` removes the webhook."""

    suspended: StrictBool
    webhook_url: WebhookUrl | None = None


class TenantOut(BaseModel):
    """A tenant as the API shows it (never its key or key hash)."""

    id: str
    name: str
    webhook_url: str | None
    suspended: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        return cls(
            id=tenant.id,
            name=tenant.name,
            webhook_url=tenant.webhook_url,
            suspended=tenant.suspended,
            created_at=rfc3339(tenant.created_at) or datetime.now(UTC),
            updated_at=rfc3339(tenant.updated_at) or datetime.now(UTC),
        )


class TenantCreated(TenantOut):
    """The answer to ``POST /v1/tenants``: the only time ``api_key`` is ever shown."""

    api_key: str


class TenantList(BaseModel):
    """``GET /v1/tenants`` (operator)."""

    items: list[TenantOut]


# -- numbers -------------------------------------------------------------------
class NumbersImport(_Request):
    """``POST /v1/numbers`` (operator): add middle numbers to a tenant's pool."""

    tenant_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    numbers: Annotated[list[MiddleNumberText], Field(min_length=1, max_length=100_000)]


class NumbersAdded(BaseModel):
    """How many of the imported numbers were new to the pool."""

    added: int


class NumberOut(BaseModel):
    """One middle number of a pool."""

    number: str
    tenant_id: str
    retired: bool
    added_at: datetime
    retired_at: datetime | None

    @classmethod
    def of(cls, number: PoolNumber) -> NumberOut:
        return cls(
            number=number.number,
            tenant_id=number.tenant_id,
            retired=number.retired,
            added_at=rfc3339(number.added_at) or datetime.now(UTC),
            retired_at=rfc3339(number.retired_at),
        )


class NumberList(BaseModel):
    """A page of pool numbers; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[NumberOut]
    next_cursor: str | None = None


# -- bindings ------------------------------------------------------------------
class BindingCreate(_Request):
    """``POST /v1/bindings``. Which of ``a``, ``b``, ``group`` are needed depends on ``mode``:
    AXB and AXYB need ``a`` and ``b``; GXB needs ``b`` and a non-empty ordered
    ``group``; AXN needs ``a`` (``b`` is the optional default callee). ``x``/``y``
    pick specific pool numbers; left out, the server allocates them.
    """

    mode: ModeName
    a: NumberText | None = None
    b: NumberText | None = None
    group: list[NumberText] | None = None
    x: MiddleNumberText | None = None
    y: MiddleNumberText | None = None
    ttl_s: TtlSeconds
    order_id: OrderId | None = None
    direction: DirectionName = "both"
    max_call_s: MaxCallSeconds | None = None
    label: Label | None = None
    record: StrictBool = False
    consent: StrictBool = False


class BindingPatch(_Request):
    """``PATCH /v1/bindings/{id}``: only the fields sent change.

    ``ttl_s`` restarts the lifetime from now; ``label: null`` and ``max_call_s: null``
    remove them.
    """

    # Left out means unchanged; only label and max_call_s may be null (removed). The
    # others default to None without admitting null, so the schema says what a
    # client may send; hence the ignores.
    ttl_s: TtlSeconds = None  # type: ignore[assignment]
    b: NumberText = None  # type: ignore[assignment]
    group: list[NumberText] = None  # type: ignore[assignment]
    direction: DirectionName = None  # type: ignore[assignment]
    max_call_s: MaxCallSeconds | None = None
    label: Label | None = None


class BindingOut(BaseModel):
    """A binding; ``state`` is the effective state at the time of the answer."""

    id: str
    tenant_id: str
    mode: ModeName
    a: str | None
    b: str | None
    group: list[str]
    x: str
    y: str | None
    order_id: str | None
    direction: DirectionName
    max_call_s: int | None
    label: str | None
    record: bool
    consent: bool
    state: StateName
    version: int
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    released_at: datetime | None
    created_by: str
    updated_by: str
    released_by: str | None


class BindingList(BaseModel):
    """A page of bindings, newest first; pass ``next_cursor`` as ``cursor``."""

    items: list[BindingOut]
    next_cursor: str | None = None


# -- call records --------------------------------------------------------------
class CallRecordOut(BaseModel):
    """A call record with the fields of DESIGN section 5."""

    id: str
    inbound_call_id: str
    outbound_call_id: str | None
    tenant_id: str | None
    binding_id: str | None
    order_id: str | None
    mode: str | None
    x: str
    caller: str
    callee: str | None
    direction: str | None
    inbound_trunk: str | None
    source_address: str | None
    outbound_trunk: str | None
    invite_at: datetime
    ringing_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    pdd_ms: int | None
    final_status: int | None
    end_reason: str | None
    released_by: str | None
    shown_number: str | None = Field(description="The number the callee was shown")
    rejection: str | None = Field(description="Why the call was refused, if it was")
    node: str | None = Field(description="The node whose hash chain holds the record")
    chain_seq: int | None
    hash: str | None
    prev_hash: str | None


class CallRecordList(BaseModel):
    """A page of call records, newest first; pass ``next_cursor`` as ``cursor``."""

    items: list[CallRecordOut]
    next_cursor: str | None = None
