"""Steering datagrams between SIP workers by Call-ID, over real loopback sockets."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

import pytest

from b2bua.sip import ParseError, make_response, parse_message
from b2bua.sip.message import Request
from b2bua.transport.base import PeerAddress, Source
from b2bua.transport.steering import Steering, WorkerSet, inbox_socket, owned_tokens, owner_of

pytestmark = pytest.mark.timeout(10)


def invite(call_id: str) -> bytes:
    return (
        "INVITE sip:7001@b2bua.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK1\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@192.0.2.7>;tag=1\r\n"
        "To: <sip:7001@b2bua.example.com>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def tokens(seed: int) -> Callable[[], str]:
    rng = random.Random(seed)
    return lambda: f"{rng.getrandbits(64):016x}"


def test_owner_is_deterministic() -> None:
    data = invite("a84b4c76e66710@pc33.example.com")
    assert len({owner_of(data, 3) for _ in range(10)}) == 1
    assert owner_of(data, 1) == 0


def test_no_call_id_has_no_owner() -> None:
    data = invite("x").replace(b"Call-ID: x\r\n", b"")
    assert owner_of(data, 2) is None
    assert owner_of(b"", 3) is None


@pytest.mark.parametrize("workers", [2, 3])
def test_owners_are_spread_evenly(workers: int) -> None:
    draw = tokens(workers)
    counts = [0] * workers
    for _ in range(10_000):
        owner = owner_of(invite(f"{draw()}@192.0.2.7"), workers)
        assert owner is not None
        counts[owner] += 1
    expected = 10_000 / workers
    assert all(abs(count - expected) <= 0.05 * expected for count in counts), counts


def test_request_response_and_compact_retransmission_share_an_owner() -> None:
    draw = tokens(1)
    for _ in range(50):
        request = invite(f"{draw()}@192.0.2.7")
        parsed = parse_message(request)
        assert isinstance(parsed, Request)
        response = make_response(parsed, 200, to_tag="9").to_bytes()
        compact = request.replace(b"Call-ID: ", b"i:")
        assert compact != request
        for workers in (2, 3):
            owner = owner_of(request, workers)
            assert owner_of(response, workers) == owner
            assert owner_of(compact, workers) == owner


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_owned_tokens_are_owned_by_the_worker(workers: int) -> None:
    for index in range(workers):
        draw = owned_tokens(tokens(index), index, workers)
        drawn = {draw() for _ in range(200)}
        assert len(drawn) == 200
        assert {owner_of(invite(f"{token}@host"), workers) for token in drawn} == {index}


def test_one_worker_keeps_the_generator() -> None:
    draw = tokens(0)
    assert owned_tokens(draw, 0, 1) is draw


class RecordingSink:
    """Stands in for the call engine: records what the steering feeds it."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, Source]] = []
        self.broken: list[tuple[bytes, ParseError, Source]] = []
        self.arrived = asyncio.Event()

    def message_received(self, data: bytes, source: Source) -> None:
        self.messages.append((data, source))
        self.arrived.set()

    def stream_broken(self, data: bytes, error: ParseError, source: Source) -> None:
        self.broken.append((data, error, source))

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(2):
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()


class FakeListener:
    """What a Source's transport offers; never sent on here."""

    name = "udp"
    reliable = False

    def __init__(self, port: int) -> None:
        self.local_address: PeerAddress = ("203.0.113.1", port)

    def send(
        self, data: bytes, address: PeerAddress, *, fallback: PeerAddress | None = None
    ) -> None:
        raise AssertionError("steering never sends on a listener")


class Worker(NamedTuple):
    steering: Steering
    sink: RecordingSink
    listeners: list[FakeListener]
    inbox: socket.socket


@pytest.fixture
async def workers() -> AsyncIterator[list[Worker]]:
    inboxes = [inbox_socket(), inbox_socket()]
    started: list[Worker] = []
    for index in range(2):
        sink = RecordingSink()
        steering = Steering(WorkerSet(index, inboxes), sink)
        listeners = [FakeListener(5060), FakeListener(5080)]
        steering.listeners = listeners  # type: ignore[assignment]
        await steering.start()
        started.append(Worker(steering, sink, listeners, inboxes[index]))
    yield started
    for worker in started:
        worker.steering.close()


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Exceptions that escaped a protocol callback into the loop."""
    errors: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield errors
    loop.set_exception_handler(None)


def owned_by(index: int, workers: int = 2) -> bytes:
    draw = tokens(100 + index)
    while True:
        data = invite(f"{draw()}@192.0.2.7")
        if owner_of(data, workers) == index:
            return data


async def test_sibling_owned_datagram_is_forwarded(workers: list[Worker]) -> None:
    first, second = workers
    data = owned_by(1)
    assert first.steering.steer(data, 1, "192.0.2.7", 5062)
    await second.sink.wait_for(1)
    assert second.sink.messages == [(data, Source(second.listeners[1], "192.0.2.7", 5062))]
    assert second.sink.messages[0][1].transport is second.listeners[1]
    assert first.steering.forwarded == 1
    assert first.sink.messages == [] and second.sink.broken == []


async def test_own_datagram_is_not_forwarded(workers: list[Worker]) -> None:
    first, second = workers
    assert not first.steering.steer(owned_by(0), 0, "192.0.2.7", 5062)
    assert not first.steering.steer(b"no call-id here", 0, "192.0.2.7", 5062)
    assert first.steering.forwarded == 0
    # Datagrams on loopback arrive in order: once this one is in, nothing came before.
    later = owned_by(1)
    assert first.steering.steer(later, 0, "192.0.2.7", 5062)
    await second.sink.wait_for(1)
    assert [data for data, _ in second.sink.messages] == [later]
    assert first.sink.messages == []


async def test_sources_kept_local_are_not_forwarded(workers: list[Worker]) -> None:
    first, second = workers
    first.steering.keeps_local = lambda host: host == "203.0.113.9"
    assert not first.steering.steer(owned_by(1), 0, "203.0.113.9", 5062)
    assert first.steering.forwarded == 0
    later = owned_by(1)
    assert first.steering.steer(later, 0, "192.0.2.7", 5062)
    await second.sink.wait_for(1)
    assert [data for data, _ in second.sink.messages] == [later]


async def captured_forward(data: bytes, listener: int, host: str, port: int) -> bytes:
    """The bytes a worker sends a sibling for `data` (the sibling's inbox is read here)."""
    loop = asyncio.get_running_loop()
    inboxes = [inbox_socket(), inbox_socket()]
    steering = Steering(WorkerSet(0, inboxes), RecordingSink())
    await steering.start()
    try:
        assert steering.steer(data, listener, host, port)
        return await asyncio.wait_for(loop.sock_recv(inboxes[1], 65535), 2)
    finally:
        steering.close()
        inboxes[1].close()


async def test_forward_from_a_foreign_socket_is_ignored(
    workers: list[Worker], loop_errors: list[dict[str, Any]]
) -> None:
    first, second = workers
    foreign = await captured_forward(owned_by(1), 0, "192.0.2.66", 5062)
    with inbox_socket() as stranger:
        stranger.sendto(foreign, second.inbox.getsockname())
    later = owned_by(1)
    assert first.steering.steer(later, 0, "192.0.2.7", 5062)
    await second.sink.wait_for(1)
    assert [source.host for _, source in second.sink.messages] == ["192.0.2.7"]
    assert loop_errors == []


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda packet: packet[:0], id="empty"),
        pytest.param(lambda packet: packet[:2], id="in-header"),
        pytest.param(lambda packet: packet[: packet.index(b"192.0.2.66") + 4], id="in-host"),
    ],
)
async def test_truncated_forward_from_a_sibling_is_ignored(
    workers: list[Worker], loop_errors: list[dict[str, Any]], cut: Callable[[bytes], bytes]
) -> None:
    first, second = workers
    packet = await captured_forward(owned_by(1), 0, "192.0.2.66", 5062)
    truncated = cut(packet)
    # Sent from worker 0's own inbox, so it passes the sibling check.
    first.inbox.sendto(truncated, second.inbox.getsockname())
    # And fed directly, so an exception would surface here rather than in the loop.
    second.steering.datagram_received(truncated, first.inbox.getsockname())
    later = owned_by(1)
    assert first.steering.steer(later, 0, "192.0.2.7", 5062)
    await second.sink.wait_for(1)
    assert second.sink.messages == [(later, Source(second.listeners[0], "192.0.2.7", 5062))]
    assert loop_errors == []


def test_forwards_waiting_in_the_inbox_count_as_queued_work() -> None:
    # Not started: nothing reads the inbox, as when the worker's loop is busy.
    inboxes = [inbox_socket(), inbox_socket()]
    try:
        steering = Steering(WorkerSet(1, inboxes), RecordingSink())
        assert steering.queued_bytes() == 0
        with inbox_socket() as sibling:
            for _ in range(3):
                sibling.sendto(owned_by(1), inboxes[1].getsockname())
        queued = steering.queued_bytes()
        # The kernel's size of a datagram (skb overhead included) is over 1 KiB each.
        assert queued is not None and queued >= 3 * 1024, queued
    finally:
        for sock in inboxes:
            sock.close()
