"""One leg's dialog (RFC 3261 section 12) and the messages it builds.

Each leg of a call is a dialog of its own: its own Call-ID, tags, CSeq space,
route set and remote target. The A leg is the UAS side (we answer the
caller's INVITE); the B leg is the UAC side (we send the INVITE to the trunk).
Nothing here copies a header from the other leg; that is `header_policy`'s job.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from b2bua.sip.address import Address
from b2bua.sip.errors import ParseError
from b2bua.sip.headers import Headers, header_key
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
    """The state RFC 3261 section 12 keeps per dialog, for one leg.

    The remote target is learnt from every Contact the peer sends but parsed
    only when a request is built on the dialog; many dialogs (the caller's,
    when the caller hangs up) never need it.
    """

    call_id: str
    local_tag: str
    local_uri: str  # our From (UAC) or To (UAS) value without the tag
    remote_uri: str  # the peer's address value without its tag
    local_cseq: int
    remote_tag: str | None = None
    remote_cseq: int | None = None
    route_set: list[str] = field(default_factory=list)
    destination: Address | None = None  # where requests go when the target is a host name
    _target: str | None = field(default=None, init=False, repr=False)
    # Contact values not parsed yet, newest last: the newest that parses wins.
    _contacts: list[str] = field(default_factory=list, init=False, repr=False)
    # The last request_destination answer: (route or target text, transport, address).
    _route: tuple[str, str, Address | None] | None = field(default=None, init=False, repr=False)

    @property
    def remote_target(self) -> str | None:
        """The URI in-dialog requests go to (the peer's last usable Contact), or None."""
        contacts = self._contacts
        if contacts:
            for contact in reversed(contacts):
                try:
                    self._target = str(parse_name_addr(contact).uri)
                except ParseError:
                    continue
                break
            contacts.clear()
        return self._target

    @remote_target.setter
    def remote_target(self, value: str | None) -> None:
        self._contacts.clear()
        self._target = value

    def set_target_from(self, message: Request | Response) -> None:
        """Update the remote target from a Contact (2xx, 18x, or target refresh)."""
        contact = message.headers.get("contact")
        if contact:
            self._contacts.append(contact)

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
            cached = self._route
            if cached is not None and cached[0] == uri_text and cached[1] == local.transport:
                address = cached[2]
            else:
                address = _literal_address(uri_text, local)
                self._route = (uri_text, local.transport, address)
            if address is not None:
                return address
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
        remote_tag = self.remote_tag
        triples: list[tuple[str, str, str]] = [
            ("via", "Via", local.via(new_branch(random))),
            ("max-forwards", "Max-Forwards", "70"),
            ("from", "From", f"{self.local_uri};tag={self.local_tag}"),
            ("to", "To", f"{self.remote_uri};tag={remote_tag}" if remote_tag else self.remote_uri),
            ("call-id", "Call-ID", self.call_id),
            ("cseq", "CSeq", f"{number} {method}"),
        ]
        if self.route_set:
            triples.extend([("route", "Route", route) for route in self.route_set])
        if method not in _NO_CONTACT:
            triples.append(("contact", "Contact", local.contact(contact_user)))
        if headers:
            triples.extend([(header_key(name), name, value) for name, value in headers])
        target = self.remote_target or self.remote_uri.strip("<>")
        return Request(method, target, Headers._from_triples(triples), body)


# In-dialog requests that carry no Contact (RFC 3261 sections 8.1.1.8, 12.2.1.1).
_NO_CONTACT = frozenset({"BYE", "CANCEL", "ACK", "PRACK", "INFO"})


def _literal_address(uri_text: str, local: LocalEndpoint) -> Address | None:
    """The address a route or target URI names when its host is an IP literal."""
    try:
        uri = parse_uri(uri_text.strip("<> ").split(">")[0])
        host = uri.host.strip("[]")
        if _IPV4.fullmatch(host) is None:  # the common case, without ipaddress's cost
            ipaddress.ip_address(host)
    except (ParseError, ValueError):
        return None
    transport = (uri.param("transport") or local.transport).upper()
    return Address(transport, host, uri.port or 5060)


# Dotted-quad IPv4 as `ipaddress` accepts it: ASCII digits, 0-255, no leading zeros.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


# Headers a response copies from its request (RFC 3261 section 8.2.6.2).
_COPIED_TO_RESPONSE = frozenset({"via", "from", "call-id", "cseq", "to"})


def response_identity(request: Request, status: int, to_tag: str) -> list[tuple[str, str, str]]:
    """The header lines a response copies from `request`, To tagged above 100."""
    triples = [t for t in request.headers.triples() if t[0] in _COPIED_TO_RESPONSE]
    if status > 100:
        for index, (key, name, value) in enumerate(triples):
            if key == "to" and ";tag=" not in value.replace(" ", "").lower():
                triples[index] = (key, name, f"{value};tag={to_tag}")
    return triples


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
    triples = response_identity(request, status, to_tag)
    if headers:
        triples.extend([(header_key(name), name, value) for name, value in headers])
    return Response(status, reason, Headers._from_triples(triples), body)
