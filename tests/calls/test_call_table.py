"""The call state machine's table, walked pair by pair (STYLE: transitions are data).

First statically: every `CallState x CallInput` pair names a handler of
`b2bua.calls.handlers` or `ignore`. Then dynamically: a real call is driven
through the bench into CALLING, EARLY and CONNECTED, and every input is fed as
the message or timer that causes it in practice (or, where the input cannot
happen in that state on the wire, dispatched directly with a realistic
message). The engine must not raise, and must either act (send something or
move the call) or, for `ignore`, leave the call as it was and relay nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from b2bua.calls import handlers
from b2bua.calls.call import Call, CallInput, CallState
from b2bua.calls.handlers import TRANSITIONS
from b2bua.sip import Request, Response, parse_message
from b2bua.sip.address import Address

from .flow import CallFlow, Sent, statuses
from .harness import CALLER_TRUNK, CARRIER, A, Bench, FakeRouter, X, axb, response_to

LIVE_STATES = (CallState.CALLING, CallState.EARLY, CallState.CONNECTED)


def test_every_state_input_pair_is_in_the_table() -> None:
    assert set(TRANSITIONS) == set(CallState)
    for state in CallState:
        row = TRANSITIONS[state]
        assert set(row) == set(CallInput), state
        for event, handler in row.items():
            assert handler.__module__ == handlers.__name__, (state, event)
            assert getattr(handlers, handler.__name__) is handler, (state, event)
            assert handler is handlers.ignore or handler.__name__.startswith(("on_", "refuse_"))


def test_the_table_says_what_design_requires() -> None:
    connected = TRANSITIONS[CallState.CONNECTED]
    assert connected[CallInput.PROVISIONAL] is handlers.ignore  # late 18x is dropped
    assert connected[CallInput.CALLER_CANCELLED] is handlers.ignore  # too late to cancel
    for state in (CallState.CALLING, CallState.EARLY):
        assert TRANSITIONS[state][CallInput.CALLER_CANCELLED] is handlers.on_caller_cancelled
        assert TRANSITIONS[state][CallInput.RING_TIMEOUT] is handlers.on_ring_timeout
    for event in (CallInput.CALLER_REQUEST, CallInput.CALLEE_REQUEST, CallInput.CALLER_HUNG_UP):
        assert TRANSITIONS[CallState.ENDED][event] is handlers.refuse_request


# --- driving a real call -----------------------------------------------------------


def _bench(ring_timeout_s: float) -> Bench:
    return Bench(FakeRouter({(A, X): axb(max_call_s=300)}), ring_timeout_s=ring_timeout_s)


def into(state: CallState, *, acked: bool = True, ring_timeout_s: float = 20) -> CallFlow:
    """A call in `state`: CALLING (INVITE sent), EARLY (180 relayed), CONNECTED."""
    flow = CallFlow(_bench(ring_timeout_s))
    flow.invite()
    if state is CallState.CALLING:
        # The caller cannot know our tag yet; tests that need it read the engine's.
        flow.a_tag = the_call(flow).a_dialog.local_tag
        return flow
    flow.ring()
    if state is CallState.CONNECTED:
        flow.answer(extra="Session-Expires: 90;refresher=uac")
        if acked:
            flow.a_ack()
    assert the_call(flow).state is state
    return flow


def the_call(flow: CallFlow) -> Call:
    (call,) = flow.bench.engine.calls.values()
    return call


def _dispatch(flow: CallFlow, event: CallInput, message: Request | Response | None) -> Sent:
    """Dispatch directly, for inputs no wire message can cause in this state."""
    engine = flow.bench.engine
    engine.dispatch(the_call(flow), event, message, flow.bench.now)
    return flow.bench.sent()


def _b_response(flow: CallFlow, status: int) -> Response:
    assert flow.b_invite is not None
    message = parse_message(response_to(flow.b_invite, status))
    assert isinstance(message, Response)
    return message


def _a_request(flow: CallFlow, method: str) -> Request:
    message = parse_message(flow.a_request_bytes(method))
    assert isinstance(message, Request)
    return message


def stimulus(flow: CallFlow, state: CallState, event: CallInput) -> Sent:
    """Cause `event` for a call in `state` the way the network or the clock would."""
    connected = state is CallState.CONNECTED
    calling = state is CallState.CALLING
    match event:
        case CallInput.PROVISIONAL:
            return flow.ring(183)
        case CallInput.ANSWERED:
            return flow.answer()
        case CallInput.REFUSED:
            return (
                flow.b_responds(486)
                if not connected
                else _dispatch(flow, event, _b_response(flow, 486))
            )
        case CallInput.NO_RESPONSE:
            if calling:
                return flow.advance(32.1)  # Timer B
            return _dispatch(flow, event, None)  # Proceeding/Accepted: no Timer B
        case CallInput.CALLER_CANCELLED:
            return flow.a_cancel()
        case CallInput.CALLER_ACKED:
            return flow.a_ack()
        case CallInput.CALLER_HUNG_UP:
            return flow.a_request("BYE")
        case CallInput.CALLEE_HUNG_UP:
            return flow.b_request("BYE")
        case CallInput.CALLER_REQUEST:
            return flow.a_request("INFO")
        case CallInput.CALLEE_REQUEST:
            return flow.b_request("INFO")
        case CallInput.RING_TIMEOUT:
            if not connected:
                return flow.advance(20.1)
            return _dispatch(flow, event, None)
        case CallInput.RETRANSMIT_2XX:
            return flow.advance(0.6) if connected else _dispatch(flow, event, None)
        case CallInput.ACK_TIMEOUT:
            return flow.advance(32.1) if connected else _dispatch(flow, event, None)
        case CallInput.MAX_DURATION:
            return flow.advance(300.1) if connected else _dispatch(flow, event, None)
        case CallInput.SESSION_EXPIRED:
            return flow.advance(90.1) if connected else _dispatch(flow, event, None)
    raise AssertionError(event)


# Timer inputs that need the 2xx still unacknowledged to happen at all.
NEEDS_NO_ACK = {CallInput.RETRANSMIT_2XX, CallInput.ACK_TIMEOUT, CallInput.CALLER_ACKED}


@dataclass(frozen=True)
class Outcome:
    state_before: CallState
    state_after: CallState
    registered: bool
    sent: Sent


def run(state: CallState, event: CallInput) -> Outcome:
    # Timer B (32 s) must come before the ring timeout to be the input under test.
    ring_timeout_s = 60 if event is CallInput.NO_RESPONSE else 20
    flow = into(state, acked=event not in NEEDS_NO_ACK, ring_timeout_s=ring_timeout_s)
    call = the_call(flow)
    if event is CallInput.SESSION_EXPIRED or event is CallInput.MAX_DURATION:
        # Keep only the timer under test running, so that it is the one that fires.
        for name in ("max_duration_deadline", "session_deadline"):
            keep = (name == "session_deadline") == (event is CallInput.SESSION_EXPIRED)
            if not keep:
                setattr(call, name, None)
        flow.bench.engine.reschedule(call)
    sent = stimulus(flow, state, event)
    return Outcome(state, call.state, call.id in flow.bench.engine.calls, sent)


def _crosses(sent: Sent, event: CallInput) -> list[tuple[Request | Response, Address]]:
    """Messages that reach the side that did not cause `event` (ignoring ACKs of finals)."""
    from_callee = event in (
        CallInput.PROVISIONAL,
        CallInput.ANSWERED,
        CallInput.REFUSED,
        CallInput.CALLEE_HUNG_UP,
        CallInput.CALLEE_REQUEST,
    )
    other = CALLER_TRUNK if from_callee else CARRIER
    return [
        (m, d) for m, d in sent if d == other and not (isinstance(m, Request) and m.method == "ACK")
    ]


@pytest.mark.parametrize("event", list(CallInput), ids=lambda e: e.name)
@pytest.mark.parametrize("state", LIVE_STATES, ids=lambda s: s.name)
def test_every_input_in_every_live_state(state: CallState, event: CallInput) -> None:
    handler = TRANSITIONS[state][event]
    outcome = run(state, event)
    # Registration always matches the state: an ended call is gone, a live one is found.
    assert outcome.registered == (outcome.state_after is not CallState.ENDED)
    if handler is handlers.ignore:
        assert outcome.state_after is state
        assert _crosses(outcome.sent, event) == [], outcome.sent
    else:
        assert outcome.sent or outcome.state_after is not state


def test_ended_row_refuses_requests_and_ignores_the_rest() -> None:
    flow = into(CallState.CONNECTED)
    call = the_call(flow)
    engine = flow.bench.engine
    flow.a_request("BYE")
    assert call.state is CallState.ENDED and engine.active_calls == 0
    for event in CallInput:
        message: Request | Response | None = None
        if event in (CallInput.PROVISIONAL, CallInput.ANSWERED, CallInput.REFUSED):
            message = _b_response(flow, {"PROVISIONAL": 180, "ANSWERED": 200}.get(event.name, 486))
        elif event.name.startswith(("CALLER_", "CALLEE_")):
            message = _a_request(flow, "INFO")
        engine.dispatch(call, event, message, flow.bench.now)
        assert call.state is CallState.ENDED
        assert engine.active_calls == 0
        assert flow.bench.sent() == []  # no server transaction in hand: nothing to answer


def test_requests_on_a_call_that_just_ended_get_481() -> None:
    flow = into(CallState.CONNECTED)
    flow.a_request("BYE")
    for method in ("INFO", "UPDATE", "INVITE", "BYE"):
        assert statuses(flow.a_request(method)) == [481]
        assert statuses(flow.b_request(method)) == [481]


CALLEE_INPUT_EXPECTATIONS: dict[tuple[CallState, CallInput], Callable[[Outcome], bool]] = {
    (CallState.CALLING, CallInput.PROVISIONAL): lambda o: o.state_after is CallState.EARLY,
    (CallState.EARLY, CallInput.ANSWERED): lambda o: o.state_after is CallState.CONNECTED,
    (CallState.CALLING, CallInput.REFUSED): lambda o: statuses(o.sent, CALLER_TRUNK) == [486],
    (CallState.EARLY, CallInput.CALLER_CANCELLED): lambda o: (
        statuses(o.sent, CALLER_TRUNK) == [200, 487]
    ),
    (CallState.CALLING, CallInput.NO_RESPONSE): lambda o: statuses(o.sent, CALLER_TRUNK) == [408],
    (CallState.EARLY, CallInput.RING_TIMEOUT): lambda o: statuses(o.sent, CALLER_TRUNK) == [408],
    (CallState.CONNECTED, CallInput.SESSION_EXPIRED): lambda o: o.state_after is CallState.ENDED,
    (CallState.CONNECTED, CallInput.MAX_DURATION): lambda o: o.state_after is CallState.ENDED,
    (CallState.CONNECTED, CallInput.ACK_TIMEOUT): lambda o: o.state_after is CallState.ENDED,
    (CallState.CONNECTED, CallInput.CALLER_HUNG_UP): lambda o: o.state_after is CallState.ENDED,
    (CallState.CONNECTED, CallInput.CALLEE_HUNG_UP): lambda o: o.state_after is CallState.ENDED,
    (CallState.EARLY, CallInput.CALLEE_HUNG_UP): lambda o: statuses(o.sent, CARRIER) == [481],
    # No tagged response from the callee yet, so no dialog its request could be in.
    (CallState.CALLING, CallInput.CALLEE_REQUEST): lambda o: (
        [(m.status, d) for m, d in o.sent if isinstance(m, Response)] == [(481, CARRIER)]
        and len(o.sent) == 1
    ),
    (CallState.EARLY, CallInput.CALLEE_REQUEST): lambda o: (
        [(m.method, d) for m, d in o.sent if isinstance(m, Request)] == [("INFO", CALLER_TRUNK)]
        and len(o.sent) == 1
    ),
}


@pytest.mark.parametrize(("state", "event"), list(CALLEE_INPUT_EXPECTATIONS))
def test_key_transitions_do_what_they_say(state: CallState, event: CallInput) -> None:
    assert CALLEE_INPUT_EXPECTATIONS[(state, event)](run(state, event))
