"""The B2BUA engine: the transaction user above `b2bua.sip`, sans-IO.

Parsed messages and `now` go in (`receive`, `handle_timers`); datagrams to send
come out (`drain`), call events go to the injected sink, and `next_deadline`
says when to call again. Randomness (tags, branches, Call-IDs) and the wall
clock (binding expiry, record times) are injected, so tests are deterministic.

The engine owns the calls and the lookup tables that find a call from a
message; what a call does next is decided by the table in `handlers.py`.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from b2bua.calls.admission import Admission, overload_response
from b2bua.calls.call import Call, CallInput, CallState
from b2bua.calls.dialog import Dialog, LocalEndpoint, to_tag_response
from b2bua.calls.engine_legs import LegsMixin
from b2bua.calls.events import (
    CallAttempted,
    CallEnded,
    CallEvent,
    CallEventSink,
    EndReason,
    ReleasedBy,
)
from b2bua.calls.handlers import TRANSITIONS
from b2bua.calls.header_policy import protected_forms
from b2bua.calls.routing import (
    RouteDecision,
    Router,
    RouteRejection,
    TrunkState,
    TrunkTable,
    caller_number,
    uri_number,
)
from b2bua.calls.settings import EngineCounters, EngineSettings
from b2bua.sip.address import Address
from b2bua.sip.errors import ParseError, TransactionError
from b2bua.sip.headers import Headers, split_list
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

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, UPDATE, INFO"
SUPPORTED_TAGS = frozenset({"100rel", "timer"})
NOT_ALLOWED = frozenset({"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"})
IN_DIALOG_ONLY = frozenset({"BYE", "PRACK", "UPDATE", "INFO"})
# Requests that finish work in progress: never refused by admission control.
ALWAYS_ADMITTED = frozenset({"ACK", "CANCEL"})


class CallEngine(LegsMixin):
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
        self.client_purposes: dict[ClientTransaction, tuple[Call | None, str]] = {}
        self.keepalives: dict[ClientTransaction, TrunkState] = {}
        self.cancel_on_provisional: set[ClientTransaction] = set()
        self.outgoing: list[tuple[bytes, Address]] = []
        self.current_server_transaction: ServerTransaction | None = None
        self._heap: list[tuple[float, int, Call]] = []
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
        if isinstance(message, Request):
            methods = self.counters.requests_by_method
            methods[message.method] = methods.get(message.method, 0) + 1
        else:
            statuses = self.counters.responses_by_status
            statuses[message.status] = statuses.get(message.status, 0) + 1
        try:
            if isinstance(message, Request):
                # Every request we act on needs them; a malformed one gets 400 now
                # (the parses are cached, so this costs nothing extra later).
                message.from_addr  # noqa: B018
                message.to_addr  # noqa: B018
                if message.method not in ALWAYS_ADMITTED and not self._admit(message, source, now):
                    return
            events = self.layer.receive(message, source, now=now)
        except ParseError as error:
            # A lazily parsed header (From, To) is malformed: 400 if it was a request.
            self.counters.malformed += 1
            if isinstance(message, Request) and message.method != "ACK":
                warning = [("Warning", _warning_value(error.reason))]
                self.send_now(make_response(message, 400, extra=warning), source)
            return
        self._handle(events, now)

    def _admit(self, request: Request, source: Address, now: float) -> bool:
        """Admission control before any transaction exists (see calls/admission.py).

        A refused request gets a stateless 503 with Retry-After; retransmissions
        of admitted requests and in-dialog requests always pass.
        """
        admission = self.admission
        counters = self.counters
        within_rate = admission.source_allows(source.host, now=now)
        if request.to_addr.tag or self.layer.has_server(request):
            return True  # in-dialog, or a retransmission its transaction answers
        if not within_rate:
            counters.rate_limited += 1
        elif admission.transactions_full(self.layer.live_count):
            counters.transaction_limit_rejections += 1
        elif request.method == "INVITE" and admission.sheds_invite():
            counters.shed_rejections += 1
        else:
            return True
        counters.overload_rejections += 1
        self.send_now(overload_response(request, self.settings.retry_after_s), source)
        return False

    def handle_timers(self, *, now: float) -> None:
        """Fire transaction timers, call timers and trunk keepalives due at `now`."""
        self._handle(self.layer.handle_timers(now=now), now)
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, call = heapq.heappop(heap)
            if call.heap_deadline == deadline:
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
        candidates = [self._next_keepalive, self.layer.next_deadline()]
        heap = self._heap
        while heap and heap[0][2].heap_deadline != heap[0][0]:
            heapq.heappop(heap)
        if heap:
            candidates.append(heap[0][0])
        return min((c for c in candidates if c is not None), default=None)

    def drain(self) -> list[tuple[bytes, Address]]:
        """Take every datagram to send, in order."""
        out = self.outgoing
        self.outgoing = []
        out.extend((send.data, send.destination) for send in self.layer.drain_outgoing())
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
        if isinstance(event, RequestReceived):
            self._on_request(event.request, event.transaction, event.source, now)
        elif isinstance(event, ResponseReceived):
            self._on_response(event.response, event.transaction, now)
        elif isinstance(event, AckReceived):
            self._on_ack(event.request, now)
        elif isinstance(event, StrayResponseReceived):
            self._on_stray_response(event.response, event.source, now)
        elif isinstance(event, TransactionTimedOut | TransportErrorOccurred):
            self._on_client_failure(event.transaction, now)
        elif isinstance(event, TransactionTerminated):
            self._on_terminated(event.transaction)

    def _on_request(
        self, request: Request, transaction: ServerTransaction, source: Address, now: float
    ) -> None:
        method = request.method
        if method == "CANCEL":
            self._on_cancel(request, transaction, now)
            return
        to_tag = request.to_addr.tag
        if to_tag:
            self._on_in_dialog_request(request, transaction, to_tag, now)
            return
        unsupported = [
            tag
            for value in request.headers.get_all("require")
            for tag in split_list(value)
            if tag.lower() not in SUPPORTED_TAGS
        ]
        if unsupported:
            # RFC 3261 section 8.2.2.3: refuse what we cannot honour.
            extra = [("Unsupported", ", ".join(unsupported))]
            response = make_response(request, 420, to_tag=self.random(), extra=extra)
            self._respond(transaction, response, now)
        elif method == "INVITE":
            assert isinstance(transaction, InviteServerTransaction)
            self._on_invite(request, transaction, source, now)
        elif method == "OPTIONS":
            extra = [
                ("Allow", ALLOW),
                ("Accept", "application/sdp"),
                ("Supported", "100rel, timer"),
            ]
            self._respond(
                transaction, make_response(request, 200, to_tag=self.random(), extra=extra), now
            )
        elif method in NOT_ALLOWED:
            response = make_response(request, 405, to_tag=self.random(), extra=[("Allow", ALLOW)])
            self._respond(transaction, response, now)
        elif method in IN_DIALOG_ONLY:
            self._respond(transaction, make_response(request, 481, to_tag=self.random()), now)
        else:
            response = make_response(request, 501, to_tag=self.random(), extra=[("Allow", ALLOW)])
            self._respond(transaction, response, now)

    def _on_cancel(self, cancel: Request, transaction: ServerTransaction, now: float) -> None:
        invite_transaction = self.layer.find_invite_server_for_cancel(cancel)
        if invite_transaction is None:
            self._respond(transaction, make_response(cancel, 481, to_tag=self.random()), now)
            return
        call = self.calls_by_invite.get(invite_transaction)
        tag = call.a_dialog.local_tag if call is not None else self.random()
        self._respond(transaction, make_response(cancel, 200, to_tag=tag), now)
        if call is not None:
            self.dispatch(call, CallInput.CALLER_CANCELLED, cancel, now)

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

    def _on_invite(
        self,
        request: Request,
        transaction: InviteServerTransaction,
        source: Address,
        now: float,
    ) -> None:
        max_forwards = request.headers.get("max-forwards")
        if max_forwards is not None and max_forwards.strip() in ("0", ""):
            self._respond(transaction, make_response(request, 483, to_tag=self.random()), now)
            return
        if self.draining or len(self.calls) >= self.settings.max_calls:
            self.counters.overload_rejections += 1
            extra = [("Retry-After", str(self.settings.retry_after_s))]
            self._respond(
                transaction, make_response(request, 503, to_tag=self.random(), extra=extra), now
            )
            return
        caller = caller_number(request, trusted=True)
        dialled = uri_number(request.request_uri)
        wall_now = self.wall_clock()
        decision = self.router.route(caller, dialled, wall_now=wall_now)
        call_id = self.random()
        trunk_name = self.trunks.trunk_for_source(source.host)
        if isinstance(decision, RouteRejection):
            self._reject(
                request, transaction, source, decision, call_id, trunk_name, caller, dialled, now
            )
            return
        self._respond(transaction, make_response(request, 100), now)
        a_local = self.endpoint(source.transport)
        a_dialog = _caller_dialog(request, source, self.random())
        call = Call(
            id=call_id,
            route=decision,
            a_invite=request,
            a_transaction=transaction,
            a_source=source,
            a_local=a_local,
            a_dialog=a_dialog,
            inbound_trunk=trunk_name,
            started_at=now,
            protect_towards_callee=protected_forms(decision.caller or caller) + _raw_forms(caller),
            protect_towards_caller=tuple(
                form for target in decision.targets for form in protected_forms(target)
            ),
            caller_offered_sdp=bool(request.body),
        )
        self.calls[call_id] = call
        self.calls_by_a[(a_dialog.call_id, a_dialog.local_tag)] = call
        self.calls_by_invite[transaction] = call
        self.sink.emit(
            _attempted(call_id, wall_now, request, source, trunk_name, caller, dialled, decision)
        )
        self.start_outbound(call, first=True, now=now)
        self.reschedule(call)

    def _reject(
        self,
        request: Request,
        transaction: InviteServerTransaction,
        source: Address,
        rejection: RouteRejection,
        call_id: str,
        trunk_name: str | None,
        caller: str,
        dialled: str,
        now: float,
    ) -> None:
        extra = [("Reason", rejection.reason_header)] if rejection.reason_header else []
        response = make_response(request, rejection.status, to_tag=self.random(), extra=extra)
        self._respond(transaction, response, now)
        wall_now = self.wall_clock()
        self.sink.emit(
            _attempted(call_id, wall_now, request, source, trunk_name, caller, dialled, rejection)
        )
        self.sink.emit(
            CallEnded(call_id, wall_now, rejection.status, EndReason.REJECTED, ReleasedBy.SERVER)
        )

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
        to_tag = ack.to_addr.tag
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
        from_tag = response.from_addr.tag or ""
        call = self.calls_by_b.get((response.call_id, from_tag))
        if (
            call is not None
            and call.b_ack is not None
            and call.b_dialog is not None
            and response.to_addr.tag == call.b_dialog.remote_tag
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
            heapq.heappush(self._heap, (deadline, next(self._seq), call))
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
        self.outgoing.extend((s.data, s.destination) for s in self.layer.drain_outgoing())
        self.outgoing.append((data, destination))

    def _respond(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        try:
            transaction.respond(response, now=now)
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

    def emit(self, event: CallEvent) -> None:
        """Hand a call event to the sink."""
        self.sink.emit(event)


# Call timers: the Call attribute holding each deadline and the input it fires.
_CALL_TIMERS: tuple[tuple[str, CallInput], ...] = (
    ("ring_deadline", CallInput.RING_TIMEOUT),
    ("ack_deadline", CallInput.ACK_TIMEOUT),
    ("retransmit_deadline", CallInput.RETRANSMIT_2XX),
    ("max_duration_deadline", CallInput.MAX_DURATION),
    ("session_deadline", CallInput.SESSION_EXPIRED),
)


def _attempted(
    call_id: str,
    at: float,
    request: Request,
    source: Address,
    trunk_name: str | None,
    caller: str,
    dialled: str,
    route: RouteDecision | RouteRejection,
) -> CallAttempted:
    """The attempt event for a routed or a refused INVITE."""
    if isinstance(route, RouteRejection):
        return CallAttempted(
            call_id=call_id,
            at=at,
            inbound_call_id=request.call_id,
            source=source,
            inbound_trunk=trunk_name,
            caller=route.caller or caller,
            dialled=dialled,
            binding_id=None,
            tenant_id=None,
            order_id=None,
            mode=None,
            direction=None,
            middle_number=None,
            rejection=route.reason,
        )
    return CallAttempted(
        call_id=call_id,
        at=at,
        inbound_call_id=request.call_id,
        source=source,
        inbound_trunk=trunk_name,
        caller=route.caller or caller,
        dialled=dialled,
        binding_id=route.binding_id,
        tenant_id=route.tenant_id,
        order_id=route.order_id,
        mode=route.mode,
        direction=route.direction,
        middle_number=route.middle_number,
    )


def _warning_value(reason: str) -> str:
    """A Warning header (RFC 3261 section 20.43) telling the peer what we disliked."""
    text = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "?" for c in reason)
    return f'399 b2bua "{text[:120]}"'


def _raw_forms(caller: str) -> tuple[str, ...]:
    """The caller's number as it arrived, when it is long enough to be a number."""
    digits = caller.lstrip("+")
    return (digits,) if len(digits) >= 7 and digits.isdigit() else ()


def _caller_dialog(request: Request, source: Address, local_tag: str) -> Dialog:
    """The A-leg dialog as a UAS sees it after the INVITE (RFC 3261 section 12.1.1)."""
    from_value = request.headers.get("from") or ""
    to_value = request.headers.get("to") or ""
    dialog = Dialog(
        call_id=request.call_id,
        local_tag=local_tag,
        local_uri=to_value,
        remote_uri=_without_tag(from_value),
        local_cseq=0,
        remote_tag=request.from_addr.tag,
        remote_cseq=request.cseq.number,
        route_set=request.headers.get_all("record-route"),
        destination=source,
    )
    dialog.set_target_from(request)
    return dialog


def _without_tag(value: str) -> str:
    """A From/To value with its tag parameter removed (the dialog stores tags apart)."""
    parts = value.split(";")
    return ";".join(p for p in parts if not p.strip().lower().startswith("tag="))


__all__ = ["CallEngine", "EngineSettings", "to_tag_response"]
