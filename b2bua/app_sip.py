"""A minimal, stateless UA core: answers every request with a final response.

This is the placeholder SIP behaviour until the transaction layer and the call
engine are wired in: OPTIONS gets 200 (trunks use it as a keepalive), other
requests a proper final status, ACK nothing. It is sans-IO: bytes and a source
in, `Outgoing` messages out. Retransmissions get byte-identical answers because
the To tag is derived from the request instead of drawn at random, which is
what lets a stateless element skip transaction state (RFC 3261 section 16.11).

It lives outside `b2bua/calls` because it speaks the transports' `Source` and
`Outgoing` types, which the call engine will not; it imports no I/O module.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from typing import Literal

from b2bua.sip import Headers, ParseError, Request, Response, make_response, parse_message
from b2bua.sip.headers import header_key, split_list
from b2bua.sip.message import parse_cseq, parse_via
from b2bua.transport.base import Outgoing, Source
from b2bua.transport.via import outgoing_response, response_route, stamp_received, stamp_via

ALLOW = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "PRACK", "UPDATE", "INFO")
ACCEPT = ("application/sdp",)
SUPPORTED = ("100rel", "timer")
# Methods we recognise but do not serve as a B2BUA (405 with Allow, RFC 3261 8.2.1).
NOT_ALLOWED = frozenset({"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"})
# In-dialog or in-transaction methods: with no dialogs yet, there is nothing to match.
NO_DIALOG = frozenset({"BYE", "CANCEL", "PRACK", "UPDATE", "INFO"})

# The Request-URI may be missing: "BYE  SIP/2.0" still names a request we can refuse.
_REQUEST_LINE = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+ +(?:\S+ +)?SIP/", re.ASCII)
_NEEDED = ("via", "from", "to", "call-id", "cseq")
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\udc80-\udcff]")
_BARE_400 = b"SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"


def _to_tag(call_id: str, from_tag: str, branch: str) -> str:
    # Header text keeps undecodable octets as surrogates (parser), so encode them back.
    key = f"{call_id}\0{from_tag}\0{branch}".encode("utf-8", "surrogateescape")
    digest = hashlib.blake2b(key, digest_size=8)
    return digest.hexdigest()


def _warning(reason: str) -> str:
    # Warning 399 (RFC 3261 section 20.43) tells the peer's engineer what we disliked.
    text = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "?" for c in reason)
    return f'399 b2bua "{text[:120]}"'


class StatelessCore:
    """Answers requests without keeping state; see the module docstring."""

    def __init__(
        self,
        *,
        is_trusted: Callable[[str], bool],
        untrusted_action: Literal["reject", "drop"] = "reject",
        max_message_size: int = 65536,
        supported: Iterable[str] = SUPPORTED,
    ) -> None:
        self._is_trusted = is_trusted
        self._untrusted_action = untrusted_action
        self._max_message_size = max_message_size
        self._supported = tuple(supported)

    def message_received(self, data: bytes, source: Source, *, now: float) -> list[Outgoing]:
        """Handle one datagram or framed stream message; return what to send."""
        trusted = self._is_trusted(source.host)
        if not trusted and self._untrusted_action == "drop":
            return []  # dropped before parsing: strangers cost us as little as possible
        if not data.strip(b"\r\n"):
            return []  # CRLF keepalive (RFC 5626 section 4.4.1)
        try:
            if len(data) > self._max_message_size:
                raise ParseError("message exceeds the size limit", status_hint=513)
            message = parse_message(data, stream=source.transport.reliable)
        except ParseError as error:
            return self._answer_malformed(data, error, source)
        if isinstance(message, Response):
            return []  # no client transactions exist yet: a stray response is dropped
        try:
            stamp_received(message, source)
            # From, To and Require are parsed lazily, so they can still be malformed.
            response = self.answer(message, trusted=trusted)
        except ParseError as error:
            return self._answer_malformed(data, error, source)
        return [] if response is None else [outgoing_response(response, source)]

    def stream_broken(
        self, data: bytes, error: ParseError, source: Source, *, now: float
    ) -> list[Outgoing]:
        """A stream could not be framed: answer 400 when it began with a request line."""
        if not self._is_trusted(source.host) and self._untrusted_action == "drop":
            return []
        answer = self._answer_malformed(data, error, source)
        if answer:
            return answer
        text = data.lstrip(b"\r\n")[:200].decode("latin-1")
        if _REQUEST_LINE.match(text) and not text.startswith("ACK "):
            # Without Via and friends the 400 cannot be matched, but on this very
            # connection it still tells the peer why we hang up.
            return [Outgoing(_BARE_400, source)]
        return []

    def answer(self, request: Request, *, trusted: bool) -> Response | None:
        """The final response for a well-formed request, or None for ACK."""
        method = request.method
        if method == "ACK":
            return None  # ACK is never answered (RFC 3261 section 17.2.1)
        tag = _to_tag(request.call_id, request.from_addr.tag or "", request.top_via.branch or "")
        if not trusted:
            return make_response(request, 403, to_tag=tag)
        unsupported = self._unsupported(request)
        if unsupported and method != "CANCEL":
            # RFC 3261 section 8.2.2.3: refuse what we cannot honour.
            return make_response(
                request, 420, to_tag=tag, extra=[("Unsupported", ", ".join(unsupported))]
            )
        if method == "OPTIONS":
            return make_response(request, 200, to_tag=tag, extra=self._capabilities())
        if method == "INVITE":
            return make_response(request, 480, to_tag=tag)  # no routing exists yet
        if method in NO_DIALOG:
            return make_response(request, 481, to_tag=tag)
        allow = [("Allow", ", ".join(ALLOW))]
        if method in NOT_ALLOWED:
            return make_response(request, 405, to_tag=tag, extra=allow)
        return make_response(request, 501, to_tag=tag, extra=allow)

    def _capabilities(self) -> list[tuple[str, str]]:
        return [
            ("Allow", ", ".join(ALLOW)),
            ("Accept", ", ".join(ACCEPT)),
            ("Supported", ", ".join(self._supported)),
        ]

    def _unsupported(self, request: Request) -> list[str]:
        tags: list[str] = []
        for value in request.headers.get_all("require"):
            tags.extend(t for t in split_list(value) if t not in self._supported)
        return tags

    def _answer_malformed(self, data: bytes, error: ParseError, source: Source) -> list[Outgoing]:
        """Build an error response from whatever headers can be read, or drop.

        A response is possible only for a request whose Via, From, To, Call-ID
        and CSeq are present and printable and whose top Via and CSeq parse; the
        status is the error's hint (400, 505 or 513).
        """
        head = data.lstrip(b"\r\n")[: self._max_message_size]
        end = head.find(b"\r\n\r\n")
        head = head[:end] if end >= 0 else head
        lines = head.decode("utf-8", "surrogateescape").replace("\r\n", "\n").split("\n")
        if not _REQUEST_LINE.match(lines[0]) or lines[0].startswith("ACK "):
            return []
        copied: list[tuple[str, str, str]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            key = header_key(name.strip())
            if colon and key in _NEEDED:
                value = value.strip()
                if not value or _UNPRINTABLE.search(value):
                    return []
                copied.append((key, name.strip(), value))
        if any(key not in {k for k, _, _ in copied} for key in _NEEDED):
            return []
        try:
            # The response must itself be well-formed and matchable by the peer:
            # its top Via routes it, its CSeq names the transaction.
            top_value = split_list(next(v for k, _, v in copied if k == "via"))[0]
            via = parse_via(top_value)
            parse_cseq(next(v for k, _, v in copied if k == "cseq"))
        except (ParseError, IndexError):
            return []
        stamp_via(via, source)
        headers = Headers()
        top_done = False
        for key, name, value in copied:
            if key == "via" and not top_done:
                value = ", ".join([str(via), *split_list(value)[1:]])
                top_done = True
            elif key == "to" and ";tag=" not in value.lower():
                call_id = next(v for k, _, v in copied if k == "call-id")
                value = f"{value};tag={_to_tag(call_id, '', via.branch or '')}"
            headers.add(name, value)
        status = error.status_hint if 400 <= error.status_hint < 600 else 400
        headers.add("Warning", _warning(error.reason))
        response = Response(status, headers=headers)
        destination, fallback = response_route(via, source)
        return [Outgoing(response.to_bytes(), destination, fallback)]
