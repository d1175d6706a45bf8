"""The basic call through the engine, byte for byte where the contract is exact."""

from __future__ import annotations

from b2bua.calls.events import CallAnswered, CallAttempted, CallEnded, EndReason, ReleasedBy
from b2bua.sip import Request, Response

from .harness import (
    CALLER_TRUNK,
    CARRIER,
    SDP_B,
    A,
    B,
    Bench,
    X,
    in_dialog,
    invite_from_a,
    only,
    response_to,
)


def test_answered_call_from_invite_to_bye() -> None:
    bench = Bench()
    out = bench.feed(invite_from_a(), CALLER_TRUNK)
    trying = only(out, "100")
    assert len(trying) == 1 and trying[0][1] == CALLER_TRUNK
    ((outbound, destination),) = only(out, "INVITE")
    assert destination == CARRIER
    assert isinstance(outbound, Request)
    assert outbound.uri == f"sip:{B}@127.0.0.20:5070"
    assert outbound.headers.get("from") == f'"Courier" <sip:{X}@127.0.0.1>;tag=r4'
    assert outbound.headers.get("p-asserted-identity") == f"<sip:{X}@127.0.0.1>"
    assert outbound.headers.get("to") == f"<sip:{B}@127.0.0.20>"
    assert outbound.call_id != "a-call-1"
    assert outbound.headers.get("max-forwards") == "69"
    assert A.encode() not in outbound.to_bytes()

    ringing = bench.feed(response_to(outbound, 180), CARRIER)
    ((to_a, where),) = only(ringing, "180")
    assert where == CALLER_TRUNK
    assert isinstance(to_a, Response)
    our_tag = to_a.to_addr.tag
    assert our_tag

    answered = bench.feed(response_to(outbound, 200, body=SDP_B), CARRIER)
    ((ok, _),) = only(answered, "200")
    assert isinstance(ok, Response)
    assert ok.to_addr.tag == our_tag
    assert b"o=- 7 7 IN IP4 127.0.0.20" in ok.body
    assert B.encode() not in ok.to_bytes()

    ack = in_dialog(
        "ACK",
        uri=f"sip:{X}@127.0.0.1:5060",
        call_id="a-call-1",
        from_value=f"<sip:{A}@127.0.0.10>;tag=atag",
        to_value=f"<sip:{X}@127.0.0.1>;tag={our_tag}",
        cseq=1,
        branch="z9hG4bKack1",
        via_host="127.0.0.10:5061",
    )
    acked = bench.feed(ack, CALLER_TRUNK)
    ((ack_b, ack_dest),) = only(acked, "ACK")
    assert ack_dest == CARRIER
    assert ack_b.cseq.number == 1 and ack_b.to_addr.tag == "btag"

    bye = in_dialog(
        "BYE",
        uri=f"sip:{X}@127.0.0.1:5060",
        call_id="a-call-1",
        from_value=f"<sip:{A}@127.0.0.10>;tag=atag",
        to_value=f"<sip:{X}@127.0.0.1>;tag={our_tag}",
        cseq=2,
        branch="z9hG4bKbye1",
        via_host="127.0.0.10:5061",
    )
    bye_out = bench.feed(bye, CALLER_TRUNK)
    assert len(only(bye_out, "200")) == 1
    ((bye_b, _),) = only(bye_out, "BYE")
    assert bye_b.call_id == outbound.call_id
    bench.feed(response_to(bye_b, 200), CARRIER)

    kinds = bench.sink.kinds()
    assert kinds == ["CallAttempted", "CallForwarded", "CallRinging", "CallAnswered", "CallEnded"]
    attempted = bench.sink.events[0]
    assert isinstance(attempted, CallAttempted) and attempted.binding_id == "bnd-1"
    assert isinstance(bench.sink.events[3], CallAnswered)
    ended = bench.sink.events[-1]
    assert isinstance(ended, CallEnded)
    assert (ended.status, ended.end_reason, ended.released_by) == (
        200,
        EndReason.NORMAL,
        ReleasedBy.CALLER,
    )
    assert bench.engine.active_calls == 0


def test_unknown_number_gets_404_and_a_record() -> None:
    bench = Bench()
    out = bench.feed(invite_from_a(dialled="700999999999999"), CALLER_TRUNK)
    assert [m.status for m, _ in out if isinstance(m, Response)] == [404]
    assert bench.sink.kinds() == ["CallAttempted", "CallEnded"]
    assert bench.engine.active_calls == 0
