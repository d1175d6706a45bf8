"""Binding writes of the SQL store: group-committed creation, updates and expiry.

Concurrent :meth:`BindingWrites.create_binding` calls queue up; one writer task puts
everything queued into one transaction and answers each caller only after that
transaction committed. That is how one process reaches thousands of durable
creations a second without one fsync each. Inside the transaction the numbers
involved are locked and every claim is re-checked (:mod:`b2bua.store.claims`), so
conflicting bindings can never both commit, whichever node wrote them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from b2bua.bindings.model import Binding, BindingState
from b2bua.store.base import AuditEntry, ClaimRow, Driver, NewBinding, Tx
from b2bua.store.claims import LiveClaims, chunks
from b2bua.store.errors import ConflictError, NotFoundError, RetryableError, StoreError
from b2bua.store.rows import (
    AUDIT_COLUMNS,
    BINDING_COLUMNS,
    BINDING_PLACEHOLDERS,
    audit_to_row,
    binding_to_row,
    row_to_binding,
)

__all__ = ["BindingWrites"]

UPSERT_CLAIM = (
    "INSERT INTO claims (number, participant, binding_id, free_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (number, participant) DO UPDATE"
    " SET binding_id = excluded.binding_id, free_at = excluded.free_at"
    # Never take over a key another binding still holds (checked before, kept here
    # so that a release of a long-expired binding cannot steal a reused key).
    " WHERE claims.binding_id = excluded.binding_id OR claims.free_at <= ?"
)
INSERT_CHANGE = "INSERT INTO changes (at, node, kind, key) VALUES (?, ?, ?, ?)"
INSERT_AUDIT = f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
# On SQLite a batch's statements run on the event loop (some 30 us a binding), so a
# backlog is committed in slices that never hold SIP up for more than a few ms.
_BATCH_MAX = 256
_RETRIES = 5


class BindingWrites:
    """Mixin of :class:`~b2bua.store.sql.SqlStore`: everything that writes bindings."""

    _driver: Driver
    _queue: list[tuple[NewBinding, str, asyncio.Future[None]]]
    _writer: asyncio.Task[None] | None

    async def _record(
        self, tx: Tx, *, now: float, node: str, kind: str, key: str, audit: AuditEntry
    ) -> None:
        """Append to the change sequence and the audit trail inside ``tx``."""
        await tx.execute(INSERT_CHANGE, (float(now), node, kind, key))
        await tx.execute(INSERT_AUDIT, audit_to_row(audit))
        await self._driver.notify(tx, node)

    # -- bindings: group commit -------------------------------------------------
    async def create_binding(self, new: NewBinding, *, actor: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((new, actor, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain_queue(), name="store-group-commit")
        await future

    async def _drain_queue(self) -> None:
        """Commit queued creations, one transaction per batch, until the queue is empty."""
        while self._queue:
            batch, self._queue = self._queue[:_BATCH_MAX], self._queue[_BATCH_MAX:]
            outcome: list[BaseException | None] | BaseException
            for attempt in range(_RETRIES):
                try:
                    outcome = await self._insert_batch([(n, a) for n, a, _ in batch])
                    break
                except RetryableError as exc:  # deadlock or serialisation failure
                    outcome = exc
                    await asyncio.sleep(0.01 * (attempt + 1))
                except StoreError as exc:
                    outcome = exc
                    break
                except Exception as exc:  # a driver bug must not leave callers hanging
                    outcome = StoreError(f"binding batch failed: {exc!r}")
                    outcome.__cause__ = exc
                    break
            for index, (_, _, future) in enumerate(batch):
                if future.done():
                    continue  # the caller gave up (cancelled); the row stands
                result = outcome if isinstance(outcome, BaseException) else outcome[index]
                if result is None:
                    future.set_result(None)
                else:
                    future.set_exception(result)

    async def _lock_numbers(self, tx: Tx, numbers: Sequence[str]) -> dict[str, tuple[str, bool]]:
        """Lock pool rows in a fixed order (no deadlock between nodes); owner and retired."""
        owners: dict[str, tuple[str, bool]] = {}
        lock = self._driver.lock_clause()
        for part in chunks(sorted(set(numbers)), self._driver.max_params):
            marks = ", ".join("?" * len(part))
            rows = await tx.fetch(
                f"SELECT number, tenant_id, retired FROM numbers WHERE number IN ({marks})"
                f" ORDER BY number{lock}",
                part,
            )
            owners.update((r[0], (r[1], bool(r[2]))) for r in rows)
        return owners

    @staticmethod
    def _pool_problem(binding: Binding, owners: dict[str, tuple[str, bool]]) -> StoreError | None:
        for number in binding.numbers():
            owner = owners.get(number)
            if owner is None or owner[0] != binding.tenant_id:
                return ConflictError(f"{number} is not in the tenant's pool", [(number, "")])
            if owner[1]:
                return ConflictError(f"{number} is retired", [(number, "")])
        return None

    async def _insert_batch(
        self, batch: Sequence[tuple[NewBinding, str]]
    ) -> list[BaseException | None]:
        now = max(new.now for new, _ in batch)
        results: list[BaseException | None] = []
        accepted: list[tuple[NewBinding, str]] = []
        async with self._driver.transaction(small=True) as tx:
            owners = await self._lock_numbers(
                tx, [n for new, _ in batch for n in new.binding.numbers()]
            )
            live = await LiveClaims.load(
                tx, (c for new, _ in batch for c in new.claims), now, self._driver.max_params
            )
            for new, actor in batch:
                problem = self._pool_problem(new.binding, owners)
                clashing = live.clashes(new.claims, new.binding.id)
                if problem is None and clashing:
                    problem = ConflictError("number already claimed", clashing)
                results.append(problem)
                if problem is None:
                    live.take(new.claims, new.binding.id)
                    accepted.append((new, actor))
            if accepted:
                await self._write_accepted(tx, accepted, now)
        return results

    async def _write_accepted(
        self, tx: Tx, accepted: Sequence[tuple[NewBinding, str]], now: float
    ) -> None:
        await tx.executemany(
            f"INSERT INTO bindings ({BINDING_COLUMNS}) VALUES ({BINDING_PLACEHOLDERS})",
            [binding_to_row(new.binding) for new, _ in accepted],
        )
        await tx.executemany(
            UPSERT_CLAIM,
            [
                (c.number, c.participant, c.binding_id, float(c.free_at), float(now))
                for new, _ in accepted
                for c in new.claims
            ],
        )
        await tx.executemany(
            INSERT_CHANGE,
            [(float(new.now), new.node, "binding", new.binding.id) for new, _ in accepted],
        )
        await tx.executemany(
            INSERT_AUDIT,
            [
                audit_to_row(
                    AuditEntry(
                        new.now,
                        actor,
                        "binding.create",
                        new.binding.tenant_id,
                        new.binding.id,
                        {
                            "mode": new.binding.mode.value,
                            "x": new.binding.x,
                            "y": new.binding.y,
                            "order_id": new.binding.order_id,
                            "expires_at": new.binding.expires_at,
                        },
                    )
                )
                for new, actor in accepted
            ],
        )
        await self._driver.notify(tx, accepted[0][0].node)

    # -- bindings: changes -----------------------------------------------------
    async def update_binding(
        self,
        binding: Binding,
        claims: Sequence[ClaimRow],
        *,
        check: Sequence[ClaimRow] = (),
        expected_version: int,
        now: float,
        actor: str,
        action: str,
        node: str,
    ) -> None:
        lock = self._driver.lock_clause()
        async with self._driver.transaction(small=True) as tx:
            if check:
                await self._lock_numbers(tx, [c.number for c in check])
            rows = await tx.fetch(f"SELECT version FROM bindings WHERE id = ?{lock}", (binding.id,))
            if not rows:
                raise NotFoundError(f"binding {binding.id} not found")
            if int(rows[0][0]) != expected_version:
                raise ConflictError(f"binding {binding.id} was changed concurrently")
            if check:
                live = await LiveClaims.load(tx, check, now, self._driver.max_params)
                clashing = live.clashes(check, binding.id)
                if clashing:
                    raise ConflictError("number already claimed", clashing)
            row = binding_to_row(binding)
            assignments = ", ".join(f"{c.strip()} = ?" for c in BINDING_COLUMNS.split(",")[1:])
            await tx.execute(f"UPDATE bindings SET {assignments} WHERE id = ?", (*row[1:], row[0]))
            await tx.executemany(
                UPSERT_CLAIM,
                [(c.number, c.participant, c.binding_id, c.free_at, float(now)) for c in claims],
            )
            detail: dict[str, Any] = {"version": binding.version, "state": binding.state.value}
            audit = AuditEntry(now, actor, action, binding.tenant_id, binding.id, detail)
            await self._record(tx, now=now, node=node, kind="binding", key=binding.id, audit=audit)

    async def expire_bindings(self, *, now: float, node: str, limit: int = 10_000) -> list[Binding]:
        lock = self._driver.lock_clause(skip_locked=True)
        async with self._driver.transaction() as tx:
            rows = await tx.fetch(
                f"SELECT {BINDING_COLUMNS} FROM bindings WHERE state = 'active'"
                f" AND expires_at <= ? ORDER BY expires_at LIMIT ?{lock}",
                (float(now), limit),
            )
            expired = [row_to_binding(r) for r in rows]
            if not expired:
                return []
            for part in chunks([b.id for b in expired], self._driver.max_params - 2):
                marks = ", ".join("?" * len(part))
                await tx.execute(
                    "UPDATE bindings SET state = 'expired', version = version + 1,"
                    f" updated_at = ?, updated_by = ? WHERE id IN ({marks})",
                    [float(now), "sweeper", *part],
                )
            await tx.executemany(
                INSERT_CHANGE, [(float(now), node, "binding", b.id) for b in expired]
            )
            await tx.executemany(
                INSERT_AUDIT,
                [audit_to_row(AuditEntry(now, "sweeper", "binding.expire", b.tenant_id, b.id, {}))
                 for b in expired],
            )  # fmt: skip
            await self._driver.notify(tx, node)
        return [
            Binding(**{**b.__dict__, "state": BindingState.EXPIRED, "version": b.version + 1,
                       "updated_at": float(now), "updated_by": "sweeper"})
            for b in expired
        ]  # fmt: skip
