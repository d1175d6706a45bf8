"""Bearer-key authentication: the operator key and per-tenant API keys.

The operator key comes from the configuration and is compared in constant time.
Tenant keys are random 32-byte tokens the binding service hands out once when the
tenant is created; only their SHA-256 digest is stored (a slow password hash buys
nothing for keys with 256 bits of entropy, and SHA-256 costs microseconds).

Looking a key up costs a store read, so resolved tenant keys are kept in a small
cache for a few seconds; the API evicts a tenant's entry whenever it changes the
tenant (suspension) so that the node which made the change applies it at once.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING

from b2bua.api.errors import ApiError

if TYPE_CHECKING:
    from b2bua.bindings.service import BindingService

__all__ = ["OPERATOR_ACTOR", "KeyResolver", "Principal", "unauthorized"]

OPERATOR_ACTOR = "operator"
_CACHE_TTL_S = 5.0
_CACHE_MAX = 10_000


class Principal:
    """Who is calling: the operator (``tenant_id is None``) or one tenant."""

    __slots__ = ("tenant_id",)

    def __init__(self, tenant_id: str | None) -> None:
        self.tenant_id = tenant_id

    @property
    def is_operator(self) -> bool:
        """True for the operator key, which may do everything."""
        return self.tenant_id is None

    @property
    def actor(self) -> str:
        """The name written into the audit trail for changes this caller makes."""
        return OPERATOR_ACTOR if self.tenant_id is None else f"tenant:{self.tenant_id}"

    def require_operator(self) -> None:
        """Raise 403 unless this is the operator."""
        if not self.is_operator:
            raise ApiError(403, "this endpoint needs the operator key")

    def owns(self, tenant_id: str) -> bool:
        """Whether this caller may see objects of ``tenant_id``."""
        return self.tenant_id is None or self.tenant_id == tenant_id


def unauthorized(message: str = "missing or invalid API key") -> ApiError:
    """The 401 every authentication failure answers (the handler adds WWW-Authenticate)."""
    return ApiError(401, message)


class KeyResolver:
    """Turns an ``Authorization`` header into a :class:`Principal` or a 401."""

    def __init__(
        self, service: BindingService, operator_key: str, clock: Callable[[], float]
    ) -> None:
        self._service = service
        # An empty operator key disables operator access rather than accepting "".
        self._operator_key = operator_key.encode("utf-8") if operator_key else None
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}

    async def resolve(self, authorization: str | None) -> Principal:
        """Authenticate an ``Authorization`` header value (``Bearer <key>``)."""
        if not authorization:
            raise unauthorized()
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise unauthorized("expected 'Authorization: Bearer <key>'")
        return await self.resolve_key(key)

    async def resolve_key(self, key: str) -> Principal:
        """Authenticate a bare key."""
        if not key:
            raise unauthorized()
        if self._operator_key is not None and hmac.compare_digest(
            key.encode("utf-8", "surrogateescape"), self._operator_key
        ):
            return Principal(None)
        tenant_id = await self._tenant_for(key)
        if tenant_id is None:
            raise unauthorized()
        return Principal(tenant_id)

    async def _tenant_for(self, key: str) -> str | None:
        # Cache by digest, not by key, so that no raw key lingers in memory.
        key_hash = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        now = self._clock()
        cached = self._cache.get(key_hash)
        if cached is not None and cached[1] > now:
            return cached[0]
        tenant = await self._service.authenticate_tenant(key)
        if tenant is None:
            return None
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()  # crude but bounded; a miss costs one indexed read
        self._cache[key_hash] = (tenant.id, now + _CACHE_TTL_S)
        return tenant.id

    def forget(self, tenant_id: str) -> None:
        """Drop cached keys of ``tenant_id`` (after the API changed the tenant)."""
        for key_hash, (cached_id, _) in list(self._cache.items()):
            if cached_id == tenant_id:
                del self._cache[key_hash]
