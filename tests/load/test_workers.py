"""Several SIP worker processes (`[sip] workers = 2`) under SIPp, and their lifecycle.

One SIPp UAC sends every call from one socket, so the kernel hands all of them
to one worker's socket: the calls only spread if steering by Call-ID works.
Each worker writes its records under its own node id, so the records show who
handled what; /metrics (served by worker 0) must add both workers up.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

from load.conftest import FAST_TIMERS

pytestmark = [pytest.mark.sipp, pytest.mark.timeout(150)]

RATE = 40
CALLS = 400
ZERO = {"b2bua_active_calls": 0.0, "b2bua_dialogs_active": 0.0, "b2bua_transactions_active": 0.0}


def children(pid: int) -> list[int]:
    """The running child processes of `pid` (the forked SIP workers)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie its new parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def chains_by_node(kit: ModuleType, store_url: str) -> dict[str, int]:
    """`b2bua cdr verify`: finalised records per node's chain; every chain must verify."""
    result = subprocess.run(
        [*kit.b2bua_command(), "cdr", "verify", "--store", store_url],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    reports = [json.loads(line) for line in result.stdout.decode().splitlines() if line]
    return {report["node"]: report["checked"] for report in reports}


def test_two_workers_share_the_calls_and_metrics_add_up(
    tmp_path: Path, kit: ModuleType, store_url: str
) -> None:
    directory = tmp_path / "lab"
    with kit.lab(directory, bindings=200, extra=FAST_TIMERS, workers=2, store_url=store_url) as lab:
        server_pid = lab.server.pid
        workers = children(server_pid)
        assert len(workers) == 1, f"one forked worker expected, found {workers}"
        uac, _, _ = kit.run_calls(lab, rate=RATE, calls=CALLS, hold_s=1.0)
        state = lab.server.wait_idle(timeout=20)
        uas = lab.uas.stop()
        print(f"\n{uac.line()}\nUAS: {uas.line()}")
        assert (uac.successful, uac.failed) == (CALLS, 0), uac.errors
        assert uas.failed == 0 and uas.successful >= CALLS, uas.errors
        assert state is not None and {name: state.get(name) for name in ZERO} == ZERO
        # Both workers' counters, added up: worker 1 reports once a second.
        assert wait_for(
            lambda: (
                lab.server.gauges(["b2bua_calls_answered_total"]).get("b2bua_calls_answered_total")
                == CALLS
            ),
            timeout=5,
        ), lab.server.gauges(["b2bua_calls_answered_total"])
        # Every datagram arrives at the one worker SIPp's socket hashes to; about
        # half of them (seven per call) belong to the other.
        forwards = lab.server.gauges(["b2bua_worker_forwards_total"])
        assert forwards is not None and forwards["b2bua_worker_forwards_total"] >= CALLS, forwards
        exit_code = lab.server.stop()
        assert exit_code == 0
        assert wait_for(lambda: all(gone(pid) for pid in workers), 5)
    by_node = chains_by_node(kit, store_url)
    print(f"chained records by node: {by_node}")
    assert sum(by_node.values()) == CALLS
    assert len(by_node) == 2, by_node
    assert min(by_node.values()) >= CALLS // 4, f"calls not spread over the workers: {by_node}"


def test_a_worker_dying_stops_the_server_with_exit_code_1(tmp_path: Path, kit: ModuleType) -> None:
    with kit.lab(tmp_path / "lab", bindings=10, workers=2) as lab:
        (worker,) = children(lab.server.pid)
        os.kill(worker, signal.SIGKILL)
        assert wait_for(lambda: lab.server.process.poll() is not None, 20)
        assert lab.server.process.returncode == 1
        log = lab.server.log_path.read_text()
        assert '"worker_exited"' in log


def test_workers_die_with_worker_0(tmp_path: Path, kit: ModuleType) -> None:
    with kit.lab(tmp_path / "lab", bindings=10, workers=2) as lab:
        (worker,) = children(lab.server.pid)
        lab.server.process.kill()
        lab.server.process.wait()
        # PR_SET_PDEATHSIG: the orphan drains and exits instead of holding the port.
        assert wait_for(lambda: gone(worker), 30)


def test_a_second_server_on_the_same_port_is_refused(tmp_path: Path, kit: ModuleType) -> None:
    # SO_REUSEPORT would let it bind and silently take a share of the calls.
    with kit.lab(tmp_path / "lab", bindings=10, workers=2) as lab:
        config = (lab.directory / "b2bua.toml").read_text()
        second = tmp_path / "second"
        second.mkdir()
        http_port = kit.free_port(socket.SOCK_STREAM)
        # Same SIP port (UDP only: a TCP listener would fail on its own), another HTTP port.
        text = config.replace(f"127.0.0.1:{lab.server.http_port}", f"127.0.0.1:{http_port}")
        text = text.replace(f', "tcp:127.0.0.1:{lab.server.sip_port}"', "")
        text = text.replace(str(lab.directory / "b2bua.db"), str(second / "b2bua.db"))
        assert f"udp:127.0.0.1:{lab.server.sip_port}" in text and "tcp:" not in text
        (second / "b2bua.toml").write_text(text)
        result = subprocess.run(
            [*kit.b2bua_command(), "serve", "-c", str(second / "b2bua.toml")],
            capture_output=True,
            timeout=30,
        )
        output = (result.stdout + result.stderr).decode()
        assert result.returncode == 1, output
        assert "already served by another b2bua" in output
        assert lab.server.process.poll() is None  # the first one is untouched


def test_stopping_with_calls_in_progress_drains_every_worker_and_exits_0(
    tmp_path: Path, kit: ModuleType
) -> None:
    calls = 40
    directory = tmp_path / "lab"
    with kit.lab(directory, bindings=50, extra=FAST_TIMERS, workers=2) as lab:
        ready = f"http://127.0.0.1:{lab.server.http_port}/readyz"
        # Ready only once worker 1 has reported too.
        assert wait_for(lambda: urlopen_status(ready) == 200, 10)
        uac = kit.start_uac(
            lab.directory, ("127.0.0.1", lab.server.sip_port), lab.injection,
            rate=20, calls=calls, hold_ms=5000, limit=200, timeout_s=60, role="uac-drain",
        )  # fmt: skip

        def active() -> float:
            return (lab.server.gauges(["b2bua_active_calls"]) or {}).get("b2bua_active_calls", 0)

        assert wait_for(lambda: active() == calls, 10), active()
        exit_code = lab.server.stop()
        summary = uac.wait(60)
        log = lab.server.log_path.read_text()
    assert exit_code == 0, log[-3000:]
    assert '"worker_exited"' not in log
    # Each worker let its own calls finish before exiting: every call completed,
    # and both workers' chains hold some.
    assert (summary.successful, summary.failed) == (calls, 0), summary.errors
    by_node = chains_by_node(kit, f"sqlite:///{directory / 'b2bua.db'}")
    assert sum(by_node.values()) == calls and len(by_node) == 2, by_node


def urlopen_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0
