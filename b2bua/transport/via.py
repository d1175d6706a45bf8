"""Via handling at the transport boundary (RFC 3261 sections 18.2.1-18.2.2, RFC 3581).

Pure functions over parsed messages: stamp `received`/`rport` on a request's
top Via when it arrives, and pick where its responses go. No I/O.
"""

from __future__ import annotations

import ipaddress

from b2bua.sip import Request, Response, Via
from b2bua.sip.headers import split_list
from b2bua.transport.base import Outgoing, PeerAddress, Source

_DEFAULT_PORTS = {"TLS": 5061, "WSS": 443}


def _same_host(sent_by_host: str, source_host: str) -> bool:
    """Whether the Via sent-by host is literally the source IP (RFC 3261 section 18.2.1)."""
    host = sent_by_host.strip("[]")
    if host == source_host:
        return True  # the usual case, without building two address objects
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(source_host)
    except ValueError:
        return False  # a domain name never equals an address: add `received`


def stamp_via(via: Via, source: Source) -> bool:
    """Add `received` and fill `rport` on `via` in place; return whether it changed.

    RFC 3261 section 18.2.1 adds `received` when the sent-by host differs from
    the packet's source; RFC 3581 section 4 fills an empty `rport` with the
    source port and then adds `received` even when the hosts match.
    """
    changed = False
    rport = via.param("rport")
    if rport == "":
        via.set_param("rport", str(source.port))
        changed = True
    wants_received = rport is not None or not _same_host(via.host, source.host)
    if wants_received and via.param("received") != source.host:
        via.set_param("received", source.host)
        changed = True
    return changed


def stamp_received(request: Request, source: Source) -> None:
    """Stamp the request's top Via so responses built from it carry received/rport."""
    via = request.top_via
    if not stamp_via(via, source):
        return
    triples = request.headers.triples()
    for index, (key, name, value) in enumerate(triples):
        if key == "via":
            # The first Via line may hold several comma-separated values; only the
            # topmost one is ours to change.
            values = split_list(value)
            values[0] = str(via)
            triples[index] = (key, name, ", ".join(values))
            break
    request.headers.replace_triples(triples)
    request.top_via_rewritten()


def response_route(via: Via, source: Source) -> tuple[Source, PeerAddress | None]:
    """Destination and connection fallback for a response whose top Via is `via`.

    Stream transports answer on the connection the request came in on (keyed
    by the source address), falling back to received/sent-by port if it has
    closed (RFC 3261 section 18.2.2). Datagrams go to `received` (or sent-by)
    at the `rport` value when present (RFC 3581 section 4), else the sent-by port.
    """
    host = via.param("received") or via.host.strip("[]")
    port = via.port or _DEFAULT_PORTS.get(via.transport, 5060)
    if source.transport.reliable:
        return source, (host, port)
    rport = via.param("rport")
    if rport and rport.isdigit() and 0 < int(rport) < 65536:
        port = int(rport)
    return Source(source.transport, host, port), None


def outgoing_response(response: Response, source: Source) -> Outgoing:
    """Serialize a response and address it per its top Via."""
    destination, fallback = response_route(response.top_via, source)
    return Outgoing(response.to_bytes(), destination, fallback)
