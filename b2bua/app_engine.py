"""The asyncio side of the call engine: transports in, engine, transports out.

Mechanical on purpose (STYLE: "the asyncio side is mechanical"): parse, stamp
the Via, feed the sans-IO engine, flush what it returns, and keep one
`loop.call_at` armed for the engine's next deadline.

The one measurement made here is load: `LoadShedder` times the SIP handling on
the wall clock and, when the loop has little idle time left, tells the engine's
admission control to refuse a share of new INVITEs (503 + Retry-After) before
the socket's receive queue can grow and carriers start retransmitting.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from b2bua.app_sip import StatelessCore
from b2bua.calls.admission import Admission
from b2bua.calls.engine import CallEngine
from b2bua.sip import ParseError, Request, parse_message
from b2bua.sip.address import Address
from b2bua.transport.base import Outgoing, Source, Transport, send_all
from b2bua.transport.via import stamp_received


class EngineCore:
    """What the transports feed while calls are routed: see the module docstring."""

    def __init__(
        self,
        engine: CallEngine,
        stateless: StatelessCore,
        transports: dict[str, Transport],
        *,
        drop_untrusted: bool,
        max_message_size: int,
    ) -> None:
        self.engine = engine
        self._stateless = stateless
        self._transports = transports
        self._drop_untrusted = drop_untrusted
        self._max_message_size = max_message_size
        # Readers of the receive queues that feed this core: its listeners', and the
        # app adds a SIP worker's inbox of forwards.
        self.queues: list[Callable[[], int | None]] = [
            reader
            for transport in {id(t): t for t in transports.values()}.values()
            if (reader := getattr(transport, "queued_bytes", None)) is not None
        ]

    def message_received(self, data: bytes, source: Source, *, now: float) -> list[Outgoing]:
        """One datagram or framed message: answer malformed input, feed the engine."""
        engine = self.engine
        if engine.trunks.trunk_for_source(source.host) is None:
            admission = engine.admission
            if (
                self._drop_untrusted
                or admission.shed_fraction > 0.0
                or not admission.source_allows(source.host, now=now)
            ):
                # Strangers cost no parsing when the operator says drop, when the
                # node is shedding load, or past their per-source rate: a flood
                # from outside must not take CPU from the trunks' calls.
                engine.counters.untrusted_requests += 1
                return []
        if data[:1] in b"\r\n" and not data.strip(b"\r\n"):
            # CRLF keepalive (RFC 5626 section 4.4.1). Looked at only when the first
            # octet is CR or LF (or there is none): strip() copies the datagram.
            return []
        try:
            if len(data) > self._max_message_size:
                raise ParseError("message exceeds the size limit", status_hint=513)
            message = parse_message(data, stream=source.transport.reliable)
            if isinstance(message, Request):
                stamp_received(message, source)
        except ParseError:
            # The stateless core parses again and answers 400/505/513 when it can.
            return self._stateless.message_received(data, source, now=now)
        address = Address(source.transport.name.upper(), source.host, source.port)
        self.engine.receive(message, address, now=now)
        return self.outputs()

    def stream_broken(
        self, data: bytes, error: ParseError, source: Source, *, now: float
    ) -> list[Outgoing]:
        """An unframeable stream: the stateless core answers what can be answered."""
        return self._stateless.stream_broken(data, error, source, now=now)

    def handle_timers(self, *, now: float) -> list[Outgoing]:
        """Run the engine's due timers and return what they send."""
        self.engine.handle_timers(now=now)
        return self.outputs()

    def next_deadline(self) -> float | None:
        """When the engine next needs `handle_timers`."""
        return self.engine.next_deadline()

    def queued_bytes(self) -> int | None:
        """Bytes waiting in the UDP receive queues; None when no transport can tell."""
        total: int | None = None
        for queued in self.queues:
            value = queued()
            if value is not None:
                total = (total or 0) + int(value)
        return total

    def outputs(self) -> list[Outgoing]:
        """The engine's datagrams, addressed to the transport objects that carry them."""
        transports = self._transports
        out: list[Outgoing] = []
        for data, address in self.engine.drain():
            transport = transports.get(address.transport) or transports["UDP"]
            out.append(Outgoing(data, Source(transport, address.host, address.port)))
        return out


# Load shedding. The signal is pending work: the datagrams waiting in the UDP
# receive queues (SO_MEMINFO bytes over the kernel's size of a small datagram),
# over the rate at which the loop handled messages in the last window, is the
# queueing delay a new message meets. That delay is what becomes carrier
# retransmissions (T1 = 500 ms), and it covers every cause: our own CPU, a
# neighbour holding the CPU, a GC pass. Shedding starts when it stays over the
# delay limit for `SHED_DELAY_WINDOWS` windows in a row. A GC pass can hold
# the loop for two windows on a slow machine (middle-generation collections of
# up to 100 ms were seen with 5,000 calls held) and its queue drains in the next.
# Near capacity, once the first calls' transactions expire (32 s in) the wait
# has spells of 50-100 ms: a 50 ms limit refused 0.1-1.5 % of the calls two
# workers then carried at 1,300 cps with no retransmission. A fifth of T1
# (`SHED_DELAY_OF_T1`: 100 ms at the default 500) for 150 ms is still far from
# T1; a queue of a few datagrams is never a delay worth shedding for, however
# few messages the window handled. Where no queue can be read (TCP only) the
# wall-time share spent handling SIP stands in, over `busy_limit` for
# `SHED_BUSY_WINDOWS` windows. The admitted share of new INVITEs falls by up to
# half per window while behind and grows back by 3 points per window once the
# queue is nearly empty; at most `MAX_SHED` of new INVITEs are refused (a
# trickle still gets through, so a node that has recovered is seen at once).
SHED_WINDOW_S = 0.05
SHED_DELAY_OF_T1 = 0.2
SHED_DELAY_WINDOWS = 3
SHED_BUSY_WINDOWS = 4
QUEUED_IDLE = 16 * 1024  # about 7 datagrams: nothing to speak of
DATAGRAM_TRUESIZE = 2304  # kernel bytes per small datagram (skb overhead included)
SHED_HYSTERESIS = 0.1
MAX_SHED = 0.95
DEFAULT_BUSY_LIMIT = 0.9


def _unknown_backlog() -> int | None:
    return None


class LoadShedder:
    """Queueing delay (or busy share), per window, driving `Admission.shed_fraction`.

    See the comment above for the signals. The cut is in proportion to the
    excess (multiplicative decrease), growth back is additive. Windows are
    closed by the next message, so after a quiet spell the first message eases
    the shedding by as many steps as windows passed. `busy_limit` 0 disables
    shedding; the signals are still measured (`share`, `delay_s`).
    """

    def __init__(
        self,
        busy_limit: float = DEFAULT_BUSY_LIMIT,
        clock: Callable[[], float] = time.perf_counter,
        *,
        t1_s: float = 0.5,
    ) -> None:
        self.busy_limit = busy_limit
        self.clock = clock
        self.delay_limit_s = t1_s * SHED_DELAY_OF_T1
        self.share = 0.0  # wall-time share spent handling SIP in the last window
        self.delay_s = 0.0  # estimated queueing delay at the end of the last window
        self._window_start = clock()
        self._busy = 0.0
        self._handled = 0
        self._behind = 0  # consecutive windows over the delay (or busy) limit

    def record(
        self,
        started: float,
        ended: float,
        admission: Admission,
        backlog: Callable[[], int | None] = _unknown_backlog,
    ) -> None:
        """Add one handling interval; at the end of a window, adjust `admission`."""
        self._busy += ended - started
        self._handled += 1
        elapsed = ended - self._window_start
        if elapsed < SHED_WINDOW_S:
            return
        limit = self.busy_limit
        share = self.share = self._busy / elapsed
        queued = backlog()
        if queued is None:
            over = share > limit
            idle = share < limit - SHED_HYSTERESIS
            needed = SHED_BUSY_WINDOWS
            excess = 1.0 - 3.0 * (share - limit)
        else:
            delay = self.delay_s = queued / DATAGRAM_TRUESIZE * elapsed / self._handled
            idle = queued < QUEUED_IDLE
            over = delay > self.delay_limit_s and not idle
            needed = SHED_DELAY_WINDOWS
            excess = self.delay_limit_s / delay if over else 1.0
        self._window_start = ended
        self._busy = 0.0
        self._handled = 0
        self._behind = self._behind + 1 if over else 0
        if limit <= 0.0:
            return
        admitted = 1.0 - admission.shed_fraction
        if self._behind >= needed:
            admitted *= max(0.5, min(0.9, excess))
        elif idle:
            admitted += 0.03 * elapsed / SHED_WINDOW_S
        admission.shed_fraction = min(MAX_SHED, max(0.0, 1.0 - admitted))


# The engine's timer is armed on a grid of this step. Every call leaves four
# transactions behind that expire 5-32 s later, each at its own moment: armed
# exactly, that was one more loop wake-up per expiry (800 a second at 200 calls
# per second). No SIP timer needs better than 10 ms (T1 is 500 ms).
TIMER_STEP_S = 0.01


class TimedDispatcher:
    """The MessageSink for the engine core: one `loop.call_at` for every deadline."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        core: EngineCore | None = None,
        *,
        busy_limit: float = DEFAULT_BUSY_LIMIT,
        t1_s: float = 0.5,
    ) -> None:
        self.core = core
        self._loop = loop
        self._clock: Callable[[], float] = loop.time
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None
        self.shedder = LoadShedder(busy_limit, t1_s=t1_s)

    def message_received(self, data: bytes, source: Source) -> None:
        """Feed one message and flush; re-arm the timer if the deadline moved."""
        core = self.core
        if core is None:
            return  # still starting: a trunk retransmits
        shedder = self.shedder
        started = shedder.clock()
        send_all(core.message_received(data, source, now=self._clock()))
        self.rearm()
        shedder.record(started, shedder.clock(), core.engine.admission, core.queued_bytes)

    def stream_broken(self, data: bytes, error: ParseError, source: Source) -> None:
        """Pass an unframeable stream to the core before the transport closes it."""
        if self.core is not None:
            send_all(self.core.stream_broken(data, error, source, now=self._clock()))

    def rearm(self) -> None:
        """Keep one timer, at or before the core's earliest deadline.

        Deadlines are rounded up to `TIMER_STEP_S`, so the timers due within one
        step run together. A timer armed for an earlier moment is left alone: it
        fires, finds little or nothing due and re-arms. New calls mostly add later deadlines
        (T1 and up), so this spares a cancel and a `call_at` on most messages.
        """
        core = self.core
        deadline = core.next_deadline() if core is not None else None
        if deadline is not None:
            on_grid = math.ceil(deadline / TIMER_STEP_S) * TIMER_STEP_S
            deadline = on_grid if on_grid >= deadline else on_grid + TIMER_STEP_S
        armed_for = self._armed_for
        if armed_for is not None and (deadline is None or armed_for <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed_for = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._armed_for = None
        core = self.core
        if core is None:
            self.rearm()
            return
        shedder = self.shedder
        started = shedder.clock()
        send_all(core.handle_timers(now=self._clock()))
        self.rearm()
        shedder.record(started, shedder.clock(), core.engine.admission, core.queued_bytes)

    def close(self) -> None:
        """Cancel the armed timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
