"""The shortcuts the hot path takes give exactly what the general code gives.

Header lines, Via, name-addr and CSeq values are parsed once per distinct text;
SDP, parameters and name-addr values have a fast path; the timer heap keeps one
entry per transaction; a waiting transaction keeps its request as text. Each
test pins the shortcut to the general result (or to the RFC timer values).
"""

from __future__ import annotations

import pytest

from b2bua.sip import make_response, parse_message, parse_name_addr, parse_via
from b2bua.sip.headers import Headers
from b2bua.sip.message import Request, Response, parse_cseq
from b2bua.sip.sdp import anonymize_sdp
from b2bua.sip.transaction import TransactionLayer
from b2bua.sip.transaction_base import RequestReceived, TransactionState
from b2bua.sip.transaction_client import InviteClientTransaction, NonInviteClientTransaction
from b2bua.sip.uri import _parse_name_addr, _split_params, name_addr_tag

from .test_transaction_support import TRUNK, UDP_PEER, inbound, outbound, reply, sends

S = TransactionState


# --- values parsed once per text -------------------------------------------------


def test_parsed_values_are_fresh_objects_for_every_caller() -> None:
    text = '"Alice" <sip:alice@192.0.2.1;user=phone>;tag=a1'
    first = parse_name_addr(text)
    first.set_param("tag", "changed")
    first.uri.set_param("user", "ip")
    again = parse_name_addr(text)
    assert again.tag == "a1" and again.uri.param("user") == "phone"
    assert again == _parse_name_addr(text)
    via_text = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport"
    via = parse_via(via_text)
    via.set_param("received", "198.51.100.1")
    assert parse_via(via_text).params == [("branch", "z9hG4bKx"), ("rport", None)]
    # A CSeq is immutable, so one object may serve every message.
    assert parse_cseq("7 INVITE") is parse_cseq("7 INVITE")
    assert (parse_cseq("7 INVITE").number, parse_cseq("7 INVITE").method) == (7, "INVITE")


def test_tags_read_without_objects_match_the_parsed_form() -> None:
    values = ("<sip:a@b>;tag=x1", "<sip:a@b>;TAG=x2;lr", "<sip:a@b>", "sip:a@b;tag", "B <sip:b@c>")
    for text in values:
        assert name_addr_tag(text) == parse_name_addr(text).tag
    message = parse_message(inbound("BYE", to_tag="t7").to_bytes())
    assert (message.from_tag, message.to_tag) == ("atag", "t7")
    assert message.to_tag == message.to_addr.tag


def test_messages_that_share_header_lines_stay_independent() -> None:
    first = parse_message(inbound().to_bytes())
    second = parse_message(inbound().to_bytes())
    first.headers.set("Call-ID", "changed")
    first.invalidate()
    assert second.call_id == "in-call-1" and first.call_id == "changed"
    assert second.headers == parse_message(inbound().to_bytes()).headers


@pytest.mark.parametrize(
    "text",
    ["user=phone", "lr", "a=1;b;c=", "transport=tcp;lr", " a = 1 ; b", "a=\u00a0x", "a=\tb"],
)
def test_parameter_splitting_with_and_without_whitespace(text: str) -> None:
    expected = []
    for raw in text.split(";"):
        name, eq, value = raw.partition("=")
        expected.append((name.strip(), value.strip() if eq else None))
    assert _split_params(text) == expected


@pytest.mark.parametrize(
    ("text", "display", "uri", "params"),
    [
        ('"Alice" <sip:a@b>;tag=1', "Alice", "sip:a@b", [("tag", "1")]),
        ('""<sip:a@b>', "", "sip:a@b", []),
        ("Bob  <sip:b@c:5070;lr>", "Bob", "sip:b@c:5070;lr", []),
        ("<sips:x@[::1]:5061>;expires=60 ", None, "sips:x@[::1]:5061", [("expires", "60")]),
        ('"A\\"B" <tel:+123>', 'A"B', "tel:+123", []),  # escapes: the general path
        ("sip:a@b;tag=2", None, "sip:a@b", [("tag", "2")]),  # addr-spec: the general path
    ],
)
def test_name_addr_forms(text: str, display: str | None, uri: str, params: list[object]) -> None:
    parsed = parse_name_addr(text)
    assert (parsed.display_name, str(parsed.uri), parsed.params) == (display, uri, params)


# --- SDP -------------------------------------------------------------------------


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
@pytest.mark.parametrize(
    "lines",
    [
        [b"v=0", b"o=alice 1 2 IN IP4 192.0.2.1", b"s=Talk", b"c=IN IP4 192.0.2.1", b""],
        [b"v=0", b"o=alice 1 2 IN IP4 192.0.2.1", b"s=Talk", b"i=secret", b"u=x", b""],
        [b"o=short", b"s=first", b"m=audio 4000 RTP/AVP 0"],
        [b"v=0", b"s=", b"o=a b c d e f", b"s=again", b"e=mail@x", b"p=+8613800000000"],
    ],
)
def test_sdp_fast_path_matches_the_line_by_line_rewrite(newline: bytes, lines: list[bytes]) -> None:
    body = newline.join(lines)
    expected: list[bytes] = []
    for line in lines:
        if line.startswith(b"o="):
            fields = line[2:].split(b" ")
            rest = b" ".join(fields[1:]) if len(fields) == 6 else b"0 0 IN IP4 0.0.0.0"
            line = b"o=- " + rest
        elif line.startswith(b"s="):
            line = b"s=-"
        elif line.startswith((b"i=", b"u=", b"e=", b"p=")):
            continue
        expected.append(line)
    assert anonymize_sdp(body) == newline.join(expected)


# --- serialization ---------------------------------------------------------------


def test_content_length_is_written_where_the_headers_put_it_or_last() -> None:
    built = Request("OPTIONS", "sip:a@b", Headers([("Via", "v"), ("Call-ID", "c")]), b"xy")
    assert built.to_bytes() == (
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: v\r\nCall-ID: c\r\nContent-Length: 2\r\n\r\nxy"
    )
    relayed = Response(
        200, headers=Headers([("Content-Length", "9"), ("X", "1"), ("l", "7")]), body=b"abc"
    )
    assert relayed.to_bytes() == b"SIP/2.0 200 OK\r\nContent-Length: 3\r\nX: 1\r\n\r\nabc"


# --- one heap entry per transaction ------------------------------------------------


def test_a_later_timer_adds_no_heap_entry_and_a_stopped_one_wakes_nobody() -> None:
    layer = TransactionLayer()
    invite = outbound()
    tx = layer.send_request(invite, TRUNK, now=0.0)
    assert isinstance(tx, InviteClientTransaction)
    assert (tx.timer_a, tx.timer_b) == (0.5, 32.0)
    assert len(layer._heap) == 1  # Timer B rides on Timer A's entry
    sends(layer)
    layer.receive(reply(invite, 180), TRUNK, now=0.1)
    assert layer.next_deadline() is None  # Timer A and B stopped: no wake-up at 0.5
    layer.receive(reply(invite, 200), TRUNK, now=0.2)
    assert tx.state is S.ACCEPTED and tx.timer_m == 32.2
    assert layer.next_deadline() == 32.2
    assert layer.handle_timers(now=32.1) == [] and tx.state is S.ACCEPTED
    assert [type(e).__name__ for e in layer.handle_timers(now=32.2)] == ["TransactionTerminated"]


def test_retransmissions_keep_their_rfc_schedule() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(outbound("OPTIONS"), TRUNK, now=0.0)
    assert isinstance(tx, NonInviteClientTransaction)
    assert len(sends(layer)) == 1
    fired = []
    while (deadline := layer.next_deadline()) is not None and deadline < 32.0:
        layer.handle_timers(now=deadline)
        fired.append((deadline, len(sends(layer))))
    # Timer E doubles from T1 up to T2 (RFC 3261 section 17.1.2.2); 1 send each.
    assert fired[:6] == [(0.5, 1), (1.5, 1), (3.5, 1), (7.5, 1), (11.5, 1), (15.5, 1)]
    assert layer.next_deadline() == 32.0  # Timer F, armed at 0 without an entry of its own


# --- a waiting transaction keeps text only ------------------------------------------


def test_completed_transactions_let_go_of_their_parsed_request() -> None:
    layer = TransactionLayer()
    (event,) = layer.receive(inbound(), UDP_PEER, now=0.0)
    assert isinstance(event, RequestReceived)
    server = event.transaction
    original = server.request.to_bytes()
    server.respond(make_response(server.request, 200, to_tag="t"), now=0.0)
    assert server.state is S.ACCEPTED and server._request is None
    assert server.request.to_bytes() == original  # rebuilt from the kept text
    client = layer.send_request(outbound("BYE"), TRUNK, now=0.0)
    layer.receive(reply(client.request, 200), TRUNK, now=0.1)
    assert client.state is S.COMPLETED and client._request is None
    assert client._request_bytes == b""  # Completed never resends the request
    assert client.request.method == "BYE"
