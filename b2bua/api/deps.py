"""Helpers shared by the route modules: authentication, tenant scope, numbers, paging.

Route handlers are defined inside factories and close over one :class:`Deps`, so
this module and the route modules avoid ``from __future__ import annotations``:
FastAPI must evaluate annotations that name local dependencies.
"""

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from b2bua.api.auth import KeyResolver, Principal, unauthorized
from b2bua.api.call_records import CallRecordQuery, NoCallRecords, StoreCallRecordQuery
from b2bua.api.context import ApiContext
from b2bua.api.errors import ApiError
from b2bua.api.fast_path import FastHandler
from b2bua.numbering import NumberError

__all__ = ["MAX_PAGE", "Deps", "decode_offset", "encode_offset"]

MAX_PAGE = 1000
"""Largest ``limit`` a list endpoint accepts."""

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="`Authorization: Bearer <key>`: the operator key or a tenant's API key.",
)


class Deps:
    """Per-app dependencies the routers close over (no global state)."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.resolver = KeyResolver(ctx.service, ctx.operator_key, ctx.clock)
        self.calls: CallRecordQuery = ctx.calls or _store_calls(ctx)
        self.fast_routes: dict[tuple[str, str], FastHandler] = {}
        """Routes the routers also serve through :class:`~b2bua.api.fast_path.FastRoutes`."""

        async def principal(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
        ) -> Principal:
            if credentials is None:
                raise unauthorized()
            return await self.resolver.resolve_key(credentials.credentials.strip())

        async def operator(caller: Annotated[Principal, Depends(principal)]) -> Principal:
            caller.require_operator()
            return caller

        async def authenticate(request: Request) -> Principal:
            return await self.resolver.resolve(request.headers.get("authorization"))

        self.authenticate = authenticate
        """The caller of a route that reads its request itself, or a 401."""
        self.principal = principal
        """FastAPI dependency: the authenticated caller, or a 401."""
        self.operator = operator
        """FastAPI dependency: the operator, a 401 for no key, a 403 for a tenant key."""

    # -- tenant scope -----------------------------------------------------------
    @staticmethod
    def scope(principal: Principal, tenant_id: str | None) -> str | None:
        """The tenant a request acts on: a tenant key's own, or the operator's choice.

        A tenant naming another tenant gets 404, exactly like an unknown tenant, so
        that ids of other tenants cannot be probed.
        """
        if principal.tenant_id is None:
            return tenant_id
        if tenant_id is not None and tenant_id != principal.tenant_id:
            raise ApiError(404, f"tenant {tenant_id} not found", field="tenant_id")
        return principal.tenant_id

    # -- numbers ----------------------------------------------------------------
    def real(self, value: str, field: str) -> str:
        """``value`` as a canonical real number, or a 422 naming ``field``."""
        try:
            return self.ctx.service.rules.real(value)
        except NumberError as exc:
            raise ApiError(
                422, f"{field}: not a valid real number ({exc.reason.value})",
                code="invalid_number", field=field,
            ) from exc  # fmt: skip

    def middle(self, value: str, field: str) -> str:
        """``value`` as a canonical middle number, or a 422 naming ``field``."""
        try:
            return self.ctx.service.rules.middle(value)
        except NumberError as exc:
            raise ApiError(
                422, f"{field}: not a valid middle number ({exc.reason.value})",
                code="invalid_number", field=field,
            ) from exc  # fmt: skip


def _store_calls(ctx: ApiContext) -> CallRecordQuery:
    cdr = getattr(ctx.store, "cdr", None)
    return StoreCallRecordQuery(cdr) if cdr is not None else NoCallRecords()


def encode_offset(offset: int) -> str:
    """An opaque cursor for offset paging (lists the store can only page by offset)."""
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode("ascii").rstrip("=")


def decode_offset(cursor: str | None) -> int:
    """Inverse of :func:`encode_offset`; a foreign or damaged cursor is a 422."""
    if cursor is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, number = raw.partition(":")
        # Bounded so that a forged cursor cannot overflow the database integer.
        if kind != "o" or not number.isdigit() or not number.isascii() or len(number) > 9:
            raise ValueError(raw)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid cursor", field="cursor") from exc
