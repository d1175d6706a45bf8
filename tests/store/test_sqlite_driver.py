"""The SQLite driver: claim checks use the primary key, small transactions run on the
loop without ever blocking it, and failures or cancellations leave nothing open."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from b2bua.bindings.model import Tenant
from b2bua.store.claims import _claims_by_key_sql
from b2bua.store.errors import ConflictError
from b2bua.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(str(tmp_path / "b2bua.db"))
    yield store
    await store.close()


def tenant(tenant_id: str) -> Tenant:
    return Tenant(id=tenant_id, name=tenant_id, api_key_hash=f"hash-{tenant_id}")


async def tenant_ids(store: SqliteStore) -> list[str]:
    return [t.id for t in await store.list_tenants()]


async def test_claim_check_looks_each_key_up(tmp_path: Path, store: SqliteStore) -> None:
    # `(number, participant) IN (VALUES ...)` scanned the whole claims table once
    # per group commit; the check must stay an index lookup as the table grows.
    with sqlite3.connect(tmp_path / "b2bua.db") as conn:
        sql = _claims_by_key_sql(3)
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", [""] * 6 + [0.0])]
    assert any("SEARCH c USING INDEX" in step for step in plan), plan
    assert not any(step.startswith("SCAN c") for step in plan), plan


async def test_small_transaction_waits_for_another_writer_off_the_loop(
    tmp_path: Path, store: SqliteStore
) -> None:
    other = sqlite3.connect(tmp_path / "b2bua.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        insert = asyncio.create_task(store.insert_tenant(tenant("t1"), actor="op", node="n1"))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(10):
            await asyncio.sleep(0.01)
        assert loop.time() - started < 2  # the loop ran on while the insert waited
        assert not insert.done()
    finally:
        other.execute("COMMIT")
        other.close()
    await asyncio.wait_for(insert, 10)
    assert await tenant_ids(store) == ["t1"]


async def test_failed_small_transaction_rolls_back(store: SqliteStore) -> None:
    await store.insert_tenant(tenant("t1"), actor="op", node="n1")
    with pytest.raises(ConflictError):
        await store.insert_tenant(tenant("t1"), actor="op", node="n1")
    driver = store._driver
    with pytest.raises(RuntimeError):
        async with driver.transaction(small=True) as tx:
            await tx.execute(
                "INSERT INTO tenants (id, name, api_key_hash, suspended, created_at, updated_at)"
                " VALUES ('t2', 't2', 'h2', 0, 0, 0)"
            )
            raise RuntimeError("the caller failed after a statement")
    await store.insert_tenant(tenant("t3"), actor="op", node="n1")
    assert await tenant_ids(store) == ["t1", "t3"]


async def test_cancelled_begin_leaves_no_transaction_open(
    tmp_path: Path, store: SqliteStore
) -> None:
    other = sqlite3.connect(tmp_path / "b2bua.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    waiting = asyncio.create_task(store.insert_tenant(tenant("t1"), actor="op", node="n1"))
    await asyncio.sleep(0.05)  # its BEGIN now waits on the connection's thread
    waiting.cancel()
    other.execute("COMMIT")
    other.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # The BEGIN may still have succeeded after the cancellation; the next
    # transaction must neither fail nor commit anything of the cancelled one.
    await asyncio.wait_for(store.insert_tenant(tenant("t2"), actor="op", node="n1"), 10)
    assert await tenant_ids(store) == ["t2"]


async def test_cancelled_commit_leaves_no_transaction_open(
    tmp_path: Path, store: SqliteStore
) -> None:
    # A task cancelled while its COMMIT waited on the connection's thread (service
    # shutdown cancels housekeeping mid-purge) left the write lock held until the
    # next transaction: other processes on the file, `b2bua cdr verify` say, were
    # locked out meanwhile.
    driver = store._driver
    writer = driver._writer
    gate = threading.Event()

    async def insert_then_commit() -> None:
        async with driver.transaction() as tx:
            await tx.execute(
                "INSERT INTO tenants (id, name, api_key_hash, suspended, created_at, updated_at)"
                " VALUES ('t1', 't1', 'h1', 0, 0, 0)"
            )
            writer._thread.submit(gate.wait, 10)  # the COMMIT queues behind this

    task = asyncio.create_task(insert_then_commit())
    await asyncio.sleep(0.05)  # now awaiting its COMMIT
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Opened only now: opened at the cancel, the thread could start the COMMIT
    # before the task saw its cancellation, and a COMMIT that runs cannot be undone.
    gate.set()

    def other_process_writes() -> None:
        other = sqlite3.connect(tmp_path / "b2bua.db", isolation_level=None, timeout=2)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()

    await asyncio.to_thread(other_process_writes)  # "database is locked" before the fix
    assert await tenant_ids(store) == []
