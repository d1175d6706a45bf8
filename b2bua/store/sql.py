"""The store over SQL, shared by SQLite and PostgreSQL (only the driver differs).

Tenants, numbers, reads, the change sequence and the audit trail live here; the
binding writes (group commit, claim checks) are in :mod:`b2bua.store.sql_bindings`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from b2bua.bindings.model import Binding, BindingFilter, BindingState, PoolNumber, Tenant
from b2bua.store.base import AuditEntry, Change, ClaimRow, Driver, NewBinding, Store
from b2bua.store.claims import chunks
from b2bua.store.errors import ConflictError, NotFoundError
from b2bua.store.migrations import MIGRATIONS, split_statements
from b2bua.store.rows import (
    AUDIT_COLUMNS,
    BINDING_COLUMNS,
    NUMBER_COLUMNS,
    TENANT_COLUMNS,
    audit_to_row,
    group_to_text,
    row_to_audit,
    row_to_binding,
    row_to_number,
    row_to_tenant,
)

__all__ = ["SqlStore"]

from b2bua.store.sql_bindings import INSERT_AUDIT, BindingWrites
from b2bua.store.sql_cdr import SqlCdrStore
from b2bua.store.sql_policy import SqlPolicyStore


class SqlStore(BindingWrites, Store):
    """:class:`~b2bua.store.base.Store` over a :class:`~b2bua.store.base.Driver`."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self.dialect = driver.dialect
        self._queue: list[tuple[NewBinding, str, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.cdr = SqlCdrStore(driver)
        self.policy = SqlPolicyStore(driver)

    # -- lifecycle -------------------------------------------------------------
    async def migrate(self) -> None:
        """Apply the migrations this database has not seen yet."""
        async with self._driver.transaction() as tx:
            if self.dialect == "postgresql":
                # Two nodes starting together must not both apply a migration.
                await tx.execute("SELECT pg_advisory_xact_lock(7000700)")
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            rows = await tx.fetch("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            current = int(rows[0][0])
            for migration in MIGRATIONS:
                if migration.version <= current:
                    continue
                script = migration.postgres if self.dialect == "postgresql" else migration.sqlite
                for statement in split_statements(script):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_version (version, name, applied_at)"
                    " VALUES (?, ?, CURRENT_TIMESTAMP)",
                    (migration.version, migration.name),
                )

    async def schema_version(self) -> int:
        rows = await self._driver.fetch("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(rows[0][0])

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        await self._driver.close()

    # -- tenants ---------------------------------------------------------------
    async def insert_tenant(self, tenant: Tenant, *, actor: str, node: str) -> None:
        async with self._driver.transaction(small=True) as tx:
            await tx.execute(
                f"INSERT INTO tenants ({TENANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (tenant.id, tenant.name, tenant.api_key_hash, tenant.webhook_url,
                 int(tenant.suspended), float(tenant.created_at), float(tenant.updated_at)),
            )  # fmt: skip
            detail = {"name": tenant.name, "webhook_url": tenant.webhook_url}
            audit = AuditEntry(tenant.created_at, actor, "tenant.create", tenant.id, None, detail)
            await self._record(
                tx, now=tenant.created_at, node=node, kind="tenant", key=tenant.id, audit=audit
            )

    async def update_tenant(self, tenant: Tenant, *, actor: str, node: str) -> None:
        async with self._driver.transaction(small=True) as tx:
            changed = await tx.execute(
                "UPDATE tenants SET name = ?, webhook_url = ?, suspended = ?, updated_at = ?"
                " WHERE id = ?",
                (tenant.name, tenant.webhook_url, int(tenant.suspended),
                 float(tenant.updated_at), tenant.id),
            )  # fmt: skip
            if not changed:
                raise NotFoundError(f"tenant {tenant.id} not found")
            detail = {"suspended": tenant.suspended, "webhook_url": tenant.webhook_url}
            audit = AuditEntry(tenant.updated_at, actor, "tenant.update", tenant.id, None, detail)
            await self._record(
                tx, now=tenant.updated_at, node=node, kind="tenant", key=tenant.id, audit=audit
            )

    async def get_tenant(self, tenant_id: str) -> Tenant:
        rows = await self._driver.fetch(
            f"SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?", (tenant_id,)
        )
        if not rows:
            raise NotFoundError(f"tenant {tenant_id} not found")
        return row_to_tenant(rows[0])

    async def list_tenants(self) -> list[Tenant]:
        rows = await self._driver.fetch(f"SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id")
        return [row_to_tenant(r) for r in rows]

    async def find_tenant_by_key_hash(self, api_key_hash: str) -> Tenant | None:
        rows = await self._driver.fetch(
            f"SELECT {TENANT_COLUMNS} FROM tenants WHERE api_key_hash = ?", (api_key_hash,)
        )
        return row_to_tenant(rows[0]) if rows else None

    # -- numbers ---------------------------------------------------------------
    async def import_numbers(
        self, tenant_id: str, numbers: Sequence[str], *, now: float, actor: str, node: str
    ) -> int:
        wanted = sorted(set(numbers))
        lock = self._driver.lock_clause()
        async with self._driver.transaction() as tx:
            if not await tx.fetch(f"SELECT id FROM tenants WHERE id = ?{lock}", (tenant_id,)):
                raise NotFoundError(f"tenant {tenant_id} not found")
            existing: dict[str, str] = {}
            for part in chunks(wanted, self._driver.max_params):
                marks = ", ".join("?" * len(part))
                rows = await tx.fetch(
                    f"SELECT number, tenant_id FROM numbers WHERE number IN ({marks})", part
                )
                existing.update((r[0], r[1]) for r in rows)
            foreign = sorted(n for n, owner in existing.items() if owner != tenant_id)
            if foreign:
                # A number belongs to one tenant only: no sub-leasing, no sharing.
                raise ConflictError(
                    f"{len(foreign)} number(s) belong to another tenant, e.g. {foreign[0]}",
                    [(n, "") for n in foreign],
                )
            new = [n for n in wanted if n not in existing]
            await tx.executemany(
                f"INSERT INTO numbers ({NUMBER_COLUMNS}) VALUES (?, ?, 0, ?, NULL)",
                [(n, tenant_id, float(now)) for n in new],
            )
            audit = AuditEntry(now, actor, "numbers.import", tenant_id, None, {"added": len(new)})
            await self._record(tx, now=now, node=node, kind="numbers", key=tenant_id, audit=audit)
        return len(new)

    async def retire_numbers(
        self, tenant_id: str, numbers: Sequence[str], *, now: float, actor: str, node: str
    ) -> int:
        retired = 0
        async with self._driver.transaction() as tx:
            for part in chunks(sorted(set(numbers)), self._driver.max_params - 2):
                marks = ", ".join("?" * len(part))
                retired += await tx.execute(
                    "UPDATE numbers SET retired = 1, retired_at = ?"
                    f" WHERE tenant_id = ? AND retired = 0 AND number IN ({marks})",
                    [float(now), tenant_id, *part],
                )
            detail = {"retired": retired, "numbers": list(numbers)[:100]}
            audit = AuditEntry(now, actor, "numbers.retire", tenant_id, None, detail)
            await self._record(tx, now=now, node=node, kind="numbers", key=tenant_id, audit=audit)
        return retired

    async def list_numbers(self, tenant_id: str | None = None) -> list[PoolNumber]:
        if tenant_id is None:
            rows = await self._driver.fetch(
                f"SELECT {NUMBER_COLUMNS} FROM numbers ORDER BY tenant_id, number"
            )
        else:
            rows = await self._driver.fetch(
                f"SELECT {NUMBER_COLUMNS} FROM numbers WHERE tenant_id = ? ORDER BY number",
                (tenant_id,),
            )
        return [row_to_number(r) for r in rows]

    # -- bindings: reads -------------------------------------------------------
    async def get_binding(self, binding_id: str) -> Binding:
        rows = await self._driver.fetch(
            f"SELECT {BINDING_COLUMNS} FROM bindings WHERE id = ?", (binding_id,)
        )
        if not rows:
            raise NotFoundError(f"binding {binding_id} not found")
        return row_to_binding(rows[0])

    async def get_bindings(self, binding_ids: Sequence[str]) -> list[Binding]:
        found: list[Binding] = []
        for part in chunks(list(binding_ids), self._driver.max_params):
            marks = ", ".join("?" * len(part))
            rows = await self._driver.fetch(
                f"SELECT {BINDING_COLUMNS} FROM bindings WHERE id IN ({marks})", part
            )
            found += (row_to_binding(r) for r in rows)
        return found

    async def list_bindings(self, where: BindingFilter, *, now: float) -> list[Binding]:
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (("tenant_id", where.tenant_id), ("x", where.x),
                              ("order_id", where.order_id)):  # fmt: skip
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if where.number is not None:
            clauses.append("(a = ? OR b = ? OR y = ? OR grp LIKE ?)")
            args += [
                where.number,
                where.number,
                where.number,
                f"%{group_to_text((where.number,))}%",
            ]
        state = BindingState(where.state) if where.state is not None else None
        if state is BindingState.ACTIVE:
            clauses.append("state = 'active' AND expires_at > ?")
            args.append(float(now))
        elif state is BindingState.EXPIRED:
            clauses.append("(state = 'expired' OR (state = 'active' AND expires_at <= ?))")
            args.append(float(now))
        elif state is BindingState.RELEASED:
            clauses.append("state = 'released'")
        sql = f"SELECT {BINDING_COLUMNS} FROM bindings"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at DESC, id LIMIT ? OFFSET ?"
        rows = await self._driver.fetch(sql, [*args, where.limit, where.offset])
        return [row_to_binding(r) for r in rows]

    async def iter_live_bindings(self) -> AsyncIterator[Binding]:
        last = ""
        while True:
            rows = await self._driver.fetch(
                f"SELECT {BINDING_COLUMNS} FROM bindings WHERE state = 'active' AND id > ?"
                " ORDER BY id LIMIT 20000",
                (last,),
            )
            for r in rows:
                yield row_to_binding(r)
            if len(rows) < 20000:
                return
            last = rows[-1][0]

    async def live_claims(self, now: float) -> list[ClaimRow]:
        rows = await self._driver.fetch(
            "SELECT number, participant, binding_id, free_at FROM claims WHERE free_at > ?",
            (float(now),),
        )
        return [ClaimRow(r[0], r[1], r[2], r[3]) for r in rows]

    # -- change sequence, audit -------------------------------------------------
    async def changes_after(self, seq: int, also: Sequence[int] = ()) -> list[Change]:
        rows = list(
            await self._driver.fetch(
                "SELECT seq, node, kind, key FROM changes WHERE seq > ? ORDER BY seq LIMIT 20000",
                (seq,),
            )
        )
        if also:
            marks = ", ".join("?" * len(also))
            rows += await self._driver.fetch(
                f"SELECT seq, node, kind, key FROM changes WHERE seq IN ({marks})", list(also)
            )
        return sorted((Change(int(r[0]), r[1], r[2], r[3]) for r in rows), key=lambda c: c.seq)

    async def last_change_seq(self) -> int:
        rows = await self._driver.fetch("SELECT COALESCE(MAX(seq), 0) FROM changes")
        return int(rows[0][0])

    async def wait_for_changes(self, timeout: float) -> None:
        await self._driver.wait_for_notification(timeout)

    async def prune(self, *, now: float, changes_older_than_s: float = 600.0) -> None:
        async with self._driver.transaction() as tx:
            await tx.execute("DELETE FROM claims WHERE free_at <= ?", (float(now),))
            await tx.execute(
                "DELETE FROM changes WHERE at < ?", (float(now - changes_older_than_s),)
            )

    async def add_audit(self, entry: AuditEntry) -> None:
        async with self._driver.transaction() as tx:
            await tx.execute(INSERT_AUDIT, audit_to_row(entry))

    async def list_audit(
        self, *, binding_id: str | None = None, tenant_id: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        clauses, args = [], []
        if binding_id is not None:
            clauses.append("binding_id = ?")
            args.append(binding_id)
        if tenant_id is not None:
            clauses.append("tenant_id = ?")
            args.append(tenant_id)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = await self._driver.fetch(
            f"SELECT {AUDIT_COLUMNS} FROM audit{where} ORDER BY id LIMIT ?", [*args, limit]
        )
        return [row_to_audit(r) for r in rows]
