"""Property: serializing then parsing any well-formed message gives it back."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from b2bua.sip import Headers, ParseError, Request, Response, parse_message

TOKEN = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=12,
)
VALUE = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E) | st.sampled_from(" \u4e2d"),
    max_size=40,
).map(str.strip)
HOST = st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}", fullmatch=True)
RESERVED = {"call-id", "cseq", "from", "to", "via", "content-length", "i", "f", "t", "v", "l"}


@st.composite
def messages(draw: st.DrawFn) -> Request | Response:
    host = draw(HOST)
    method = draw(st.sampled_from(["INVITE", "BYE", "OPTIONS", "INFO"]) | TOKEN)
    headers = Headers(
        [
            ("Via", f"SIP/2.0/UDP {host}:5060;branch=z9hG4bK{draw(TOKEN)}"),
            ("From", f"<sip:{draw(TOKEN)}@{host}>;tag={draw(TOKEN)}"),
            ("To", f"<sip:{draw(TOKEN)}@{host}>"),
            ("Call-ID", draw(TOKEN)),
            ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}"),
        ]
    )
    for name, value in draw(st.lists(st.tuples(TOKEN, VALUE), max_size=8)):
        if name.lower() not in RESERVED:
            headers.add(name, value)
    body = draw(st.binary(max_size=200))
    if draw(st.booleans()):
        return Request(method, f"sip:{draw(TOKEN)}@{host}", headers, body)
    status = draw(st.integers(100, 699))
    return Response(status, draw(VALUE), headers, body)


@settings(max_examples=300, deadline=None)
@given(messages())
def test_serialize_then_parse_is_identity(message: Request | Response) -> None:
    parsed = parse_message(message.to_bytes())
    assert type(parsed) is type(message)
    assert parsed.body == message.body
    assert list(parsed.headers)[:5] == list(message.headers)[:5]
    assert [(n.lower(), v) for n, v in parsed.headers if n != "Content-Length"] == [
        (n.lower(), v) for n, v in message.headers
    ]
    assert parsed.to_bytes() == message.to_bytes()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_parser_raises_only_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_message(data)


@settings(max_examples=500, deadline=None)
@given(messages(), st.data())
def test_mutated_messages_raise_only_parse_error(
    message: Request | Response, data: st.DataObject
) -> None:
    raw = bytearray(message.to_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    try:
        parsed = parse_message(bytes(raw))
    except ParseError:
        return
    # Whatever parses must serialize and read its routing fields without crashing,
    # or say ParseError when a lazily parsed field turns out malformed.
    try:
        _ = parsed.call_id, parsed.cseq, parsed.top_via, parsed.from_addr, parsed.to_addr
        if isinstance(parsed, Request):
            _ = parsed.request_uri
    except ParseError:
        pass
    parsed.to_bytes()
