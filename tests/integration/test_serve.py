"""The real `b2bua serve` process: listeners, answers, signals, check-config."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from integration.server import Server, b2bua_command
from integration.sipclient import header, request, status_of, tcp_exchange, udp_exchange

pytestmark = pytest.mark.timeout(60)

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "b2bua.toml"


def test_options_over_udp(b2bua_server: Server) -> None:
    response = udp_exchange(b2bua_server.sip_address, request("OPTIONS"))
    assert response is not None
    assert status_of(response) == 200
    assert "OPTIONS" in (header(response, "Allow") or "")
    assert header(response, "Accept") == "application/sdp"
    assert header(response, "Supported") is not None
    # RFC 3581: rport filled and received added, so the reply found us.
    via = header(response, "Via") or ""
    assert ";rport=" in via and "received=127.0.0.1" in via


def test_options_over_tcp(b2bua_server: Server) -> None:
    response = tcp_exchange(b2bua_server.sip_address, request("OPTIONS", transport="TCP"))
    assert status_of(response) == 200
    assert header(response, "Content-Length") == "0"


def test_retransmission_gets_the_same_answer(b2bua_server: Server) -> None:
    message = request("OPTIONS")
    # A retransmission comes from the same socket; the server transaction resends
    # its last response byte for byte (RFC 3261 section 17.2.2).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        sock.sendto(message, b2bua_server.sip_address)
        first = sock.recv(65535)
        sock.sendto(message, b2bua_server.sip_address)
        second = sock.recv(65535)
    assert first == second
    assert ";tag=" in (header(first, "To") or "")


@pytest.mark.parametrize(
    ("method", "status"),
    [("FOO", 501), ("INVITE", 404), ("BYE", 481), ("CANCEL", 481), ("REGISTER", 405)],
)
def test_final_answers(b2bua_server: Server, method: str, status: int) -> None:
    response = udp_exchange(b2bua_server.sip_address, request(method))
    assert response is not None
    assert status_of(response) == status
    if status in (405, 501):
        assert "INVITE" in (header(response, "Allow") or "")


def test_ack_is_not_answered(b2bua_server: Server) -> None:
    assert udp_exchange(b2bua_server.sip_address, request("ACK"), timeout=0.3) is None


def test_require_unknown_extension_gets_420(b2bua_server: Server) -> None:
    message = request("OPTIONS", extra="Require: foo, timer\r\n")
    response = udp_exchange(b2bua_server.sip_address, message)
    assert response is not None
    assert status_of(response) == 420
    assert header(response, "Unsupported") == "foo"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (request("OPTIONS").replace(b"Content-Length: 0", b"Content-Length: 99"), 400),
        (request("OPTIONS").replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505),
        (request("OPTIONS").replace(b"OPTIONS\r\n", b"INVITE\r\n"), 400),
    ],
)
def test_malformed_but_answerable_gets_an_error(
    b2bua_server: Server, data: bytes, status: int
) -> None:
    response = udp_exchange(b2bua_server.sip_address, data)
    assert response is not None
    assert status_of(response) == status
    assert (
        header(
            response,
            "Warning",
        )
        is not None
    )


def test_garbage_is_dropped(b2bua_server: Server) -> None:
    assert udp_exchange(b2bua_server.sip_address, b"\x00garbage\r\n\r\n", timeout=0.3) is None
    assert udp_exchange(b2bua_server.sip_address, request("OPTIONS")) is not None


def test_tcp_framing_error_answers_400_and_closes(b2bua_server: Server) -> None:
    broken = request("OPTIONS", transport="TCP").replace(b"Content-Length: 0", b"Content-Length: x")
    response = tcp_exchange(b2bua_server.sip_address, broken)
    assert status_of(response) == 400


def test_health_endpoints(b2bua_server: Server) -> None:
    for path, expected in (("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})):
        url = f"http://127.0.0.1:{b2bua_server.http_port}{path}"
        with urllib.request.urlopen(url, timeout=2) as reply:
            assert reply.status == 200
            assert json.loads(reply.read()) == expected


def test_logs_are_json_lines_with_listening_addresses(b2bua_server: Server) -> None:
    events = b2bua_server.log_events()
    assert all(event.get("event") != "unparsable" for event in events), events
    listening = {e["transport"]: e["address"] for e in events if e["event"] == "listening"}
    assert listening == {
        "udp": f"127.0.0.1:{b2bua_server.sip_port}",
        "tcp": f"127.0.0.1:{b2bua_server.sip_port}",
        "http": f"127.0.0.1:{b2bua_server.http_port}",
    }


def test_untrusted_source_is_rejected(start_b2bua: Callable[..., Server]) -> None:
    trunks = '[[trunks]]\nname = "far"\naddress = "udp:127.0.0.2:5070"\n'
    trunks += 'inbound_from = ["127.0.0.2/32"]\n'
    server = start_b2bua(trunks=trunks)
    response = udp_exchange(server.sip_address, request("OPTIONS"))
    assert response is not None
    assert status_of(response) == 403
    # The trusted address still gets 200.
    trusted = udp_exchange(server.sip_address, request("OPTIONS"), bind="127.0.0.2")
    assert trusted is not None and status_of(trusted) == 200


def test_untrusted_source_is_dropped_when_configured(start_b2bua: Callable[..., Server]) -> None:
    trunks = '[[trunks]]\nname = "far"\naddress = "udp:127.0.0.2:5070"\n'
    trunks += 'inbound_from = ["127.0.0.2/32"]\n'
    server = start_b2bua(sip='untrusted_action = "drop"', trunks=trunks)
    assert udp_exchange(server.sip_address, request("OPTIONS"), timeout=0.5) is None
    trusted = udp_exchange(server.sip_address, request("OPTIONS"), bind="127.0.0.2")
    assert trusted is not None and status_of(trusted) == 200


def test_sigterm_stops_cleanly(start_b2bua: Callable[..., Server]) -> None:
    server = start_b2bua()
    assert udp_exchange(server.sip_address, request("OPTIONS")) is not None
    assert server.stop() == 0
    events = [e["event"] for e in server.log_events()]
    assert events.index("stopping") < events.index("stopped")


def test_port_in_use_fails_startup(b2bua_server: Server, tmp_path: Path) -> None:
    config = b2bua_server.config_path.read_text()
    taken = tmp_path / "taken.toml"
    taken.write_text(config.replace(str(b2bua_server.config_path.parent), str(tmp_path)))
    result = subprocess.run(
        [*b2bua_command(), "serve", "-c", str(taken)],
        capture_output=True,
        timeout=20,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert b"startup_failed" in result.stdout


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*b2bua_command(), *args], capture_output=True, text=True, timeout=20, check=False
    )


def test_check_config_ok() -> None:
    result = run_cli("check-config", str(EXAMPLE))
    assert result.returncode == 0
    assert result.stdout.strip() == "ok"


def test_check_config_reports_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[sip]\nlisten = ["udp:x"]\ncolour = 1\n[[trunks]]\nname = "a"\n')
    result = run_cli("check-config", str(bad))
    assert result.returncode == 1
    assert sorted(result.stderr.splitlines()) == [
        "sip.colour: unknown key",
        'sip.listen[0]: expected "udp:host:port" or "tcp:host:port" or "tls:host:port",'
        " got 'udp:x'",
        "trunks[0].address: required",
    ]


def test_check_config_missing_file(tmp_path: Path) -> None:
    result = run_cli("check-config", str(tmp_path / "none.toml"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr


def test_serve_with_bad_config_exits_1_without_serving(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[limits]\nmax_calls = 0\n")
    result = run_cli("serve", "-c", str(bad))
    assert result.returncode == 1
    assert "limits.max_calls: must be at least 1" in result.stderr
