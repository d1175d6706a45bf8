"""CPU per complete call inside the sans-IO core (parse, transactions, engine, serialize).

Run: .venv/bin/python benchmarks/engine_bench.py [--calls 5000] [--repeats 5] [--profile]

`--profile` profiles only the timed sections, so the simulated trunks' own
work does not show up in it.

Each call is the carrier flow of DESIGN section 4 on both legs: INVITE, 100,
180, 200 with SDP, ACK, BYE, 200 (14 messages in and out). Only the server's
work is timed (parsing what arrives, the transaction layer, the engine, the
bytes it sends); the two simulated trunks build their messages outside the
timed sections. Sockets and the event loop are not included: benchmarks/
sip_load.py measures the whole server with SIPp.
"""

from __future__ import annotations

import argparse
import cProfile
import ipaddress
import itertools
import pstats
import statistics
import time

from b2bua.calls.dialog import LocalEndpoint
from b2bua.calls.engine import CallEngine
from b2bua.calls.events import CallEvent
from b2bua.calls.routing import RouteDecision, RouteRejection, Trunk
from b2bua.calls.settings import EngineSettings
from b2bua.sip import parse_message
from b2bua.sip.address import Address

A = "13812345678"
B = "13987654321"
X = "700123456789012"
CALLER = Address("UDP", "127.0.0.10", 5061)
CARRIER = Address("UDP", "127.0.0.20", 5070)
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n"
)
ROUTE = RouteDecision("b1", "t1", "o1", "AXB", "a_to_b", X, X, (B,), "Courier", None, A)


class _Router:
    def route(
        self, caller: str, dialled: str, *, wall_now: float
    ) -> RouteDecision | RouteRejection:
        return ROUTE


class _Sink:
    def emit(self, event: CallEvent) -> None:
        pass


def _invite(n: int) -> bytes:
    body = SDP
    return (
        f"INVITE sip:{X}@127.0.0.1:5060;user=phone SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.10:5061;branch=z9hG4bK-inv-{n};rport\r\n"
        "Max-Forwards: 69\r\n"
        f'From: "{A}" <sip:{A}@127.0.0.10;user=phone>;tag=a{n}\r\n'
        f"To: <sip:{X}@127.0.0.1;user=phone>\r\n"
        f"Call-ID: call-{n}@127.0.0.10\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:{A}@127.0.0.10:5061>\r\n"
        f"P-Asserted-Identity: <sip:+86{A}@127.0.0.10;user=phone>\r\n"
        "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, PRACK, UPDATE, INFO\r\n"
        "Supported: 100rel, timer\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class Sent:
    """A datagram the server sent, read by a simulated trunk.

    The trunks read it with plain string splitting rather than `parse_message`:
    the server's parser remembers the header lines it has seen, and only the
    server's own (timed) work may warm that, as in production.
    """

    def __init__(self, data: bytes) -> None:
        lines = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        self.start = lines[0]
        self.headers = [
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(":") for line in lines[1:])
        ]

    @property
    def method(self) -> str | None:
        """The method of a request, None for a response."""
        return None if self.start.startswith("SIP/") else self.start.split(" ", 1)[0]

    @property
    def status(self) -> int:
        return int(self.start.split(" ")[1])

    def get_lines(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def to_tag(self) -> str:
        return self.get_lines("to")[0].rsplit(">", 1)[-1].split(";tag=", 1)[1].split(";")[0]


def _first_request(out: list[tuple[bytes, Address]]) -> Sent:
    return next(sent for sent in (Sent(data) for data, _ in out) if sent.method)


def _response(request: Sent, status: int, *, tag: str, body: bytes = b"") -> bytes:
    lines = [f"SIP/2.0 {status} X"]
    for name in ("via", "from", "call-id", "cseq"):
        lines.extend(f"{name}: {v}" for v in request.get_lines(name))
    to_value = request.get_lines("to")[0]
    lines.append(f"To: {to_value}" + ("" if ";tag=" in to_value else f";tag={tag}"))
    if status == 200 and request.method == "INVITE":
        lines.append(f"Contact: <sip:{B}@127.0.0.20:5070>")
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _in_dialog(method: str, n: int, to_tag: str, cseq: int) -> bytes:
    return (
        f"{method} sip:{X}@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.10:5061;branch=z9hG4bK-{method.lower()}-{n};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{A}@127.0.0.10;user=phone>;tag=a{n}\r\n"
        f"To: <sip:{X}@127.0.0.1;user=phone>;tag={to_tag}\r\n"
        f"Call-ID: call-{n}@127.0.0.10\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


class Run:
    """One engine and the two simulated trunks; `server_seconds` accumulates CPU time.

    With a `profiler`, only the timed sections (the server's work) are profiled.
    """

    def __init__(self, profiler: cProfile.Profile | None = None) -> None:
        counter = itertools.count()
        self.now = 0.0
        self.server_seconds = 0.0
        self.profiler = profiler
        self.engine = CallEngine(
            EngineSettings(
                endpoints={"UDP": LocalEndpoint("UDP", "127.0.0.1", 5060)},
                trunks=(Trunk("carrier", CARRIER, 1, (ipaddress.ip_network("127.0.0.0/8"),)),),
                keepalive_interval_s=1e9,
            ),
            _Router(),
            _Sink(),
            random=lambda: f"{next(counter):x}",
            wall_clock=lambda: 1.7e9 + self.now,
        )

    def server(self, data: bytes, source: Address) -> list[tuple[bytes, Address]]:
        if self.profiler is not None:
            self.profiler.enable()
        start = time.process_time()
        self.engine.receive(parse_message(data), source, now=self.now)
        out = self.engine.drain()
        self.server_seconds += time.process_time() - start
        if self.profiler is not None:
            self.profiler.disable()
        return out

    def timers(self) -> None:
        if self.profiler is not None:
            self.profiler.enable()
        start = time.process_time()
        self.engine.handle_timers(now=self.now)
        self.engine.drain()
        self.server_seconds += time.process_time() - start
        if self.profiler is not None:
            self.profiler.disable()

    def call(self, n: int) -> None:
        b_invite = _first_request(self.server(_invite(n), CALLER))
        assert b_invite.method == "INVITE"
        self.server(_response(b_invite, 100, tag="b"), CARRIER)
        out = self.server(_response(b_invite, 180, tag=f"b{n}"), CARRIER)
        to_a = Sent(out[0][0])
        assert to_a.method is None and to_a.status == 180
        our_tag = to_a.to_tag()
        self.server(_response(b_invite, 200, tag=f"b{n}", body=SDP), CARRIER)
        self.server(_in_dialog("ACK", n, our_tag, 1), CALLER)
        bye_b = _first_request(self.server(_in_dialog("BYE", n, our_tag, 2), CALLER))
        assert bye_b.method == "BYE"
        self.server(_response(bye_b, 200, tag=f"b{n}"), CARRIER)


def measure(calls: int, profiler: cProfile.Profile | None = None) -> tuple[float, int]:
    """Server CPU microseconds per call for `calls` calls, and calls left active."""
    run = Run(profiler)
    for n in range(calls):
        run.call(n)
        if n % 200 == 0:
            run.now += 0.05
            run.timers()
    run.now += 100.0  # let every transaction's Timer J/K/D expire
    run.timers()
    return run.server_seconds / calls * 1e6, run.engine.active_calls + run.engine.layer.live_count


def machine_speed_us(calls: int = 1000, repeats: int = 3) -> float:
    """This machine's speed now: the median CPU microseconds per call of a few short runs.

    Figures from different days or machines compare only through this: the same
    code read 339 us on one machine and about 900 us on a slower one, and 715 to
    1,000 us on one machine within an hour.
    """
    return statistics.median(measure(calls)[0] for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of the server's work in one run"
    )
    args = parser.parse_args()
    if args.profile:
        profiler = cProfile.Profile()
        measure(args.calls, profiler)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    figures = []
    for _ in range(args.repeats):
        per_call, leftover = measure(args.calls)
        assert leftover == 0, f"{leftover} calls/transactions leaked"
        figures.append(per_call)
    median = statistics.median(figures)
    print(f"calls per run: {args.calls}, runs: {args.repeats}, one core, no sockets")
    print(
        f"server CPU per complete call (14 messages): median {median:.0f} us "
        f"(min {min(figures):.0f}, max {max(figures):.0f}); budget 500 us (DESIGN 7)"
    )


if __name__ == "__main__":
    main()
