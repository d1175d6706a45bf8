"""Client transactions: RFC 3261 section 17.1 with the RFC 6026 Accepted state.

The TU hands a request that already carries its top Via and branch to
`TransactionLayer.send_request`; the transaction sends it, retransmits it on an
unreliable transport (Timer A / E), passes responses up as `ResponseReceived`
and times out (Timer B / F). An INVITE client ACKs non-2xx finals itself
(section 17.1.1.3); ACKing a 2xx is the UA core's job, and the 2xx
retransmissions that arrive during Timer M are passed up so it can re-ACK them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from b2bua.sip.address import Address
from b2bua.sip.headers import Headers, split_list
from b2bua.sip.message import Message, Request, Response
from b2bua.sip.transaction_base import (
    Handler,
    ResponseReceived,
    Send,
    Transaction,
    TransactionInput,
    TransactionState,
    ignore,
)

if TYPE_CHECKING:
    from b2bua.sip.transaction import TransactionLayer

S = TransactionState
I = TransactionInput  # noqa: E741 - short alias keeps the tables on one screen

# Headers an ACK for a non-2xx (section 17.1.1.3) or a CANCEL (section 9.1)
# copies from the request; To and CSeq are rewritten, the Via is the top one.
_COPIED = frozenset({"from", "call-id", "route", "max-forwards"})


def _derived_request(request: Request, method: str, to_value: str | None) -> Request:
    pairs: list[tuple[str, str]] = []
    seen_via = False
    for key, name, value in request.headers.triples():
        if key == "via":
            if not seen_via:
                seen_via = True
                pairs.append((name, split_list(value)[0]))
        elif key in _COPIED:
            pairs.append((name, value))
        elif key == "to":
            pairs.append((name, to_value if to_value is not None else value))
        elif key == "cseq":
            pairs.append((name, f"{request.cseq.number} {method}"))
    return Request(method, request.uri, Headers(pairs))


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final to `invite` (RFC 3261 section 17.1.1.3).

    Same Request-URI, Call-ID, From, CSeq number, top Via (so the same branch)
    and Route headers as the INVITE; To from the response, so it has its tag.
    """
    return _derived_request(invite, "ACK", response.headers.get("to"))


def build_cancel(invite: Request) -> Request:
    """A CANCEL for `invite` (RFC 3261 section 9.1): same branch, same Route set.

    Send it with `TransactionLayer.send_request`; it is a non-INVITE transaction
    of its own, matched to responses by branch and the CANCEL method.
    """
    return _derived_request(invite, "CANCEL", None)


class ClientTransaction(Transaction):
    """What INVITE and non-INVITE client transactions share."""

    __slots__ = ("_request_bytes", "destination")

    def __init__(
        self,
        layer: TransactionLayer,
        request: Request,
        destination: Address,
        key: tuple[str, ...],
        reliable: bool,
        state: TransactionState,
    ) -> None:
        super().__init__(layer, request, key, reliable, state)
        self.destination = destination
        self._request_bytes = request.to_bytes()
        layer._outgoing.append(Send(self._request_bytes, destination, self))

    def receive_response(self, response: Response, *, now: float) -> None:
        """Feed a response matched to this transaction (the layer does this)."""
        self.TRANSITIONS[self.state][self._classify(response.status)](self, response, now)

    def _classify(self, status: int) -> TransactionInput:
        raise NotImplementedError

    def _wait_for_retransmissions(self) -> None:
        # Completed and Accepted never resend the request (section 17.1.1.2, 17.1.2.2).
        self._let_go_of_request()
        self._request_bytes = b""

    def _retransmit(self) -> None:
        self._layer.retransmissions += 1
        self._layer._outgoing.append(Send(self._request_bytes, self.destination, self))

    def _pass_up(self, response: Response) -> None:
        self._layer._events.append(ResponseReceived(response, self))


# --- INVITE client (RFC 3261 figure 5, RFC 6026 figure 5) -----------------------


class InviteClientTransaction(ClientTransaction):
    """INVITE client: Calling, Proceeding, Completed, Accepted, Terminated."""

    __slots__ = ("_ack_bytes", "timer_a", "timer_b", "timer_d", "timer_m")

    TIMERS: ClassVar[tuple[tuple[str, TransactionInput], ...]] = (
        ("timer_a", I.TIMER_A),
        ("timer_b", I.TIMER_B),
        ("timer_d", I.TIMER_D),
        ("timer_m", I.TIMER_M),
    )

    def __init__(
        self,
        layer: TransactionLayer,
        request: Request,
        destination: Address,
        key: tuple[str, ...],
        reliable: bool,
        *,
        now: float,
    ) -> None:
        self.timer_a: float | None = None
        self.timer_b: float | None = None
        self.timer_d: float | None = None
        self.timer_m: float | None = None
        self._ack_bytes: bytes | None = None
        super().__init__(layer, request, destination, key, reliable, S.CALLING)
        config = layer.config
        if not reliable:
            self._interval = config.timer_a
            self._arm("timer_a", now, config.timer_a)
        self._arm("timer_b", now, config.timer_b)

    def _classify(self, status: int) -> TransactionInput:
        if status < 200:
            return I.PROVISIONAL_RECEIVED
        return I.SUCCESS_RECEIVED if status < 300 else I.FAILURE_RECEIVED


def _ict_retransmit(tx: InviteClientTransaction, message: Message | None, now: float) -> None:
    # Section 17.1.1.2: Timer A doubles each time, with no cap.
    tx._retransmit()
    tx._interval *= 2
    tx._arm("timer_a", now, tx._interval)


def _ict_provisional(tx: InviteClientTransaction, message: Message | None, now: float) -> None:
    assert isinstance(message, Response)
    # Proceeding: no more retransmissions, and Timer B only guards Calling; how
    # long to ring is the TU's decision (it CANCELs).
    tx.state = S.PROCEEDING
    tx.timer_a = tx.timer_b = None
    tx._pass_up(message)


def _ict_success(tx: InviteClientTransaction, message: Message | None, now: float) -> None:
    assert isinstance(message, Response)
    # RFC 6026 section 7.2: stay in Accepted for Timer M so 2xx retransmissions
    # (and 2xx from other forks) still match and reach the TU.
    tx.state = S.ACCEPTED
    tx.timer_a = tx.timer_b = None
    tx._wait_for_retransmissions()
    tx._arm("timer_m", now, tx._layer.config.timer_m)
    tx._pass_up(message)


def _ict_failure(tx: InviteClientTransaction, message: Message | None, now: float) -> None:
    assert isinstance(message, Response)
    tx.state = S.COMPLETED
    tx.timer_a = tx.timer_b = None
    tx._ack_bytes = build_ack(tx.request, message).to_bytes()
    tx._wait_for_retransmissions()
    tx._layer._outgoing.append(Send(tx._ack_bytes, tx.destination, tx))
    tx._arm("timer_d", now, tx._layer.config.timer_d(tx.reliable))
    tx._pass_up(message)


def _ict_failure_again(tx: InviteClientTransaction, message: Message | None, now: float) -> None:
    # Section 17.1.1.2: a retransmitted final is answered with the same ACK, not passed up.
    assert tx._ack_bytes is not None
    tx._layer.retransmissions += 1
    tx._layer._outgoing.append(Send(tx._ack_bytes, tx.destination, tx))


def _ict_pass_up(tx: InviteClientTransaction, message: Message | None, now: float) -> None:
    assert isinstance(message, Response)
    tx._pass_up(message)


def _ict_timeout(tx: InviteClientTransaction, message: Message | None, now: float) -> None:
    tx._timed_out("B")


def _ict_end(tx: InviteClientTransaction, message: Message | None, now: float) -> None:
    tx._terminate()


def _ict_transport_error(tx: InviteClientTransaction, message: Message | None, now: float) -> None:
    tx._transport_failed()


_ICT_ALL_IGNORED: dict[TransactionInput, Handler] = {
    I.PROVISIONAL_RECEIVED: ignore,
    I.SUCCESS_RECEIVED: ignore,
    I.FAILURE_RECEIVED: ignore,
    I.TIMER_A: ignore,
    I.TIMER_B: ignore,
    I.TIMER_D: ignore,
    I.TIMER_M: ignore,
    I.TRANSPORT_ERROR: ignore,
}

InviteClientTransaction.STATES = (S.CALLING, S.PROCEEDING, S.COMPLETED, S.ACCEPTED, S.TERMINATED)
InviteClientTransaction.INPUTS = tuple(_ICT_ALL_IGNORED)
InviteClientTransaction.TRANSITIONS = {
    S.CALLING: {
        **_ICT_ALL_IGNORED,
        I.PROVISIONAL_RECEIVED: _ict_provisional,
        I.SUCCESS_RECEIVED: _ict_success,
        I.FAILURE_RECEIVED: _ict_failure,
        I.TIMER_A: _ict_retransmit,
        I.TIMER_B: _ict_timeout,
        I.TRANSPORT_ERROR: _ict_transport_error,
    },
    S.PROCEEDING: {
        **_ICT_ALL_IGNORED,
        I.PROVISIONAL_RECEIVED: _ict_pass_up,
        I.SUCCESS_RECEIVED: _ict_success,
        I.FAILURE_RECEIVED: _ict_failure,
        # A connection-oriented transport can still fail while we wait.
        I.TRANSPORT_ERROR: _ict_transport_error,
    },
    S.COMPLETED: {
        **_ICT_ALL_IGNORED,
        I.FAILURE_RECEIVED: _ict_failure_again,
        I.TIMER_D: _ict_end,
        I.TRANSPORT_ERROR: _ict_transport_error,
    },
    S.ACCEPTED: {
        **_ICT_ALL_IGNORED,
        I.SUCCESS_RECEIVED: _ict_pass_up,
        I.TIMER_M: _ict_end,
    },
    S.TERMINATED: dict(_ICT_ALL_IGNORED),
}


# --- non-INVITE client (RFC 3261 figure 6) --------------------------------------


class NonInviteClientTransaction(ClientTransaction):
    """Non-INVITE client: Trying, Proceeding, Completed, Terminated."""

    __slots__ = ("timer_e", "timer_f", "timer_k")

    TIMERS: ClassVar[tuple[tuple[str, TransactionInput], ...]] = (
        ("timer_e", I.TIMER_E),
        ("timer_f", I.TIMER_F),
        ("timer_k", I.TIMER_K),
    )

    def __init__(
        self,
        layer: TransactionLayer,
        request: Request,
        destination: Address,
        key: tuple[str, ...],
        reliable: bool,
        *,
        now: float,
    ) -> None:
        self.timer_e: float | None = None
        self.timer_f: float | None = None
        self.timer_k: float | None = None
        super().__init__(layer, request, destination, key, reliable, S.TRYING)
        config = layer.config
        if not reliable:
            self._interval = config.timer_e
            self._arm("timer_e", now, config.timer_e)
        self._arm("timer_f", now, config.timer_f)

    def _classify(self, status: int) -> TransactionInput:
        return I.PROVISIONAL_RECEIVED if status < 200 else I.FINAL_RECEIVED


def _nict_retransmit(tx: NonInviteClientTransaction, message: Message | None, now: float) -> None:
    # Section 17.1.2.2: Trying doubles up to T2; Proceeding retransmits every T2.
    tx._retransmit()
    t2 = tx._layer.config.t2
    tx._interval = min(2 * tx._interval, t2) if tx.state is S.TRYING else t2
    tx._arm("timer_e", now, tx._interval)


def _nict_provisional(tx: NonInviteClientTransaction, message: Message | None, now: float) -> None:
    assert isinstance(message, Response)
    tx.state = S.PROCEEDING
    tx._pass_up(message)


def _nict_final(tx: NonInviteClientTransaction, message: Message | None, now: float) -> None:
    assert isinstance(message, Response)
    tx.state = S.COMPLETED
    tx.timer_e = tx.timer_f = None
    tx._wait_for_retransmissions()
    tx._arm("timer_k", now, tx._layer.config.timer_k(tx.reliable))
    tx._pass_up(message)


def _nict_timeout(tx: NonInviteClientTransaction, message: Message | None, now: float) -> None:
    tx._timed_out("F")


def _nict_end(tx: NonInviteClientTransaction, message: Message | None, now: float) -> None:
    tx._terminate()


def _nict_transport_error(
    tx: NonInviteClientTransaction, message: Message | None, now: float
) -> None:
    tx._transport_failed()


_NICT_ALL_IGNORED: dict[TransactionInput, Handler] = {
    I.PROVISIONAL_RECEIVED: ignore,
    I.FINAL_RECEIVED: ignore,
    I.TIMER_E: ignore,
    I.TIMER_F: ignore,
    I.TIMER_K: ignore,
    I.TRANSPORT_ERROR: ignore,
}
_NICT_WAITING: dict[TransactionInput, Handler] = {
    **_NICT_ALL_IGNORED,
    I.FINAL_RECEIVED: _nict_final,
    I.TIMER_E: _nict_retransmit,
    I.TIMER_F: _nict_timeout,
    I.TRANSPORT_ERROR: _nict_transport_error,
}

NonInviteClientTransaction.STATES = (S.TRYING, S.PROCEEDING, S.COMPLETED, S.TERMINATED)
NonInviteClientTransaction.INPUTS = tuple(_NICT_ALL_IGNORED)
NonInviteClientTransaction.TRANSITIONS = {
    S.TRYING: {**_NICT_WAITING, I.PROVISIONAL_RECEIVED: _nict_provisional},
    S.PROCEEDING: {**_NICT_WAITING, I.PROVISIONAL_RECEIVED: _nict_provisional},
    # Completed absorbs response retransmissions until Timer K.
    S.COMPLETED: {**_NICT_ALL_IGNORED, I.TIMER_K: _nict_end},
    S.TERMINATED: dict(_NICT_ALL_IGNORED),
}
