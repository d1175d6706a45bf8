"""``/v1/numbers``: the operator fills tenants' pools; tenants list their own numbers."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from b2bua.api.auth import Principal
from b2bua.api.deps import MAX_PAGE, Deps, decode_offset, encode_offset
from b2bua.api.errors import error_responses
from b2bua.api.models import NumberList, NumberOut, NumbersAdded, NumbersImport

__all__ = ["numbers_router"]


def numbers_router(deps: Deps) -> APIRouter:
    """The pool-number endpoints, bound to ``deps``."""
    router = APIRouter(prefix="/v1/numbers", tags=["numbers"])
    service = deps.ctx.service
    Caller = Annotated[Principal, Depends(deps.principal)]
    Operator = Annotated[Principal, Depends(deps.operator)]

    @router.post(
        "",
        status_code=201,
        response_model=NumbersAdded,
        responses=error_responses(401, 403, 404, 409, 422, 503),
        summary="Add middle numbers to a tenant's pool (operator)",
        description="409 if a number belongs to another tenant (then nothing is added).",
    )
    async def import_numbers(body: NumbersImport, caller: Operator) -> NumbersAdded:
        numbers = [deps.middle(n, f"numbers.{i}") for i, n in enumerate(body.numbers)]
        added = await service.import_numbers(body.tenant_id, numbers, actor=caller.actor)
        return NumbersAdded(added=added)

    @router.get(
        "",
        response_model=NumberList,
        responses=error_responses(401, 404, 422, 503),
        summary="List pool numbers (a tenant sees its own; the operator all or one tenant's)",
    )
    async def list_numbers(
        caller: Caller,
        tenant_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
    ) -> NumberList:
        offset = decode_offset(cursor)
        numbers = await service.list_numbers(deps.scope(caller, tenant_id))
        page = numbers[offset : offset + limit]
        more = offset + limit < len(numbers)
        return NumberList(
            items=[NumberOut.of(n) for n in page],
            next_cursor=encode_offset(offset + limit) if more else None,
        )

    return router
