"""What the engine does to legs: start, relay, answer, cancel, hang up.

A mixin of `CallEngine`, kept apart so that each file reads on its own: the
engine finds calls and dispatches; these methods act on one call's legs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from b2bua.calls import messages
from b2bua.calls.call import Call, CallState, Relay
from b2bua.calls.dialog import Dialog, LocalEndpoint, to_tag_response
from b2bua.calls.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallForwarded,
    CallRinging,
    EndReason,
    ReleasedBy,
)
from b2bua.calls.header_policy import relay_body as crossing_body
from b2bua.calls.routing import TrunkTable
from b2bua.sip.address import Address
from b2bua.sip.errors import ParseError
from b2bua.sip.headers import Headers, split_list
from b2bua.sip.message import Request, Response
from b2bua.sip.transaction import TransactionLayer
from b2bua.sip.transaction_base import new_branch
from b2bua.sip.transaction_client import ClientTransaction, build_cancel
from b2bua.sip.transaction_server import ServerTransaction
from b2bua.sip.uri import parse_name_addr

if TYPE_CHECKING:
    from b2bua.calls.settings import EngineSettings

# Statuses after which the next trunk is tried (DESIGN section 4).
FAILOVER_STATUSES = frozenset({408, 503})


class LegsMixin:
    """Leg operations; `CallEngine` provides the attributes declared here."""

    settings: EngineSettings
    random: Callable[[], str]
    wall_clock: Callable[[], float]
    layer: TransactionLayer
    trunks: TrunkTable
    calls_by_b: dict[tuple[str, str], Call]
    client_purposes: dict[ClientTransaction, tuple[Call | None, str]]
    cancel_on_provisional: set[ClientTransaction]
    current_server_transaction: ServerTransaction | None

    if TYPE_CHECKING:

        def endpoint(self, transport: str) -> LocalEndpoint: ...
        def respond(
            self,
            transaction: ServerTransaction,
            response: Response,
            now: float,
            data: bytes | None = None,
        ) -> None: ...
        def finish(self, call: Call) -> None: ...
        def emit(self, event: CallEvent) -> None: ...
        def send_now(self, message: Request | Response, destination: Address) -> None: ...
        def queue_raw(self, data: bytes, destination: Address) -> None: ...

    # --- the outbound leg -----------------------------------------------------------

    def start_outbound(self, call: Call, *, first: bool, now: float) -> None:
        """Start an outbound leg to the current target on the first usable trunk."""
        if first or not call.trunk_candidates:
            call.trunk_candidates = self.trunks.candidates()
            call.trunk_index = 0
        if call.trunk_index >= len(call.trunk_candidates):
            extra = [("Retry-After", str(self.settings.retry_after_s))]
            self.fail_call(call, 503, EndReason.FAILED, ReleasedBy.SERVER, now=now, extra=extra)
            return
        trunk = call.trunk_candidates[call.trunk_index]
        local = self.endpoint(trunk.trunk.address.transport)
        request, dialog = messages.outbound_invite(call, trunk, local, self.random)
        call.b_invite, call.b_dialog, call.b_local, call.b_trunk = request, dialog, local, trunk
        call.b_provisional_seen = False
        call.b_ack = None
        trunk.active_calls += 1
        trunk.calls_total += 1
        transaction = self.layer.send_request(request, trunk.trunk.address, now=now)
        call.b_transaction = transaction
        self.client_purposes[transaction] = (call, "invite")
        key = (dialog.call_id, dialog.local_tag)
        self.calls_by_b[key] = call
        call.b_dialog_keys.append(key)
        call.ring_deadline = now + self.settings.ring_timeout_s
        self.emit(
            CallForwarded(
                call_id=call.id,
                at=self.wall_clock(),
                outbound_call_id=dialog.call_id,
                outbound_trunk=trunk.trunk.name,
                callee=call.callee,
                shown_number=call.route.shown_number,
            )
        )

    def release_trunk(self, call: Call) -> None:
        """Give the current outbound leg's trunk slot back."""
        if call.b_trunk is not None:
            call.b_trunk.active_calls -= 1
            call.b_trunk = None

    def abandon_outbound(self, call: Call, *, now: float) -> None:
        """Stop caring about the current outbound INVITE: CANCEL it, now or at its 1xx.

        Its transaction stays registered as "abandoned", so a late 2xx is still
        ACKed and hung up (RFC 3261 section 15).
        """
        transaction = call.b_transaction
        if transaction is None:
            return
        self.client_purposes[transaction] = (None, "abandoned")
        if call.b_provisional_seen:
            self.send_cancel(transaction, now=now)
        else:
            self.cancel_on_provisional.add(transaction)
        call.b_transaction = None
        call.ring_deadline = None
        self.release_trunk(call)
        if call.b_dialog is not None:
            key = (call.b_dialog.call_id, call.b_dialog.local_tag)
            self.calls_by_b.pop(key, None)
            if key in call.b_dialog_keys:
                call.b_dialog_keys.remove(key)

    def send_cancel(self, invite_transaction: ClientTransaction, *, now: float) -> None:
        """CANCEL an outbound INVITE (same branch; section 9.1)."""
        if invite_transaction.state.value not in ("Calling", "Proceeding"):
            return
        cancel = build_cancel(invite_transaction.request)
        transaction = self.layer.send_request(cancel, invite_transaction.destination, now=now)
        self.client_purposes[transaction] = (None, "cancel")

    def try_next_leg(self, call: Call, *, status: int, now: float) -> bool:
        """After a failed outbound leg: next trunk (408/503), else next hunt member."""
        transaction = call.b_transaction
        if transaction is not None:
            self.client_purposes[transaction] = (None, "abandoned")
        call.b_transaction = None
        self.release_trunk(call)
        if call.b_dialog is not None:
            # The failed leg's dialog never confirmed: nothing may reach the call through it.
            key = (call.b_dialog.call_id, call.b_dialog.local_tag)
            self.calls_by_b.pop(key, None)
            if key in call.b_dialog_keys:
                call.b_dialog_keys.remove(key)
        if status in FAILOVER_STATUSES and call.trunk_index + 1 < len(call.trunk_candidates):
            call.trunk_index += 1
            self.start_outbound(call, first=False, now=now)
            return True
        if call.route.mode == "GXB" and call.target_index + 1 < len(call.route.targets):
            call.target_index += 1
            self.start_outbound(call, first=True, now=now)
            return True
        return False

    # --- answers from the callee ----------------------------------------------------

    def _learn_remote(self, call: Call, response: Response, *, confirm: bool) -> None:
        dialog = call.b_dialog
        if dialog is None:
            return
        tag = response.to_tag
        if tag and (dialog.remote_tag is None or confirm):
            if dialog.remote_tag != tag:
                dialog.route_set = list(reversed(response.headers.get_all("record-route")))
            dialog.remote_tag = tag
            dialog.set_target_from(response)

    def relay_provisional(self, call: Call, response: Response, *, now: float) -> None:
        """Relay an 18x to the caller; all forks share the caller's one early dialog."""
        if call.a_final_status is not None:
            return
        self._learn_remote(call, response, confirm=False)
        self.respond(call.a_transaction, messages.crossing_response(call, response), now)
        if call.state is CallState.CALLING:
            call.state = CallState.EARLY
            self.emit(CallRinging(call.id, self.wall_clock()))

    def relay_answer(self, call: Call, response: Response, *, now: float) -> None:
        """Relay the callee's 2xx; resend it to the caller until the caller ACKs."""
        self._learn_remote(call, response, confirm=True)
        answer = messages.crossing_response(call, response)
        call.a_final_status = response.status
        call.a_2xx = answer.to_bytes()
        self.respond(call.a_transaction, answer, now, call.a_2xx)
        timers = self.settings.timers
        if not call.a_source.reliable:
            call.a_2xx_interval = timers.t1
            call.retransmit_deadline = now + timers.t1
        call.ack_deadline = now + timers.timer_h
        call.ring_deadline = None
        call.state = CallState.CONNECTED
        if call.route.max_call_s:
            call.max_duration_deadline = now + call.route.max_call_s
        self._refresh_session(call, response, now)
        self.emit(CallAnswered(call.id, self.wall_clock()))

    def answer_repeated(self, call: Call, response: Response, *, now: float) -> None:
        """A repeated 2xx: resend our ACK if it was lost; ACK and BYE another fork's 2xx."""
        dialog = call.b_dialog
        if dialog is not None and response.to_tag != dialog.remote_tag:
            assert call.b_invite is not None and call.b_trunk is not None
            self.ack_and_bye(call.b_invite, response, call.b_trunk.trunk.address, now=now)
        elif call.b_ack is not None:
            self.queue_raw(*call.b_ack)

    def retransmit_answer(self, call: Call, *, now: float) -> None:
        """Resend the 2xx to the caller, doubling the interval up to T2."""
        if call.a_acked or call.a_2xx is None:
            return
        self.queue_raw(call.a_2xx, call.a_source)
        call.a_2xx_interval = min(call.a_2xx_interval * 2, self.settings.timers.t2)
        call.retransmit_deadline = now + call.a_2xx_interval

    def caller_acked(self, call: Call, ack: Request, *, now: float) -> None:
        """The caller's ACK: stop resending the 2xx and ACK the callee (end to end)."""
        if call.a_acked:
            return
        call.a_acked = True
        call.retransmit_deadline = None
        call.ack_deadline = None
        self._ack_callee(call, body=ack.body, content_type=ack.headers.get("content-type"))

    def _ack_callee(
        self, call: Call, *, body: bytes = b"", content_type: str | None = None
    ) -> None:
        dialog, local, invite = call.b_dialog, call.b_local, call.b_invite
        if dialog is None or local is None or invite is None or call.b_ack is not None:
            return
        relay_type, relay_body = (None, b"")
        if not call.caller_offered_sdp and body:
            # Late offer: the caller's answer comes in its ACK and must cross too.
            relay_type, relay_body = crossing_body(content_type, body)
        ack = messages.ack_for(
            dialog,
            invite.cseq.number,
            local,
            self.random,
            contact_user=call.route.shown_number,
            body=relay_body,
            content_type=relay_type,
            protected=call.protect_towards_callee,
        )
        destination = dialog.request_destination(local)
        call.b_ack = (ack.to_bytes(), destination)
        self.queue_raw(*call.b_ack)

    # --- failures and endings ------------------------------------------------------

    def fail_call(
        self,
        call: Call,
        status: int,
        reason: EndReason,
        released_by: ReleasedBy,
        *,
        now: float,
        response: Response | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        """Answer the caller with a final error and end the call."""
        if call.a_final_status is None:
            if response is not None:
                answer = messages.crossing_response(call, response)
            else:
                answer = to_tag_response(
                    call.a_invite,
                    status,
                    to_tag=call.a_dialog.local_tag,
                    headers=extra,
                    reason=messages.reason_phrase(status),
                )
            self.respond(call.a_transaction, answer, now)
            call.a_final_status = status
        self.emit(CallEnded(call.id, self.wall_clock(), status, reason, released_by))
        self.finish(call)

    def caller_cancelled(self, call: Call, *, now: float) -> None:
        """CANCEL (or BYE) before the answer: 487 to the caller, CANCEL to the callee."""
        if call.a_final_status is not None:
            return
        self.abandon_outbound(call, now=now)
        self.fail_call(call, 487, EndReason.CANCELLED, ReleasedBy.CALLER, now=now)

    def give_up_ringing(self, call: Call, *, now: float) -> None:
        """Ring timeout: CANCEL this leg; hunt on to the next member, else 408."""
        self.abandon_outbound(call, now=now)
        if call.route.mode == "GXB" and call.target_index + 1 < len(call.route.targets):
            call.target_index += 1
            self.start_outbound(call, first=True, now=now)
            return
        self.fail_call(call, 408, EndReason.NO_ANSWER, ReleasedBy.SERVER, now=now)

    def hang_up(self, call: Call, bye: Request, *, released_by: ReleasedBy, now: float) -> None:
        """BYE from one side: 200 to it, BYE to the other side, the call ends normally."""
        self.answer_in_dialog(bye, 200, now=now)
        if released_by is ReleasedBy.CALLER:
            self._send_bye(call, to_caller=False, now=now)
        else:
            self._send_bye(call, to_caller=True, now=now)
        self._end(call, EndReason.NORMAL, released_by)

    def end_connected(
        self, call: Call, reason: EndReason, released_by: ReleasedBy, *, now: float
    ) -> None:
        """The server ends an answered call: BYE on both legs."""
        self._ack_callee(call)  # a callee whose 2xx was never ACKed still gets its ACK first
        self._send_bye(call, to_caller=False, now=now)
        self._send_bye(call, to_caller=True, now=now)
        self._end(call, reason, released_by)

    def _end(self, call: Call, reason: EndReason, released_by: ReleasedBy) -> None:
        status = call.a_final_status or 200
        self.emit(CallEnded(call.id, self.wall_clock(), status, reason, released_by))
        self.finish(call)

    def _send_bye(self, call: Call, *, to_caller: bool, now: float) -> None:
        dialog = call.a_dialog if to_caller else call.b_dialog
        local = call.a_local if to_caller else call.b_local
        if dialog is None or local is None or dialog.remote_tag is None:
            return
        bye = dialog.build_request("BYE", local, self.random, contact_user=call.route.shown_number)
        transaction = self.layer.send_request(bye, dialog.request_destination(local), now=now)
        self.client_purposes[transaction] = (None, "bye")

    def ack_and_bye(
        self, invite: Request, response: Response, destination: Address, *, now: float
    ) -> None:
        """ACK a 2xx nobody wants (a fork, an answer crossing our CANCEL), then BYE it."""
        try:
            to_value = response.headers.get("to") or ""
            contact = response.headers.get("contact")
            target = str(parse_name_addr(contact).uri) if contact else invite.uri
        except ParseError:
            return
        local = self.endpoint(destination.transport)
        cseq = invite.cseq.number
        base = [
            ("Max-Forwards", "70"),
            ("From", invite.headers.get("from") or ""),
            ("To", to_value),
            ("Call-ID", invite.call_id),
        ]
        routes = [("Route", r) for r in reversed(response.headers.get_all("record-route"))]
        ack = Request(
            "ACK", target, Headers(self._stray_headers(local, base, f"{cseq} ACK", routes))
        )
        self.send_now(ack, destination)
        bye_headers = self._stray_headers(local, base, f"{cseq + 1} BYE", routes)
        bye = Request("BYE", target, Headers(bye_headers))
        transaction = self.layer.send_request(bye, destination, now=now)
        self.client_purposes[transaction] = (None, "bye")

    def _stray_headers(
        self,
        local: LocalEndpoint,
        base: list[tuple[str, str]],
        cseq: str,
        routes: list[tuple[str, str]],
    ) -> list[tuple[str, str]]:
        return [("Via", local.via(new_branch(self.random))), *base, ("CSeq", cseq), *routes]

    # --- in-dialog relay -------------------------------------------------------------

    def answer_in_dialog(self, request: Request, status: int, *, now: float) -> None:
        """Answer the in-dialog request being dispatched now."""
        transaction = self.current_server_transaction
        if transaction is not None:
            self.respond(transaction, to_tag_response(request, status, to_tag=""), now)

    def refuse_in_dialog(self, request: Request, *, now: float) -> None:
        """481: the dialog is gone or not in a state to take this request."""
        self.answer_in_dialog(request, 481, now=now)

    def relay_request(self, call: Call, request: Request, *, from_caller: bool, now: float) -> None:
        """Rebuild an in-dialog request on the other leg and remember where to answer."""
        server = self.current_server_transaction
        if server is None:
            return
        source = call.a_dialog if from_caller else call.b_dialog
        target = call.b_dialog if from_caller else call.a_dialog
        local = call.b_local if from_caller else call.a_local
        if (
            source is None
            or source.remote_tag is None
            or target is None
            or local is None
            or target.remote_tag is None
        ):
            # No dialog yet on one side (the callee has not sent a tagged
            # response): the request matches no dialog (RFC 3261 section 12.2.2).
            self.answer_in_dialog(request, 481, now=now)
            return
        method = request.method
        if method in ("INVITE", "UPDATE"):
            if (
                call.pending_reinvite_from_callee
                if from_caller
                else call.pending_reinvite_from_caller
            ):
                self.answer_in_dialog(request, 491, now=now)  # glare (RFC 3261 section 14.1)
                return
            if from_caller:
                call.pending_reinvite_from_caller = True
            else:
                call.pending_reinvite_from_callee = True
            source.set_target_from(request)
        if method == "INVITE":
            self.respond(server, to_tag_response(request, 100, to_tag=""), now)
        relayed = messages.relayed_request(call, request, target, local, self.random)
        transaction = self.layer.send_request(relayed, target.request_destination(local), now=now)
        call.relays[transaction] = Relay(call, server, from_caller, method)
        self.client_purposes[transaction] = (call, "relay")
        if method == "INVITE":
            acks = call.caller_ack_cseq if from_caller else call.callee_ack_cseq
            acks[request.cseq.number] = relayed.cseq.number

    def relay_response(
        self, call: Call, transaction: ClientTransaction, response: Response, *, now: float
    ) -> None:
        """Carry the answer to a relayed request back to whoever sent it."""
        relay = call.relays.get(transaction)
        if relay is None or response.status == 100:
            return
        request = relay.server_transaction.request
        answer = messages.crossing_response(call, response, request=request)
        self.respond(relay.server_transaction, answer, now)
        if response.status < 200:
            return
        if relay.method in ("INVITE", "UPDATE"):
            if relay.from_caller:
                call.pending_reinvite_from_caller = False
            else:
                call.pending_reinvite_from_callee = False
            if response.status < 300:
                answering = call.b_dialog if relay.from_caller else call.a_dialog
                if answering is not None:
                    answering.set_target_from(response)
                self._refresh_session(call, response, now)
            elif response.status in (408, 481) and call.state is CallState.CONNECTED:
                # The far dialog is gone (RFC 3261 section 12.2.1.2): end both legs.
                self.end_connected(call, EndReason.FAILED, ReleasedBy.SERVER, now=now)
                return
        call.relays.pop(transaction, None)

    def relay_failed(self, call: Call, transaction: ClientTransaction, *, now: float) -> None:
        """A relayed request got no answer: 408 back, and a dead refresh ends the call."""
        relay = call.relays.pop(transaction, None)
        if relay is None:
            return
        request = relay.server_transaction.request
        self.respond(relay.server_transaction, to_tag_response(request, 408, to_tag=""), now)
        if relay.from_caller:
            call.pending_reinvite_from_caller = False
        else:
            call.pending_reinvite_from_callee = False
        if relay.method in ("INVITE", "UPDATE") and call.state is CallState.CONNECTED:
            self.end_connected(call, EndReason.FAILED, ReleasedBy.SERVER, now=now)

    def relay_ack(self, call: Call, ack: Request, *, from_caller: bool) -> None:
        """The ACK for a relayed re-INVITE's 2xx, with the other leg's CSeq."""
        acks = call.caller_ack_cseq if from_caller else call.callee_ack_cseq
        cseq = acks.pop(ack.cseq.number, None)
        target: Dialog | None = call.b_dialog if from_caller else call.a_dialog
        local = call.b_local if from_caller else call.a_local
        if cseq is None or target is None or local is None:
            return
        content_type, body = crossing_body(ack.headers.get("content-type"), ack.body)
        relayed = messages.ack_for(
            target,
            cseq,
            local,
            self.random,
            contact_user=call.route.shown_number,
            body=body,
            content_type=content_type,
            protected=call.protect_towards_callee if from_caller else call.protect_towards_caller,
        )
        self.send_now(relayed, target.request_destination(local))

    def _refresh_session(self, call: Call, response: Response, now: float) -> None:
        """RFC 4028: a 2xx carrying Session-Expires starts a new session interval.

        A 2xx to a re-INVITE or UPDATE without it still proves both legs alive,
        so a running timer restarts with its interval instead of ending a call
        that was just refreshed (the timer keeps a vanished leg from lingering).
        """
        value = response.headers.get("session-expires")
        if value is None:
            if call.session_deadline is not None and call.session_interval is not None:
                call.session_deadline = now + call.session_interval
            return
        interval_text = split_list(value)[0].split(";")[0].strip() if value else ""
        if interval_text.isdigit() and int(interval_text) > 0:
            call.session_interval = float(interval_text)
            call.session_deadline = now + call.session_interval
