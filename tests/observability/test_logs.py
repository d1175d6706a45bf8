"""Logs: JSON lines, one event per call state change with the documented fields,
levels from configuration, and no real number at info level unless configured."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b2bua.calls.events import CallAttempted, CallEnded, EndReason, ReleasedBy
from b2bua.config import LoggingConfig
from b2bua.observability import call_log
from b2bua.observability.call_log import LoggingCallSink
from b2bua.observability.logging import (
    ATOMIC_WRITE,
    LINE_FLUSH_DELAY_S,
    LineBuffer,
    configure_logging,
    get_logger,
)
from b2bua.sip.address import Address
from observability.calls import A, B
from observability.conftest import ANSWERED_CALLS, Observed

CALL_EVENTS = ("call_attempted", "call_forwarded", "call_ringing", "call_answered", "call_ended")
CONTEXT = ("call_id", "inbound_call_id", "binding_id", "tenant_id", "trunk")
# Any Chinese mobile number, not only A's and B's (the default real_patterns).
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
REAL = ("13800000001", "13900000002")
IDS = {"call_id", "inbound_call_id", "outbound_call_id", "binding_id", "tenant_id", "node"}


def test_every_line_is_json_with_level_and_timestamp(observed: Observed) -> None:
    lines = observed.server.log_path.read_text().splitlines()
    assert lines
    for line in lines:
        event = json.loads(line)
        assert {"event", "level", "timestamp", "logger"} <= event.keys(), event


def test_one_event_per_call_state_change_with_context(observed: Observed) -> None:
    events = [e for e in observed.server.log_events() if e.get("event") in CALL_EVENTS]
    by_call: dict[str, list[dict[str, object]]] = {}
    for event in events:
        for field in CONTEXT:
            assert field in event, (field, event)
        by_call.setdefault(str(event["call_id"]), []).append(event)
    answered = [calls for calls in by_call.values() if calls[0]["rejection"] is None]
    assert len(answered) == ANSWERED_CALLS
    binding = observed.binding
    for call in answered:
        assert [e["event"] for e in call] == list(CALL_EVENTS), call
        for event in call:
            assert event["binding_id"] == binding["id"], event
            assert event["tenant_id"] == binding["tenant_id"], event
            assert event["trunk"] == "carrier-b", event
            assert event["inbound_call_id"] == call[0]["inbound_call_id"], event
        assert call[-1]["status"] == 200 and call[-1]["end_reason"] == "normal"
    (refused,) = [calls for calls in by_call.values() if calls[0]["rejection"] is not None]
    assert [e["event"] for e in refused] == ["call_attempted", "call_ended"]
    assert refused[-1]["status"] == 404 and refused[-1]["binding_id"] is None


def test_no_real_number_at_info_level(observed: Observed) -> None:
    for event in observed.server.log_events():
        if event.get("level") in ("info", "warning", "error", "critical"):
            text = json.dumps(event)
            assert A not in text and B not in text, text
            # Random hex ids could hold a mobile-looking run by chance: skip them.
            values = [str(v) for k, v in event.items() if k not in IDS]
            assert not MOBILE.search(" ".join(values)), text
    attempted = [e for e in observed.server.log_events() if e.get("event") == "call_attempted"]
    assert attempted[0]["caller"] == "138****0001"


def _capture(config: LoggingConfig, monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(config, real_patterns=(r"1[3-9]\d{9}",), stream=stream)
    # The sink's module-level logger caches the configuration it first ran with.
    monkeypatch.setattr(call_log, "log", get_logger("b2bua.calls"))
    return stream


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_levels_and_per_module_levels_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    modules = types.MappingProxyType({"b2bua.chatty": "debug", "b2bua.quiet": "error"})
    stream = _capture(LoggingConfig(level="warning", modules=modules), monkeypatch)
    get_logger("b2bua.chatty").debug("chatty_debug")
    get_logger("b2bua.quiet").warning("quiet_warning")
    get_logger("b2bua.other").info("other_info")
    get_logger("b2bua.other").warning("other_warning")
    logging.getLogger("b2bua.stdlib").warning("stdlib_warning")
    events = {line["event"] for line in _lines(stream)}
    assert events == {"chatty_debug", "other_warning", "stdlib_warning"}


def _ended_call(sink: LoggingCallSink) -> None:
    sink.emit(
        CallAttempted(
            "c1",
            1.0,
            "in-1@x",
            Address("UDP", "127.0.0.1", 5060),
            "t",
            REAL[0],
            "700100000000001",
            "b1",
            "tenant",
            None,
            "AXB",
            None,
            "700100000000001",
        )
    )
    sink.emit(CallEnded("c1", 2.0, 200, EndReason.NORMAL, ReleasedBy.CALLER))


def test_numbers_masked_unless_log_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _capture(LoggingConfig(level="info"), monkeypatch)
    _ended_call(LoggingCallSink(log_numbers=False))
    get_logger("b2bua.x").info("free_text", detail=f"caller {REAL[1]} called")
    text = stream.getvalue()
    assert not any(number in text for number in REAL), text
    lines = _lines(stream)
    assert lines[1]["inbound_call_id"] == "in-1@x" and lines[1]["binding_id"] == "b1"

    stream = _capture(LoggingConfig(level="info", log_numbers=True), monkeypatch)
    _ended_call(LoggingCallSink(log_numbers=True))
    assert REAL[0] in stream.getvalue()


def test_call_events_follow_their_module_level(monkeypatch: pytest.MonkeyPatch) -> None:
    modules = types.MappingProxyType({"b2bua.calls": "warning"})
    stream = _capture(LoggingConfig(level="info", modules=modules), monkeypatch)
    _ended_call(LoggingCallSink())
    get_logger("b2bua.other").info("other_info")
    assert [line["event"] for line in _lines(stream)] == ["other_info"]

    stream = _capture(LoggingConfig(level="info"), monkeypatch)
    _ended_call(LoggingCallSink())
    lines = _lines(stream)
    assert [line["event"] for line in lines] == ["call_attempted", "call_ended"]
    assert all(line["logger"] == "b2bua.calls" and line["level"] == "info" for line in lines)


# Carrier-chosen and operator-chosen text: quotes, backslashes, control characters, non-ASCII.
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    call_id=_TEXT,
    inbound=_TEXT,
    binding=st.none() | _TEXT,
    trunk=_TEXT,
    status=st.none() | st.integers(100, 699),
)
def test_call_lines_are_json_whatever_the_text(
    monkeypatch: pytest.MonkeyPatch,
    call_id: str,
    inbound: str,
    binding: str | None,
    trunk: str,
    status: int | None,
) -> None:
    """The pre-encoded call lines decode to exactly the values of the events."""
    stream = _capture(LoggingConfig(level="info", log_numbers=True), monkeypatch)
    sink = LoggingCallSink(log_numbers=True)
    sink.emit(
        CallAttempted(
            call_id, 1.0, inbound, Address("UDP", "127.0.0.1", 5060), trunk, REAL[0],
            "700100000000001", binding, "tenant", None, "AXB", None, "700100000000001",
        )
    )  # fmt: skip
    sink.emit(CallEnded(call_id, 2.0, status, EndReason.NORMAL, ReleasedBy.CALLEE))
    sink.emit(CallEnded("never-attempted", 3.0, 487, EndReason.CANCELLED, ReleasedBy.CALLER))
    attempted, ended, stranger = _lines(stream)
    context = {"call_id": call_id, "inbound_call_id": inbound, "binding_id": binding,
               "tenant_id": "tenant", "trunk": trunk}  # fmt: skip
    assert attempted == {**context, "middle_number": "700100000000001", "caller": REAL[0],
                         "mode": "AXB", "rejection": None, "event": "call_attempted",
                         "level": "info", "logger": "b2bua.calls",
                         "timestamp": attempted["timestamp"]}  # fmt: skip
    assert ended == {**context, "status": status, "end_reason": "normal",
                     "released_by": "callee", "event": "call_ended", "level": "info",
                     "logger": "b2bua.calls", "timestamp": ended["timestamp"]}  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", str(ended["timestamp"]))
    assert stranger["call_id"] == "never-attempted" and stranger["inbound_call_id"] is None
    assert stranger["trunk"] is None and stranger["status"] == 487


def test_call_lines_through_structlog_before_configuration() -> None:
    """A sink given a structlog logger (tools, before configure_logging) logs the same fields."""
    captured: list[tuple[str, dict[str, object]]] = []

    class Recorder:
        def info(self, event: str, **fields: object) -> None:
            captured.append((event, fields))

    _ended_call(LoggingCallSink(logger=Recorder()))
    assert [event for event, _ in captured] == ["call_attempted", "call_ended"]
    assert captured[0][1]["caller"] == "138****0001"
    assert captured[1][1]["binding_id"] == "b1" and captured[1][1]["status"] == 200


class _CountingStream(io.StringIO):
    """A stream that counts its writes: a batch of lines must be one write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_call_lines_in_a_running_loop_are_written_together_and_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = _CountingStream()
    configure_logging(LoggingConfig(level="info"), stream=stream)
    monkeypatch.setattr(call_log, "log", get_logger("b2bua.calls"))

    async def two_calls_then_a_warning() -> tuple[str, int, str, int]:
        sink = LoggingCallSink()
        _ended_call(sink)
        _ended_call(sink)
        waiting, writes_before = stream.getvalue(), stream.writes
        await asyncio.sleep(LINE_FLUSH_DELAY_S * 2)
        batched, writes_after = stream.getvalue(), stream.writes
        _ended_call(sink)
        get_logger("b2bua.other").warning("after_the_third_call")
        return waiting, writes_before, batched, writes_after - writes_before

    waiting, writes_before, batched, batch_writes = asyncio.run(two_calls_then_a_warning())
    assert waiting == "" and writes_before == 0  # nothing written while the loop is busy
    assert [json.loads(x)["event"] for x in batched.splitlines()] == [
        "call_attempted",
        "call_ended",
    ] * 2
    assert batch_writes == 1
    # An ordinary line lets the call lines waiting before it go first.
    events = [line["event"] for line in _lines(stream)]
    assert events[-3:] == ["call_attempted", "call_ended", "after_the_third_call"]


def test_call_lines_outside_a_loop_are_written_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _capture(LoggingConfig(level="info"), monkeypatch)
    _ended_call(LoggingCallSink())
    assert [line["event"] for line in _lines(stream)] == ["call_attempted", "call_ended"]


def test_a_full_line_buffer_is_written_without_waiting() -> None:
    stream = _CountingStream()
    lines = LineBuffer(stream, delay_s=3600, count=3)

    async def five_lines() -> str:
        for n in range(5):
            lines.write(f"{n}\n")
        return stream.getvalue()

    assert asyncio.run(five_lines()) == "0\n1\n2\n"
    assert stream.writes == 1
    lines.flush()
    assert stream.getvalue() == "0\n1\n2\n3\n4\n"


def test_a_batch_is_written_in_whole_lines_of_at_most_pipe_buf() -> None:
    """Workers share stdout: a write longer than PIPE_BUF could interleave with another's."""
    written: list[str] = []

    class Recording(io.StringIO):
        def write(self, text: str) -> int:
            written.append(text)
            return len(text)

    lines = LineBuffer(Recording(), delay_s=3600, count=100)
    sent = [f"{n}{'x' * 998}\n" for n in range(10)]  # 1,000 octets each

    async def in_the_loop() -> None:
        for line in sent:
            lines.write(line)
        lines.flush()

    asyncio.run(in_the_loop())
    assert "".join(written) == "".join(sent)
    assert all(len(text) <= ATOMIC_WRITE and text.endswith("\n") for text in written)
    assert [len(text) for text in written] == [4000, 4000, 2000]


def test_lines_left_by_a_closed_loop_go_out_with_the_next_loop_or_at_once() -> None:
    stream = io.StringIO()
    lines = LineBuffer(stream, delay_s=0.01)

    async def write(text: str, wait_s: float = 0.0) -> None:
        lines.write(text)
        await asyncio.sleep(wait_s)

    asyncio.run(write("a\n"))  # the loop ends before its timer fires
    assert stream.getvalue() == ""
    asyncio.run(write("b\n", wait_s=0.05))  # a new loop arms its own timer
    assert stream.getvalue() == "a\nb\n"
    asyncio.run(write("c\n"))
    lines.write("d\n")  # outside any loop: at once, with what waited
    assert stream.getvalue() == "a\nb\nc\nd\n"
