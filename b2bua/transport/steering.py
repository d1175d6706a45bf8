"""Steering datagrams between SIP worker processes by Call-ID.

With `sip.workers` above 1, every worker binds each UDP listener with
SO_REUSEPORT, so each can send from the public address. The kernel spreads
datagrams over those sockets by the sender's address, and a trunk sends
everything from one socket: so one worker would get it all. Instead, the
worker that owns a datagram's Call-ID handles it (CRC-32 of the part before
"@", modulo the worker count), and whichever worker received it forwards it
there over loopback, with the peer's address and the listener it came in on.
Call-IDs this worker draws (B legs, keepalives) are drawn until it owns them,
so the callee's answers come back to the worker that holds the call.

Forwarded datagrams are accepted only from the siblings' own sockets: the
peer address inside them is trusted like a source address.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from b2bua.observability.logging import get_logger
from b2bua.sip.framing import call_id_key
from b2bua.transport.base import MessageSink, Source
from b2bua.transport.udp import RECEIVE_BUFFER, UdpTransport, receive_queue_bytes

log = get_logger(__name__)

# Listener index, peer port, length of the peer host text; then the host, then the datagram.
_HEADER = struct.Struct("!BHB")


def owner_of(data: bytes, workers: int) -> int | None:
    """The index of the worker that owns this datagram's call; None without a Call-ID."""
    key = call_id_key(data)
    return None if key is None else zlib.crc32(key) % workers


def owned_tokens(random: Callable[[], str], index: int, workers: int) -> Callable[[], str]:
    """`random`, redrawn until the token (a Call-ID's part before "@") is owned by `index`.

    Tags and branches need no owner, but they come from the same generator;
    with two workers that is two draws on average, about a microsecond.
    """
    if workers == 1:
        return random

    def token() -> str:
        while True:
            drawn = random()
            if zlib.crc32(drawn.encode()) % workers == index:
                return drawn

    return token


def inbox_socket() -> socket.socket:
    """A loopback UDP socket on which one worker receives forwarded datagrams."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.setblocking(False)
    return sock


@dataclass
class WorkerSet:
    """This worker's place among its siblings: its index and every worker's inbox."""

    index: int
    inboxes: Sequence[socket.socket]

    @property
    def count(self) -> int:
        """How many SIP workers share the listeners."""
        return len(self.inboxes)


class Steering(asyncio.DatagramProtocol):
    """Forwards datagrams this worker does not own; feeds the ones forwarded to it."""

    def __init__(self, workers: WorkerSet, sink: MessageSink) -> None:
        self._index = workers.index
        self._count = workers.count
        self._sink = sink
        self._inbox = workers.inboxes[workers.index]
        self._siblings = [sock.getsockname()[:2] for sock in workers.inboxes]
        self._accepted = frozenset(self._siblings)
        self.listeners: list[UdpTransport] = []
        # Sources whose datagrams stay with the worker that got them (set by the app:
        # strangers when the operator drops them, so a flood is not carried across).
        self.keeps_local: Callable[[str], bool] | None = None
        self.forwarded = 0
        self.forward_failures = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        """Start receiving on this worker's inbox."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=self._inbox)
        self._transport = transport

    def steer(self, data: bytes, listener: int, host: str, port: int) -> bool:
        """True when the datagram belongs to a sibling and was sent on to it."""
        keeps_local = self.keeps_local
        if keeps_local is not None and keeps_local(host):
            return False
        owner = owner_of(data, self._count)
        if owner is None or owner == self._index or self._transport is None:
            return False
        encoded = host.encode()
        packet = _HEADER.pack(listener, port, len(encoded)) + encoded + data
        # A failed send surfaces in error_received; the sender retransmits, as
        # for any datagram lost on the way.
        self._transport.sendto(packet, self._siblings[owner])
        self.forwarded += 1
        return True

    def queued_bytes(self) -> int | None:
        """Bytes of forwards waiting in this worker's inbox (see UdpTransport.queued_bytes).

        A worker that owns half the calls may get all of them through its inbox and
        none through its listener; load shedding must see this queue too.
        """
        return receive_queue_bytes(self._inbox)

    def error_received(self, exc: Exception) -> None:
        """A forward could not be sent (the loop reports it here, not from sendto)."""
        self.forward_failures += 1
        log.debug("steering_forward_failed", error=str(exc))

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """A sibling's forward: unpack it and feed it as if it had arrived here."""
        if (addr[0], addr[1]) not in self._accepted:
            return
        try:
            listener, port, length = _HEADER.unpack_from(data)
            start = _HEADER.size + length
            if len(data) < start:
                raise IndexError("forward cut inside the peer host")
            host = data[_HEADER.size : start].decode()
            transport = self.listeners[listener]
        except (struct.error, UnicodeDecodeError, IndexError):
            log.warning("steering_bad_forward")
            return
        try:
            self._sink.message_received(data[start:], Source(transport, host, port))
        except Exception:
            log.exception("udp_message_failed", peer=f"{host}:{port}")

    def close(self) -> None:
        """Stop receiving forwards."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
