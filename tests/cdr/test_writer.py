"""The batched writer: durability timing, field values, refused attempts, store outages."""

from __future__ import annotations

import asyncio
import time

import pytest

from b2bua.calls.events import CallEnded, CallForwarded, CallRinging, EndReason, ReleasedBy
from b2bua.cdr.chain import verify_chains
from b2bua.cdr.service import CdrService
from b2bua.cdr.settings import CdrSettings
from b2bua.store import Store, StoreError
from cdr.conftest import A, B, X, add_tenant, call_events, rejected_events

# Realistic times: records from 1970 would be purged at once by the retention.
T0 = time.time() - 3600.0
FAST = CdrSettings(batch_interval_s=0.05, heartbeat_interval_s=0.2, webhook_poll_s=0.05)


async def wait_for(condition, timeout: float = 2.0) -> float:  # type: ignore[no-untyped-def]
    """Poll ``condition`` (a coroutine function) until true; return the time it took."""
    start = time.monotonic()
    while not await condition():
        assert time.monotonic() - start < timeout, "condition not met in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_record_exists_within_a_second_of_start_and_end(store: Store) -> None:
    service = CdrService(store, FAST, "node-a")
    await service.start()
    try:
        now = time.time()
        start, *middle, end = call_events("c1", at=now)
        for event in [start, *middle]:
            service.sink.emit(event)

        async def opened() -> bool:
            return await store.cdr.get_record("c1") is not None

        assert await wait_for(opened) < 1.0
        record = await store.cdr.get_record("c1")
        assert record is not None and record.ended_at is None and record.hash is None
        service.sink.emit(end)

        async def finished() -> bool:
            found = await store.cdr.get_record("c1")
            return found is not None and found.hash is not None

        assert await wait_for(finished) < 1.0
    finally:
        await service.close()


async def test_fields_of_an_answered_call(store: Store) -> None:
    service = CdrService(store, FAST, "node-a")
    await service.start()
    for event in call_events("c1", at=T0, ring_after=0.25, answer_after=2.0, end_after=32.5):
        service.sink.emit(event)
    assert await service.writer.flush()
    await service.close()
    r = await store.cdr.get_record("c1")
    assert r is not None
    assert (r.inbound_call_id, r.outbound_call_id) == ("in-c1", "out-c1")
    assert (r.tenant_id, r.binding_id, r.order_id, r.mode, r.direction) == (
        "t1", "bind-t1", "order-1", "AXB", "both",
    )  # fmt: skip
    assert (r.x, r.caller, r.callee, r.shown_number) == (X, A, B, X)
    assert (r.inbound_trunk, r.source_address, r.outbound_trunk) == (
        "carrier-a", "udp:192.0.2.1:5060", "carrier-b",
    )  # fmt: skip
    assert (r.invite_at, r.ringing_at, r.answered_at, r.ended_at) == (
        T0, T0 + 0.25, T0 + 2.0, T0 + 32.5,
    )  # fmt: skip
    assert r.pdd_ms == 250
    assert r.duration_s == 30.5
    assert (r.final_status, r.end_reason, r.released_by) == (200, "normal", "caller")
    assert (r.node, r.chain_seq, r.prev_hash) == ("node-a", 1, "")


async def test_unanswered_and_refused_attempts(store: Store) -> None:
    service = CdrService(store, FAST, "node-a")
    await service.start()
    for event in call_events(
        "busy",
        at=T0,
        ring_after=None,
        answer_after=None,
        end_after=0.4,
        status=486,
        reason=EndReason.BUSY,
        released_by=ReleasedBy.CALLEE,
    ):
        service.sink.emit(event)  # fmt: skip
    for event in rejected_events("nobind", at=T0 + 20, dialled="700999999999999"):
        service.sink.emit(event)
    assert await service.writer.flush()
    await service.close()
    busy = await store.cdr.get_record("busy")
    assert busy is not None
    assert (busy.final_status, busy.end_reason, busy.released_by) == (486, "busy", "callee")
    assert (busy.pdd_ms, busy.duration_s, busy.answered_at) == (None, 0.0, None)
    refused = await store.cdr.get_record("nobind")
    assert refused is not None
    assert (refused.x, refused.tenant_id, refused.binding_id) == ("700999999999999", None, None)
    assert (refused.final_status, refused.end_reason, refused.rejection) == (
        404, "rejected", "unknown_number",
    )  # fmt: skip
    assert (refused.duration_s, refused.ended_at) == (0.0, T0 + 20)
    assert all(report.ok for report in await verify_chains(store.cdr))


async def test_many_calls_one_row_each_and_chained_in_order(store: Store) -> None:
    service = CdrService(store, CdrSettings(batch_interval_s=0.05, batch_max=50), "node-a")
    await service.start()
    for i in range(300):
        for event in call_events(f"c{i:03d}", at=T0 + i, end_after=10.0):
            service.sink.emit(event)
    assert await service.writer.flush()
    await service.close()
    assert service.writer.committed == 300
    reports = await verify_chains(store.cdr)
    assert [(r.node, r.ok, r.checked, r.head_seq) for r in reports] == [("node-a", True, 300, 300)]
    seqs = [d.chain_seq async for d in store.cdr.iter_chain("node-a", after_seq=0, page=64)]
    assert seqs == list(range(1, 301))


async def test_unknown_call_events_are_counted_not_written(store: Store) -> None:
    service = CdrService(store, FAST, "node-a")
    await service.start()
    service.sink.emit(CallRinging("ghost", T0))
    service.sink.emit(CallEnded("ghost", T0, 200, EndReason.NORMAL, ReleasedBy.CALLER))
    assert await service.writer.flush()
    await service.close()
    assert service.writer.unmatched == 2
    assert await store.cdr.get_record("ghost") is None


class _FailingStore:
    """Wraps the cdr store; ``write_records`` fails while ``down`` is set."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self._inner = inner
        self.down = True
        self.attempts = 0

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._inner, name)

    async def write_records(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.attempts += 1
        if self.down:
            raise StoreError("database is down")
        return await self._inner.write_records(*args, **kwargs)

    async def heartbeat(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.down:
            raise StoreError("database is down")
        return await self._inner.heartbeat(*args, **kwargs)


async def test_store_down_keeps_retrying_with_bounded_memory(store: Store) -> None:
    settings = CdrSettings(batch_interval_s=0.02, max_queue=50, retry_max_s=0.05)
    service = CdrService(store, settings, "node-a")
    flaky = _FailingStore(store.cdr)
    service.writer._store = flaky  # type: ignore[assignment]
    await service.start()
    started = time.perf_counter()
    for i in range(40):
        for event in call_events(f"c{i:02d}", at=T0 + i):
            service.sink.emit(event)
    # emit() never waits, however long the store is down.
    assert time.perf_counter() - started < 0.05
    await asyncio.sleep(0.3)
    assert flaky.attempts >= 3, "the writer keeps retrying"
    assert service.writer.depth <= 2 * settings.max_queue
    assert service.writer.dropped > 0, "past max_queue new events are dropped, and counted"
    flaky.down = False
    assert await service.writer.flush(timeout=3.0)
    await service.close()
    assert service.writer.failures == 0
    written = [d async for d in store.cdr.iter_records(since=None, until=None)]
    assert written, "what was kept is written once the store is back"
    assert all(report.ok for report in await verify_chains(store.cdr))


@pytest.mark.parametrize("count", [1, 3])
async def test_start_webhook_rows_are_written_with_the_record(store: Store, count: int) -> None:
    await add_tenant(store, "t1", webhook_url="http://127.0.0.1:9/hook")
    await add_tenant(store, "t2")
    service = CdrService(store, CdrSettings(batch_interval_s=0.05, webhook_poll_s=60), "node-a")
    service.webhooks.start = lambda: None  # type: ignore[method-assign]  # keep the outbox
    await service.start()
    for i in range(count):
        for event in call_events(f"w{i}", at=T0 + i, tenant_id="t1"):
            service.sink.emit(event)
    for event in call_events("other", at=T0, tenant_id="t2"):
        service.sink.emit(event)
    assert await service.writer.flush()
    await service.close()
    pending, failed = await store.cdr.outbox_stats()
    assert (pending, failed) == (2 * count, 0)


async def test_a_later_outbound_leg_replaces_the_recorded_one(store: Store) -> None:
    """An open record written before a next trunk or hunt member is updated with it."""
    service = CdrService(store, FAST, "node-a")
    await service.start()
    start, forwarded, *rest = call_events("c1", at=T0)
    service.sink.emit(start)
    service.sink.emit(forwarded)
    assert await service.writer.flush()
    opened = await store.cdr.get_record("c1")
    assert opened is not None and opened.callee == B and opened.hash is None
    service.sink.emit(CallForwarded("c1", T0 + 5.0, "out-2", "carrier-c", "13900000009", X))
    for event in rest:
        service.sink.emit(event)
    assert await service.writer.flush()
    await service.close()
    r = await store.cdr.get_record("c1")
    assert r is not None
    assert (r.outbound_call_id, r.outbound_trunk, r.callee) == ("out-2", "carrier-c", "13900000009")
    assert (r.inbound_call_id, r.caller, r.x, r.invite_at) == ("in-c1", A, X, T0)
    assert r.hash is not None and r.end_reason == "normal"
    assert all(report.ok for report in await verify_chains(store.cdr))


async def test_delivery_is_woken_only_by_commits_that_queue_webhooks(store: Store) -> None:
    service = CdrService(store, FAST, "node-a")
    await service.start()
    wakes: list[float] = []
    service.writer._on_commit = lambda: wakes.append(time.monotonic())
    try:
        service.writer.webhook_tenants = frozenset()
        for event in call_events("c1", at=T0):
            service.sink.emit(event)
        assert await service.writer.flush()
        assert wakes == []  # no tenant has a webhook: nothing to deliver

        service.writer.webhook_tenants = frozenset({"t2"})
        for event in call_events("c2", at=T0):  # tenant t1
            service.sink.emit(event)
        assert await service.writer.flush()
        assert wakes == []

        service.writer.webhook_tenants = frozenset({"t1"})
        for event in call_events("c3", at=T0):
            service.sink.emit(event)
        assert await service.writer.flush()
        assert len(wakes) >= 1
    finally:
        await service.close()
