"""What an ended call leaves behind while its transactions absorb retransmissions.

The INVITE and BYE transactions of a call wait up to 64*T1 after it ends
(RFC 6026 Accepted, Timer J, Timer M). They must keep only what that needs,
not the call and every message it parsed, and behave as before meanwhile.
"""

from __future__ import annotations

import gc

from b2bua.calls.call import Call
from b2bua.sip.transaction_base import TransactionState
from b2bua.sip.transaction_client import InviteClientTransaction
from b2bua.sip.transaction_server import InviteServerTransaction, NonInviteServerTransaction

from .flow import CallFlow, methods, request, response_to, statuses, to
from .harness import CALLER_TRUNK, CARRIER, SDP_B

S = TransactionState


def _live_calls(flow: CallFlow) -> list[Call]:
    """Calls of this flow's engine that are still alive anywhere in the process."""
    gc.collect()
    layer = flow.bench.engine.layer
    return [o for o in gc.get_objects() if type(o) is Call and o.a_transaction._layer is layer]


def _hung_up_call() -> CallFlow:
    flow = CallFlow()
    flow.connect()
    assert len(_live_calls(flow)) == 1
    out = flow.a_request("BYE")
    assert statuses(out, CALLER_TRUNK) == [200]
    bye = request(out, "BYE", CARRIER)
    flow.b_answers(bye)
    return flow


def test_an_ended_call_is_freed_while_its_transactions_still_wait() -> None:
    flow = _hung_up_call()
    engine = flow.bench.engine
    assert _live_calls(flow) == []
    waiting = [*engine.layer._servers.values(), *engine.layer._clients.values()]
    assert {type(tx).__name__: tx.state for tx in waiting} == {
        "InviteServerTransaction": S.ACCEPTED,
        "NonInviteServerTransaction": S.COMPLETED,
        "InviteClientTransaction": S.ACCEPTED,
        "NonInviteClientTransaction": S.COMPLETED,
    }
    for tx in waiting:
        # Only the request's text is kept; nothing parsed, no bytes to resend.
        assert tx._request is None and tx._dormant is not None
    assert engine.calls == {} and engine.calls_by_invite == {}
    assert not any(owner[0] for owner in engine.client_purposes.values())
    assert to(flow.advance(40), CALLER_TRUNK) == []
    assert engine.layer.live_count == 0 and engine.ended_call_tags == {}


def test_a_waiting_transaction_still_rebuilds_its_request() -> None:
    flow = _hung_up_call()
    engine = flow.bench.engine
    (invite_server,) = [
        tx for tx in engine.layer._servers.values() if isinstance(tx, InviteServerTransaction)
    ]
    (bye_server,) = [
        tx for tx in engine.layer._servers.values() if isinstance(tx, NonInviteServerTransaction)
    ]
    assert invite_server.request.method == "INVITE" and invite_server.request.body
    assert invite_server.request.call_id == "a-call-1"
    assert bye_server.request.cseq.method == "BYE"
    (invite_client,) = [
        tx for tx in engine.layer._clients.values() if isinstance(tx, InviteClientTransaction)
    ]
    assert flow.b_invite is not None
    assert invite_client.request.to_bytes() == flow.b_invite.to_bytes()


def test_late_retransmissions_after_the_end_are_absorbed_as_before() -> None:
    flow = _hung_up_call()
    # The caller's INVITE again, the callee's 2xx again, a late CANCEL: nothing
    # reaches the other side; the CANCEL still gets 200 with the call's To tag.
    assert flow.invite() == []
    assert flow.answer(body=SDP_B) == []
    out = flow.a_cancel()
    assert statuses(out) == [200] and methods(out) == []
    ((ok, _),) = out
    assert ok.to_addr.tag == flow.a_tag


def test_a_contact_that_does_not_parse_keeps_the_target_learnt_before() -> None:
    flow = CallFlow()
    flow.invite()
    flow.ring(contact="<sip:early@127.0.0.20:5070>")
    flow.answer(contact="<sip:bad@>")
    out = flow.a_ack()
    ack = request(out, "ACK", CARRIER)
    assert ack.uri == "sip:early@127.0.0.20:5070"


def test_the_answer_to_the_callers_bye_is_built_from_its_own_request() -> None:
    flow = CallFlow()
    flow.connect()
    out = flow.a_request("BYE")
    ((ok, where),) = to(out, CALLER_TRUNK)
    assert where == CALLER_TRUNK and statuses([(ok, where)]) == [200]
    assert ok.headers.get("cseq") == "2 BYE"
    bye = request(out, "BYE", CARRIER)
    assert flow.feed(response_to(bye, 200), CARRIER) == []
