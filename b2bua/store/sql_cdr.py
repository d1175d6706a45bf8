"""Call-record writes over SQL: group commits, the per-node hash chain, recovery, purge.

Every write transaction of a node first updates that node's ``cdr_nodes`` row
(its heartbeat) with ``RETURNING`` the chain head. On PostgreSQL that row lock is
what serialises appends to one node's chain, so nodes sharing a database never
wait on each other; on SQLite ``BEGIN IMMEDIATE`` serialises every writer anyway.
A record enters the chain when it is finalised (see :mod:`b2bua.cdr.record`).

Upserts never touch a record that is already chained (``WHERE hash IS NULL``): if
another node closed this node's records as interrupted while it was cut off from
the database, its late final write is skipped and reported instead of breaking
the chain.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from typing import Any

from b2bua.cdr.record import MUTABLE_COLUMNS, RECORD_COLUMNS, RecordDraft, chain_hash, interrupt
from b2bua.store.base import Driver, Tx
from b2bua.store.claims import chunks
from b2bua.store.sql_cdr_read import CdrReads
from b2bua.store.sql_webhooks import WebhookOutbox, outbox_rows

__all__ = ["SqlCdrStore"]

_COLUMNS = ", ".join(RECORD_COLUMNS)
_MARKS = ", ".join("?" * len(RECORD_COLUMNS))
# Only what may change: SQLite leaves alone the indexes on columns an UPDATE does not set.
_UPDATES = ", ".join(f"{c} = excluded.{c}" for c in MUTABLE_COLUMNS)
UPSERT_RECORD = (
    f"INSERT INTO call_records ({_COLUMNS}) VALUES ({_MARKS})"
    f" ON CONFLICT (id) DO UPDATE SET {_UPDATES} WHERE call_records.hash IS NULL"
)


# A group commit of up to this many records runs its statements without a thread
# hand-over each (see `Driver.transaction`): at 200 calls a second that is every
# commit, a few milliseconds of the event loop's time, and the SQLite thread no
# longer takes the GIL back from the loop once per row. Bigger batches (a backlog
# after a store outage) stay on the thread, where they cannot stall SIP.
SMALL_COMMIT_RECORDS = 200


class CdrWrites:
    """The write half of :class:`SqlCdrStore`."""

    _driver: Driver

    async def register_node(self, node: str, *, now: float) -> float | None:
        """Create or restart ``node``'s row; return its previous heartbeat (None if new)."""
        async with self._driver.transaction() as tx:
            rows = await tx.fetch(
                f"SELECT heartbeat_at FROM cdr_nodes WHERE node = ?{self._driver.lock_clause()}",
                (node,),
            )
            if rows:
                await tx.execute(
                    "UPDATE cdr_nodes SET started_at = ?, heartbeat_at = ? WHERE node = ?",
                    (float(now), float(now), node),
                )
                return float(rows[0][0])
            await tx.execute(
                "INSERT INTO cdr_nodes (node, started_at, heartbeat_at) VALUES (?, ?, ?)",
                (node, float(now), float(now)),
            )
            return None

    async def heartbeat(self, node: str, *, now: float) -> None:
        """Record that ``node``'s writer is alive at ``now``."""
        async with self._driver.transaction() as tx:
            await tx.execute(
                "UPDATE cdr_nodes SET heartbeat_at = ? WHERE node = ?", (float(now), node)
            )

    async def write_records(
        self,
        node: str,
        *,
        now: float,
        opens: Sequence[RecordDraft],
        finals: Sequence[RecordDraft],
        announce: Sequence[RecordDraft] = (),
        webhook_tenants: Set[str] = frozenset(),
    ) -> list[RecordDraft]:
        """One group commit of ``node``'s writer; also its heartbeat.

        ``opens`` are upserted as they are, ``finals`` are appended to the node's
        chain in the given order and upserted; ``announce`` lists the records whose
        start is to be pushed to their tenant's webhook. Returns the finals skipped
        because another node had already closed them. On an exception nothing was
        written and the drafts' chain fields are as they were.
        """
        small = len(opens) + len(finals) <= SMALL_COMMIT_RECORDS
        try:
            async with self._driver.transaction(small=small) as tx:
                head = await self._lock_head(tx, node, heartbeat=now)
                chained = await self._already_chained(tx, [d.id for d in finals])
                skipped = [d for d in finals if d.id in chained]
                fresh = [d for d in finals if d.id not in chained]
                self._append(tx, head, fresh)
                rows = [d.to_row() for d in opens if d.id not in chained]
                rows += [d.to_row() for d in fresh]
                await tx.executemany(UPSERT_RECORD, rows)
                if fresh:
                    await self._save_head(tx, node, fresh[-1])
                events = [("call.started", d) for d in announce if d.id not in chained]
                events += [("call.finished", d) for d in fresh]
                await tx.executemany(*outbox_rows(events, webhook_tenants, now=now))
        except BaseException:
            for draft in finals:
                draft.chain_seq = draft.prev_hash = draft.hash = None
            raise
        return skipped

    async def _lock_head(self, tx: Tx, node: str, *, heartbeat: float) -> tuple[int, str]:
        """Lock ``node``'s row and beat its heart; return its chain head."""
        rows = await tx.fetch(
            "UPDATE cdr_nodes SET heartbeat_at = ? WHERE node = ? RETURNING head_seq, head_hash",
            (float(heartbeat), node),
        )
        if not rows:
            # A node that never registered (a test, or its row was deleted) starts a chain.
            await tx.execute(
                "INSERT INTO cdr_nodes (node, started_at, heartbeat_at) VALUES (?, ?, ?)",
                (node, float(heartbeat), float(heartbeat)),
            )
            return 0, ""
        return int(rows[0][0]), str(rows[0][1])

    async def _already_chained(self, tx: Tx, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for part in chunks(list(ids), self._driver.max_params):
            marks = ", ".join("?" * len(part))
            rows = await tx.fetch(
                f"SELECT id FROM call_records WHERE id IN ({marks}) AND hash IS NOT NULL", part
            )
            found.update(r[0] for r in rows)
        return found

    @staticmethod
    def _append(tx: Tx, head: tuple[int, str], drafts: Sequence[RecordDraft]) -> None:
        seq, prev = head
        for draft in drafts:
            seq += 1
            draft.chain_seq, draft.prev_hash = seq, prev
            draft.hash = prev = chain_hash(draft)

    async def _save_head(self, tx: Tx, node: str, last: RecordDraft) -> None:
        await tx.execute(
            "UPDATE cdr_nodes SET head_seq = ?, head_hash = ? WHERE node = ?",
            (last.chain_seq, last.hash, node),
        )

    # -- crash recovery -----------------------------------------------------------
    async def stale_nodes(self, *, before: float) -> list[tuple[str, float]]:
        """Nodes whose heartbeat is older than ``before`` and that left records open."""
        rows = await self._driver.fetch(
            "SELECT node, heartbeat_at FROM cdr_nodes n WHERE heartbeat_at < ? AND EXISTS"
            " (SELECT 1 FROM call_records r WHERE r.node = n.node AND r.hash IS NULL)",
            (float(before),),
        )
        return [(str(r[0]), float(r[1])) for r in rows]

    async def close_open_records(
        self,
        node: str,
        *,
        ended_at: float | None,
        stale_before: float | None = None,
        now: float,
        webhook_tenants: Set[str] = frozenset(),
        batch: int = 500,
    ) -> int:
        """Close ``node``'s open records as ``interrupted``; return how many.

        ``ended_at`` is the node's last heartbeat (None: read it from its row).
        With ``stale_before``, a node whose heartbeat moved past it meanwhile is
        alive after all and left alone. Works in bounded batches.
        """
        closed = 0
        while True:
            async with self._driver.transaction() as tx:
                rows = await tx.fetch(
                    "SELECT heartbeat_at, head_seq, head_hash FROM cdr_nodes WHERE node = ?"
                    + self._driver.lock_clause(),
                    (node,),
                )
                if not rows:
                    return closed
                beat = float(rows[0][0])
                if stale_before is not None and beat >= stale_before:
                    return closed
                opened = await tx.fetch(
                    f"SELECT {_COLUMNS} FROM call_records WHERE node = ? AND hash IS NULL"
                    " ORDER BY invite_at, id LIMIT ?",
                    (node, batch),
                )
                drafts = [RecordDraft.from_row(r) for r in opened]
                for draft in drafts:
                    interrupt(draft, ended_at=beat if ended_at is None else ended_at)
                self._append(tx, (int(rows[0][1]), str(rows[0][2])), drafts)
                await tx.executemany(UPSERT_RECORD, [d.to_row() for d in drafts])
                if drafts:
                    await self._save_head(tx, node, drafts[-1])
                events = [("call.finished", d) for d in drafts]
                await tx.executemany(*outbox_rows(events, webhook_tenants, now=now))
            closed += len(drafts)
            if len(drafts) < batch:
                return closed

    # -- retention ---------------------------------------------------------------
    async def cdr_nodes(self) -> list[str]:
        """Every node that has a chain."""
        rows = await self._driver.fetch("SELECT node FROM cdr_nodes ORDER BY node")
        return [str(r[0]) for r in rows]

    async def purge_chain_prefix(self, node: str, *, before: float, limit: int) -> int:
        """Delete up to ``limit`` of ``node``'s oldest chained records begun before ``before``.

        Only a prefix of the chain goes (it stops at the first younger record), and
        the node's anchor moves to the last record deleted, so ``cdr verify`` still
        checks the rest from a known hash. Returns how many were deleted.
        """
        async with self._driver.transaction() as tx:
            rows = await tx.fetch(
                "SELECT anchor_seq FROM cdr_nodes WHERE node = ?" + self._driver.lock_clause(),
                (node,),
            )
            if not rows:
                return 0
            chain = await tx.fetch(
                "SELECT id, chain_seq, hash, invite_at FROM call_records"
                " WHERE node = ? AND chain_seq > ? ORDER BY chain_seq LIMIT ?",
                (node, int(rows[0][0]), limit),
            )
            doomed: list[Any] = []
            for row in chain:
                if float(row[3]) >= before:
                    break
                doomed.append(row)
            if not doomed:
                return 0
            for part in chunks([r[0] for r in doomed], self._driver.max_params):
                marks = ", ".join("?" * len(part))
                await tx.execute(f"DELETE FROM call_records WHERE id IN ({marks})", part)
            await tx.execute(
                "UPDATE cdr_nodes SET anchor_seq = ?, anchor_hash = ? WHERE node = ?",
                (int(doomed[-1][1]), str(doomed[-1][2]), node),
            )
            return len(doomed)


class SqlCdrStore(CdrReads, WebhookOutbox, CdrWrites):
    """Call records, chain heads and the webhook outbox over one store :class:`Driver`."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self.dialect = driver.dialect
