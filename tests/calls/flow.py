"""A scripted call on top of the bench: plays the caller trunk and the callee trunk.

`CallFlow` remembers what each side has learnt (the B-leg INVITE, the To tag we
gave the caller, CSeq counters) so a test reads as the ladder diagram it checks.
Every method returns what the engine sent in reply, parsed, with destinations.
"""

from __future__ import annotations

import itertools

from b2bua.sip import Request, Response
from b2bua.sip.address import Address

from .harness import (
    CALLER_TRUNK,
    CARRIER,
    SDP_A,
    SDP_B,
    A,
    B,
    Bench,
    X,
    in_dialog,
    invite_from_a,
    only,
    response_to,
)

Sent = list[tuple[Request | Response, Address]]

A_CALL_ID = "a-call-1"
A_FROM = f"<sip:{A}@127.0.0.10>;tag=atag"
A_CONTACT = f"<sip:{A}@127.0.0.10:5061>"
B_CONTACT = "<sip:callee@127.0.0.20:5070>"


def to(sent: Sent, destination: Address) -> Sent:
    """The messages of `sent` going to `destination`."""
    return [(m, d) for m, d in sent if d == destination]


def statuses(sent: Sent, destination: Address | None = None) -> list[int]:
    """Status codes of the responses in `sent` (optionally only to `destination`)."""
    return [
        m.status
        for m, d in sent
        if isinstance(m, Response) and (destination is None or d == destination)
    ]


def methods(sent: Sent, destination: Address | None = None) -> list[str]:
    """Methods of the requests in `sent` (optionally only to `destination`)."""
    return [
        m.method
        for m, d in sent
        if isinstance(m, Request) and (destination is None or d == destination)
    ]


def one(sent: Sent, kind: str, destination: Address | None = None) -> Request | Response:
    """The single message of `kind` (method or status) in `sent`, checking its destination."""
    found = only(sent if destination is None else to(sent, destination), kind)
    assert len(found) == 1, f"expected one {kind}, got {[(str(m), d) for m, d in sent]}"
    message, _ = found[0]
    assert isinstance(message, Request | Response)
    return message


def request(sent: Sent, kind: str, destination: Address | None = None) -> Request:
    message = one(sent, kind, destination)
    assert isinstance(message, Request)
    return message


def response(sent: Sent, kind: str, destination: Address | None = None) -> Response:
    message = one(sent, kind, destination)
    assert isinstance(message, Response)
    return message


class CallFlow:
    """One call A -> X -> B driven through a bench."""

    def __init__(self, bench: Bench | None = None, *, a_cseq: int = 1) -> None:
        self.bench = bench or Bench()
        self.branches = itertools.count(1)
        self.a_invite_cseq = a_cseq
        self.a_cseq = a_cseq
        self.b_cseq = 100
        self.b_invite: Request | None = None
        self.b_invites: list[Request] = []
        self.a_tag: str | None = None
        self.b_tag = "btag"
        self.log: Sent = []

    # --- plumbing ---------------------------------------------------------------

    def _track(self, sent: Sent) -> Sent:
        self.log.extend(sent)
        for message, where in sent:
            if (
                isinstance(message, Request)
                and message.method == "INVITE"
                and where != CALLER_TRUNK
                and not message.to_addr.tag
            ):
                self.b_invites.append(message)
                self.b_invite = message
            if (
                isinstance(message, Response)
                and where == CALLER_TRUNK
                and message.cseq.method == "INVITE"
                and message.call_id == A_CALL_ID
                and message.to_addr.tag
                and self.a_tag is None
            ):
                self.a_tag = message.to_addr.tag
        return sent

    def feed(self, data: bytes, source: Address) -> Sent:
        return self._track(self.bench.feed(data, source))

    def advance(self, seconds: float) -> Sent:
        return self._track(self.bench.advance(seconds))

    def branch(self, side: str) -> str:
        return f"z9hG4bK{side}{next(self.branches)}"

    # --- the caller (A) ---------------------------------------------------------

    def invite(self, *, extra: str = "", body: bytes = SDP_A, dialled: str = X) -> Sent:
        data = invite_from_a(
            extra=extra, body=body, cseq=self.a_invite_cseq, call_id=A_CALL_ID, dialled=dialled
        )
        return self.feed(data, CALLER_TRUNK)

    def a_cancel(self) -> Sent:
        data = (
            f"CANCEL sip:{X}@127.0.0.1:5060 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.10:5061;branch=z9hG4bKa1\r\n"
            "Max-Forwards: 70\r\n"
            f"From: {A_FROM}\r\nTo: <sip:{X}@127.0.0.1>\r\nCall-ID: {A_CALL_ID}\r\n"
            f"CSeq: {self.a_invite_cseq} CANCEL\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        return self.feed(data, CALLER_TRUNK)

    def a_request_bytes(
        self,
        method: str,
        *,
        cseq: int | None = None,
        body: bytes = b"",
        extra: str = "",
        content_type: str = "application/sdp",
        branch: str | None = None,
    ) -> bytes:
        if cseq is None:
            if method == "ACK":
                cseq = self.a_invite_cseq
            else:
                self.a_cseq += 1
                cseq = self.a_cseq
        if method in ("INVITE", "UPDATE") and "Contact:" not in extra:
            extra = f"Contact: {A_CONTACT}\r\n" + extra
        return in_dialog(
            method,
            uri=f"sip:{X}@127.0.0.1:5060",
            call_id=A_CALL_ID,
            from_value=A_FROM,
            to_value=f"<sip:{X}@127.0.0.1>;tag={self.a_tag}",
            cseq=cseq,
            branch=branch or self.branch("a"),
            via_host="127.0.0.10:5061",
            extra=extra,
            body=body,
            content_type=content_type,
        )

    def a_request(self, method: str, **kwargs: object) -> Sent:
        return self.feed(self.a_request_bytes(method, **kwargs), CALLER_TRUNK)  # type: ignore[arg-type]

    def a_ack(self, **kwargs: object) -> Sent:
        return self.a_request("ACK", **kwargs)

    def a_answers(
        self, relayed: Request, status: int = 200, *, body: bytes = b"", extra: str = ""
    ) -> Sent:
        """The caller's response to a request we relayed to it."""
        data = response_to(relayed, status, body=body, extra=extra, contact=A_CONTACT)
        return self.feed(data, CALLER_TRUNK)

    # --- the callee (B) ---------------------------------------------------------

    def b_responds(
        self,
        status: int,
        *,
        body: bytes = b"",
        extra: str = "",
        to_tag: str | None = None,
        contact: str = B_CONTACT,
        invite: Request | None = None,
        reason: str = "Whatever",
    ) -> Sent:
        target = invite or self.b_invite
        assert target is not None
        data = response_to(
            target,
            status,
            to_tag=to_tag or self.b_tag,
            body=body,
            extra=extra,
            contact=contact,
            reason=reason,
        )
        return self.feed(data, CARRIER)

    def ring(self, status: int = 180, **kwargs: object) -> Sent:
        return self.b_responds(status, **kwargs)  # type: ignore[arg-type]

    def answer(self, *, body: bytes = SDP_B, **kwargs: object) -> Sent:
        return self.b_responds(200, body=body, **kwargs)  # type: ignore[arg-type]

    def b_request_bytes(
        self,
        method: str,
        *,
        cseq: int | None = None,
        body: bytes = b"",
        extra: str = "",
        content_type: str = "application/sdp",
        from_display: str = "",
    ) -> bytes:
        assert self.b_invite is not None
        if cseq is None:
            self.b_cseq += 1
            cseq = self.b_cseq
        if method in ("INVITE", "UPDATE") and "Contact:" not in extra:
            extra = f"Contact: {B_CONTACT}\r\n" + extra
        display = f'"{from_display}" ' if from_display else ""
        return in_dialog(
            method,
            uri=f"sip:{X}@127.0.0.1:5060",
            call_id=self.b_invite.call_id,
            from_value=f"{display}<sip:{B}@127.0.0.20>;tag={self.b_tag}",
            to_value=self.b_invite.headers.get("from") or "",
            cseq=cseq,
            branch=self.branch("b"),
            via_host="127.0.0.20:5070",
            extra=extra,
            body=body,
            content_type=content_type,
        )

    def b_request(self, method: str, **kwargs: object) -> Sent:
        return self.feed(self.b_request_bytes(method, **kwargs), CARRIER)  # type: ignore[arg-type]

    def b_answers(
        self, relayed: Request, status: int = 200, *, body: bytes = b"", extra: str = ""
    ) -> Sent:
        """The callee's response to a request we relayed to it."""
        data = response_to(relayed, status, body=body, extra=extra, contact=B_CONTACT)
        return self.feed(data, CARRIER)

    # --- whole phases -----------------------------------------------------------

    def connect(self, *, ring: bool = True, ack: bool = True, answer_extra: str = "") -> None:
        """INVITE, (180), 200, ACK: a confirmed call on both legs."""
        self.invite()
        if ring:
            self.ring()
        self.answer(extra=answer_extra)
        if ack:
            self.a_ack()
