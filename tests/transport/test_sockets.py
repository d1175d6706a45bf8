"""UDP and TCP adapters on real loopback sockets: bytes in, bytes out."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from b2bua.sip import ParseError
from b2bua.transport.base import Source
from b2bua.transport.tcp import TcpTransport, start_tcp
from b2bua.transport.udp import UdpTransport, start_udp

pytestmark = pytest.mark.timeout(10)

MESSAGE = (
    b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK1\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Length: 5\r\n\r\nhello"
)


class RecordingSink:
    """Records what the transport delivers and echoes each message back."""

    def __init__(self, *, echo: bool = True, fail_first: bool = False) -> None:
        self.messages: list[tuple[bytes, Source]] = []
        self.broken: list[tuple[bytes, ParseError, Source]] = []
        self.echo = echo
        self.fail_first = fail_first
        self.arrived = asyncio.Event()

    def message_received(self, data: bytes, source: Source) -> None:
        self.messages.append((data, source))
        self.arrived.set()
        if self.fail_first and len(self.messages) == 1:
            raise RuntimeError("core bug")
        if self.echo:
            source.transport.send(b"echo:" + data, source.address)

    def stream_broken(self, data: bytes, error: ParseError, source: Source) -> None:
        self.broken.append((data, error, source))
        source.transport.send(b"SIP/2.0 400 Bad Request\r\n\r\n", source.address)


@pytest.fixture
async def udp_pair() -> AsyncIterator[tuple[UdpTransport, RecordingSink]]:
    sink = RecordingSink(fail_first=True)
    transport = await start_udp("127.0.0.1", 0, sink)
    yield transport, sink
    await transport.close()


@pytest.fixture
async def tcp_pair() -> AsyncIterator[tuple[TcpTransport, RecordingSink]]:
    sink = RecordingSink()
    transport = await start_tcp("127.0.0.1", 0, sink, max_message_size=4096, idle_timeout=0.3)
    yield transport, sink
    await transport.close()


def udp_client() -> socket.socket:
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.setblocking(False)
    return client


async def test_udp_round_trip_and_survives_sink_errors(
    udp_pair: tuple[UdpTransport, RecordingSink],
) -> None:
    transport, sink = udp_pair
    loop = asyncio.get_running_loop()
    client = udp_client()
    client_address = client.getsockname()
    with client:
        # The first delivery raises inside the sink; the listener must keep serving.
        client.sendto(b"first", transport.local_address)
        await asyncio.wait_for(sink.arrived.wait(), 2)
        client.sendto(MESSAGE, transport.local_address)
        reply = await asyncio.wait_for(loop.sock_recv(client, 65535), 2)
    assert reply == b"echo:" + MESSAGE
    data, source = sink.messages[1]
    assert data == MESSAGE
    assert source.transport is transport
    assert source.address == client_address
    assert transport.name == "udp" and not transport.reliable


async def test_udp_send_to_explicit_address(udp_pair: tuple[UdpTransport, RecordingSink]) -> None:
    transport, _ = udp_pair
    loop = asyncio.get_running_loop()
    with udp_client() as client:
        transport.send(b"ping", client.getsockname())
        assert await asyncio.wait_for(loop.sock_recv(client, 100), 2) == b"ping"


async def read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    return await asyncio.wait_for(reader.readuntil(marker), 2)


async def test_tcp_round_trip_reuses_the_connection(
    tcp_pair: tuple[TcpTransport, RecordingSink],
) -> None:
    transport, sink = tcp_pair
    reader, writer = await asyncio.open_connection(*transport.local_address)
    writer.write(MESSAGE)
    assert await read_until(reader, b"hello") == b"echo:" + MESSAGE
    data, source = sink.messages[0]
    assert data == MESSAGE
    assert source.address == writer.get_extra_info("sockname")[:2]
    assert transport.connection_count == 1
    # A later send to the peer address goes on the same connection.
    transport.send(b"later", source.address, fallback=("127.0.0.1", 1))
    assert await asyncio.wait_for(reader.readexactly(5), 2) == b"later"
    writer.close()


async def test_tcp_framing_across_partial_writes(
    tcp_pair: tuple[TcpTransport, RecordingSink],
) -> None:
    transport, sink = tcp_pair
    sink.echo = False
    _, writer = await asyncio.open_connection(*transport.local_address)
    stream = b"\r\n" + MESSAGE + MESSAGE.replace(b"c1", b"c2")
    for index in range(len(stream)):
        writer.write(stream[index : index + 1])
        await writer.drain()
        if index % 50 == 0:
            await asyncio.sleep(0)  # let the server read what is there so far
    for _ in range(100):
        if len(sink.messages) == 2:
            break
        await asyncio.sleep(0.01)
    assert [data for data, _ in sink.messages] == [MESSAGE, MESSAGE.replace(b"c1", b"c2")]
    writer.close()


async def test_tcp_idle_timeout_closes_the_connection(
    tcp_pair: tuple[TcpTransport, RecordingSink],
) -> None:
    transport, _ = tcp_pair
    reader, writer = await asyncio.open_connection(*transport.local_address)
    writer.write(MESSAGE)
    await read_until(reader, b"hello")
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(reader.read(), 3) == b""  # EOF: the server closed it
    elapsed = asyncio.get_running_loop().time() - started
    assert 0.2 < elapsed < 2.0
    await asyncio.sleep(0.05)
    assert transport.connection_count == 0
    writer.close()


async def test_tcp_garbage_is_reported_then_closed(
    tcp_pair: tuple[TcpTransport, RecordingSink],
) -> None:
    transport, sink = tcp_pair
    reader, writer = await asyncio.open_connection(*transport.local_address)
    garbage = b"\x00\xffjunk without content length\r\n\r\nmore"
    writer.write(garbage)
    # The sink answers first, then the transport closes the connection.
    assert await asyncio.wait_for(reader.read(), 2) == b"SIP/2.0 400 Bad Request\r\n\r\n"
    ((data, error, _),) = sink.broken
    assert data == garbage
    assert "Content-Length" in error.reason
    assert not sink.messages
    writer.close()


async def test_tcp_oversized_message_closes(tcp_pair: tuple[TcpTransport, RecordingSink]) -> None:
    transport, sink = tcp_pair
    reader, writer = await asyncio.open_connection(*transport.local_address)
    writer.write(b"INVITE sip:x@y SIP/2.0\r\nX: " + b"a" * 5000)
    assert (await asyncio.wait_for(reader.read(), 2)).startswith(b"SIP/2.0 400")
    assert sink.broken[0][1].status_hint == 513
    writer.close()


async def test_tcp_send_without_connection_connects_to_fallback(
    tcp_pair: tuple[TcpTransport, RecordingSink],
) -> None:
    transport, _ = tcp_pair
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.put_nowait(await reader.readexactly(8))
        writer.close()

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        # The original connection (some ephemeral port) is gone: RFC 3261 18.2.2 fallback.
        transport.send(b"response", ("127.0.0.1", 1), fallback=("127.0.0.1", port))
        assert await asyncio.wait_for(received.get(), 2) == b"response"


async def test_tcp_connect_failure_is_dropped_quietly(
    tcp_pair: tuple[TcpTransport, RecordingSink],
) -> None:
    transport, _ = tcp_pair
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    transport.send(b"nobody listens", ("127.0.0.1", port))
    await asyncio.sleep(0.2)
    assert transport.connection_count == 0
