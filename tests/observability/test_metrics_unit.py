"""The metrics module without a server: events in, samples out, on a fresh registry."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from b2bua.calls.events import (
    CallAnswered,
    CallAttempted,
    CallEnded,
    CallForwarded,
    CallRinging,
    EndReason,
    ReleasedBy,
)
from b2bua.observability.collectors import Sources, register_collectors
from b2bua.observability.gc_pauses import GcPauseMonitor
from b2bua.observability.loop_lag import LoopLagMonitor
from b2bua.observability.metrics import Metrics
from b2bua.sip.address import Address
from b2bua.store import open_store

SOURCE = Address("UDP", "127.0.0.1", 5060)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def attempted(call_id: str, at: float, rejection: str | None = None) -> CallAttempted:
    return CallAttempted(
        call_id,
        at,
        f"in-{call_id}",
        SOURCE,
        "carrier-a",
        "13800000001",
        "700100000000001",
        None if rejection else "b1",
        "t1",
        None,
        "AXB",
        "a_to_b",
        "700100000000001",
        rejection,
    )


def test_a_call_lifecycle_feeds_every_call_metric() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    sink = metrics.call_sink
    sink.emit(attempted("c1", 100.0))
    sink.emit(CallForwarded("c1", 100.1, "out-1", "carrier-b", "13900000002", "700100000000001"))
    sink.emit(CallRinging("c1", 101.5))
    sink.emit(CallAnswered("c1", 104.0))
    sink.emit(CallEnded("c1", 164.0, 200, EndReason.NORMAL, ReleasedBy.CALLER))
    sink.emit(attempted("c2", 200.0, rejection="not_participant"))
    sink.emit(CallEnded("c2", 200.0, 403, EndReason.REJECTED, ReleasedBy.SERVER))
    sink.emit(attempted("c3", 300.0, rejection="rate_limited"))
    sink.emit(CallEnded("c3", 300.0, 403, EndReason.REJECTED, ReleasedBy.SERVER))
    sink.emit(attempted("c4", 400.0))
    sink.emit(CallEnded("c4", 430.0, 486, EndReason.BUSY, ReleasedBy.CALLEE))

    assert value(registry, "b2bua_call_attempts_total", trunk="carrier-a") == 4
    assert value(registry, "b2bua_calls_answered_total") == 1
    assert value(registry, "b2bua_calls_total", result="answered", end_reason="normal") == 1
    assert value(registry, "b2bua_calls_total", result="rejected", end_reason="rejected") == 2
    assert value(registry, "b2bua_calls_total", result="unanswered", end_reason="busy") == 1
    assert value(registry, "b2bua_call_rejections_total", reason="rate_limited") == 1
    # Policy refusals are not binding lookups; the binding's own refusals are.
    assert value(registry, "b2bua_binding_lookups_total", result="not_participant") == 1
    assert value(registry, "b2bua_binding_lookups_total", result="rate_limited") == 0
    assert value(registry, "b2bua_binding_lookups_total", result="found") == 2
    assert value(registry, "b2bua_post_dial_delay_seconds_count") == 1
    assert value(registry, "b2bua_post_dial_delay_seconds_sum") == pytest.approx(1.5)
    assert value(registry, "b2bua_call_duration_seconds_sum") == pytest.approx(60.0)
    assert sink.tracked_calls == 0


def test_pdd_ends_at_answer_without_ringing() -> None:
    registry = CollectorRegistry()
    sink = Metrics(registry).call_sink
    sink.emit(attempted("c1", 10.0))
    sink.emit(CallAnswered("c1", 12.0))
    sink.emit(CallEnded("c1", 13.0, 200, EndReason.NORMAL, ReleasedBy.CALLEE))
    assert value(registry, "b2bua_post_dial_delay_seconds_sum") == pytest.approx(2.0)


def fake_engine() -> SimpleNamespace:
    trunk = SimpleNamespace(
        trunk=SimpleNamespace(name="carrier-a"), up=False, active_calls=2, calls_total=7
    )
    return SimpleNamespace(
        active_calls=3,
        calls_by_a={1: 1, 2: 2},
        calls_by_b={1: 1},
        draining=False,
        layer=SimpleNamespace(live_count=5, retransmissions=4, timeouts=1),
        admission=SimpleNamespace(shed_fraction=0.25),
        counters=SimpleNamespace(
            overload_rejections=15,
            call_limit_rejections=1,
            transaction_limit_rejections=2,
            rate_limited=3,
            shed_rejections=4,
            draining_rejections=5,
            untrusted_requests=2,
            malformed=3,
            requests_by_method={"INVITE": 9, "BYE": 2, "X-EVIL-1380000": 1, "FOO": 1},
            responses_by_status={200: 4, 486: 1, 180: 2, 99999: 1},
        ),
        trunks=SimpleNamespace(states=[trunk]),
        router=SimpleNamespace(
            policy=SimpleNamespace(
                counters=SimpleNamespace(
                    rejected={"rate_limited": 3},
                    alerts={"fraud_distinct_numbers": 1},
                    auto_blocks=1,
                )
            )
        ),
    )


def test_collectors_read_engine_state_at_scrape_time() -> None:
    registry = CollectorRegistry()
    engine = fake_engine()
    writer = SimpleNamespace(depth=12, committed=40, dropped=0, failures=0, emit=print)
    webhooks = SimpleNamespace(delivered=5, failed_attempts=2, given_up=1)
    cdr = SimpleNamespace(writer=writer, webhooks=webhooks)
    dispatcher = SimpleNamespace(shedder=SimpleNamespace(delay_s=0.07))
    register_collectors(registry, Sources(engine=lambda: engine, extras=lambda: [cdr, dispatcher]))
    assert value(registry, "b2bua_active_calls") == 3
    assert value(registry, "b2bua_transactions_active") == 5
    assert value(registry, "b2bua_dialogs_active") == 3
    assert value(registry, "b2bua_sip_requests_total", method="INVITE") == 9
    assert value(registry, "b2bua_sip_requests_total", method="other") == 2  # peer-made names
    assert value(registry, "b2bua_sip_responses_total", status_class="4xx", code="486") == 1
    assert value(registry, "b2bua_trunk_up", trunk="carrier-a") == 0
    assert value(registry, "b2bua_trunk_calls_total", trunk="carrier-a") == 7
    assert value(registry, "b2bua_sip_retransmissions_total") == 4
    overload = {
        reason: value(registry, "b2bua_overload_rejections_total", reason=reason)
        for reason in ("call_limit", "transaction_limit", "rate_limit", "load_shed", "draining")
    }
    assert overload == {
        "call_limit": 1, "transaction_limit": 2, "rate_limit": 3, "load_shed": 4, "draining": 5
    }  # fmt: skip
    assert value(registry, "b2bua_sip_queue_delay_seconds") == pytest.approx(0.07)
    assert value(registry, "b2bua_load_shed_ratio") == pytest.approx(0.25)
    assert value(registry, "b2bua_policy_rejections_total", rule="rate_limited") == 3
    assert value(registry, "b2bua_fraud_alerts_total", rule="fraud_distinct_numbers") == 1
    assert value(registry, "b2bua_cdr_queue_depth") == 12
    assert value(registry, "b2bua_webhook_deliveries_total", outcome="given_up") == 1
    engine.active_calls = 0  # read live, not copied at registration
    assert value(registry, "b2bua_active_calls") == 0
    assert b"99999" not in generate_latest(registry)


def test_collectors_before_start_describe_without_samples() -> None:
    registry = CollectorRegistry()
    register_collectors(registry, Sources())
    text = generate_latest(registry).decode()
    assert "# TYPE b2bua_active_calls gauge" in text
    assert registry.get_sample_value("b2bua_active_calls") is None


async def test_store_operations_are_timed(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    store = await open_store(f"sqlite:///{tmp_path}/m.db")
    try:
        metrics.instrument_store(store)
        await store.schema_version()
        await store.list_tenants()
        with pytest.raises(Exception):  # noqa: B017 - whatever the store raises is counted
            await store.get_tenant("missing")
    finally:
        await store.close()
    count = "b2bua_store_operation_seconds_count"
    assert value(registry, count, operation="schema_version") == 1
    assert value(registry, count, operation="list_tenants") == 1
    assert value(registry, "b2bua_store_errors_total", operation="get_tenant") == 1


async def test_loop_lag_sees_a_blocked_loop() -> None:
    registry = CollectorRegistry()
    monitor = LoopLagMonitor(registry, interval_s=0.02)
    monitor.start()
    try:
        await asyncio.sleep(0.05)
        time.sleep(0.15)  # block the loop on purpose
        await asyncio.sleep(0.05)
    finally:
        await monitor.stop()
    assert monitor.max_lag >= 0.1
    assert value(registry, "b2bua_event_loop_lag_seconds_count") == monitor.samples >= 2
    assert value(registry, "b2bua_event_loop_lag_seconds_bucket", le="0.05") < monitor.samples


def test_gc_pauses_are_timed_by_generation() -> None:
    registry = CollectorRegistry()
    monitor = GcPauseMonitor(registry)
    # A heap of cycles makes the full collection measurably long.
    cycles = [[] for _ in range(200_000)]
    for item in cycles:
        item.append(item)
    monitor.start()
    try:
        gc.collect(0)
        del cycles
        gc.collect()
    finally:
        monitor.stop()
    gc.collect()  # after stop: not counted
    assert value(registry, "b2bua_gc_pause_seconds_count", generation="0") >= 1
    assert value(registry, "b2bua_gc_pause_seconds_count", generation="2") == 1
    assert value(registry, "b2bua_gc_pause_seconds_sum", generation="2") >= monitor.max_pause_s > 0
