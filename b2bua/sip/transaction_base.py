"""What every SIP transaction shares: states, inputs, outputs and the timer plumbing.

A transaction never sends or sleeps. It appends `Send` effects and TU events to
its `TransactionLayer`, and keeps each running RFC timer as an absolute
deadline in an attribute named after it (`timer_a`, `timer_b`, ...; None when
stopped). Each machine's behaviour is a table `state -> input -> handler`
(see `transaction_client.py` and `transaction_server.py`), so every pair is
written down: handled, deliberately ignored (`ignore`), or refused as a TU bug
(`reject`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from b2bua.sip.address import Address
from b2bua.sip.errors import TransactionError
from b2bua.sip.headers import Headers
from b2bua.sip.message import Message, Request, Response

if TYPE_CHECKING:
    from b2bua.sip.transaction import TransactionLayer
    from b2bua.sip.transaction_client import ClientTransaction
    from b2bua.sip.transaction_server import InviteServerTransaction, ServerTransaction

MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 section 8.1.1.7


def new_branch(random: Callable[[], str]) -> str:
    """A fresh Via branch: the RFC 3261 magic cookie followed by `random()`.

    The TU owns the Via: before `TransactionLayer.send_request` it prepends its
    own top Via carrying `branch=new_branch(random)`. A CANCEL reuses the
    INVITE's branch (`build_cancel` does that); an ACK for a 2xx gets a new one.
    """
    return MAGIC_COOKIE + random()


class TransactionState(Enum):
    """States of RFC 3261 figures 5-8 plus ACCEPTED from RFC 6026."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"

    # Members are singletons: identity hashing in C keeps table look-ups cheap
    # (Enum's own __hash__ is Python code, run twice per message otherwise).
    __hash__ = object.__hash__


class TransactionInput(Enum):
    """Everything that can happen to a transaction: network, TU, timers, transport."""

    PROVISIONAL_RECEIVED = "1xx received"
    SUCCESS_RECEIVED = "2xx received"
    FAILURE_RECEIVED = "300-699 received"
    FINAL_RECEIVED = "200-699 received"
    REQUEST_RECEIVED = "request retransmission received"
    ACK_RECEIVED = "ACK received"
    PROVISIONAL_FROM_TU = "1xx from TU"
    SUCCESS_FROM_TU = "2xx from TU"
    FAILURE_FROM_TU = "300-699 from TU"
    FINAL_FROM_TU = "200-699 from TU"
    TIMER_A = "Timer A fires"
    TIMER_B = "Timer B fires"
    TIMER_D = "Timer D fires"
    TIMER_E = "Timer E fires"
    TIMER_F = "Timer F fires"
    TIMER_G = "Timer G fires"
    TIMER_H = "Timer H fires"
    TIMER_I = "Timer I fires"
    TIMER_J = "Timer J fires"
    TIMER_K = "Timer K fires"
    TIMER_L = "Timer L fires"
    TIMER_M = "Timer M fires"
    TRANSPORT_ERROR = "transport error"

    __hash__ = object.__hash__


# --- effects and events --------------------------------------------------------


@dataclass(slots=True)
class Send:
    """Effect: write `data` to `destination`.

    When `transaction` is set, report a failure back with
    `TransactionLayer.report_transport_error(send.transaction, now=...)`; it is
    None for what the TU sends outside any transaction (`send_stateless`).
    """

    data: bytes
    destination: Address
    transaction: Transaction | None


@dataclass(slots=True)
class RequestReceived:
    """A new request (never ACK) arrived; `transaction` is its new server transaction."""

    request: Request
    transaction: ServerTransaction
    source: Address


@dataclass(slots=True)
class AckReceived:
    """An ACK for a 2xx: matched to an INVITE server transaction in Accepted, or to none.

    ACKs for non-2xx finals are absorbed by their transaction and never show up.
    """

    request: Request
    source: Address
    transaction: InviteServerTransaction | None


@dataclass(slots=True)
class ResponseReceived:
    """A client transaction passes a response up (2xx retransmissions too, RFC 6026)."""

    response: Response
    transaction: ClientTransaction


@dataclass(slots=True)
class StrayResponseReceived:
    """A response that matches no client transaction (RFC 3261 section 18.1.2).

    A UA core ACKs (and BYEs) a stray 2xx to INVITE and drops anything else.
    """

    response: Response
    source: Address


@dataclass(slots=True)
class TransactionTimedOut:
    """Timer B, F or H fired: no response (client) or no ACK (server) in time."""

    transaction: Transaction
    timer: str


@dataclass(slots=True)
class TransportErrorOccurred:
    """The transport could not deliver something this transaction sent."""

    transaction: Transaction


@dataclass(slots=True)
class TransactionTerminated:
    """The transaction reached Terminated and was removed from the layer."""

    transaction: Transaction


Event = (
    RequestReceived
    | AckReceived
    | ResponseReceived
    | StrayResponseReceived
    | TransactionTimedOut
    | TransportErrorOccurred
    | TransactionTerminated
)

# A request kept as text: method, Request-URI, version, header triples, body.
_DormantRequest = tuple[str, str, str, tuple[tuple[str, str, str], ...], bytes]

# A transition: (transaction, the message that came with the input or None, now).
Handler = Callable[[Any, Message | None, float], None]


def ignore(transaction: Transaction, message: Message | None, now: float) -> None:
    """Table entry for an input that is deliberately absorbed in this state.

    Timer inputs land here when the timer was stopped but fires late anyway.
    """


def reject(transaction: Transaction, message: Message | None, now: float) -> None:
    """Table entry for a TU action the RFC does not allow in this state (our bug)."""
    raise TransactionError(
        f"{type(transaction).__name__} cannot take this response in state {transaction.state.value}"
    )


class Transaction:
    """Common plumbing: state, the table dispatch, timer deadlines, outputs.

    Once a transaction only waits to absorb retransmissions (Completed,
    Confirmed, Accepted), it lets go of its parsed request: it keeps the
    request's text as one tuple, which holds no parsed header objects and
    costs the garbage collector nothing, and rebuilds a `Request` from it
    only if somebody still asks for `request`.
    """

    __slots__ = (
        "_dormant",
        "_heap_entries",
        "_interval",
        "_layer",
        "_request",
        "_wake",
        "key",
        "method",
        "reliable",
        "state",
    )

    STATES: ClassVar[tuple[TransactionState, ...]]
    INPUTS: ClassVar[tuple[TransactionInput, ...]]
    TRANSITIONS: ClassVar[dict[TransactionState, dict[TransactionInput, Handler]]]
    # (attribute, input) for each timer the machine uses.
    TIMERS: ClassVar[tuple[tuple[str, TransactionInput], ...]]

    def __init__(
        self,
        layer: TransactionLayer,
        request: Request,
        key: tuple[str, ...],
        reliable: bool,
        state: TransactionState,
    ) -> None:
        self._layer = layer
        self._request: Request | None = request
        self._dormant: _DormantRequest | None = None
        self.method = request.method
        self.key = key
        self.reliable = reliable
        self.state = state
        self._heap_entries = 0
        self._wake: float | None = None  # deadline of this transaction's live heap entry
        self._interval = 0.0  # current retransmit interval of Timer A, E or G

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.key[0]} {self.state.value}>"

    @property
    def request(self) -> Request:
        """The request that started the transaction (rebuilt from text once it waits)."""
        request = self._request
        if request is None:
            assert self._dormant is not None
            method, uri, version, triples, body = self._dormant
            request = Request(method, uri, Headers._from_triples(list(triples)), body, version)
            self._request = request
        return request

    def dispatch(self, event: TransactionInput, message: Message | None, *, now: float) -> None:
        """Feed one input through the transition table (the layer does this for you)."""
        self.TRANSITIONS[self.state][event](self, message, now)

    def next_deadline(self) -> float | None:
        """The earliest running timer's deadline, or None when none runs."""
        best: float | None = None
        for name, _ in self.TIMERS:
            deadline: float | None = getattr(self, name)
            if deadline is not None and (best is None or deadline < best):
                best = deadline
        return best

    def handle_timer(self, *, now: float) -> None:
        """Fire every timer due at `now`, earliest first; firing late or twice is harmless."""
        due: list[tuple[float, str, TransactionInput]] = []
        for name, event in self.TIMERS:
            deadline: float | None = getattr(self, name)
            if deadline is not None and deadline <= now:
                due.append((deadline, name, event))
        if len(due) > 1:
            due.sort()
        for deadline, name, event in due:
            # An earlier handler may have stopped or re-armed this timer.
            if getattr(self, name) == deadline:
                setattr(self, name, None)
                self.dispatch(event, None, now=now)

    # --- helpers for the handlers ---------------------------------------------

    def _arm(self, name: str, now: float, delay: float) -> None:
        deadline = now + delay
        setattr(self, name, deadline)
        wake = self._wake
        if wake is None or deadline < wake:
            # A later timer needs no entry of its own: the earlier one's entry
            # is pushed again for it once it pops (TransactionLayer.handle_timers).
            self._wake = deadline
            self._layer._schedule(deadline, self)

    def _stop_timers(self) -> None:
        for name, _ in self.TIMERS:
            setattr(self, name, None)

    def _let_go_of_request(self) -> None:
        """Keep the request as text only: nothing parsed stays alive while we wait."""
        request = self._request
        if request is not None:
            triples = tuple(request.headers.triples())
            self._dormant = (request.method, request.uri, request.version, triples, request.body)
            self._request = None

    def _terminate(self) -> None:
        self._let_go_of_request()
        self.state = TransactionState.TERMINATED
        self._stop_timers()
        self._layer._forget(self, report=True)

    def _timed_out(self, timer: str) -> None:
        self._layer.timeouts += 1
        self._layer._events.append(TransactionTimedOut(self, timer))
        self._terminate()

    def _transport_failed(self) -> None:
        self._layer._events.append(TransportErrorOccurred(self))
        self._terminate()
