"""`call_id_key`: the Call-ID's part before "@", read from raw bytes before parsing.

SIP workers steer datagrams with it, so every message of a call (request,
response, retransmission in either header form) must give the same key, and
the key must agree with what `parse_message` reads as the Call-ID.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from b2bua.sip import ParseError, parse_message
from b2bua.sip.framing import call_id_key

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "rfc4475"

REQUEST_LINE = b"INVITE sip:7001@b2bua.example.com SIP/2.0"
RESPONSE_LINE = b"SIP/2.0 180 Ringing"
HEADERS = [
    b"Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK1",
    b"Max-Forwards: 70",
    b"From: <sip:alice@192.0.2.7>;tag=1",
    b"To: <sip:7001@b2bua.example.com>",
    b"CSeq: 1 INVITE",
]
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\ni=session info\r\n"
    b"c=IN IP4 192.0.2.7\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\ni=media info\r\n"
)


def message(
    call_id: bytes | None, *, start: bytes = REQUEST_LINE, body: bytes = b"", eol: bytes = b"\r\n"
) -> bytes:
    """A message with `call_id` (a whole header line) after the Via, or none."""
    lines = [start, HEADERS[0]]
    if call_id is not None:
        lines.append(call_id)
    lines += HEADERS[1:]
    lines.append(b"Content-Length: %d" % len(body))
    return eol.join(lines) + eol + eol + body


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (message(b"Call-ID: a84b4c76e66710@pc33.example.com"), b"a84b4c76e66710"),
        (message(b"i: a84b4c76e66710@pc33.example.com"), b"a84b4c76e66710"),
        (message(b"I:a84b4c76e66710@pc33.example.com"), b"a84b4c76e66710"),
        (message(b"cALL-iD: a84b4c76e66710@pc33.example.com"), b"a84b4c76e66710"),
        (message(b"Call-ID \t:\t a84b4c76e66710@pc33.example.com"), b"a84b4c76e66710"),
        (message(b"i :a84b4c76e66710"), b"a84b4c76e66710"),
        (message(b"Call-ID: a84b4c76e66710"), b"a84b4c76e66710"),
        (message(b"Call-ID: a84b4c76e66710 \t "), b"a84b4c76e66710"),
        (message(b"Call-ID: a84b4c76e66710 @pc33.example.com"), b"a84b4c76e66710"),
        (message(b"Call-ID: a84b4c76e66710@pc33.example.com", eol=b"\n"), b"a84b4c76e66710"),
        (message(b"Call-ID: @pc33.example.com"), b""),
        # Folded after the colon (SWS), the one place a Call-ID header can be folded.
        (message(b"Call-ID:\r\n a84b4c76e66710@pc33.example.com"), b"a84b4c76e66710"),
        (message(b"i: \r\n\t a84b4c76e66710"), b"a84b4c76e66710"),
        (message(b"Call-ID:\n a84b4c76e66710@pc33.example.com", eol=b"\n"), b"a84b4c76e66710"),
        (message(b"Call-ID: c1", start=RESPONSE_LINE), b"c1"),
        (message(b"i: c1", start=b"SIP/2.0 200 OK"), b"c1"),
        # Look-alike header names are not the Call-ID.
        (
            message(b"Call-Info: <http://x.example.com/a>\r\nIn-Reply-To: old@h\r\nCall-ID: c1"),
            b"c1",
        ),
        # SDP's "i=" lines use "=", not ":".
        (message(b"Call-ID: c1@h", body=SDP), b"c1"),
        # The first Call-ID wins: the body comes after every header.
        (message(b"Call-ID: c1@h", body=b"i: x\r\nCall-ID: y@h\r\n"), b"c1"),
        (message(None), None),
        (message(None, body=SDP), None),
        (message(None, start=RESPONSE_LINE), None),
        (b"", None),
    ],
)
def test_key(data: bytes, expected: bytes | None) -> None:
    assert call_id_key(data) == expected


# RFC 3261 section 25.1: callid = word [ "@" word ].
WORD = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "-.!%*_+`'~()<>:\\\"/[]?{}",
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    word=WORD,
    host=st.none() | WORD,
    name=st.sampled_from(["Call-ID", "call-id", "CALL-ID", "i", "I"]),
    before=st.sampled_from(["", " ", "\t", " \t"]),
    after=st.sampled_from(["", " ", "\t", "  ", "\r\n ", " \r\n\t", "\r\n  "]),
    position=st.integers(0, len(HEADERS)),
    start=st.sampled_from([REQUEST_LINE, RESPONSE_LINE]),
    body=st.sampled_from([b"", SDP, b"i: x@h\r\n"]),
)
def test_key_is_the_word_before_at_in_any_form_and_position(
    word: str,
    host: str | None,
    name: str,
    before: str,
    after: str,
    position: int,
    start: bytes,
    body: bytes,
) -> None:
    value = word if host is None else f"{word}@{host}"
    header = f"{name}{before}:{after}{value}".encode()
    lines = [start, *HEADERS[:position], header, *HEADERS[position:]]
    data = b"\r\n".join([*lines, b"Content-Length: %d" % len(body)]) + b"\r\n\r\n" + body
    assert call_id_key(data) == word.encode()
    assert parse_message(data).call_id == value


def _corpus() -> list[Path]:
    files = sorted(CORPUS.glob("*/*.dat"))
    assert len(files) == 32, f"RFC 4475 corpus not found under {CORPUS}"
    return files


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_torture_messages_agree_with_the_parser(path: Path) -> None:
    data = path.read_bytes()
    key = call_id_key(data)
    assert key is not None  # every message in the corpus has a Call-ID line
    try:
        parsed = parse_message(data)
    except ParseError:
        if path.parent.name == "valid":
            raise
        return
    expected = parsed.call_id.split("@")[0].strip().encode("utf-8", "surrogateescape")
    assert key == expected


def test_dblreq_takes_the_first_requests_call_id() -> None:
    # RFC 4475 3.1.1.8: octets beyond Content-Length (a second REGISTER with its
    # own long-form Call-ID) are not part of the message; the compact "I:" is.
    data = (CORPUS / "valid" / "dblreq.dat").read_bytes()
    assert call_id_key(data) == b"dblreq.0ha0isndaksdj99sdfafnl3lk233412"
