"""Call events: what the engine tells call records, metrics and logs.

The engine emits these as it moves a call along; it never writes a record or
a metric itself. `b2bua.cdr` turns them into call records, the metrics module
counts them, and until then a logging sink writes them as structlog events.
Times are wall-clock epoch seconds (records must mean the same on every node).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from b2bua.sip.address import Address


class EndReason(StrEnum):
    """Why a call attempt ended (DESIGN section 5)."""

    NORMAL = "normal"
    CANCELLED = "cancelled"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    FAILED = "failed"
    MAX_DURATION = "max_duration"
    INTERRUPTED = "interrupted"


class ReleasedBy(StrEnum):
    """Which side ended the call."""

    CALLER = "caller"
    CALLEE = "callee"
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class CallAttempted:
    """An INVITE for a middle number arrived; `binding_id` is None when it was refused."""

    call_id: str
    at: float
    inbound_call_id: str
    source: Address
    inbound_trunk: str | None
    caller: str
    dialled: str
    binding_id: str | None
    tenant_id: str | None
    order_id: str | None
    mode: str | None
    direction: str | None
    middle_number: str | None
    rejection: str | None = None


@dataclass(frozen=True, slots=True)
class CallForwarded:
    """An outbound leg was started: first try, next trunk, or next member of a GXB hunt."""

    call_id: str
    at: float
    outbound_call_id: str
    outbound_trunk: str
    callee: str
    shown_number: str


@dataclass(frozen=True, slots=True)
class CallRinging:
    """The first provisional response above 100 reached the caller."""

    call_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The callee answered (2xx relayed to the caller)."""

    call_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The attempt is over; `status` is the final SIP status the caller saw."""

    call_id: str
    at: float
    status: int
    end_reason: EndReason
    released_by: ReleasedBy


CallEvent = CallAttempted | CallForwarded | CallRinging | CallAnswered | CallEnded


class CallEventSink(Protocol):
    """Receiver of call events (records, webhooks, logs). Must not block."""

    def emit(self, event: CallEvent) -> None:
        """Take one event; called in event order for each call."""


def end_reason_for_status(status: int) -> EndReason:
    """The end reason for a call the callee side refused with `status`."""
    if status in (486, 600):
        return EndReason.BUSY
    if status in (408, 480):
        return EndReason.NO_ANSWER
    if status == 487:
        return EndReason.CANCELLED
    if status in (403, 404, 603, 604, 606):
        return EndReason.REJECTED
    return EndReason.FAILED
