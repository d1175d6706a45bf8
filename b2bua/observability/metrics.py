"""Prometheus metrics of one node, defined against an injected registry.

Two ways in, so nothing on the SIP hot path pays for a metric it does not need:

- call events (:class:`MetricsCallSink`, one of the app's call event sinks) feed
  the per-call counters and histograms: attempts (CPS), answers (ASR), results,
  durations (ACD), post-dial delay (PDD), rejections, binding lookups;
- state the engine, the binding index, the record writer and the policy already
  keep (plain integers, see :mod:`b2bua.observability.collectors`) is read when
  Prometheus scrapes, never updated per message.

Store latency comes from :meth:`Metrics.instrument_store`, which times every
public coroutine of the opened store in place (no edit of the store code).

Every name has the ``b2bua_`` prefix and base units (seconds). Labels are
low-cardinality only: never a phone number, a Call-ID or a binding id.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from b2bua.bindings.index import RejectReason
from b2bua.calls.events import (
    CallAnswered,
    CallAttempted,
    CallEnded,
    CallEvent,
    CallRinging,
)

__all__ = ["Metrics", "MetricsCallSink", "bounded_label"]

# PDD: carriers expect ringback within a few seconds; 30 s is a broken route.
PDD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0)
# ACD: protected-number calls (delivery, ride hailing) are mostly under two minutes.
DURATION_BUCKETS = (1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
# Store: a healthy SQLite write is about a millisecond, PostgreSQL a few.
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# Rejections that are the binding lookup's answer (the rest are the policy's).
LOOKUP_REJECTIONS = frozenset(reason.value for reason in RejectReason)

# Not operations but waits (a long poll for other nodes' changes) or teardown:
# timing them would bury real latencies under the poll timeout.
UNTIMED_OPERATIONS = frozenset({"wait_for_changes", "wait_for_notification", "close"})

# A call that never ends (an engine bug) must not grow the sink without bound.
MAX_TRACKED_CALLS = 1_000_000
# Label values are few (configured trunks, enums); the cap is a guard, not a size.
MAX_CACHED_CHILDREN = 256


def bounded_label(value: str | None, allowed: frozenset[str] | None = None) -> str:
    """A label value that cannot explode cardinality: `none`, known values, or `other`.

    Values come from code (enum values, configured trunk names), but a label must
    stay safe even if a peer-controlled string ever reaches it.
    """
    if not value:
        return "none"
    if allowed is not None:
        return value if value in allowed else "other"
    if len(value) > 48 or not value.replace("_", "").replace("-", "").isalnum():
        return "other"
    return value


@dataclass(slots=True)
class _CallProgress:
    """What the sink remembers of one call between its events."""

    attempted_at: float
    rejected: bool
    answered_at: float | None = None
    alerted: bool = False


class Metrics:
    """The event-fed metrics of one node, registered on `registry`.

    Scrape-time collectors (engine, trunks, bindings, records, policy, loop lag,
    readiness) are added separately with
    :func:`b2bua.observability.collectors.register_collectors`.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.call_attempts = Counter(
            "b2bua_call_attempts",
            "INVITEs for a middle number (rate = CPS), by inbound trunk.",
            ["trunk"],
            registry=registry,
        )
        self.calls = Counter(
            "b2bua_calls",
            "Ended call attempts by result (answered, unanswered, rejected) and end reason.",
            ["result", "end_reason"],
            registry=registry,
        )
        self.calls_answered = Counter(
            "b2bua_calls_answered",
            "Calls answered by the callee (ASR numerator).",
            registry=registry,
        )
        self.call_rejections = Counter(
            "b2bua_call_rejections",
            "Calls refused by this node before forwarding (binding or policy), by reason.",
            ["reason"],
            registry=registry,
        )
        self.binding_lookups = Counter(
            "b2bua_binding_lookups",
            "Binding lookups of inbound calls by result (found, or the rejection reason).",
            ["result"],
            registry=registry,
        )
        self.call_duration = Histogram(
            "b2bua_call_duration_seconds",
            "Answered call duration from answer to end (ACD).",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.post_dial_delay = Histogram(
            "b2bua_post_dial_delay_seconds",
            "Post-dial delay: INVITE received to first ringing or answer relayed.",
            buckets=PDD_BUCKETS,
            registry=registry,
        )
        self.store_latency = Histogram(
            "b2bua_store_operation_seconds",
            "Store operation latency by operation (store method name).",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        self.store_errors = Counter(
            "b2bua_store_errors",
            "Store operations that raised, by operation.",
            ["operation"],
            registry=registry,
        )
        self.store_up = Gauge(
            "b2bua_store_up",
            "1 while the last readiness ping of the store succeeded.",
            registry=registry,
        )
        self.call_sink = MetricsCallSink(self)

    # -- store timing ------------------------------------------------------------------

    def observe_store(self, operation: str, seconds: float, *, failed: bool = False) -> None:
        """Record one store operation; the hook any store-side code may call directly."""
        self.store_latency.labels(operation).observe(seconds)
        if failed:
            self.store_errors.labels(operation).inc()

    def instrument_store(self, store: Any) -> None:
        """Time every public coroutine method of `store` (and its `cdr`/`policy` parts).

        The bound methods are replaced on the instance only, so the store classes
        stay free of metrics and other stores (tests, CLI) are untouched. Async
        generators (row iterators) are left alone: their time is the consumer's;
        so are long polls (`UNTIMED_OPERATIONS`).
        """
        for prefix, target in (("", store), ("cdr.", getattr(store, "cdr", None)),
                               ("policy.", getattr(store, "policy", None))):  # fmt: skip
            if target is None:
                continue
            for name in dir(type(target)):
                if name.startswith("_") or name in UNTIMED_OPERATIONS:
                    continue
                method = getattr(target, name, None)
                if method is None or not inspect.iscoroutinefunction(method):
                    continue
                try:
                    setattr(target, name, self._timed(prefix + name, method))
                except AttributeError:
                    return  # a slotted object: leave it untimed rather than fail start

    def _timed(
        self, operation: str, method: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        histogram = self.store_latency.labels(operation)
        errors = self.store_errors.labels(operation)

        @functools.wraps(method)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            except Exception:
                errors.inc()
                raise
            finally:
                histogram.observe(time.perf_counter() - started)

        return timed


class MetricsCallSink:
    """A call event sink that turns events into counters and histograms.

    It keeps a few floats per call in progress (for PDD and ACD) and drops them
    at `CallEnded`; labels come from enums and configured trunk names only.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._calls: dict[str, _CallProgress] = {}
        # Labelled children: `labels()` takes a lock and builds a key per call, and
        # these few label values repeat on every call.
        self._children: dict[tuple[Counter, tuple[str, ...]], Any] = {}

    def _labelled(self, counter: Counter, *values: str) -> Any:
        """`counter.labels(*values)`, kept for the next call with the same values."""
        key = (counter, values)
        child = self._children.get(key)
        if child is None:
            child = counter.labels(*values)
            if len(self._children) < MAX_CACHED_CHILDREN:
                self._children[key] = child
        return child

    @property
    def tracked_calls(self) -> int:
        """Calls whose end has not been seen yet (tests use it to spot leaks)."""
        return len(self._calls)

    def emit(self, event: CallEvent) -> None:
        """Count one event (cheap: a dict operation and one or two counter updates)."""
        metrics = self._metrics
        if isinstance(event, CallAttempted):
            self._labelled(metrics.call_attempts, bounded_label(event.inbound_trunk)).inc()
            rejected = event.rejection is not None
            if rejected:
                reason = bounded_label(event.rejection)
                self._labelled(metrics.call_rejections, reason).inc()
                # Policy refusals (rate limits, block lists) may come before any lookup.
                if reason in LOOKUP_REJECTIONS:
                    self._labelled(metrics.binding_lookups, reason).inc()
            else:
                self._labelled(metrics.binding_lookups, "found").inc()
            if len(self._calls) < MAX_TRACKED_CALLS:
                self._calls[event.call_id] = _CallProgress(event.at, rejected)
        elif isinstance(event, CallRinging):
            self._alerted(event.call_id, event.at)
        elif isinstance(event, CallAnswered):
            metrics.calls_answered.inc()
            self._alerted(event.call_id, event.at)
            progress = self._calls.get(event.call_id)
            if progress is not None and progress.answered_at is None:
                progress.answered_at = event.at
        elif isinstance(event, CallEnded):
            self._ended(event)

    def _alerted(self, call_id: str, at: float) -> None:
        # PDD ends at the first of ringing or answer: a 200 without 180 is "alerting" too.
        progress = self._calls.get(call_id)
        if progress is not None and not progress.alerted:
            progress.alerted = True
            self._metrics.post_dial_delay.observe(max(0.0, at - progress.attempted_at))

    def _ended(self, event: CallEnded) -> None:
        progress = self._calls.pop(event.call_id, None)
        if progress is not None and progress.rejected:
            result = "rejected"
        elif progress is not None and progress.answered_at is not None:
            result = "answered"
            self._metrics.call_duration.observe(max(0.0, event.at - progress.answered_at))
        else:
            result = "unanswered"
        self._labelled(self._metrics.calls, result, event.end_reason.value).inc()
