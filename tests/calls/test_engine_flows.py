"""Basic call flows: provisional responses, the answer, ACK end to end, forks.

Each test is one ladder diagram of DESIGN section 4, checked at the bytes.
"""

from __future__ import annotations

from b2bua.calls.events import CallAnswered, CallEnded, EndReason, ReleasedBy
from b2bua.sip import Request, Response

from .flow import A_CALL_ID, CallFlow, methods, request, response, statuses, to
from .harness import CALLER_TRUNK, CARRIER, SDP_B, US, A, B, X, only


def test_outbound_invite_is_exactly_what_the_contract_says() -> None:
    flow = CallFlow()
    out = flow.invite()
    assert statuses(out, CALLER_TRUNK) == [100]
    trying = response(out, "100", CALLER_TRUNK)
    assert trying.to_addr.tag is None  # never a To tag on 100 (RFC 3261 section 8.2.6.2)
    invite = request(out, "INVITE", CARRIER)
    assert invite.uri == f"sip:{B}@127.0.0.20:5070"
    assert invite.headers.get("from") == f'"Courier" <sip:{X}@127.0.0.1>;tag=r4'
    assert invite.headers.get("p-asserted-identity") == f"<sip:{X}@127.0.0.1>"
    assert invite.headers.get("to") == f"<sip:{B}@127.0.0.20>"
    assert invite.call_id == "r3@127.0.0.1"  # fresh, ours, not the caller's
    assert invite.headers.get("via") == "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr5;rport"
    assert len(invite.headers.get_all("via")) == 1
    assert invite.headers.get("contact") == f"<sip:{X}@127.0.0.1:5060>"
    assert invite.headers.get("cseq") == "1 INVITE"
    assert invite.headers.get("content-type") == "application/sdp"
    assert invite.body.startswith(b"v=0\r\no=- 1 1 IN IP4 127.0.0.10\r\ns=-\r\n")
    assert b"m=audio 40000 RTP/AVP 8" in invite.body
    assert A.encode() not in invite.to_bytes()


def test_label_absent_gives_a_bare_from() -> None:
    from .harness import Bench, FakeRouter, axb

    flow = CallFlow(Bench(FakeRouter({(A, X): axb(label=None)})))
    invite = request(flow.invite(), "INVITE", CARRIER)
    assert invite.headers.get("from") == f"<sip:{X}@127.0.0.1>;tag=r4"


def test_180_without_sdp_is_relayed_with_our_tag_and_contact() -> None:
    flow = CallFlow()
    flow.invite()
    out = flow.ring(180)
    ringing = response(out, "180", CALLER_TRUNK)
    assert ringing.body == b""
    assert ringing.call_id == A_CALL_ID
    assert ringing.headers.get("from") == f'"{A}" <sip:{A}@127.0.0.10>;tag=atag'
    assert ringing.headers.get("to") == f"<sip:{X}@127.0.0.1>;tag={flow.a_tag}"
    assert ringing.headers.get("via") == "SIP/2.0/UDP 127.0.0.10:5061;branch=z9hG4bKa1"
    assert ringing.headers.get("contact") == f"<sip:{X}@127.0.0.1:5060>"
    assert ringing.reason == "Ringing"
    assert "CallRinging" in flow.bench.sink.kinds()


def test_183_with_sdp_then_180_both_relayed_in_one_early_dialog() -> None:
    flow = CallFlow()
    flow.invite()
    progress = response(flow.ring(183, body=SDP_B), "183", CALLER_TRUNK)
    assert progress.headers.get("content-type") == "application/sdp"
    assert progress.body.startswith(b"v=0\r\no=- 7 7 IN IP4 127.0.0.20\r\ns=-\r\n")
    ringing = response(flow.ring(180), "180", CALLER_TRUNK)
    assert progress.to_addr.tag == ringing.to_addr.tag == flow.a_tag
    assert flow.bench.sink.kinds().count("CallRinging") == 1


def test_100_from_callee_is_not_relayed() -> None:
    flow = CallFlow()
    flow.invite()
    assert flow.ring(100) == []


def test_200_with_sdp_is_relayed_and_callee_ack_waits_for_caller_ack() -> None:
    flow = CallFlow()
    flow.invite()
    flow.ring()
    out = flow.answer()
    assert methods(out) == []  # no ACK to B before A's ACK (end to end)
    ok = response(out, "200", CALLER_TRUNK)
    assert ok.to_addr.tag == flow.a_tag
    assert ok.headers.get("contact") == f"<sip:{X}@127.0.0.1:5060>"
    assert ok.body.startswith(b"v=0\r\no=- 7 7 IN IP4 127.0.0.20\r\ns=-\r\n")
    assert isinstance(flow.bench.sink.events[-1], CallAnswered)

    acked = flow.a_ack()
    assert statuses(acked) == []
    ack = request(acked, "ACK", CARRIER)
    assert ack.uri == "sip:callee@127.0.0.20:5070"  # the callee's Contact
    assert ack.call_id == flow.b_invite.call_id if flow.b_invite else False
    assert ack.headers.get("cseq") == "1 ACK"
    assert ack.to_addr.tag == "btag"
    assert ack.from_addr.tag == "r4"
    assert ack.top_via.branch != flow.b_invite.top_via.branch if flow.b_invite else False
    # A retransmitted ACK is not relayed twice.
    assert flow.a_ack() == []


def test_callee_2xx_retransmission_after_our_ack_gets_the_ack_again() -> None:
    flow = CallFlow()
    flow.connect()
    first_ack = request(only(flow.log, "ACK"), "ACK", CARRIER)
    again = flow.answer()
    assert statuses(again) == []  # not relayed to the caller a second time
    resent = request(again, "ACK", CARRIER)
    assert resent.to_bytes() == first_ack.to_bytes()
    # Also once the INVITE client transaction is gone (Timer M): a stray 2xx.
    flow.advance(40)
    late = flow.answer()
    assert request(late, "ACK", CARRIER).to_bytes() == first_ack.to_bytes()


def test_caller_2xx_retransmitted_t1_doubling_to_t2_until_ack() -> None:
    flow = CallFlow()
    flow.invite()
    flow.answer()
    start = flow.bench.now
    ok = response(only(flow.log, "200"), "200", CALLER_TRUNK)
    times: list[float] = []
    for _ in range(40):  # step 0.25 s over 10 s
        out = flow.advance(0.25)
        for message, where in out:
            assert where == CALLER_TRUNK
            assert isinstance(message, Response) and message.to_bytes() == ok.to_bytes()
            times.append(round(flow.bench.now - start, 2))
    # T1=0.5, T2=4: resends after 0.5, 1, 2, 4, 4 ... seconds.
    assert times == [0.5, 1.5, 3.5, 7.5]
    flow.a_ack()
    assert flow.advance(10) == []  # ACK stops the resends


def test_no_ack_from_caller_ends_the_call_with_bye_on_both_legs_after_64_t1() -> None:
    flow = CallFlow()
    flow.invite()
    flow.answer()
    out = flow.advance(31.9)
    assert methods(out) == []
    assert flow.bench.engine.active_calls == 1
    out = flow.advance(0.2)
    callee_side = methods(out, CARRIER)
    assert callee_side == ["ACK", "BYE"]  # the callee's 2xx is ACKed before the BYE
    bye_a = request(out, "BYE", CALLER_TRUNK)
    assert bye_a.uri == f"sip:{A}@127.0.0.10:5061"
    assert bye_a.headers.get("to") == f'"{A}" <sip:{A}@127.0.0.10>;tag=atag'
    assert bye_a.from_addr.tag == flow.a_tag
    assert bye_a.call_id == A_CALL_ID
    assert flow.bench.engine.active_calls == 0
    ended = flow.bench.sink.events[-1]
    assert isinstance(ended, CallEnded)
    assert (ended.end_reason, ended.released_by) == (EndReason.FAILED, ReleasedBy.SERVER)


def test_forked_provisionals_collapse_into_one_caller_dialog() -> None:
    flow = CallFlow()
    flow.invite()
    first = response(flow.ring(180, to_tag="fork1"), "180", CALLER_TRUNK)
    second = response(flow.ring(183, to_tag="fork2", body=SDP_B), "183", CALLER_TRUNK)
    assert first.to_addr.tag == second.to_addr.tag == flow.a_tag
    ok = response(flow.answer(to_tag="fork2"), "200", CALLER_TRUNK)
    assert ok.to_addr.tag == flow.a_tag
    ack = request(flow.a_ack(), "ACK", CARRIER)
    assert ack.to_addr.tag == "fork2"  # the answering fork's dialog is the one kept


def test_second_fork_2xx_after_first_answered_is_acked_and_byed() -> None:
    flow = CallFlow()
    flow.invite()
    flow.ring(180, to_tag="fork1")
    flow.answer(to_tag="fork1")
    flow.a_ack()
    out = flow.answer(to_tag="fork2", contact="<sip:other@127.0.0.20:5070>")
    assert to(out, CALLER_TRUNK) == []
    assert methods(out, CARRIER) == ["ACK", "BYE"]
    ack = request(out, "ACK", CARRIER)
    bye = request(out, "BYE", CARRIER)
    for message in (ack, bye):
        assert message.to_addr.tag == "fork2"
        assert message.uri == "sip:other@127.0.0.20:5070"
        assert message.call_id == flow.b_invite.call_id if flow.b_invite else False
    assert ack.cseq.number == 1 and bye.cseq.number == 2
    assert flow.bench.engine.active_calls == 1  # the answered fork's call goes on
    flow.b_answers(bye)
    assert statuses(flow.a_request("BYE"), CALLER_TRUNK) == [200]


def test_provisional_after_the_final_is_dropped_and_does_not_fail_the_call() -> None:
    flow = CallFlow()
    flow.connect()
    for status, tag in ((180, "btag"), (183, "fork9")):
        assert flow.ring(status, to_tag=tag, body=SDP_B) == []
    assert flow.bench.engine.active_calls == 1
    out = flow.a_request("BYE")
    assert statuses(out) == [200] and methods(out) == ["BYE"]


def test_provisional_after_a_failure_final_is_dropped() -> None:
    flow = CallFlow()
    flow.invite()
    out = flow.b_responds(486)
    assert statuses(out, CALLER_TRUNK) == [486]
    assert methods(out, CARRIER) == ["ACK"]  # the transaction ACKs the failure itself
    assert flow.ring(180) == []
    assert flow.bench.engine.active_calls == 0


def test_invite_retransmission_from_caller_is_absorbed() -> None:
    flow = CallFlow()
    flow.invite()
    again = flow.invite()
    # Only the 100 Trying again (the last provisional), never a second outbound INVITE.
    assert methods(again) == [] and statuses(again) == [100]
    flow.ring()
    assert statuses(flow.invite()) == [180]


def test_late_offer_invite_caller_answer_in_ack_crosses_anonymised() -> None:
    flow = CallFlow()
    invite = request(flow.invite(body=b""), "INVITE", CARRIER)
    assert invite.body == b"" and invite.headers.get("content-type") is None
    flow.answer()
    from .harness import SDP_A

    ack = request(flow.a_ack(body=SDP_A), "ACK", CARRIER)
    assert ack.headers.get("content-type") == "application/sdp"
    assert ack.body.startswith(b"v=0\r\no=- 1 1 IN IP4 127.0.0.10\r\ns=-\r\n")


def test_us_is_the_only_via_and_contact_host_towards_the_callee() -> None:
    flow = CallFlow()
    flow.connect()
    flow.a_request(
        "INFO", body=b"Signal=5\r\nDuration=160\r\n", content_type="application/dtmf-relay"
    )
    for message, where in flow.log:
        if where == CARRIER and isinstance(message, Request):
            assert [v.sent_by for v in message.vias] == [f"{US.host}:{US.port}"]
            contact = message.headers.get("contact")
            assert contact is None or contact == f"<sip:{X}@127.0.0.1:5060>"


EXPECTED_OUTBOUND_INVITE = (
    b"INVITE sip:13987654321@127.0.0.20:5070 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr5;rport\r\n"
    b"Max-Forwards: 69\r\n"
    b'From: "Courier" <sip:700123456789012@127.0.0.1>;tag=r4\r\n'
    b"To: <sip:13987654321@127.0.0.20>\r\n"
    b"Call-ID: r3@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:700123456789012@127.0.0.1:5060>\r\n"
    b"P-Asserted-Identity: <sip:700123456789012@127.0.0.1>\r\n"
    b"Supported: 100rel, timer\r\n"
    b"Allow: INVITE, ACK\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 112\r\n"
    b"\r\n"
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\n"
    b"t=0 0\r\nm=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
)


def test_outbound_invite_exact_bytes() -> None:
    """Unknown option tags, X- headers, Diversion and the caller's identity stay behind."""
    from b2bua.sip import parse_message

    from .harness import Bench, invite_from_a

    bench = Bench()
    extra = (
        "Supported: 100rel, timer, foo\r\nAllow: INVITE, ACK\r\nX-Foo: bar\r\n"
        f"Diversion: <sip:{A}@127.0.0.10>\r\nUser-Agent: pbx\r\nRecord-Route: <sip:10.0.0.1;lr>\r\n"
    )
    bench.engine.receive(parse_message(invite_from_a(extra=extra)), CALLER_TRUNK, now=bench.now)
    sent = bench.raw_sent()
    assert [destination for _, destination in sent] == [CALLER_TRUNK, CARRIER]
    assert sent[0][0] == (
        b"SIP/2.0 100 Trying\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.10:5061;branch=z9hG4bKa1\r\n"
        b'From: "13812345678" <sip:13812345678@127.0.0.10>;tag=atag\r\n'
        b"To: <sip:700123456789012@127.0.0.1>\r\n"
        b"Call-ID: a-call-1\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert sent[1][0] == EXPECTED_OUTBOUND_INVITE
