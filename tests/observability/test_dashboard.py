"""The Grafana dashboard: importable JSON, and every metric it queries is exported.

The metric names are taken from every PromQL expression of the dashboard (and of
the alert rules), then looked up in a real scrape of a server that carried real
calls (fixture `observed`). A family that is described but has no sample yet
(the record writer before it is wired, a fraud rule never tripped) counts as
present: Prometheus knows the name and the panel shows "no data", not an error.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from observability.conftest import Observed
from observability.test_rules import rule_metric_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "config" / "grafana" / "b2bua.json"
METRIC = re.compile(r"\bb2bua_[a-z0-9_]+")
# Names PromQL derives from a histogram or counter family.
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of every panel, rows included."""
    found = []
    stack = list(dashboard["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        found.extend(target["expr"] for target in panel.get("targets", []) if "expr" in target)
    return found


def exported_names(scrape: str) -> set[str]:
    """Sample names and family names (with their derived forms) of a scrape."""
    names: set[str] = set()
    for family in text_string_to_metric_families(scrape):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES)
        names.update(sample.name for sample in family.samples)
    return names


def test_dashboard_is_importable() -> None:
    dashboard = load()
    assert dashboard["uid"] and dashboard["title"]
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert panel["targets"], panel["title"]


def test_dashboard_covers_the_required_views() -> None:
    text = " ".join(expressions(load()))
    for name in (
        "b2bua_call_attempts_total",
        "b2bua_active_calls",
        "b2bua_calls_answered_total",
        "b2bua_call_duration_seconds",
        "b2bua_post_dial_delay_seconds_bucket",
        "b2bua_sip_responses_total",
        "b2bua_call_rejections_total",
        "b2bua_trunk_up",
        "b2bua_store_operation_seconds_bucket",
        "b2bua_event_loop_lag_seconds_bucket",
        "b2bua_sip_retransmissions_total",
        "b2bua_cdr_queue_depth",
        "b2bua_overload_rejections_total",
        "b2bua_sip_queue_delay_seconds",
        "b2bua_load_shed_ratio",
    ):
        assert name in text, name


def test_every_dashboard_metric_is_exported(observed: Observed) -> None:
    used = {name for expr in expressions(load()) for name in METRIC.findall(expr)}
    assert len(used) > 20
    missing = sorted(used - exported_names(observed.metrics))
    assert not missing, f"dashboard queries metrics the server does not export: {missing}"


def test_every_alert_metric_is_exported(observed: Observed) -> None:
    missing = sorted(rule_metric_names() - exported_names(observed.metrics))
    assert not missing, f"alert rules read metrics the server does not export: {missing}"
