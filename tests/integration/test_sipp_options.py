"""SIPp drives OPTIONS at the real server over UDP and TCP; every call must succeed."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest
from tooling import require_tool

from integration.server import Server

pytestmark = [pytest.mark.sipp, pytest.mark.timeout(60)]

SCENARIO = Path(__file__).resolve().parents[2] / "sipp_scenarios" / "options.xml"
CALLS = 200
RATE = 200  # calls per second


def successful_calls(stat_file: Path) -> int:
    """`SuccessfulCall(C)` of the last row of a SIPp `-trace_stat` file."""
    with open(stat_file, newline="") as file:
        rows = list(csv.DictReader(file, delimiter=";"))
    return int(rows[-1]["SuccessfulCall(C)"])


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_sipp_options(b2bua_server: Server, tmp_path: Path, transport: str) -> None:
    sipp = require_tool("sipp")
    stat_file = tmp_path / "stat.csv"
    command = [
        sipp,
        "-sf", str(SCENARIO),
        "-m", str(CALLS),
        "-r", str(RATE),
        "-t", transport,
        "-i", "127.0.0.1",
        "-p", "0",
        "-timeout", "20s",
        "-timeout_error",
        "-trace_stat", "-stf", str(stat_file),
        "-trace_err", "-error_file", str(tmp_path / "errors.log"),
        f"127.0.0.1:{b2bua_server.sip_port}",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, timeout=40, cwd=tmp_path, stdin=subprocess.DEVNULL
    )
    output = result.stdout.decode(errors="replace")[-2000:]
    assert result.returncode == 0, output
    assert successful_calls(stat_file) == CALLS, output
