"""Readiness: is the store reachable and is every SIP listener serving?

`/readyz` must fail while the node cannot take calls properly and recover on its
own, without a restart. A probe task pings the store (one cheap read) every
`interval_s`, each ping bounded by `timeout_s` so a black-holed database cannot
hang it, and keeps the result; `/readyz` reads that cached answer plus the
listeners' state, so a burst of probes never becomes a burst of queries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from b2bua.observability.logging import get_logger

__all__ = ["ReadinessMonitor", "listener_up"]

log = get_logger(__name__)


def listener_up(listener: Any) -> bool:
    """Whether a SIP transport still listens.

    Prefers a public `is_serving` (property or method) when the transport has
    one; otherwise looks at the asyncio objects the UDP and TCP transports hold
    (a closed datagram transport, a server that stopped serving).
    """
    serving = getattr(listener, "is_serving", None)
    if serving is not None:
        return bool(serving() if callable(serving) else serving)
    server = getattr(listener, "_server", None)
    if server is not None:
        return bool(server.is_serving())
    transport = getattr(listener, "_transport", None)
    if transport is not None:
        return not transport.is_closing()
    return False


class ReadinessMonitor:
    """Caches the store's reachability; combines it with the listeners' state."""

    def __init__(
        self,
        ping: Callable[[], Awaitable[object]],
        listeners: Callable[[], Iterable[Any]],
        *,
        interval_s: float = 1.0,
        timeout_s: float = 2.0,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._ping = ping
        self._listeners = listeners
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._on_change = on_change
        self.store_up = True  # start() only runs after the store opened
        self._task: asyncio.Task[None] | None = None

    def listeners_up(self) -> bool:
        """True when there is at least one listener and every one serves."""
        listeners = list(self._listeners())
        return bool(listeners) and all(listener_up(listener) for listener in listeners)

    def ready(self) -> bool:
        """The cached store state and the listeners' state now."""
        return self.store_up and self.listeners_up()

    async def check(self) -> bool:
        """Ping the store once, update the cached state and return it."""
        try:
            await asyncio.wait_for(self._ping(), self.timeout_s)
            up = True
        except Exception as error:  # any failure, StoreError or timeout, means not ready
            up = False
            if self.store_up:
                log.warning("store_unreachable", error=str(error) or type(error).__name__)
        if up and not self.store_up:
            log.info("store_reachable")
        if up != self.store_up or self._on_change is not None:
            self.store_up = up
            if self._on_change is not None:
                self._on_change(up)
        return up

    def start(self) -> None:
        """Start the periodic ping on the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="readiness")

    async def stop(self) -> None:
        """Stop pinging; safe if never started."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval_s)
