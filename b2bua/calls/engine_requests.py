"""New requests: admission control, the INVITE that starts a call, CANCEL, and
every other request outside a dialog (OPTIONS, refusals with 405, 420, 481, 501).

A mixin of `CallEngine`, like `engine_legs`: the engine finds calls and
dispatches; these methods decide what a request that belongs to no dialog yet
becomes. In-dialog requests go to `CallEngine._on_in_dialog_request`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from b2bua.calls.admission import Admission, overload_response
from b2bua.calls.call import Call, CallInput
from b2bua.calls.dialog import Dialog, LocalEndpoint
from b2bua.calls.events import (
    CallAttempted,
    CallEnded,
    CallEventSink,
    EndReason,
    ReleasedBy,
)
from b2bua.calls.header_policy import protected_forms
from b2bua.calls.routing import (
    RouteDecision,
    Router,
    RouteRejection,
    TrunkTable,
    caller_number,
    uri_number,
)
from b2bua.sip.address import Address
from b2bua.sip.headers import split_list
from b2bua.sip.message import Request, Response, make_response
from b2bua.sip.transaction import TransactionLayer
from b2bua.sip.transaction_server import InviteServerTransaction, ServerTransaction

if TYPE_CHECKING:
    from b2bua.calls.settings import EngineCounters, EngineSettings

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, UPDATE, INFO"
SUPPORTED_TAGS = frozenset({"100rel", "timer"})
NOT_ALLOWED = frozenset({"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"})
IN_DIALOG_ONLY = frozenset({"BYE", "PRACK", "UPDATE", "INFO"})
# Requests that finish work in progress: never refused by admission control.
ALWAYS_ADMITTED = frozenset({"ACK", "CANCEL"})


class RequestsMixin:
    """New requests; `CallEngine` provides the attributes declared here."""

    settings: EngineSettings
    router: Router
    sink: CallEventSink
    random: Callable[[], str]
    wall_clock: Callable[[], float]
    layer: TransactionLayer
    trunks: TrunkTable
    counters: EngineCounters
    admission: Admission
    draining: bool
    calls: dict[str, Call]
    calls_by_a: dict[tuple[str, str], Call]
    calls_by_invite: dict[InviteServerTransaction, Call]
    ended_call_tags: dict[InviteServerTransaction, str]

    if TYPE_CHECKING:

        def endpoint(self, transport: str) -> LocalEndpoint: ...
        def send_now(self, message: Request | Response, destination: Address) -> None: ...
        def _respond(
            self,
            transaction: ServerTransaction,
            response: Response,
            now: float,
            data: bytes | None = None,
        ) -> None: ...
        def dispatch(
            self, call: Call, event: CallInput, message: Request | Response | None, now: float
        ) -> None: ...
        def reschedule(self, call: Call) -> None: ...
        def start_outbound(self, call: Call, *, first: bool, now: float) -> None: ...
        def _on_in_dialog_request(
            self, request: Request, transaction: ServerTransaction, to_tag: str, now: float
        ) -> None: ...

    def _admit(self, request: Request, source: Address, now: float) -> bool:
        """Admission control before any transaction exists (see calls/admission.py).

        A refused request gets a stateless 503 with Retry-After; retransmissions
        of admitted requests and in-dialog requests always pass.
        """
        admission = self.admission
        counters = self.counters
        within_rate = admission.source_allows(source.host, now=now)
        if request.to_tag or self.layer.has_server(request):
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

    def _on_request(
        self, request: Request, transaction: ServerTransaction, source: Address, now: float
    ) -> None:
        method = request.method
        if method == "CANCEL":
            self._on_cancel(request, transaction, now)
            return
        to_tag = request.to_tag
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
        if call is not None:
            tag = call.a_dialog.local_tag
        else:
            tag = self.ended_call_tags.get(invite_transaction) or self.random()
        self._respond(transaction, make_response(cancel, 200, to_tag=tag), now)
        if call is not None:
            self.dispatch(call, CallInput.CALLER_CANCELLED, cancel, now)

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
            counters = self.counters
            counters.overload_rejections += 1
            if self.draining:
                counters.draining_rejections += 1
            else:
                counters.call_limit_rejections += 1
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
    refused = route if isinstance(route, RouteRejection) else None
    routed = route if isinstance(route, RouteDecision) else None
    return CallAttempted(
        call_id=call_id,
        at=at,
        inbound_call_id=request.call_id,
        source=source,
        inbound_trunk=trunk_name,
        caller=route.caller or caller,
        dialled=dialled,
        binding_id=routed.binding_id if routed is not None else None,
        tenant_id=routed.tenant_id if routed is not None else None,
        order_id=routed.order_id if routed is not None else None,
        mode=routed.mode if routed is not None else None,
        direction=routed.direction if routed is not None else None,
        middle_number=routed.middle_number if routed is not None else None,
        rejection=refused.reason if refused is not None else None,
    )


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
        remote_tag=request.from_tag,
        remote_cseq=request.cseq.number,
        route_set=request.headers.get_all("record-route"),
        destination=source,
    )
    dialog.set_target_from(request)
    return dialog


def _without_tag(value: str) -> str:
    """A From/To value with its tag parameter removed (the dialog stores tags apart)."""
    parts = value.split(";")
    return ";".join([p for p in parts if not p.strip().lower().startswith("tag=")])
