"""The privacy invariant (DESIGN section 4), as a property.

Hypothesis puts the caller's real number, in its national, +86 and 86 forms and
inside sip:/tel: URIs, into random places of everything the caller sends during
a whole call (INVITE headers and SDP, the ACK body, a re-INVITE, INFO, BYE) and
checks the raw bytes the engine sends towards the callee side: the number never
appears. The same the other way round for the callee's number and the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b2bua.sip import Request, Response, parse_message
from b2bua.sip.address import Address

from .harness import CALLER_TRUNK, CARRIER, A, B, Bench, X, in_dialog, response_to

CALLER_NUMBER = A.encode()  # 13812345678
CALLEE_NUMBER = B.encode()  # 13987654321

# How a number is written (its user part) and where it may sit (as a URI or as text).
USER_FORMS = ("{n}", "+86{n}", "86{n}")
# Host names, not IP literals: the engine follows only IP literals, so these
# Contacts keep in-dialog requests going to the trunk addresses the bench watches.
URI_FORMS = ("sip:{u}@gw.example", "sip:{u}@gw.example;user=phone", "tel:{u}")

CALLER_POSITIONS = (
    "from_user",
    "from_display",
    "contact",
    "p_asserted_identity",
    "p_preferred_identity",
    "remote_party_id",
    "diversion",
    "history_info",
    "call_id",
    "referred_by",
    "x_header",
    "subject",
    "user_agent",
    "sdp_origin",
    "sdp_session",
    "sdp_info",
    "sdp_attribute",
    "reinvite_headers",
    "reinvite_sdp",
    "info_headers",
    "info_body",
    "bye_headers",
    "ack_body",
)

CALLEE_POSITIONS = (
    "contact",
    "p_asserted_identity",
    "remote_party_id",
    "server",
    "x_header",
    "reason_phrase",
    "sdp_origin",
    "sdp_session",
    "sdp_info",
    "sdp_attribute",
    "request_from_display",
    "request_contact",
    "request_headers",
    "request_sdp",
    "answer_headers",
    "bye_headers",
)


@dataclass(frozen=True)
class Placement:
    """Where the number goes, and the written form chosen for each place."""

    spots: dict[str, tuple[int, int]]  # position -> (user form, uri form)
    x_name: str = "X-Custom"
    late_offer: bool = False

    def user(self, number: str, spot: str) -> str:
        return USER_FORMS[self.spots[spot][0]].format(n=number)

    def uri(self, number: str, spot: str) -> str:
        return URI_FORMS[self.spots[spot][1]].format(u=self.user(number, spot))

    def has(self, spot: str) -> bool:
        return spot in self.spots


def placements(positions: tuple[str, ...]) -> st.SearchStrategy[Placement]:
    spot = st.tuples(st.integers(0, len(USER_FORMS) - 1), st.integers(0, len(URI_FORMS) - 1))
    return st.builds(
        Placement,
        spots=st.dictionaries(st.sampled_from(positions), spot, min_size=1),
        x_name=st.from_regex(r"X-[A-Za-z][A-Za-z0-9]{0,9}", fullmatch=True),
        late_offer=st.booleans(),
    )


def sdp(number: str, where: Placement | None, *, host: str, port: int, version: int) -> bytes:
    """An SDP body with the number in the origin, session, info or an attribute line."""

    def pick(spot: str, default: str) -> str:
        if where is not None and where.has(spot):
            return where.user(number, spot) if spot != "sdp_info" else where.uri(number, spot)
        return default

    lines = [
        "v=0",
        f"o={pick('sdp_origin', 'user')} 1 {version} IN IP4 {host}",
        f"s={pick('sdp_session', 'session')}",
    ]
    if where is not None and where.has("sdp_info"):
        lines.append(f"i=call from {pick('sdp_info', '')}")
    lines += [f"c=IN IP4 {host}", "t=0 0", f"m=audio {port} RTP/AVP 8", "a=rtpmap:8 PCMA/8000"]
    if where is not None and where.has("sdp_attribute"):
        lines.append(f"a=x-caller:{where.uri(number, 'sdp_attribute')}")
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass
class Wire:
    """The bench with raw bytes kept per destination (no parse/serialise round trip)."""

    bench: Bench = field(default_factory=Bench)
    to_callee: list[bytes] = field(default_factory=list)
    to_caller: list[bytes] = field(default_factory=list)

    def feed(self, data: bytes, source: Address) -> list[Request | Response]:
        engine = self.bench.engine
        engine.receive(parse_message(data), source, now=self.bench.now)
        return self._collect(engine.drain())

    def advance(self, seconds: float) -> list[Request | Response]:
        self.bench.now += seconds
        self.bench.engine.handle_timers(now=self.bench.now)
        return self._collect(self.bench.engine.drain())

    def _collect(self, sent: list[tuple[bytes, Address]]) -> list[Request | Response]:
        out: list[Request | Response] = []
        for data, destination in sent:
            if destination == CARRIER:
                self.to_callee.append(data)
            elif destination == CALLER_TRUNK:
                self.to_caller.append(data)
            else:
                raise AssertionError(f"sent to an unexpected address {destination}")
            out.append(parse_message(data))
        return out


def _first(messages: list[Request | Response], kind: str) -> Request | Response:
    for message in messages:
        label = message.method if isinstance(message, Request) else str(message.status)
        if label == kind:
            return message
    raise AssertionError(f"no {kind} in {messages}")


def _request(messages: list[Request | Response], kind: str) -> Request:
    message = _first(messages, kind)
    assert isinstance(message, Request)
    return message


def _caller_invite(where: Placement, number: str, call_id: str, body: bytes) -> bytes:
    def uri_or(spot: str, default: str) -> str:
        return where.uri(number, spot) if where.has(spot) else default

    from_user = where.user(number, "from_user") if where.has("from_user") else "anonymous"
    display = f'"{where.user(number, "from_display")}" ' if where.has("from_display") else ""
    lines = [
        f"INVITE sip:{X}@127.0.0.1:5060 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.10:5061;branch=z9hG4bKpriv1",
        "Max-Forwards: 70",
        f"From: {display}<sip:{from_user}@127.0.0.10>;tag=atag",
        f"To: <sip:{X}@127.0.0.1>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        f"Contact: <{uri_or('contact', 'sip:anonymous@127.0.0.10:5061')}>",
        # The trunk asserts the caller; this is how the binding is found.
        f"P-Asserted-Identity: <sip:+86{A}@127.0.0.10>",
        "Supported: 100rel, timer",
    ]
    optional = {
        "p_asserted_identity": "P-Asserted-Identity: <{u}>",
        "p_preferred_identity": "P-Preferred-Identity: <{u}>",
        "remote_party_id": 'Remote-Party-ID: "x" <{u}>;party=calling;privacy=off',
        "diversion": "Diversion: <{u}>;reason=unconditional",
        "history_info": "History-Info: <{u}>;index=1",
        "referred_by": "Referred-By: <{u}>",
    }
    for spot, template in optional.items():
        if where.has(spot):
            lines.append(template.format(u=where.uri(number, spot)))
    if where.has("x_header"):
        lines.append(f"{where.x_name}: {where.uri(number, 'x_header')}")
    if where.has("subject"):
        lines.append(f"Subject: call from {where.user(number, 'subject')}")
    if where.has("user_agent"):
        lines.append(f"User-Agent: pbx/{where.user(number, 'user_agent')}")
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _noise(where: Placement, number: str, spot: str) -> str:
    """Extra header lines carrying the number for an in-dialog request."""
    if not where.has(spot):
        return ""
    uri = where.uri(number, spot)
    return (
        f"{where.x_name}: {where.user(number, spot)}\r\n"
        f"P-Asserted-Identity: <{uri}>\r\n"
        f'Reason: Q.850;cause=16;text="{where.user(number, spot)}"\r\n'
        f"Subject: {uri}\r\n"
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(placements(CALLER_POSITIONS))
def test_caller_number_never_reaches_the_callee(where: Placement) -> None:
    wire = Wire()
    number = A
    call_id = f"{where.user(number, 'call_id')}@127.0.0.10" if where.has("call_id") else "c1"
    offer = sdp(number, where, host="127.0.0.10", port=40000, version=1)
    out = wire.feed(
        _caller_invite(where, number, call_id, b"" if where.late_offer else offer), CALLER_TRUNK
    )
    invite = _request(out, "INVITE")  # the call must have been routed
    callee_sdp = sdp("", None, host="127.0.0.20", port=50000, version=7)
    wire.feed(response_to(invite, 183, body=callee_sdp), CARRIER)
    out = wire.feed(response_to(invite, 200, body=callee_sdp), CARRIER)
    our_tag = _first(out, "200").to_addr.tag
    a_from = "<sip:a@127.0.0.10>;tag=atag"
    a_to = f"<sip:{X}@127.0.0.1>;tag={our_tag}"
    cseq = 1

    def from_caller(
        method: str,
        *,
        extra: str = "",
        body: bytes = b"",
        ctype: str = "application/sdp",
        seq: int | None = None,
    ) -> list[Request | Response]:
        nonlocal cseq
        if seq is None:
            cseq += 1
        return wire.feed(
            in_dialog(
                method,
                uri=f"sip:{X}@127.0.0.1:5060",
                call_id=call_id,
                from_value=a_from,
                to_value=a_to,
                cseq=seq if seq is not None else cseq,
                branch=f"z9hG4bKp{method}{cseq}",
                via_host="127.0.0.10:5061",
                extra=extra,
                body=body,
                content_type=ctype,
            ),
            CALLER_TRUNK,
        )

    ack_line = (
        f"a=x-ack:{where.uri(number, 'ack_body')}\r\n".encode() if where.has("ack_body") else b""
    )
    # Late offer: the caller's SDP answer comes in the ACK and must cross, scrubbed.
    ack_body = offer + ack_line if where.late_offer else b""
    _request(from_caller("ACK", body=ack_body, seq=1), "ACK")

    # A re-INVITE (hold) with the number in its headers and SDP; the callee answers.
    reinvite_sdp = sdp(
        number,
        where if where.has("reinvite_sdp") else None,
        host="127.0.0.10",
        port=40000,
        version=2,
    )
    if where.has("reinvite_sdp"):
        reinvite_sdp += f"a=x-note:{where.uri(number, 'reinvite_sdp')}\r\n".encode()
    contact = (
        f"Contact: <{where.uri(number, 'reinvite_headers')}>\r\n"
        if where.has("reinvite_headers")
        else "Contact: <sip:a@127.0.0.10:5061>\r\n"
    )
    # With a late offer the re-INVITE is empty and its ACK (relayed with the B leg's
    # CSeq) carries the answer; otherwise the re-INVITE carries the offer.
    out = from_caller(
        "INVITE",
        extra=contact + _noise(where, number, "reinvite_headers"),
        body=b"" if where.late_offer else reinvite_sdp,
    )
    relayed = _request(out, "INVITE")
    wire.feed(response_to(relayed, 200, body=callee_sdp), CARRIER)
    reinvite_ack = reinvite_sdp + ack_line if where.late_offer else b""
    _request(from_caller("ACK", body=reinvite_ack, seq=cseq), "ACK")

    # INFO (DTMF) with the number in its headers and body.
    info_body = b"Signal=5\r\nDuration=160\r\n"
    if where.has("info_body"):
        info_body += f"Note={where.user(number, 'info_body')}\r\n".encode()
    out = from_caller(
        "INFO",
        extra=_noise(where, number, "info_headers"),
        body=info_body,
        ctype="application/dtmf-relay",
    )
    wire.feed(response_to(_request(out, "INFO"), 200), CARRIER)

    # BYE with the number in its headers.
    out = from_caller("BYE", extra=_noise(where, number, "bye_headers"))
    wire.feed(response_to(_request(out, "BYE"), 200), CARRIER)
    wire.advance(40)

    assert wire.to_callee, "nothing reached the callee"
    for data in wire.to_callee:
        assert CALLER_NUMBER not in data, data.decode(errors="replace")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(placements(CALLEE_POSITIONS))
def test_callee_number_never_reaches_the_caller(where: Placement) -> None:
    wire = Wire()
    number = B
    out = wire.feed(
        _caller_invite(
            Placement({}), A, "c1", sdp("", None, host="127.0.0.10", port=40000, version=1)
        ),
        CALLER_TRUNK,
    )
    invite = _request(out, "INVITE")
    callee_sdp = sdp(number, where, host="127.0.0.20", port=50000, version=7)

    def headers(spot_prefix: str = "") -> str:
        lines = []
        if where.has("p_asserted_identity"):
            lines.append(f"P-Asserted-Identity: <{where.uri(number, 'p_asserted_identity')}>")
        if where.has("remote_party_id"):
            lines.append(f"Remote-Party-ID: <{where.uri(number, 'remote_party_id')}>;party=called")
        if where.has("server"):
            lines.append(f"Server: gw-{where.user(number, 'server')}")
        if where.has("x_header"):
            lines.append(f"{where.x_name}: {where.user(number, 'x_header')}")
        return "\r\n".join(lines)

    contact = (
        f"<{where.uri(number, 'contact')}>" if where.has("contact") else "<sip:b@127.0.0.20:5070>"
    )
    phrase = (
        f"Ringing {where.user(number, 'reason_phrase')}"
        if where.has("reason_phrase")
        else "Ringing"
    )
    wire.feed(response_to(invite, 180, extra=headers(), contact=contact, reason=phrase), CARRIER)
    wire.feed(
        response_to(invite, 183, body=callee_sdp, extra=headers(), contact=contact, reason=phrase),
        CARRIER,
    )
    out = wire.feed(
        response_to(invite, 200, body=callee_sdp, extra=headers(), contact=contact, reason=phrase),
        CARRIER,
    )
    our_tag = _first(out, "200").to_addr.tag
    a_from = "<sip:a@127.0.0.10>;tag=atag"
    wire.feed(
        in_dialog(
            "ACK",
            uri=f"sip:{X}@127.0.0.1:5060",
            call_id="c1",
            from_value=a_from,
            to_value=f"<sip:{X}@127.0.0.1>;tag={our_tag}",
            cseq=1,
            branch="z9hG4bKpack",
            via_host="127.0.0.10:5061",
        ),
        CALLER_TRUNK,
    )
    display = (
        f'"{where.user(number, "request_from_display")}" '
        if where.has("request_from_display")
        else ""
    )
    b_from = f"{display}<sip:b@127.0.0.20>;tag=btag"
    b_to = invite.headers.get("from") or ""
    cseq = 100

    def from_callee(
        method: str,
        *,
        extra: str = "",
        body: bytes = b"",
        ctype: str = "application/sdp",
        seq: int | None = None,
    ) -> list[Request | Response]:
        nonlocal cseq
        if seq is None:
            cseq += 1
        return wire.feed(
            in_dialog(
                method,
                uri=f"sip:{X}@127.0.0.1:5060",
                call_id=invite.call_id,
                from_value=b_from,
                to_value=b_to,
                cseq=seq if seq is not None else cseq,
                branch=f"z9hG4bKq{method}{cseq}",
                via_host="127.0.0.20:5070",
                extra=extra,
                body=body,
                content_type=ctype,
            ),
            CARRIER,
        )

    # The callee puts the caller on hold: re-INVITE with its number around.
    req_contact = (
        f"Contact: <{where.uri(number, 'request_contact')}>\r\n"
        if where.has("request_contact")
        else "Contact: <sip:b@127.0.0.20:5070>\r\n"
    )
    req_sdp = sdp(
        number,
        where if where.has("request_sdp") else None,
        host="127.0.0.20",
        port=50000,
        version=8,
    )
    out = from_callee(
        "INVITE", extra=req_contact + _noise(where, number, "request_headers"), body=req_sdp
    )
    relayed = _request(out, "INVITE")
    answer_extra = _noise(where, A, "answer_headers")  # the caller's own number may go back
    wire.feed(
        response_to(
            relayed,
            200,
            body=sdp("", None, host="127.0.0.10", port=40000, version=2),
            extra=answer_extra,
        ),
        CALLER_TRUNK,
    )
    from_callee("ACK", seq=cseq)

    # The caller asks something; the callee's answer carries its number.
    out = wire.feed(
        in_dialog(
            "INFO",
            uri=f"sip:{X}@127.0.0.1:5060",
            call_id="c1",
            from_value=a_from,
            to_value=f"<sip:{X}@127.0.0.1>;tag={our_tag}",
            cseq=2,
            branch="z9hG4bKpinfo",
            via_host="127.0.0.10:5061",
            body=b"Signal=1\r\nDuration=100\r\n",
            content_type="application/dtmf-relay",
        ),
        CALLER_TRUNK,
    )
    info = _request(out, "INFO")
    wire.feed(
        response_to(info, 200, extra=_noise(where, number, "answer_headers").rstrip("\r\n")),
        CARRIER,
    )

    out = from_callee(
        "INFO",
        extra=_noise(where, number, "request_headers"),
        body=b"Signal=2\r\nDuration=100\r\n",
        ctype="application/dtmf-relay",
    )
    wire.feed(response_to(_request(out, "INFO"), 200), CALLER_TRUNK)

    out = from_callee("BYE", extra=_noise(where, number, "bye_headers"))
    wire.feed(response_to(_request(out, "BYE"), 200), CALLER_TRUNK)
    wire.advance(40)

    assert wire.to_caller
    for data in wire.to_caller:
        assert CALLEE_NUMBER not in data, data.decode(errors="replace")


def test_caller_number_in_every_place_at_once() -> None:
    """The worst case, checked without hypothesis so a failure reads at once."""
    where = Placement({spot: (1, 2) for spot in CALLER_POSITIONS}, x_name="X-Orig", late_offer=True)
    test_caller_number_never_reaches_the_callee.hypothesis.inner_test(where)  # type: ignore[attr-defined]


def test_callee_number_in_every_place_at_once() -> None:
    where = Placement({spot: (0, 0) for spot in CALLEE_POSITIONS}, x_name="X-Dest")
    test_callee_number_never_reaches_the_caller.hypothesis.inner_test(where)  # type: ignore[attr-defined]
