"""`/metrics` of a real server after real calls: the numbers add up."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from observability.calls import A, B
from observability.conftest import ANSWERED_CALLS, Observed


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape keyed by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(
        value
        for (sample, sample_labels), value in samples(text).items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def test_calls_are_counted(observed: Observed) -> None:
    text = observed.metrics
    assert observed.uac_exit == 0, observed.server.log_path.read_text()[-3000:]
    assert total(text, "b2bua_call_attempts_total") == ANSWERED_CALLS + 1
    assert total(text, "b2bua_calls_answered_total") == ANSWERED_CALLS
    assert (
        total(text, "b2bua_calls_total", result="answered", end_reason="normal") == ANSWERED_CALLS
    )
    assert total(text, "b2bua_calls_total", result="rejected") == 1
    assert total(text, "b2bua_call_rejections_total", reason="unknown_number") == 1
    assert total(text, "b2bua_binding_lookups_total", result="found") == ANSWERED_CALLS
    assert total(text, "b2bua_post_dial_delay_seconds_count") == ANSWERED_CALLS
    # The UAS rings for 100 ms before answering.
    assert total(text, "b2bua_post_dial_delay_seconds_sum") >= 0.09 * ANSWERED_CALLS
    assert total(text, "b2bua_call_duration_seconds_count") == ANSWERED_CALLS
    assert total(text, "b2bua_call_duration_seconds_sum") >= 0.15 * ANSWERED_CALLS


def test_state_gauges_return_to_zero(observed: Observed) -> None:
    text = observed.metrics
    assert total(text, "b2bua_active_calls") == 0
    assert total(text, "b2bua_dialogs_active") == 0
    assert total(text, "b2bua_trunk_up", trunk="carrier-b") == 1
    assert total(text, "b2bua_trunk_calls_total", trunk="carrier-b") == ANSWERED_CALLS
    assert total(text, "b2bua_bindings_active", mode="AXB") == 1
    assert total(text, "b2bua_listener_up", transport="udp") == 1
    assert total(text, "b2bua_store_up") == 1


def test_sip_messages_and_runtime(observed: Observed) -> None:
    text = observed.metrics
    assert total(text, "b2bua_sip_requests_total", method="INVITE") >= ANSWERED_CALLS + 1
    assert total(text, "b2bua_sip_requests_total", method="BYE") >= ANSWERED_CALLS
    assert total(text, "b2bua_sip_responses_total", status_class="2xx", code="200") >= 1
    assert total(text, "b2bua_event_loop_lag_seconds_count") >= 2
    assert total(text, "b2bua_store_operation_seconds_count") >= 1


def test_no_number_or_call_id_in_labels(observed: Observed) -> None:
    call_ids = {observed.binding["id"], observed.binding["x"]}
    for (_name, labels), _value in samples(observed.metrics).items():
        for _key, value in labels:
            assert not any(part in value for part in (A, B, *call_ids)), value
            assert not (value.isdigit() and len(value) > 3), value  # no numbers, only status codes
