"""PostgreSQL driver (asyncpg), for several nodes sharing one database.

Rows of ``numbers`` are locked ``FOR UPDATE`` (in number order, so two nodes never
deadlock) before claims are checked, which makes the claim check and the insert
atomic across nodes. Committed changes ``NOTIFY`` a channel that every node
``LISTEN``s on, so followers wake at once instead of waiting for their next poll.

The URL may carry ``?schema=NAME``: every table then lives in that schema (created
if missing), which is how test runs sharing one database keep apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from b2bua.store.base import Driver, Row, Tx
from b2bua.store.errors import ConflictError, RetryableError, StoreError, UnavailableError
from b2bua.store.sql import SqlStore

__all__ = ["PostgresDriver", "PostgresStore"]

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")


@functools.lru_cache(maxsize=4096)
def _placeholders(sql: str) -> str:
    """``?`` placeholders to ``$1, $2...`` (our SQL has no '?' in literals)."""
    parts = sql.split("?")
    out = [parts[0]]
    for index, part in enumerate(parts[1:], start=1):
        out.append(f"${index}{part}")
    return "".join(out)


def _wrap(exc: BaseException) -> StoreError:
    if isinstance(exc, asyncpg.UniqueViolationError):
        return ConflictError(str(exc))
    if isinstance(exc, asyncpg.DeadlockDetectedError | asyncpg.SerializationError):
        return RetryableError(str(exc))
    if isinstance(exc, OSError | asyncpg.InterfaceError | asyncpg.ConnectionDoesNotExistError):
        return UnavailableError(f"postgresql: {exc}")
    return StoreError(f"postgresql: {exc}")


_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class _PostgresTx(Tx):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        try:
            return list(await self._conn.fetch(_placeholders(sql), *args))
        except _ERRORS as exc:
            raise _wrap(exc) from exc

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            status = await self._conn.execute(_placeholders(sql), *args)
        except _ERRORS as exc:
            raise _wrap(exc) from exc
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        try:
            await self._conn.executemany(_placeholders(sql), rows)
        except _ERRORS as exc:
            raise _wrap(exc) from exc


class PostgresDriver(Driver):
    """A connection pool plus one listening connection."""

    dialect = "postgresql"
    max_params = 30_000

    def __init__(self, pool: asyncpg.Pool, listener: asyncpg.Connection, channel: str) -> None:
        self._pool = pool
        self._listener = listener
        self._channel = channel
        self._notified = asyncio.Event()

    @classmethod
    async def open(cls, dsn: str, *, schema: str | None = None) -> PostgresDriver:
        settings: dict[str, str] = {}
        channel = "b2bua_changes"
        try:
            if schema:
                if not _SCHEMA_NAME.fullmatch(schema):
                    raise StoreError(f"invalid schema name {schema!r}")
                conn = await asyncpg.connect(dsn)
                try:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                except asyncpg.UniqueViolationError:
                    pass  # another node created it at the same moment
                finally:
                    await conn.close()
                settings["search_path"] = schema
                channel = f"b2bua_changes_{schema}"
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8, server_settings=settings)
            listener = await asyncpg.connect(dsn, server_settings=settings)
        except _ERRORS as exc:
            raise _wrap(exc) from exc
        driver = cls(pool, listener, channel)
        await listener.add_listener(channel, driver._on_notify)
        return driver

    def _on_notify(self, *_: object) -> None:
        self._notified.set()

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        try:
            return list(await self._pool.fetch(_placeholders(sql), *args))
        except _ERRORS as exc:
            raise _wrap(exc) from exc

    @asynccontextmanager
    async def transaction(self, *, small: bool = False) -> AsyncIterator[Tx]:
        try:
            conn = await self._pool.acquire()
        except _ERRORS as exc:
            raise _wrap(exc) from exc
        try:
            tr = conn.transaction()
            try:
                await tr.start()
            except _ERRORS as exc:
                raise _wrap(exc) from exc
            try:
                yield _PostgresTx(conn)
            except BaseException:
                # If the connection is gone the server rolls back on its own.
                with contextlib.suppress(*_ERRORS):
                    await tr.rollback()
                raise
            try:
                await tr.commit()
            except _ERRORS as exc:
                raise _wrap(exc) from exc
        finally:
            await self._pool.release(conn)

    def lock_clause(self, *, skip_locked: bool = False) -> str:
        # SKIP LOCKED lets two sweepers on two nodes share the work instead of queueing.
        return " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"

    async def notify(self, tx: Tx, payload: str) -> None:
        await tx.execute("SELECT pg_notify(?, ?)", (self._channel, payload))

    async def wait_for_notification(self, timeout: float) -> None:
        if self._listener.is_closed():
            await asyncio.sleep(timeout)  # polling still keeps nodes in step
            return
        try:
            await asyncio.wait_for(self._notified.wait(), timeout)
        except TimeoutError:
            return
        self._notified.clear()

    async def close(self) -> None:
        try:
            if not self._listener.is_closed():
                await self._listener.close()
            await self._pool.close()
        except _ERRORS as exc:
            raise _wrap(exc) from exc


class PostgresStore(SqlStore):
    """The store on PostgreSQL."""

    @classmethod
    async def open(cls, dsn: str, *, schema: str | None = None) -> PostgresStore:
        store = cls(await PostgresDriver.open(dsn, schema=schema))
        await store.migrate()
        return store
