"""Scrape-time collectors: state other parts already keep, read when Prometheus asks.

The engine, the transaction layer, the trunk table, the binding index, the call
record writer and the abuse policy keep plain integers and dictionaries; these
collectors turn them into metric families at scrape time, so the SIP hot path
never touches a metrics object. Sources are passed as getters (they exist only
after `Application.start`) and read duck-typed with `getattr`, so a part that is
not wired yet simply contributes no samples (the family is still described, which
keeps dashboards and the name check of the tests stable).

Collect runs on the event loop (the `/metrics` route is `async def`): reading the
engine's dictionaries from a worker thread could see them change mid-iteration.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from b2bua.observability.health import listener_up
from b2bua.observability.metrics import bounded_label

__all__ = ["Sources", "register_collectors"]

# Methods a B2BUA sees; anything else a peer invents is folded into `other`.
SIP_METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE", "INFO"}
    | {"REFER", "NOTIFY", "SUBSCRIBE", "MESSAGE", "PUBLISH"}
)
# Counting a million bindings by mode takes tens of milliseconds: do it at most this often.
BINDINGS_CACHE_S = 10.0

Getter = Callable[[], Any]


def _none() -> Any:
    return None


@dataclass
class Sources:
    """Getters for what the collectors read; each may return None until started.

    `extras` returns candidate objects (the app's sinks, CDR service, policy) in
    which the collectors look, duck-typed, for the record writer (`depth`), the
    webhook worker (`delivered`) and the abuse policy counters (`alerts`).
    """

    engine: Getter = _none
    bindings: Getter = _none
    listeners: Callable[[], Iterable[Any]] = tuple
    extras: Callable[[], Iterable[Any]] = tuple
    health: Getter = _none
    loop_lag: Getter = _none


def register_collectors(registry: CollectorRegistry, sources: Sources) -> None:
    """Register every scrape-time collector on `registry`."""
    for collector in (
        _EngineCollector(sources),
        _BindingCollector(sources),
        _RecordsCollector(sources),
        _PolicyCollector(sources),
        _RuntimeCollector(sources),
    ):
        registry.register(collector)


class _Base(Collector):
    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def describe(self) -> Iterable[Metric]:
        # Nothing to check for duplicates up front; describing by collecting would
        # read the engine at registration, before it exists.
        return ()


class _EngineCollector(_Base):
    """Calls, transactions, dialogs, SIP message counters, trunks."""

    def collect(self) -> Iterator[Metric]:
        engine = self.sources.engine()
        active = GaugeMetricFamily("b2bua_active_calls", "Calls in progress (answered or not).")
        transactions = GaugeMetricFamily(
            "b2bua_transactions_active", "SIP transactions held in memory."
        )
        dialogs = GaugeMetricFamily(
            "b2bua_dialogs_active", "SIP dialogs held in memory (A and B legs)."
        )
        draining = GaugeMetricFamily(
            "b2bua_draining", "1 while the node refuses new calls to stop."
        )
        requests = CounterMetricFamily(
            "b2bua_sip_requests", "SIP requests received, by method.", labels=["method"]
        )
        responses = CounterMetricFamily(
            "b2bua_sip_responses",
            "SIP responses received, by status class and code.",
            labels=["status_class", "code"],
        )
        retransmissions = CounterMetricFamily(
            "b2bua_sip_retransmissions", "SIP requests, responses and ACKs sent again."
        )
        timeouts = CounterMetricFamily(
            "b2bua_sip_transaction_timeouts", "Transactions ended by Timer B, F or H."
        )
        overload = CounterMetricFamily(
            "b2bua_overload_rejections",
            "New requests refused with 503 and Retry-After, by the limit that refused them.",
            labels=["reason"],
        )
        untrusted = CounterMetricFamily(
            "b2bua_untrusted_requests", "Requests from sources outside every trunk."
        )
        malformed = CounterMetricFamily("b2bua_malformed_messages", "Messages that did not parse.")
        trunk_up = GaugeMetricFamily(
            "b2bua_trunk_up", "1 while the trunk answers keepalives.", labels=["trunk"]
        )
        trunk_active = GaugeMetricFamily(
            "b2bua_trunk_active_calls", "Outbound calls in progress per trunk.", labels=["trunk"]
        )
        trunk_calls = CounterMetricFamily(
            "b2bua_trunk_calls", "Outbound call legs started per trunk.", labels=["trunk"]
        )
        families = (
            *(active, transactions, dialogs, draining, requests, responses, retransmissions),
            *(timeouts, overload, untrusted, malformed, trunk_up, trunk_active, trunk_calls),
        )
        if engine is None:
            yield from families
            return
        active.add_metric([], engine.active_calls)
        layer = engine.layer
        transactions.add_metric([], layer.live_count)
        dialogs.add_metric([], len(engine.calls_by_a) + len(engine.calls_by_b))
        draining.add_metric([], 1.0 if engine.draining else 0.0)
        retransmissions.add_metric([], layer.retransmissions)
        timeouts.add_metric([], layer.timeouts)
        counters = engine.counters
        for reason, count in (
            ("call_limit", counters.call_limit_rejections),
            ("transaction_limit", counters.transaction_limit_rejections),
            ("rate_limit", counters.rate_limited),
            ("load_shed", counters.shed_rejections),
            ("draining", counters.draining_rejections),
        ):
            overload.add_metric([reason], count)
        untrusted.add_metric([], counters.untrusted_requests)
        malformed.add_metric([], counters.malformed)
        by_method: Tally[str] = Tally()
        for method, count in list(counters.requests_by_method.items()):
            by_method[bounded_label(method, SIP_METHODS)] += count
        for method, count in sorted(by_method.items()):
            requests.add_metric([method], count)
        for status, count in sorted(counters.responses_by_status.items()):
            if 100 <= status <= 699:
                responses.add_metric([f"{status // 100}xx", str(status)], count)
        for state in engine.trunks.states:
            name = state.trunk.name
            trunk_up.add_metric([name], 1.0 if state.up else 0.0)
            trunk_active.add_metric([name], state.active_calls)
            trunk_calls.add_metric([name], state.calls_total)
        yield from families


class _BindingCollector(_Base):
    """Active bindings by mode, from the in-memory index (cached, see BINDINGS_CACHE_S)."""

    def __init__(self, sources: Sources) -> None:
        super().__init__(sources)
        self._counted_at = 0.0
        self._counts: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "b2bua_bindings_active",
            "Active bindings in the routing index, by mode.",
            labels=["mode"],
        )
        service = self.sources.bindings()
        index = getattr(service, "index", None)
        by_id = getattr(index, "by_id", None)
        if by_id is not None:
            now = time.monotonic()
            if not self._counted_at or now - self._counted_at >= BINDINGS_CACHE_S:
                self._counts = dict(Tally(str(b.mode) for b in list(by_id.values())))
                self._counted_at = now
            for mode in ("AXB", "AXYB", "GXB", "AXN"):
                family.add_metric([mode], self._counts.get(mode, 0))
        yield family


def _find(candidates: Iterable[Any], test: Callable[[Any], bool]) -> Any:
    for candidate in candidates:
        if candidate is not None and test(candidate):
            return candidate
    return None


class _RecordsCollector(_Base):
    """The call record writer's queue and the webhook deliveries (b2bua.cdr)."""

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "b2bua_cdr_queue_depth", "Call events and records waiting for the batched writer."
        )
        written = CounterMetricFamily("b2bua_cdr_records_committed", "Call records committed.")
        dropped = CounterMetricFamily(
            "b2bua_cdr_events_dropped", "Call events dropped because the writer queue was full."
        )
        failures = GaugeMetricFamily(
            "b2bua_cdr_write_failures", "Consecutive failed record batch commits (0 when healthy)."
        )
        webhooks = CounterMetricFamily(
            "b2bua_webhook_deliveries", "Webhook delivery attempts by outcome.", labels=["outcome"]
        )
        candidates = list(self.sources.extras())
        expanded = [*candidates, *(getattr(c, "writer", None) for c in candidates),
                    *(getattr(c, "webhooks", None) for c in candidates)]  # fmt: skip
        writer = _find(expanded, lambda c: isinstance(getattr(c, "depth", None), int))
        if writer is not None:
            depth.add_metric([], writer.depth)
            written.add_metric([], getattr(writer, "committed", 0))
            dropped.add_metric([], getattr(writer, "dropped", 0))
            failures.add_metric([], getattr(writer, "failures", 0))
        worker = _find(expanded, lambda c: hasattr(c, "delivered") and hasattr(c, "given_up"))
        if worker is not None:
            webhooks.add_metric(["delivered"], worker.delivered)
            webhooks.add_metric(["failed_attempt"], getattr(worker, "failed_attempts", 0))
            webhooks.add_metric(["given_up"], worker.given_up)
        yield from (depth, written, dropped, failures, webhooks)


class _PolicyCollector(_Base):
    """Abuse-control rejections by rule and fraud alerts (b2bua.policy counters)."""

    def collect(self) -> Iterator[Metric]:
        rejections = CounterMetricFamily(
            "b2bua_policy_rejections",
            "Calls refused by the abuse controls, by rule.",
            labels=["rule"],
        )
        alerts = CounterMetricFamily(
            "b2bua_fraud_alerts", "Fraud patterns tripped (each blocks a caller), by rule.",
            labels=["rule"],
        )  # fmt: skip
        blocks = CounterMetricFamily("b2bua_policy_auto_blocks", "Automatic block entries made.")
        engine = self.sources.engine()
        candidates = [getattr(engine, "router", None), *self.sources.extras()]
        expanded = [*candidates, *(getattr(c, "policy", None) for c in candidates)]
        counters = _find(
            (getattr(c, "counters", None) for c in expanded),
            lambda c: hasattr(c, "alerts") and hasattr(c, "rejected"),
        )
        if counters is not None:
            for rule, count in sorted(counters.rejected.items()):
                rejections.add_metric([bounded_label(rule)], count)
            for rule, count in sorted(counters.alerts.items()):
                alerts.add_metric([bounded_label(rule)], count)
            blocks.add_metric([], getattr(counters, "auto_blocks", 0))
        yield from (rejections, alerts, blocks)


class _RuntimeCollector(_Base):
    """Event-loop lag (last sample), listeners and TCP connections."""

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "b2bua_event_loop_lag_last_seconds", "Scheduling delay of the last loop-lag probe."
        )
        monitor = self.sources.loop_lag()
        if monitor is not None:
            lag.add_metric([], monitor.last_lag)
        listeners = GaugeMetricFamily(
            "b2bua_listener_up",
            "1 while a SIP listener is bound and serving.",
            labels=["transport"],
        )
        connections = GaugeMetricFamily(
            "b2bua_tcp_connections", "Open SIP TCP/TLS connections.", labels=["transport"]
        )
        up: dict[str, float] = {}
        open_connections: Tally[str] = Tally()
        for listener in self.sources.listeners():
            name = str(getattr(listener, "name", "unknown"))
            up[name] = min(up.get(name, 1.0), 1.0 if listener_up(listener) else 0.0)
            count = getattr(listener, "connection_count", None)
            if isinstance(count, int):
                open_connections[name] += count
        for name, value in sorted(up.items()):
            listeners.add_metric([name], value)
        for name, count in sorted(open_connections.items()):
            connections.add_metric([name], count)
        forwards = CounterMetricFamily(
            "b2bua_worker_forwards",
            "UDP datagrams passed to the SIP worker owning their Call-ID (sip.workers > 1).",
            labels=["outcome"],
        )
        extras = list(self.sources.extras())
        steering = _find(extras, lambda c: hasattr(c, "forward_failures"))
        if steering is not None:
            forwards.add_metric(["sent"], steering.forwarded)
            forwards.add_metric(["failed"], steering.forward_failures)
        yield from (lag, listeners, connections, forwards)
        yield from self._load(extras)

    def _load(self, extras: list[Any]) -> Iterator[Metric]:
        # What the load shedder sees and does: the delay is its input, the ratio
        # its output. Together they tell a 503 storm from a slow peer or a GC pass.
        delay = GaugeMetricFamily(
            "b2bua_sip_queue_delay_seconds",
            "Estimated wait of a new SIP message in the receive queues (last 50 ms window).",
        )
        shed = GaugeMetricFamily(
            "b2bua_load_shed_ratio", "Share of new INVITEs refused now by load shedding (0-1)."
        )
        dispatcher = _find(extras, lambda c: hasattr(c, "shedder"))
        if dispatcher is not None:
            delay.add_metric([], dispatcher.shedder.delay_s)
        engine = self.sources.engine()
        if engine is not None:
            shed.add_metric([], engine.admission.shed_fraction)
        yield from (delay, shed)
