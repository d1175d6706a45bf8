"""The policy service: block lists in the store, in memory, and on every node.

Writes go to the store first and reach this node's in-memory lists as soon as they
committed, so a block made through the API refuses the next call here at once.
Other nodes follow the shared change sequence (entries of kind ``blocklist``) and
re-read only the entries that changed, within ``follow_interval_s`` (PostgreSQL
NOTIFY wakes them sooner).

Automatic (fraud) blocks are made on the hot path in memory only; a background
task persists them shortly after, so they survive a restart and reach the other
nodes too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog

from b2bua.bindings.errors import TenantNotFound
from b2bua.numbering import NumberError, NumberingRules
from b2bua.policy.abuse import AUTO_ACTOR, AbusePolicy
from b2bua.policy.errors import BlockNotFound, InvalidBlock
from b2bua.policy.model import GLOBAL_SCOPE, BlockEntry, BlockSource, split_key
from b2bua.store import NotFoundError, Store, StoreError
from b2bua.store.sql_policy import BLOCKLIST_CHANGE

__all__ = ["PolicyService"]

log = structlog.get_logger("b2bua.policy")

MAX_REASON = 200
MAX_BLOCK_TTL_S = 10 * 365 * 24 * 3600


def mask(number: str) -> str:
    """A number as logs may show it at warning level: only the last four digits."""
    return "*" * max(0, len(number) - 4) + number[-4:]


class PolicyService:
    """Block-list management over the store for one node's :class:`AbusePolicy`."""

    def __init__(
        self,
        store: Store,
        policy: AbusePolicy,
        *,
        clock: Callable[[], float] = time.time,
        node_id: str | None = None,
        follow_interval_s: float = 0.5,
        flush_interval_s: float = 0.2,
        sweep_interval_s: float = 30.0,
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.node_id = node_id or "policy-" + uuid.uuid4().hex[:12]
        self.follow_interval_s = follow_interval_s
        self.flush_interval_s = flush_interval_s
        self.sweep_interval_s = sweep_interval_s
        self._seq = 0
        self._gaps: dict[int, float] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def rules(self) -> NumberingRules:
        """The numbering rules block-list numbers are checked against."""
        return self.policy.rules

    # -- lifecycle -------------------------------------------------------------------
    async def start(self, *, background: bool = True) -> None:
        """Load the block lists; with ``background`` follow, persist and sweep in tasks."""
        # The sequence first: whatever commits during the load is replayed harmlessly.
        self._seq = await self.store.last_change_seq()
        blocklist = self.policy.blocklist
        blocklist.clear()
        for entry in await self.store.policy.list_blocks(now=self.clock()):
            blocklist.put(entry)
        log.info("block lists loaded", entries=len(blocklist), node=self.node_id)
        if background:
            loops = {
                "policy-follow": self._loop(self._wait_follow, self.catch_up),
                "policy-flush": self._loop(self._wait_flush, self.flush),
                "policy-sweep": self._loop(self._wait_sweep, self.sweep),
            }
            self._tasks = [asyncio.create_task(loop, name=name) for name, loop in loops.items()]

    async def close(self) -> None:
        """Stop the tasks, persisting automatic blocks still queued (best effort)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        with contextlib.suppress(StoreError):
            await self.flush()

    async def _wait_follow(self) -> None:
        await self.store.wait_for_changes(self.follow_interval_s)

    async def _wait_flush(self) -> None:
        await asyncio.sleep(self.flush_interval_s)

    async def _wait_sweep(self) -> None:
        await asyncio.sleep(self.sweep_interval_s)

    async def _loop(
        self, wait: Callable[[], Awaitable[None]], work: Callable[[], Awaitable[int]]
    ) -> None:
        while True:
            await wait()
            try:
                await work()
            except StoreError as exc:
                log.warning("policy store work failed", error=str(exc))

    # -- management (API and CLI) ------------------------------------------------------
    def clean_number(self, value: str, field: str = "number") -> str:
        """``value`` as a canonical real number, or :class:`InvalidBlock` naming ``field``."""
        try:
            return self.rules.real(value)
        except NumberError as exc:
            raise InvalidBlock(
                f"{field}: not a valid real number ({exc.reason.value})", field=field
            ) from exc

    async def _scope(self, tenant_id: str | None) -> str:
        if tenant_id is None:
            return GLOBAL_SCOPE
        try:
            await self.store.get_tenant(tenant_id)
        except NotFoundError as exc:
            raise TenantNotFound(f"tenant {tenant_id} not found", field="tenant_id") from exc
        return tenant_id

    async def block(
        self,
        number: str,
        *,
        tenant_id: str | None = None,
        reason: str = "",
        ttl_s: float | None = None,
        actor: str = "operator",
    ) -> BlockEntry:
        """Put ``number`` on the global list (``tenant_id`` None) or a tenant's list.

        Replaces an existing entry of that list (an automatic one included). Takes
        effect on this node when it returns, on the others within a second.
        """
        clean = self.clean_number(number)
        if len(reason) > MAX_REASON:
            raise InvalidBlock(f"reason: at most {MAX_REASON} characters", field="reason")
        if ttl_s is not None and not 0 < ttl_s <= MAX_BLOCK_TTL_S:
            raise InvalidBlock(f"ttl_s: must be 1..{MAX_BLOCK_TTL_S}", field="ttl_s")
        scope = await self._scope(tenant_id)
        now = self.clock()
        expires_at = None if ttl_s is None else now + ttl_s
        entry = BlockEntry(scope, clean, BlockSource.MANUAL, reason, now, actor, expires_at)
        await self.store.policy.put_block(entry, actor=actor, node=self.node_id, now=now)
        self.policy.blocklist.put(entry)
        return entry

    async def unblock(
        self, number: str, *, tenant_id: str | None = None, actor: str = "operator"
    ) -> BlockEntry:
        """Take ``number`` off a list; :class:`BlockNotFound` if it was not on it."""
        clean = self.clean_number(number)
        scope = GLOBAL_SCOPE if tenant_id is None else tenant_id
        removed = await self.store.policy.delete_block(
            scope, clean, actor=actor, node=self.node_id, now=self.clock()
        )
        self.policy.blocklist.remove(scope, clean)
        if removed is None:
            raise BlockNotFound(f"{clean} is not on that block list")
        return removed

    async def list_blocks(
        self,
        *,
        tenant_id: str | None = None,
        global_only: bool = False,
        number: str | None = None,
        include_expired: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[BlockEntry]:
        """Entries of one tenant's list, of the global list, or (neither) of all lists."""
        scope = GLOBAL_SCOPE if global_only else tenant_id
        clean = None if number is None else self.clean_number(number)
        return await self.store.policy.list_blocks(
            scope=scope,
            number=clean,
            now=None if include_expired else self.clock(),
            limit=limit,
            offset=offset,
        )

    def is_blocked(self, number: str, *, tenant_id: str | None = None) -> BlockEntry | None:
        """The entry blocking ``number`` now on this node (global first), if any."""
        clean = self.policy.canonical_caller(number)
        now = self.clock()
        blocklist = self.policy.blocklist
        found = blocklist.blocked_globally(clean, now)
        if found is None and tenant_id is not None:
            found = blocklist.blocked_for_tenant(clean, tenant_id, now)
        return found

    # -- background work -------------------------------------------------------------
    async def flush(self) -> int:
        """Persist automatic blocks made since the last flush; returns how many."""
        pending = self.policy.take_pending_blocks()
        done = 0
        try:
            for entry in pending:
                log.warning(
                    "fraud pattern tripped: caller blocked",
                    rule=entry.reason,
                    caller=mask(entry.number),
                    until=entry.expires_at,
                    node=self.node_id,
                )
                written = await self.store.policy.put_block(
                    entry, actor=AUTO_ACTOR, node=self.node_id, now=self.clock()
                )
                done += 1
                if not written:
                    # A manual entry this node had not seen yet wins: adopt it.
                    for stored in await self.store.policy.get_blocks([(entry.scope, entry.number)]):
                        self.policy.blocklist.put(stored)
        except StoreError:
            # Keep what was not written for the next round, oldest first.
            self.policy.pending_blocks[:0] = pending[done:]
            raise
        return done

    async def sweep(self, now: float | None = None) -> int:
        """Drop expired entries from memory and from the store; returns how many here."""
        now = self.clock() if now is None else now
        purged = self.policy.blocklist.purge(now)
        await self.store.policy.purge_blocks(now=now)
        return purged

    async def catch_up(self) -> int:
        """Apply block-list changes other nodes committed; returns how many entries."""
        changes = await self.store.changes_after(self._seq, sorted(self._gaps))
        mono = time.monotonic()
        keys: set[tuple[str, str]] = set()
        for change in changes:
            if change.seq in self._gaps:
                del self._gaps[change.seq]
            elif change.seq > self._seq:
                # PostgreSQL sequence values commit out of order: a slower
                # transaction may still fill a hole, so holes are re-read a while.
                if change.seq - self._seq < 1000:
                    for missing in range(self._seq + 1, change.seq):
                        self._gaps[missing] = mono
                self._seq = change.seq
            if change.kind == BLOCKLIST_CHANGE and change.node != self.node_id:
                keys.add(split_key(change.key))
        self._gaps = {s: t for s, t in self._gaps.items() if mono - t < 30}
        if not keys:
            return 0
        blocklist = self.policy.blocklist
        stored = {(e.scope, e.number): e for e in await self.store.policy.get_blocks(sorted(keys))}
        for scope, number in keys:
            entry = stored.get((scope, number))
            if entry is None:
                blocklist.remove(scope, number)
            else:
                blocklist.put(entry)
        return len(keys)
