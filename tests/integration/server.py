"""Running the real `b2bua serve` process on free loopback ports for tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


def b2bua_command() -> list[str]:
    """The installed console script, or the module when it is not on disk."""
    script = Path(sys.executable).parent / "b2bua"
    return [str(script)] if script.exists() else [sys.executable, "-m", "b2bua.cli"]


def free_sip_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no free port for UDP and TCP")


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A free TCP port on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind((host, 0))
        return int(tcp.getsockname()[1])


@dataclass
class Server:
    """A running `b2bua serve` process and where it listens."""

    process: subprocess.Popen[bytes]
    sip_port: int
    http_port: int
    log_path: Path
    config_path: Path
    stopped: bool = field(default=False)

    @property
    def sip_address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.sip_port)

    def log_events(self) -> list[dict[str, object]]:
        """Every JSON log line so far, parsed."""
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                events.append({"event": "unparsable", "line": line})
        return events

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        """SIGTERM and wait; return the exit code."""
        if not self.stopped:
            self.stopped = True
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


DEFAULT_TRUNK = """
[[trunks]]
name = "loopback"
address = "udp:127.0.0.1:5070"
inbound_from = ["127.0.0.1/32"]
"""


DEFAULT_TIMERS = """
t1 = 0.1
t2 = 0.4
t4 = 0.5
timer_d = 1.0
"""


def write_config(
    tmp_path: Path,
    sip_port: int,
    http_port: int,
    *,
    sip: str = "",
    trunks: str = DEFAULT_TRUNK,
    sections: str = "",
    timers: str = DEFAULT_TIMERS,
) -> Path:
    """A config on the given ports with SQLite in tmp_path and short timers.

    `sip` adds lines to [sip], `trunks` replaces the [[trunks]] tables and
    `sections` appends whole tables; `timers` replaces the [timers] lines.
    """
    text = f"""
[sip]
listen = ["udp:127.0.0.1:{sip_port}", "tcp:127.0.0.1:{sip_port}"]
host = "127.0.0.1"
{sip}

[http]
listen = "127.0.0.1:{http_port}"

[store]
url = "sqlite:///{tmp_path / "b2bua.db"}"

[timers]
{timers}
{sections}
{trunks}
"""
    path = tmp_path / "b2bua.toml"
    path.write_text(text)
    return path


def start_process(tmp_path: Path, **settings: str) -> Server:
    """Start `b2bua serve` and wait until it has logged every listener."""
    sip_port, http_port = free_sip_port(), free_tcp_port()
    config_path = write_config(tmp_path, sip_port, http_port, **settings)
    log_path = tmp_path / "server.log"
    # The log goes to a file, not a pipe, so a chatty server can never block on it.
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [*b2bua_command(), "serve", "-c", str(config_path)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env={**os.environ, "B2BUA_OPERATOR_KEY": "test-operator-key"},
        )
    server = Server(process, sip_port, http_port, log_path, config_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        events = server.log_events()
        if any(e.get("event") == "started" for e in events):
            listening = [e for e in events if e.get("event") == "listening"]
            assert {e["transport"] for e in listening} == {"udp", "tcp", "http"}
            return server
        if process.poll() is not None:
            pytest.fail(f"b2bua exited with {process.returncode}:\n{log_path.read_text()}")
        time.sleep(0.05)
    server.stop()
    pytest.fail(f"b2bua did not start in {STARTUP_TIMEOUT_S}s:\n{log_path.read_text()}")
