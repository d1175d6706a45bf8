"""The webhook outbox: call events waiting to be POSTed to their tenant.

Rows are inserted in the same transaction as the record write they announce (a
transactional outbox), so an event exists exactly when its record does, and
deliveries survive restarts. A delivery worker *claims* due rows by pushing their
``next_at`` one lease into the future (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
workers on several nodes share the work), then deletes a row once delivered or
schedules its next attempt.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence, Set
from dataclasses import dataclass
from typing import Any

from b2bua.cdr.record import RecordDraft, record_dict
from b2bua.store.base import Driver
from b2bua.store.errors import NotFoundError

__all__ = ["OutboxItem", "WebhookOutbox", "outbox_rows", "webhook_payload"]

INSERT_OUTBOX = (
    "INSERT INTO webhook_outbox (event_key, tenant_id, kind, payload, created_at, next_at)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_key) DO NOTHING"
)


def webhook_payload(kind: str, draft: RecordDraft) -> str:
    """The JSON body of one event: ``{"event": kind, "call": {...record...}}``."""
    body = {"event": kind, "call": record_dict(draft)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def outbox_rows(
    events: Sequence[tuple[str, RecordDraft]], webhook_tenants: Set[str], *, now: float
) -> tuple[str, list[tuple[Any, ...]]]:
    """The outbox insert and its rows for the events of tenants that have a webhook.

    The idempotency key is ``<record id>:<kind>``: a retried group commit or a
    retried delivery carries the same key, so the receiver can drop duplicates.
    """
    rows = [
        (f"{d.id}:{kind}", d.tenant_id, kind, webhook_payload(kind, d), float(now), float(now))
        for kind, d in events
        if d.tenant_id is not None and d.tenant_id in webhook_tenants
    ]
    return INSERT_OUTBOX, rows


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A claimed delivery: where to POST what, and how often it was tried before."""

    id: int
    event_key: str
    tenant_id: str
    kind: str
    payload: str
    attempts: int
    url: str | None
    secret: str | None


class WebhookOutbox:
    """The outbox half of :class:`~b2bua.store.sql_cdr.SqlCdrStore`."""

    _driver: Driver

    async def webhook_tenants(self) -> set[str]:
        """Ids of the tenants that have a webhook URL."""
        rows = await self._driver.fetch(
            "SELECT id FROM tenants WHERE webhook_url IS NOT NULL AND webhook_url <> ''"
        )
        return {str(r[0]) for r in rows}

    async def claim_webhooks(self, *, now: float, lease_s: float, limit: int) -> list[OutboxItem]:
        """Take up to ``limit`` due deliveries for ``lease_s`` seconds, oldest due first."""
        lock = self._driver.lock_clause(skip_locked=True)
        async with self._driver.transaction() as tx:
            rows = await tx.fetch(
                "UPDATE webhook_outbox SET next_at = ? WHERE id IN (SELECT id FROM webhook_outbox"
                f" WHERE failed_at IS NULL AND next_at <= ? ORDER BY next_at LIMIT ?{lock})"
                " RETURNING id, event_key, tenant_id, kind, payload, attempts",
                (float(now + lease_s), float(now), limit),
            )
            if not rows:
                return []
            tenant_ids = sorted({str(r[2]) for r in rows})
            marks = ", ".join("?" * len(tenant_ids))
            tenants = await tx.fetch(
                f"SELECT id, webhook_url, webhook_secret FROM tenants WHERE id IN ({marks})",
                tenant_ids,
            )
        found = {str(t[0]): (t[1], t[2]) for t in tenants}
        items = []
        for r in sorted(rows, key=lambda row: int(row[0])):
            url, secret = found.get(str(r[2]), (None, None))
            items.append(OutboxItem(int(r[0]), r[1], r[2], r[3], r[4], int(r[5]), url, secret))
        return items

    async def webhook_done(self, item_id: int) -> None:
        """A delivery succeeded (or is moot): forget it."""
        async with self._driver.transaction() as tx:
            await tx.execute("DELETE FROM webhook_outbox WHERE id = ?", (item_id,))

    async def webhook_retry(
        self, item_id: int, *, attempts: int, next_at: float | None, error: str, now: float
    ) -> None:
        """Record a failed attempt; ``next_at=None`` gives up (the row stays, ``failed_at`` set)."""
        async with self._driver.transaction() as tx:
            if next_at is None:
                await tx.execute(
                    "UPDATE webhook_outbox SET attempts = ?, last_error = ?, failed_at = ?"
                    " WHERE id = ?",
                    (attempts, error[:500], float(now), item_id),
                )
            else:
                await tx.execute(
                    "UPDATE webhook_outbox SET attempts = ?, last_error = ?, next_at = ?"
                    " WHERE id = ?",
                    (attempts, error[:500], float(next_at), item_id),
                )

    async def webhook_secret(self, tenant_id: str, *, rotate: bool = False) -> str:
        """The tenant's signing secret, generated (or replaced with ``rotate``) as needed."""
        async with self._driver.transaction() as tx:
            rows = await tx.fetch(
                "SELECT webhook_secret FROM tenants WHERE id = ?" + self._driver.lock_clause(),
                (tenant_id,),
            )
            if not rows:
                raise NotFoundError(f"tenant {tenant_id} not found")
            if rows[0][0] and not rotate:
                return str(rows[0][0])
            secret = secrets.token_hex(32)
            await tx.execute(
                "UPDATE tenants SET webhook_secret = ? WHERE id = ?", (secret, tenant_id)
            )
            return secret

    async def outbox_stats(self) -> tuple[int, int]:
        """(pending, failed) deliveries."""
        rows = await self._driver.fetch(
            "SELECT COALESCE(SUM(CASE WHEN failed_at IS NULL THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN failed_at IS NULL THEN 0 ELSE 1 END), 0) FROM webhook_outbox"
        )
        return int(rows[0][0]), int(rows[0][1])

    async def purge_outbox(self, *, before: float) -> int:
        """Drop given-up deliveries created before ``before``."""
        async with self._driver.transaction() as tx:
            return await tx.execute(
                "DELETE FROM webhook_outbox WHERE failed_at IS NOT NULL AND created_at < ?",
                (float(before),),
            )
