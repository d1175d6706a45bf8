"""Call-record reads over SQL: API queries, streaming export and the chain walk.

Every query is an ordered range of one index ending in ``(invite_at, id)``, with
keyset pagination on that pair written as a row-value comparison (both SQLite and
PostgreSQL turn it into an index bound), so a page costs the same at the start and
deep into ten million rows, and an export streams in constant memory.

"Caller or callee is N" is a ``UNION ALL`` of two ordered, limited index ranges
instead of an ``OR``: with the ``OR`` the planners fall back to walking the time
index and filtering, which is slow for a number with few calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from b2bua.cdr.record import RECORD_COLUMNS, RecordDraft
from b2bua.store.base import Driver

__all__ = ["ALL_TENANTS", "CdrReads", "ChainState", "RecordFilter"]

_COLUMNS = ", ".join(RECORD_COLUMNS)
ALL_TENANTS = "*"
"""Export every tenant's records (``tenant=None`` means records with no tenant)."""


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """What ``GET /v1/calls`` may ask for; ``since <= invite_at < until``."""

    tenant_id: str | None = None
    x: str | None = None
    number: str | None = None
    binding_id: str | None = None
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True, slots=True)
class ChainState:
    """A node's chain head (last record chained) and anchor (last record purged)."""

    node: str
    head_seq: int
    head_hash: str
    anchor_seq: int
    anchor_hash: str


def _conditions(where: RecordFilter, before: tuple[float, str] | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (("tenant_id", where.tenant_id), ("x", where.x),
                          ("binding_id", where.binding_id)):  # fmt: skip
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if where.since is not None:
        clauses.append("invite_at >= ?")
        args.append(float(where.since))
    if where.until is not None:
        clauses.append("invite_at < ?")
        args.append(float(where.until))
    if before is not None:
        clauses.append("(invite_at, id) < (?, ?)")
        args += [float(before[0]), before[1]]
    return "".join(f" AND {c}" for c in clauses), args


class CdrReads:
    """The read half of :class:`~b2bua.store.sql_cdr.SqlCdrStore`."""

    _driver: Driver

    async def get_record(self, record_id: str) -> RecordDraft | None:
        """The record ``record_id``, or None."""
        rows = await self._driver.fetch(
            f"SELECT {_COLUMNS} FROM call_records WHERE id = ?", (record_id,)
        )
        return RecordDraft.from_row(rows[0]) if rows else None

    async def list_records(
        self, where: RecordFilter, *, limit: int, before: tuple[float, str] | None = None
    ) -> list[RecordDraft]:
        """Up to ``limit`` records, newest first, older than the keyset ``before``."""
        extra, args = _conditions(where, before)
        order = " ORDER BY invite_at DESC, id DESC LIMIT ?"
        if where.number is None:
            sql = f"SELECT {_COLUMNS} FROM call_records WHERE 1 = 1{extra}{order}"
            rows = await self._driver.fetch(sql, [*args, limit])
        else:
            sql = (
                f"SELECT {_COLUMNS} FROM ("
                f"SELECT * FROM (SELECT {_COLUMNS} FROM call_records"
                f" WHERE caller = ?{extra}{order}) AS by_caller"
                " UNION ALL "
                f"SELECT * FROM (SELECT {_COLUMNS} FROM call_records"
                f" WHERE callee = ? AND caller <> ?{extra}{order}) AS by_callee"
                f") AS both_sides{order}"
            )
            n = where.number
            rows = await self._driver.fetch(sql, [n, *args, limit, n, n, *args, limit, limit])
        return [RecordDraft.from_row(r) for r in rows]

    async def iter_records(
        self,
        *,
        since: float | None,
        until: float | None,
        tenant: str | None = ALL_TENANTS,
        page: int = 5000,
    ) -> AsyncIterator[RecordDraft]:
        """Records with ``since <= invite_at < until`` in time order, a page at a time."""
        clauses = ["invite_at < ?"]
        base: list[Any] = [float(until if until is not None else 1e18)]
        if tenant is None:
            clauses.append("tenant_id IS NULL")
        elif tenant != ALL_TENANTS:
            clauses.append("tenant_id = ?")
            base.append(tenant)
        where = " AND ".join(clauses)
        # The first page starts at `since`; later ones after the last row seen. Either
        # bound replaces the other so that it is the index range, not a filter.
        after: tuple[float, str] = (float(since or 0.0), "")
        keyset = "(invite_at, id) >= (?, ?)"
        while True:
            rows = await self._driver.fetch(
                f"SELECT {_COLUMNS} FROM call_records WHERE {keyset} AND {where}"
                " ORDER BY invite_at, id LIMIT ?",
                [after[0], after[1], *base, page],
            )
            for row in rows:
                yield RecordDraft.from_row(row)
            if len(rows) < page:
                return
            last = RecordDraft.from_row(rows[-1])
            after, keyset = (last.invite_at, last.id), "(invite_at, id) > (?, ?)"

    async def _distinct(self, column: str) -> list[str]:
        # A loose index scan: one index probe per distinct value, not a full scan.
        rows = await self._driver.fetch(
            f"WITH RECURSIVE v(val) AS (SELECT MIN({column}) FROM call_records"
            f" UNION ALL SELECT (SELECT MIN({column}) FROM call_records WHERE {column} > v.val)"
            " FROM v WHERE v.val IS NOT NULL) SELECT val FROM v WHERE val IS NOT NULL"
        )
        return [str(r[0]) for r in rows]

    async def record_tenants(self) -> list[str]:
        """Every tenant id that has records."""
        return await self._distinct("tenant_id")

    async def chain_nodes(self) -> list[str]:
        """Every node that has a chain row or records (a deleted chain row still shows)."""
        rows = await self._driver.fetch("SELECT node FROM cdr_nodes")
        return sorted({str(r[0]) for r in rows} | set(await self._distinct("node")))

    async def chain_state(self, node: str) -> ChainState | None:
        """``node``'s chain head and anchor, or None if it has no row."""
        rows = await self._driver.fetch(
            "SELECT head_seq, head_hash, anchor_seq, anchor_hash FROM cdr_nodes WHERE node = ?",
            (node,),
        )
        if not rows:
            return None
        r = rows[0]
        return ChainState(node, int(r[0]), str(r[1]), int(r[2]), str(r[3]))

    async def iter_chain(
        self, node: str, *, after_seq: int, page: int = 5000
    ) -> AsyncIterator[RecordDraft]:
        """``node``'s chained records with ``chain_seq > after_seq``, in chain order."""
        seq = after_seq
        while True:
            rows = await self._driver.fetch(
                f"SELECT {_COLUMNS} FROM call_records WHERE node = ? AND chain_seq > ?"
                " ORDER BY chain_seq LIMIT ?",
                (node, seq, page),
            )
            for row in rows:
                draft = RecordDraft.from_row(row)
                seq = draft.chain_seq or seq
                yield draft
            if len(rows) < page:
                return

    async def count_open(self, node: str | None = None) -> int:
        """Records not yet finalised (of ``node``, or of every node)."""
        if node is None:
            rows = await self._driver.fetch("SELECT COUNT(*) FROM call_records WHERE hash IS NULL")
        else:
            rows = await self._driver.fetch(
                "SELECT COUNT(*) FROM call_records WHERE node = ? AND hash IS NULL", (node,)
            )
        return int(rows[0][0])
