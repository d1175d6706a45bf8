"""The parts of SDP (RFC 4566) a B2BUA rewrites to hide who is talking.

Media lines (`c=`, `m=`, `a=`) pass through untouched: carrier media gateways
talk to each other directly. The lines that name a person or a device are
rewritten or dropped: `o=` username, `s=` session name, and the free-text or
contact lines `i=`, `u=`, `e=`, `p=` (section 5.4-5.6).
"""

from __future__ import annotations

_DROPPED_PREFIXES = (b"i=", b"u=", b"e=", b"p=")


def anonymize_sdp(body: bytes, *, username: bytes = b"-", session_name: bytes = b"-") -> bytes:
    """Return `body` with the origin username and session name replaced.

    The session id and version in `o=` are kept so that the far end still sees
    a version bump when the offer changes (RFC 3264 section 8). Line endings are
    kept as they came (CRLF, or LF from sloppy peers).
    """
    if not body:
        return body
    newline = b"\r\n" if b"\r\n" in body else b"\n"
    lines = body.split(newline)
    out: list[bytes] = []
    for line in lines:
        if line.startswith(b"o="):
            fields = line[2:].split(b" ")
            if len(fields) == 6:
                fields[0] = username
                line = b"o=" + b" ".join(fields)
            else:
                line = b"o=" + username + b" 0 0 IN IP4 0.0.0.0"
        elif line.startswith(b"s="):
            line = b"s=" + session_name
        elif line.startswith(_DROPPED_PREFIXES):
            # An i= line may sit under an m= line too; dropping it is always valid.
            continue
        out.append(line)
    return newline.join(out)
