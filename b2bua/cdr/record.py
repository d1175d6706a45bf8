"""The call record (DESIGN section 5) as it is built from call events, and its hash.

A :class:`RecordDraft` is the mutable working copy the writer keeps while the
attempt runs; :func:`apply_event` moves it along, :func:`finish` fills the derived
fields (``duration_s``, ``pdd_ms``). Rows are tuples in :data:`RECORD_COLUMNS`
order, the column order of the ``call_records`` table.

The hash chain: a record enters its node's chain when it is finalised. Its
``chain_seq`` is the node's next sequence number, ``prev_hash`` the hash of the
record before it, and ``hash = sha256(prev_hash + "\\n" + canonical(record))``
where the canonical form is compact JSON of every column but ``hash`` in column
order, each value first coerced to its column type so that SQLite and PostgreSQL
round trips hash the same. No I/O here.
"""

from __future__ import annotations

import hashlib
import json
import operator
from dataclasses import dataclass, fields
from typing import Any

from b2bua.calls.events import (
    CallAnswered,
    CallAttempted,
    CallEnded,
    CallEvent,
    CallForwarded,
    CallRinging,
    EndReason,
    ReleasedBy,
)
from b2bua.sip.address import Address

__all__ = [
    "FLOAT_COLUMNS",
    "INT_COLUMNS",
    "MUTABLE_COLUMNS",
    "RECORD_COLUMNS",
    "RecordDraft",
    "apply_event",
    "canonical",
    "chain_hash",
    "draft_from_attempt",
    "finish",
    "format_source",
    "interrupt",
    "record_dict",
]


@dataclass(slots=True)
class RecordDraft:
    """One call attempt; field order is the ``call_records`` column order."""

    id: str
    node: str
    inbound_call_id: str
    outbound_call_id: str | None
    tenant_id: str | None
    binding_id: str | None
    order_id: str | None
    mode: str | None
    x: str
    caller: str
    callee: str | None
    shown_number: str | None
    direction: str | None
    inbound_trunk: str | None
    source_address: str | None
    outbound_trunk: str | None
    invite_at: float
    ringing_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    duration_s: float | None = None
    pdd_ms: int | None = None
    final_status: int | None = None
    end_reason: str | None = None
    released_by: str | None = None
    rejection: str | None = None
    chain_seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None

    def to_row(self) -> tuple[Any, ...]:
        """The row in :data:`RECORD_COLUMNS` order.

        A shallow tuple: every field is a scalar, and `dataclasses.astuple` deep-copies
        each value, which showed up in profiles of the record writer under load.
        """
        row: tuple[Any, ...] = _read_row(self)
        return row

    @classmethod
    def from_row(cls, row: Any) -> RecordDraft:
        """A draft from a row read in :data:`RECORD_COLUMNS` order."""
        return cls(*_coerce(tuple(row)))


RECORD_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RecordDraft))
FLOAT_COLUMNS = frozenset({"invite_at", "ringing_at", "answered_at", "ended_at", "duration_s"})
INT_COLUMNS = frozenset({"pdd_ms", "final_status", "chain_seq"})
# What can change once the attempt is recorded: the outbound leg (a next trunk or
# hunt member), its progress, the end and the chain. The rest is the attempt's and
# is written once, so rewriting a record never touches the indexes built on it.
MUTABLE_COLUMNS: tuple[str, ...] = (
    "outbound_call_id", "callee", "shown_number", "outbound_trunk", "ringing_at",
    "answered_at", "ended_at", "duration_s", "pdd_ms", "final_status", "end_reason",
    "released_by", "chain_seq", "prev_hash", "hash",
)  # fmt: skip
_HASH_INDEX = RECORD_COLUMNS.index("hash")
# Every column in one C call (a tuple, as there are more than one).
_read_row = operator.attrgetter(*RECORD_COLUMNS)
# Per column: the type a value is coerced to, or None for text.
_COERCIONS: tuple[type[float] | type[int] | None, ...] = tuple(
    float if name in FLOAT_COLUMNS else int if name in INT_COLUMNS else None
    for name in RECORD_COLUMNS
)


def _coerce(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Values coerced to their column types (SQLite may hand back 3 for 3.0)."""
    return tuple(
        [
            value if kind is None or value is None else kind(value)
            for kind, value in zip(_COERCIONS, values, strict=True)
        ]
    )


def format_source(source: Address) -> str:
    """``udp:192.0.2.1:5060`` (IPv6 hosts in brackets), the style of the config file."""
    host = f"[{source.host}]" if ":" in source.host else source.host
    return f"{source.transport.lower()}:{host}:{source.port}"


def draft_from_attempt(event: CallAttempted, node: str) -> RecordDraft:
    """A new open record for an attempt (refused attempts record the number dialled as X)."""
    return RecordDraft(
        id=event.call_id,
        node=node,
        inbound_call_id=event.inbound_call_id,
        outbound_call_id=None,
        tenant_id=event.tenant_id,
        binding_id=event.binding_id,
        order_id=event.order_id,
        mode=event.mode,
        x=event.middle_number or event.dialled,
        caller=event.caller,
        callee=None,
        shown_number=None,
        direction=event.direction,
        inbound_trunk=event.inbound_trunk,
        source_address=format_source(event.source),
        outbound_trunk=None,
        invite_at=float(event.at),
        rejection=event.rejection,
    )


def apply_event(draft: RecordDraft, event: CallEvent) -> None:
    """Move ``draft`` along by one engine event (not :class:`CallAttempted`)."""
    if isinstance(event, CallForwarded):
        # A next trunk or the next GXB member replaces the previous outbound leg.
        draft.outbound_call_id = event.outbound_call_id
        draft.outbound_trunk = event.outbound_trunk
        draft.callee = event.callee
        draft.shown_number = event.shown_number
    elif isinstance(event, CallRinging):
        if draft.ringing_at is None:
            draft.ringing_at = float(event.at)
    elif isinstance(event, CallAnswered):
        if draft.answered_at is None:
            draft.answered_at = float(event.at)
    elif isinstance(event, CallEnded):
        finish(
            draft,
            ended_at=float(event.at),
            status=event.status,
            end_reason=str(event.end_reason),
            released_by=str(event.released_by),
        )


def finish(
    draft: RecordDraft, *, ended_at: float, status: int | None, end_reason: str, released_by: str
) -> None:
    """Fill the final fields and derive ``duration_s`` and ``pdd_ms``.

    PDD (post-dial delay) runs from the INVITE to the first ringing, or to the
    answer when the callee answered without ringing; an attempt that got neither
    has none. Duration is the talk time, 0 for an unanswered attempt.
    """
    draft.ended_at = max(ended_at, draft.invite_at)
    draft.final_status = status
    draft.end_reason = end_reason
    draft.released_by = released_by
    answered = draft.answered_at
    draft.duration_s = round(max(draft.ended_at - answered, 0.0), 3) if answered else 0.0
    alerted = draft.ringing_at if draft.ringing_at is not None else answered
    draft.pdd_ms = (
        round(max(alerted - draft.invite_at, 0.0) * 1000) if alerted is not None else None
    )


def interrupt(draft: RecordDraft, *, ended_at: float) -> None:
    """Close a record its node left open when it died (``ended_at`` = its last heartbeat)."""
    status = 200 if draft.answered_at is not None else None
    finish(
        draft,
        ended_at=ended_at,
        status=status,
        end_reason=str(EndReason.INTERRUPTED),
        released_by=str(ReleasedBy.SERVER),
    )


def canonical(draft: RecordDraft) -> bytes:
    """Compact JSON of every column but ``hash``, in column order, typed."""
    values = list(_coerce(draft.to_row()))
    del values[_HASH_INDEX]
    return _encode_canonical(values).encode()


# `json.dumps` with these arguments builds a new encoder per call; the output is the same.
_encode_canonical = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def chain_hash(draft: RecordDraft) -> str:
    """The hash ``draft`` must carry, given its ``prev_hash`` and ``chain_seq``."""
    digest = hashlib.sha256((draft.prev_hash or "").encode() + b"\n" + canonical(draft))
    return digest.hexdigest()


def record_dict(draft: RecordDraft) -> dict[str, Any]:
    """The record as a JSON-ready mapping (webhooks, JSON-lines export)."""
    return dict(zip(RECORD_COLUMNS, draft.to_row(), strict=True))
