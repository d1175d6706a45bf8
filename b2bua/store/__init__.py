"""Persistence behind one interface: SQLite (default) and PostgreSQL (several nodes).

``await open_store(url)`` opens the store named by a URL and applies pending schema
migrations:

- ``sqlite:///./b2bua.db`` (relative path), ``sqlite:////abs/path.db`` (absolute),
  ``sqlite:///:memory:`` (tests);
- ``postgresql://host[:port]/db`` (also ``postgres://``), optionally
  ``?schema=NAME`` to keep every table in one schema.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit, urlunsplit

from b2bua.store.base import AuditEntry, Change, ClaimRow, NewBinding, Store
from b2bua.store.errors import (
    ConflictError,
    NotFoundError,
    RetryableError,
    StoreError,
    UnavailableError,
)

__all__ = [
    "AuditEntry",
    "Change",
    "ClaimRow",
    "ConflictError",
    "NewBinding",
    "NotFoundError",
    "RetryableError",
    "Store",
    "StoreError",
    "UnavailableError",
    "open_store",
]


async def open_store(url: str) -> Store:
    """Open (and migrate) the store at ``url``; raises :class:`StoreError` if it cannot."""
    if url.startswith("sqlite://"):
        from b2bua.store.sqlite import SqliteStore

        path = url[len("sqlite://") :]
        if not path.startswith("/") or path == "/":
            raise StoreError(f"bad sqlite url {url!r}: use sqlite:///relative or sqlite:////abs")
        return await SqliteStore.open(path[1:])
    if url.startswith(("postgresql://", "postgres://")):
        from b2bua.store.postgres import PostgresStore

        parts = urlsplit(url)
        query = parse_qs(parts.query)
        schema = query.pop("schema", [None])[0]
        rest = "&".join(f"{k}={v}" for k, values in query.items() for v in values)
        dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
        return await PostgresStore.open(dsn, schema=schema)
    raise StoreError(f"unsupported store url {url!r} (sqlite:/// or postgresql://)")
