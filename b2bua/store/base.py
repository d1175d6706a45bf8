"""The store interface and the small driver interface both dialects implement.

:class:`Store` is what the rest of b2bua talks to. Its two implementations
(:class:`~b2bua.store.sqlite.SqliteStore`, :class:`~b2bua.store.postgres.PostgresStore`)
share every SQL text through :class:`~b2bua.store.sql.SqlStore`; they differ only in
their :class:`Driver` (connection handling, placeholders, row locks, notifications).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from b2bua.bindings.model import Binding, BindingFilter, PoolNumber, Tenant

if TYPE_CHECKING:
    from b2bua.store.sql_cdr import SqlCdrStore
    from b2bua.store.sql_policy import SqlPolicyStore

__all__ = [
    "AuditEntry",
    "Change",
    "ClaimRow",
    "Driver",
    "NewBinding",
    "Store",
    "Tx",
]

Row = Sequence[Any]


@dataclass(frozen=True, slots=True)
class ClaimRow:
    """A ``(number, participant)`` claim of ``binding_id``, live until ``free_at``."""

    number: str
    participant: str
    binding_id: str
    free_at: float


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the shared change sequence other nodes follow.

    ``kind`` is ``binding`` (key: binding id), ``tenant`` (key: tenant id) or
    ``numbers`` (key: tenant id whose pool changed).
    """

    seq: int
    node: str
    kind: str
    key: str


@dataclass(frozen=True, slots=True)
class NewBinding:
    """A binding to insert together with its claims, as one unit of a group commit."""

    binding: Binding
    claims: tuple[ClaimRow, ...]
    now: float
    node: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A row of the audit trail."""

    at: float
    actor: str
    action: str
    tenant_id: str | None
    binding_id: str | None
    detail: dict[str, Any]


class Tx(abc.ABC):
    """Statements inside one transaction. SQL uses ``?`` placeholders."""

    @abc.abstractmethod
    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]: ...

    @abc.abstractmethod
    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Driver(abc.ABC):
    """Connections of one dialect. Raises only :class:`~b2bua.store.errors.StoreError`."""

    dialect: str
    max_params: int

    @abc.abstractmethod
    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Run a read outside any write transaction."""

    @abc.abstractmethod
    def transaction(self, *, small: bool = False) -> AbstractAsyncContextManager[Tx]:
        """A write transaction; commits on normal exit, rolls back on an exception.

        ``small`` promises a few indexed row operations (one binding or tenant, a
        bounded group commit): a driver may then run them without handing each one
        to another thread.
        """

    @abc.abstractmethod
    def lock_clause(self, *, skip_locked: bool = False) -> str:
        """Row-lock suffix for SELECTs inside a transaction ('' where writes serialise)."""

    @abc.abstractmethod
    async def notify(self, tx: Tx, payload: str) -> None:
        """Wake the other nodes' followers once ``tx`` commits (no-op for SQLite)."""

    @abc.abstractmethod
    async def wait_for_notification(self, timeout: float) -> None:
        """Return when a notification arrived or ``timeout`` seconds passed."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class Store(abc.ABC):
    """Persistence of tenants, pool numbers, bindings, claims, changes and audit.

    Every method raises :class:`~b2bua.store.errors.StoreError` (or a subclass) for a
    database failure. Times are wall-clock epoch seconds.
    """

    dialect: str
    cdr: SqlCdrStore
    """Call records, their hash chains and the webhook outbox (:mod:`b2bua.store.sql_cdr`)."""
    policy: SqlPolicyStore
    """Block lists of the abuse controls (:mod:`b2bua.store.sql_policy`)."""

    # -- lifecycle -------------------------------------------------------------
    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def schema_version(self) -> int: ...

    # -- tenants ---------------------------------------------------------------
    @abc.abstractmethod
    async def insert_tenant(self, tenant: Tenant, *, actor: str, node: str) -> None: ...

    @abc.abstractmethod
    async def update_tenant(self, tenant: Tenant, *, actor: str, node: str) -> None: ...

    @abc.abstractmethod
    async def get_tenant(self, tenant_id: str) -> Tenant: ...

    @abc.abstractmethod
    async def list_tenants(self) -> list[Tenant]: ...

    @abc.abstractmethod
    async def find_tenant_by_key_hash(self, api_key_hash: str) -> Tenant | None: ...

    # -- numbers ---------------------------------------------------------------
    @abc.abstractmethod
    async def import_numbers(
        self, tenant_id: str, numbers: Sequence[str], *, now: float, actor: str, node: str
    ) -> int:
        """Add numbers to a tenant's pool; ConflictError if one is another tenant's."""

    @abc.abstractmethod
    async def retire_numbers(
        self, tenant_id: str, numbers: Sequence[str], *, now: float, actor: str, node: str
    ) -> int: ...

    @abc.abstractmethod
    async def list_numbers(self, tenant_id: str | None = None) -> list[PoolNumber]: ...

    # -- bindings --------------------------------------------------------------
    @abc.abstractmethod
    async def create_binding(self, new: NewBinding, *, actor: str) -> None:
        """Insert a binding and its claims durably; ConflictError if a claim is live.

        Concurrent calls are grouped into one transaction (group commit); each call
        returns only after the transaction holding it committed.
        """

    @abc.abstractmethod
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
        """Replace a binding row (optimistic on ``expected_version``) and upsert claims.

        ``check`` lists the claims the binding newly takes: ConflictError if one is
        live for another binding. The other ``claims`` only move their ``free_at``
        and never take a key another binding holds.
        """

    @abc.abstractmethod
    async def get_binding(self, binding_id: str) -> Binding: ...

    @abc.abstractmethod
    async def get_bindings(self, binding_ids: Sequence[str]) -> list[Binding]: ...

    @abc.abstractmethod
    async def list_bindings(self, where: BindingFilter, *, now: float) -> list[Binding]: ...

    @abc.abstractmethod
    def iter_live_bindings(self) -> AsyncIterator[Binding]:
        """Every binding in state ``active`` (expired ones not yet swept included)."""

    @abc.abstractmethod
    async def live_claims(self, now: float) -> list[ClaimRow]: ...

    @abc.abstractmethod
    async def expire_bindings(self, *, now: float, node: str, limit: int = 10_000) -> list[Binding]:
        """Mark active bindings past their expiry as expired; return them."""

    # -- change sequence, audit -------------------------------------------------
    @abc.abstractmethod
    async def changes_after(self, seq: int, also: Sequence[int] = ()) -> list[Change]: ...

    @abc.abstractmethod
    async def last_change_seq(self) -> int: ...

    @abc.abstractmethod
    async def wait_for_changes(self, timeout: float) -> None: ...

    @abc.abstractmethod
    async def prune(self, *, now: float, changes_older_than_s: float = 600.0) -> None:
        """Drop claims past their cooling and change entries nobody needs any more."""

    @abc.abstractmethod
    async def add_audit(self, entry: AuditEntry) -> None: ...

    @abc.abstractmethod
    async def list_audit(
        self, *, binding_id: str | None = None, tenant_id: str | None = None, limit: int = 100
    ) -> list[AuditEntry]: ...
