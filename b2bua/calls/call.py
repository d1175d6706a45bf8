"""A call: an inbound (A) leg, an outbound (B) leg, and the state between them.

The call is a state machine whose transitions are data: `TRANSITIONS[state]
[input]` names a handler in `b2bua.calls.handlers`, or `IGNORE` for inputs a
state absorbs on purpose. `tests/calls/test_call_table.py` walks every pair.
A GXB hunt or a trunk failover replaces the B leg in place; the A leg stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from b2bua.calls.dialog import Dialog, LocalEndpoint
from b2bua.calls.routing import RouteDecision, TrunkState
from b2bua.sip.address import Address
from b2bua.sip.message import Request
from b2bua.sip.transaction_client import ClientTransaction
from b2bua.sip.transaction_server import InviteServerTransaction, ServerTransaction


class CallState(Enum):
    """Where a call is, seen from the caller."""

    CALLING = "calling"  # outbound INVITE sent, nothing above 100 back yet
    EARLY = "early"  # a provisional response was relayed to the caller
    CONNECTED = "connected"  # the callee answered; 2xx relayed to the caller
    ENDED = "ended"  # both legs are done or being released

    # Members are singletons: identity hashing in C keeps the table look-ups cheap
    # (Enum's own __hash__ is Python code, run on every dispatch otherwise).
    __hash__ = object.__hash__


class CallInput(Enum):
    """Everything that moves a call."""

    PROVISIONAL = "1xx on the outbound INVITE"
    ANSWERED = "2xx on the outbound INVITE"
    REFUSED = "3xx-6xx on the outbound INVITE"
    NO_RESPONSE = "outbound INVITE timed out or could not be sent"
    CALLER_CANCELLED = "CANCEL from the caller"
    CALLER_ACKED = "ACK from the caller for the 2xx"
    CALLER_HUNG_UP = "BYE from the caller"
    CALLEE_HUNG_UP = "BYE from the callee"
    CALLER_REQUEST = "other in-dialog request from the caller"
    CALLEE_REQUEST = "other in-dialog request from the callee"
    RING_TIMEOUT = "no answer within the ring timeout"
    RETRANSMIT_2XX = "time to resend the 2xx to the caller"
    ACK_TIMEOUT = "no ACK from the caller within 64*T1"
    MAX_DURATION = "the binding's maximum call duration is reached"
    SESSION_EXPIRED = "no session refresh within the session interval"

    __hash__ = object.__hash__


@dataclass(slots=True)
class Relay:
    """An in-dialog request relayed across: where its response must go back to."""

    call: Call
    server_transaction: ServerTransaction
    from_caller: bool
    method: str


@dataclass(eq=False, slots=True)
class Call:
    """Everything the engine knows about one call attempt."""

    id: str
    route: RouteDecision
    a_invite: Request
    a_transaction: InviteServerTransaction
    a_source: Address
    a_local: LocalEndpoint
    a_dialog: Dialog
    inbound_trunk: str | None
    started_at: float  # monotonic
    state: CallState = CallState.CALLING
    # Numbers that must not reach each side, in every written form.
    protect_towards_callee: tuple[str, ...] = ()
    protect_towards_caller: tuple[str, ...] = ()

    # The current outbound leg (replaced on failover or on the next hunt target).
    b_invite: Request | None = None
    b_transaction: ClientTransaction | None = None
    b_dialog: Dialog | None = None
    b_local: LocalEndpoint | None = None
    b_trunk: TrunkState | None = None
    b_provisional_seen: bool = False
    b_ack: tuple[bytes, Address] | None = None  # resent when the callee repeats its 2xx
    target_index: int = 0
    trunk_candidates: list[TrunkState] = field(default_factory=list)
    trunk_index: int = 0
    b_dialog_keys: list[tuple[str, str]] = field(default_factory=list)

    # The caller's side of the answer.
    a_final_status: int | None = None
    a_2xx: bytes | None = None
    a_2xx_interval: float = 0.0
    a_acked: bool = False
    caller_offered_sdp: bool = True

    # Deadlines (monotonic seconds; None when not running).
    ring_deadline: float | None = None
    retransmit_deadline: float | None = None
    ack_deadline: float | None = None
    max_duration_deadline: float | None = None
    session_deadline: float | None = None

    # In-dialog relays: requests in flight, and re-INVITE ACK translation
    # (CSeq on the leg the ACK arrives on -> CSeq of the relayed re-INVITE).
    relays: dict[ClientTransaction, Relay] = field(default_factory=dict)
    caller_ack_cseq: dict[int, int] = field(default_factory=dict)
    callee_ack_cseq: dict[int, int] = field(default_factory=dict)
    pending_reinvite_from_caller: bool = False
    pending_reinvite_from_callee: bool = False
    session_interval: float | None = None
    heap_deadline: float | None = None  # the deadline last pushed on the engine's heap
    # The lines every answer above 100 to the caller's INVITE copies from it.
    a_answer_identity: list[tuple[str, str, str]] | None = None

    def next_deadline(self) -> float | None:
        """The earliest running deadline of this call."""
        best: float | None = None
        for deadline in (
            self.ring_deadline,
            self.retransmit_deadline,
            self.ack_deadline,
            self.max_duration_deadline,
            self.session_deadline,
        ):
            if deadline is not None and (best is None or deadline < best):
                best = deadline
        return best

    def stop_timers(self) -> None:
        """Stop every call timer (the call is over)."""
        self.ring_deadline = None
        self.retransmit_deadline = None
        self.ack_deadline = None
        self.max_duration_deadline = None
        self.session_deadline = None

    @property
    def callee(self) -> str:
        """The real number the current outbound leg rings."""
        return self.route.targets[self.target_index]
