"""Merging the expositions of several worker processes into one `/metrics` text.

Each test builds real registries, exports them with ``generate_latest`` as a worker
would, merges the texts and reads the result back with the prometheus_client parser.
"""

from __future__ import annotations

import math
import subprocess

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families
from tooling import require_tool

from b2bua.observability.worker_metrics import merge_expositions, merge_with_skipped

AWKWARD_LABEL = 'say "hi" \\ back\nslash'

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def series(text: str) -> dict[SeriesKey, float]:
    """Every sample of an exposition by (sample name, sorted labels)."""
    found: dict[SeriesKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in found, f"{key} appears twice"
            found[key] = sample.value
    return found


def one(text: str, name: str, **labels: str) -> float:
    return series(text)[(name, tuple(sorted(labels.items())))]


def worker_exposition(
    *,
    answered: float,
    rejected: float,
    active_calls: float,
    durations: list[float],
    listener_up: float,
    draining: float,
    lag_last: float,
    shed: float,
    open_fds: float,
    max_fds: float,
    start_time: float,
) -> str:
    """What one worker process sends: a registry shaped like the real one."""
    registry = CollectorRegistry()
    calls = Counter("b2bua_calls", "Calls ended.", ["result"], registry=registry)
    calls.labels("answered").inc(answered)
    calls.labels(AWKWARD_LABEL).inc(rejected)
    Gauge("b2bua_active_calls", "Calls in progress.", registry=registry).set(active_calls)
    duration = Histogram(
        "b2bua_call_duration_seconds", "ACD.", buckets=(1, 10, 60), registry=registry
    )
    for seconds in durations:
        duration.observe(seconds)
    Info("b2bua_build", "Build.", registry=registry).info({"version": "1.2.3"})
    PlatformCollector(registry=registry)
    listener = Gauge("b2bua_listener_up", "Up.", ["transport"], registry=registry)
    listener.labels("udp").set(listener_up)
    listener.labels("tcp").set(1)
    Gauge("b2bua_draining", "Draining.", registry=registry).set(draining)
    Gauge("b2bua_event_loop_lag_last_seconds", "Lag.", registry=registry).set(lag_last)
    Gauge("b2bua_sip_queue_delay_seconds", "Delay.", registry=registry).set(lag_last / 10)
    Gauge("b2bua_load_shed_ratio", "Shed.", registry=registry).set(shed)
    Gauge("process_open_fds", "Open fds.", registry=registry).set(open_fds)
    Gauge("process_max_fds", "Max fds.", registry=registry).set(max_fds)
    Gauge("process_start_time_seconds", "Start.", registry=registry).set(start_time)
    return generate_latest(registry).decode()


def main_and_worker() -> tuple[str, str]:
    main = worker_exposition(
        answered=3, rejected=1, active_calls=2, durations=[0.5, 30], listener_up=1,
        draining=0, lag_last=0.002, shed=0.5, open_fds=40, max_fds=1024, start_time=1000.0,
    )  # fmt: skip
    worker = worker_exposition(
        answered=4, rejected=2.5, active_calls=5, durations=[5, 90, 120], listener_up=0,
        draining=1, lag_last=0.75, shed=0.25, open_fds=12, max_fds=4096, start_time=1003.5,
    )  # fmt: skip
    return main, worker


def test_each_series_is_combined_by_its_rule() -> None:
    main, worker = main_and_worker()
    merged = merge_expositions([main, worker])

    assert one(merged, "b2bua_calls_total", result="answered") == 7
    assert one(merged, "b2bua_calls_total", result=AWKWARD_LABEL) == 3.5
    assert one(merged, "b2bua_active_calls") == 7
    assert one(merged, "process_open_fds") == 52
    assert one(merged, "b2bua_listener_up", transport="udp") == 0
    assert one(merged, "b2bua_listener_up", transport="tcp") == 1
    assert one(merged, "b2bua_draining") == 1
    assert one(merged, "b2bua_event_loop_lag_last_seconds") == 0.75
    assert one(merged, "b2bua_sip_queue_delay_seconds") == 0.075  # the worst worker's
    assert one(merged, "b2bua_load_shed_ratio") == 0.5  # not a sum: a ratio
    assert one(merged, "process_max_fds") == 4096
    assert one(merged, "process_start_time_seconds") == 1000.0
    assert one(merged, "b2bua_build_info", version="1.2.3") == 1
    python_info = [k for k in series(merged) if k[0] == "python_info"]
    assert len(python_info) == 1
    assert series(merged)[python_info[0]] == 1
    earliest = min(one(main, "b2bua_calls_created", result="answered"),
                   one(worker, "b2bua_calls_created", result="answered"))  # fmt: skip
    assert one(merged, "b2bua_calls_created", result="answered") == earliest


def test_histogram_buckets_add_up_and_inf_equals_count() -> None:
    main, worker = main_and_worker()
    merged = merge_expositions([main, worker])

    buckets = [
        (sample.labels["le"], sample.value)
        for family in text_string_to_metric_families(merged)
        if family.name == "b2bua_call_duration_seconds"
        for sample in family.samples
        if sample.name.endswith("_bucket")
    ]
    assert buckets == [("1.0", 1), ("10.0", 2), ("60.0", 3), ("+Inf", 5)]
    assert one(merged, "b2bua_call_duration_seconds_count") == 5
    assert one(merged, "b2bua_call_duration_seconds_sum") == 245.5


def test_help_and_type_appear_once_per_family_as_generate_latest_writes_them() -> None:
    main, worker = main_and_worker()
    merged = merge_expositions([main, worker, main])

    comment_lines = [line for line in merged.splitlines() if line.startswith("#")]
    assert len(comment_lines) == len(set(comment_lines))
    assert "# TYPE b2bua_calls_total counter" in comment_lines
    assert "# HELP b2bua_calls_total Calls ended." in comment_lines
    assert "# TYPE b2bua_calls_created gauge" in comment_lines
    assert "# TYPE b2bua_call_duration_seconds histogram" in comment_lines
    assert "# TYPE b2bua_build_info gauge" in comment_lines
    assert [f.name for f in text_string_to_metric_families(merged)] == [
        f.name for f in text_string_to_metric_families(main)
    ]


def test_one_text_comes_back_unchanged() -> None:
    registry = CollectorRegistry()
    odd = Gauge("b2bua_odd", "Help with a \\ backslash\nand a newline.", ["why"], registry=registry)
    odd.labels(AWKWARD_LABEL).set(0.1)
    main, _ = main_and_worker()

    for text in (main, generate_latest(registry).decode()):
        assert merge_expositions([text]) == text
        assert merge_expositions(["", text, ""]) == text


def test_awkward_label_values_survive_the_round_trip() -> None:
    main, worker = main_and_worker()
    merged = merge_expositions([main, worker])

    assert '\\"hi\\" \\\\ back\\nslash' in merged
    labels = {k[1] for k in series(merged) if k[0] == "b2bua_calls_total"}
    assert (("result", AWKWARD_LABEL),) in labels


def test_unparsable_worker_text_is_skipped_and_reported() -> None:
    main, worker = main_and_worker()
    # Valid families first, then garbage: the parser is lazy, so a half-used text
    # would otherwise leak its first families into the sum.
    broken = worker + "b2bua_calls_total{result= not a number\n"

    result = merge_with_skipped([main, broken, worker])

    assert list(result.skipped) == [1]
    assert result.skipped[1]
    assert result.text == merge_expositions([main, worker])
    assert merge_expositions([main, "{"]) == main


def test_merged_text_passes_promtool() -> None:
    promtool = require_tool("promtool")
    main, worker = main_and_worker()
    merged = merge_expositions([main, worker])

    checked = subprocess.run(
        [promtool, "check", "metrics"], input=merged, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@given(
    increments=st.lists(
        st.floats(min_value=0, max_value=1e12, allow_nan=False), min_size=1, max_size=3
    ),
    label=st.text(max_size=20),
)
def test_counters_from_any_number_of_workers_sum(increments: list[float], label: str) -> None:
    texts = []
    for increment in increments:
        registry = CollectorRegistry()
        Counter("b2bua_sip_requests", "Requests.", ["method"], registry=registry).labels(label).inc(
            increment
        )
        texts.append(generate_latest(registry).decode())

    merged = merge_expositions(texts)

    assert one(merged, "b2bua_sip_requests_total", method=label) == math.fsum(increments)


def test_untyped_families_stay_untyped() -> None:
    # The parser calls them "unknown", a word the 0.0.4 text format does not have.
    text = "# HELP b2bua_legacy Legacy.\n# TYPE b2bua_legacy untyped\nb2bua_legacy 2.0\n"

    merged = merge_expositions([text, text])

    assert merged == text.replace("2.0", "4.0")
