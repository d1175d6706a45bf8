"""Everything observability of one node behind one object, so `app.py` wires it in a few lines.

`NodeObservability` owns the registry, the event-fed metrics, the scrape-time
collectors, the loop-lag probe, the GC pause timer and the readiness monitor::

    obs = NodeObservability()
    store = await open_store(url); obs.instrument_store(store)
    sinks.append(obs.call_sink)                   # before FanOutSink copies the list
    obs.start(Sources(engine=..., ...), store=store)
    create_api(..., is_ready=lambda: ready and obs.ready(), registry=obs.registry)
    ...
    await obs.stop()
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from b2bua.observability.collectors import Sources, register_collectors
from b2bua.observability.gc_pauses import GcPauseMonitor
from b2bua.observability.health import ReadinessMonitor
from b2bua.observability.loop_lag import LoopLagMonitor
from b2bua.observability.metrics import Metrics, MetricsCallSink

__all__ = ["NodeObservability", "Sources"]


class NodeObservability:
    """Registry, metrics, collectors, loop-lag probe, GC pauses and readiness of one node."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        loop_lag_interval_s: float = 0.5,
        ready_interval_s: float = 1.0,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.loop_lag = LoopLagMonitor(self.registry, interval_s=loop_lag_interval_s)
        self.gc_pauses = GcPauseMonitor(self.registry)
        self.readiness: ReadinessMonitor | None = None
        self._ready_interval_s = ready_interval_s
        self._sources: Sources | None = None

    @property
    def call_sink(self) -> MetricsCallSink:
        """The call event sink feeding the per-call metrics."""
        return self.metrics.call_sink

    def instrument_store(self, store: Any) -> None:
        """Time the store's operations (see :meth:`Metrics.instrument_store`)."""
        self.metrics.instrument_store(store)

    def start(self, sources: Sources, *, store: Any) -> None:
        """Register the collectors, start the loop-lag probe and the store pings.

        The store is pinged with `schema_version()`, a one-row read every store
        has; it is timed like any other store operation.
        """
        if self._sources is None:
            sources.loop_lag = lambda: self.loop_lag
            register_collectors(self.registry, sources)
            self._sources = sources
        self.metrics.store_up.set(1)
        self.readiness = ReadinessMonitor(
            store.schema_version,
            sources.listeners,
            interval_s=self._ready_interval_s,
            on_change=lambda up: self.metrics.store_up.set(1 if up else 0),
        )
        self.readiness.start()
        self.loop_lag.start()
        self.gc_pauses.start()

    def ready(self) -> bool:
        """Store reachable (cached ping) and every SIP listener serving."""
        return self.readiness is not None and self.readiness.ready()

    async def stop(self) -> None:
        """Stop the background probes; never raises."""
        await self.loop_lag.stop()
        self.gc_pauses.stop()
        if self.readiness is not None:
            await self.readiness.stop()
