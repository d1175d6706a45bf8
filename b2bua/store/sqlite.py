"""SQLite driver (the standard ``sqlite3`` module, one thread per connection).

WAL mode lets the reader connection run while the writer commits. Writes go through
one connection guarded by an asyncio lock, each as ``BEGIN IMMEDIATE`` so that the
write lock is taken before the first read: the claim checks inside a transaction
then see everything another process committed. ``synchronous=FULL`` makes every
commit durable against power loss; group commit keeps that affordable.

Each connection has its own thread, which runs its blocking calls in the order they
were made: ``COMMIT`` (which waits for the disk) and whatever may wait for another
process's write lock. A ``small`` transaction (a group commit of bindings, one
binding or tenant) runs on the event loop instead, from a ``BEGIN IMMEDIATE`` that
gives up at once if another process writes (the thread then waits for it) to the
last statement: with the write lock held they are a few indexed row operations,
cheaper than the two thread hand-overs each would cost. Only ``COMMIT`` is handed
over, and the callers of a group commit are answered after it returned.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from b2bua.store.base import Driver, Row, Tx
from b2bua.store.errors import ConflictError, RetryableError, StoreError, UnavailableError
from b2bua.store.sql import SqlStore

__all__ = ["SqliteDriver", "SqliteStore"]

T = TypeVar("T")
_BUSY_TIMEOUT_MS = 10_000


def _wrap(exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.IntegrityError):
        return ConflictError(str(exc))
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return RetryableError(str(exc))
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
        return UnavailableError(str(exc))
    return StoreError(f"sqlite: {exc}")


class _Connection:
    """One ``sqlite3`` connection and the thread that runs its blocking calls in order."""

    def __init__(self, conn: sqlite3.Connection, thread: ThreadPoolExecutor) -> None:
        self.conn = conn
        self._thread = thread
        self._last: Future[Any] | None = None

    @property
    def idle(self) -> bool:
        """Nothing runs or waits on the thread (it finishes calls in order)."""
        return self._last is None or self._last.done()

    @classmethod
    async def open(cls, path: str, pragmas: Sequence[str], name: str) -> _Connection:
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

        def connect() -> sqlite3.Connection:
            # Shared with the event loop, never at the same time: see _SqliteTx.
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            for pragma in pragmas:
                conn.execute(f"PRAGMA {pragma}")
            return conn

        try:
            conn = await asyncio.get_running_loop().run_in_executor(thread, connect)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        return cls(conn, thread)

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` on the connection's thread, after everything before it."""
        try:
            future = self._last = self._thread.submit(function, *args)
        except RuntimeError as exc:  # the thread was shut down: the store is closed
            raise UnavailableError("sqlite connection is closed") from exc
        try:
            return await asyncio.wrap_future(future)
        except sqlite3.Error as exc:
            raise _wrap(exc) from exc

    def rollback_later(self) -> None:
        """Queue a ROLLBACK behind whatever still runs (the next BEGIN comes after it)."""
        try:
            self._last = self._thread.submit(_rollback, self.conn)
        except RuntimeError:
            pass  # closed: closing the connection rolls back

    def fetch(self, sql: str, args: Sequence[Any]) -> list[Row]:
        return self.conn.execute(sql, args).fetchall()

    def execute(self, sql: str, args: Sequence[Any]) -> int:
        return max(self.conn.execute(sql, args).rowcount, 0)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    async def close(self) -> None:
        try:
            await self.call(self.conn.close)
        except UnavailableError:
            pass
        finally:
            self._thread.shutdown(wait=False)


def _begin(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # Left open by a task cancelled mid-statement: nothing in it was
        # acknowledged to anybody, so it is rolled back, not committed.
        _rollback(conn)
    conn.execute("BEGIN IMMEDIATE")


def _begin_at_once(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE`` that fails at once ("locked") while another process writes."""
    conn.execute("PRAGMA busy_timeout=0")
    try:
        _begin(conn)
    finally:
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # no transaction left (the failed statement ended it), or closed


class _SqliteTx(Tx):
    """Statements of one write transaction, on the loop (``inline``) or the thread.

    Inline statements never overlap the connection's thread: the transaction began
    on the loop while the thread was idle, or with an awaited ``BEGIN`` on the
    thread (so everything queued before it is done), and nothing else is queued on
    it until ``COMMIT``.
    """

    def __init__(self, conn: _Connection, *, inline: bool) -> None:
        self._conn = conn
        self._inline = inline

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        if not self._inline:
            return await self._conn.call(function, *args)
        try:
            return function(*args)
        except sqlite3.Error as exc:
            raise _wrap(exc) from exc

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return await self._run(self._conn.fetch, sql, args)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return await self._run(self._conn.execute, sql, args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._run(self._conn.executemany, sql, rows)


class SqliteDriver(Driver):
    """One writer and one reader connection on a WAL database file."""

    dialect = "sqlite"
    max_params = 30_000

    def __init__(self, writer: _Connection, reader: _Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        # One connection for both roles (``:memory:``): reads run on its thread
        # at any time, so statements must never run on the loop at the same time.
        self._inline = reader is not writer

    @classmethod
    async def open(cls, path: str, *, synchronous: str = "FULL") -> SqliteDriver:
        """Open ``path`` (``:memory:`` uses one connection for both roles)."""
        try:
            writer = await _Connection.open(
                path,
                ("journal_mode=WAL", f"synchronous={synchronous}",
                 f"busy_timeout={_BUSY_TIMEOUT_MS}", "foreign_keys=ON"),
                "sqlite-writer",
            )  # fmt: skip
            if path == ":memory:":
                return cls(writer, writer)
            try:
                reader = await _Connection.open(
                    path, (f"busy_timeout={_BUSY_TIMEOUT_MS}", "query_only=ON"), "sqlite-reader"
                )
            except BaseException:
                await writer.close()
                raise
        except sqlite3.Error as exc:
            raise UnavailableError(f"cannot open sqlite database {path}: {exc}") from exc
        return cls(writer, reader)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return await self._reader.call(self._reader.fetch, sql, args)

    @asynccontextmanager
    async def transaction(self, *, small: bool = False) -> AsyncIterator[Tx]:
        writer = self._writer
        inline = small and self._inline
        async with self._write_lock:
            if not (inline and writer.idle and self._begin_at_once()):
                try:
                    await writer.call(_begin, writer.conn)
                except BaseException:
                    # Cancelled or failed while BEGIN ran on the thread: it may
                    # have started a transaction that nobody would end.
                    writer.rollback_later()
                    raise
            try:
                yield _SqliteTx(writer, inline=inline)
            except BaseException:
                # The failed statement may already have ended the transaction.
                writer.rollback_later()
                raise
            try:
                await writer.call(writer.conn.execute, "COMMIT")
            except BaseException:
                # Failed, or cancelled while COMMIT waited on the thread: it will
                # not run then, and the write lock must not wait for the next BEGIN.
                # (A COMMIT that ran leaves the ROLLBACK nothing to undo.)
                writer.rollback_later()
                raise

    def _begin_at_once(self) -> bool:
        """Begin on the loop unless another process holds the write lock (then False).

        Only while the connection's thread is idle, so that the two never use the
        connection at the same time; waiting for the lock is left to the thread.
        """
        try:
            _begin_at_once(self._writer.conn)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                return False
            raise _wrap(exc) from exc
        except sqlite3.Error as exc:
            raise _wrap(exc) from exc
        return True

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
