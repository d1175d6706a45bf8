"""SQLite driver (aiosqlite), the default store.

WAL mode lets the reader connection run while the writer commits. Writes go through
one connection guarded by an asyncio lock, each as ``BEGIN IMMEDIATE`` so that the
write lock is taken before the first read: the claim checks inside a transaction
then see everything another process committed. ``synchronous=FULL`` makes every
commit durable against power loss; group commit keeps that affordable.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from b2bua.store.base import Driver, Row, Tx
from b2bua.store.errors import ConflictError, RetryableError, StoreError, UnavailableError
from b2bua.store.sql import SqlStore

__all__ = ["SqliteDriver", "SqliteStore"]


def _wrap(exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.IntegrityError):
        return ConflictError(str(exc))
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return RetryableError(str(exc))
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
        return UnavailableError(str(exc))
    return StoreError(f"sqlite: {exc}")


class _SqliteTx(Tx):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        try:
            return list(await self._conn.execute_fetchall(sql, args))
        except sqlite3.Error as exc:
            raise _wrap(exc) from exc

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            cursor = await self._conn.execute(sql, args)
            count = cursor.rowcount
            await cursor.close()
            return max(count, 0)
        except sqlite3.Error as exc:
            raise _wrap(exc) from exc

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        try:
            await self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise _wrap(exc) from exc


class SqliteDriver(Driver):
    """One writer and one reader connection on a WAL database file."""

    dialect = "sqlite"
    max_params = 30_000

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str, *, synchronous: str = "FULL") -> SqliteDriver:
        """Open ``path`` (``:memory:`` uses one connection for both roles)."""
        try:
            writer = await aiosqlite.connect(path, isolation_level=None)
            for pragma in ("journal_mode=WAL", f"synchronous={synchronous}",
                           "busy_timeout=10000", "foreign_keys=ON"):  # fmt: skip
                await writer.execute(f"PRAGMA {pragma}")
            if path == ":memory:":
                return cls(writer, writer)
            reader = await aiosqlite.connect(path, isolation_level=None)
            await reader.execute("PRAGMA busy_timeout=10000")
            await reader.execute("PRAGMA query_only=ON")
        except sqlite3.Error as exc:
            raise UnavailableError(f"cannot open sqlite database {path}: {exc}") from exc
        return cls(writer, reader)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        try:
            return list(await self._reader.execute_fetchall(sql, args))
        except (sqlite3.Error, ValueError) as exc:
            raise (
                _wrap(exc) if isinstance(exc, sqlite3.Error) else UnavailableError(str(exc))
            ) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._write_lock:
            if self._writer.in_transaction:
                # Left open by a task cancelled mid-statement: nothing in it was
                # acknowledged to anybody, so it is rolled back, not committed.
                with contextlib.suppress(sqlite3.Error):
                    await self._writer.execute("ROLLBACK")
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _wrap(exc) from exc
            except BaseException:
                # Cancelled while BEGIN ran in the connection's thread: it may
                # have started a transaction that nobody will end.
                with contextlib.suppress(sqlite3.Error):
                    await asyncio.shield(self._writer.execute("ROLLBACK"))
                raise
            try:
                yield _SqliteTx(self._writer)
            except BaseException:
                # The failed statement may already have ended the transaction.
                with contextlib.suppress(sqlite3.Error):
                    await self._writer.execute("ROLLBACK")
                raise
            try:
                await self._writer.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._writer.execute("ROLLBACK")
                raise _wrap(exc) from exc

    def lock_clause(self, *, skip_locked: bool = False) -> str:
        return ""  # BEGIN IMMEDIATE already serialises writers

    async def notify(self, tx: Tx, payload: str) -> None:
        return None  # other processes on the same file poll the change sequence

    async def wait_for_notification(self, timeout: float) -> None:
        await asyncio.sleep(timeout)

    async def close(self) -> None:
        await self._writer.close()
        if self._reader is not self._writer:
            await self._reader.close()


class SqliteStore(SqlStore):
    """The store on an SQLite file."""

    @classmethod
    async def open(cls, path: str, *, synchronous: str = "FULL") -> SqliteStore:
        store = cls(await SqliteDriver.open(path, synchronous=synchronous))
        await store.migrate()
        return store
