"""SIP requests and responses (RFC 3261 section 7).

A message keeps its headers as raw text and parses a header's value only when
it is first read through a property (`via`, `cseq`, `from_addr`, ...), caching
the result. Code that changes a header through `headers` must call
`invalidate()` if it has already read the parsed form of that message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple

from b2bua.sip.errors import ParseError
from b2bua.sip.headers import Headers, split_list
from b2bua.sip.uri import (
    NameAddr,
    Uri,
    _format_params,
    _split_params,
    name_addr_tag,
    parse_name_addr,
    parse_uri,
)

SIP_VERSION = "SIP/2.0"
_KEY = itemgetter(0)
MAX_CSEQ = 2**31 - 1  # RFC 3261 section 8.1.1.5: "MUST be less than 2**31"

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    422: "Session Interval Too Small",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


@dataclass(slots=True)
class Via:
    """One Via value: `SIP/2.0/<transport> host[:port];params` (RFC 3261 section 20.42)."""

    transport: str
    host: str
    port: int | None = None
    params: list[tuple[str, str | None]] = field(default_factory=list)

    def param(self, name: str) -> str | None:
        """Value of a parameter (`""` for a flag such as `rport`), or None."""
        lowered = name.lower()
        for key, value in self.params:
            if key.lower() == lowered:
                return value if value is not None else ""
        return None

    def set_param(self, name: str, value: str | None) -> None:
        """Set a parameter in place, or append it."""
        lowered = name.lower()
        for index, (key, _) in enumerate(self.params):
            if key.lower() == lowered:
                self.params[index] = (key, value)
                return
        self.params.append((name, value))

    @property
    def branch(self) -> str | None:
        """The branch parameter that names the transaction (RFC 3261 section 8.1.1.7)."""
        for key, value in self.params:
            if key == "branch" or key.lower() == "branch":
                return value if value is not None else ""
        return None

    @property
    def sent_by(self) -> str:
        """`host[:port]` as sent, used in transaction matching (section 17.2.3)."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.sent_by}{_format_params(self.params)}"


_VIA_FAST = re.compile(
    r"SIP/2\.0/([A-Za-z]+) ([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?(?:;(.*))?"
)


# Values longer than this are parsed every time rather than kept (memory bound).
_CACHED_TEXT_LENGTH = 256

# Via text -> (transport, host, port, params) of its last parse. Responses carry
# the Via of the request they answer (ours, already parsed when it was sent), so
# each is parsed once; every caller still gets a Via of its own. Cleared when full.
_VIA_CACHE_MAX = 4096
_via_cache: dict[str, tuple[str, str, int | None, tuple[tuple[str, str | None], ...]]] = {}


def parse_via(text: str) -> Via:
    """Parse one Via value, tolerating the LWS RFC 3261 allows around `/`, `;`, `=`."""
    cached = _via_cache.get(text)
    if cached is not None:
        return Via(cached[0], cached[1], cached[2], list(cached[3]))
    via = _parse_via(text)
    if len(text) <= _CACHED_TEXT_LENGTH:
        if len(_via_cache) >= _VIA_CACHE_MAX:
            _via_cache.clear()
        _via_cache[text] = (via.transport, via.host, via.port, tuple(via.params))
    return via


def _parse_via(text: str) -> Via:
    fast = _VIA_FAST.fullmatch(text)
    if fast is not None:
        transport, host, port_text, params_text = fast.groups()
        port = int(port_text) if port_text is not None else None
        if port is not None and port > 65535:
            raise ParseError(f"bad port in Via {text!r}")
        params = _split_params(params_text) if params_text is not None else []
        return Via(transport.upper(), host, port, params)
    protocol, sep, rest = text.partition(";")
    params_text = rest if sep else ""
    pieces = protocol.replace("/", " / ").split()
    # Expected tokens: SIP / 2.0 / TRANSPORT sent-by
    if len(pieces) != 6 or pieces[1] != "/" or pieces[3] != "/":
        raise ParseError(f"bad Via {text!r}")
    if pieces[0].upper() != "SIP":
        raise ParseError(f"bad Via protocol in {text!r}")
    if pieces[2] != "2.0":
        raise ParseError(f"unsupported Via version in {text!r}", status_hint=505)
    transport = pieces[4].upper()
    sent_by = pieces[5]
    uri = parse_uri(f"sip:{sent_by}")
    if uri.user is not None or uri.params or uri.headers is not None:
        raise ParseError(f"bad Via sent-by in {text!r}")
    params = _split_params(params_text) if sep else []
    return Via(transport=transport, host=uri.host, port=uri.port, params=params)


class CSeq(NamedTuple):
    """`CSeq: <number> <method>` (RFC 3261 section 20.16).

    A named tuple: it is built for every message, and one without containers
    inside costs the garbage collector nothing once it has been seen.
    """

    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


# CSeq text -> its parse: a CSeq is immutable, so one object serves every message
# with the same value ("1 INVITE", "2 BYE"). Cleared when full.
_CSEQ_CACHE_MAX = 4096
_cseq_cache: dict[str, CSeq] = {}


def parse_cseq(text: str) -> CSeq:
    """Parse a CSeq value; the number must be below 2**31."""
    cached = _cseq_cache.get(text)
    if cached is not None:
        return cached
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit() or not parts[0].isascii():
        raise ParseError(f"bad CSeq {text!r}")
    if len(parts[0]) > 10 or int(parts[0]) > MAX_CSEQ:
        raise ParseError(f"CSeq number out of range in {text!r}")
    cseq = CSeq(int(parts[0]), parts[1])
    if len(text) <= _CACHED_TEXT_LENGTH:
        if len(_cseq_cache) >= _CSEQ_CACHE_MAX:
            _cseq_cache.clear()
        _cseq_cache[text] = cseq
    return cseq


# A From/To tag not looked at yet (None is a valid answer: no tag).
_UNREAD = "\0unread"


class Message:
    """What requests and responses share: headers, body and lazily parsed fields.

    Each parsed field has a slot of its own (None until first read), which is
    cheaper to reach than a dictionary and holds no container when unused.
    """

    __slots__ = (
        "_cseq",
        "_from",
        "_from_tag",
        "_to",
        "_to_tag",
        "_top_via",
        "_vias",
        "body",
        "headers",
    )

    def __init__(self, headers: Headers, body: bytes = b"") -> None:
        self.headers = headers
        self.body = body
        self._cseq: CSeq | None = None
        self._top_via: Via | None = None
        self._vias: list[Via] | None = None
        self._from: NameAddr | None = None
        self._to: NameAddr | None = None
        self._from_tag: str | None = _UNREAD
        self._to_tag: str | None = _UNREAD

    def invalidate(self) -> None:
        """Forget parsed header values after `headers` was changed directly."""
        self._cseq = self._top_via = self._vias = self._from = self._to = None
        self._from_tag = self._to_tag = _UNREAD

    def top_via_rewritten(self) -> None:
        """`top_via` was changed in place and written back to `headers`: only the
        list of every Via is stale (CSeq, From, To and the top Via stay parsed)."""
        self._vias = None

    @property
    def call_id(self) -> str:
        """The Call-ID value; ParseError if missing."""
        value = self.headers.get("call-id")
        if value is None:
            raise ParseError("missing Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        """The parsed CSeq; ParseError if missing or malformed."""
        cached = self._cseq
        if cached is None:
            value = self.headers.get("cseq")
            if value is None:
                raise ParseError("missing CSeq")
            cached = self._cseq = parse_cseq(value)
        return cached

    @property
    def vias(self) -> list[Via]:
        """Every Via value, topmost first."""
        cached = self._vias
        if cached is None:
            cached = self._vias = [parse_via(v) for v in self.headers.get_all("via")]
        return cached

    @property
    def top_via(self) -> Via:
        """The topmost Via; ParseError if there is none."""
        cached = self._top_via
        if cached is None:
            first = self.headers.get("via")
            if first is None:
                raise ParseError("missing Via")
            values = split_list(first)
            if not values:
                raise ParseError("empty Via")
            cached = self._top_via = parse_via(values[0])
        return cached

    @property
    def from_addr(self) -> NameAddr:
        """The parsed From header."""
        cached = self._from
        if cached is None:
            value = self.headers.get("from")
            if value is None:
                raise ParseError("missing from")
            cached = self._from = parse_name_addr(value)
        return cached

    @property
    def to_addr(self) -> NameAddr:
        """The parsed To header."""
        cached = self._to
        if cached is None:
            value = self.headers.get("to")
            if value is None:
                raise ParseError("missing to")
            cached = self._to = parse_name_addr(value)
        return cached

    @property
    def from_tag(self) -> str | None:
        """The From tag (`from_addr.tag`); ParseError if From is missing or malformed."""
        parsed = self._from
        if parsed is not None:
            return parsed.tag  # the parsed form, which its user may have changed
        tag = self._from_tag
        if tag is _UNREAD:
            value = self.headers.get("from")
            if value is None:
                raise ParseError("missing from")
            tag = self._from_tag = name_addr_tag(value)
        return tag

    @property
    def to_tag(self) -> str | None:
        """The To tag (`to_addr.tag`); ParseError if To is missing or malformed."""
        parsed = self._to
        if parsed is not None:
            return parsed.tag  # the parsed form, which its user may have changed
        tag = self._to_tag
        if tag is _UNREAD:
            value = self.headers.get("to")
            if value is None:
                raise ParseError("missing to")
            tag = self._to_tag = name_addr_tag(value)
        return tag

    @property
    def contact(self) -> NameAddr | None:
        """The first Contact, parsed, or None when absent."""
        values = self.headers.get_all("contact")
        return parse_name_addr(values[0]) if values else None

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialize, writing a Content-Length that matches the body."""
        triples = self.headers.triples()
        body = self.body
        if "content-length" not in map(_KEY, triples):
            # What we build carries no Content-Length line: it goes last.
            lines = "".join([f"{name}: {value}\r\n" for _, name, value in triples])
            text = f"{self._start_line()}\r\n{lines}Content-Length: {len(body)}\r\n\r\n"
            head = text.encode("utf-8", "surrogateescape")
            return head + body if body else head
        lines_list = [self._start_line()]
        body_length = str(len(body))
        wrote_length = False
        for key, name, value in triples:
            if key == "content-length":
                if wrote_length:
                    continue
                wrote_length = True
                value = body_length
            lines_list.append(f"{name}: {value}")
        lines_list.append("")
        lines_list.append("")
        head = "\r\n".join(lines_list).encode("utf-8", "surrogateescape")
        return head + body if body else head

    def __bytes__(self) -> bytes:
        return self.to_bytes()


class Request(Message):
    """A SIP request: method, Request-URI (text, parsed on demand), headers, body."""

    __slots__ = ("_request_uri", "method", "uri", "version")

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Headers,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        # Every slot set here rather than through Message.__init__: one call less
        # per message, and there are several per SIP message handled.
        self.headers = headers
        self.body = body
        self._cseq = self._top_via = self._vias = self._from = self._to = None
        self._from_tag = self._to_tag = _UNREAD
        self.method = method
        self.uri = uri
        self.version = version
        self._request_uri: Uri | None = None

    def invalidate(self) -> None:
        """Forget parsed header values (and the Request-URI) after a direct change."""
        super().invalidate()
        self._request_uri = None

    @property
    def request_uri(self) -> Uri:
        """The parsed Request-URI."""
        cached = self._request_uri
        if cached is None:
            cached = self._request_uri = parse_uri(self.uri)
        return cached

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (
            self.method == other.method
            and self.uri == other.uri
            and self.version == other.version
            and self.headers == other.headers
            and self.body == other.body
        )

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response: status code, reason phrase, headers, body."""

    __slots__ = ("reason", "status", "version")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self._cseq = self._top_via = self._vias = self._from = self._to = None
        self._from_tag = self._to_tag = _UNREAD
        self.status = status
        self.reason = reason if reason is not None else REASON_PHRASES.get(status, "")
        self.version = version

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (
            self.status == other.status
            and self.reason == other.reason
            and self.version == other.version
            and self.headers == other.headers
            and self.body == other.body
        )

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


# Headers a UAS copies from a request into its response (RFC 3261 section 8.2.6.2).
_RESPONSE_COPY = ("via", "from", "to", "call-id", "cseq")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    extra: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> Response:
    """Build a response to `request` per RFC 3261 section 8.2.6.

    Via, From, To, Call-ID and CSeq are copied; `to_tag` is added to To when it
    has none (never for 100 Trying, section 8.2.6.2).
    """
    triples = [t for t in request.headers.triples() if t[0] in _RESPONSE_COPY]
    if to_tag is not None and status > 100:
        for index, (key, name, value) in enumerate(triples):
            if key == "to":
                address = parse_name_addr(value)
                if address.tag is None:
                    triples[index] = (key, name, f"{value};tag={to_tag}")
                break
    headers = Headers._from_triples(list(triples))
    for name, value in extra or ():
        headers.add(name, value)
    return Response(status, reason, headers, body)
