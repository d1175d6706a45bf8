"""CANCEL: relayed, postponed until a provisional, crossing a 2xx, too late."""

from __future__ import annotations

import pytest

from b2bua.calls.events import CallEnded, EndReason, ReleasedBy

from .flow import CallFlow, methods, request, response, statuses, to
from .harness import CALLER_TRUNK, CARRIER, response_to


def _ended(flow: CallFlow) -> CallEnded:
    ended = flow.bench.sink.events[-1]
    assert isinstance(ended, CallEnded)
    return ended


def test_cancel_after_ringing_gets_200_487_and_cancel_to_callee() -> None:
    flow = CallFlow()
    flow.invite()
    flow.ring()
    out = flow.a_cancel()
    assert statuses(out, CALLER_TRUNK) == [200, 487]
    ok_cancel, terminated = (m for m, _ in to(out, CALLER_TRUNK))
    assert ok_cancel.cseq.method == "CANCEL"
    assert terminated.cseq.method == "INVITE"
    assert terminated.to_addr.tag == flow.a_tag  # same tag as the 180 (RFC 3261 section 9.2)
    cancel = request(out, "CANCEL", CARRIER)
    invite = flow.b_invite
    assert invite is not None
    # RFC 3261 section 9.1: same Request-URI, Call-ID, From, To, CSeq number and branch.
    assert cancel.uri == invite.uri
    assert cancel.top_via.branch == invite.top_via.branch
    assert cancel.headers.get("cseq") == "1 CANCEL"
    for name in ("from", "to", "call-id"):
        assert cancel.headers.get(name) == invite.headers.get(name)
    assert flow.bench.engine.active_calls == 0
    ended = _ended(flow)
    assert (ended.status, ended.end_reason, ended.released_by) == (
        487,
        EndReason.CANCELLED,
        ReleasedBy.CALLER,
    )
    # The callee confirms; its 487 is ACKed by the transaction, nothing reaches A.
    assert flow.feed(response_to(cancel, 200), CARRIER) == []
    after = flow.b_responds(487)
    assert methods(after, CARRIER) == ["ACK"] and to(after, CALLER_TRUNK) == []
    # The caller's ACK for the 487 is absorbed by its transaction.
    assert flow.a_ack() == []


@pytest.mark.parametrize("first_provisional", [100, 180, 183])
def test_cancel_before_any_provisional_waits_for_the_first_one(first_provisional: int) -> None:
    flow = CallFlow()
    flow.invite()
    out = flow.a_cancel()
    assert statuses(out, CALLER_TRUNK) == [200, 487]
    assert methods(out, CARRIER) == []  # RFC 3261 section 9.1: not before a provisional
    later = flow.ring(first_provisional)
    assert to(later, CALLER_TRUNK) == []  # never relayed once the caller cancelled
    cancel = request(later, "CANCEL", CARRIER)
    assert cancel.top_via.branch == flow.b_invite.top_via.branch if flow.b_invite else False
    # Only once.
    assert methods(flow.ring(180), CARRIER) == []


def test_cancel_before_provisional_and_callee_never_answers() -> None:
    flow = CallFlow()
    flow.invite()
    flow.a_cancel()
    out = flow.advance(40)  # Timer B ends the outbound INVITE; no CANCEL ever went out
    assert "CANCEL" not in methods(out)
    # Only the unacknowledged 487 is resent to the caller (Timer G), nothing else.
    assert set(statuses(out, CALLER_TRUNK)) == {487}
    assert methods(out, CALLER_TRUNK) == []
    assert flow.bench.engine.active_calls == 0


def test_cancel_crossing_the_callee_2xx_acks_and_byes_the_callee() -> None:
    flow = CallFlow()
    flow.invite()
    flow.ring()
    out = flow.a_cancel()
    cancel = request(out, "CANCEL", CARRIER)
    crossed = flow.answer()  # the 200 was on its way when our CANCEL left
    assert to(crossed, CALLER_TRUNK) == []  # A already has its 487
    assert methods(crossed, CARRIER) == ["ACK", "BYE"]
    ack = request(crossed, "ACK", CARRIER)
    bye = request(crossed, "BYE", CARRIER)
    assert ack.to_addr.tag == bye.to_addr.tag == "btag"
    assert ack.headers.get("cseq") == "1 ACK" and bye.headers.get("cseq") == "2 BYE"
    assert ack.uri == bye.uri == "sip:callee@127.0.0.20:5070"
    assert flow.feed(response_to(cancel, 200), CARRIER) == []
    assert flow.b_answers(bye) == []
    # The caller's leg ended cleanly: 487 then its ACK, and no BYE ever went to A.
    assert flow.a_ack() == []
    assert methods(flow.log, CALLER_TRUNK) == []
    assert flow.bench.engine.active_calls == 0
    assert _ended(flow).end_reason is EndReason.CANCELLED
    # Nothing is left running that would wake the caller's side again.
    assert to(flow.advance(120), CALLER_TRUNK) == []


def test_cancel_after_the_answer_only_gets_200() -> None:
    flow = CallFlow()
    flow.connect()
    out = flow.a_cancel()
    assert statuses(out) == [200] and methods(out) == []
    assert flow.bench.engine.active_calls == 1


def test_cancel_for_no_known_invite_gets_481() -> None:
    flow = CallFlow()
    out = flow.a_cancel()
    assert statuses(out, CALLER_TRUNK) == [481]


def test_bye_on_the_early_dialog_acts_as_cancel() -> None:
    flow = CallFlow()
    flow.invite()
    flow.ring()
    out = flow.a_request("BYE")
    assert sorted(statuses(out, CALLER_TRUNK)) == [200, 487]
    assert methods(out, CARRIER) == ["CANCEL"]
    assert _ended(flow).released_by is ReleasedBy.CALLER


def test_487_to_caller_is_retransmitted_until_acked() -> None:
    flow = CallFlow()
    flow.invite()
    flow.ring()
    flow.a_cancel()
    resent = flow.advance(0.6)
    assert statuses(resent, CALLER_TRUNK) == [487]  # Timer G
    flow.a_ack()
    assert to(flow.advance(10), CALLER_TRUNK) == []
    terminated = response(resent, "487", CALLER_TRUNK)
    assert terminated.to_addr.tag == flow.a_tag
