"""Parser contract: exact fields, leniency where RFC 3261 asks, strictness elsewhere."""

from __future__ import annotations

import pytest

from b2bua.sip import Headers, ParseError, Request, Response, make_response, parse_message

INVITE = (
    b"INVITE sip:700123456789012@10.0.0.1;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.1.2.3:5060;branch=z9hG4bK-1;rport\r\n"
    b"Via: SIP/2.0/TCP 10.1.2.4;branch=z9hG4bK-2, SIP/2.0/UDP 10.1.2.5;branch=z9hG4bK-3\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Doe, John" <sip:13812345678@10.1.2.3>;tag=abc\r\n'
    b"To: <sip:700123456789012@10.0.0.1>\r\n"
    b"Call-ID: call-1@10.1.2.3\r\n"
    b"CSeq: 1 INVITE\r\n"
    b'Contact: "A, B" <sip:a@10.1.2.3>, <sip:b@10.1.2.3;x="1,2">\r\n'
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_request_fields() -> None:
    message = parse_message(INVITE)
    assert isinstance(message, Request)
    assert message.method == "INVITE"
    assert message.request_uri.user == "700123456789012"
    assert message.request_uri.param("user") == "phone"
    assert message.call_id == "call-1@10.1.2.3"
    assert (message.cseq.number, message.cseq.method) == (1, "INVITE")
    assert message.top_via.branch == "z9hG4bK-1"
    assert message.top_via.param("rport") == ""
    assert message.top_via.sent_by == "10.1.2.3:5060"
    assert [v.branch for v in message.vias] == ["z9hG4bK-1", "z9hG4bK-2", "z9hG4bK-3"]
    assert message.from_addr.display_name == "Doe, John"
    assert message.from_addr.tag == "abc"
    assert message.to_addr.tag is None
    assert message.body == b"v=0\n"


def test_list_headers_split_outside_quotes_and_brackets() -> None:
    message = parse_message(INVITE)
    assert message.headers.get_all("contact") == [
        '"A, B" <sip:a@10.1.2.3>',
        '<sip:b@10.1.2.3;x="1,2">',
    ]
    assert len(message.headers.get_all("via")) == 3
    # From is not a list header: its comma stays inside one value.
    assert message.headers.get_all("from") == ['"Doe, John" <sip:13812345678@10.1.2.3>;tag=abc']


def test_case_insensitive_and_compact_lookup() -> None:
    message = parse_message(INVITE.replace(b"Call-ID:", b"i:").replace(b"Via:", b"vIA:"))
    assert message.headers.get("CALL-ID") == "call-1@10.1.2.3"
    assert message.headers.get("i") == "call-1@10.1.2.3"
    assert len(message.vias) == 3


def test_response_fields() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
        b"To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 5 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_message(data)
    assert isinstance(message, Response)
    assert (message.status, message.reason) == (180, "Ringing")
    assert message.to_addr.tag == "2"
    assert message.cseq.method == "INVITE"


@pytest.mark.parametrize(
    ("mutation", "reason"),
    [
        (lambda m: m.replace(b"Content-Length: 4", b"Content-Length: 5"), "Content-Length"),
        (lambda m: m.replace(b"Content-Length: 4", b"Content-Length: x"), "Content-Length"),
        (lambda m: m.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"), "CSeq method"),
        (lambda m: m.replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE"), "CSeq"),
        (lambda m: m.replace(b"CSeq: 1 INVITE", b"CSeq: 2147483648 INVITE"), "out of range"),
        (lambda m: m.replace(b" SIP/2.0\r\n", b" SIP/2.0 extra\r\n", 1), "request line"),
        (lambda m: m.replace(b"INVITE sip", b"INV@TE sip", 1), "method"),
        (lambda m: m.replace(b"Call-ID: call-1@10.1.2.3\r\n", b""), "call-id"),
        (lambda m: m.replace(b"\r\n\r\n", b"\r\n"), "blank line"),
        (lambda m: m.replace(b"Max-Forwards: 70", b"Max Forwards: 70"), "header name"),
        (lambda m: m.replace(b"Max-Forwards: 70", b"Max-Forwards 70"), "colon"),
        (lambda m: m.replace(b"branch=z9hG4bK-1;rport", b"branch=z9hG4bK-1;;"), "parameter"),
        (lambda m: m.replace(b"SIP/2.0/UDP 10.1.2.3:5060", b"SIP/2.0/UDP 10.1.2.3:99999"), "port"),
    ],
)
def test_malformed_messages_raise_parse_error(mutation: object, reason: str) -> None:
    assert callable(mutation)
    with pytest.raises(ParseError, match=reason):
        parse_message(mutation(INVITE))


def test_parse_error_is_a_value_error_with_status_hint() -> None:
    with pytest.raises(ValueError) as caught:
        parse_message(b"garbage")
    assert isinstance(caught.value, ParseError)
    assert caught.value.status_hint == 400


def test_stream_mode_requires_content_length() -> None:
    without_length = INVITE.replace(b"Content-Length: 4\r\n", b"")
    assert parse_message(without_length).body == b"v=0\n"
    with pytest.raises(ParseError, match="mandatory"):
        parse_message(without_length, stream=True)


def test_leading_crlf_ignored_and_bare_lf_accepted() -> None:
    assert parse_message(b"\r\n\r\n" + INVITE).call_id == "call-1@10.1.2.3"
    bare = INVITE.replace(b"\r\n", b"\n")
    assert parse_message(bare).call_id == "call-1@10.1.2.3"


def test_serializer_rewrites_content_length_to_body() -> None:
    message = parse_message(INVITE)
    message.body = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n"
    out = message.to_bytes()
    assert f"Content-Length: {len(message.body)}\r\n".encode() in out
    assert parse_message(out).body == message.body


def test_make_response_copies_headers_and_adds_to_tag() -> None:
    request = parse_message(INVITE)
    assert isinstance(request, Request)
    response = make_response(request, 486, to_tag="xyz", extra=[("Retry-After", "5")])
    data = response.to_bytes()
    assert data.startswith(b"SIP/2.0 486 Busy Here\r\n")
    parsed = parse_message(data)
    assert parsed.to_addr.tag == "xyz"
    assert parsed.headers.get_all("via") == request.headers.get_all("via")
    assert parsed.headers.get("retry-after") == "5"
    assert b"Contact" not in data
    trying = make_response(request, 100, to_tag="xyz")
    assert parse_message(trying.to_bytes()).to_addr.tag is None


def test_headers_mutation() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2")])
    headers.prepend("Via", "SIP/2.0/UDP c;branch=z9hG4bK3")
    assert headers.remove_first("via") == "SIP/2.0/UDP c;branch=z9hG4bK3"
    assert headers.remove_first("via") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert headers.get_all("via") == ["SIP/2.0/UDP b;branch=z9hG4bK2"]
    headers.add("X-A", "1")
    headers.add("x-a", "2")
    headers.set("X-A", "3")
    assert headers.get_lines("x-a") == ["3"]
    assert headers.remove("X-a") == 1
    assert "x-a" not in headers
