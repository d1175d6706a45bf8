"""The B2BUA engine: the transaction user above `b2bua.sip`, sans-IO.

Parsed messages and `now` go in (`receive`, `handle_timers`); datagrams to send
come out (`drain`), call events go to the injected sink, and `next_deadline`
says when to call again. Randomness (tags, branches, Call-IDs) and the wall
clock (binding expiry, record times) are injected, so tests are deterministic.

The engine owns the calls and the lookup tables that find a call from a
message; what a call does next is decided by the table in `handlers.py`.
Requests outside any dialog (admission, the INVITE that starts a call, CANCEL,
OPTIONS and refusals) are handled in `engine_requests.py`, what is done to a
call's legs in `engine_legs.py`; both are mixins of `CallEngine`.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from b2bua.calls.admission import Admission
from b2bua.calls.call import Call, CallInput, CallState
from b2bua.calls.dialog import LocalEndpoint, to_tag_response
from b2bua.calls.engine_legs import LegsMixin
from b2bua.calls.engine_requests import ALWAYS_ADMITTED, RequestsMixin
from b2bua.calls.events import (
    CallEvent,
    CallEventSink,
    EndReason,
    ReleasedBy,
)
from b2bua.calls.handlers import TRANSITIONS
from b2bua.calls.routing import (
    Router,
    TrunkState,
    TrunkTable,
)
from b2bua.calls.settings import EngineCounters, EngineSettings
from b2bua.sip.address import Address
from b2bua.sip.errors import ParseError, TransactionError
from b2bua.sip.headers import Headers
from b2bua.sip.message import Request, Response, make_response
from b2bua.sip.transaction import TransactionLayer
from b2bua.sip.transaction_base import (
    AckReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    StrayResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
    new_branch,
)
from b2bua.sip.transaction_client import ClientTransaction
from b2bua.sip.transaction_server import InviteServerTransaction, ServerTransaction


class CallEngine(RequestsMixin, LegsMixin):
    """Translates and bridges calls to middle numbers. See the module docstring."""

    def __init__(
        self,
        settings: EngineSettings,
        router: Router,
        sink: CallEventSink,
        *,
        random: Callable[[], str],
        wall_clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.router = router
        self.sink = sink
        self.random = random
        self.wall_clock = wall_clock
        self.layer = TransactionLayer(settings.timers)
        self.trunks = TrunkTable.from_trunks(settings.trunks)
        self.counters = EngineCounters()
        self.calls: dict[str, Call] = {}
        self.calls_by_a: dict[tuple[str, str], Call] = {}
        self.calls_by_b: dict[tuple[str, str], Call] = {}
        self.calls_by_invite: dict[InviteServerTransaction, Call] = {}
        # INVITE server transactions of ended calls, still absorbing retransmissions:
        # the To tag a late CANCEL's 200 carries. The call itself is let go at its end.
        self.ended_call_tags: dict[InviteServerTransaction, str] = {}
        self.client_purposes: dict[ClientTransaction, tuple[Call | None, str]] = {}
        self.keepalives: dict[ClientTransaction, TrunkState] = {}
        self.cancel_on_provisional: set[ClientTransaction] = set()
        self.outgoing: list[tuple[bytes, Address]] = []
        self.current_server_transaction: ServerTransaction | None = None
        # Call deadlines as (deadline, seq, call id): an entry names the call rather
        # than holding it, so an ended call is freed at once, not when its entry pops.
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._next_keepalive: float | None = None
        self.draining = False
        self.admission = Admission(
            max_transactions=settings.max_transactions, per_source_rps=settings.per_source_rps
        )

    # --- the adapter's side -------------------------------------------------------

    def receive(self, message: Request | Response, source: Address, *, now: float) -> None:
        """Feed one parsed message from `source`."""
        if self.trunks.trunk_for_source(source.host) is None:
            self.counters.untrusted_requests += 1
            if (
                isinstance(message, Request)
                and message.method != "ACK"
                and self.settings.untrusted_action == "reject"
            ):
                self.send_now(make_response(message, 403, to_tag=self.random()), source)
            return
        counters = self.counters
        if isinstance(message, Request):
            method = message.method
            methods = counters.requests_by_method
            methods[method] = methods.get(method, 0) + 1
            try:
                # Every request we act on needs them; a malformed one gets 400 now
                # (the parses are cached, so this costs nothing extra later).
                message.from_tag  # noqa: B018
                message.to_tag  # noqa: B018
                if method not in ALWAYS_ADMITTED and not self._admit(message, source, now):
                    return
                events = self.layer.receive(message, source, now=now)
            except ParseError as error:
                # A lazily parsed header (From, To) is malformed: 400 for a request.
                counters.malformed += 1
                if method != "ACK":
                    warning = [("Warning", _warning_value(error.reason))]
                    self.send_now(make_response(message, 400, extra=warning), source)
                return
        else:
            statuses = counters.responses_by_status
            statuses[message.status] = statuses.get(message.status, 0) + 1
            try:
                events = self.layer.receive(message, source, now=now)
            except ParseError:
                counters.malformed += 1
                return
        if events:
            self._handle(events, now)

    def handle_timers(self, *, now: float) -> None:
        """Fire transaction timers, call timers and trunk keepalives due at `now`."""
        self._handle(self.layer.handle_timers(now=now), now)
        heap = self._heap
        calls = self.calls
        while heap and heap[0][0] <= now:
            deadline, _, call_id = heapq.heappop(heap)
            call = calls.get(call_id)
            if call is not None and call.heap_deadline == deadline:
                call.heap_deadline = None
                self._fire_call_timers(call, now)
                self.reschedule(call)
        if self._next_keepalive is None:
            self._next_keepalive = now + self.settings.keepalive_interval_s
        elif now >= self._next_keepalive:
            self._next_keepalive = now + self.settings.keepalive_interval_s
            self._send_keepalives(now)
            self._handle([], now)

    def next_deadline(self) -> float | None:
        """When `handle_timers` next has work."""
        heap = self._heap
        calls = self.calls
        while heap:
            call = calls.get(heap[0][2])
            if call is not None and call.heap_deadline == heap[0][0]:
                break
            heapq.heappop(heap)
        # Asked after every message: plain comparisons, no list or generator.
        deadline = self.layer.next_deadline()
        keepalive = self._next_keepalive
        if keepalive is not None and (deadline is None or keepalive < deadline):
            deadline = keepalive
        if heap and (deadline is None or heap[0][0] < deadline):
            deadline = heap[0][0]
        return deadline

    def drain(self) -> list[tuple[bytes, Address]]:
        """Take every datagram to send, in order."""
        out = self.outgoing
        self.outgoing = []
        out.extend([(send.data, send.destination) for send in self.layer.drain_outgoing()])
        return out

    def begin_drain(self) -> None:
        """Stop taking new calls (503 with Retry-After); calls in progress go on."""
        self.draining = True

    def end_all(self, *, now: float) -> None:
        """End every call now (shutdown after the drain period): BYE or 503 both legs."""
        for call in list(self.calls.values()):
            if call.state is CallState.CONNECTED:
                self.end_connected(call, EndReason.INTERRUPTED, ReleasedBy.SERVER, now=now)
            else:
                self.abandon_outbound(call, now=now)
                extra = [("Retry-After", str(self.settings.retry_after_s))]
                self.fail_call(
                    call, 503, EndReason.INTERRUPTED, ReleasedBy.SERVER, now=now, extra=extra
                )

    @property
    def active_calls(self) -> int:
        """Calls registered now (answered or not)."""
        return len(self.calls)

    # --- events from the transaction layer ------------------------------------------

    def _handle(self, events: list[Event], now: float) -> None:
        for event in events:
            try:
                self._handle_one(event, now)
            except ParseError as error:
                # A header read lazily turned out malformed: answer 400 when we can.
                self.counters.malformed += 1
                if isinstance(event, RequestReceived) and event.request.method != "ACK":
                    warning = [("Warning", _warning_value(error.reason))]
                    response = make_response(event.request, 400, extra=warning)
                    self._respond(event.transaction, response, now)

    def _handle_one(self, event: Event, now: float) -> None:
        # Exact type tests, most frequent first: cheaper than a chain of isinstance.
        if type(event) is RequestReceived:
            self._on_request(event.request, event.transaction, event.source, now)
        elif type(event) is ResponseReceived:
            self._on_response(event.response, event.transaction, now)
        elif type(event) is TransactionTerminated:
            self._on_terminated(event.transaction)
        elif type(event) is AckReceived:
            self._on_ack(event.request, now)
        elif type(event) is StrayResponseReceived:
            self._on_stray_response(event.response, event.source, now)
        elif type(event) is TransactionTimedOut or type(event) is TransportErrorOccurred:
            self._on_client_failure(event.transaction, now)

    def _on_in_dialog_request(
        self, request: Request, transaction: ServerTransaction, to_tag: str, now: float
    ) -> None:
        call_id = request.call_id
        call = self.calls_by_a.get((call_id, to_tag))
        from_caller = call is not None
        if call is None:
            call = self.calls_by_b.get((call_id, to_tag))
        if call is None:
            self._respond(transaction, make_response(request, 481), now)
            return
        dialog = call.a_dialog if from_caller else call.b_dialog
        if dialog is not None:
            cseq = request.cseq.number
            if dialog.remote_cseq is not None and cseq < dialog.remote_cseq:
                # RFC 3261 section 12.2.2: an out-of-order request gets 500.
                self._respond(transaction, make_response(request, 500), now)
                return
            dialog.remote_cseq = cseq
        if request.method == "BYE":
            event = CallInput.CALLER_HUNG_UP if from_caller else CallInput.CALLEE_HUNG_UP
        else:
            event = CallInput.CALLER_REQUEST if from_caller else CallInput.CALLEE_REQUEST
        self.current_server_transaction = transaction
        try:
            self.dispatch(call, event, request, now)
        finally:
            self.current_server_transaction = None

    def _on_response(self, response: Response, transaction: ClientTransaction, now: float) -> None:
        if transaction in self.keepalives:
            if response.status >= 200:
                self.keepalives.pop(transaction).up = True
            return
        owner = self.client_purposes.get(transaction)
        if owner is None:
            return
        call, purpose = owner
        if call is not None and purpose == "invite" and transaction is call.b_transaction:
            status = response.status
            if status < 200:
                event = CallInput.PROVISIONAL
            elif status < 300:
                event = CallInput.ANSWERED
            else:
                event = CallInput.REFUSED
            self.dispatch(call, event, response, now)
        elif purpose in ("invite", "abandoned"):
            self._on_abandoned_response(transaction, response, now)
        elif purpose == "relay" and call is not None:
            self.relay_response(call, transaction, response, now=now)

    def _on_abandoned_response(
        self, transaction: ClientTransaction, response: Response, now: float
    ) -> None:
        """A response on an outbound leg nobody wants any more (hunt, ring timeout, CANCEL)."""
        status = response.status
        if status < 200:
            # Any provisional, 100 Trying included, allows the CANCEL (RFC 3261
            # section 9.1); waiting for an 18x could leave the callee ringing.
            if transaction in self.cancel_on_provisional:
                self.cancel_on_provisional.discard(transaction)
                self.send_cancel(transaction, now=now)
        elif status < 300:
            self.ack_and_bye(transaction.request, response, transaction.destination, now=now)

    def _on_ack(self, ack: Request, now: float) -> None:
        to_tag = ack.to_tag
        if not to_tag:
            return
        key = (ack.call_id, to_tag)
        call = self.calls_by_a.get(key)
        if call is not None:
            if ack.cseq.number == call.a_invite.cseq.number:
                self.dispatch(call, CallInput.CALLER_ACKED, ack, now)
            else:
                self.relay_ack(call, ack, from_caller=True)
            return
        call = self.calls_by_b.get(key)
        if call is not None:
            self.relay_ack(call, ack, from_caller=False)

    def _on_stray_response(self, response: Response, source: Address, now: float) -> None:
        """A 2xx to INVITE after its transaction ended: the callee lost our ACK, or a late fork."""
        if response.cseq.method != "INVITE" or not 200 <= response.status < 300:
            return
        self.counters.stray_answers += 1
        from_tag = response.from_tag or ""
        call = self.calls_by_b.get((response.call_id, from_tag))
        if (
            call is not None
            and call.b_ack is not None
            and call.b_dialog is not None
            and response.to_tag == call.b_dialog.remote_tag
        ):
            self.queue_raw(*call.b_ack)

    def _on_client_failure(self, transaction: object, now: float) -> None:
        if isinstance(transaction, ClientTransaction) and transaction in self.keepalives:
            self.keepalives.pop(transaction).up = False
            return
        owner = (
            self.client_purposes.get(transaction)
            if isinstance(transaction, ClientTransaction)
            else None
        )
        if owner is None:
            return
        call, purpose = owner
        if call is None:
            return
        if purpose == "invite" and transaction is call.b_transaction:
            self.dispatch(call, CallInput.NO_RESPONSE, None, now)
        elif purpose == "relay" and isinstance(transaction, ClientTransaction):
            self.relay_failed(call, transaction, now=now)

    def _on_terminated(self, transaction: object) -> None:
        if isinstance(transaction, ClientTransaction):
            self.client_purposes.pop(transaction, None)
            self.keepalives.pop(transaction, None)
            self.cancel_on_provisional.discard(transaction)
        elif isinstance(transaction, InviteServerTransaction):
            self.calls_by_invite.pop(transaction, None)
            self.ended_call_tags.pop(transaction, None)

    # --- the state machine and its timers ---------------------------------------

    def dispatch(
        self, call: Call, event: CallInput, message: Request | Response | None, now: float
    ) -> None:
        """Run the handler the table names for `(call.state, event)`."""
        TRANSITIONS[call.state][event](self, call, message, now)
        self.reschedule(call)

    def reschedule(self, call: Call) -> None:
        """Push the call's earliest deadline on the heap if it changed."""
        deadline = call.next_deadline() if call.state is not CallState.ENDED else None
        if deadline is not None and deadline != call.heap_deadline:
            heapq.heappush(self._heap, (deadline, next(self._seq), call.id))
        call.heap_deadline = deadline

    def _fire_call_timers(self, call: Call, now: float) -> None:
        # Due timers fire in deadline order, so a loop that wakes up late still
        # ends the call for the reason that came first (max duration before the
        # ACK timeout, say); the table order only breaks ties.
        due = sorted(
            (deadline, order, name, event)
            for order, (name, event) in enumerate(_CALL_TIMERS)
            if (deadline := getattr(call, name)) is not None and deadline <= now
        )
        for deadline, _, name, event in due:
            if call.state is CallState.ENDED:
                break
            if getattr(call, name) != deadline:
                continue  # an earlier handler stopped or moved this timer
            setattr(call, name, None)
            TRANSITIONS[call.state][event](self, call, None, now)

    def _send_keepalives(self, now: float) -> None:
        for state in self.trunks.states:
            if any(pending is state for pending in self.keepalives.values()):
                continue
            address = state.trunk.address
            local = self.endpoint(address.transport)
            headers = Headers(
                [
                    ("Via", local.via(new_branch(self.random))),
                    ("Max-Forwards", "70"),
                    ("From", f"<sip:keepalive@{local.host}>;tag={self.random()}"),
                    ("To", f"<sip:{address.host}:{address.port}>"),
                    ("Call-ID", f"{self.random()}@{local.host}"),
                    ("CSeq", "1 OPTIONS"),
                ]
            )
            request = Request("OPTIONS", f"sip:{address.host}:{address.port}", headers)
            transaction = self.layer.send_request(request, address, now=now)
            self.keepalives[transaction] = state

    # --- small helpers used by the legs -------------------------------------------

    def endpoint(self, transport: str) -> LocalEndpoint:
        """Our Via/Contact identity on `transport` (UDP when that is all we listen on)."""
        local = self.settings.endpoints.get(transport)
        if local is None:
            local = next(iter(self.settings.endpoints.values()))
        return local

    def send_now(self, message: Request | Response, destination: Address) -> None:
        """Queue a message that belongs to no transaction (2xx resends, ACK for 2xx)."""
        self.queue_raw(message.to_bytes(), destination)

    def queue_raw(self, data: bytes, destination: Address) -> None:
        """Queue bytes outside any transaction, after whatever the layer queued before.

        The layer's sends are moved over first so that `drain` keeps wire order:
        an ACK queued before a BYE must leave before it (RFC 3261 section 15).
        """
        self.outgoing.extend([(s.data, s.destination) for s in self.layer.drain_outgoing()])
        self.outgoing.append((data, destination))

    def _respond(
        self,
        transaction: ServerTransaction,
        response: Response,
        now: float,
        data: bytes | None = None,
    ) -> None:
        try:
            transaction.respond(response, now=now, data=data)
        except TransactionError:
            pass  # the transaction already ended (Timer L, transport error): nothing to answer

    respond = _respond

    def finish(self, call: Call) -> None:
        """Unregister an ended call; transactions still in flight clean up after it."""
        call.state = CallState.ENDED
        call.stop_timers()
        call.heap_deadline = None
        self.calls.pop(call.id, None)
        self.calls_by_a.pop((call.a_dialog.call_id, call.a_dialog.local_tag), None)
        for key in call.b_dialog_keys:
            self.calls_by_b.pop(key, None)
        call.b_dialog_keys.clear()
        self.release_trunk(call)
        # Transactions that still wait for retransmissions must not keep the call
        # (and every message it holds) alive: what they may still need is kept apart.
        b_transaction = call.b_transaction
        if b_transaction is not None:
            owner = self.client_purposes.get(b_transaction)
            if owner is not None and owner[0] is call and owner[1] == "invite":
                # Its late responses reach an ended call, whose table ignores them all.
                self.client_purposes[b_transaction] = _ENDED
        if self.calls_by_invite.pop(call.a_transaction, None) is call:
            self.ended_call_tags[call.a_transaction] = call.a_dialog.local_tag

    def emit(self, event: CallEvent) -> None:
        """Hand a call event to the sink."""
        self.sink.emit(event)


# The purpose of an ended call's outbound INVITE transaction: nothing to do.
_ENDED: tuple[Call | None, str] = (None, "ended")

# Call timers: the Call attribute holding each deadline and the input it fires.
_CALL_TIMERS: tuple[tuple[str, CallInput], ...] = (
    ("ring_deadline", CallInput.RING_TIMEOUT),
    ("ack_deadline", CallInput.ACK_TIMEOUT),
    ("retransmit_deadline", CallInput.RETRANSMIT_2XX),
    ("max_duration_deadline", CallInput.MAX_DURATION),
    ("session_deadline", CallInput.SESSION_EXPIRED),
)


def _warning_value(reason: str) -> str:
    """A Warning header (RFC 3261 section 20.43) telling the peer what we disliked."""
    text = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "?" for c in reason)
    return f'399 b2bua "{text[:120]}"'


__all__ = ["CallEngine", "EngineSettings", "to_tag_response"]
