"""Garbage-collector pauses: how long each collection held the event loop.

A full collection walks every tracked object of the process, and a node holding
thousands of calls has millions of them: a pause of 100 ms or more is a stall of
every call's SIP handling, seen by carriers as delay. Loop lag shows that
something stalled; this histogram says whether it was the collector, by
generation. The callback costs two clock reads per collection.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

__all__ = ["GcPauseMonitor"]

PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class GcPauseMonitor:
    """Times each collection through `gc.callbacks` into a histogram by generation."""

    def __init__(self, registry: CollectorRegistry) -> None:
        histogram = Histogram(
            "b2bua_gc_pause_seconds",
            "Duration of each garbage collection (the event loop is stopped meanwhile), "
            "by generation.",
            ["generation"],
            buckets=PAUSE_BUCKETS,
            registry=registry,
        )
        self._by_generation = [histogram.labels(str(g)) for g in range(3)]
        self.max_pause_s = 0.0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self._by_generation[min(2, int(info.get("generation", 2)))].observe(pause)
        self.max_pause_s = max(self.max_pause_s, pause)

    def start(self) -> None:
        """Begin timing collections (idempotent)."""
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def stop(self) -> None:
        """Stop timing collections; safe if never started."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
