"""The stateless answering core: malformed requests get 400 when a response can be formed."""

from __future__ import annotations

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
