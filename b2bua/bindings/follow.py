"""Keeping a node's binding index in step: the expiry sweeper and the change follower.

Several nodes share one store. Each writes a row to the ``changes`` sequence with
every change it commits; the others follow that sequence (woken at once by
PostgreSQL NOTIFY, otherwise every ``follow_interval_s``) and re-read only the
bindings, tenants and pools that changed, never the whole store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from b2bua.bindings.index import BindingIndex
from b2bua.bindings.settings import BindingSettings
from b2bua.store import Store, StoreError

__all__ = ["ChangeFollower"]

log = structlog.get_logger("b2bua.bindings")


class ChangeFollower:
    """Mixin of :class:`~b2bua.bindings.service.BindingService`."""

    store: Store
    index: BindingIndex
    settings: BindingSettings
    clock: Callable[[], float]
    node_id: str
    _seq: int
    _gaps: dict[int, float]

    async def _reload_pool(self, tenant_id: str) -> None:
        for number in await self.store.list_numbers(tenant_id):
            self.index.set_number(number.number, number.tenant_id, number.retired)

    async def sweep_expired(self, now: float | None = None) -> int:
        """Mark bindings past their expiry as expired and free their numbers."""
        now = self.clock() if now is None else now
        count = 0
        while True:
            expired = await self.store.expire_bindings(now=now, node=self.node_id)
            for binding in expired:
                self.index.apply(binding)
            count += len(expired)
            if len(expired) < 10_000:
                break
        self.index.purge_cooling(now)
        return count

    # -- following other nodes ------------------------------------------------------
    async def _sweep_loop(self) -> None:
        last_prune = self.clock()
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                await self.sweep_expired()
                if self.clock() - last_prune > 60:
                    last_prune = self.clock()
                    await self.store.prune(now=last_prune)
            except StoreError as exc:
                log.warning("binding sweep failed", error=str(exc))

    async def _follow(self) -> None:
        while True:
            await self.store.wait_for_changes(self.settings.follow_interval_s)
            try:
                await self.catch_up()
            except StoreError as exc:
                log.warning("following binding changes failed", error=str(exc))

    async def catch_up(self) -> int:
        """Apply changes other nodes committed since the last call; returns how many."""
        changes = await self.store.changes_after(self._seq, sorted(self._gaps))
        now = time.monotonic()
        bindings: set[str] = set()
        tenants: set[str] = set()
        pools: set[str] = set()
        for change in changes:
            if change.seq in self._gaps:
                del self._gaps[change.seq]
            elif change.seq > self._seq:
                # PostgreSQL sequence values commit out of order: remember the holes
                # for a while, a slower transaction may still fill them.
                if change.seq - self._seq < 1000:
                    for missing in range(self._seq + 1, change.seq):
                        self._gaps[missing] = now
                self._seq = change.seq
            if change.node == self.node_id:
                continue
            if change.kind == "binding":
                bindings.add(change.key)
            elif change.kind == "tenant":
                tenants.add(change.key)
            elif change.kind == "numbers":
                pools.add(change.key)
        self._gaps = {s: t for s, t in self._gaps.items() if now - t < 30}
        for tenant_id in tenants:
            tenant = await self.store.get_tenant(tenant_id)
            self.index.set_tenant(tenant.id, tenant.suspended)
        for tenant_id in pools:
            await self._reload_pool(tenant_id)
        if bindings:
            for binding in await self.store.get_bindings(sorted(bindings)):
                self.index.apply(binding)
        return len(bindings) + len(tenants) + len(pools)
