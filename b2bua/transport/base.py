"""What the SIP core and the transports agree on: addresses, sources, sinks.

Pure typing: no asyncio, no sockets, so the sans-IO core can import it.
The core is fed `(data, source)` where `source` names the transport the bytes
arrived on and the peer's address; it answers with `Outgoing` items that the
adapter hands to `item.destination.transport.send(...)`.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from b2bua.sip import ParseError

PeerAddress = tuple[str, int]


class Transport(Protocol):
    """One listening socket (UDP) or listener with its connections (TCP, TLS)."""

    @property
    def name(self) -> str:
        """`udp`, `tcp` or `tls`; upper-cased it is the Via transport."""
        ...

    @property
    def reliable(self) -> bool:
        """True for stream transports (no retransmissions, RFC 3261 section 17)."""
        ...

    @property
    def local_address(self) -> PeerAddress:
        """The bound `(host, port)`."""
        ...

    def send(
        self, data: bytes, address: PeerAddress, *, fallback: PeerAddress | None = None
    ) -> None:
        """Send one message to `address`, never blocking.

        Stream transports use the open connection keyed by `address` and, when
        there is none, connect to `fallback` (or `address`) first (RFC 3261
        section 18.2.2). Failures are logged and dropped: SIP retransmission and
        transaction timeouts are the recovery, not exceptions in the caller.
        """
        ...


class Source(NamedTuple):
    """Where a message came from: the transport it arrived on and the peer address."""

    transport: Transport
    host: str
    port: int

    @property
    def address(self) -> PeerAddress:
        """`(host, port)` of the peer."""
        return (self.host, self.port)


class Outgoing(NamedTuple):
    """One message for a transport to send; `fallback` as in `Transport.send`.

    A named tuple, like `Source`: several are built per call on the hot path.
    """

    data: bytes
    destination: Source
    fallback: PeerAddress | None = None


class MessageSink(Protocol):
    """What transports feed: the app's dispatcher in front of the SIP core."""

    def message_received(self, data: bytes, source: Source) -> None:
        """One datagram, or one whole message cut from a stream."""
        ...

    def stream_broken(self, data: bytes, error: ParseError, source: Source) -> None:
        """A stream could not be framed; `data` is the unframed rest.

        The transport closes the connection after this returns, so anything sent
        to `source` from inside this call (a 400) still goes out first.
        """
        ...


def send_all(outgoing: list[Outgoing]) -> None:
    """Hand each outgoing message to the transport named in its destination."""
    for item in outgoing:
        destination = item.destination
        destination.transport.send(
            item.data, (destination.host, destination.port), fallback=item.fallback
        )
