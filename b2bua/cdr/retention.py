"""Retention: records older than ``retention_days`` are deleted in bounded batches.

Deletion follows each node's hash chain from its oldest end and moves the chain's
anchor (see :meth:`~b2bua.store.sql_cdr.CdrWrites.purge_chain_prefix`), so what is
left still verifies. Export a day first (``b2bua cdr export --day ...
--per-tenant-dir DIR``) when records must be archived beyond the retention.
"""

from __future__ import annotations

import asyncio

from b2bua.cdr.settings import CdrSettings
from b2bua.store.sql_cdr import SqlCdrStore

__all__ = ["purge_expired"]


async def purge_expired(
    store: SqlCdrStore, settings: CdrSettings, *, now: float, max_batches: int | None = None
) -> int:
    """Delete records older than the retention, batch by batch; return how many.

    Each batch is one short transaction; the pause between batches leaves the
    database to the writers (SQLite has a single write lock).
    """
    cutoff = now - settings.retention_days * 86400.0
    purged = batches = 0
    for node in await store.cdr_nodes():
        while max_batches is None or batches < max_batches:
            deleted = await store.purge_chain_prefix(
                node, before=cutoff, limit=settings.purge_batch
            )
            batches += 1
            purged += deleted
            if deleted < settings.purge_batch:
                break
            await asyncio.sleep(settings.purge_pause_s)
    await store.purge_outbox(before=cutoff)
    return purged
