"""``/v1/calls``: call records (DESIGN section 5), read through a :class:`CallRecordQuery`."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from b2bua.api.auth import Principal
from b2bua.api.call_records import CallFilter, CallRecord, InvalidCursor
from b2bua.api.deps import MAX_PAGE, Deps
from b2bua.api.errors import ApiError, error_responses
from b2bua.api.models import CallRecordList, CallRecordOut, rfc3339

__all__ = ["call_record_out", "calls_router"]


def call_record_out(record: CallRecord) -> CallRecordOut:
    """The API view of a record: epoch times become RFC 3339."""
    return CallRecordOut(
        id=record.id,
        inbound_call_id=record.inbound_call_id,
        outbound_call_id=record.outbound_call_id,
        tenant_id=record.tenant_id,
        binding_id=record.binding_id,
        order_id=record.order_id,
        mode=record.mode,
        x=record.x,
        caller=record.caller,
        callee=record.callee,
        direction=record.direction,
        inbound_trunk=record.inbound_trunk,
        source_address=record.source_address,
        outbound_trunk=record.outbound_trunk,
        invite_at=rfc3339(record.invite_at) or datetime.now(UTC),
        ringing_at=rfc3339(record.ringing_at),
        answered_at=rfc3339(record.answered_at),
        ended_at=rfc3339(record.ended_at),
        duration_s=record.duration_s,
        pdd_ms=record.pdd_ms,
        final_status=record.final_status,
        end_reason=record.end_reason,
        released_by=record.released_by,
        shown_number=record.shown_number,
        rejection=record.rejection,
        node=record.node,
        chain_seq=record.chain_seq,
        hash=record.hash,
        prev_hash=record.prev_hash,
    )


def _epoch(value: datetime | None, field: str) -> float | None:
    """A query time as epoch seconds; a time without zone is taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.timestamp()
    except (OverflowError, ValueError, OSError) as exc:  # e.g. year 1 with a +01:00 offset
        raise ApiError(422, f"{field} is out of range", field=field) from exc


def calls_router(deps: Deps) -> APIRouter:
    """The call-record endpoints, bound to ``deps``."""
    router = APIRouter(prefix="/v1/calls", tags=["calls"])
    Caller = Annotated[Principal, Depends(deps.principal)]

    @router.get(
        "",
        response_model=CallRecordList,
        responses=error_responses(401, 404, 422, 503),
        summary="Search call records, newest first",
        description="`since` <= invite time < `until`; RFC 3339 times (UTC if no offset).",
    )
    async def list_calls(
        caller: Caller,
        x: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        number: Annotated[
            str | None, Query(min_length=1, max_length=64, description="Caller or callee")
        ] = None,
        binding_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant_id: Annotated[
            str | None, Query(min_length=1, max_length=64, description="Operator only")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> CallRecordList:
        filters = CallFilter(
            x=deps.middle(x, "x") if x is not None else None,
            number=deps.real(number, "number") if number is not None else None,
            binding_id=binding_id,
            since=_epoch(since, "since"),
            until=_epoch(until, "until"),
        )
        scope = deps.scope(caller, tenant_id)
        try:
            records, next_cursor = await deps.calls.list_calls(scope, filters, limit, cursor)
        except InvalidCursor as exc:
            raise ApiError(422, "invalid cursor", field="cursor") from exc
        return CallRecordList(items=[call_record_out(r) for r in records], next_cursor=next_cursor)

    @router.get(
        "/{call_id}",
        response_model=CallRecordOut,
        responses=error_responses(401, 404, 422, 503),
        summary="Show a call record",
    )
    async def get_call(
        call_id: Annotated[str, Path(min_length=1, max_length=128)], caller: Caller
    ) -> CallRecordOut:
        record = await deps.calls.get_call(call_id)
        if record is None or (
            caller.tenant_id is not None and record.tenant_id != caller.tenant_id
        ):
            raise ApiError(404, f"call {call_id} not found")
        return call_record_out(record)

    return router
