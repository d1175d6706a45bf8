"""Crash safety: heartbeats, and records left open closed as ``interrupted``."""

from __future__ import annotations

import asyncio
import time

from b2bua.cdr.chain import verify_chains
from b2bua.cdr.service import CdrService
from b2bua.cdr.settings import CdrSettings
from b2bua.store import Store, open_store
from cdr.conftest import call_events

SETTINGS = CdrSettings(batch_interval_s=0.02, heartbeat_interval_s=0.05, stale_after_s=0.5)


async def crash(service: CdrService) -> None:
    """Stop every task without flushing or closing anything, as SIGKILL would."""
    for task in (service.writer._task, service.webhooks._task, service._housekeeping):
        assert task is not None
        task.cancel()
    await asyncio.sleep(0)


async def test_heartbeat_moves(store: Store) -> None:
    service = CdrService(store, SETTINGS, "node-a")
    await service.start()
    try:
        rows = await store.cdr._driver.fetch("SELECT heartbeat_at FROM cdr_nodes")
        first = rows[0][0]
        await asyncio.sleep(0.3)
        rows = await store.cdr._driver.fetch("SELECT heartbeat_at FROM cdr_nodes")
        assert rows[0][0] > first
    finally:
        await service.close()


async def test_restart_closes_own_open_records(store_url: str) -> None:
    store = await open_store(store_url)
    service = CdrService(store, SETTINGS, "node-a")
    await service.start()
    now = time.time()
    answered = call_events("talking", at=now - 5, answer_after=1.0)[:-1]
    ringing = call_events("ringing", at=now - 1, answer_after=None)[:-1]
    done = call_events("done", at=now - 10, end_after=2.0)
    for event in [*answered, *ringing, *done]:
        service.sink.emit(event)
    assert await service.writer.flush()
    await asyncio.sleep(0.2)  # heartbeats go on while the calls run
    await crash(service)
    rows = await store.cdr._driver.fetch("SELECT heartbeat_at FROM cdr_nodes")
    last_beat = float(rows[0][0])
    assert await store.cdr.count_open("node-a") == 2
    await store.close()

    store = await open_store(store_url)
    restarted = CdrService(store, SETTINGS, "node-a")
    await restarted.start()
    await restarted.close()
    talking = await store.cdr.get_record("talking")
    assert talking is not None
    assert (talking.end_reason, talking.released_by, talking.final_status) == (
        "interrupted", "server", 200,
    )  # fmt: skip
    assert talking.ended_at == last_beat
    assert talking.duration_s == round(last_beat - (now - 4), 3)
    ring = await store.cdr.get_record("ringing")
    assert ring is not None and ring.end_reason == "interrupted" and ring.final_status is None
    finished = await store.cdr.get_record("done")
    assert finished is not None and finished.end_reason == "normal"
    assert await store.cdr.count_open() == 0
    assert all(r.ok for r in await verify_chains(store.cdr))
    await store.close()


async def test_stale_node_is_recovered_by_another(store: Store) -> None:
    dead = CdrService(store, SETTINGS, "node-dead")
    await dead.start()
    for event in call_events("orphan", at=time.time(), answer_after=None)[:-1]:
        dead.sink.emit(event)
    assert await dead.writer.flush()
    await crash(dead)

    survivor = CdrService(store, SETTINGS, "node-alive")
    await survivor.start()  # node-dead's heartbeat is still fresh: not touched yet
    try:
        assert await store.cdr.count_open("node-dead") == 1
        await asyncio.sleep(SETTINGS.stale_after_s + 0.1)
        assert await survivor.recover_stale_nodes() == 1
    finally:
        await survivor.close()
    orphan = await store.cdr.get_record("orphan")
    assert orphan is not None and orphan.end_reason == "interrupted"
    assert orphan.node == "node-dead" and orphan.chain_seq == 1
    assert all(r.ok for r in await verify_chains(store.cdr))


async def test_late_final_after_recovery_is_skipped(store: Store) -> None:
    """A node cut off long enough to be declared dead must not break its chain later."""
    slow = CdrService(store, SETTINGS, "node-slow")
    await slow.start()
    events = call_events("late", at=time.time(), end_after=0.5)
    for event in events[:-1]:
        slow.sink.emit(event)
    assert await slow.writer.flush()
    closed = await store.cdr.close_open_records("node-slow", ended_at=None, now=time.time())
    assert closed == 1
    slow.sink.emit(events[-1])
    assert await slow.writer.flush()
    await slow.close()
    assert slow.writer.skipped == 1
    late = await store.cdr.get_record("late")
    assert late is not None and late.end_reason == "interrupted"
    assert all(r.ok for r in await verify_chains(store.cdr))
