"""UDP transport: one DatagramProtocol per listening address.

Each datagram is handed to the sink as is; parsing, answering and any size
check belong to the core. Sending is fire-and-forget `sendto`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import TYPE_CHECKING, Any, cast

from b2bua.observability.logging import get_logger
from b2bua.transport.base import MessageSink, PeerAddress, Source

if TYPE_CHECKING:
    from b2bua.transport.steering import Steering

log = get_logger(__name__)

RECEIVE_BUFFER = 4 * 1024 * 1024
# Linux SO_MEMINFO (include/uapi/linux/sock_diag.h): nine u32 counters, the first
# being the bytes queued for reading (SK_MEMINFO_RMEM_ALLOC, kernel overhead included).
SO_MEMINFO = 55
_MEMINFO = struct.Struct("9I")


def receive_queue_bytes(sock: Any) -> int | None:
    """Bytes queued for reading on `sock` (SO_MEMINFO); None where the OS cannot tell."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, _MEMINFO.size)
    except (OSError, AttributeError):
        return None
    return int(_MEMINFO.unpack(raw)[0])


class UdpTransport(asyncio.DatagramProtocol):
    """A bound UDP socket that feeds datagrams to a MessageSink."""

    name = "udp"
    reliable = False

    def __init__(
        self, sink: MessageSink, steering: Steering | None = None, listener: int = 0
    ) -> None:
        self._sink = sink
        # With several SIP workers: who owns each datagram, and this listener's index.
        self._steering = steering
        self._listener = listener
        self._transport: asyncio.DatagramTransport | None = None
        self._local: PeerAddress = ("", 0)
        self._closed = asyncio.get_running_loop().create_future()
        self._meminfo = True  # SO_MEMINFO answered so far

    @property
    def local_address(self) -> PeerAddress:
        """The bound `(host, port)`."""
        return self._local

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the socket once the loop has bound it."""
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)
        sockname = transport.get_extra_info("sockname")
        self._local = (sockname[0], sockname[1])

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Feed one datagram to the sink; an exception must never stop the listener."""
        try:
            steering = self._steering
            if steering is not None and steering.steer(data, self._listener, addr[0], addr[1]):
                return
            self._sink.message_received(data, Source(self, addr[0], addr[1]))
        except Exception:
            log.exception("udp_message_failed", peer=f"{addr[0]}:{addr[1]}")

    def queued_bytes(self) -> int | None:
        """Bytes waiting in the socket's receive queue; None where the OS cannot tell.

        This is the work that arrived but is not handled yet: load shedding
        watches it, since it turns into delay and then into retransmissions.
        One getsockopt, a few microseconds; called once per shedding window.
        """
        if self._transport is None or not self._meminfo:
            return None
        queued = receive_queue_bytes(self._transport.get_extra_info("socket"))
        if queued is None:
            self._meminfo = False  # not Linux, or an old kernel: stop asking
        return queued

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (port unreachable) surface here; they are normal on UDP."""
        log.debug("udp_error", error=str(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket is closed."""
        if not self._closed.done():
            self._closed.set_result(None)

    def send(
        self, data: bytes, address: PeerAddress, *, fallback: PeerAddress | None = None
    ) -> None:
        """Send one datagram; `fallback` only matters for stream transports."""
        if self._transport is None or self._transport.is_closing():
            log.debug("udp_send_after_close", peer=f"{address[0]}:{address[1]}")
            return
        try:
            self._transport.sendto(data, address)
        except (OSError, ValueError) as error:
            # A bad destination in one response must not disturb anyone else.
            log.warning("udp_send_failed", peer=f"{address[0]}:{address[1]}", error=str(error))

    async def close(self) -> None:
        """Close the socket and wait until the loop has released it."""
        if self._transport is not None:
            self._transport.close()
            await self._closed


def bind_shared_udp(host: str, port: int) -> socket.socket:
    """A UDP socket on `host:port` that sibling worker processes may bind too.

    SO_REUSEPORT lets every SIP worker send from the public address; which
    worker handles a datagram is decided by `b2bua.transport.steering`.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def start_udp(
    host: str,
    port: int,
    sink: MessageSink,
    *,
    sock: socket.socket | None = None,
    steering: Steering | None = None,
    listener: int = 0,
) -> UdpTransport:
    """Bind a UDP listener on `host:port` (or use the bound `sock`) feeding `sink`.

    OSError if it cannot bind.
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if sock is not None:
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: UdpTransport(sink, steering, listener), sock=sock
        )
    else:
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: UdpTransport(sink, steering, listener), local_addr=(host, port), family=family
        )
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Carriers send in bursts; the kernel default (about 200 KiB) overflows
        # first. Best effort: the kernel caps it at net.core.rmem_max.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    return protocol
