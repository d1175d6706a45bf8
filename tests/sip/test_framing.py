"""TCP stream framing by Content-Length (RFC 3261 section 18.3)."""

from __future__ import annotations

import pytest

from b2bua.sip import ParseError, StreamFramer, parse_message

MESSAGE = (
    b"OPTIONS sip:x@h SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
    b"To: <sip:x@h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 5\r\n\r\nhello"
)


def test_split_across_writes_and_joined_messages() -> None:
    framer = StreamFramer()
    stream = b"\r\n\r\n" + MESSAGE + MESSAGE.replace(b"CSeq: 1", b"CSeq: 2")
    out: list[bytes] = []
    for index in range(0, len(stream), 7):
        out.extend(framer.feed(stream[index : index + 7]))
    assert len(out) == 2
    assert [parse_message(m, stream=True).cseq.number for m in out] == [1, 2]
    assert framer.buffered == 0


def test_compact_content_length() -> None:
    framer = StreamFramer()
    assert framer.feed(MESSAGE.replace(b"Content-Length: 5", b"l:5")) == [
        MESSAGE.replace(b"Content-Length: 5", b"l:5")
    ]


def test_oversize_and_missing_length_are_errors() -> None:
    with pytest.raises(ParseError):
        StreamFramer(max_message_size=100).feed(MESSAGE.replace(b"Length: 5", b"Length: 500"))
    with pytest.raises(ParseError):
        StreamFramer(max_message_size=64).feed(b"X" * 65)
    with pytest.raises(ParseError, match="mandatory"):
        StreamFramer().feed(MESSAGE.replace(b"Content-Length: 5\r\n", b""))
    with pytest.raises(ParseError):
        StreamFramer().feed(MESSAGE.replace(b"Length: 5", b"Length: -5"))
