"""`parse_message`: bytes to Request or Response, or ParseError.

The parser splits the header section once and keeps each value as text; values
are parsed on first use (see `message.py`). It checks eagerly only what every
receiver needs before acting: the start line, CSeq (number range, method match),
Content-Length against the datagram, and the top Via. Leniency follows RFC 3261
section 7.3.1 (line folding, whitespace around the colon, any header-name case)
and RFC 4475 (extra octets after Content-Length are ignored).
"""

from __future__ import annotations

import re

from b2bua.sip.errors import ParseError
from b2bua.sip.headers import Headers, header_key, split_list
from b2bua.sip.message import SIP_VERSION, Request, Response, parse_cseq, parse_via

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_CSEQ_BIT = 2
_VIA_BIT = 16
_CONTENT_LENGTH_BIT = 32
_MANDATORY_BITS = {
    "call-id": 1,
    "cseq": _CSEQ_BIT,
    "from": 4,
    "to": 8,
    "via": _VIA_BIT,
    "content-length": _CONTENT_LENGTH_BIT,
}
_ALL_MANDATORY = 1 | 2 | 4 | 8 | 16

# Raw header name (as it appears before the colon) -> (look-up key, name to keep,
# mandatory-header bit or 0).
# Carriers send the same few dozen spellings, so validating each once pays off.
_known_names: dict[str, tuple[str, str, int]] = {}


# Whole header line -> (triple, mandatory bit). A response repeats the Via, From,
# To, Call-ID and CSeq lines of the request it answers, and a dialog's requests
# repeat its From, To and Call-ID; such lines are split once. Triples are
# tuples of strings, so messages share them safely. Bounded in entries and in
# line length (a peer's huge lines are not kept), and cleared when full.
_KNOWN_LINES_MAX = 8192
_KNOWN_LINE_LENGTH = 256
_known_lines: dict[str, tuple[tuple[str, str, str], int]] = {}


# Methods every element sends: tokens, so the check of a request line skips the regex.
_TOKEN_METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "PRACK", "UPDATE", "INFO", "REGISTER"}
)


def _is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def _split_head_lf(data: bytes) -> tuple[str, bytes]:
    # Bare-LF messages are not RFC 3261 but are cheap to accept.
    end = data.find(b"\n\n")
    if end < 0:
        raise ParseError("no blank line ends the header section")
    return data[:end].decode("utf-8", "surrogateescape"), data[end + 2 :]


def _unfold(lines: list[str]) -> list[str]:
    unfolded: list[str] = [lines[0]]
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and len(unfolded) > 1:
            # Folding (RFC 3261 section 7.3.1): continuation joins with one SP.
            unfolded[-1] = unfolded[-1].rstrip() + " " + line.strip()
        elif line[:1] in (" ", "\t"):
            raise ParseError("continuation line before any header")
        else:
            unfolded.append(line)
    return unfolded


def _parse_headers(
    lines: list[str],
) -> tuple[list[tuple[str, str, str]], int, str | None, str, str]:
    """Header triples, plus what `parse_message` checks: which mandatory headers were
    seen (bits), and the first Content-Length, CSeq and Via values."""
    triples: list[tuple[str, str, str]] = []
    known = _known_names
    known_lines = _known_lines
    seen = 0
    length_value: str | None = None
    cseq_value = via_value = ""
    for line in lines:
        cached = known_lines.get(line)
        if cached is None:
            if not line:
                continue
            raw_name, colon, value = line.partition(":")
            entry = known.get(raw_name)
            if entry is None:
                if not colon:
                    raise ParseError(f"header line without a colon: {line[:60]!r}")
                name = raw_name.rstrip(" \t")
                if not _is_token(name):
                    raise ParseError(f"bad header name {name[:60]!r}")
                key = header_key(name)
                entry = (key, name, _MANDATORY_BITS.get(key, 0))
                if len(known) < 4096:  # peers' odd spellings must not grow it forever
                    known[raw_name] = entry
            cached = ((entry[0], entry[1], value.strip(" \t")), entry[2])
            if len(line) <= _KNOWN_LINE_LENGTH:
                if len(known_lines) >= _KNOWN_LINES_MAX:
                    known_lines.clear()
                known_lines[line] = cached
        triple, bit = cached
        triples.append(triple)
        if bit and not seen & bit:
            if bit == _CONTENT_LENGTH_BIT:
                length_value = triple[2]
            elif bit == _CSEQ_BIT:
                cseq_value = triple[2]
            elif bit == _VIA_BIT:
                via_value = triple[2]
            seen |= bit
    return triples, seen, length_value, cseq_value, via_value


def _parse_start_line(line: str) -> tuple[str, str, str] | tuple[int, str]:
    if line.startswith("SIP/"):
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if version != SIP_VERSION:
            raise ParseError(f"unsupported version {version[:20]!r}", status_hint=505)
        if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] == "0":
            raise ParseError(f"bad status code {code[:20]!r}")
        return int(code), reason
    parts = line.split(" ")
    if len(parts) != 3:
        # RFC 4475 3.1.2.9/3.1.2.10 let an element ignore extra spaces between
        # the elements of the request line, so collapse runs of SP and retry.
        parts = line.split()
        if len(parts) != 3:
            raise ParseError(f"bad request line {line[:80]!r}")
    method, uri, version = parts
    if method not in _TOKEN_METHODS and not _is_token(method):
        raise ParseError(f"bad method {method[:40]!r}")
    if version != SIP_VERSION:
        if version.upper().startswith("SIP/"):
            raise ParseError(f"unsupported version {version[:20]!r}", status_hint=505)
        raise ParseError(f"bad request line {line[:80]!r}")
    if ":" not in uri or "<" in uri or ">" in uri:
        raise ParseError(f"bad Request-URI {uri[:80]!r}")
    return method, uri, version


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one SIP message from `data`; raise ParseError if it is malformed.

    `data` is one datagram, or one message cut from a stream by `StreamFramer`
    (`stream=True`, where Content-Length is mandatory, RFC 3261 section 18.3).
    A body shorter than Content-Length is an error; octets beyond it are ignored.
    """
    if type(data) is not bytes:
        if not isinstance(data, bytearray | memoryview):
            raise ParseError("message must be bytes")
        data = bytes(data)
    # RFC 3261 section 7.5: ignore CRLFs that precede the start line.
    if data[:2] == b"\r\n":
        data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        head = data[:end].decode("utf-8", "surrogateescape")
        body = data[end + 4 :]
    else:
        head, body = _split_head_lf(data)
    lines = head.split("\r\n") if "\r" in head else head.split("\n")
    if "\n " in head or "\n\t" in head:
        lines = _unfold(lines)
    start = _parse_start_line(lines[0])
    triples, seen, length_value, cseq_value, via_value = _parse_headers(lines[1:])
    length: int | None = None
    if length_value is not None:
        if not length_value.isdigit() or not length_value.isascii() or len(length_value) > 10:
            raise ParseError(f"bad Content-Length {length_value[:20]!r}")
        length = int(length_value)
    if seen & _ALL_MANDATORY != _ALL_MANDATORY:
        missing = [k for k, b in _MANDATORY_BITS.items() if b & _ALL_MANDATORY and not seen & b]
        raise ParseError(f"missing mandatory header {missing[0]}")

    if length is None:
        if stream:
            raise ParseError("Content-Length is mandatory on a stream transport")
    elif len(body) != length:
        if len(body) < length:
            raise ParseError(f"body is {len(body)} octets, Content-Length says {length}")
        body = body[:length]

    headers = Headers._from_triples(triples)
    message: Request | Response
    cseq = parse_cseq(cseq_value)
    if len(start) == 3:
        method, uri, version = start
        if cseq.method != method:
            raise ParseError(f"CSeq method {cseq.method!r} differs from {method!r}")
        message = Request(method, uri, headers, body, version)
    else:
        status, reason = start
        message = Response(status, reason, headers, body)
    message._cseq = cseq
    # The top Via is validated now, so the transaction layer can rely on it.
    values = split_list(via_value)
    if not values:
        raise ParseError("empty Via")
    message._top_via = parse_via(values[0])
    return message
