"""Server transactions: RFC 3261 section 17.2 with the RFC 6026 Accepted state.

The layer creates a server transaction for each new request and hands it to
the TU in `RequestReceived`. The TU answers through `respond`; the transaction
sends the response to the request's source address, resends the last response
when the request is retransmitted, retransmits a non-2xx final to an INVITE on
Timer G until the ACK arrives (Timer H gives up), and lingers for Timer I / J /
L so retransmissions are absorbed. Responses to an INVITE are never generated
here, not even 100 Trying: the TU sends that at once when it wants one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from b2bua.sip.address import Address
from b2bua.sip.errors import TransactionError
from b2bua.sip.message import Message, Request, Response
from b2bua.sip.transaction_base import (
    AckReceived,
    Handler,
    Send,
    Transaction,
    TransactionInput,
    TransactionState,
    TransportErrorOccurred,
    ignore,
    reject,
)

if TYPE_CHECKING:
    from b2bua.sip.transaction import TransactionLayer

S = TransactionState
I = TransactionInput  # noqa: E741 - short alias keeps the tables on one screen


class ServerTransaction(Transaction):
    """What INVITE and non-INVITE server transactions share."""

    __slots__ = ("_last_response", "_serialized", "source")

    def __init__(
        self,
        layer: TransactionLayer,
        request: Request,
        source: Address,
        key: tuple[str, ...],
        state: TransactionState,
    ) -> None:
        super().__init__(layer, request, key, source.reliable, state)
        self.source = source
        self._last_response: bytes | None = None
        self._serialized: bytes | None = None  # the bytes of the response being sent

    def respond(self, response: Response, *, now: float, data: bytes | None = None) -> None:
        """Send `response` (built with `make_response(self.request, ...)`) and move on.

        `data` is `response.to_bytes()` when the caller has it already (it
        keeps a 2xx to retransmit, say), so it is not serialized twice.
        Raises TransactionError when the state machine does not allow it (a
        second final to a non-INVITE, say). Responding to a transaction that
        already terminated is ignored: Timer L or a transport error got there
        first, which a TU cannot always foresee.
        """
        if not 100 <= response.status <= 699:
            raise TransactionError(f"cannot send status {response.status}")
        self._serialized = data
        try:
            self.TRANSITIONS[self.state][self._classify(response.status)](self, response, now)
        finally:
            self._serialized = None

    def receive_request(self, request: Request, *, now: float) -> None:
        """Feed a retransmitted request or an ACK matched to this transaction."""
        event = I.ACK_RECEIVED if request.method == "ACK" else I.REQUEST_RECEIVED
        self.TRANSITIONS[self.state][event](self, request, now)

    def _classify(self, status: int) -> TransactionInput:
        raise NotImplementedError

    def _send_response(self, response: Message | None) -> None:
        assert isinstance(response, Response)
        data = self._serialized
        if data is None:
            data = response.to_bytes()
        self._last_response = data
        self._layer._outgoing.append(Send(data, self.source, self))

    def _resend_last(self) -> None:
        if self._last_response is not None:
            self._layer.retransmissions += 1
            self._layer._outgoing.append(Send(self._last_response, self.source, self))


def _send_provisional(tx: ServerTransaction, message: Message | None, now: float) -> None:
    tx.state = S.PROCEEDING
    tx._send_response(message)


def _resend(tx: ServerTransaction, message: Message | None, now: float) -> None:
    tx._resend_last()


def _transport_error(tx: ServerTransaction, message: Message | None, now: float) -> None:
    tx._transport_failed()


def _end(tx: ServerTransaction, message: Message | None, now: float) -> None:
    tx._terminate()


# --- INVITE server (RFC 3261 figure 7, RFC 6026 figure 7) -----------------------


class InviteServerTransaction(ServerTransaction):
    """INVITE server: Proceeding, Completed, Confirmed, Accepted, Terminated."""

    __slots__ = ("timer_g", "timer_h", "timer_i", "timer_l")

    TIMERS: ClassVar[tuple[tuple[str, TransactionInput], ...]] = (
        ("timer_g", I.TIMER_G),
        ("timer_h", I.TIMER_H),
        ("timer_i", I.TIMER_I),
        ("timer_l", I.TIMER_L),
    )

    def __init__(
        self, layer: TransactionLayer, request: Request, source: Address, key: tuple[str, ...]
    ) -> None:
        super().__init__(layer, request, source, key, S.PROCEEDING)
        self.timer_g: float | None = None
        self.timer_h: float | None = None
        self.timer_i: float | None = None
        self.timer_l: float | None = None

    def _classify(self, status: int) -> TransactionInput:
        if status < 200:
            return I.PROVISIONAL_FROM_TU
        return I.SUCCESS_FROM_TU if status < 300 else I.FAILURE_FROM_TU


def _ist_success(tx: InviteServerTransaction, message: Message | None, now: float) -> None:
    # RFC 6026 section 8.5: 2xx retransmission belongs to the TU; the transaction
    # waits in Accepted for Timer L, passing 2xx ACKs up and absorbing INVITEs.
    tx.state = S.ACCEPTED
    tx._send_response(message)
    tx._let_go_of_request()
    tx._arm("timer_l", now, tx._layer.config.timer_l)


def _ist_success_again(tx: InviteServerTransaction, message: Message | None, now: float) -> None:
    # The UA core retransmits its 2xx (section 13.3.1.4) through the transaction.
    tx._send_response(message)


def _ist_failure(tx: InviteServerTransaction, message: Message | None, now: float) -> None:
    tx.state = S.COMPLETED
    tx._send_response(message)
    tx._let_go_of_request()
    config = tx._layer.config
    if not tx.reliable:
        tx._interval = config.timer_g
        tx._arm("timer_g", now, config.timer_g)
    tx._arm("timer_h", now, config.timer_h)


def _ist_retransmit(tx: InviteServerTransaction, message: Message | None, now: float) -> None:
    # Section 17.2.1: Timer G doubles up to T2.
    tx._resend_last()
    tx._interval = min(2 * tx._interval, tx._layer.config.t2)
    tx._arm("timer_g", now, tx._interval)


def _ist_ack(tx: InviteServerTransaction, message: Message | None, now: float) -> None:
    tx.state = S.CONFIRMED
    tx.timer_g = tx.timer_h = None
    tx._arm("timer_i", now, tx._layer.config.timer_i(tx.reliable))


def _ist_ack_for_2xx(tx: InviteServerTransaction, message: Message | None, now: float) -> None:
    # RFC 6026 section 8.7: an ACK matching in Accepted goes to the TU.
    assert isinstance(message, Request)
    tx._layer._events.append(AckReceived(message, tx.source, tx))


def _ist_timeout(tx: InviteServerTransaction, message: Message | None, now: float) -> None:
    tx._timed_out("H")


def _ist_transport_error_accepted(
    tx: InviteServerTransaction, message: Message | None, now: float
) -> None:
    # Tell the TU (it will likely end the call) but keep absorbing INVITE
    # retransmissions until Timer L; RFC 6026 gives Accepted no error exit.
    tx._layer._events.append(TransportErrorOccurred(tx))


_IST_ALL_IGNORED: dict[TransactionInput, Handler] = {
    I.REQUEST_RECEIVED: ignore,
    I.ACK_RECEIVED: ignore,
    I.PROVISIONAL_FROM_TU: ignore,
    I.SUCCESS_FROM_TU: ignore,
    I.FAILURE_FROM_TU: ignore,
    I.TIMER_G: ignore,
    I.TIMER_H: ignore,
    I.TIMER_I: ignore,
    I.TIMER_L: ignore,
    I.TRANSPORT_ERROR: ignore,
}
_IST_NO_MORE_RESPONSES: dict[TransactionInput, Handler] = {
    I.PROVISIONAL_FROM_TU: reject,
    I.SUCCESS_FROM_TU: reject,
    I.FAILURE_FROM_TU: reject,
}

InviteServerTransaction.STATES = (
    S.PROCEEDING,
    S.COMPLETED,
    S.CONFIRMED,
    S.ACCEPTED,
    S.TERMINATED,
)
InviteServerTransaction.INPUTS = tuple(_IST_ALL_IGNORED)
InviteServerTransaction.TRANSITIONS = {
    S.PROCEEDING: {
        **_IST_ALL_IGNORED,
        I.REQUEST_RECEIVED: _resend,  # the last provisional, if any
        I.PROVISIONAL_FROM_TU: _send_provisional,
        I.SUCCESS_FROM_TU: _ist_success,
        I.FAILURE_FROM_TU: _ist_failure,
        I.TRANSPORT_ERROR: _transport_error,
    },
    S.COMPLETED: {
        **_IST_ALL_IGNORED,
        **_IST_NO_MORE_RESPONSES,
        I.REQUEST_RECEIVED: _resend,
        I.ACK_RECEIVED: _ist_ack,
        I.TIMER_G: _ist_retransmit,
        I.TIMER_H: _ist_timeout,
        I.TRANSPORT_ERROR: _transport_error,
    },
    # Confirmed absorbs ACK and INVITE retransmissions until Timer I.
    S.CONFIRMED: {**_IST_ALL_IGNORED, **_IST_NO_MORE_RESPONSES, I.TIMER_I: _end},
    S.ACCEPTED: {
        **_IST_ALL_IGNORED,
        **_IST_NO_MORE_RESPONSES,
        I.ACK_RECEIVED: _ist_ack_for_2xx,
        I.SUCCESS_FROM_TU: _ist_success_again,
        I.TIMER_L: _end,
        I.TRANSPORT_ERROR: _ist_transport_error_accepted,
    },
    S.TERMINATED: dict(_IST_ALL_IGNORED),
}


# --- non-INVITE server (RFC 3261 figure 8) --------------------------------------


class NonInviteServerTransaction(ServerTransaction):
    """Non-INVITE server: Trying, Proceeding, Completed, Terminated."""

    __slots__ = ("timer_j",)

    TIMERS: ClassVar[tuple[tuple[str, TransactionInput], ...]] = (("timer_j", I.TIMER_J),)

    def __init__(
        self, layer: TransactionLayer, request: Request, source: Address, key: tuple[str, ...]
    ) -> None:
        super().__init__(layer, request, source, key, S.TRYING)
        self.timer_j: float | None = None

    def _classify(self, status: int) -> TransactionInput:
        return I.PROVISIONAL_FROM_TU if status < 200 else I.FINAL_FROM_TU


def _nist_final(tx: NonInviteServerTransaction, message: Message | None, now: float) -> None:
    tx.state = S.COMPLETED
    tx._send_response(message)
    tx._let_go_of_request()
    tx._arm("timer_j", now, tx._layer.config.timer_j(tx.reliable))


_NIST_ALL_IGNORED: dict[TransactionInput, Handler] = {
    I.REQUEST_RECEIVED: ignore,
    I.PROVISIONAL_FROM_TU: ignore,
    I.FINAL_FROM_TU: ignore,
    I.TIMER_J: ignore,
    I.TRANSPORT_ERROR: ignore,
}
_NIST_WAITING: dict[TransactionInput, Handler] = {
    **_NIST_ALL_IGNORED,
    I.PROVISIONAL_FROM_TU: _send_provisional,
    I.FINAL_FROM_TU: _nist_final,
    I.TRANSPORT_ERROR: _transport_error,
}

NonInviteServerTransaction.STATES = (S.TRYING, S.PROCEEDING, S.COMPLETED, S.TERMINATED)
NonInviteServerTransaction.INPUTS = tuple(_NIST_ALL_IGNORED)
NonInviteServerTransaction.TRANSITIONS = {
    # Trying has nothing to resend yet, so a retransmitted request is absorbed.
    S.TRYING: _NIST_WAITING,
    S.PROCEEDING: {**_NIST_WAITING, I.REQUEST_RECEIVED: _resend},
    S.COMPLETED: {
        **_NIST_ALL_IGNORED,
        I.REQUEST_RECEIVED: _resend,
        I.PROVISIONAL_FROM_TU: reject,
        I.FINAL_FROM_TU: reject,
        I.TIMER_J: _end,
        I.TRANSPORT_ERROR: _transport_error,
    },
    S.TERMINATED: dict(_NIST_ALL_IGNORED),
}
