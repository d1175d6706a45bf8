"""The API's view of call records: a :class:`~b2bua.api.call_records.CallRecordQuery`.

Pass ``CdrService.reader`` as ``ApiContext(calls=...)``. It answers from the
indexes of :mod:`b2bua.store.sql_cdr_read` with the API's keyset cursors.
"""

from __future__ import annotations

from b2bua.api.call_records import CallFilter, CallRecord, decode_cursor, encode_cursor
from b2bua.cdr.record import RecordDraft
from b2bua.store.sql_cdr import SqlCdrStore
from b2bua.store.sql_cdr_read import RecordFilter

__all__ = ["CallRecordReader", "to_call_record"]


def to_call_record(draft: RecordDraft) -> CallRecord:
    """The API record for a stored draft."""
    return CallRecord(
        id=draft.id,
        inbound_call_id=draft.inbound_call_id,
        outbound_call_id=draft.outbound_call_id,
        tenant_id=draft.tenant_id,
        binding_id=draft.binding_id,
        order_id=draft.order_id,
        mode=draft.mode,
        x=draft.x,
        caller=draft.caller,
        callee=draft.callee,
        direction=draft.direction,
        inbound_trunk=draft.inbound_trunk,
        source_address=draft.source_address,
        outbound_trunk=draft.outbound_trunk,
        invite_at=draft.invite_at,
        ringing_at=draft.ringing_at,
        answered_at=draft.answered_at,
        ended_at=draft.ended_at,
        duration_s=draft.duration_s,
        pdd_ms=draft.pdd_ms,
        final_status=draft.final_status,
        end_reason=draft.end_reason,
        released_by=draft.released_by,
        hash=draft.hash,
        prev_hash=draft.prev_hash,
    )


class CallRecordReader:
    """``list_calls`` / ``get_call`` over the call-record store."""

    def __init__(self, store: SqlCdrStore) -> None:
        self._store = store

    async def list_calls(
        self, tenant_id: str | None, filters: CallFilter, limit: int, cursor: str | None
    ) -> tuple[list[CallRecord], str | None]:
        """Newest first, ``limit`` at most, and the cursor of the next page (or None)."""
        before = decode_cursor(cursor) if cursor is not None else None
        where = RecordFilter(
            tenant_id=tenant_id,
            x=filters.x,
            number=filters.number,
            binding_id=filters.binding_id,
            since=filters.since,
            until=filters.until,
        )
        drafts = await self._store.list_records(where, limit=limit + 1, before=before)
        records = [to_call_record(d) for d in drafts[:limit]]
        next_cursor = None
        if len(drafts) > limit and records:
            next_cursor = encode_cursor(records[-1].invite_at, records[-1].id)
        return records, next_cursor

    async def get_call(self, call_id: str) -> CallRecord | None:
        """The record ``call_id`` or None (the API checks the tenant)."""
        draft = await self._store.get_record(call_id)
        return to_call_record(draft) if draft is not None else None
