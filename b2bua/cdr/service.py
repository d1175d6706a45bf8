"""The call-record service: one object the wiring starts and stops.

``CdrService(store, settings, node_id)``:

- ``await start()`` registers the node, closes the records a previous run of this
  node left open (``interrupted``, ``ended_at`` = its last heartbeat) and those
  of any other node whose heartbeat is older than ``stale_after_s``, then starts
  the writer, the webhook worker and the housekeeping task (tenant webhook list,
  stale-node sweep, retention purge);
- ``sink`` is the :class:`~b2bua.calls.events.CallEventSink` for the call engine;
- ``await close()`` flushes the writer and stops every task.

``node_id`` must be stable across restarts of a node (its records are recovered
at once on restart) and unique among nodes sharing a store; the host name is the
default. A node restarted under another id has its records recovered by the
stale-node sweep of whichever node runs next.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable

import httpx

from b2bua.cdr.retention import purge_expired
from b2bua.cdr.settings import CdrSettings
from b2bua.cdr.webhooks import WebhookWorker
from b2bua.cdr.writer import CallRecordWriter
from b2bua.observability.logging import get_logger
from b2bua.store.base import Store
from b2bua.store.errors import StoreError
from b2bua.store.sql_cdr import SqlCdrStore

__all__ = ["CdrService", "default_node_id"]

log = get_logger(__name__)

# How often the list of tenants that have a webhook is re-read.
TENANT_REFRESH_S = 5.0


def default_node_id() -> str:
    """The host name: stable across restarts, distinct between machines."""
    return socket.gethostname() or "b2bua"


class CdrService:
    """Call records, crash recovery, webhooks and retention for one node."""

    def __init__(
        self,
        store: Store,
        settings: CdrSettings | None = None,
        node_id: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.store: SqlCdrStore = store.cdr
        self.settings = settings or CdrSettings()
        self.node_id = node_id or default_node_id()
        self._clock = clock
        self.webhooks = WebhookWorker(self.store, self.settings, clock=clock, client=http_client)
        self.writer = CallRecordWriter(
            self.store, self.settings, self.node_id, clock=clock, on_commit=self.webhooks.wake
        )
        self._housekeeping: asyncio.Task[None] | None = None

    @property
    def sink(self) -> CallRecordWriter:
        """Where the call engine emits its events."""
        return self.writer

    async def start(self) -> None:
        """Recover interrupted records, then start writing; raises StoreError if the store fails."""
        now = self._clock()
        self.writer.webhook_tenants = frozenset(await self.store.webhook_tenants())
        previous = await self.store.register_node(self.node_id, now=now)
        closed = await self.store.close_open_records(
            self.node_id, ended_at=previous if previous is not None else now, now=now,
            webhook_tenants=self.writer.webhook_tenants,
        )  # fmt: skip
        if closed:
            log.warning("cdr_interrupted_closed", node=self.node_id, records=closed,
                        last_heartbeat=previous)  # fmt: skip
        await self.recover_stale_nodes()
        self.writer.start()
        self.webhooks.start()
        self._housekeeping = asyncio.get_running_loop().create_task(
            self._housekeep(), name="cdr-housekeeping"
        )

    async def close(self) -> None:
        """Flush the records and stop every task."""
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
            self._housekeeping = None
        await self.writer.close()
        await self.webhooks.close()

    async def recover_stale_nodes(self) -> int:
        """Close the open records of every other node whose heartbeat is stale."""
        now = self._clock()
        before = now - self.settings.stale_after_s
        closed = 0
        for node, beat in await self.store.stale_nodes(before=before):
            if node == self.node_id:
                continue
            count = await self.store.close_open_records(
                node, ended_at=None, stale_before=before, now=now,
                webhook_tenants=self.writer.webhook_tenants,
            )  # fmt: skip
            if count:
                log.warning("cdr_interrupted_closed", node=node, records=count,
                            last_heartbeat=beat, by=self.node_id)  # fmt: skip
            closed += count
        if closed:
            self.webhooks.wake()
        return closed

    async def _housekeep(self) -> None:
        settings = self.settings
        # start() has just loaded the webhook tenants and closed stale nodes' records.
        started = time.monotonic()
        next_stale = started + settings.stale_check_interval_s
        next_tenants = started + TENANT_REFRESH_S
        next_purge = 0.0
        while True:
            now = time.monotonic()
            try:
                if now >= next_tenants:
                    tenants = await self.store.webhook_tenants()
                    self.writer.webhook_tenants = frozenset(tenants)
                    next_tenants = now + TENANT_REFRESH_S
                if now >= next_stale:
                    await self.recover_stale_nodes()
                    next_stale = now + settings.stale_check_interval_s
                if now >= next_purge:
                    next_purge = now + settings.purge_interval_s
                    purged = await purge_expired(self.store, settings, now=self._clock())
                    if purged:
                        log.info(
                            "cdr_purged", records=purged, retention_days=settings.retention_days
                        )
            except StoreError as exc:
                log.error("cdr_housekeeping_failed", error=str(exc))
            await asyncio.sleep(1.0)
