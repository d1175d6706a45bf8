"""The asyncio side of the call engine: transports in, engine, transports out.

Mechanical on purpose (STYLE: "the asyncio side is mechanical"): parse, stamp
the Via, feed the sans-IO engine, flush what it returns, and keep one
`loop.call_at` armed for the engine's next deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from b2bua.app_sip import StatelessCore
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

    def message_received(self, data: bytes, source: Source, *, now: float) -> list[Outgoing]:
        """One datagram or framed message: answer malformed input, feed the engine."""
        if self._drop_untrusted and self.engine.trunks.trunk_for_source(source.host) is None:
            self.engine.counters.untrusted_requests += 1
            return []  # strangers cost no parsing when the operator says drop
        if not data.strip(b"\r\n"):
            return []  # CRLF keepalive (RFC 5626 section 4.4.1)
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

    def outputs(self) -> list[Outgoing]:
        """The engine's datagrams, addressed to the transport objects that carry them."""
        transports = self._transports
        out: list[Outgoing] = []
        for data, address in self.engine.drain():
            transport = transports.get(address.transport) or transports["UDP"]
            out.append(Outgoing(data, Source(transport, address.host, address.port)))
        return out


class TimedDispatcher:
    """The MessageSink for the engine core: one `loop.call_at` for every deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop, core: EngineCore | None = None) -> None:
        self.core = core
        self._loop = loop
        self._clock: Callable[[], float] = loop.time
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None

    def message_received(self, data: bytes, source: Source) -> None:
        """Feed one message and flush; re-arm the timer if the deadline moved."""
        core = self.core
        if core is None:
            return  # still starting: a trunk retransmits
        send_all(core.message_received(data, source, now=self._clock()))
        self.rearm()

    def stream_broken(self, data: bytes, error: ParseError, source: Source) -> None:
        """Pass an unframeable stream to the core before the transport closes it."""
        if self.core is not None:
            send_all(self.core.stream_broken(data, error, source, now=self._clock()))

    def rearm(self) -> None:
        """Keep exactly one timer, at the core's earliest deadline."""
        core = self.core
        deadline = core.next_deadline() if core is not None else None
        if deadline == self._armed_for:
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
        if self.core is not None:
            send_all(self.core.handle_timers(now=self._clock()))
        self.rearm()

    def close(self) -> None:
        """Cancel the armed timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
