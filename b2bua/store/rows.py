"""Conversions between records and table rows, shared by both dialects."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from b2bua.bindings.model import (
    Binding,
    BindingState,
    Direction,
    Mode,
    PoolNumber,
    Tenant,
)
from b2bua.store.base import AuditEntry

BINDING_COLUMNS = (
    "id, tenant_id, mode, x, y, a, b, grp, order_id, direction, max_call_s, label,"
    " record, consent, state, expires_at, version, created_at, updated_at, released_at,"
    " created_by, updated_by, released_by"
)
BINDING_PLACEHOLDERS = ", ".join("?" * 23)
TENANT_COLUMNS = "id, name, api_key_hash, webhook_url, suspended, created_at, updated_at"
NUMBER_COLUMNS = "number, tenant_id, retired, added_at, retired_at"
AUDIT_COLUMNS = "at, actor, action, tenant_id, binding_id, detail"

_MODES = {m.value: m for m in Mode}
_DIRECTIONS = {d.value: d for d in Direction}
_STATES = {s.value: s for s in BindingState}


def group_to_text(group: tuple[str, ...]) -> str:
    """Group members as ``,m1,m2,`` so that ``LIKE '%,m,%'`` finds a member."""
    return "," + ",".join(group) + "," if group else ""


def binding_to_row(b: Binding) -> tuple[Any, ...]:
    """Column values in :data:`BINDING_COLUMNS` order."""
    return (
        b.id,
        b.tenant_id,
        b.mode.value,
        b.x,
        b.y,
        b.a,
        b.b,
        group_to_text(b.group),
        b.order_id,
        b.direction.value,
        b.max_call_s,
        b.label,
        int(b.record),
        int(b.consent),
        b.state.value,
        float(b.expires_at),
        b.version,
        float(b.created_at),
        float(b.updated_at),
        None if b.released_at is None else float(b.released_at),
        b.created_by,
        b.updated_by,
        b.released_by,
    )


def row_to_binding(r: Sequence[Any]) -> Binding:
    """Inverse of :func:`binding_to_row`."""
    grp = r[7]
    return Binding(
        id=r[0],
        tenant_id=r[1],
        mode=_MODES[r[2]],
        x=r[3],
        y=r[4],
        a=r[5],
        b=r[6],
        group=tuple(grp.strip(",").split(",")) if grp else (),
        order_id=r[8],
        direction=_DIRECTIONS[r[9]],
        max_call_s=r[10],
        label=r[11],
        record=bool(r[12]),
        consent=bool(r[13]),
        state=_STATES[r[14]],
        expires_at=r[15],
        version=r[16],
        created_at=r[17],
        updated_at=r[18],
        released_at=r[19],
        created_by=r[20],
        updated_by=r[21],
        released_by=r[22],
    )


def tenant_to_row(t: Tenant) -> tuple[Any, ...]:
    return (
        t.id,
        t.name,
        t.api_key_hash,
        t.webhook_url,
        int(t.suspended),
        float(t.created_at),
        float(t.updated_at),
    )


def row_to_tenant(r: Sequence[Any]) -> Tenant:
    return Tenant(
        id=r[0],
        name=r[1],
        api_key_hash=r[2],
        webhook_url=r[3],
        suspended=bool(r[4]),
        created_at=r[5],
        updated_at=r[6],
    )


def row_to_number(r: Sequence[Any]) -> PoolNumber:
    return PoolNumber(
        number=r[0], tenant_id=r[1], retired=bool(r[2]), added_at=r[3], retired_at=r[4]
    )


def audit_to_row(e: AuditEntry) -> tuple[Any, ...]:
    return (
        float(e.at),
        e.actor,
        e.action,
        e.tenant_id,
        e.binding_id,
        json.dumps(e.detail, separators=(",", ":")),
    )


def row_to_audit(r: Sequence[Any]) -> AuditEntry:
    detail = r[5]
    if isinstance(detail, str):
        detail = json.loads(detail)
    return AuditEntry(
        at=r[0], actor=r[1], action=r[2], tenant_id=r[3], binding_id=r[4], detail=detail
    )
