"""The call state machine's transition table and its handlers.

Each handler takes `(engine, call, message, now)`; `message` is the SIP message
that came with the input (None for timers). Handlers change the call and ask
the engine to send, relay or end; the engine owns transactions and outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from b2bua.calls.call import Call, CallInput, CallState
from b2bua.calls.events import EndReason, ReleasedBy, end_reason_for_status
from b2bua.sip.message import Request, Response

if TYPE_CHECKING:
    from b2bua.calls.engine import CallEngine

Handler = Callable[["CallEngine", Call, Request | Response | None, float], None]


def ignore(engine: CallEngine, call: Call, message: Request | Response | None, now: float) -> None:
    """Deliberately absorbed in this state (a late timer, a stale retransmission)."""


# --- the outbound INVITE ----------------------------------------------------------


def on_provisional(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """18x: relay once per response (forks collapse into one A-leg early dialog)."""
    assert isinstance(message, Response)
    call.b_provisional_seen = True
    if message.status == 100:
        return
    engine.relay_provisional(call, message, now=now)


def on_answered(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """2xx: relay to the caller; the callee's ACK waits for the caller's (end to end)."""
    assert isinstance(message, Response)
    engine.relay_answer(call, message, now=now)


def on_answer_repeated(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """The callee repeats its 2xx: our ACK was lost, or another fork answered too."""
    assert isinstance(message, Response)
    engine.answer_repeated(call, message, now=now)


def on_refused(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """3xx-6xx: next trunk or next hunt member, else relay the callee's status."""
    assert isinstance(message, Response)
    status = message.status
    if engine.try_next_leg(call, status=status, now=now):
        return
    engine.fail_call(call, status, end_reason_for_status(status), ReleasedBy.CALLEE, now=now)


def on_no_response(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """Timer B or a transport error: the trunk is not answering (408, or failover)."""
    if engine.try_next_leg(call, status=408, now=now):
        return
    engine.fail_call(call, 408, EndReason.NO_ANSWER, ReleasedBy.SERVER, now=now)


# --- the caller -------------------------------------------------------------------


def on_caller_cancelled(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """CANCEL before the answer: 487 to the caller, CANCEL to the callee."""
    engine.caller_cancelled(call, now=now)


def on_caller_hung_up_early(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """BYE on the early dialog (RFC 3261 section 15): 200 to it, then as a CANCEL."""
    assert isinstance(message, Request)
    engine.answer_in_dialog(message, 200, now=now)
    engine.caller_cancelled(call, now=now)


def on_caller_acked(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """The caller's ACK for the 2xx: stop resending it and ACK the callee."""
    assert isinstance(message, Request)
    engine.caller_acked(call, message, now=now)


def on_caller_hung_up(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """BYE from the caller: 200 to it, BYE to the callee."""
    assert isinstance(message, Request)
    engine.hang_up(call, message, released_by=ReleasedBy.CALLER, now=now)


def on_callee_hung_up(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """BYE from the callee: 200 to it, BYE to the caller."""
    assert isinstance(message, Request)
    engine.hang_up(call, message, released_by=ReleasedBy.CALLEE, now=now)


def on_caller_request(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """re-INVITE, UPDATE, PRACK, INFO, OPTIONS... from the caller: relay to the callee."""
    assert isinstance(message, Request)
    engine.relay_request(call, message, from_caller=True, now=now)


def on_callee_request(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """The same from the callee, relayed to the caller."""
    assert isinstance(message, Request)
    engine.relay_request(call, message, from_caller=False, now=now)


def refuse_request(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """An in-dialog request for a call that is being torn down: 481."""
    assert isinstance(message, Request)
    engine.refuse_in_dialog(message, now=now)


# --- timers -----------------------------------------------------------------------


def on_ring_timeout(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """Nobody answered in time: CANCEL the callee, 408 to the caller."""
    call.ring_deadline = None
    engine.give_up_ringing(call, now=now)


def on_retransmit_2xx(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """Resend the 2xx to the caller until it ACKs (RFC 3261 section 13.3.1.4)."""
    engine.retransmit_answer(call, now=now)


def on_ack_timeout(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """No ACK from the caller in 64*T1: the answer never arrived; end both legs."""
    call.ack_deadline = None
    engine.end_connected(call, EndReason.FAILED, ReleasedBy.SERVER, now=now)


def on_max_duration(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """The binding's maximum call duration is reached: BYE both legs."""
    call.max_duration_deadline = None
    engine.end_connected(call, EndReason.MAX_DURATION, ReleasedBy.SERVER, now=now)


def on_session_expired(
    engine: CallEngine, call: Call, message: Request | Response | None, now: float
) -> None:
    """No refresh within the session interval (RFC 4028 section 10): BYE both legs."""
    call.session_deadline = None
    engine.end_connected(call, EndReason.FAILED, ReleasedBy.SERVER, now=now)


_S = CallState
_I = CallInput

_BEFORE_ANSWER: dict[CallInput, Handler] = {
    _I.PROVISIONAL: on_provisional,
    _I.ANSWERED: on_answered,
    _I.REFUSED: on_refused,
    _I.NO_RESPONSE: on_no_response,
    _I.CALLER_CANCELLED: on_caller_cancelled,
    _I.CALLER_ACKED: ignore,  # an ACK before any 2xx matches nothing of ours
    _I.CALLER_HUNG_UP: on_caller_hung_up_early,
    _I.CALLEE_HUNG_UP: refuse_request,  # a UAS may not BYE before its 2xx is ACKed
    _I.CALLER_REQUEST: on_caller_request,  # PRACK, UPDATE, INFO in the early dialog
    _I.CALLEE_REQUEST: on_callee_request,
    _I.RING_TIMEOUT: on_ring_timeout,
    _I.RETRANSMIT_2XX: ignore,
    _I.ACK_TIMEOUT: ignore,
    _I.MAX_DURATION: ignore,
    _I.SESSION_EXPIRED: ignore,
}

TRANSITIONS: dict[CallState, dict[CallInput, Handler]] = {
    _S.CALLING: dict(_BEFORE_ANSWER),
    _S.EARLY: dict(_BEFORE_ANSWER),
    _S.CONNECTED: {
        _I.PROVISIONAL: ignore,  # a provisional after the final is dropped, never relayed
        _I.ANSWERED: on_answer_repeated,
        _I.REFUSED: ignore,  # another fork's failure after one fork answered
        _I.NO_RESPONSE: ignore,
        _I.CALLER_CANCELLED: ignore,  # too late: the call is answered (200 to CANCEL only)
        _I.CALLER_ACKED: on_caller_acked,
        _I.CALLER_HUNG_UP: on_caller_hung_up,
        _I.CALLEE_HUNG_UP: on_callee_hung_up,
        _I.CALLER_REQUEST: on_caller_request,
        _I.CALLEE_REQUEST: on_callee_request,
        _I.RING_TIMEOUT: ignore,
        _I.RETRANSMIT_2XX: on_retransmit_2xx,
        _I.ACK_TIMEOUT: on_ack_timeout,
        _I.MAX_DURATION: on_max_duration,
        _I.SESSION_EXPIRED: on_session_expired,
    },
    # An ended call is unregistered at once; this row covers inputs that reach it
    # within the same step (a timer and a BYE in one batch, say).
    _S.ENDED: {
        _I.PROVISIONAL: ignore,
        _I.ANSWERED: ignore,
        _I.REFUSED: ignore,
        _I.NO_RESPONSE: ignore,
        _I.CALLER_CANCELLED: ignore,
        _I.CALLER_ACKED: ignore,
        _I.CALLER_HUNG_UP: refuse_request,
        _I.CALLEE_HUNG_UP: refuse_request,
        _I.CALLER_REQUEST: refuse_request,
        _I.CALLEE_REQUEST: refuse_request,
        _I.RING_TIMEOUT: ignore,
        _I.RETRANSMIT_2XX: ignore,
        _I.ACK_TIMEOUT: ignore,
        _I.MAX_DURATION: ignore,
        _I.SESSION_EXPIRED: ignore,
    },
}
