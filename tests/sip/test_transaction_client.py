"""Client transactions (RFC 3261 section 17.1, RFC 6026) on a fake clock: bytes and deadlines."""

from __future__ import annotations

import pytest

from b2bua.sip import TransactionError
from b2bua.sip.timers import TimerConfig
from b2bua.sip.transaction import TransactionLayer
from b2bua.sip.transaction_base import (
    ResponseReceived,
    StrayResponseReceived,
    TransactionState,
    TransactionTimedOut,
    new_branch,
)
from b2bua.sip.transaction_client import (
    InviteClientTransaction,
    NonInviteClientTransaction,
    build_cancel,
)

from .test_transaction_support import (
    TRUNK,
    TRUNK_TCP,
    first_lines,
    kinds,
    outbound,
    reply,
    run_timers_until,
    sends,
    start_invite,
    start_non_invite,
)

S = TransactionState


def test_new_branch_has_magic_cookie_and_injected_randomness() -> None:
    assert new_branch(lambda: "abc123") == "z9hG4bKabc123"


def test_invite_sent_once_with_timer_a_and_b_deadlines() -> None:
    layer = TransactionLayer()
    invite = outbound()
    tx = start_invite(layer, invite, TRUNK, now=10.0)
    assert isinstance(tx, InviteClientTransaction)
    assert sends(layer) == [(invite.to_bytes(), TRUNK)]
    assert (tx.state, tx.timer_a, tx.timer_b) == (S.CALLING, 10.5, 42.0)
    assert tx.next_deadline() == layer.next_deadline() == 10.5
    assert layer.live_count == 1


def test_timer_a_doubles_without_cap_until_timer_b_times_out() -> None:
    layer = TransactionLayer()
    invite = outbound()
    tx = start_invite(layer, invite, TRUNK, now=0.0)
    layer.drain_outgoing()
    fired = run_timers_until(layer, 100.0)
    # 0.5, 1, 2, 4, 8, 16 later: section 17.1.1.2 doubles Timer A with no T2 cap.
    assert [at for at, _, _ in fired] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 32.0]
    for _, events, out in fired[:-1]:
        assert events == []
        assert [s.data for s in out] == [invite.to_bytes()]
    _, events, out = fired[-1]
    assert out == []
    assert kinds(events) == ["TransactionTimedOut", "TransactionTerminated"]
    assert events[0] == TransactionTimedOut(tx, "B")
    assert tx.state is S.TERMINATED
    assert (layer.retransmissions, layer.timeouts, layer.live_count) == (6, 1, 0)
    assert layer.next_deadline() is None


def test_non_invite_timer_e_doubles_up_to_t2_until_timer_f() -> None:
    layer = TransactionLayer()
    tx = start_non_invite(layer, outbound("OPTIONS"), TRUNK, now=0.0)
    assert isinstance(tx, NonInviteClientTransaction)
    assert (tx.timer_e, tx.timer_f) == (0.5, 32.0)
    layer.drain_outgoing()
    fired = run_timers_until(layer, 100.0)
    # Intervals 0.5, 1, 2, 4, then capped at T2 = 4.
    assert [at for at, _, _ in fired] == [
        0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5, 32.0,
    ]  # fmt: skip
    assert kinds(fired[-1][1]) == ["TransactionTimedOut", "TransactionTerminated"]
    assert fired[-1][1][0] == TransactionTimedOut(tx, "F")
    assert layer.retransmissions == 10


def test_non_invite_proceeding_retransmits_every_t2() -> None:
    layer = TransactionLayer()
    request = outbound("BYE")
    tx = start_non_invite(layer, request, TRUNK, now=0.0)
    events = layer.receive(reply(request, 100), TRUNK, now=0.1)
    assert kinds(events) == ["ResponseReceived"]
    assert tx.state is S.PROCEEDING
    layer.drain_outgoing()
    fired = run_timers_until(layer, 9.0)
    # The armed Timer E (0.5) still fires; from then on it is reset to T2.
    assert [at for at, _, _ in fired] == [0.5, 4.5, 8.5]
    assert all(
        first_lines(sends_) == ["BYE sip:13900000000@198.51.100.7 SIP/2.0"]
        for sends_ in ([(s.data, s.destination) for s in out] for _, _, out in fired)
    )


def test_non_invite_final_starts_timer_k_and_absorbs_retransmitted_finals() -> None:
    layer = TransactionLayer()
    request = outbound("BYE")
    tx = start_non_invite(layer, request, TRUNK, now=0.0)
    ok = reply(request, 200)
    events = layer.receive(ok, TRUNK, now=0.2)
    assert events == [ResponseReceived(ok, tx)]
    assert (tx.state, tx.timer_e, tx.timer_f, tx.timer_k) == (S.COMPLETED, None, None, 5.2)
    assert layer.receive(reply(request, 200), TRUNK, now=1.0) == []
    assert layer.next_deadline() == 5.2  # the stale Timer E/F entries are skipped
    assert kinds(layer.handle_timers(now=5.2)) == ["TransactionTerminated"]
    assert layer.live_count == 0


def test_lost_response_client_retransmits_then_completes() -> None:
    layer = TransactionLayer()
    request = outbound("OPTIONS")
    tx = start_non_invite(layer, request, TRUNK, now=0.0)
    layer.drain_outgoing()
    assert layer.handle_timers(now=0.5) == []
    assert sends(layer) == [(request.to_bytes(), TRUNK)]
    ok = reply(request, 200)
    assert layer.receive(ok, TRUNK, now=0.7) == [ResponseReceived(ok, tx)]
    assert layer.handle_timers(now=1.5) == []  # Timer E stopped: nothing more is sent
    assert sends(layer) == []


INVITE_WITH_ROUTES = (
    b"Route: <sip:edge1.example;lr>\r\n"
    b"Route: <sip:edge2.example;lr>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Authorization: Digest username=x\r\n"
)


def test_ack_for_non_2xx_has_exactly_the_section_17_1_1_3_headers() -> None:
    layer = TransactionLayer()
    invite = outbound(extra=INVITE_WITH_ROUTES)
    tx = start_invite(layer, invite, TRUNK, now=0.0)
    layer.drain_outgoing()
    busy = reply(invite, 486, to_tag="callee7")
    events = layer.receive(busy, TRUNK, now=0.3)
    assert events == [ResponseReceived(busy, tx)]
    assert sends(layer) == [
        (
            b"ACK sip:13900000000@198.51.100.7 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKout1\r\n"
            b"Max-Forwards: 70\r\n"
            b'From: "Bob" <sip:700100@203.0.113.1>;tag=ftag1\r\n'
            b"To: <sip:13900000000@198.51.100.7>;tag=callee7\r\n"
            b"Call-ID: out-call-1\r\n"
            b"CSeq: 1 ACK\r\n"
            b"Route: <sip:edge1.example;lr>\r\n"
            b"Route: <sip:edge2.example;lr>\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n",
            TRUNK,
        )
    ]
    assert (tx.state, tx.timer_a, tx.timer_b, tx.timer_d) == (S.COMPLETED, None, None, 32.3)


def test_retransmitted_failure_is_acked_again_not_passed_up() -> None:
    layer = TransactionLayer()
    invite = outbound()
    layer.send_request(invite, TRUNK, now=0.0)
    layer.receive(reply(invite, 180), TRUNK, now=0.1)
    layer.receive(reply(invite, 603), TRUNK, now=2.0)
    first_ack = sends(layer)[-1]
    assert layer.receive(reply(invite, 603), TRUNK, now=2.5) == []
    assert sends(layer) == [first_ack]
    assert layer.retransmissions == 1
    assert kinds(layer.handle_timers(now=34.0)) == ["TransactionTerminated"]


def test_provisional_stops_timer_a_and_b() -> None:
    layer = TransactionLayer()
    invite = outbound()
    tx = start_invite(layer, invite, TRUNK, now=0.0)
    ringing = reply(invite, 180)
    assert layer.receive(ringing, TRUNK, now=0.2) == [ResponseReceived(ringing, tx)]
    assert (tx.state, tx.timer_a, tx.timer_b, tx.next_deadline()) == (
        S.PROCEEDING,
        None,
        None,
        None,
    )
    # The Timer A entry left in the heap fires late and does nothing.
    layer.drain_outgoing()
    assert layer.handle_timers(now=0.5) == []
    assert sends(layer) == []
    assert layer.next_deadline() is None
    progress = reply(invite, 183)
    assert layer.receive(progress, TRUNK, now=0.6) == [ResponseReceived(progress, tx)]


def test_rfc6026_accepted_passes_2xx_retransmissions_up_until_timer_m() -> None:
    layer = TransactionLayer()
    invite = outbound()
    tx = start_invite(layer, invite, TRUNK, now=0.0)
    ok = reply(invite, 200)
    assert layer.receive(ok, TRUNK, now=1.0) == [ResponseReceived(ok, tx)]
    assert (tx.state, tx.timer_m) == (S.ACCEPTED, 33.0)
    layer.drain_outgoing()
    assert sends(layer) == []  # the transaction never ACKs a 2xx
    again = reply(invite, 200)
    assert layer.receive(again, TRUNK, now=1.5) == [ResponseReceived(again, tx)]
    assert layer.receive(reply(invite, 500), TRUNK, now=1.6) == []
    assert kinds(layer.handle_timers(now=33.0)) == ["TransactionTerminated"]
    late = reply(invite, 200)
    assert layer.receive(late, TRUNK, now=40.0) == [StrayResponseReceived(late, TRUNK)]


def test_reliable_transport_skips_retransmissions_and_zeroes_d_and_k() -> None:
    layer = TransactionLayer()
    invite = outbound(transport="TCP")
    tx = start_invite(layer, invite, TRUNK_TCP, now=0.0)
    assert tx.reliable and isinstance(tx, InviteClientTransaction)
    assert (tx.timer_a, tx.timer_b) == (None, 32.0)
    layer.receive(reply(invite, 404), TRUNK_TCP, now=1.0)
    assert first_lines(sends(layer)) == [
        "INVITE sip:13900000000@198.51.100.7 SIP/2.0",
        "ACK sip:13900000000@198.51.100.7 SIP/2.0",
    ]
    assert tx.timer_d == 1.0  # Timer D = 0: terminates at the next timer run
    assert kinds(layer.handle_timers(now=1.0)) == ["TransactionTerminated"]

    bye = outbound("BYE", branch="z9hG4bKbye", transport="TCP", cseq=2)
    nict = start_non_invite(layer, bye, TRUNK_TCP, now=2.0)
    assert isinstance(nict, NonInviteClientTransaction)
    assert (nict.timer_e, nict.timer_f) == (None, 34.0)
    layer.receive(reply(bye, 200), TRUNK_TCP, now=2.5)
    assert nict.timer_k == 2.5
    assert kinds(layer.handle_timers(now=2.5)) == ["TransactionTerminated"]
    assert layer.live_count == 0 and layer.retransmissions == 0


def test_reliable_flag_overrides_destination_transport() -> None:
    layer = TransactionLayer()
    tx = start_non_invite(layer, outbound("OPTIONS"), TRUNK, now=0.0, reliable=True)
    assert tx.reliable and isinstance(tx, NonInviteClientTransaction) and tx.timer_e is None


def test_late_timer_firing_is_harmless() -> None:
    layer = TransactionLayer()
    invite = outbound()
    tx = start_invite(layer, invite, TRUNK, now=0.0)
    layer.drain_outgoing()
    # The loop was blocked for 100 s: Timer A fires once (no burst), then B.
    events = layer.handle_timers(now=100.0)
    assert kinds(events) == ["TransactionTimedOut", "TransactionTerminated"]
    assert len(sends(layer)) == 1
    # Firing again, or on the transaction directly, changes nothing.
    assert layer.handle_timers(now=200.0) == []
    tx.handle_timer(now=300.0)
    assert layer.handle_timers(now=300.0) == [] and sends(layer) == []


def test_custom_timer_config_scales_every_timer() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.1, t2=0.4, t4=1.0, timer_d_unreliable=2.0))
    invite = outbound()
    tx = start_invite(layer, invite, TRUNK, now=0.0)
    assert isinstance(tx, InviteClientTransaction)
    assert tx.timer_a == 0.1
    assert tx.timer_b == pytest.approx(6.4)
    layer.receive(reply(invite, 486), TRUNK, now=0.05)
    assert tx.timer_d == 2.05


def test_transport_error_informs_tu_and_terminates() -> None:
    layer = TransactionLayer()
    tx = start_invite(layer, outbound(), TRUNK, now=0.0)
    (send,) = layer.drain_outgoing()
    assert send.transaction is tx
    events = layer.report_transport_error(send.transaction, now=0.01)
    assert kinds(events) == ["TransportErrorOccurred", "TransactionTerminated"]
    assert layer.live_count == 0


def test_cancel_is_its_own_transaction_on_the_invite_branch() -> None:
    layer = TransactionLayer()
    invite = outbound(extra=b"Route: <sip:edge1.example;lr>\r\n")
    invite_tx = start_invite(layer, invite, TRUNK, now=0.0)
    layer.receive(reply(invite, 180), TRUNK, now=0.1)
    cancel = build_cancel(invite)
    assert cancel.to_bytes() == (
        b"CANCEL sip:13900000000@198.51.100.7 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKout1\r\n"
        b"Max-Forwards: 70\r\n"
        b'From: "Bob" <sip:700100@203.0.113.1>;tag=ftag1\r\n'
        b"To: <sip:13900000000@198.51.100.7>\r\n"
        b"Call-ID: out-call-1\r\n"
        b"CSeq: 1 CANCEL\r\n"
        b"Route: <sip:edge1.example;lr>\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )
    cancel_tx = start_non_invite(layer, cancel, TRUNK, now=1.0)
    assert layer.find_client("z9hG4bKout1", "CANCEL") is cancel_tx
    assert layer.find_client("z9hG4bKout1", "INVITE") is invite_tx
    ok = reply(cancel, 200)
    terminated = reply(invite, 487)
    assert layer.receive(ok, TRUNK, now=1.1) == [ResponseReceived(ok, cancel_tx)]
    assert layer.receive(terminated, TRUNK, now=1.2) == [ResponseReceived(terminated, invite_tx)]


def test_stray_response_goes_to_the_tu() -> None:
    layer = TransactionLayer()
    response = reply(outbound(branch="z9hG4bKunknown"), 200)
    assert layer.receive(response, TRUNK, now=0.0) == [StrayResponseReceived(response, TRUNK)]


def test_send_request_refuses_what_section_17_does_not_allow() -> None:
    layer = TransactionLayer()
    layer.send_request(outbound(), TRUNK, now=0.0)
    with pytest.raises(TransactionError):
        layer.send_request(outbound(), TRUNK, now=0.0)
    with pytest.raises(TransactionError):
        layer.send_request(outbound("ACK"), TRUNK, now=0.0)
    no_branch = outbound("OPTIONS")
    no_branch.headers.set("Via", "SIP/2.0/UDP 203.0.113.1:5060")
    no_branch.invalidate()
    with pytest.raises(TransactionError):
        layer.send_request(no_branch, TRUNK, now=0.0)


def test_terminate_on_tu_request_is_silent() -> None:
    layer = TransactionLayer()
    invite = outbound()
    tx = start_invite(layer, invite, TRUNK, now=0.0)
    layer.receive(reply(invite, 180), TRUNK, now=0.1)
    layer.terminate(tx)
    layer.terminate(tx)
    assert tx.state is S.TERMINATED and layer.live_count == 0
    assert layer.handle_timers(now=100.0) == []


def test_ack_for_2xx_goes_out_stateless_through_the_same_queue() -> None:
    layer = TransactionLayer()
    ack = outbound("ACK", branch="z9hG4bKack2")
    layer.send_stateless(ack, TRUNK)
    (send,) = layer.drain_outgoing()
    assert (send.data, send.destination, send.transaction) == (ack.to_bytes(), TRUNK, None)
    assert layer.live_count == 0
