"""TCP (and TLS) transport: a listener plus a table of open connections.

Each connection owns a StreamFramer that cuts the byte stream into messages
(RFC 3261 section 18.3). Connections are kept in a table keyed by the peer's
`(host, port)` so a response goes back on the connection its request came in
on (section 18.2.2), and new outbound connections join the same table. A
connection that stays silent for `idle_timeout` is closed; one whose stream
cannot be framed is reported to the sink (which may answer 400) and closed.
"""

from __future__ import annotations

import asyncio
import socket
import ssl as ssl_module
from typing import cast

from b2bua.observability.logging import get_logger
from b2bua.sip import ParseError, StreamFramer
from b2bua.transport.base import MessageSink, PeerAddress, Source

log = get_logger(__name__)

CONNECT_TIMEOUT_S = 5.0
# A peer that stops reading must not make us buffer without bound.
MAX_WRITE_BUFFER = 1024 * 1024


def _peer(value: object) -> PeerAddress:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return ("", 0)


class TcpConnection(asyncio.Protocol):
    """One stream connection, accepted or opened by us."""

    def __init__(self, owner: TcpTransport) -> None:
        self._owner = owner
        self._framer = StreamFramer(owner.max_message_size)
        self._partial = b""  # the bytes the framer holds, kept to answer a framing error
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self.peer: PeerAddress = ("", 0)
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Register under the peer address and start the idle timer."""
        self._transport = cast(asyncio.Transport, transport)
        self.peer = _peer(transport.get_extra_info("peername"))
        self._owner._register(self)
        self._touch()
        self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        """Frame the stream and feed each whole message to the sink."""
        if self._transport is None or self._transport.is_closing():
            return
        self._touch()
        try:
            messages = self._framer.feed(data)
        except ParseError as error:
            buffered = self._framer.buffered
            broken = (self._partial + data)[-buffered:] if buffered else b""
            self._partial = b""
            self._broken(broken, error)
            return
        buffered = self._framer.buffered
        self._partial = (self._partial + data)[-buffered:] if buffered else b""
        source = Source(self._owner, self.peer[0], self.peer[1])
        for message in messages:
            try:
                self._owner.sink.message_received(message, source)
            except Exception:
                log.exception("tcp_message_failed", peer=self._peer_text)

    def _broken(self, data: bytes, error: ParseError) -> None:
        log.info("tcp_framing_error", peer=self._peer_text, error=error.reason)
        try:
            self._owner.sink.stream_broken(data, error, Source(self._owner, *self.peer))
        except Exception:
            log.exception("tcp_framing_error_failed", peer=self._peer_text)
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection and stop its timer."""
        if self._timer is not None:
            self._timer.cancel()
        self._owner._unregister(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def write(self, data: bytes) -> None:
        """Queue bytes on the connection; close it if the peer stopped reading."""
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(data)
        self._touch()
        if self._transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("tcp_peer_not_reading", peer=self._peer_text)
            self._transport.abort()

    def close(self) -> None:
        """Close after flushing what is already queued."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    @property
    def is_open(self) -> bool:
        """Whether writes still go out."""
        return self._transport is not None and not self._transport.is_closing()

    @property
    def _peer_text(self) -> str:
        return f"{self.peer[0]}:{self.peer[1]}"

    def _touch(self) -> None:
        self._last_activity = asyncio.get_running_loop().time()

    def _arm_idle_timer(self) -> None:
        # One timer per connection, re-armed from the last activity when it fires,
        # instead of cancelling and re-creating a timer on every packet.
        loop = asyncio.get_running_loop()
        deadline = self._last_activity + self._owner.idle_timeout
        self._timer = loop.call_at(deadline, self._idle_timer_fired)

    def _idle_timer_fired(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._last_activity + self._owner.idle_timeout:
            self.close()
            log.debug("tcp_idle_close", peer=self._peer_text)
        else:
            self._arm_idle_timer()


class TcpTransport:
    """A stream listener and its connections; TLS when given an SSL context."""

    reliable = True

    def __init__(
        self,
        sink: MessageSink,
        *,
        max_message_size: int,
        idle_timeout: float,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.sink = sink
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout
        self._ssl = ssl
        self._server: asyncio.Server | None = None
        self._local: PeerAddress = ("", 0)
        self._connections: dict[PeerAddress, TcpConnection] = {}
        self._pending: dict[PeerAddress, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        """`tls` with an SSL context, else `tcp`."""
        return "tls" if self._ssl is not None else "tcp"

    @property
    def local_address(self) -> PeerAddress:
        """The bound `(host, port)`."""
        return self._local

    @property
    def connection_count(self) -> int:
        """Open connections, accepted or outbound."""
        return len(self._connections)

    async def start(self, host: str, port: int) -> None:
        """Bind and listen; OSError if the address is taken."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._server = await loop.create_server(
            lambda: TcpConnection(self), host, port, family=family, ssl=self._ssl
        )
        self._local = _peer(self._server.sockets[0].getsockname())

    def _register(self, connection: TcpConnection) -> None:
        self._connections[connection.peer] = connection

    def _unregister(self, connection: TcpConnection) -> None:
        if self._connections.get(connection.peer) is connection:
            del self._connections[connection.peer]

    def send(
        self, data: bytes, address: PeerAddress, *, fallback: PeerAddress | None = None
    ) -> None:
        """Write on the connection to `address`, or connect to `fallback` and write."""
        connection = self._connections.get(address)
        if connection is not None and connection.is_open:
            connection.write(data)
            return
        target = fallback or address
        connection = self._connections.get(target)
        if connection is not None and connection.is_open:
            connection.write(data)
            return
        if target in self._pending:
            self._pending[target].append(data)
            return
        self._pending[target] = [data]
        task = asyncio.get_running_loop().create_task(self._connect(target))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, address: PeerAddress) -> None:
        loop = asyncio.get_running_loop()
        try:
            # TLS outbound needs a client context and trunk names; not yet configured.
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: TcpConnection(self), address[0], address[1]),
                CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError) as error:
            dropped = self._pending.pop(address, [])
            log.warning(
                "tcp_connect_failed",
                peer=f"{address[0]}:{address[1]}",
                error=str(error) or type(error).__name__,
                dropped=len(dropped),
            )
            return
        for data in self._pending.pop(address, []):
            connection.write(data)

    async def close(self, timeout: float = 2.0) -> None:
        """Stop listening, flush and close every connection, within `timeout` seconds."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        connections = list(self._connections.values())
        for connection in connections:
            connection.close()
        if connections:
            await asyncio.wait([c.closed for c in connections], timeout=timeout)
        if self._server is not None:
            await asyncio.wait_for(self._server.wait_closed(), timeout)


async def start_tcp(
    host: str,
    port: int,
    sink: MessageSink,
    *,
    max_message_size: int,
    idle_timeout: float,
    ssl: ssl_module.SSLContext | None = None,
) -> TcpTransport:
    """Bind a TCP (or TLS) listener on `host:port` feeding `sink`."""
    transport = TcpTransport(
        sink, max_message_size=max_message_size, idle_timeout=idle_timeout, ssl=ssl
    )
    await transport.start(host, port)
    return transport
