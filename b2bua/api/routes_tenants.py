"""``/v1/tenants``: the operator creates, suspends and resumes tenants.

A tenant key may read its own tenant (``GET /v1/tenants/{id}``) and nothing else
here; another tenant's id answers 404 exactly like an unknown one.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from b2bua.api.auth import Principal
from b2bua.api.deps import Deps
from b2bua.api.errors import ApiError, error_responses
from b2bua.api.models import TenantCreate, TenantCreated, TenantList, TenantOut, TenantPatch

__all__ = ["tenants_router"]

TenantId = Annotated[str, Path(min_length=1, max_length=64, description="Tenant id")]


def tenants_router(deps: Deps) -> APIRouter:
    """The tenant endpoints, bound to ``deps``."""
    router = APIRouter(prefix="/v1/tenants", tags=["tenants"])
    service = deps.ctx.service
    Caller = Annotated[Principal, Depends(deps.principal)]
    Operator = Annotated[Principal, Depends(deps.operator)]

    @router.post(
        "",
        status_code=201,
        response_model=TenantCreated,
        responses=error_responses(401, 403, 422, 503),
        summary="Create a tenant (operator); the answer holds its API key, shown only once",
    )
    async def create_tenant(body: TenantCreate, caller: Operator) -> TenantCreated:
        tenant, api_key = await service.create_tenant(
            body.name, webhook_url=body.webhook_url, actor=caller.actor
        )
        return TenantCreated(**TenantOut.of(tenant).model_dump(), api_key=api_key)

    @router.get(
        "",
        response_model=TenantList,
        responses=error_responses(401, 403, 503),
        summary="List tenants (operator)",
    )
    async def list_tenants(caller: Operator) -> TenantList:
        return TenantList(items=[TenantOut.of(t) for t in await service.list_tenants()])

    @router.get(
        "/{tenant_id}",
        response_model=TenantOut,
        responses=error_responses(401, 404, 422, 503),
        summary="Show a tenant (the operator, or the tenant itself)",
    )
    async def get_tenant(tenant_id: TenantId, caller: Caller) -> TenantOut:
        if not caller.owns(tenant_id):
            raise ApiError(404, f"tenant {tenant_id} not found")
        return TenantOut.of(await service.get_tenant(tenant_id))

    @router.patch(
        "/{tenant_id}",
        response_model=TenantOut,
        responses=error_responses(401, 403, 404, 422, 503),
        summary="Suspend or resume a tenant, change its webhook (operator)",
    )
    async def patch_tenant(tenant_id: TenantId, body: TenantPatch, caller: Operator) -> TenantOut:
        clear_webhook = "webhook_url" in body.model_fields_set and body.webhook_url is None
        tenant = await service.update_tenant(
            tenant_id,
            suspended=body.suspended,
            webhook_url=body.webhook_url,
            clear_webhook=clear_webhook,
            actor=caller.actor,
        )
        deps.resolver.forget(tenant_id)
        return TenantOut.of(tenant)

    return router
