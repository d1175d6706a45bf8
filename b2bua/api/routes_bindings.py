"""``/v1/bindings``: create, show, change, release and search bindings.

The routes check what they can name precisely (each number with its dotted field,
consent when configured) and leave the binding rules (modes, ttl bounds, order_id,
allocation) to :class:`~b2bua.bindings.service.BindingService`, whose errors carry
their HTTP status and field. A tenant key acts on its own tenant; the operator
names the tenant with ``?tenant_id=`` when creating.
"""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import QueryParams

from b2bua.api.auth import Principal
from b2bua.api.deps import MAX_PAGE, Deps, decode_offset, encode_offset
from b2bua.api.errors import ApiError, error_responses
from b2bua.api.models import (
    BindingCreate,
    BindingList,
    BindingOut,
    BindingPatch,
    StateName,
    binding_json,
)
from b2bua.bindings.model import Binding, BindingFilter, BindingSpec, BindingUpdate

__all__ = ["bindings_router"]

BindingId = Annotated[str, Path(min_length=1, max_length=64, description="Binding id")]
TenantQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        description="Operator only: the tenant to act on (a tenant key acts on its own)",
    ),
]


_CREATE_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BindingCreate"}}},
    },
    "parameters": [
        {
            "name": "tenant_id",
            "in": "query",
            "required": False,
            "description": "Operator only: the tenant to act on (a tenant key acts on its own)",
            "schema": {"type": "string", "minLength": 1, "maxLength": 64},
        }
    ],
    "security": [{"ApiKey": []}],
}
EXTRA_SCHEMAS = (BindingCreate,)
"""Models that routes reference only through ``openapi_extra``; see provisioning."""


def _answer(binding: Binding, now: float, status: int = 200) -> Response:
    """The binding as the response body (``BindingOut``, serialised directly)."""
    return Response(
        _dumps(binding_json(binding, now)), status_code=status, media_type="application/json"
    )


def _dumps(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def bindings_router(deps: Deps) -> APIRouter:
    """The binding endpoints, bound to ``deps``."""
    router = APIRouter(prefix="/v1/bindings", tags=["bindings"])
    ctx = deps.ctx
    service = ctx.service
    Caller = Annotated[Principal, Depends(deps.principal)]

    def spec_of(body: BindingCreate) -> BindingSpec:
        """Normalise every number of ``body`` (422 naming its field) into a spec."""
        if ctx.settings.require_consent and not body.consent:
            raise ApiError(422, "consent is required", code="consent_required", field="consent")
        group = tuple(deps.real(m, f"group.{i}") for i, m in enumerate(body.group or ()))
        return BindingSpec(
            mode=body.mode,
            ttl_s=body.ttl_s,
            a=deps.real(body.a, "a") if body.a is not None else None,
            b=deps.real(body.b, "b") if body.b is not None else None,
            group=group,
            x=deps.middle(body.x, "x") if body.x is not None else None,
            y=deps.middle(body.y, "y") if body.y is not None else None,
            order_id=body.order_id,
            direction=body.direction,
            max_call_s=body.max_call_s,
            label=body.label,
            record=body.record,
            consent=body.consent,
        )

    @router.post(
        "",
        status_code=201,
        response_model=BindingOut,
        responses=error_responses(401, 403, 404, 409, 422, 503),
        summary="Create a binding; X (and Y) are allocated from the pool unless given",
        description=(
            "409 when no middle number of the pool is free for these participants, or "
            "the requested x/y is taken; 403 when the tenant is suspended."
        ),
        openapi_extra=_CREATE_OPENAPI,
    )
    async def create_binding(request: Request) -> Response:
        # Served by `create` through FastRoutes (see provisioning); this declaration
        # documents the route, and `openapi_extra` what parameters would declare.
        authorization = request.headers.get("authorization")
        query = request.scope.get("query_string", b"")
        status, body = await create(authorization, query, await request.body())
        return Response(body, status_code=status, media_type="application/json")

    async def create(authorization: str | None, query: bytes, raw: bytes) -> tuple[int, bytes]:
        """``POST /v1/bindings`` from the raw request: the API's hot path."""
        caller = await deps.resolver.resolve(authorization)
        tenant_id = QueryParams(query).get("tenant_id") if query else None
        if tenant_id is not None and not 1 <= len(tenant_id) <= 64:
            raise ApiError(422, "tenant_id must be 1..64 characters", field="tenant_id")
        try:
            body = BindingCreate.model_validate_json(raw)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            ) from exc
        spec = spec_of(body)
        owner = deps.scope(caller, tenant_id)
        if owner is None:
            raise ApiError(422, "the operator must name the tenant", field="tenant_id")
        binding = await service.create_binding(owner, spec, actor=caller.actor)
        return 201, _dumps(binding_json(binding, ctx.clock()))

    deps.fast_routes[("POST", "/v1/bindings")] = create

    @router.get(
        "",
        response_model=BindingList,
        responses=error_responses(401, 404, 422, 503),
        summary="Search bindings, newest first",
    )
    async def list_bindings(
        caller: Caller,
        x: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        number: Annotated[
            str | None, Query(min_length=1, max_length=64, description="A, B or a group member")
        ] = None,
        order_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        state: StateName | None = None,
        tenant_id: TenantQuery = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Response:
        offset = decode_offset(cursor)
        where = BindingFilter(
            tenant_id=deps.scope(caller, tenant_id),
            x=deps.middle(x, "x") if x is not None else None,
            number=deps.real(number, "number") if number is not None else None,
            order_id=order_id,
            state=state,
            limit=limit + 1,  # one more tells whether another page exists
            offset=offset,
        )
        found = await service.list_bindings(where)
        now = ctx.clock()
        page = {
            "items": [binding_json(b, now) for b in found[:limit]],
            "next_cursor": encode_offset(offset + limit) if len(found) > limit else None,
        }
        return Response(_dumps(page), media_type="application/json")

    @router.get(
        "/{binding_id}",
        response_model=BindingOut,
        responses=error_responses(401, 404, 422, 503),
        summary="Show a binding",
    )
    async def get_binding(binding_id: BindingId, caller: Caller) -> Response:
        binding = await service.get_binding(binding_id, tenant_id=caller.tenant_id)
        return _answer(binding, ctx.clock())

    @router.patch(
        "/{binding_id}",
        response_model=BindingOut,
        responses=error_responses(401, 404, 409, 422, 503),
        summary="Change an active binding (ttl_s restarts its lifetime from now)",
        description="409 when the binding is no longer active or a new participant clashes.",
    )
    async def patch_binding(binding_id: BindingId, body: BindingPatch, caller: Caller) -> Response:
        sent = body.model_fields_set
        if not sent:
            # Nothing to change: answer the binding without a new version or audit row.
            binding = await service.get_binding(binding_id, tenant_id=caller.tenant_id)
            return _answer(binding, ctx.clock())
        group = None
        if body.group is not None:
            group = tuple(deps.real(m, f"group.{i}") for i, m in enumerate(body.group))
        changes = BindingUpdate(
            ttl_s=body.ttl_s,
            b=deps.real(body.b, "b") if body.b is not None else None,
            group=group,
            direction=body.direction,
            max_call_s=body.max_call_s,
            label=body.label,
            clear=tuple(
                name
                for name in ("label", "max_call_s")
                if name in sent and getattr(body, name) is None
            ),
        )
        binding = await service.update_binding(
            binding_id, changes, actor=caller.actor, tenant_id=caller.tenant_id
        )
        return _answer(binding, ctx.clock())

    @router.delete(
        "/{binding_id}",
        response_model=BindingOut,
        responses=error_responses(401, 404, 422, 503),
        summary="Release a binding (it stays stored for tracing); answers the released binding",
    )
    async def release_binding(binding_id: BindingId, caller: Caller) -> Response:
        binding = await service.release_binding(
            binding_id, actor=caller.actor, tenant_id=caller.tenant_id
        )
        return _answer(binding, ctx.clock())

    return router
