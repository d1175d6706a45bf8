"""Call timers on the fake clock: ring timeout, max duration, session timers (RFC 4028)."""

from __future__ import annotations

from b2bua.calls.events import CallEnded, EndReason, ReleasedBy

from .flow import CallFlow, Sent, methods, request, response, to
from .harness import (
    CALLER_TRUNK,
    CARRIER,
    G2,
    SDP_A,
    SDP_B,
    A,
    B,
    Bench,
    FakeRouter,
    X,
    axb,
    response_to,
)

SESSION_90 = "Session-Expires: 90;refresher=uac\r\nRequire: timer"


def _ended(flow: CallFlow) -> CallEnded:
    ended = flow.bench.sink.events[-1]
    assert isinstance(ended, CallEnded)
    return ended


def test_ring_timeout_cancels_the_callee_and_gives_408() -> None:
    flow = CallFlow(Bench(ring_timeout_s=60))
    flow.invite()
    flow.ring()
    assert to(flow.advance(59.9), CALLER_TRUNK) == []
    out = flow.advance(0.2)
    cancel = request(out, "CANCEL", CARRIER)
    assert cancel.top_via.branch == flow.b_invite.top_via.branch if flow.b_invite else False
    refusal = response(out, "408", CALLER_TRUNK)
    assert refusal.to_addr.tag == flow.a_tag
    ended = _ended(flow)
    assert (ended.status, ended.end_reason, ended.released_by) == (
        408,
        EndReason.NO_ANSWER,
        ReleasedBy.SERVER,
    )
    assert flow.bench.engine.active_calls == 0


def test_ring_timeout_deadline_is_exact() -> None:
    flow = CallFlow(Bench(ring_timeout_s=20))
    start = flow.bench.now
    flow.invite()
    flow.ring()  # Timer A/B stop in Proceeding; the ring timeout is the next deadline
    assert flow.bench.engine.next_deadline() == start + 20


def test_ring_timeout_in_a_hunt_moves_to_the_next_member() -> None:
    bench = Bench(FakeRouter({(A, X): axb(targets=(B, G2))}), ring_timeout_s=20)
    flow = CallFlow(bench)
    flow.invite()
    flow.ring()
    out = flow.advance(20.1)
    assert methods(out, CARRIER) == ["CANCEL", "INVITE"]
    assert request(out, "INVITE", CARRIER).uri == f"sip:{G2}@127.0.0.20:5070"
    assert to(out, CALLER_TRUNK) == []
    assert bench.engine.active_calls == 1


def test_max_call_duration_ends_with_bye_on_both_legs() -> None:
    flow = CallFlow(Bench(FakeRouter({(A, X): axb(max_call_s=300)})))
    flow.connect()
    assert methods(flow.advance(299.9)) == []
    out = flow.advance(0.2)
    assert methods(out, CARRIER) == ["BYE"]
    assert methods(out, CALLER_TRUNK) == ["BYE"]
    ended = _ended(flow)
    assert (ended.status, ended.end_reason, ended.released_by) == (
        200,
        EndReason.MAX_DURATION,
        ReleasedBy.SERVER,
    )
    assert flow.bench.engine.active_calls == 0
    # The BYEs are answered; nothing else happens afterwards.
    bye_b = request(out, "BYE", CARRIER)
    bye_a = request(out, "BYE", CALLER_TRUNK)
    assert flow.b_answers(bye_b) == [] and flow.a_answers(bye_a) == []
    assert flow.advance(600) == []


def test_max_call_duration_counts_from_the_answer() -> None:
    flow = CallFlow(Bench(FakeRouter({(A, X): axb(max_call_s=30)}), ring_timeout_s=100))
    flow.invite()
    flow.ring()
    flow.advance(25)
    flow.answer()
    flow.a_ack()
    assert methods(flow.advance(29.9)) == []
    assert sorted(methods(flow.advance(0.2))) == ["BYE", "BYE"]


def test_session_timer_expires_without_refresh() -> None:
    flow = CallFlow()
    flow.connect(answer_extra=SESSION_90)
    ok = response(only_200(flow), "200", CALLER_TRUNK)
    assert ok.headers.get("session-expires") == "90;refresher=uac"
    assert ok.headers.get("require") == "timer"
    assert methods(flow.advance(89.9)) == []
    out = flow.advance(0.2)
    assert methods(out, CARRIER) == ["BYE"] and methods(out, CALLER_TRUNK) == ["BYE"]
    ended = _ended(flow)
    assert ended.released_by is ReleasedBy.SERVER
    assert flow.bench.engine.active_calls == 0


def only_200(flow: CallFlow) -> Sent:  # the first 200 to the caller in the log
    return [(m, d) for m, d in flow.log if d == CALLER_TRUNK and getattr(m, "status", 0) == 200][:1]


def test_refresh_reinvite_resets_the_session_timer() -> None:
    flow = CallFlow()
    flow.connect(answer_extra=SESSION_90)
    flow.advance(45)
    relayed = request(
        flow.a_request("INVITE", body=SDP_A, extra="Session-Expires: 90;refresher=uac\r\n"),
        "INVITE",
        CARRIER,
    )
    assert relayed.headers.get("session-expires") == "90;refresher=uac"
    flow.b_answers(relayed, body=SDP_B, extra=SESSION_90)
    flow.a_ack(cseq=flow.a_cseq)
    assert methods(flow.advance(89.9)) == []  # 134.9 s after the answer: still up
    assert flow.bench.engine.active_calls == 1
    out = flow.advance(0.2)
    assert sorted(methods(out)) == ["BYE", "BYE"]


def test_refresh_by_update_from_the_callee_resets_the_session_timer() -> None:
    flow = CallFlow()
    flow.connect(answer_extra=SESSION_90)
    flow.advance(45)
    relayed = request(
        flow.b_request("UPDATE", extra="Session-Expires: 90;refresher=uas\r\n"),
        "UPDATE",
        CALLER_TRUNK,
    )
    flow.a_answers(relayed, extra="Session-Expires: 90;refresher=uas")
    assert methods(flow.advance(89.9)) == []
    assert sorted(methods(flow.advance(0.2))) == ["BYE", "BYE"]


def test_no_session_expires_means_no_session_timer() -> None:
    flow = CallFlow()
    flow.connect()
    # Once the transactions are gone only the keepalive (an hour on the bench) is left.
    flow.advance(40)
    deadline = flow.bench.engine.next_deadline()
    assert deadline is not None and deadline > flow.bench.now + 3000
    assert methods(flow.advance(3000)) == []
    assert flow.bench.engine.active_calls == 1


def test_timers_fire_late_without_harm() -> None:
    # A loop that wakes up late runs every due timer once, earliest deadline first:
    # max duration (10 s) came before the ACK timeout (32 s), so it is the reason.
    flow = CallFlow(Bench(FakeRouter({(A, X): axb(max_call_s=10)})))
    flow.invite()
    flow.answer()
    flow.bench.now += 100
    flow.bench.engine.handle_timers(now=flow.bench.now)
    out = flow.bench.sent()
    assert methods(out, CARRIER) == ["ACK", "BYE"]
    assert methods(out, CALLER_TRUNK) == ["BYE"]
    assert _ended(flow).end_reason is EndReason.MAX_DURATION
    assert flow.bench.engine.active_calls == 0
    for message, _ in out:
        if getattr(message, "method", "") == "BYE":
            data = response_to(message, 200)  # type: ignore[arg-type]
            source = CARRIER if message.uri.startswith("sip:callee") else CALLER_TRUNK  # type: ignore[union-attr]
            assert flow.feed(data, source) == []
    assert flow.advance(100) == []


def test_refresh_whose_2xx_omits_session_expires_does_not_kill_the_call_early() -> None:
    # A successful re-INVITE proves both legs alive (RFC 4028 section 10 even turns
    # the timer off when the 2xx has no Session-Expires); the old deadline must not
    # end a call that was refreshed 45 s into its 90 s interval.
    flow = CallFlow()
    flow.connect(answer_extra=SESSION_90)
    flow.advance(45)
    relayed = request(flow.a_request("INVITE", body=SDP_A), "INVITE", CARRIER)
    flow.b_answers(relayed, body=SDP_B)
    flow.a_ack(cseq=flow.a_cseq)
    assert methods(flow.advance(50)) == []
    assert flow.bench.engine.active_calls == 1
    # Restarted, not switched off: with no refresh after that the call still ends.
    assert sorted(methods(flow.advance(40.1))) == ["BYE", "BYE"]
