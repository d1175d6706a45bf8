"""A sans-IO test bench for the call engine: fake clock, fake router, byte strings.

No sockets and no sleeping: tests feed byte strings from a named peer and read
back what the engine would send, parsed, with the address it goes to.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field
from typing import Any

from b2bua.calls.dialog import LocalEndpoint
from b2bua.calls.engine import CallEngine
from b2bua.calls.events import CallEvent
from b2bua.calls.routing import RouteDecision, RouteRejection, Trunk
from b2bua.calls.settings import EngineSettings
from b2bua.sip import Request, Response, parse_message
from b2bua.sip.address import Address
from b2bua.sip.timers import TimerConfig

CALLER_TRUNK = Address("UDP", "127.0.0.10", 5061)  # where A's calls come from
CARRIER = Address("UDP", "127.0.0.20", 5070)  # the outbound trunk (B side)
BACKUP = Address("UDP", "127.0.0.30", 5070)
US = LocalEndpoint("UDP", "127.0.0.1", 5060)
A = "13812345678"
B = "13987654321"
X = "700123456789012"
G2 = "13700000002"


@dataclass
class FakeRouter:
    """Routes from a table of (caller, dialled) -> decision; 404 otherwise."""

    routes: dict[tuple[str, str], RouteDecision | RouteRejection] = field(default_factory=dict)

    def route(
        self, caller: str, dialled: str, *, wall_now: float
    ) -> RouteDecision | RouteRejection:
        # The real router normalises through b2bua.numbering; this one knows +86 only.
        caller = caller.removeprefix("+86") if caller.startswith("+86") else caller
        found = self.routes.get((caller, dialled))
        if found is None:
            return RouteRejection(404, "unknown_number", caller=caller)
        return found


@dataclass
class ListSink:
    events: list[CallEvent] = field(default_factory=list)

    def emit(self, event: CallEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


def axb(
    *,
    label: str | None = "Courier",
    max_call_s: float | None = None,
    targets: tuple[str, ...] = (B,),
) -> RouteDecision:
    return RouteDecision(
        binding_id="bnd-1",
        tenant_id="ten-1",
        order_id="ord-1",
        mode="GXB" if len(targets) > 1 else "AXB",
        direction="a_to_b",
        middle_number=X,
        shown_number=X,
        targets=targets,
        label=label,
        max_call_s=max_call_s,
        caller=A,
    )


class Bench:
    """One engine, a clock, and helpers to play both trunks."""

    def __init__(
        self,
        router: FakeRouter | None = None,
        *,
        trunks: tuple[Trunk, ...] | None = None,
        max_calls: int = 100,
        ring_timeout_s: float = 60.0,
    ) -> None:
        counter = itertools.count(1)
        self.router = router or FakeRouter({(A, X): axb()})
        self.sink = ListSink()
        self.now = 1000.0
        networks = (ipaddress.ip_network("127.0.0.0/8"),)
        self.engine = CallEngine(
            EngineSettings(
                endpoints={"UDP": US},
                trunks=trunks or (Trunk("carrier-a", CARRIER, 1, networks),),
                timers=TimerConfig(),
                max_calls=max_calls,
                ring_timeout_s=ring_timeout_s,
                keepalive_interval_s=3600,
            ),
            self.router,
            self.sink,
            random=lambda: f"r{next(counter)}",
            wall_clock=lambda: 1_700_000_000.0 + self.now,
        )

    def feed(self, data: bytes, source: Address) -> list[tuple[Request | Response, Address]]:
        self.engine.receive(parse_message(data), source, now=self.now)
        return self.sent()

    def sent(self) -> list[tuple[Request | Response, Address]]:
        return [(parse_message(d), a) for d, a in self.engine.drain()]

    def raw_sent(self) -> list[tuple[bytes, Address]]:
        return self.engine.drain()

    def advance(self, seconds: float) -> list[tuple[Request | Response, Address]]:
        end = self.now + seconds
        out: list[tuple[Request | Response, Address]] = []
        while True:
            deadline = self.engine.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            self.engine.handle_timers(now=self.now)
            out.extend(self.sent())
        self.now = end
        self.engine.handle_timers(now=self.now)
        out.extend(self.sent())
        return out


SDP_A = (
    b"v=0\r\no=13812345678 1 1 IN IP4 127.0.0.10\r\ns=13812345678\r\nc=IN IP4 127.0.0.10\r\n"
    b"t=0 0\r\nm=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
)
SDP_B = (
    b"v=0\r\no=13987654321 7 7 IN IP4 127.0.0.20\r\ns=callee\r\nc=IN IP4 127.0.0.20\r\n"
    b"t=0 0\r\nm=audio 50000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
)


def invite_from_a(
    *,
    caller: str = A,
    dialled: str = X,
    call_id: str = "a-call-1",
    branch: str = "z9hG4bKa1",
    extra: str = "",
    body: bytes = SDP_A,
    cseq: int = 1,
) -> bytes:
    head = (
        f"INVITE sip:{dialled}@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.10:5061;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        f'From: "{caller}" <sip:{caller}@127.0.0.10>;tag=atag\r\n'
        f"To: <sip:{dialled}@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} INVITE\r\n"
        f"Contact: <sip:{caller}@127.0.0.10:5061>\r\n"
        f"P-Asserted-Identity: <sip:+86{caller}@127.0.0.10>\r\n"
        f"{extra}"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def response_to(
    request: Request,
    status: int,
    *,
    to_tag: str = "btag",
    body: bytes = b"",
    extra: str = "",
    contact: str = "<sip:callee@127.0.0.20:5070>",
    reason: str = "Whatever",
) -> bytes:
    """A response from the peer that received `request` (copies Via, From, To, Call-ID, CSeq)."""
    lines = [f"SIP/2.0 {status} {reason}"]
    for name in ("via", "from", "call-id", "cseq"):
        for value in request.headers.get_lines(name):
            lines.append(f"{name}: {value}")
    to_value = request.headers.get("to") or ""
    if status > 100 and ";tag=" not in to_value:
        to_value += f";tag={to_tag}"
    lines.append(f"To: {to_value}")
    if contact and status < 300 and status > 100:
        lines.append(f"Contact: {contact}")
    if extra:
        lines.extend(extra.rstrip("\r\n").split("\r\n"))
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def in_dialog(
    method: str,
    *,
    uri: str,
    call_id: str,
    from_value: str,
    to_value: str,
    cseq: int,
    branch: str,
    via_host: str,
    extra: str = "",
    body: bytes = b"",
    content_type: str = "application/sdp",
) -> bytes:
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via_host};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {from_value}\r\nTo: {to_value}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
        f"{extra}"
        + (f"Content-Type: {content_type}\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def only(messages: list[tuple[Request | Response, Address]], kind: str) -> list[Any]:
    """Messages whose method or status (as text) is `kind`."""
    out = []
    for message, address in messages:
        label = message.method if isinstance(message, Request) else str(message.status)
        if label == kind:
            out.append((message, address))
    return out
