"""The load kit's UAS (sipp_scenarios/load_uas.xml) driven by hand over UDP, no server.

Our B-leg INVITE is retransmitted by Timer A when the server has not read the
UAS's 180 within T1 (a loop stall). SIPp replays an answer only for the message
before its first send, so without a step for it, it would abort the call on the
retransmitted INVITE and a load run would count a failure the server did not cause.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.sipp, pytest.mark.timeout(60)]


def request(method: str, cseq: int, uas_port: int, our_port: int, to_tag: str = "") -> bytes:
    """A request of B's leg as the server sends it: X as the caller, B as the callee."""
    to = "<sip:13900000001@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    # The ACK of a 2xx is a transaction of its own (RFC 3261 17.1.1.3): any branch.
    branch = f"z9hG4bK-retrans-{method.lower()}"
    body = b""
    extra = ""
    if method == "INVITE":
        body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        body += b"m=audio 4000 RTP/AVP 0\r\n"
        extra = "Content-Type: application/sdp\r\n"
        extra += "P-Asserted-Identity: <sip:700000000000001@127.0.0.1>\r\n"
    head = (
        f"{method} sip:13900000001@127.0.0.1:{uas_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{our_port};branch={branch};rport\r\n"
        "Max-Forwards: 69\r\n"
        "From: <sip:700000000000001@127.0.0.1>;tag=b2bua-from\r\n"
        f"To: {to}\r\n"
        "Call-ID: retransmitted-invite@127.0.0.1\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Contact: <sip:127.0.0.1:{our_port}>\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def status_and_tag(datagram: bytes) -> tuple[int, str]:
    lines = datagram.decode().split("\r\n")
    to = next(line for line in lines if line.lower().startswith("to:"))
    return int(lines[0].split()[1]), to.split(";tag=", 1)[1].split(";")[0] if ";tag=" in to else ""


def test_the_uas_answers_a_retransmitted_invite_again(tmp_path: Path, kit: ModuleType) -> None:
    uas_port = kit.free_port()
    uas = kit.start_uas(tmp_path, uas_port)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            our_port = sock.getsockname()[1]
            invite = request("INVITE", 1, uas_port, our_port)
            sock.sendto(invite, ("127.0.0.1", uas_port))
            assert status_and_tag(sock.recv(65536))[0] == 180
            assert status_and_tag(sock.recv(65536))[0] == 200
            # Two retransmissions crossed the answers: the same INVITE again, twice.
            sock.sendto(invite, ("127.0.0.1", uas_port))
            sock.sendto(invite, ("127.0.0.1", uas_port))
            status, tag = status_and_tag(sock.recv(65536))
            assert status == 200, "the 200 is retransmitted until the ACK"
            sock.sendto(request("ACK", 1, uas_port, our_port, tag), ("127.0.0.1", uas_port))
            sock.sendto(request("BYE", 2, uas_port, our_port, tag), ("127.0.0.1", uas_port))
            # Skip a 200 to the INVITE retransmitted before our ACK got there.
            while b"CSeq: 2 BYE" not in (answer := sock.recv(65536)):
                pass
            assert status_and_tag(answer)[0] == 200
    finally:
        summary = uas.stop()
    assert (summary.successful, summary.failed) == (1, 0), summary.errors
