"""What may cross from one leg to the other: the privacy boundary of a call.

Nothing is relayed by default. A leg builds its own identity headers (Via,
From, To, Call-ID, CSeq, Contact, P-Asserted-Identity) and takes from the other
leg only the headers in `SAFE_HEADERS`, an anonymised SDP body, and the status
code. As a last line of defence `scrub` removes any header line or body line
that still contains a protected number in any of its written forms, so a
carrier that puts the caller's number in an unexpected place (an `Allow` value,
a custom SDP attribute) cannot leak it either. The same functions serve both
directions, like Kamailio's topoh: one symmetric pair of transforms at one place.
"""

from __future__ import annotations

from collections.abc import Iterable

from b2bua.sip.headers import header_key
from b2bua.sip.sdp import anonymize_sdp

# Headers that describe capabilities or the session, never a party. Everything
# else (Diversion, History-Info, Remote-Party-ID, P-Preferred-Identity, Privacy,
# Referred-By, Record-Route, Route, Subject, Organization, Warning, User-Agent,
# Server, X- headers, ...) stays on its own leg.
SAFE_HEADERS: frozenset[str] = frozenset(
    {
        "allow",
        "allow-events",
        "supported",
        "require",
        "accept",
        "accept-encoding",
        "accept-language",
        "session-expires",
        "min-se",
        "content-type",
        "content-disposition",
        "content-language",
        "rseq",
        "info-package",
        "recv-info",
        "event",
        "expires",
        "retry-after",
        "reason",
        "priority",
    }
)

# Option tags we relay in Supported/Require. An unknown tag in Require would make
# the far end fail the call for a feature this server cannot mediate.
_RELAYED_OPTION_TAGS = frozenset({"100rel", "timer", "precondition"})


# Bodies of INFO DTMF relay (SIP INFO with "Signal=5 Duration=160" and the like).
DTMF_MEDIA_TYPES: frozenset[str] = frozenset({"application/dtmf-relay", "application/dtmf"})


def protected_forms(number: str) -> tuple[str, ...]:
    """Substrings that reveal a national-form number however it is written.

    `+8613812345678`, `8613812345678` and `013812345678` all contain the national
    form; a fixed-line number written internationally drops its leading 0
    (`+861012345678`), so that shorter form is protected too.
    """
    if not number:
        return ()
    forms = [number]
    if number.startswith("0") and len(number) > 7:
        forms.append(number[1:])
    return tuple(forms)


def _filter_option_tags(value: str) -> str:
    filtered = _option_tags_seen.get(value)
    if filtered is None:
        tags = [tag.strip() for tag in value.split(",")]
        filtered = ", ".join([tag for tag in tags if tag.lower() in _RELAYED_OPTION_TAGS])
        if len(value) <= 256:  # a peer's huge values are not kept
            if len(_option_tags_seen) >= 1024:
                _option_tags_seen.clear()
            _option_tags_seen[value] = filtered
    return filtered


# Supported/Require value -> what of it is relayed; carriers send a handful of them.
_option_tags_seen: dict[str, str] = {}


def safe_headers(triples: Iterable[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The header lines of a message from the other leg that may be copied over."""
    out: list[tuple[str, str, str]] = []
    for key, name, value in triples:
        if key not in SAFE_HEADERS:
            continue
        if key in ("supported", "require"):
            value = _filter_option_tags(value)
            if not value:
                continue
        elif key == "reason":
            # Keep the protocol and cause code; free text may name anybody.
            value = ";".join(
                p for p in value.split(";") if not p.strip().lower().startswith("text")
            )
        out.append((key, name, value))
    return out


def relay_body(content_type: str | None, body: bytes) -> tuple[str | None, bytes]:
    """The body to send to the other leg: SDP anonymised, DTMF kept, anything else dropped.

    ISUP (SIP-I) and other opaque bodies carry the calling number in binary
    form, so they never cross. An SDP part inside multipart/mixed is extracted.
    """
    if not body or content_type is None:
        return None, b""
    media = content_type.split(";")[0].strip().lower()
    if media in DTMF_MEDIA_TYPES:
        # INFO DTMF (DESIGN section 4): a digit and a duration, scrubbed like the rest.
        return media, body
    if media == "application/sdp":
        return "application/sdp", anonymize_sdp(body)
    if media.startswith("multipart/"):
        sdp = _sdp_part(content_type, body)
        if sdp is not None:
            return "application/sdp", anonymize_sdp(sdp)
    return None, b""


def _sdp_part(content_type: str, body: bytes) -> bytes | None:
    boundary = None
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        return None
    for part in body.split(b"--" + boundary.encode("utf-8", "surrogateescape")):
        head, sep, content = part.partition(b"\r\n\r\n")
        if sep and b"application/sdp" in head.lower():
            return content.removesuffix(b"\r\n")
    return None


def scrub(
    triples: list[tuple[str, str, str]], body: bytes, protected: tuple[str, ...]
) -> tuple[list[tuple[str, str, str]], bytes]:
    """Drop every header line and body line that still contains a protected form.

    This runs on messages already built from safe parts, so in normal traffic it
    removes nothing and costs one substring search per protected form.
    """
    if not protected:
        return triples, body
    # One search over all values first: in normal traffic nothing matches and the
    # per-line filter below never runs.
    joined = "\n".join([t[2] for t in triples])
    kept = triples
    for form in protected:
        if form in joined:
            kept = [t for t in triples if not any(f in t[2] for f in protected)]
            break
    if body:
        encoded = [form.encode() for form in protected]
        for form_bytes in encoded:
            if form_bytes in body:
                newline = b"\r\n" if b"\r\n" in body else b"\n"
                body = newline.join(
                    line
                    for line in body.split(newline)
                    if not any(form in line for form in encoded)
                )
                break
    return kept, body


def is_safe_header(name: str) -> bool:
    """Whether a header of this name may be copied to the other leg."""
    return header_key(name) in SAFE_HEADERS
