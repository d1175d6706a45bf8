"""Block-list persistence of the SQL store (SQLite and PostgreSQL share this text).

Every write appends a ``blocklist`` entry (key ``scope|number``) to the shared change
sequence and an audit row in the same transaction, so other nodes' policy services
re-read exactly the entries that changed, and every change is traceable.

An automatic (fraud) entry never replaces a manual entry that still holds: the
operator's decision wins over the machine's until the operator removes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from b2bua.policy.model import BlockEntry, BlockSource
from b2bua.store.base import AuditEntry, Driver
from b2bua.store.rows import audit_to_row

__all__ = ["BLOCKLIST_CHANGE", "BLOCKLIST_POSTGRES", "BLOCKLIST_SQLITE", "SqlPolicyStore"]

BLOCKLIST_CHANGE = "blocklist"
"""``Change.kind`` of block-list writes."""

# Schema, applied by a numbered step of :mod:`b2bua.store.migrations`. ``scope`` is
# '' for the operator's global list, else the tenant id (no foreign key: the global
# scope has no tenant row).
_BLOCKLIST_DDL = """
CREATE TABLE blocklist (
    scope TEXT NOT NULL,
    number TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at {time} NOT NULL,
    created_by TEXT NOT NULL,
    expires_at {time},
    PRIMARY KEY (scope, number)
);
CREATE INDEX blocklist_number ON blocklist (number);
CREATE INDEX blocklist_expiry ON blocklist (expires_at)
"""
BLOCKLIST_SQLITE = _BLOCKLIST_DDL.format(time="REAL")
BLOCKLIST_POSTGRES = _BLOCKLIST_DDL.format(time="DOUBLE PRECISION")

_COLUMNS = "scope, number, source, reason, created_at, created_by, expires_at"
_UPSERT = (
    f"INSERT INTO blocklist ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (scope, number) DO UPDATE SET source = excluded.source,"
    " reason = excluded.reason, created_at = excluded.created_at,"
    " created_by = excluded.created_by, expires_at = excluded.expires_at"
    " WHERE excluded.source = 'manual' OR blocklist.source = 'auto'"
    " OR (blocklist.expires_at IS NOT NULL AND blocklist.expires_at <= ?)"
)
_INSERT_CHANGE = "INSERT INTO changes (at, node, kind, key) VALUES (?, ?, ?, ?)"
_INSERT_AUDIT = (
    "INSERT INTO audit (at, actor, action, tenant_id, binding_id, detail) VALUES (?, ?, ?, ?, ?, ?)"
)


def _row(entry: BlockEntry) -> tuple[Any, ...]:
    expires = None if entry.expires_at is None else float(entry.expires_at)
    return (
        entry.scope,
        entry.number,
        entry.source.value,
        entry.reason,
        float(entry.created_at),
        entry.created_by,
        expires,
    )


def _entry(r: Sequence[Any]) -> BlockEntry:
    return BlockEntry(
        scope=r[0],
        number=r[1],
        source=BlockSource(r[2]),
        reason=r[3],
        created_at=float(r[4]),
        created_by=r[5],
        expires_at=None if r[6] is None else float(r[6]),
    )


def _audit(entry: BlockEntry, action: str, actor: str, at: float) -> AuditEntry:
    detail = {
        "number": entry.number,
        "source": entry.source.value,
        "reason": entry.reason,
        "expires_at": entry.expires_at,
    }
    return AuditEntry(at, actor, action, entry.tenant_id, None, detail)


class SqlPolicyStore:
    """The ``blocklist`` table, reached as ``store.policy`` on either SQL store."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    async def put_block(self, entry: BlockEntry, *, actor: str, node: str, now: float) -> bool:
        """Add or replace a block entry; False if an automatic one lost to a manual one."""
        async with self._driver.transaction() as tx:
            written = await tx.execute(_UPSERT, (*_row(entry), float(now)))
            if written:
                await tx.execute(_INSERT_CHANGE, (float(now), node, BLOCKLIST_CHANGE, entry.key))
                await tx.execute(
                    _INSERT_AUDIT, audit_to_row(_audit(entry, "blocklist.add", actor, now))
                )
                await self._driver.notify(tx, node)
        return bool(written)

    async def delete_block(
        self, scope: str, number: str, *, actor: str, node: str, now: float
    ) -> BlockEntry | None:
        """Remove the entry of ``scope`` for ``number``; return it, or None if absent."""
        async with self._driver.transaction() as tx:
            rows = await tx.fetch(
                f"SELECT {_COLUMNS} FROM blocklist WHERE scope = ? AND number = ?"
                + self._driver.lock_clause(),
                (scope, number),
            )
            if not rows:
                return None
            entry = _entry(rows[0])
            await tx.execute(
                "DELETE FROM blocklist WHERE scope = ? AND number = ?", (scope, number)
            )
            await tx.execute(_INSERT_CHANGE, (float(now), node, BLOCKLIST_CHANGE, entry.key))
            await tx.execute(
                _INSERT_AUDIT, audit_to_row(_audit(entry, "blocklist.remove", actor, now))
            )
            await self._driver.notify(tx, node)
        return entry

    async def get_blocks(self, keys: Sequence[tuple[str, str]]) -> list[BlockEntry]:
        """The stored entries among ``(scope, number)`` keys (absent ones are left out)."""
        found: list[BlockEntry] = []
        # Small chunks: SQLite refuses an expression tree deeper than 1000 terms.
        per_chunk = 200
        for start in range(0, len(keys), per_chunk):
            part = keys[start : start + per_chunk]
            where = " OR ".join("(scope = ? AND number = ?)" for _ in part)
            args = [value for key in part for value in key]
            rows = await self._driver.fetch(f"SELECT {_COLUMNS} FROM blocklist WHERE {where}", args)
            found += [_entry(r) for r in rows]
        return found

    async def list_blocks(
        self,
        *,
        scope: str | None = None,
        number: str | None = None,
        now: float | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[BlockEntry]:
        """Entries of one scope (or all), optionally one number, ordered by scope and number.

        With ``now`` expired entries are left out.
        """
        clauses: list[str] = []
        args: list[Any] = []
        if scope is not None:
            clauses.append("scope = ?")
            args.append(scope)
        if number is not None:
            clauses.append("number = ?")
            args.append(number)
        if now is not None:
            clauses.append("(expires_at IS NULL OR expires_at > ?)")
            args.append(float(now))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        page = ""
        if limit is not None:
            page = " LIMIT ? OFFSET ?"
            args += [int(limit), int(offset)]
        rows = await self._driver.fetch(
            f"SELECT {_COLUMNS} FROM blocklist{where} ORDER BY scope, number{page}", args
        )
        return [_entry(r) for r in rows]

    async def purge_blocks(self, *, now: float) -> int:
        """Delete expired entries (every node ignores them already); returns how many."""
        async with self._driver.transaction() as tx:
            return await tx.execute(
                "DELETE FROM blocklist WHERE expires_at IS NOT NULL AND expires_at <= ?",
                (float(now),),
            )
