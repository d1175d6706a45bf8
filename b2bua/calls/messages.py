"""Messages that cross the bridge, built from one leg's message for the other leg.

Every function here starts from nothing on the receiving leg and adds only
what `header_policy` allows, then runs `header_policy.scrub` so that no
protected number survives, whichever way the message goes.
"""

from __future__ import annotations

from collections.abc import Callable

from b2bua.calls.call import Call
from b2bua.calls.dialog import Dialog, LocalEndpoint, response_identity
from b2bua.calls.header_policy import relay_body, safe_headers, scrub
from b2bua.calls.routing import TrunkState
from b2bua.sip.headers import Headers
from b2bua.sip.message import REASON_PHRASES, Message, Request, Response
from b2bua.sip.transaction_base import new_branch
from b2bua.sip.uri import quote_display_name

DEFAULT_MAX_FORWARDS = 70


def _crossing_parts(message: Message) -> tuple[list[tuple[str, str, str]], bytes]:
    """Safe header lines and relayable body of `message`, not scrubbed yet (`_finish` does)."""
    triples = safe_headers(message.headers.triples())
    content_type, body = relay_body(message.headers.get("content-type"), message.body)
    triples = [t for t in triples if t[0] != "content-type"]
    if content_type is not None:
        triples.append(("content-type", "Content-Type", content_type))
    return triples, body


def _finish(message: Request | Response, protected: tuple[str, ...]) -> None:
    """One scrub over everything, identity headers included (defence in depth).

    It runs once over the finished message rather than once over the copied
    parts and again over the whole: the scrub drops whole lines, so scrubbing
    twice gives what scrubbing once gives.
    """
    triples, body = scrub(message.headers.triples(), message.body, protected)
    message.headers.replace_triples(triples)
    message.body = body


def outbound_invite(
    call: Call,
    trunk: TrunkState,
    local: LocalEndpoint,
    random: Callable[[], str],
) -> tuple[Request, Dialog]:
    """The INVITE for the B leg (DESIGN section 4) and the dialog it starts."""
    route = call.route
    target = call.callee
    address = trunk.trunk.address
    trunk_host = address.host
    transport = address.transport
    uri_params = "" if transport == "UDP" else f";transport={transport.lower()}"
    request_uri = f"sip:{target}@{trunk_host}:{address.port}{uri_params}"
    shown = route.shown_number
    display = f"{quote_display_name(route.label)} " if route.label else ""
    local_uri = f"{display}<sip:{shown}@{local.host}>"
    dialog = Dialog(
        call_id=f"{random()}@{local.host}",
        local_tag=random(),
        local_uri=local_uri,
        remote_uri=f"<sip:{target}@{trunk_host}>",
        local_cseq=1,
        destination=address,
    )
    inbound = call.a_invite
    max_forwards = DEFAULT_MAX_FORWARDS
    value = inbound.headers.get("max-forwards")
    if value is not None and value.strip().isdigit():
        max_forwards = min(int(value) - 1, DEFAULT_MAX_FORWARDS)
    triples: list[tuple[str, str, str]] = [
        ("via", "Via", local.via(new_branch(random))),
        ("max-forwards", "Max-Forwards", str(max_forwards)),
        ("from", "From", f"{local_uri};tag={dialog.local_tag}"),
        ("to", "To", dialog.remote_uri),
        ("call-id", "Call-ID", dialog.call_id),
        ("cseq", "CSeq", "1 INVITE"),
        ("contact", "Contact", local.contact(shown)),
        ("p-asserted-identity", "P-Asserted-Identity", f"<sip:{shown}@{local.host}>"),
    ]
    safe, body = _crossing_parts(inbound)
    triples.extend(safe)
    request = Request("INVITE", request_uri, Headers._from_triples(triples), body)
    _finish(request, call.protect_towards_callee)
    return request, dialog


def crossing_response(
    call: Call,
    callee_response: Response,
    *,
    request: Request | None = None,
    contact_user: str | None = None,
) -> Response:
    """A response to the caller's INVITE (or to `request`, from either leg) built from
    the other leg's response to the same thing.

    The status code crosses; the reason phrase is ours (a phrase is free text
    and may carry anything); safe headers and the anonymised body cross.
    """
    target = request if request is not None else call.a_invite
    to_caller = request is None or _from_caller(call, target)
    protected = call.protect_towards_caller if to_caller else call.protect_towards_callee
    status = callee_response.status
    safe, body = _crossing_parts(callee_response)
    if request is None and status > 100:
        # Every answer to the caller's INVITE copies the same lines from it.
        identity = call.a_answer_identity
        if identity is None:
            identity = call.a_answer_identity = response_identity(
                target, status, call.a_dialog.local_tag
            )
        triples = list(identity)
    else:
        triples = response_identity(target, status, call.a_dialog.local_tag)
    if status < 300 and target.method in ("INVITE", "UPDATE", "SUBSCRIBE"):
        local = call.a_local if to_caller else call.b_local
        assert local is not None
        contact = local.contact(contact_user or call.route.shown_number)
        triples.append(("contact", "Contact", contact))
    triples.extend(safe)
    response = Response(status, reason_phrase(status), Headers._from_triples(triples), body)
    _finish(response, protected)
    return response


def _from_caller(call: Call, request: Request) -> bool:
    return request.call_id == call.a_dialog.call_id


def reason_phrase(status: int) -> str:
    """Our reason phrase for a status code."""
    phrase = REASON_PHRASES.get(status)
    if phrase is not None:
        return phrase
    return {1: "Session Progress", 2: "OK", 3: "Redirected", 4: "Request Failure"}.get(
        status // 100, "Failure"
    )


def relayed_request(
    call: Call,
    request: Request,
    dialog: Dialog,
    local: LocalEndpoint,
    random: Callable[[], str],
) -> Request:
    """An in-dialog request from one leg rebuilt on the other leg's dialog.

    PRACK's RAck names the INVITE by its CSeq on the leg it came from, so it is
    rewritten to the INVITE's CSeq on the receiving leg (RFC 3262 section 7.2).
    """
    to_caller = dialog is call.a_dialog
    protected = call.protect_towards_caller if to_caller else call.protect_towards_callee
    safe, body = _crossing_parts(request)
    headers = [(name, value) for _, name, value in safe]
    if request.method == "PRACK":
        rack = request.headers.get("rack")
        if rack is not None:
            parts = rack.split()
            if len(parts) == 3:
                invite_cseq = 1 if dialog is call.b_dialog else call.a_invite.cseq.number
                headers.append(("RAck", f"{parts[0]} {invite_cseq} {parts[2]}"))
    contact_user = call.route.shown_number
    relayed = dialog.build_request(
        request.method, local, random, contact_user=contact_user, headers=headers, body=body
    )
    _finish(relayed, protected)
    return relayed


def ack_for(
    dialog: Dialog,
    cseq: int,
    local: LocalEndpoint,
    random: Callable[[], str],
    *,
    contact_user: str,
    body: bytes = b"",
    content_type: str | None = None,
    protected: tuple[str, ...] = (),
) -> Request:
    """An ACK for a 2xx on `dialog` (RFC 3261 section 13.2.2.4): new branch, INVITE's CSeq.

    A relayed ACK can carry the other leg's SDP answer, so it is scrubbed of
    `protected` numbers like every other message that crosses.
    """
    headers = [("Content-Type", content_type)] if content_type and body else []
    ack = dialog.build_request(
        "ACK", local, random, contact_user=contact_user, cseq=cseq, headers=headers, body=body
    )
    _finish(ack, protected)
    return ack
