"""The parts of SDP (RFC 4566) a B2BUA rewrites to hide who is talking.

Media lines (`c=`, `m=`, `a=`) pass through untouched: carrier media gateways
talk to each other directly. The lines that name a person or a device are
rewritten or dropped: `o=` username, `s=` session name, and the free-text or
contact lines `i=`, `u=`, `e=`, `p=` (section 5.4-5.6).
"""

from __future__ import annotations

import re

_DROPPED_PREFIXES = (b"i=", b"u=", b"e=", b"p=")
_REWRITTEN_PREFIXES = (b"o=", b"s=", *_DROPPED_PREFIXES)
# The start of every line that is rewritten or dropped, for each line ending.
_MARKERS = {b"\r\n": re.compile(rb"\r\n[osiuep]="), b"\n": re.compile(rb"\n[osiuep]=")}
_O, _S = ord("o"), ord("s")


def anonymize_sdp(body: bytes, *, username: bytes = b"-", session_name: bytes = b"-") -> bytes:
    """Return `body` with the origin username and session name replaced.

    The session id and version in `o=` are kept so that the far end still sees
    a version bump when the offer changes (RFC 3264 section 8). Line endings are
    kept as they came (CRLF, or LF from sloppy peers).
    """
    if not body:
        return body
    newline = b"\r\n" if b"\r\n" in body else b"\n"
    if not body.startswith(_REWRITTEN_PREFIXES):
        # The usual body: one search finds the lines to touch (o=, s=), the rest
        # is copied in slices; a line to drop sends it down the general path.
        parts: list[bytes] = []
        copied = 0
        for match in _MARKERS[newline].finditer(body):
            kind = body[match.end() - 2]
            if kind != _O and kind != _S:
                break
            start = match.start() + len(newline)
            end = body.find(newline, start)
            if end < 0:
                end = len(body)
            parts.append(body[copied:start])
            if kind == _O:
                parts.append(_origin_line(body[start:end], username))
            else:
                parts.append(b"s=" + session_name)
            copied = end
        else:
            parts.append(body[copied:])
            return b"".join(parts)
    out: list[bytes] = []
    for line in body.split(newline):
        if line.startswith(b"o="):
            line = _origin_line(line, username)
        elif line.startswith(b"s="):
            line = b"s=" + session_name
        elif line.startswith(_DROPPED_PREFIXES):
            # An i= line may sit under an m= line too; dropping it is always valid.
            continue
        out.append(line)
    return newline.join(out)


def _origin_line(line: bytes, username: bytes) -> bytes:
    fields = line[2:].split(b" ")
    if len(fields) == 6:
        fields[0] = username
        return b"o=" + b" ".join(fields)
    return b"o=" + username + b" 0 0 IN IP4 0.0.0.0"
