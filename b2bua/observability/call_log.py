"""Call events as structlog lines, and a sink that fans events out to several sinks.

One log event per call state change (`call_attempted`, `call_forwarded`,
`call_ringing`, `call_answered`, `call_ended`), each with our `call_id`, the
`inbound_call_id`, `binding_id`, `tenant_id` and inbound `trunk`, plus the SIP
`status` where the event has one (DESIGN section 6). Real numbers are masked unless the
operator sets `log_numbers` (the logging processor masks them too; here they
are masked at the source so even debug output of this sink stays clean).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import structlog

from b2bua.calls.events import (
    CallAnswered,
    CallAttempted,
    CallEnded,
    CallEvent,
    CallEventSink,
    CallForwarded,
    CallRinging,
)
from b2bua.observability.logging import EventLineLogger, event_logger, json_members, mask_text

log = structlog.get_logger("b2bua.calls")


def mask_number(number: str | None) -> str | None:
    """`13812345678` -> `138****5678`: enough to correlate, not enough to dial."""
    if not number or len(number) < 8:
        return number
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


class _StructlogMembers:
    """`info_members` for a structlog logger (before `configure_logging`, in tools and tests)."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    info_enabled = True

    def info_members(self, event: str, members: str) -> None:
        self._logger.info(event, **json.loads(f"{{{members}}}"))


# A call whose attempt this sink never saw still gets every context field, as null.
_UNKNOWN_CONTEXT = json_members(
    {"inbound_call_id": None, "binding_id": None, "tenant_id": None, "trunk": None}
)


class LoggingCallSink:
    """Writes each call event as one JSON line.

    Every line carries our `call_id` and the call's context taken from its
    `CallAttempted` (inbound Call-ID, binding id, tenant, inbound trunk), kept
    per call until `CallEnded`; SIP statuses are logged where an event has one.
    The context is encoded once per call and shared by its five lines.
    """

    def __init__(self, *, log_numbers: bool = False, logger: Any = None) -> None:
        self._log_numbers = log_numbers
        # Built now, after configure_logging: see event_logger for why it is not `log`.
        chosen = logger if logger is not None else event_logger("b2bua.calls")
        self._log = chosen if isinstance(chosen, EventLineLogger) else _StructlogMembers(chosen)
        self._context: dict[str, str] = {}  # call id -> its encoded context members

    def _text(self, text: str) -> str:
        return text if self._log_numbers else mask_text(text)

    def _number(self, number: str | None) -> str | None:
        return number if self._log_numbers else mask_number(number)

    def emit(self, event: CallEvent) -> None:
        """Log one event (never raises into the engine)."""
        log = self._log
        if not log.info_enabled:
            return
        if isinstance(event, CallAttempted):
            context = json_members(
                {
                    "call_id": event.call_id,
                    # Carrier-chosen text: a Call-ID may well hold the caller's number.
                    "inbound_call_id": self._text(event.inbound_call_id),
                    "binding_id": event.binding_id,
                    "tenant_id": event.tenant_id,
                    "trunk": event.inbound_trunk,
                }
            )
            self._context[event.call_id] = context  # dropped at CallEnded
            log.info_members(
                "call_attempted",
                context + ", " + json_members(
                    {
                        "middle_number": event.middle_number,
                        "caller": self._number(event.caller),
                        "mode": event.mode,
                        "rejection": event.rejection,
                    }
                ),
            )  # fmt: skip
            return
        context = self._context.get(event.call_id) or (
            json_members({"call_id": event.call_id}) + ", " + _UNKNOWN_CONTEXT
        )
        fields: dict[str, str | int | None]
        if isinstance(event, CallForwarded):
            fields = {
                "outbound_call_id": event.outbound_call_id,
                "outbound_trunk": event.outbound_trunk,
                "callee": self._number(event.callee),
            }
            log.info_members("call_forwarded", context + ", " + json_members(fields))
        elif isinstance(event, CallRinging):
            log.info_members("call_ringing", context)
        elif isinstance(event, CallAnswered):
            log.info_members("call_answered", context + ', "status": 200')
        elif isinstance(event, CallEnded):
            self._context.pop(event.call_id, None)
            fields = {
                "status": event.status,
                "end_reason": event.end_reason.value,
                "released_by": event.released_by.value,
            }
            log.info_members("call_ended", context + ", " + json_members(fields))


class FanOutSink:
    """Passes each event to every sink in order; one failing sink does not stop the rest."""

    def __init__(self, sinks: Iterable[CallEventSink]) -> None:
        self.sinks = list(sinks)

    def emit(self, event: CallEvent) -> None:
        """Deliver `event` to every sink."""
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception:
                log.exception("call_event_sink_failed", sink=type(sink).__name__)
