"""Crash safety end to end: SIGKILL `b2bua serve` under SIPp load, restart, check records.

A SIPp UAS plays B behind the outbound trunk; a SIPp UAC plays A calling X at
100 calls/s with a 300 ms hold and logs, per call, the wall-clock time it sent
the INVITE (``START``) and got the 200 for its BYE (``DONE``). The server is
killed with SIGKILL after a few seconds and restarted; its start closes what
the killed run left open. Then every call SIPp saw complete more than 1 s before
the kill must have exactly one complete record (matched on SIPp's Call-ID =
``inbound_call_id``), every call begun more than 1 s before the kill a record,
no record may be left open, none duplicated, and the hash chain must verify.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from integration.server import b2bua_command, free_sip_port, start_process
from tooling import require_tool

pytestmark = [pytest.mark.sipp, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
UAC = ROOT / "sipp_scenarios" / "cdr_uac.xml"
UAS = ROOT / "sipp_scenarios" / "cdr_uas.xml"
X, A, B = "700100000000001", "13800000001", "13900000002"
RATE, HOLD_MS, RUN_S = 100, 300, 4.0

NO_POLICY = "[policy]\nenabled = false\n"


def cli(*args: str, store: str) -> dict[str, object]:
    result = subprocess.run(
        [*b2bua_command(), *args, "--store", store], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.splitlines()[-1]))


def provision(store: str) -> None:
    """Tenant, number X in its pool, and an AXB binding A <-> B on X."""
    tenant = cli("tenants", "create", "crash-test", store=store)
    tenant_id = str(tenant["id"])
    cli("numbers", "import", tenant_id, X, store=store)
    cli("bindings", "create", tenant_id, "--mode", "AXB", "--a", A, "--b", B, "--x", X,
        "--ttl-s", "3600", "--order-id", "order-crash", store=store)  # fmt: skip


def sipp_log(path: Path) -> tuple[dict[str, float], dict[str, float]]:
    """``START``/``DONE`` wall-clock times per Call-ID from the UAC's log file."""
    started: dict[str, float] = {}
    done: dict[str, float] = {}
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] in ("START", "DONE"):
            at = float(parts[2]) + float(parts[3]) / 1e6
            (started if parts[0] == "START" else done)[parts[1]] = at
    return started, done


async def read_records(store_url: str) -> list[object]:
    from b2bua.cdr.chain import verify_chains
    from b2bua.store import open_store

    store = await open_store(store_url)
    try:
        records = [d async for d in store.cdr.iter_records(since=None, until=None)]
        reports = await verify_chains(store.cdr)
        assert all(r.ok for r in reports), [r.problem for r in reports]
        return list(records)
    finally:
        await store.close()


async def test_records_survive_sigkill(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    store_url = f"sqlite:///{tmp_path / 'b2bua.db'}"
    uas_port = free_sip_port()
    trunks = f"""
[[trunks]]
name = "carrier-b"
address = "udp:127.0.0.1:{uas_port}"
inbound_from = ["127.0.0.1/32"]
"""
    provision(store_url)
    # One caller at 100 calls/s is a load test, not abuse: the rate limits stay off.
    server = start_process(tmp_path, trunks=trunks, sections=NO_POLICY)
    uas = subprocess.Popen(
        [sipp, "-sf", str(UAS), "-i", "127.0.0.1", "-p", str(uas_port), "-nostdin"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    log_file = tmp_path / "calls.log"
    uac = subprocess.Popen(
        [sipp, "-sf", str(UAC), "-s", X, "-set", "caller", A, "-d", str(HOLD_MS),
         "-r", str(RATE), "-i", "127.0.0.1", "-p", "0", "-nostdin",
         "-trace_logs", "-log_file", str(log_file), f"127.0.0.1:{server.sip_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    try:
        time.sleep(RUN_S)
        server.process.send_signal(signal.SIGKILL)
        killed_at = time.time()
        server.process.wait(10)
        server.stopped = True
        time.sleep(0.5)
    finally:
        for tool in (uac, uas):
            tool.kill()
            tool.wait(10)
    # The restarted node's start closes the records the killed run left open.
    restarted = start_process(tmp_path, trunks=trunks, sections=NO_POLICY)
    assert restarted.stop() == 0, restarted.log_path.read_text()[-3000:]

    started, done = sipp_log(log_file)
    assert len(done) > RATE * (RUN_S - 2), f"too few calls completed: {len(done)}"
    records = await read_records(store_url)
    by_call_id: dict[str, list[object]] = {}
    for record in records:
        by_call_id.setdefault(record.inbound_call_id, []).append(record)  # type: ignore[attr-defined]
    duplicated = [call_id for call_id, found in by_call_id.items() if len(found) > 1]
    assert not duplicated, f"duplicated records: {duplicated[:5]}"
    assert all(r.ended_at is not None and r.hash for r in records), "a record was left open"  # type: ignore[attr-defined]
    for call_id, at in done.items():
        if at < killed_at - 1.0:
            (record,) = by_call_id.get(call_id) or pytest.fail(f"no record for {call_id}")
            assert (record.end_reason, record.final_status) == ("normal", 200), call_id  # type: ignore[attr-defined]
            assert record.answered_at and record.duration_s is not None, call_id  # type: ignore[attr-defined]
            assert (record.x, record.caller, record.callee) == (X, A, B)  # type: ignore[attr-defined]
    missing = [c for c, at in started.items() if at < killed_at - 1.0 and c not in by_call_id]
    assert not missing, f"attempts with no record: {missing[:5]}"
    interrupted = [r for r in records if r.end_reason == "interrupted"]  # type: ignore[attr-defined]
    assert all(r.invite_at > killed_at - 2.0 for r in interrupted)  # type: ignore[attr-defined]
