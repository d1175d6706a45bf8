"""Server transactions (RFC 3261 section 17.2, RFC 6026) on a fake clock: bytes and deadlines."""

from __future__ import annotations

import pytest

from b2bua.sip import TransactionError, make_response
from b2bua.sip.address import Address
from b2bua.sip.transaction import TransactionLayer
from b2bua.sip.transaction_base import (
    AckReceived,
    RequestReceived,
    TransactionState,
    TransactionTimedOut,
)
from b2bua.sip.transaction_server import InviteServerTransaction, NonInviteServerTransaction

from .test_transaction_support import (
    TCP_PEER,
    UDP_PEER,
    inbound,
    kinds,
    new_server,
    outbound,
    run_timers_until,
    sends,
)

S = TransactionState


def _invite_server(layer: TransactionLayer, *, now: float = 0.0) -> InviteServerTransaction:
    invite = inbound()
    (event,) = layer.receive(invite, UDP_PEER, now=now)
    assert isinstance(event, RequestReceived)
    assert event.request is invite and event.source == UDP_PEER
    assert isinstance(event.transaction, InviteServerTransaction)
    return event.transaction


def test_new_invite_creates_a_proceeding_server_transaction() -> None:
    layer = TransactionLayer()
    tx = _invite_server(layer)
    assert (tx.state, tx.next_deadline(), layer.live_count) == (S.PROCEEDING, None, 1)
    assert sends(layer) == []  # 100 Trying is the TU's decision


def test_retransmitted_invite_is_absorbed_and_gets_the_last_provisional() -> None:
    layer = TransactionLayer()
    tx = _invite_server(layer)
    assert layer.receive(inbound(), UDP_PEER, now=0.1) == []
    assert sends(layer) == []  # nothing to resend yet
    trying = make_response(tx.request, 100)
    tx.respond(trying, now=0.1)
    assert sends(layer) == [(trying.to_bytes(), UDP_PEER)]
    assert layer.receive(inbound(), UDP_PEER, now=0.5) == []
    assert sends(layer) == [(trying.to_bytes(), UDP_PEER)]
    assert layer.retransmissions == 1


def test_failure_is_retransmitted_on_timer_g_until_ack_then_timer_i() -> None:
    layer = TransactionLayer()
    tx = _invite_server(layer)
    busy = make_response(tx.request, 486, to_tag="b2b1")
    tx.respond(busy, now=1.0)
    assert sends(layer) == [(busy.to_bytes(), UDP_PEER)]
    assert (tx.state, tx.timer_g, tx.timer_h) == (S.COMPLETED, 1.5, 33.0)
    fired = run_timers_until(layer, 20.0)
    # Timer G: 0.5, 1, 2, 4, then capped at T2 = 4 (section 17.2.1).
    assert [at for at, _, _ in fired] == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5]
    assert all(
        events == [] and [s.data for s in out] == [busy.to_bytes()] for _, events, out in fired
    )
    # A retransmitted INVITE gets the final again.
    assert layer.receive(inbound(), UDP_PEER, now=17.0) == []
    assert sends(layer) == [(busy.to_bytes(), UDP_PEER)]
    assert layer.receive(inbound("ACK", to_tag="b2b1"), UDP_PEER, now=18.0) == []
    assert (tx.state, tx.timer_g, tx.timer_h, tx.timer_i) == (S.CONFIRMED, None, None, 23.0)
    # Confirmed absorbs ACK and INVITE retransmissions silently.
    assert layer.receive(inbound("ACK", to_tag="b2b1"), UDP_PEER, now=19.0) == []
    assert layer.receive(inbound(), UDP_PEER, now=19.5) == []
    assert sends(layer) == []
    assert layer.next_deadline() == 23.0
    assert kinds(layer.handle_timers(now=23.0)) == ["TransactionTerminated"]
    assert layer.live_count == 0 and layer.retransmissions == 7


def test_timer_h_times_out_without_ack() -> None:
    layer = TransactionLayer()
    tx = _invite_server(layer)
    tx.respond(make_response(tx.request, 404, to_tag="x"), now=0.0)
    fired = run_timers_until(layer, 64.0)
    at, events, out = fired[-1]
    assert at == 32.0 and out == []
    assert events[0] == TransactionTimedOut(tx, "H")
    assert kinds(events) == ["TransactionTimedOut", "TransactionTerminated"]
    assert layer.timeouts == 1 and layer.next_deadline() is None


def test_rfc6026_accepted_state_after_2xx() -> None:
    layer = TransactionLayer()
    tx = _invite_server(layer)
    ok = make_response(tx.request, 200, to_tag="b2b1")
    tx.respond(ok, now=2.0)
    assert sends(layer) == [(ok.to_bytes(), UDP_PEER)]
    assert (tx.state, tx.timer_l, tx.timer_g, tx.timer_h) == (S.ACCEPTED, 34.0, None, None)
    # An INVITE retransmission is absorbed: the UA core retransmits the 2xx itself.
    assert layer.receive(inbound(), UDP_PEER, now=2.5) == []
    assert sends(layer) == []
    tx.respond(ok, now=2.5)  # that UA core retransmission goes out through the transaction
    assert sends(layer) == [(ok.to_bytes(), UDP_PEER)]
    # An ACK matching the transaction is passed up; so is one on a new branch.
    same_branch = inbound("ACK", to_tag="b2b1")
    assert layer.receive(same_branch, UDP_PEER, now=3.0) == [AckReceived(same_branch, UDP_PEER, tx)]
    new_branch = inbound("ACK", branch="z9hG4bKack2", to_tag="b2b1")
    assert layer.receive(new_branch, UDP_PEER, now=3.0) == [AckReceived(new_branch, UDP_PEER, None)]
    with pytest.raises(TransactionError):
        tx.respond(make_response(tx.request, 486), now=3.0)
    with pytest.raises(TransactionError):
        tx.respond(make_response(tx.request, 180), now=3.0)
    assert kinds(layer.handle_timers(now=34.0)) == ["TransactionTerminated"]
    tx.respond(ok, now=34.5)  # after Timer L the late retransmission is dropped
    assert sends(layer) == []


def test_reliable_invite_server_has_no_timer_g_and_zero_timer_i() -> None:
    layer = TransactionLayer()
    tx = new_server(layer.receive(inbound(transport="TCP"), TCP_PEER, now=0.0))
    assert isinstance(tx, InviteServerTransaction) and tx.reliable
    tx.respond(make_response(tx.request, 480, to_tag="t"), now=1.0)
    assert (tx.timer_g, tx.timer_h) == (None, 33.0)
    layer.receive(inbound("ACK", transport="TCP", to_tag="t"), TCP_PEER, now=1.2)
    assert (tx.state, tx.timer_i) == (S.CONFIRMED, 1.2)
    assert kinds(layer.handle_timers(now=1.2)) == ["TransactionTerminated"]


def test_non_invite_server_absorbs_and_answers_retransmissions_until_timer_j() -> None:
    layer = TransactionLayer()
    bye = inbound("BYE", to_tag="b2b1")
    (event,) = layer.receive(bye, UDP_PEER, now=0.0)
    assert isinstance(event, RequestReceived)
    tx = event.transaction
    assert isinstance(tx, NonInviteServerTransaction) and tx.state is S.TRYING
    assert layer.receive(inbound("BYE", to_tag="b2b1"), UDP_PEER, now=0.4) == []
    assert sends(layer) == []  # Trying: nothing to resend
    ok = make_response(bye, 200)
    tx.respond(ok, now=0.5)
    assert (tx.state, tx.timer_j) == (S.COMPLETED, 32.5)
    assert sends(layer) == [(ok.to_bytes(), UDP_PEER)]
    # Lost response: the peer retransmits and gets the same 200 again.
    assert layer.receive(inbound("BYE", to_tag="b2b1"), UDP_PEER, now=1.0) == []
    assert sends(layer) == [(ok.to_bytes(), UDP_PEER)]
    with pytest.raises(TransactionError):
        tx.respond(make_response(bye, 500), now=1.0)
    assert kinds(layer.handle_timers(now=32.5)) == ["TransactionTerminated"]


def test_non_invite_server_provisional_then_final() -> None:
    layer = TransactionLayer()
    tx = new_server(layer.receive(inbound("OPTIONS"), UDP_PEER, now=0.0))
    assert isinstance(tx, NonInviteServerTransaction)
    trying = make_response(tx.request, 100)
    tx.respond(trying, now=0.1)
    assert tx.state is S.PROCEEDING
    layer.receive(inbound("OPTIONS"), UDP_PEER, now=0.2)
    assert sends(layer) == [(trying.to_bytes(), UDP_PEER)] * 2
    tx.respond(make_response(tx.request, 200), now=0.3)
    assert (tx.state, tx.timer_j) == (S.COMPLETED, 32.3)


def test_reliable_non_invite_server_timer_j_is_zero() -> None:
    layer = TransactionLayer()
    tx = new_server(layer.receive(inbound("OPTIONS", transport="TCP"), TCP_PEER, now=0.0))
    tx.respond(make_response(tx.request, 200), now=0.1)
    assert isinstance(tx, NonInviteServerTransaction) and tx.timer_j == 0.1
    assert kinds(layer.handle_timers(now=0.1)) == ["TransactionTerminated"]


def test_cancel_matches_its_invite_by_branch_and_sent_by() -> None:
    layer = TransactionLayer()
    invite_tx = _invite_server(layer)
    cancel = inbound("CANCEL")
    (event,) = layer.receive(cancel, UDP_PEER, now=1.0)
    assert isinstance(event, RequestReceived)
    assert isinstance(event.transaction, NonInviteServerTransaction)
    assert layer.find_invite_server_for_cancel(cancel) is invite_tx
    other_hop = inbound("CANCEL", sent_by="192.0.2.99:5060")
    assert layer.find_invite_server_for_cancel(other_hop) is None
    event.transaction.respond(make_response(cancel, 200), now=1.0)
    invite_tx.respond(make_response(invite_tx.request, 487, to_tag="t"), now=1.0)
    assert [data.split(b"\r\n")[0] for data, _ in sends(layer)] == [
        b"SIP/2.0 200 OK",
        b"SIP/2.0 487 Request Terminated",
    ]


def test_matching_needs_the_same_sent_by_and_method() -> None:
    layer = TransactionLayer()
    _invite_server(layer)
    (other,) = layer.receive(inbound(sent_by="192.0.2.11:5060"), UDP_PEER, now=0.1)
    assert isinstance(other, RequestReceived)
    (options,) = layer.receive(inbound("OPTIONS"), UDP_PEER, now=0.1)
    assert isinstance(options, RequestReceived)
    assert layer.live_count == 3


def test_rfc2543_request_without_magic_cookie_still_matches_retransmissions() -> None:
    layer = TransactionLayer()
    tx = new_server(layer.receive(inbound(branch="old1"), UDP_PEER, now=0.0))
    tx.respond(make_response(tx.request, 486, to_tag="t"), now=0.1)
    assert layer.receive(inbound(branch="old1"), UDP_PEER, now=0.2) == []
    layer.receive(inbound("ACK", branch="old1", to_tag="t"), UDP_PEER, now=0.3)
    assert tx.state is S.CONFIRMED


def test_response_goes_to_the_request_source() -> None:
    layer = TransactionLayer()
    natted = Address("UDP", "198.51.100.200", 40000)
    tx = new_server(layer.receive(inbound(), natted, now=0.0))
    tx.respond(make_response(tx.request, 100), now=0.0)
    assert [dest for _, dest in sends(layer)] == [natted]


def test_transport_error_on_server_side() -> None:
    layer = TransactionLayer()
    tx = _invite_server(layer)
    tx.respond(make_response(tx.request, 503, to_tag="t"), now=0.0)
    (send,) = layer.drain_outgoing()
    assert send.transaction is tx
    events = layer.report_transport_error(tx, now=0.1)
    assert kinds(events) == ["TransportErrorOccurred", "TransactionTerminated"]
    tx.respond(make_response(tx.request, 503), now=0.2)  # terminated: ignored
    assert sends(layer) == []


def test_respond_checks_the_status_range() -> None:
    layer = TransactionLayer()
    tx = _invite_server(layer)
    with pytest.raises(TransactionError):
        tx.respond(make_response(tx.request, 700), now=0.0)


def test_stale_heap_entries_are_compacted() -> None:
    layer = TransactionLayer()
    for index in range(3000):
        request = outbound("OPTIONS", branch=f"z9hG4bK{index}")
        tx = layer.send_request(request, Address("UDP", "198.51.100.7", 5060), now=0.0)
        layer.report_transport_error(tx, now=0.0)
    assert layer.live_count == 0
    assert len(layer._heap) < 2100  # rebuilt once dead entries outnumbered live ones
    assert layer.next_deadline() is None and layer._heap == []
