"""Load: 200 calls per second for 30 s through the real server, no failures, no leaks.

SIPp calls A -> X -> B 6,000 times (1 s talk time, at most `CONCURRENT` calls
at once); the UAS checks caller ID and privacy on every INVITE. Every call must
succeed on both legs, and afterwards the server must hold no call, dialog or
transaction. The measured figures (rate reached, response times, retransmissions,
the server's CPU time) are printed; run with `-s` to see them.
"""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

import pytest

from integration.calls import A, B, X, assert_calls, call_lab, sipp_runner, spec
from integration.leaks import assert_no_leaks
from integration.server import DEFAULT_TIMERS, Server

RATE = 200  # calls per second
DURATION_S = 30
CALLS = RATE * DURATION_S
HOLD_MS = 1000
CONCURRENT = 1000  # SIPp -l: a ceiling, well above RATE * (HOLD + setup)
UAC_TIMEOUT_S = 90  # SIPp's own bound; the process is killed 10 s later

NO_POLICY = """
[policy]
enabled = false
"""

pytestmark = [pytest.mark.sipp, pytest.mark.timeout(180)]


def _server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / float(os.sysconf("SC_CLK_TCK"))


def _loop_lag(server: Server) -> str:
    """The server's event-loop lag histogram, if it exports one (for the record)."""
    url = f"http://127.0.0.1:{server.http_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except OSError as error:
        return f"loop lag: /metrics unavailable ({error})"
    buckets = [
        line.replace("b2bua_event_loop_lag_seconds_bucket", "")
        for line in text.splitlines()
        if line.startswith("b2bua_event_loop_lag_seconds_bucket")
    ]
    return "loop lag buckets: " + (", ".join(buckets) or "not exported")


def test_200_cps_for_30_s_without_failures_or_leaks(tmp_path: Path) -> None:
    bindings = [spec("AXB", a=A, b=B, x=X)]
    # T1 = 100 ms: under load a 50 ms T1 would add INVITE retransmissions. One
    # caller dialling 6,000 times is abuse to the policy rules (per-caller rate,
    # per-binding attempt cap), which are tested elsewhere: off here.
    with (
        call_lab(tmp_path, bindings, timers=DEFAULT_TIMERS, sections=NO_POLICY) as lab,
        sipp_runner(lab, tmp_path) as sipp,
    ):
        uas = sipp.start_uas("uas_axb_b.xml", calls=CALLS, timeout_s=UAC_TIMEOUT_S + 10)
        cpu_before = _server_cpu_s(lab.server.process.pid)
        started = time.monotonic()
        uac = sipp.run_uac(
            "uac_call.xml",
            caller=A,
            dialled=X,
            calls=CALLS,
            timeout_s=UAC_TIMEOUT_S,
            extra=[
                "-r", str(RATE), "-rp", "1000", "-l", str(CONCURRENT), "-d", str(HOLD_MS),
                "-fd", "1",
            ],
        )  # fmt: skip
        elapsed = time.monotonic() - started
        cpu = _server_cpu_s(lab.server.process.pid) - cpu_before
        uas_result = uas.wait(20)
        stats = uac.stats
        print(
            f"\nload: {uac.successful}/{CALLS} calls ok, {uac.failed} failed in {elapsed:.1f}s "
            f"({CALLS / elapsed:.0f} cps incl. {HOLD_MS} ms hold); server CPU {cpu:.1f}s "
            f"({100 * cpu / elapsed:.0f}% of one core); UAC retransmissions "
            f"{stats.get('Retransmissions(C)')}; response time (INVITE->200) "
            f"{stats.get('ResponseTime1(C)')}; UAS ok {uas_result.successful}"
        )
        print(_loop_lag(lab.server))
        assert_calls(uac, CALLS)
        assert_calls(uas_result, CALLS)
        assert_no_leaks(lab.server, timeout=20)
