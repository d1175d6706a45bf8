"""Parse and serialize a typical carrier INVITE with SDP; print messages per second.

Run: .venv/bin/python benchmarks/parse_bench.py [--seconds 3] [--repeats 5]

Single-threaded, so it measures one core. It prints three figures: plain
parse+serialize (the issue's target, at least 50,000 per second), the same
while reading the fields the call engine reads on every INVITE (Call-ID, CSeq,
top Via, From, To, Request-URI), so lazy parsing is not flattered, and that
again over INVITEs that differ in branch, tags and Call-ID like real traffic,
so that what the parser remembers per distinct header text is not flattered
either (one INVITE parsed over and over hits those caches every time).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from b2bua.sip import parse_message

CARRIER_INVITE = (
    b"INVITE sip:700123456789012@10.20.30.40:5060;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.1.2.3:5060;branch=z9hG4bK-524287-1---1fb9a2a8d0c3e6f1;rport\r\n"
    b"Via: SIP/2.0/UDP 10.1.2.4:5060;branch=z9hG4bK-77aa8c1f;received=10.1.2.4\r\n"
    b"Max-Forwards: 69\r\n"
    b"Record-Route: <sip:10.1.2.3:5060;lr;ftag=as5c6f3b1a>\r\n"
    b"Contact: <sip:13812345678@10.1.2.3:5060;transport=udp>\r\n"
    b"To: <sip:700123456789012@10.20.30.40;user=phone>\r\n"
    b'From: "13812345678" <sip:13812345678@10.1.2.3;user=phone>;tag=as5c6f3b1a\r\n'
    b"P-Asserted-Identity: <sip:+8613812345678@10.1.2.3;user=phone>\r\n"
    b"Call-ID: 3c26700b2f3b4e8e9b7d0ad2e5a1f9c4@10.1.2.3\r\n"
    b"CSeq: 102 INVITE\r\n"
    b"User-Agent: CarrierSBC/5.2\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, PRACK, UPDATE\r\n"
    b"Supported: 100rel, timer, replaces\r\n"
    b"Session-Expires: 1800;refresher=uac\r\n"
    b"Min-SE: 90\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 254\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=13812345678 2890844526 2890844526 IN IP4 10.1.2.3\r\n"
    b"s=13812345678\r\n"
    b"c=IN IP4 10.1.2.3\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 8 0 18 101\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:18 G729/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)


def parse_serialize(count: int) -> float:
    """Parse and serialize `count` times (the issue's figure); return seconds."""
    start = time.perf_counter()
    for _ in range(count):
        parse_message(CARRIER_INVITE).to_bytes()
    return time.perf_counter() - start


def parse_read_serialize(count: int) -> float:
    """Also read the fields routing needs, so lazy parsing is paid for too."""
    start = time.perf_counter()
    for _ in range(count):
        message = parse_message(CARRIER_INVITE)
        _ = message.call_id, message.cseq, message.top_via.branch
        _ = message.from_addr.tag, message.to_addr.uri.user, message.request_uri.user
        message.to_bytes()
    return time.perf_counter() - start


def _varied(count: int) -> list[bytes]:
    """`count` carrier INVITEs with their own branch, From tag and Call-ID."""
    out = []
    for n in range(count):
        out.append(
            CARRIER_INVITE.replace(b"1fb9a2a8d0c3e6f1", f"{n:016x}".encode())
            .replace(b"tag=as5c6f3b1a\r\n", f"tag=as{n:08x}\r\n".encode())
            .replace(b"3c26700b2f3b4e8e9b7d0ad2e5a1f9c4", f"{n:032x}".encode())
        )
    return out


VARIED = _varied(20_000)


def parse_read_serialize_varied(count: int) -> float:
    """As `parse_read_serialize`, each round on the next distinct INVITE."""
    messages = VARIED
    start = time.perf_counter()
    for index in range(count):
        message = parse_message(messages[index % len(messages)])
        _ = message.call_id, message.cseq, message.top_via.branch
        _ = message.from_addr.tag, message.to_addr.uri.user, message.request_uri.user
        message.to_bytes()
    return time.perf_counter() - start


def measure(round_fn: Callable[[int], float], seconds: float, repeats: int) -> list[float]:
    """Messages per second of `repeats` runs of about `seconds` each."""
    count = max(1000, int(2000 * seconds / round_fn(2000)))
    return [count / round_fn(count) for _ in range(repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each repeat")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    assert len(CARRIER_INVITE) > 800, "the INVITE should be carrier-sized"
    print(f"message: carrier INVITE with SDP, {len(CARRIER_INVITE)} bytes; one core")
    for label, round_fn in (
        ("parse+serialize", parse_serialize),
        ("parse+read routing fields+serialize", parse_read_serialize),
        ("the same, each INVITE distinct", parse_read_serialize_varied),
    ):
        rates = measure(round_fn, args.seconds, args.repeats)
        median = statistics.median(rates)
        print(
            f"{label}: {median:,.0f} per second (median of {args.repeats}; "
            f"min {min(rates):,.0f}, max {max(rates):,.0f}; {1e6 / median:.1f} us each)"
        )


if __name__ == "__main__":
    main()
