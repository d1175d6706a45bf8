"""One leg's dialog (RFC 3261 section 12) and the messages it builds.

Each leg of a call is a dialog of its own: its own Call-ID, tags, CSeq space,
route set and remote target. The A leg is the UAS side (we answer the
caller's INVITE); the B leg is the UAC side (we send the INVITE to the trunk).
Nothing here copies a header from the other leg; that is `header_policy`'s job.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from b2bua.sip.address import Address
from b2bua.sip.errors import ParseError
from b2bua.sip.headers import Headers
from b2bua.sip.message import Request, Response
from b2bua.sip.transaction_base import new_branch
from b2bua.sip.uri import parse_name_addr, parse_uri


@dataclass(frozen=True, slots=True)
class LocalEndpoint:
    """How we name ourselves on one transport: Via sent-by and Contact."""

    transport: str
    host: str
    port: int

    def via(self, branch: str) -> str:
        """A top Via for a request we send (RFC 3581 rport asked for on UDP)."""
        rport = ";rport" if self.transport == "UDP" else ""
        return f"SIP/2.0/{self.transport} {self.host}:{self.port};branch={branch}{rport}"

    def contact(self, user: str) -> str:
        """Our Contact, with a user part that names nobody but the middle number."""
        transport = "" if self.transport == "UDP" else f";transport={self.transport.lower()}"
        return f"<sip:{user}@{self.host}:{self.port}{transport}>"


@dataclass(slots=True)
class Dialog:
    """The state RFC 3261 section 12 keeps per dialog, for one leg."""

    call_id: str
    local_tag: str
    local_uri: str  # our From (UAC) or To (UAS) value without the tag
    remote_uri: str  # the peer's address value without its tag
    local_cseq: int
    remote_tag: str | None = None
    remote_cseq: int | None = None
    remote_target: str | None = None
    route_set: list[str] = field(default_factory=list)
    destination: Address | None = None  # where requests go when the target is a host name

    def set_target_from(self, message: Request | Response) -> None:
        """Update the remote target from a Contact (2xx, 18x, or target refresh)."""
        contact = message.headers.get("contact")
        if contact:
            try:
                self.remote_target = str(parse_name_addr(contact).uri)
            except ParseError:
                pass

    def next_cseq(self) -> int:
        """Take the next local CSeq number."""
        self.local_cseq += 1
        return self.local_cseq

    def request_destination(self, local: LocalEndpoint) -> Address:
        """Where an in-dialog request goes: first route, else the remote target.

        Only IP literals are followed, since this core resolves no names; a host
        name falls back to the address the dialog was set up with.
        """
        uri_text = self.route_set[0] if self.route_set else self.remote_target
        if uri_text is not None:
            try:
                uri = parse_uri(uri_text.strip("<> ").split(">")[0])
                ipaddress.ip_address(uri.host.strip("[]"))
            except (ParseError, ValueError):
                pass
            else:
                transport = (uri.param("transport") or local.transport).upper()
                return Address(transport, uri.host.strip("[]"), uri.port or 5060)
        assert self.destination is not None
        return self.destination

    def build_request(
        self,
        method: str,
        local: LocalEndpoint,
        random: Callable[[], str],
        *,
        contact_user: str,
        cseq: int | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> Request:
        """A new in-dialog request (section 12.2.1.1) with a fresh branch."""
        number = cseq if cseq is not None else self.next_cseq()
        remote = self.remote_uri + (f";tag={self.remote_tag}" if self.remote_tag else "")
        triples: list[tuple[str, str]] = [
            ("Via", local.via(new_branch(random))),
            ("Max-Forwards", "70"),
            ("From", f"{self.local_uri};tag={self.local_tag}"),
            ("To", remote),
            ("Call-ID", self.call_id),
            ("CSeq", f"{number} {method}"),
        ]
        triples.extend(("Route", route) for route in self.route_set)
        if method not in ("BYE", "CANCEL", "ACK", "PRACK", "INFO"):
            triples.append(("Contact", local.contact(contact_user)))
        triples.extend(headers or ())
        target = self.remote_target or self.remote_uri.strip("<>")
        return Request(method, target, Headers(triples), body)


def to_tag_response(
    request: Request,
    status: int,
    *,
    to_tag: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    reason: str | None = None,
) -> Response:
    """A response on the A leg: the request's Via/From/Call-ID/CSeq, To with our tag."""
    triples: list[tuple[str, str, str]] = []
    for key, name, value in request.headers.triples():
        if key in ("via", "from", "call-id", "cseq"):
            triples.append((key, name, value))
        elif key == "to":
            if status > 100 and ";tag=" not in value.replace(" ", "").lower():
                value = f"{value};tag={to_tag}"
            triples.append((key, name, value))
    response = Response(status, reason, Headers._from_triples(triples), body)
    for name, value in headers or ():
        response.headers.add(name, value)
    return response
