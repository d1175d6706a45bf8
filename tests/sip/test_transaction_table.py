"""Every state x input pair of the four machines is handled, ignored or rejected on purpose.

Each transaction is driven into each of its states through real messages,
then fed each input straight through its transition table (as a timer firing
late, a stray retransmission or a confused TU would). `ignore` must leave no
trace, `reject` must raise TransactionError, and every other entry must run.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from b2bua.sip import Message, TransactionError, make_response
from b2bua.sip.transaction import TransactionLayer
from b2bua.sip.transaction_base import (
    RequestReceived,
    Transaction,
    TransactionInput,
    TransactionState,
    ignore,
    reject,
)
from b2bua.sip.transaction_client import InviteClientTransaction, NonInviteClientTransaction
from b2bua.sip.transaction_server import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
)

from .test_transaction_support import TRUNK, UDP_PEER, inbound, outbound, reply

S = TransactionState
I = TransactionInput  # noqa: E741

MACHINES: list[type[Transaction]] = [
    InviteClientTransaction,
    NonInviteClientTransaction,
    InviteServerTransaction,
    NonInviteServerTransaction,
]

# How to reach each state from a fresh transaction, as (client responses | TU responses, ACK?).
PATHS: dict[tuple[type[Transaction], TransactionState], list[int | str]] = {
    (InviteClientTransaction, S.CALLING): [],
    (InviteClientTransaction, S.PROCEEDING): [180],
    (InviteClientTransaction, S.COMPLETED): [486],
    (InviteClientTransaction, S.ACCEPTED): [200],
    (InviteClientTransaction, S.TERMINATED): [486, "timers"],
    (NonInviteClientTransaction, S.TRYING): [],
    (NonInviteClientTransaction, S.PROCEEDING): [100],
    (NonInviteClientTransaction, S.COMPLETED): [200],
    (NonInviteClientTransaction, S.TERMINATED): [200, "timers"],
    (InviteServerTransaction, S.PROCEEDING): [],
    (InviteServerTransaction, S.COMPLETED): [486],
    (InviteServerTransaction, S.CONFIRMED): [486, "ack"],
    (InviteServerTransaction, S.ACCEPTED): [200],
    (InviteServerTransaction, S.TERMINATED): [200, "timers"],
    (NonInviteServerTransaction, S.TRYING): [],
    (NonInviteServerTransaction, S.PROCEEDING): [100],
    (NonInviteServerTransaction, S.COMPLETED): [200],
    (NonInviteServerTransaction, S.TERMINATED): [200, "timers"],
}


def _start(machine: type[Transaction], layer: TransactionLayer) -> Transaction:
    if machine is InviteClientTransaction:
        return layer.send_request(outbound(), TRUNK, now=0.0)
    if machine is NonInviteClientTransaction:
        return layer.send_request(outbound("OPTIONS"), TRUNK, now=0.0)
    method = "INVITE" if machine is InviteServerTransaction else "OPTIONS"
    (event,) = layer.receive(inbound(method), UDP_PEER, now=0.0)
    assert isinstance(event, RequestReceived)
    return event.transaction


def _drive(tx: Transaction, layer: TransactionLayer, steps: list[int | str]) -> None:
    for step in steps:
        if step == "timers":
            layer.handle_timers(now=1000.0)
        elif step == "ack":
            layer.receive(inbound("ACK", to_tag="t"), UDP_PEER, now=1.0)
        elif isinstance(tx, ServerTransaction):
            assert isinstance(step, int)
            tx.respond(make_response(tx.request, step, to_tag="t"), now=1.0)
        else:
            assert isinstance(step, int)
            layer.receive(reply(tx.request, step), TRUNK, now=1.0)


def _payload(tx: Transaction, event: TransactionInput) -> Message | None:
    builders: dict[TransactionInput, Callable[[], Message]] = {
        I.PROVISIONAL_RECEIVED: lambda: reply(tx.request, 180),
        I.SUCCESS_RECEIVED: lambda: reply(tx.request, 200),
        I.FAILURE_RECEIVED: lambda: reply(tx.request, 486),
        I.FINAL_RECEIVED: lambda: reply(tx.request, 200),
        I.REQUEST_RECEIVED: lambda: tx.request,
        I.ACK_RECEIVED: lambda: inbound("ACK", to_tag="t"),
        I.PROVISIONAL_FROM_TU: lambda: make_response(tx.request, 180, to_tag="t"),
        I.SUCCESS_FROM_TU: lambda: make_response(tx.request, 200, to_tag="t"),
        I.FAILURE_FROM_TU: lambda: make_response(tx.request, 486, to_tag="t"),
        I.FINAL_FROM_TU: lambda: make_response(tx.request, 200, to_tag="t"),
    }
    builder = builders.get(event)
    return builder() if builder is not None else None


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.__name__)
def test_table_covers_every_state_and_input(machine: type[Transaction]) -> None:
    assert set(machine.TRANSITIONS) == set(machine.STATES)
    for state in machine.STATES:
        assert set(machine.TRANSITIONS[state]) == set(machine.INPUTS), state
    assert {state for cls, state in PATHS if cls is machine} == set(machine.STATES)
    # Timers the machine owns are exactly its timer inputs.
    timer_inputs = {event for event in machine.INPUTS if event.name.startswith("TIMER_")}
    assert {event for _, event in machine.TIMERS} == timer_inputs
    # Terminated ignores everything.
    assert all(h is ignore for h in machine.TRANSITIONS[S.TERMINATED].values())


CASES = [
    (machine, state, event)
    for machine in MACHINES
    for state in machine.STATES
    for event in machine.INPUTS
]


@pytest.mark.parametrize(
    ("machine", "state", "event"),
    CASES,
    ids=[f"{m.__name__}-{s.name}-{e.name}" for m, s, e in CASES],
)
def test_every_state_input_pair(
    machine: type[Transaction], state: TransactionState, event: TransactionInput
) -> None:
    layer = TransactionLayer()
    tx = _start(machine, layer)
    _drive(tx, layer, PATHS[(machine, state)])
    assert tx.state is state
    layer.drain_outgoing()
    layer.handle_timers(now=0.0)  # flush events so far
    timers_before = [getattr(tx, name) for name, _ in tx.TIMERS]
    handler = machine.TRANSITIONS[state][event]
    message = _payload(tx, event)
    if handler is reject:
        with pytest.raises(TransactionError):
            tx.dispatch(event, message, now=2.0)
        return
    tx.dispatch(event, message, now=2.0)
    if handler is ignore:
        assert tx.state is state
        assert [getattr(tx, name) for name, _ in tx.TIMERS] == timers_before
        assert layer.drain_outgoing() == []
        assert layer.handle_timers(now=0.0) == []
    # Whatever happened, no timer is left running forever: a far-late firing
    # ends every timed state (Proceeding and Trying have no timers of their own).
    layer.handle_timers(now=10_000.0)
    assert tx.next_deadline() is None
    assert layer.next_deadline() is None
