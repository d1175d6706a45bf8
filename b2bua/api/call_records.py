"""Reading call records for ``GET /v1/calls`` behind a small interface.

Call records are written by the CDR writer. The API only queries them, through
:class:`CallRecordQuery`: :class:`StoreCallRecordQuery` reads the store's
``call_records`` table through its CDR reads (``store.cdr.list_records`` and
``get_record``); :class:`NoCallRecords` serves a store without records.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, fields
from typing import Any, Protocol

__all__ = [
    "CallFilter",
    "CallRecord",
    "CallRecordQuery",
    "InvalidCursor",
    "NoCallRecords",
    "StoreCallRecordQuery",
]


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call attempt (DESIGN section 5); times are epoch seconds."""

    id: str
    inbound_call_id: str
    outbound_call_id: str | None
    tenant_id: str | None
    binding_id: str | None
    order_id: str | None
    mode: str | None
    x: str
    caller: str
    callee: str | None
    direction: str | None
    inbound_trunk: str | None
    source_address: str | None
    outbound_trunk: str | None
    invite_at: float
    ringing_at: float | None
    answered_at: float | None
    ended_at: float | None
    duration_s: float | None
    pdd_ms: int | None
    final_status: int | None
    end_reason: str | None
    released_by: str | None
    hash: str | None
    prev_hash: str | None
    shown_number: str | None = None
    rejection: str | None = None
    node: str | None = None
    chain_seq: int | None = None


@dataclass(frozen=True, slots=True)
class CallFilter:
    """Criteria of ``GET /v1/calls``; every given one must hold.

    ``number`` matches the caller or the callee (a real number); ``since`` and
    ``until`` bound ``invite_at`` (``since <= invite_at < until``).
    """

    x: str | None = None
    number: str | None = None
    binding_id: str | None = None
    since: float | None = None
    until: float | None = None


class InvalidCursor(ValueError):
    """A pagination cursor this server did not hand out."""


class CallRecordQuery(Protocol):
    """What the API needs of the call-record store."""

    async def list_calls(
        self, tenant_id: str | None, filters: CallFilter, limit: int, cursor: str | None
    ) -> tuple[list[CallRecord], str | None]:
        """Records newest first, at most ``limit``, and the cursor of the next page.

        ``tenant_id=None`` means every tenant (the operator). Raises
        :class:`InvalidCursor` for a cursor it cannot read.
        """
        ...

    async def get_call(self, call_id: str) -> CallRecord | None:
        """The record ``call_id`` or None; the caller checks the tenant."""
        ...


class NoCallRecords:
    """The query used while no call-record table exists: nothing is ever found."""

    async def list_calls(
        self, tenant_id: str | None, filters: CallFilter, limit: int, cursor: str | None
    ) -> tuple[list[CallRecord], str | None]:
        if cursor is not None:
            decode_cursor(cursor)  # still reject garbage consistently
        return [], None

    async def get_call(self, call_id: str) -> CallRecord | None:
        return None


def encode_cursor(invite_at: float, record_id: str) -> str:
    """An opaque keyset cursor: the sort key of the last record of a page."""
    raw = f"{invite_at!r}|{record_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Inverse of :func:`encode_cursor`; raises :class:`InvalidCursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, record_id = raw.partition("|")
        if not record_id:
            raise ValueError("no id")
        return float(at), record_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("invalid cursor") from exc


class _CdrReads(Protocol):
    """The part of :class:`~b2bua.store.sql_cdr.SqlCdrStore` this module uses."""

    async def get_record(self, record_id: str) -> Any: ...

    async def list_records(
        self, where: Any, *, limit: int, before: tuple[float, str] | None = None
    ) -> list[Any]: ...


def _record(draft: Any) -> CallRecord:
    """Our view of a store record (read by field name, so new columns are ignored)."""
    values: dict[str, Any] = {name: getattr(draft, name, None) for name in _FIELDS}
    return CallRecord(**values)


_FIELDS = tuple(f.name for f in fields(CallRecord))


class StoreCallRecordQuery:
    """:class:`CallRecordQuery` over the store's call-record reads."""

    def __init__(self, cdr: _CdrReads) -> None:
        self._cdr = cdr

    async def list_calls(
        self, tenant_id: str | None, filters: CallFilter, limit: int, cursor: str | None
    ) -> tuple[list[CallRecord], str | None]:
        from b2bua.store.sql_cdr_read import RecordFilter

        before = decode_cursor(cursor) if cursor is not None else None
        where = RecordFilter(
            tenant_id=tenant_id, x=filters.x, number=filters.number,
            binding_id=filters.binding_id, since=filters.since, until=filters.until,
        )  # fmt: skip
        # One more than asked tells whether a next page exists.
        drafts = await self._cdr.list_records(where, limit=limit + 1, before=before)
        records = [_record(d) for d in drafts[:limit]]
        next_cursor = None
        if len(drafts) > limit and records:
            next_cursor = encode_cursor(records[-1].invite_at, records[-1].id)
        return records, next_cursor

    async def get_call(self, call_id: str) -> CallRecord | None:
        draft = await self._cdr.get_record(call_id)
        return _record(draft) if draft is not None else None
