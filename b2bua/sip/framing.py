"""Cutting a TCP/TLS byte stream into SIP messages (RFC 3261 section 18.3).

Messages on a stream are delimited by Content-Length, which is mandatory there.
The framer buffers at most `max_message_size` octets; a peer that sends more,
or a header section that never ends, gets a ParseError and the connection is
closed by the transport, since the stream can no longer be resynchronised.
"""

from __future__ import annotations

import re

from b2bua.sip.errors import ParseError

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024

_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)", re.IGNORECASE | re.M)


class StreamFramer:
    """Feed it stream bytes; it returns whole messages as they complete."""

    __slots__ = ("_buffer", "max_message_size")

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self.max_message_size = max_message_size

    @property
    def buffered(self) -> int:
        """Octets received but not yet returned as a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Append `data`; return every complete message now buffered, in order.

        Raises ParseError when a message would exceed the size limit or has a
        missing or invalid Content-Length; the stream is then unusable.
        """
        self._buffer += data
        messages: list[bytes] = []
        while True:
            # Keep-alive CRLFs between messages (RFC 5626 section 4.4.1) are skipped.
            skip = 0
            while skip < len(self._buffer) and self._buffer[skip] in (0x0D, 0x0A):
                skip += 1
            if skip:
                del self._buffer[:skip]
            if not self._buffer:
                return messages
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self.max_message_size:
                    raise ParseError(
                        "header section exceeds the message size limit", status_hint=513
                    )
                return messages
            head_end = end + 4
            match = _CONTENT_LENGTH.search(bytes(self._buffer[:end]))
            if match is None:
                raise ParseError("Content-Length is mandatory on a stream transport")
            text = match.group(1)
            if not text.isdigit() or len(text) > 10:
                raise ParseError(f"bad Content-Length {text[:20]!r}")
            total = head_end + int(text)
            if total > self.max_message_size:
                raise ParseError("message exceeds the size limit", status_hint=513)
            if len(self._buffer) < total:
                return messages
            messages.append(bytes(self._buffer[:total]))
            del self._buffer[:total]


# The first Call-ID line (long or compact form); the body comes after every header,
# and SDP lines use "=", so the first match is the header. A Call-ID holds no
# white space (RFC 3261 section 25.1: word ["@" word]), so the one place a header
# can be folded is right after the colon (SWS): the value may start on the next line.
_CALL_ID = re.compile(
    rb"^(?:call-id|i)[ \t]*:[ \t]*(?:\r?\n[ \t]+)?([^\r\n@]*)", re.IGNORECASE | re.M
)


def call_id_key(data: bytes) -> bytes | None:
    """The Call-ID's part before "@" from raw message bytes, or None without one.

    Every message of a call (requests, responses, retransmissions, both
    header forms) carries the same value, so it is a key that names the call
    before parsing: SIP workers steer datagrams with it.
    """
    match = _CALL_ID.search(data)
    return match.group(1).rstrip() if match is not None else None
