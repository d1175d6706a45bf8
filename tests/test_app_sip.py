"""The answering cores: malformed requests get 400 when a response can be formed, pings none."""

from __future__ import annotations

from calls.harness import CARRIER, Bench

from b2bua.app_engine import EngineCore
from b2bua.app_sip import StatelessCore
from b2bua.sip import parse_message
from b2bua.transport.base import PeerAddress, Source


class _Udp:
    name = "udp"
    reliable = False
    local_address: PeerAddress = ("127.0.0.1", 5060)

    def send(
        self, data: bytes, address: PeerAddress, *, fallback: PeerAddress | None = None
    ) -> None:
        raise AssertionError("the core returns what to send; it never sends")


HEADERS = (
    b"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n"
    b"To: <sip:c@d>;tag=2\r\nCall-ID: c1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
)


def test_missing_request_uri_gets_400_with_the_call_id() -> None:
    core = StatelessCore(is_trusted=lambda host: True)
    out = core.message_received(
        b"BYE  SIP/2.0\r\n" + HEADERS, Source(_Udp(), "127.0.0.1", 5999), now=0.0
    )
    assert len(out) == 1
    response = parse_message(out[0].data)
    assert response.call_id == "c1"
    assert getattr(response, "status", None) == 400


def test_garbage_without_headers_is_dropped() -> None:
    core = StatelessCore(is_trusted=lambda host: True)
    assert (
        core.message_received(b"\x00\x01garbage", Source(_Udp(), "127.0.0.1", 5999), now=0.0) == []
    )


def _engine_core() -> tuple[EngineCore, Bench]:
    bench = Bench()
    core = EngineCore(
        bench.engine,
        StatelessCore(is_trusted=lambda host: True),
        {"UDP": _Udp()},
        drop_untrusted=False,
        max_message_size=65535,
    )
    return core, bench


def test_crlf_keepalives_get_no_answer_and_a_leading_crlf_is_ignored() -> None:
    """RFC 5626 pings are dropped; CRLFs before a message are skipped (RFC 3261 s. 7.5)."""
    core, bench = _engine_core()
    source = Source(_Udp(), CARRIER.host, CARRIER.port)
    for ping in (b"", b"\r\n", b"\r\n\r\n", b"\n"):
        assert core.message_received(ping, source, now=bench.now) == []
    options = (
        b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.20:5070;branch=z9hG4bKo1\r\n"
        b"From: <sip:c@127.0.0.20>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: o1\r\n"
        b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    (answer,) = core.message_received(b"\r\n" + options, source, now=bench.now)
    response = parse_message(answer.data)
    assert getattr(response, "status", None) == 200 and response.call_id == "o1"
