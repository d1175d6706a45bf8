"""In-dialog relay: BYE, re-INVITE (hold/resume, glare), UPDATE, PRACK, INFO, OPTIONS.

Each leg keeps its own CSeq space; a request crossing the bridge is rebuilt on
the other leg's dialog and its response carried back to the original sender.
"""

from __future__ import annotations

import pytest

from b2bua.calls.events import CallEnded, EndReason, ReleasedBy
from b2bua.sip import Request

from .flow import A_CALL_ID, CallFlow, methods, request, response, statuses, to
from .harness import CALLER_TRUNK, CARRIER, SDP_A, SDP_B, A, B, X

SDP_A_HOLD = SDP_A.replace(b"o=13812345678 1 1", b"o=13812345678 1 2") + b"a=sendonly\r\n"
SDP_B_HOLD = SDP_B.replace(b"o=13987654321 7 7", b"o=13987654321 7 8") + b"a=sendonly\r\n"
DTMF = b"Signal=5\r\nDuration=160\r\n"


def _ended(flow: CallFlow) -> CallEnded:
    ended = flow.bench.sink.events[-1]
    assert isinstance(ended, CallEnded)
    return ended


def test_bye_from_caller_200_to_it_bye_to_callee() -> None:
    flow = CallFlow()
    flow.connect()
    out = flow.a_request("BYE")
    ok = response(out, "200", CALLER_TRUNK)
    assert ok.cseq.method == "BYE" and ok.to_addr.tag == flow.a_tag
    bye = request(out, "BYE", CARRIER)
    assert bye.uri == "sip:callee@127.0.0.20:5070"
    assert bye.headers.get("cseq") == "2 BYE"
    assert bye.to_addr.tag == "btag" and bye.from_addr.tag == "r4"
    assert flow.bench.engine.active_calls == 0
    ended = _ended(flow)
    assert (ended.status, ended.end_reason, ended.released_by) == (
        200,
        EndReason.NORMAL,
        ReleasedBy.CALLER,
    )
    assert flow.b_answers(bye) == []
    # A retransmitted BYE is answered by its transaction, nothing is relayed again.
    assert methods(flow.a_request("BYE", cseq=flow.a_cseq)) == []


def test_bye_from_callee_200_to_it_bye_to_caller() -> None:
    flow = CallFlow()
    flow.connect()
    out = flow.b_request("BYE")
    ok = response(out, "200", CARRIER)
    assert ok.cseq.method == "BYE"
    bye = request(out, "BYE", CALLER_TRUNK)
    assert bye.uri == f"sip:{A}@127.0.0.10:5061"
    assert bye.call_id == A_CALL_ID
    assert bye.headers.get("cseq") == "1 BYE"
    assert bye.from_addr.tag == flow.a_tag and bye.to_addr.tag == "atag"
    assert bye.headers.get("from") == f"<sip:{X}@127.0.0.1>;tag={flow.a_tag}"
    ended = _ended(flow)
    assert (ended.end_reason, ended.released_by) == (EndReason.NORMAL, ReleasedBy.CALLEE)
    assert flow.a_answers(bye) == []
    # Requests on the finished dialog now get 481.
    assert statuses(flow.a_request("INFO", body=DTMF, content_type="application/dtmf-relay")) == [
        481
    ]


def test_bye_from_callee_before_the_caller_acked_still_ends_the_call() -> None:
    flow = CallFlow()
    flow.connect(ack=False)
    out = flow.b_request("BYE")
    assert statuses(out, CARRIER) == [200]
    assert methods(out, CALLER_TRUNK) == ["BYE"]
    assert flow.bench.engine.active_calls == 0
    # The 2xx to the caller is no longer resent once the call is over.
    assert statuses(flow.advance(10), CALLER_TRUNK) == []


@pytest.mark.parametrize("side", ["caller", "callee"])
def test_reinvite_hold_and_resume_relayed_with_that_legs_cseq(side: str) -> None:
    flow = CallFlow(a_cseq=10)
    flow.connect()
    from_caller = side == "caller"
    there = CARRIER if from_caller else CALLER_TRUNK
    back = CALLER_TRUNK if from_caller else CARRIER
    for round_number, body in enumerate(
        (SDP_A_HOLD, SDP_A) if from_caller else (SDP_B_HOLD, SDP_B)
    ):
        if from_caller:
            out = flow.a_request("INVITE", body=body)
        else:
            out = flow.b_request("INVITE", body=body)
        assert statuses(out, back) == [100]
        relayed = request(out, "INVITE", there)
        # Each leg counts its own CSeq: B leg 1 INVITE, then 2, 3; A leg (from us) 1, 2.
        expected_cseq = 2 + round_number if from_caller else 1 + round_number
        assert relayed.headers.get("cseq") == f"{expected_cseq} INVITE"
        assert relayed.headers.get("contact") == f"<sip:{X}@127.0.0.1:5060>"
        assert relayed.headers.get("content-type") == "application/sdp"
        assert relayed.body.startswith(b"v=0\r\no=- ")
        assert (b"a=sendonly" in relayed.body) == (round_number == 0)
        if from_caller:
            assert relayed.call_id == flow.b_invite.call_id if flow.b_invite else False
            answered = flow.b_answers(relayed, body=SDP_B)
        else:
            assert relayed.call_id == A_CALL_ID
            assert relayed.uri == f"sip:{A}@127.0.0.10:5061"
            answered = flow.a_answers(relayed, body=SDP_A)
        ok = response(answered, "200", back)
        assert ok.cseq.method == "INVITE"
        assert ok.body.startswith(b"v=0\r\no=- ")
        assert ok.headers.get("contact") == f"<sip:{X}@127.0.0.1:5060>"
        # The ACK crosses with the other leg's CSeq for that re-INVITE.
        acked = (
            flow.a_ack(cseq=flow.a_cseq) if from_caller else flow.b_request("ACK", cseq=flow.b_cseq)
        )
        ack = request(acked, "ACK", there)
        assert ack.headers.get("cseq") == f"{expected_cseq} ACK"
        assert ack.call_id == relayed.call_id
        assert ack.top_via.branch != relayed.top_via.branch
    assert flow.bench.engine.active_calls == 1


def test_reinvite_failure_is_relayed_and_the_call_goes_on() -> None:
    flow = CallFlow()
    flow.connect()
    relayed = request(flow.a_request("INVITE", body=SDP_A_HOLD), "INVITE", CARRIER)
    out = flow.b_answers(relayed, 488)
    assert statuses(out, CALLER_TRUNK) == [488]
    assert methods(out, CARRIER) == ["ACK"]  # the transaction ACKs the 488 itself
    assert flow.bench.engine.active_calls == 1


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_glare_second_offer_gets_491(method: str) -> None:
    flow = CallFlow()
    flow.connect()
    request(flow.a_request("INVITE", body=SDP_A_HOLD), "INVITE", CARRIER)
    crossed = flow.b_request(method, body=SDP_B_HOLD)
    assert statuses(crossed, CARRIER) == [491]
    assert to(crossed, CALLER_TRUNK) == []


def test_glare_the_other_way_round() -> None:
    flow = CallFlow()
    flow.connect()
    request(flow.b_request("INVITE", body=SDP_B_HOLD), "INVITE", CALLER_TRUNK)
    crossed = flow.a_request("INVITE", body=SDP_A_HOLD)
    assert statuses(crossed, CALLER_TRUNK) == [491]
    assert to(crossed, CARRIER) == []


@pytest.mark.parametrize("side", ["caller", "callee"])
def test_update_relayed_both_ways(side: str) -> None:
    flow = CallFlow()
    flow.connect()
    if side == "caller":
        out = flow.a_request("UPDATE", body=SDP_A_HOLD)
        relayed = request(out, "UPDATE", CARRIER)
        assert relayed.headers.get("cseq") == "2 UPDATE"
        back = flow.b_answers(relayed, body=SDP_B)
        ok = response(back, "200", CALLER_TRUNK)
    else:
        out = flow.b_request("UPDATE", body=SDP_B_HOLD)
        relayed = request(out, "UPDATE", CALLER_TRUNK)
        assert relayed.headers.get("cseq") == "1 UPDATE"
        back = flow.a_answers(relayed, body=SDP_A)
        ok = response(back, "200", CARRIER)
    assert statuses(out) == []  # no 100 for a non-INVITE
    assert relayed.headers.get("contact") == f"<sip:{X}@127.0.0.1:5060>"
    assert relayed.body.startswith(b"v=0\r\no=- ")
    assert ok.cseq.method == "UPDATE" and ok.body.startswith(b"v=0\r\no=- ")
    # The offer/answer is over: a new one is not glare.
    again = flow.a_request("UPDATE", body=SDP_A)
    assert methods(again, CARRIER) == ["UPDATE"]


def test_update_in_the_early_dialog_from_callee() -> None:
    flow = CallFlow()
    flow.invite()
    flow.ring(183, body=SDP_B)
    out = flow.b_request("UPDATE", body=SDP_B_HOLD)
    relayed = request(out, "UPDATE", CALLER_TRUNK)
    assert relayed.to_addr.tag == "atag" and relayed.from_addr.tag == flow.a_tag
    back = flow.a_answers(relayed, body=SDP_A)
    assert statuses(back, CARRIER) == [200]


def test_reliable_183_prack_relayed_with_rack_rewritten() -> None:
    flow = CallFlow(a_cseq=31)
    flow.invite(extra="Supported: 100rel\r\n")
    out = flow.ring(183, body=SDP_B, extra="Require: 100rel\r\nRSeq: 1")
    progress = response(out, "183", CALLER_TRUNK)
    assert progress.headers.get("rseq") == "1"
    assert progress.headers.get("require") == "100rel"
    assert progress.headers.get("cseq") == "31 INVITE"
    prack_out = flow.a_request("PRACK", extra="RAck: 1 31 INVITE\r\n")
    prack = request(prack_out, "PRACK", CARRIER)
    assert prack.headers.get("rack") == "1 1 INVITE"  # B's INVITE is CSeq 1 on its leg
    assert prack.headers.get("cseq") == "2 PRACK"
    assert prack.to_addr.tag == "btag"
    assert prack.uri == "sip:callee@127.0.0.20:5070"
    back = flow.b_answers(prack)
    ok = response(back, "200", CALLER_TRUNK)
    assert ok.cseq.method == "PRACK" and ok.headers.get("cseq") == "32 PRACK"
    # The call still answers normally afterwards.
    assert statuses(flow.answer(), CALLER_TRUNK) == [200]


def test_require_100rel_from_caller_is_accepted() -> None:
    flow = CallFlow()
    out = flow.invite(extra="Require: 100rel\r\n")
    assert statuses(out, CALLER_TRUNK) == [100]
    invite = request(out, "INVITE", CARRIER)
    assert invite.headers.get("require") == "100rel"


@pytest.mark.parametrize("side", ["caller", "callee"])
def test_info_dtmf_relayed_with_its_body(side: str) -> None:
    flow = CallFlow()
    flow.connect()
    kwargs: dict[str, object] = {"body": DTMF, "content_type": "application/dtmf-relay"}
    if side == "caller":
        relayed = request(flow.a_request("INFO", **kwargs), "INFO", CARRIER)
        back = flow.b_answers(relayed)
        assert statuses(back, CALLER_TRUNK) == [200]
    else:
        relayed = request(flow.b_request("INFO", **kwargs), "INFO", CALLER_TRUNK)
        back = flow.a_answers(relayed)
        assert statuses(back, CARRIER) == [200]
    assert relayed.headers.get("content-type") == "application/dtmf-relay"
    assert relayed.body == DTMF


def test_options_in_dialog_relayed_and_answered_back() -> None:
    flow = CallFlow()
    flow.connect()
    relayed = request(flow.a_request("OPTIONS"), "OPTIONS", CARRIER)
    assert relayed.to_addr.tag == "btag"
    back = flow.b_answers(relayed, extra="Allow: INVITE, ACK, BYE")
    ok = response(back, "200", CALLER_TRUNK)
    assert ok.headers.get("allow") == "INVITE, ACK, BYE"
    relayed = request(flow.b_request("OPTIONS"), "OPTIONS", CALLER_TRUNK)
    assert statuses(flow.a_answers(relayed), CARRIER) == [200]


def test_in_dialog_request_for_unknown_dialog_gets_481() -> None:
    flow = CallFlow()
    flow.connect()
    flow.a_tag = "nosuchtag"
    for method in ("BYE", "INFO", "UPDATE", "INVITE"):
        assert statuses(flow.a_request(method)) == [481]
    assert flow.bench.engine.active_calls == 1


def test_out_of_order_cseq_gets_500() -> None:
    flow = CallFlow(a_cseq=5)
    flow.connect()
    out = flow.a_request("INFO", cseq=3, body=DTMF, content_type="application/dtmf-relay")
    assert statuses(out) == [500]
    assert methods(out) == []


def test_relayed_request_that_times_out_gets_408_and_a_dead_reinvite_ends_the_call() -> None:
    flow = CallFlow()
    flow.connect()
    relayed = request(
        flow.a_request("INFO", body=DTMF, content_type="application/dtmf-relay"), "INFO", CARRIER
    )
    assert isinstance(relayed, Request)
    out = flow.advance(33)  # Timer F
    assert 408 in statuses(out, CALLER_TRUNK)
    assert flow.bench.engine.active_calls == 1  # an INFO lost is not a dead call
    request(flow.a_request("INVITE", body=SDP_A_HOLD), "INVITE", CARRIER)
    out = flow.advance(40)  # Timer B on the re-INVITE
    assert 408 in statuses(out, CALLER_TRUNK)
    assert "BYE" in methods(out, CALLER_TRUNK) and "BYE" in methods(out, CARRIER)
    assert flow.bench.engine.active_calls == 0


def test_callee_number_never_in_relayed_in_dialog_requests() -> None:
    flow = CallFlow()
    flow.connect()
    relayed = request(
        flow.b_request("INVITE", body=SDP_B_HOLD, from_display=B), "INVITE", CALLER_TRUNK
    )
    assert B.encode() not in relayed.to_bytes()
