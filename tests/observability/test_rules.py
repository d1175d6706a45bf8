"""The Prometheus alert rules: valid for promtool, alerts fire as intended, names exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tooling import require_tool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "prometheus" / "b2bua-rules.yml"
UNIT_TESTS = Path(__file__).with_name("rules_test.yml")


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    tests = tmp_path / "rules_test.yml"
    tests.write_text(UNIT_TESTS.read_text().replace("RULES_FILE", str(RULES)))
    result = subprocess.run(
        [promtool, "test", "rules", str(tests)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def rule_metric_names() -> set[str]:
    """Every b2bua_ metric an alert or recording rule reads (comments left out)."""
    lines = [line.partition("#")[0] for line in RULES.read_text().splitlines()]
    return set(re.findall(r"\bb2bua_[a-z0-9_]+", "\n".join(lines)))


def test_every_required_alert_exists() -> None:
    text = RULES.read_text()
    alerts = set(re.findall(r"(?m)^\s*- alert: (\w+)$", text))
    required = {
        "B2buaAsrDrop",
        "B2buaPddHigh",
        "B2buaTrunkDown",
        "B2buaStoreLatencyHigh",
        "B2buaEventLoopLag",
        "B2buaFraudPatternTripped",
        "B2buaCallRecordBacklog",
    }
    assert required <= alerts
    # promtool checks the structure; here: every alert has a severity and a summary.
    for block in re.split(r"(?m)^\s*- (?=alert:|record:)", text)[1:]:
        if block.startswith("alert:"):
            assert re.search(r"severity: (warning|critical)\n", block), block
            assert "summary:" in block, block
