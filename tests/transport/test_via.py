"""Via stamping and response routing (RFC 3261 sections 18.2.1-18.2.2, RFC 3581). Pure."""

from __future__ import annotations

import pytest

from b2bua.sip import make_response, parse_message, parse_via
from b2bua.sip.message import Request
from b2bua.transport.base import PeerAddress, Source
from b2bua.transport.via import outgoing_response, response_route, stamp_received, stamp_via


class FakeTransport:
    def __init__(self, name: str) -> None:
        self.name = name
        self.reliable = name != "udp"
        self.local_address: PeerAddress = ("127.0.0.1", 5060)

    def send(
        self, data: bytes, address: PeerAddress, *, fallback: PeerAddress | None = None
    ) -> None:
        raise AssertionError("pure code must not send")


UDP = FakeTransport("udp")
TCP = FakeTransport("tcp")


@pytest.mark.parametrize(
    ("via", "source_host", "expected"),
    [
        # Same host, no rport: nothing to add (RFC 3261 section 18.2.1).
        (
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa",
            "192.0.2.1",
            "192.0.2.1:5060;branch=z9hG4bKa",
        ),
        # Different host: received.
        (
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa",
            "192.0.2.1",
            "10.0.0.1:5060;branch=z9hG4bKa;received=192.0.2.1",
        ),
        # A domain name is never the source address.
        (
            "SIP/2.0/UDP pc.example.com;branch=z9hG4bKa",
            "192.0.2.1",
            "pc.example.com;branch=z9hG4bKa;received=192.0.2.1",
        ),
        # rport: filled with the source port, and received added even if equal (RFC 3581 s.4).
        (
            "SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKa",
            "192.0.2.1",
            "192.0.2.1:5060;rport=40000;branch=z9hG4bKa;received=192.0.2.1",
        ),
        # IPv6 sent-by in brackets equals the bare source address.
        (
            "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa",
            "2001:db8::1",
            "[2001:db8::1]:5060;branch=z9hG4bKa",
        ),
    ],
)
def test_stamp_via(via: str, source_host: str, expected: str) -> None:
    parsed = parse_via(via)
    stamp_via(parsed, Source(UDP, source_host, 40000))
    assert str(parsed) == "SIP/2.0/UDP " + expected


REQUEST = (
    b"OPTIONS sip:x@192.0.2.9 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5070;rport;branch=z9hG4bKa,"
    b" SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_stamp_received_rewrites_only_the_top_via_and_responses_copy_it() -> None:
    request = parse_message(REQUEST)
    assert isinstance(request, Request)
    assert len(request.vias) == 2  # parsed (and kept) before the stamp
    stamp_received(request, Source(UDP, "192.0.2.1", 40000))
    assert request.headers.get_all("via") == [
        "SIP/2.0/UDP 10.0.0.1:5070;rport=40000;branch=z9hG4bKa;received=192.0.2.1",
        "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb",
    ]
    assert request.top_via.param("received") == "192.0.2.1"
    # What stays parsed after the stamp is what a fresh parse of the stamped bytes reads.
    fresh = parse_message(request.to_bytes())
    assert [str(v) for v in request.vias] == [str(v) for v in fresh.vias]
    assert str(request.top_via) == str(fresh.top_via)
    assert (request.cseq, request.from_tag, request.to_tag) == (
        fresh.cseq, fresh.from_tag, fresh.to_tag,
    )  # fmt: skip
    outgoing = outgoing_response(make_response(request, 200), Source(UDP, "192.0.2.1", 40000))
    assert b"rport=40000;branch=z9hG4bKa;received=192.0.2.1, SIP/2.0/UDP 10.0.0.2" in outgoing.data
    # UDP with rport: back to the source address and port (RFC 3581 section 4).
    assert (outgoing.destination.host, outgoing.destination.port) == ("192.0.2.1", 40000)
    assert outgoing.fallback is None


@pytest.mark.parametrize(
    ("via", "expected"),
    [
        ("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa;received=192.0.2.1", ("192.0.2.1", 5070)),
        ("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa;received=192.0.2.1", ("192.0.2.1", 5060)),
        ("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKa", ("192.0.2.1", 5070)),
        ("SIP/2.0/UDP 10.0.0.1:5070;rport=4444;received=192.0.2.1", ("192.0.2.1", 4444)),
        ("SIP/2.0/UDP [2001:db8::1];branch=z9hG4bKa", ("2001:db8::1", 5060)),
    ],
)
def test_udp_response_route(via: str, expected: tuple[str, int]) -> None:
    destination, fallback = response_route(parse_via(via), Source(UDP, "192.0.2.1", 40000))
    assert (destination.host, destination.port) == expected
    assert destination.transport is UDP
    assert fallback is None


def test_stream_response_route_uses_the_connection_then_sent_by() -> None:
    via = parse_via("SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bKa;received=192.0.2.1")
    source = Source(TCP, "192.0.2.1", 40000)
    destination, fallback = response_route(via, source)
    assert destination == source  # the connection the request arrived on
    assert fallback == ("192.0.2.1", 5070)  # RFC 3261 section 18.2.2 if it closed
    tls = parse_via("SIP/2.0/TLS 10.0.0.1;branch=z9hG4bKa;received=192.0.2.1")
    assert response_route(tls, source)[1] == ("192.0.2.1", 5061)
