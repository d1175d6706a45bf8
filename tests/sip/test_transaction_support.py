"""Message builders and a fake-clock harness shared by the transaction tests (no tests here)."""

from __future__ import annotations

from b2bua.sip import Request, Response, make_response, parse_message
from b2bua.sip.address import Address
from b2bua.sip.transaction import TransactionLayer
from b2bua.sip.transaction_base import Event, RequestReceived, Send
from b2bua.sip.transaction_client import InviteClientTransaction, NonInviteClientTransaction
from b2bua.sip.transaction_server import ServerTransaction

UDP_PEER = Address("UDP", "192.0.2.10", 5060)
TCP_PEER = Address("TCP", "192.0.2.10", 5060)
TRUNK = Address("UDP", "198.51.100.7", 5060)
TRUNK_TCP = Address("TCP", "198.51.100.7", 5060)


def outbound(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bKout1",
    transport: str = "UDP",
    cseq: int = 1,
    extra: bytes = b"",
) -> Request:
    """A request as our UA core would build it for the outbound leg."""
    data = (
        (
            f"{method} sip:13900000000@198.51.100.7 SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} 203.0.113.1:5060;branch={branch}\r\n"
            "Max-Forwards: 70\r\n"
            'From: "Bob" <sip:700100@203.0.113.1>;tag=ftag1\r\n'
            "To: <sip:13900000000@198.51.100.7>\r\n"
            "Call-ID: out-call-1\r\n"
            f"CSeq: {cseq} {method}\r\n"
            "Contact: <sip:b2bua@203.0.113.1:5060>\r\n"
        ).encode()
        + extra
        + b"Content-Length: 0\r\n\r\n"
    )
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def reply(request: Request, status: int, *, to_tag: str = "ttag9") -> Response:
    """The response the peer would send back, as parsed off the wire."""
    message = parse_message(make_response(request, status, to_tag=to_tag).to_bytes())
    assert isinstance(message, Response)
    return message


def inbound(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bKin1",
    sent_by: str = "192.0.2.10:5060",
    transport: str = "UDP",
    to_tag: str | None = None,
) -> Request:
    """A request arriving from the inbound trunk."""
    to = "<sip:700100@203.0.113.1>" + (f";tag={to_tag}" if to_tag else "")
    data = (
        f"{method} sip:700100@203.0.113.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {sent_by};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:13812345678@192.0.2.10>;tag=atag\r\n"
        f"To: {to}\r\n"
        "Call-ID: in-call-1\r\n"
        f"CSeq: 1 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def sends(layer: TransactionLayer) -> list[tuple[bytes, Address]]:
    """Drain the layer's outgoing queue as (data, destination) pairs."""
    return [(send.data, send.destination) for send in layer.drain_outgoing()]


def kinds(events: list[Event]) -> list[str]:
    """Event class names, for compact assertions."""
    return [type(event).__name__ for event in events]


def first_lines(items: list[tuple[bytes, Address]]) -> list[str]:
    """The start line of each sent message."""
    return [data.split(b"\r\n", 1)[0].decode() for data, _ in items]


def run_timers_until(
    layer: TransactionLayer, end: float
) -> list[tuple[float, list[Event], list[Send]]]:
    """Fire the layer's timers exactly at each deadline up to `end`, like call_at would."""
    fired: list[tuple[float, list[Event], list[Send]]] = []
    while (deadline := layer.next_deadline()) is not None and deadline <= end:
        events = layer.handle_timers(now=deadline)
        fired.append((deadline, events, layer.drain_outgoing()))
    return fired


def start_invite(
    layer: TransactionLayer, request: Request, destination: Address, *, now: float
) -> InviteClientTransaction:
    """`send_request` for an INVITE, typed as the INVITE client it returns."""
    transaction = layer.send_request(request, destination, now=now)
    assert isinstance(transaction, InviteClientTransaction)
    return transaction


def start_non_invite(
    layer: TransactionLayer,
    request: Request,
    destination: Address,
    *,
    now: float,
    reliable: bool | None = None,
) -> NonInviteClientTransaction:
    """`send_request` for anything but INVITE, typed as the non-INVITE client it returns."""
    transaction = layer.send_request(request, destination, now=now, reliable=reliable)
    assert isinstance(transaction, NonInviteClientTransaction)
    return transaction


def new_server(events: list[Event]) -> ServerTransaction:
    """The server transaction of the single RequestReceived in `events`."""
    (event,) = events
    assert isinstance(event, RequestReceived)
    return event.transaction
