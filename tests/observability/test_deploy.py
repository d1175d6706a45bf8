"""The systemd unit: `systemd-analyze verify` accepts it, and the hardening is in place."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from b2bua.config import CallsConfig

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "b2bua.service"


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_is_hardened() -> None:
    unit = settings()
    assert unit["User"] == ["b2bua"]
    assert unit["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert unit["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["KillSignal"] == ["SIGTERM"]
    assert int(unit["LimitNOFILE"][0]) >= 65536
    # SIGTERM drains calls: systemd must not SIGKILL before the drain can finish.
    assert int(unit["TimeoutStopSec"][0]) > CallsConfig().drain_timeout_s + 5


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify insists the ExecStart binary exists; the install path does not exist here.
    unit = tmp_path / "b2bua.service"
    unit.write_text(re.sub(r"/opt/b2bua/\.venv/bin/b2bua", "/bin/true", UNIT.read_text()))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    output = result.stdout + result.stderr
    problems = [line for line in output.splitlines() if "b2bua.service" in line]
    assert result.returncode == 0 and not problems, output
