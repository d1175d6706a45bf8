"""The transaction layer: owns every transaction, matches messages, keeps one timer heap.

Usage (an asyncio adapter and the call engine follow the same loop)::

    layer = TransactionLayer(TimerConfig())
    events = layer.receive(parse_message(data), source, now=loop.time())
    for event in events: ...            # RequestReceived, ResponseReceived, ...
    tx = layer.send_request(invite, destination, now=loop.time())
    server_tx.respond(make_response(request, 180), now=loop.time())
    layer.send_stateless(ack_for_2xx, destination)   # outside any transaction
    for send in layer.drain_outgoing(): transport.write(send.data, send.destination)
    deadline = layer.next_deadline()    # re-arm one loop.call_at(deadline, ...)
    events = layer.handle_timers(now=loop.time())

Sends go to one outgoing queue; TU events come back from `receive`,
`handle_timers` and `report_transport_error`. A transaction keeps one entry
`(deadline, seq, transaction)` on one heap, at or before its earliest running
timer (`_wake`): arming a later timer pushes nothing, and a stopped timer is
never searched for. When the entry pops, the due timers fire and one entry is
pushed for the next running timer. Stale entries (superseded by an earlier
one, or of a terminated transaction) are skipped when popped, and the heap is
rebuilt when dead ones pile up.
"""

from __future__ import annotations

import heapq
import itertools

from b2bua.sip.address import Address
from b2bua.sip.errors import TransactionError
from b2bua.sip.message import Request, Response
from b2bua.sip.timers import DEFAULT_TIMERS, TimerConfig
from b2bua.sip.transaction_base import (
    MAGIC_COOKIE,
    AckReceived,
    Event,
    RequestReceived,
    Send,
    StrayResponseReceived,
    Transaction,
    TransactionInput,
    TransactionState,
    TransactionTerminated,
)
from b2bua.sip.transaction_client import (
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
)
from b2bua.sip.transaction_server import (
    InviteServerTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
)

_TERMINATED = TransactionState.TERMINATED
_COMPACT_AT = 1024  # rebuild the heap once this many entries belong to dead transactions


def _server_key(request: Request, method: str) -> tuple[str, ...]:
    """Section 17.2.3 matching key; `method` is INVITE for an ACK or a CANCEL look-up."""
    via = request.top_via
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return (branch, via.sent_by, method)
    # RFC 2543 peers: no usable branch, so match on the dialog-ish fields instead.
    # The To tag is left out because the INVITE has none and its ACK has one.
    return (
        branch or "",
        via.sent_by,
        method,
        request.call_id,
        request.from_tag or "",
        str(request.cseq.number),
    )


class TransactionLayer:
    """Every live transaction, its matching tables, and one deadline heap."""

    __slots__ = (
        "_clients",
        "_events",
        "_heap",
        "_last_key",
        "_outgoing",
        "_seq",
        "_servers",
        "_stale",
        "config",
        "retransmissions",
        "timeouts",
    )

    def __init__(self, config: TimerConfig = DEFAULT_TIMERS) -> None:
        self.config = config
        self._clients: dict[tuple[str, ...], ClientTransaction] = {}
        self._servers: dict[tuple[str, ...], ServerTransaction] = {}
        self._heap: list[tuple[float, int, Transaction]] = []
        self._last_key: tuple[Request, tuple[str, ...]] | None = None  # see has_server
        self._seq = itertools.count()
        self._stale = 0
        self._outgoing: list[Send] = []
        self._events: list[Event] = []
        self.retransmissions = 0  # requests, responses and ACKs sent again
        self.timeouts = 0  # Timer B, F and H expiries

    # --- public API -----------------------------------------------------------

    @property
    def live_count(self) -> int:
        """How many transactions are not yet terminated."""
        return len(self._clients) + len(self._servers)

    def send_request(
        self,
        request: Request,
        destination: Address,
        *,
        now: float,
        reliable: bool | None = None,
    ) -> ClientTransaction:
        """Start a client transaction for `request` and queue its first Send.

        The request must already carry the TU's top Via with a branch from
        `new_branch`. `reliable` defaults to what `destination.transport` says.
        ACK is never sent through a transaction (ACK for non-2xx is generated
        by the INVITE client transaction; ACK for 2xx is sent by the UA core).
        """
        method = request.method
        if method == "ACK":
            raise TransactionError("ACK does not start a client transaction")
        branch = request.top_via.branch
        if not branch:
            raise TransactionError("request has no Via branch; add one with new_branch()")
        key = (branch, method)
        if key in self._clients:
            raise TransactionError(f"a client transaction with branch {branch} exists")
        if reliable is None:
            reliable = destination.reliable
        transaction: ClientTransaction
        if method == "INVITE":
            transaction = InviteClientTransaction(
                self, request, destination, key, reliable, now=now
            )
        else:
            transaction = NonInviteClientTransaction(
                self, request, destination, key, reliable, now=now
            )
        self._clients[key] = transaction
        return transaction

    def receive(self, message: Request | Response, source: Address, *, now: float) -> list[Event]:
        """Match an incoming message to its transaction and return the TU events.

        A new request (not ACK) creates a server transaction, reported as
        `RequestReceived`; retransmissions are absorbed. An unmatched ACK
        becomes `AckReceived` with no transaction, an unmatched response
        `StrayResponseReceived`. Messages from `parse_message` have a valid top
        Via and CSeq; a pre-RFC 3261 request (no magic cookie) is also matched
        on Call-ID and From tag, and a malformed one raises ParseError here.
        """
        if isinstance(message, Response):
            self._receive_response(message, source, now)
        else:
            self._receive_request(message, source, now)
        return self._take_events()

    def find_invite_server_for_cancel(self, cancel: Request) -> InviteServerTransaction | None:
        """The INVITE server transaction a CANCEL targets (section 9.2), if still live."""
        transaction = self._servers.get(_server_key(cancel, "INVITE"))
        return transaction if isinstance(transaction, InviteServerTransaction) else None

    def has_server(self, request: Request) -> bool:
        """Whether a live server transaction matches `request` (a retransmission)."""
        key = _server_key(request, request.method)
        # Admission control asks just before `receive` looks the same request up.
        self._last_key = (request, key)
        return key in self._servers

    def find_client(self, branch: str, method: str) -> ClientTransaction | None:
        """The live client transaction with this branch and method (section 17.1.3)."""
        return self._clients.get((branch, method))

    def next_deadline(self) -> float | None:
        """When `handle_timers` next has work, or None; arm one loop timer for it."""
        heap = self._heap
        while heap:
            deadline, _, transaction = heap[0]
            if transaction.state is _TERMINATED:
                self._stale -= 1
            elif transaction._wake == deadline:
                running = transaction.next_deadline()
                if running is not None and running <= deadline:
                    return deadline
                # Its timers were stopped since (a provisional stops Timer A and
                # B): move the entry to the earliest one still running, if any,
                # instead of waking up for nothing.
                heapq.heappop(heap)
                transaction._heap_entries -= 1
                transaction._wake = None
                if running is not None:
                    transaction._wake = running
                    self._schedule(running, transaction)
                continue
            heapq.heappop(heap)
            transaction._heap_entries -= 1
        return None

    def handle_timers(self, *, now: float) -> list[Event]:
        """Fire every timer due at `now` and return the TU events that follow."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, transaction = heapq.heappop(heap)
            transaction._heap_entries -= 1
            if transaction.state is _TERMINATED:
                self._stale -= 1
            elif transaction._wake == deadline:
                transaction._wake = None
                transaction.handle_timer(now=now)
                if transaction.state is not _TERMINATED:
                    running = transaction.next_deadline()
                    wake = transaction._wake
                    if running is not None and (wake is None or running < wake):
                        transaction._wake = running
                        self._schedule(running, transaction)
        return self._take_events()

    def report_transport_error(self, transaction: Transaction, *, now: float) -> list[Event]:
        """The transport failed to carry one of `transaction`'s Sends (section 17.1.4, 17.2.4)."""
        transaction.dispatch(TransactionInput.TRANSPORT_ERROR, None, now=now)
        return self._take_events()

    def terminate(self, transaction: Transaction) -> None:
        """Destroy a transaction at the TU's request, without an event.

        For an INVITE client still Proceeding 64*T1 after its CANCEL (section
        9.1), or a server transaction whose request the TU chose to drop.
        """
        if transaction.state is not _TERMINATED:
            transaction._let_go_of_request()
            transaction.state = _TERMINATED
            transaction._stop_timers()
            self._forget(transaction, report=False)

    def send_stateless(self, message: Request | Response, destination: Address) -> None:
        """Queue a message that belongs to no transaction: the ACK for a 2xx
        (section 13.2.2.4), or a 2xx retransmission after its transaction ended."""
        self._outgoing.append(Send(message.to_bytes(), destination, None))

    def drain_outgoing(self) -> list[Send]:
        """Take every queued Send, oldest first."""
        outgoing = self._outgoing
        self._outgoing = []
        return outgoing

    # --- matching -------------------------------------------------------------

    def _receive_response(self, response: Response, source: Address, now: float) -> None:
        branch = response.top_via.branch
        transaction = self._clients.get((branch, response.cseq.method)) if branch else None
        if transaction is None:
            self._events.append(StrayResponseReceived(response, source))
        else:
            transaction.receive_response(response, now=now)

    def _receive_request(self, request: Request, source: Address, now: float) -> None:
        method = request.method
        is_ack = method == "ACK"
        last = self._last_key
        if last is not None and last[0] is request and not is_ack:
            key = last[1]
        else:
            key = _server_key(request, "INVITE" if is_ack else method)
        self._last_key = None
        transaction = self._servers.get(key)
        if transaction is not None:
            transaction.receive_request(request, now=now)
        elif is_ack:
            self._events.append(AckReceived(request, source, None))
        else:
            if method == "INVITE":
                transaction = InviteServerTransaction(self, request, source, key)
            else:
                transaction = NonInviteServerTransaction(self, request, source, key)
            self._servers[key] = transaction
            self._events.append(RequestReceived(request, transaction, source))

    # --- called by transactions -----------------------------------------------

    def _schedule(self, deadline: float, transaction: Transaction) -> None:
        heapq.heappush(self._heap, (deadline, next(self._seq), transaction))
        transaction._heap_entries += 1

    def _forget(self, transaction: Transaction, *, report: bool) -> None:
        table: dict[tuple[str, ...], ClientTransaction] | dict[tuple[str, ...], ServerTransaction]
        table = self._clients if isinstance(transaction, ClientTransaction) else self._servers
        if table.get(transaction.key) is transaction:
            del table[transaction.key]
        if report:
            self._events.append(TransactionTerminated(transaction))
        self._stale += transaction._heap_entries
        if self._stale > _COMPACT_AT and 2 * self._stale > len(self._heap):
            self._compact()

    def _compact(self) -> None:
        live = [entry for entry in self._heap if entry[2].state is not _TERMINATED]
        for entry in self._heap:
            if entry[2].state is _TERMINATED:
                entry[2]._heap_entries = 0
        heapq.heapify(live)
        self._heap = live
        self._stale = 0

    def _take_events(self) -> list[Event]:
        events = self._events
        self._events = []
        return events
