"""Errors of the binding service; each carries the HTTP status the API answers with."""

from __future__ import annotations

__all__ = [
    "BindingError",
    "BindingNotActive",
    "BindingNotFound",
    "InvalidBinding",
    "ModeNotAllowed",
    "NoNumberAvailable",
    "NumberConflict",
    "TenantNotFound",
    "TenantSuspended",
]


class BindingError(Exception):
    """Base of binding-service errors. ``http_status`` and ``code`` feed the API."""

    http_status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidBinding(BindingError, ValueError):
    """Input that breaks the rules: a malformed number, a missing order_id..."""

    http_status = 422
    code = "invalid"


class ModeNotAllowed(InvalidBinding):
    """The tenant may not use this binding mode."""

    code = "mode_not_allowed"


class NoNumberAvailable(BindingError):
    """No middle number of the tenant's pool is free under the rules (API: 409)."""

    http_status = 409
    code = "no_number_available"


class NumberConflict(BindingError):
    """The requested X/Y (or a new participant) clashes with another binding (409)."""

    http_status = 409
    code = "conflict"


class BindingNotFound(BindingError, LookupError):
    """Unknown binding id, or one of another tenant (API: 404)."""

    http_status = 404
    code = "not_found"


class TenantNotFound(BindingError, LookupError):
    """Unknown tenant id (API: 404)."""

    http_status = 404
    code = "not_found"


class TenantSuspended(BindingError):
    """A suspended tenant may not create bindings (API: 403)."""

    http_status = 403
    code = "tenant_suspended"


class BindingNotActive(BindingError):
    """Only an active binding can be changed (API: 409)."""

    http_status = 409
    code = "not_active"
