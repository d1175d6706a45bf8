"""``/v1/blocklist``: block lists of real numbers (global for the operator, per tenant).

- ``POST /v1/blocklist`` ``{number, tenant_id?, reason?, ttl_s?}`` -> 201 with the
  entry. The operator blocks globally, or for one tenant with ``tenant_id``; a
  tenant key always acts on its own list (another tenant's id answers 404).
- ``GET /v1/blocklist?tenant_id=&number=&limit=&cursor=``: a tenant sees its own
  list; the operator sees every list, or one tenant's with ``tenant_id``, or only
  the global one with ``scope=global``. Automatic (fraud) entries are global.
- ``DELETE /v1/blocklist/{number}?tenant_id=`` -> 200 with the removed entry, 404
  if the number was not on that list.

A change takes effect on this node when the answer is sent, on other nodes within
a second. Bad numbers answer 422 naming the field (``number``).
"""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from b2bua.api.auth import Principal
from b2bua.api.context import ApiContext
from b2bua.api.deps import MAX_PAGE, Deps, decode_offset, encode_offset
from b2bua.api.errors import ApiError, error_responses, install_error_handlers
from b2bua.api.models import rfc3339
from b2bua.policy.errors import BlockNotFound, InvalidBlock
from b2bua.policy.model import BlockEntry
from b2bua.policy.service import MAX_BLOCK_TTL_S, MAX_REASON, PolicyService

__all__ = ["BlockCreate", "BlockList", "BlockOut", "install_policy_api", "policy_router"]

TenantQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        description="Operator only: the tenant whose list to act on (a tenant key acts on its own)",
    ),
]


class BlockCreate(BaseModel):
    """``POST /v1/blocklist``; without ``ttl_s`` the block lasts until removed."""

    model_config = ConfigDict(extra="forbid")

    number: Annotated[StrictStr, Field(min_length=1, max_length=64, examples=["13800138000"])]
    tenant_id: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None
    reason: Annotated[StrictStr, Field(max_length=MAX_REASON)] = ""
    ttl_s: Annotated[StrictInt, Field(ge=1, le=MAX_BLOCK_TTL_S)] | None = None


class BlockOut(BaseModel):
    """A block entry; ``tenant_id`` is null on the global list."""

    number: str
    tenant_id: str | None
    source: Literal["manual", "auto"]
    reason: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None

    @classmethod
    def of(cls, entry: BlockEntry) -> "BlockOut":
        return cls(
            number=entry.number,
            tenant_id=entry.tenant_id,
            source=entry.source.value,
            reason=entry.reason,
            created_at=rfc3339(entry.created_at),  # type: ignore[arg-type]
            created_by=entry.created_by,
            expires_at=rfc3339(entry.expires_at),
        )


class BlockList(BaseModel):
    """A page of block entries; ``next_cursor`` fetches the next page."""

    items: list[BlockOut]
    next_cursor: str | None = None


def _invalid(exc: InvalidBlock) -> ApiError:
    return ApiError(
        422, str(exc), code="invalid_number" if exc.field == "number" else None, field=exc.field
    )


def policy_router(deps: Deps, service: PolicyService) -> APIRouter:
    """The block-list endpoints, bound to ``deps`` and ``service``."""
    router = APIRouter(prefix="/v1/blocklist", tags=["blocklist"])
    Caller = Annotated[Principal, Depends(deps.principal)]

    def number_of(value: str, field: str) -> str:
        try:
            return service.clean_number(value, field)
        except InvalidBlock as exc:
            raise _invalid(exc) from exc

    @router.post(
        "",
        status_code=201,
        response_model=BlockOut,
        responses=error_responses(401, 404, 422, 503),
        summary="Block a real number (globally for the operator, or on a tenant's list)",
    )
    async def add_block(body: BlockCreate, caller: Caller) -> BlockOut:
        scope = deps.scope(caller, body.tenant_id)
        number = number_of(body.number, "number")
        try:
            entry = await service.block(
                number, tenant_id=scope, reason=body.reason, ttl_s=body.ttl_s, actor=caller.actor
            )
        except InvalidBlock as exc:
            raise _invalid(exc) from exc
        return BlockOut.of(entry)

    @router.get(
        "",
        response_model=BlockList,
        responses=error_responses(401, 404, 422, 503),
        summary="List block entries (a tenant its own; the operator all, global or one tenant's)",
    )
    async def list_blocks(
        caller: Caller,
        tenant_id: TenantQuery = None,
        scope: Annotated[
            Literal["all", "global"],
            Query(description="Operator only: `global` lists only the global list"),
        ] = "all",
        number: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
    ) -> BlockList:
        offset = decode_offset(cursor)
        tenant = deps.scope(caller, tenant_id)
        clean = None if number is None else number_of(number, "number")
        global_only = caller.is_operator and tenant is None and scope == "global"
        entries = await service.list_blocks(
            tenant_id=tenant, global_only=global_only, number=clean, limit=limit + 1, offset=offset
        )
        more = len(entries) > limit
        return BlockList(
            items=[BlockOut.of(e) for e in entries[:limit]],
            next_cursor=encode_offset(offset + limit) if more else None,
        )

    @router.delete(
        "/{number}",
        response_model=BlockOut,
        responses=error_responses(401, 404, 422, 503),
        summary="Unblock a number (the global list for the operator, or a tenant's list)",
    )
    async def remove_block(
        number: Annotated[str, Path(min_length=1, max_length=64)],
        caller: Caller,
        tenant_id: TenantQuery = None,
    ) -> BlockOut:
        scope = deps.scope(caller, tenant_id)
        clean = number_of(number, "number")
        try:
            entry = await service.unblock(clean, tenant_id=scope, actor=caller.actor)
        except BlockNotFound as exc:
            raise ApiError(404, str(exc), field="number") from exc
        return BlockOut.of(entry)

    return router


def install_policy_api(
    app: FastAPI, policy_service: PolicyService, ctx: ApiContext, *, deps: Deps | None = None
) -> None:
    """Add ``/v1/blocklist`` to ``app``, authenticated like the provisioning API.

    ``ctx`` is the provisioning API's context (its key resolver authenticates the
    operator and tenant keys). Error handlers are installed when the provisioning
    API has not installed them already.
    """
    deps = deps or Deps(ctx)
    if getattr(app.state, "api_authenticate", None) is None:

        async def authenticate(request: Request) -> Principal:
            return await deps.resolver.resolve(request.headers.get("authorization"))

        install_error_handlers(app, authenticate)
    app.include_router(policy_router(deps, policy_service))
    # The schema is cached on first use; a router added after that would be missing.
    app.openapi_schema = None
