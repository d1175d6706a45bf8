"""The call-record writer: call events in, batched durable records out.

``emit()`` is on the SIP hot path: it appends the event to a deque and returns
(plus a length check). One asyncio task drains the deque every
``batch_interval_s`` (sooner once ``batch_max`` events wait), folds the events
into per-call drafts, and writes every changed draft in one group commit: a new
attempt is inserted open, a changed one updated, an ended one finalised and
chained. A record is therefore in the store one interval plus one commit after
its attempt began or ended, well within the 1 s the design asks for.

When the store is down the task keeps retrying (pauses growing to
``retry_max_s``) and keeps folding events into drafts, so a call's many events
still cost one row; once ``max_queue`` events and drafts wait, ``emit()`` drops
new events and counts them in :attr:`CallRecordWriter.dropped`. Memory stays
bounded and SIP never waits. A record whose end was dropped stays open until this
node restarts, which closes it as ``interrupted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from itertools import islice

from b2bua.calls.events import CallAttempted, CallEvent
from b2bua.cdr.record import RecordDraft, apply_event, draft_from_attempt
from b2bua.cdr.settings import CdrSettings
from b2bua.observability.logging import get_logger
from b2bua.store.errors import StoreError
from b2bua.store.sql_cdr import SqlCdrStore

__all__ = ["CallRecordWriter"]

log = get_logger(__name__)


class CallRecordWriter:
    """A :class:`~b2bua.calls.events.CallEventSink` that writes call records in batches.

    Counters for metrics: :attr:`depth` (events and drafts waiting), :attr:`dropped`
    (events refused because memory was full), :attr:`unmatched` (events for a call
    never seen), :attr:`committed` (records written), :attr:`skipped` (finals another
    node had already closed), :attr:`failures` (failed commits in a row).
    """

    def __init__(
        self,
        store: SqlCdrStore,
        settings: CdrSettings,
        node_id: str,
        *,
        clock: Callable[[], float] = time.time,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self.node_id = node_id
        self._clock = clock
        self._on_commit = on_commit
        self._events: deque[CallEvent] = deque()
        self._open: dict[str, RecordDraft] = {}
        self._stored: set[str] = set()
        self._dirty: dict[str, RecordDraft] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_beat = 0.0
        self.webhook_tenants: frozenset[str] = frozenset()
        self.dropped = 0
        self.unmatched = 0
        self.committed = 0
        self.skipped = 0
        self.failures = 0

    # -- the hot path ---------------------------------------------------------------
    def emit(self, event: CallEvent) -> None:
        """Queue one event; never blocks, drops (and counts) when memory is full."""
        waiting = len(self._events)
        if waiting + len(self._dirty) >= self._settings.max_queue:
            self.dropped += 1
            return
        self._events.append(event)
        if waiting + 1 == self._settings.batch_max:
            self._wake.set()

    @property
    def depth(self) -> int:
        """Events and changed records not yet in the store."""
        return len(self._events) + len(self._dirty)

    @property
    def active(self) -> int:
        """Attempts begun and not yet finalised in the store."""
        return len(self._open)

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Start the writing task (needs a running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cdr-writer")

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything emitted so far is committed; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.depth:
            if time.monotonic() >= deadline or self._task is None or self._task.done():
                return False
            self._wake.set()
            await asyncio.sleep(0.005)
        return True

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (for up to ``timeout`` seconds), then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self.depth:
            log.error("cdr_writer_lost", depth=self.depth, node=self.node_id)

    # -- the writing task -------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            if not self._dirty:
                if self._closing and not self._events:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.batch_interval_s)
                self._wake.clear()
            self._drain()
            now = self._clock()
            try:
                if self._dirty:
                    await self._commit(now)
                elif now - self._last_beat >= self._settings.heartbeat_interval_s:
                    await self._store.heartbeat(self.node_id, now=now)
                    self._last_beat = now
                self.failures = 0
            except StoreError as exc:
                self.failures += 1
                if self.failures in (1, 10) or self.failures % 100 == 0:
                    log.error("cdr_write_failed", error=str(exc), depth=self.depth,
                              failures=self.failures)  # fmt: skip
                if self._closing and self.failures >= 3:
                    return
                await asyncio.sleep(min(self._settings.retry_max_s, 0.05 * 2**self.failures))

    def _drain(self) -> None:
        """Fold queued events into drafts (stops when the drafts fill memory)."""
        events, room = self._events, self._settings.max_queue
        while events and len(self._dirty) < room:
            event = events.popleft()
            if isinstance(event, CallAttempted):
                draft = draft_from_attempt(event, self.node_id)
                self._open[draft.id] = draft
            else:
                found = self._open.get(event.call_id)
                if found is None:
                    self.unmatched += 1
                    continue
                draft = found
                apply_event(draft, event)
            self._dirty.setdefault(draft.id, draft)

    async def _commit(self, now: float) -> None:
        batch = list(islice(self._dirty.values(), self._settings.batch_max))
        opens = [d for d in batch if d.ended_at is None]
        # Chain order follows the end of the attempts, which is what a reader expects.
        finals = sorted((d for d in batch if d.ended_at is not None),
                        key=lambda d: (d.ended_at, d.id))  # fmt: skip
        announce = [d for d in batch if d.id not in self._stored]
        skipped = await self._store.write_records(
            self.node_id, now=now, opens=opens, finals=finals, announce=announce,
            webhook_tenants=self.webhook_tenants,
        )  # fmt: skip
        self._last_beat = now
        for draft in batch:
            del self._dirty[draft.id]
            self._stored.add(draft.id)
        for draft in finals:
            self._stored.discard(draft.id)
            self._open.pop(draft.id, None)
        self.committed += len(batch) - len(skipped)
        if skipped:
            self.skipped += len(skipped)
            log.warning("cdr_closed_elsewhere", records=[d.id for d in skipped[:20]],
                        count=len(skipped))  # fmt: skip
        if self._on_commit is not None and self._queued_webhooks(finals, announce):
            self._on_commit()

    def _queued_webhooks(self, finals: list[RecordDraft], announce: list[RecordDraft]) -> bool:
        """Whether the commit put events in the outbox (tenants with a webhook only).

        Waking the delivery task for nothing cost one store query per commit.
        """
        tenants = self.webhook_tenants
        return bool(tenants) and any(d.tenant_id in tenants for d in (*finals, *announce))
