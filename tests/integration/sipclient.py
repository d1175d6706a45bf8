"""Tiny blocking SIP client helpers for integration tests (python sockets only)."""

from __future__ import annotations

import itertools
import re
import socket

_counter = itertools.count(1)


def request(
    method: str,
    *,
    transport: str = "UDP",
    local: tuple[str, int] = ("127.0.0.1", 5999),
    call_id: str | None = None,
    extra: str = "",
    body: bytes = b"",
) -> bytes:
    """A well-formed request with a fresh branch and Call-ID."""
    number = next(_counter)
    call_id = call_id or f"test-{number}@127.0.0.1"
    head = (
        f"{method} sip:700123456789012@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {local[0]}:{local[1]};branch=z9hG4bK-test-{number};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:13812345678@127.0.0.1>;tag=from{number}\r\n"
        f"To: <sip:700123456789012@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {number} {method}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def status_of(response: bytes) -> int:
    """The status code of a response."""
    match = re.match(rb"SIP/2\.0 (\d{3}) ", response)
    assert match, response[:80]
    return int(match.group(1))


def header(response: bytes, name: str) -> str | None:
    """The first value of header `name` (case-insensitive), or None."""
    match = re.search(rb"\r\n" + name.encode() + rb"[ \t]*:[ \t]*([^\r\n]*)", response, re.I)
    return match.group(1).decode() if match else None


def udp_exchange(
    server: tuple[str, int],
    data: bytes,
    *,
    bind: str = "127.0.0.1",
    timeout: float = 2.0,
) -> bytes | None:
    """Send one datagram from a fresh socket; return the first reply or None on timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((bind, 0))
        sock.settimeout(timeout)
        sock.sendto(data, server)
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def tcp_exchange(server: tuple[str, int], data: bytes, *, timeout: float = 2.0) -> bytes:
    """Send on a fresh connection; return everything read until a whole response
    (by Content-Length) or EOF."""
    with socket.create_connection(server, timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65535)
            except TimeoutError:
                return received
            if not chunk:
                return received
            received += chunk
            end = received.find(b"\r\n\r\n")
            if end >= 0:
                length = header(received, "Content-Length")
                if length is not None and len(received) >= end + 4 + int(length):
                    return received
