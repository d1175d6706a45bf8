"""Call-record tests over both dialects: SQLite always, PostgreSQL with B2BUA_TEST_PG_DSN.

Events are synthetic (no SIP): :func:`call_events` builds the events the engine
would emit for one attempt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from b2bua.bindings.model import Tenant
from b2bua.calls.events import (
    CallAnswered,
    CallAttempted,
    CallEnded,
    CallEvent,
    CallForwarded,
    CallRinging,
    EndReason,
    ReleasedBy,
)
from b2bua.sip.address import Address
from b2bua.store import Store, open_store

X = "700123456789012"
A = "13800000001"
B = "13900000002"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An opened, migrated store."""
    opened = await open_store(store_url)
    yield opened
    await opened.close()


async def add_tenant(store: Store, tenant_id: str = "t1", webhook_url: str | None = None) -> Tenant:
    """Insert a tenant directly."""
    tenant = Tenant(tenant_id, tenant_id, f"hash-{tenant_id}", webhook_url, False, 0.0, 0.0)
    await store.insert_tenant(tenant, actor="test", node="test")
    return tenant


def call_events(
    call_id: str,
    *,
    at: float,
    tenant_id: str | None = "t1",
    ring_after: float | None = 0.5,
    answer_after: float | None = 1.0,
    end_after: float = 31.0,
    status: int = 200,
    reason: EndReason = EndReason.NORMAL,
    released_by: ReleasedBy = ReleasedBy.CALLER,
    caller: str = A,
    callee: str = B,
    x: str = X,
) -> list[CallEvent]:
    """The engine's events for one answered (or refused) attempt starting at ``at``."""
    events: list[CallEvent] = [
        CallAttempted(
            call_id=call_id, at=at, inbound_call_id=f"in-{call_id}",
            source=Address("UDP", "192.0.2.1", 5060), inbound_trunk="carrier-a",
            caller=caller, dialled=x, binding_id=f"bind-{tenant_id}", tenant_id=tenant_id,
            order_id="order-1", mode="AXB", direction="both", middle_number=x,
        ),
        CallForwarded(call_id, at + 0.01, f"out-{call_id}", "carrier-b", callee, x),
    ]  # fmt: skip
    if ring_after is not None:
        events.append(CallRinging(call_id, at + ring_after))
    if answer_after is not None:
        events.append(CallAnswered(call_id, at + answer_after))
    events.append(CallEnded(call_id, at + end_after, status, reason, released_by))
    return events


def rejected_events(call_id: str, *, at: float, dialled: str = X) -> list[CallEvent]:
    """A refused attempt: no binding, 404 at once."""
    return [
        CallAttempted(
            call_id=call_id, at=at, inbound_call_id=f"in-{call_id}",
            source=Address("UDP", "192.0.2.1", 5060), inbound_trunk="carrier-a",
            caller=A, dialled=dialled, binding_id=None, tenant_id=None, order_id=None,
            mode=None, direction=None, middle_number=None, rejection="unknown_number",
        ),
        CallEnded(call_id, at, 404, EndReason.REJECTED, ReleasedBy.SERVER),
    ]  # fmt: skip


async def raw_sql(store_url: str, sql: str, *args: object) -> None:
    """Run one statement on a connection of its own: a change behind the server's back."""
    if store_url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(store_url[len("sqlite:///") :])
        try:
            conn.execute(sql, args)
            conn.commit()
        finally:
            conn.close()
        return
    dsn, _, schema = store_url.partition("?schema=")
    pg = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        numbered = sql
        for index in range(1, sql.count("?") + 1):
            numbered = numbered.replace("?", f"${index}", 1)
        await pg.execute(numbered, *args)
    finally:
        await pg.close()
