"""The in-memory block lists the router consults: global, and per tenant.

Lookups are one or two dictionary reads with no allocation: the global list maps
number -> entry, the tenant lists map number -> {tenant id -> entry}, so the hot
path never builds a ``(tenant, number)`` tuple. Expired entries are ignored at
lookup time and dropped by :meth:`BlockList.purge` (the policy service's sweep).
"""

from __future__ import annotations

from collections.abc import Iterator

from b2bua.policy.model import GLOBAL_SCOPE, BlockEntry

__all__ = ["BlockList"]


class BlockList:
    """Global and per-tenant block entries of real numbers (canonical form)."""

    __slots__ = ("by_tenant", "global_entries")

    def __init__(self) -> None:
        self.global_entries: dict[str, BlockEntry] = {}
        self.by_tenant: dict[str, dict[str, BlockEntry]] = {}

    def blocked_globally(self, number: str, now: float) -> BlockEntry | None:
        """The global entry blocking ``number`` at ``now``, if any."""
        entry = self.global_entries.get(number)
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= now:
            return None
        return entry

    def blocked_for_tenant(self, number: str, tenant_id: str, now: float) -> BlockEntry | None:
        """The entry on ``tenant_id``'s own list blocking ``number`` at ``now``, if any."""
        tenants = self.by_tenant.get(number)
        if tenants is None:
            return None
        entry = tenants.get(tenant_id)
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= now:
            return None
        return entry

    def get(self, scope: str, number: str) -> BlockEntry | None:
        """The entry of ``scope`` for ``number`` (expired or not)."""
        if scope == GLOBAL_SCOPE:
            return self.global_entries.get(number)
        tenants = self.by_tenant.get(number)
        return tenants.get(scope) if tenants else None

    def put(self, entry: BlockEntry) -> None:
        """Add or replace an entry."""
        if entry.scope == GLOBAL_SCOPE:
            self.global_entries[entry.number] = entry
        else:
            self.by_tenant.setdefault(entry.number, {})[entry.scope] = entry

    def remove(self, scope: str, number: str) -> BlockEntry | None:
        """Drop the entry of ``scope`` for ``number``; return it if there was one."""
        if scope == GLOBAL_SCOPE:
            return self.global_entries.pop(number, None)
        tenants = self.by_tenant.get(number)
        if not tenants:
            return None
        entry = tenants.pop(scope, None)
        if not tenants:
            del self.by_tenant[number]
        return entry

    def purge(self, now: float) -> int:
        """Drop entries that have expired; returns how many."""
        expired = [e for e in self if e.expires_at is not None and e.expires_at <= now]
        for entry in expired:
            self.remove(entry.scope, entry.number)
        return len(expired)

    def clear(self) -> None:
        self.global_entries.clear()
        self.by_tenant.clear()

    def __iter__(self) -> Iterator[BlockEntry]:
        yield from list(self.global_entries.values())
        for tenants in list(self.by_tenant.values()):
            yield from list(tenants.values())

    def __len__(self) -> int:
        return len(self.global_entries) + sum(len(t) for t in self.by_tenant.values())
