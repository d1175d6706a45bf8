"""Event-loop lag: how late the loop runs a callback that asked to run at a given time.

Everything of a node (SIP timers, datagrams, HTTP) shares one event loop, so a
blocking call anywhere shows up here first, before retransmissions and PDD rise.
A probe task sleeps `interval_s` and measures how much later than asked it woke
up; each sample goes into a histogram (for percentiles over a scrape interval) and
is kept as `last_lag` (read by a gauge at scrape time).
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CollectorRegistry, Histogram

__all__ = ["LoopLagMonitor"]

LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopLagMonitor:
    """A small task measuring the running loop's scheduling delay."""

    def __init__(self, registry: CollectorRegistry, *, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.last_lag = 0.0
        self.max_lag = 0.0
        self.samples = 0
        self._histogram = Histogram(
            "b2bua_event_loop_lag_seconds",
            "How late the event loop ran a callback scheduled for a given time.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start probing on the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        """Stop the probe task; safe if it never started."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def record(self, lag_s: float) -> None:
        """Take one sample (negative values, from clock granularity, count as zero)."""
        lag_s = max(0.0, lag_s)
        self.last_lag = lag_s
        self.max_lag = max(self.max_lag, lag_s)
        self.samples += 1
        self._histogram.observe(lag_s)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.record(loop.time() - expected)
