"""Failure mapping and limits (DESIGN section 4): who gets which status, and why."""

from __future__ import annotations

import dataclasses

import pytest

from b2bua.calls.events import CallAttempted, CallEnded, CallForwarded, EndReason, ReleasedBy
from b2bua.calls.routing import RouteRejection, Trunk
from b2bua.sip import Request, Response
from b2bua.sip.address import Address

from .flow import CallFlow, methods, request, response, statuses, to
from .harness import (
    BACKUP,
    CALLER_TRUNK,
    CARRIER,
    G2,
    A,
    B,
    Bench,
    FakeRouter,
    X,
    axb,
    invite_from_a,
)

NETWORKS = Bench().engine.settings.trunks[0].inbound_networks
TWO_TRUNKS = (Trunk("carrier-a", CARRIER, 1, NETWORKS), Trunk("backup", BACKUP, 2))
UNTRUSTED = Address("UDP", "192.0.2.66", 5060)


def _ended(bench: Bench) -> CallEnded:
    ended = bench.sink.events[-1]
    assert isinstance(ended, CallEnded)
    return ended


def out_of_dialog(method: str, *, extra: str = "", max_forwards: int = 70) -> bytes:
    return (
        f"{method} sip:{X}@127.0.0.1:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.10:5061;branch=z9hG4bKood1\r\n"
        f"Max-Forwards: {max_forwards}\r\n"
        f"From: <sip:{A}@127.0.0.10>;tag=oodtag\r\n"
        f"To: <sip:{X}@127.0.0.1>\r\n"
        "Call-ID: ood-1\r\n"
        f"CSeq: 1 {method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def test_unknown_number_404_with_a_to_tag_and_a_rejection_record() -> None:
    bench = Bench()
    out = bench.feed(invite_from_a(dialled="700999999999999"), CALLER_TRUNK)
    assert statuses(out) == [404] and methods(out) == []
    ((refusal, where),) = out
    assert where == CALLER_TRUNK
    assert isinstance(refusal, Response) and refusal.to_addr.tag
    attempted = bench.sink.events[0]
    assert isinstance(attempted, CallAttempted)
    assert attempted.rejection == "unknown_number" and attempted.binding_id is None
    assert _ended(bench).end_reason is EndReason.REJECTED


def test_rate_limited_caller_gets_403_with_reason() -> None:
    reason = 'SIP;cause=403;text="rate limited"'
    router = FakeRouter({(A, X): RouteRejection(403, "rate_limited", reason_header=reason)})
    bench = Bench(router)
    out = bench.feed(invite_from_a(), CALLER_TRUNK)
    assert statuses(out) == [403] and methods(out) == []
    refusal = response(out, "403", CALLER_TRUNK)
    assert refusal.headers.get("reason") == reason
    assert bench.engine.active_calls == 0


def test_forbidden_caller_gets_plain_403() -> None:
    bench = Bench(FakeRouter({(A, X): RouteRejection(403, "not_participant")}))
    refusal = response(bench.feed(invite_from_a(), CALLER_TRUNK), "403", CALLER_TRUNK)
    assert refusal.headers.get("reason") is None


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (486, EndReason.BUSY),
        (480, EndReason.NO_ANSWER),
        (603, EndReason.REJECTED),
        (404, EndReason.REJECTED),
        (500, EndReason.FAILED),
    ],
)
def test_callee_final_error_is_relayed_as_is(status: int, reason: EndReason) -> None:
    flow = CallFlow()
    flow.invite()
    flow.ring()
    out = flow.b_responds(status, reason="Private Reason Text", extra="X-Secret: 1")
    refusal = response(out, str(status), CALLER_TRUNK)
    assert refusal.to_addr.tag == flow.a_tag
    assert refusal.reason != "Private Reason Text"
    assert refusal.headers.get("x-secret") is None
    assert methods(out, CARRIER) == ["ACK"]
    ended = _ended(flow.bench)
    assert (ended.status, ended.end_reason, ended.released_by) == (
        status,
        reason,
        ReleasedBy.CALLEE,
    )
    assert flow.bench.engine.active_calls == 0


def test_callee_never_answers_timer_b_gives_408() -> None:
    flow = CallFlow()
    flow.invite()
    out = flow.advance(31.9)
    assert statuses(out, CALLER_TRUNK) == []
    assert methods(out, CARRIER) == ["INVITE"] * 6  # Timer A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5
    out = flow.advance(0.2)
    refusal = response(out, "408", CALLER_TRUNK)
    assert refusal.to_addr.tag
    ended = _ended(flow.bench)
    assert (ended.end_reason, ended.released_by) == (EndReason.NO_ANSWER, ReleasedBy.SERVER)
    assert flow.bench.engine.active_calls == 0


@pytest.mark.parametrize("how", ["503", "timeout"])
def test_failover_to_the_second_trunk(how: str) -> None:
    flow = CallFlow(Bench(trunks=TWO_TRUNKS))
    first = request(flow.invite(), "INVITE", CARRIER)
    if how == "503":
        out = flow.b_responds(503)
        assert methods(out, CARRIER) == ["ACK"]
    else:
        out = flow.advance(32.1)
    assert statuses(out, CALLER_TRUNK) == []  # the caller notices nothing
    second = request(out, "INVITE", BACKUP)
    assert second.uri == f"sip:{B}@127.0.0.30:5070"
    assert second.headers.get("to") == f"<sip:{B}@127.0.0.30>"
    assert second.call_id != first.call_id
    assert second.from_addr.tag != first.from_addr.tag
    assert second.headers.get("p-asserted-identity") == f"<sip:{X}@127.0.0.1>"
    forwarded = [e for e in flow.bench.sink.events if isinstance(e, CallForwarded)]
    assert [e.outbound_trunk for e in forwarded] == ["carrier-a", "backup"]
    # The backup answers; its responses come from BACKUP.
    from .harness import SDP_B, response_to

    ringing = flow.bench.feed(response_to(second, 180), BACKUP)
    assert statuses(ringing, CALLER_TRUNK) == [180]
    ok = flow.bench.feed(response_to(second, 200, body=SDP_B), BACKUP)
    assert statuses(ok, CALLER_TRUNK) == [200]
    assert flow.bench.engine.active_calls == 1


def test_failover_exhausted_relays_the_last_status() -> None:
    flow = CallFlow(Bench(trunks=TWO_TRUNKS))
    flow.invite()
    second = request(flow.b_responds(503), "INVITE", BACKUP)
    from .harness import response_to

    out = flow.bench.feed(response_to(second, 503), BACKUP)
    assert statuses(out, CALLER_TRUNK) == [503]
    assert flow.bench.engine.active_calls == 0


def test_failover_not_taken_for_the_callees_own_refusal() -> None:
    flow = CallFlow(Bench(trunks=TWO_TRUNKS))
    flow.invite()
    out = flow.b_responds(486)
    assert statuses(out, CALLER_TRUNK) == [486]
    assert to(out, BACKUP) == []


def test_gxb_hunt_first_busy_second_answers() -> None:
    flow = CallFlow(Bench(FakeRouter({(A, X): axb(targets=(B, G2))})))
    flow.invite()
    flow.ring()
    out = flow.b_responds(486)
    assert statuses(out, CALLER_TRUNK) == []
    second = request(out, "INVITE", CARRIER)
    assert second.uri == f"sip:{G2}@127.0.0.20:5070"
    assert second.headers.get("to") == f"<sip:{G2}@127.0.0.20>"
    answered = flow.answer(to_tag="g2tag")
    ok = response(answered, "200", CALLER_TRUNK)
    assert ok.to_addr.tag == flow.a_tag  # the caller sees one dialog throughout
    ack = request(flow.a_ack(), "ACK", CARRIER)
    assert ack.call_id == second.call_id and ack.to_addr.tag == "g2tag"
    forwarded = [e for e in flow.bench.sink.events if isinstance(e, CallForwarded)]
    assert [e.callee for e in forwarded] == [B, G2]


def test_gxb_hunt_all_busy_relays_the_last_refusal() -> None:
    flow = CallFlow(Bench(FakeRouter({(A, X): axb(targets=(B, G2))})))
    flow.invite()
    flow.b_responds(486)
    out = flow.b_responds(603)
    assert statuses(out, CALLER_TRUNK) == [603]
    assert _ended(flow.bench).end_reason is EndReason.REJECTED


def test_concurrent_call_cap_gives_503_with_retry_after() -> None:
    bench = Bench(max_calls=1)
    flow = CallFlow(bench)
    flow.invite()
    out = bench.feed(invite_from_a(call_id="a-call-2", branch="z9hG4bKa2"), CALLER_TRUNK)
    assert statuses(out) == [503] and methods(out) == []
    refusal = response(out, "503", CALLER_TRUNK)
    assert refusal.headers.get("retry-after") == "5"
    assert bench.engine.counters.overload_rejections == 1
    assert bench.engine.counters.call_limit_rejections == 1
    assert bench.engine.active_calls == 1


def test_a_draining_node_refuses_new_calls_with_503_counted_as_draining() -> None:
    bench = Bench()
    bench.engine.begin_drain()
    out = bench.feed(invite_from_a(), CALLER_TRUNK)
    assert statuses(out) == [503] and methods(out) == []
    assert response(out, "503", CALLER_TRUNK).headers.get("retry-after") == "5"
    counters = bench.engine.counters
    assert (counters.draining_rejections, counters.call_limit_rejections) == (1, 0)
    assert counters.overload_rejections == 1


def test_untrusted_source_gets_403() -> None:
    bench = Bench()
    out = bench.feed(invite_from_a(), UNTRUSTED)
    assert statuses(out) == [403]
    assert out[0][1] == UNTRUSTED
    assert bench.engine.active_calls == 0 and bench.sink.events == []
    assert bench.feed(out_of_dialog("OPTIONS"), UNTRUSTED)[0][1] == UNTRUSTED


def test_untrusted_source_dropped_when_configured() -> None:
    bench = Bench()
    bench.engine.settings = dataclasses.replace(bench.engine.settings, untrusted_action="drop")
    assert bench.feed(invite_from_a(), UNTRUSTED) == []
    assert bench.feed(out_of_dialog("OPTIONS"), UNTRUSTED) == []
    assert bench.engine.counters.untrusted_requests == 2


def test_options_out_of_dialog_gets_200() -> None:
    bench = Bench()
    ok = response(bench.feed(out_of_dialog("OPTIONS"), CALLER_TRUNK), "200", CALLER_TRUNK)
    assert ok.to_addr.tag
    assert "INVITE" in (ok.headers.get("allow") or "")
    assert bench.engine.active_calls == 0


@pytest.mark.parametrize(
    ("method", "status", "header", "value"),
    [
        ("FOO", 501, "allow", None),
        ("REGISTER", 405, "allow", None),
        ("SUBSCRIBE", 405, "allow", None),
        ("BYE", 481, None, None),
        ("INFO", 481, None, None),
    ],
)
def test_out_of_dialog_requests(
    method: str, status: int, header: str | None, value: str | None
) -> None:
    bench = Bench()
    out = bench.feed(out_of_dialog(method), CALLER_TRUNK)
    assert statuses(out) == [status]
    if header is not None:
        assert out[0][0].headers.get(header)


def test_max_forwards_zero_gets_483() -> None:
    bench = Bench()
    data = invite_from_a().replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    out = bench.feed(data, CALLER_TRUNK)
    assert statuses(out) == [483] and methods(out) == []


def test_max_forwards_is_decremented() -> None:
    bench = Bench()
    data = invite_from_a().replace(b"Max-Forwards: 70", b"Max-Forwards: 5")
    invite = request(bench.feed(data, CALLER_TRUNK), "INVITE", CARRIER)
    assert invite.headers.get("max-forwards") == "4"


def test_unknown_require_gets_420_with_unsupported() -> None:
    bench = Bench()
    out = bench.feed(invite_from_a(extra="Require: foo, timer\r\n"), CALLER_TRUNK)
    refusal = response(out, "420", CALLER_TRUNK)
    assert refusal.headers.get("unsupported") == "foo"
    assert methods(out) == []


def test_malformed_lazy_header_gets_400_and_other_calls_go_on() -> None:
    bench = Bench()
    flow = CallFlow(bench)
    flow.connect()
    data = (
        invite_from_a(call_id="a-call-bad", branch="z9hG4bKbad")
        .replace(
            b"P-Asserted-Identity: <sip:+8613812345678@127.0.0.10>", b"P-Asserted-Identity: <<<"
        )
        .replace(b'From: "13812345678" <sip:13812345678@127.0.0.10>', b"From: <<garbage")
    )
    out = bench.feed(data, CALLER_TRUNK)
    assert statuses(out) == [400] and methods(out) == []
    assert bench.engine.active_calls == 1
    assert statuses(flow.a_request("BYE")) == [200]


def test_malformed_p_asserted_identity_falls_back_to_from() -> None:
    bench = Bench()
    data = invite_from_a().replace(
        b"P-Asserted-Identity: <sip:+8613812345678@127.0.0.10>", b"P-Asserted-Identity: <<<"
    )
    out = bench.feed(data, CALLER_TRUNK)
    assert statuses(out) == [100] and methods(out) == ["INVITE"]


def test_request_from_the_callee_trunk_address_is_trusted() -> None:
    bench = Bench()
    ok = bench.feed(out_of_dialog("OPTIONS"), CARRIER)
    assert statuses(ok) == [200]
    assert isinstance(ok[0][0], Response | Request)
