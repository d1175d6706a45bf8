"""Routing inputs of the engine: who is calling, which binding applies, which trunk.

The engine does not know bindings or numbering: it asks a `Router` (wired in
`app.py` over the binding index) and gets back a `RouteDecision` or a
`RouteRejection`. Trunks are configuration plus a little live state (up or
down from OPTIONS keepalives, calls in progress).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from b2bua.sip.address import Address
from b2bua.sip.errors import ParseError
from b2bua.sip.message import Request
from b2bua.sip.uri import Uri, parse_name_addr


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Where a call goes and what it shows. `targets` is one callee or a GXB hunt list."""

    binding_id: str
    tenant_id: str
    order_id: str | None
    mode: str
    direction: str
    middle_number: str
    shown_number: str
    targets: tuple[str, ...]
    label: str | None = None
    max_call_s: float | None = None
    caller: str = ""


@dataclass(frozen=True, slots=True)
class RouteRejection:
    """Why a call is refused, and the SIP answer (404, 403, or 403 with a Reason)."""

    status: int
    reason: str
    reason_header: str | None = None
    caller: str = ""


class Router(Protocol):
    """Answers from memory: it is called on the hot path and must not block."""

    def route(
        self, caller: str, dialled: str, *, wall_now: float
    ) -> RouteDecision | RouteRejection:
        """Decide the route of a call from `caller` to the number `dialled`."""


def uri_number(uri: Uri) -> str:
    """The telephone number a URI names: a tel number or the user part of a SIP URI."""
    number = uri.user or ""
    # Strip visual separators carriers sometimes leave in (RFC 3966 section 5.1.1).
    if "-" in number or "." in number or "(" in number:
        number = "".join(c for c in number if c not in "-.()")
    return number


def caller_number(request: Request, *, trusted: bool) -> str:
    """The caller: P-Asserted-Identity's number from a trusted trunk, else From's.

    A P-Asserted-Identity from an untrusted peer is ignored (RFC 3325 section 5).
    """
    if trusted:
        for value in request.headers.get_all("p-asserted-identity"):
            try:
                number = uri_number(parse_name_addr(value).uri)
            except ParseError:
                continue
            if number:
                return number
    return uri_number(request.from_addr.uri)


@dataclass(frozen=True, slots=True)
class Trunk:
    """An outbound carrier trunk and the networks trusted to send us calls."""

    name: str
    address: Address
    priority: int = 1
    inbound_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_calls: int | None = None


@dataclass(slots=True)
class TrunkState:
    """Live state of one trunk: reachability from keepalives and calls in progress."""

    trunk: Trunk
    up: bool = True
    active_calls: int = 0
    keepalive_pending: bool = False
    calls_total: int = 0


@dataclass(slots=True)
class TrunkTable:
    """Trunks in priority order, and which source addresses are trusted."""

    states: list[TrunkState] = field(default_factory=list)
    _trusted_cache: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_trunks(cls, trunks: Iterable[Trunk]) -> TrunkTable:
        """Order trunks by priority (stable for equal priorities)."""
        ordered = sorted(trunks, key=lambda t: t.priority)
        return cls(states=[TrunkState(t) for t in ordered])

    def trunk_for_source(self, host: str) -> str | None:
        """Name of the trunk trusted for this source address, or None if untrusted.

        A trunk's own outbound address is trusted too: its in-dialog requests
        (BYE from the callee) come from there.
        """
        try:
            return self._trusted_cache[host]
        except KeyError:
            pass  # first message from this address
        name: str | None = None
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            address = None
        for state in self.states:
            trunk = state.trunk
            if trunk.address.host == host or (
                address is not None and any(address in net for net in trunk.inbound_networks)
            ):
                name = trunk.name
                break
        if len(self._trusted_cache) < 65536:
            self._trusted_cache[host] = name
        return name

    def candidates(self) -> list[TrunkState]:
        """Trunks to try for a new outbound leg: up, with capacity, by priority.

        When every trunk is down the list holds all of them with capacity, since
        a keepalive verdict can be stale and trying beats refusing every call.
        """
        usable = [
            s
            for s in self.states
            if s.trunk.max_calls is None or s.active_calls < s.trunk.max_calls
        ]
        up = [s for s in usable if s.up]
        return up or usable
