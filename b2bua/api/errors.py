"""The one error shape of the HTTP API and the handlers that produce it.

Every failure answers ``{"error": {"code", "message", "field"}}`` (DESIGN section 6):
FastAPI's own validation errors, unknown routes and methods, domain errors from the
binding service and the numbering rules, and store errors. ``field`` is a dotted
path into the request (``group.1``, ``ttl_s``) so that a client can point at the
offending input. Bad input never becomes a 500: anything unexpected is logged and
answered with a generic 500 in the same shape, which the tests treat as a bug.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from b2bua.bindings.errors import BindingError
from b2bua.numbering import NumberError
from b2bua.store.errors import ConflictError, NotFoundError, StoreError, UnavailableError

__all__ = [
    "ERROR_RESPONSES",
    "ApiError",
    "ErrorBody",
    "ErrorResponse",
    "error_responses",
    "install_error_handlers",
]

_log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    503: "unavailable",
}

# Pydantic error types that deserve a more precise code than "invalid".
_VALIDATION_CODES = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "json_invalid": "invalid_json",
}


class ErrorBody(BaseModel):
    """What went wrong: a stable machine ``code``, a human ``message``, the ``field``."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(examples=["invalid"])
    message: str = Field(examples=["ttl_s must be at most 7776000"])
    field: str | None = Field(default=None, examples=["ttl_s"])


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorBody


class ApiError(Exception):
    """An error the API answers with ``status`` and the shared error shape."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _STATUS_CODES.get(status, "error")
        self.message = message
        self.field = field


_DESCRIPTIONS = {
    401: "No valid API key (`Authorization: Bearer <key>`)",
    403: "The key may not do this (operator-only endpoint, suspended tenant)",
    404: "Unknown id, or one that belongs to another tenant",
    409: "Conflict: no middle number free under the rules, or the number is taken",
    422: "Invalid input; `field` names it as a dotted path (`group.1`)",
    503: "The store is unavailable; try again",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for ``statuses``, all with :class:`ErrorResponse`."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        if status == 401:
            entry["headers"] = {
                "WWW-Authenticate": {
                    "description": "Always `Bearer`",
                    "schema": {"type": "string"},
                }
            }
        responses[status] = entry
    return responses


ERROR_RESPONSES = error_responses(401, 422, 503)
"""Errors any authenticated endpoint may answer."""


def _body(code: str, message: str, field: str | None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def _respond(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(_body(code, message, field), status_code=status, headers=headers)


def dotted_field(loc: Sequence[int | str]) -> str | None:
    """``("body", "group", 1)`` -> ``"group.1"``; the location kind is dropped."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        kind, parts = parts[0], parts[1:]
        if not parts:
            return kind  # the body as a whole (missing or not an object)
    return ".".join(parts) or None


async def _on_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _respond(exc.status, exc.code, exc.message, exc.field)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    authenticate = getattr(request.app.state, "api_authenticate", None)
    if (
        authenticate is not None
        and request.url.path.startswith("/v1/")
        and any(e.get("type") == "json_invalid" for e in errors)
    ):
        # FastAPI decodes the JSON body before it runs any dependency, so a garbled
        # body would otherwise answer 422 to a caller without a key; keys come first.
        try:
            await authenticate(request)
        except ApiError as error:
            return await _on_api_error(request, error)
    if not errors:
        return _respond(422, "invalid", "invalid request")
    # The first error names the field; the message lists how many more there are,
    # so the shape stays one error while a client still learns it had several.
    first = errors[0]
    code = _VALIDATION_CODES.get(str(first.get("type", "")), "invalid")
    field = dotted_field(first.get("loc", ()))
    if code == "invalid_json":
        # The location is a character offset, not a field: the body as a whole is bad.
        field = "body"
        message = f"request body is not valid JSON: {first.get('msg', '')}".rstrip(": ")
    elif code == "unknown_field":
        message = f"unknown field {field!r}"
    elif code == "required":
        message = f"{field} is required"
    else:
        message = f"{field}: {first.get('msg', 'invalid value')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    return _respond(422, code, message, field)


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's only 400 is a body it cannot decode (not UTF-8, broken form):
        # invalid input like any other, so it answers like a JSON syntax error.
        return await _on_validation(
            request,
            RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": ""}]),
        )
    code = _STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code
    response = _respond(exc.status_code, code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _on_binding_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BindingError)
    return _respond(exc.http_status, exc.code, exc.message, exc.field)


async def _on_number_error(_: Request, exc: Exception) -> JSONResponse:
    # Routes normalise numbers themselves and name the field; this is the fallback
    # for a NumberError raised deeper down, which is still the client's fault.
    assert isinstance(exc, NumberError)
    return _respond(422, "invalid_number", str(exc))


async def _on_store_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreError)
    if isinstance(exc, NotFoundError):
        return _respond(404, "not_found", "not found")
    if isinstance(exc, ConflictError):
        return _respond(409, "conflict", str(exc))
    if not isinstance(exc, UnavailableError):
        _log.error("store error answered with 503", exc_info=exc)
    return _respond(503, "unavailable", "the store is unavailable; try again")


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    _log.error("unhandled error in the HTTP API", exc_info=exc)
    return _respond(500, "internal", "internal error")


def install_error_handlers(
    app: FastAPI, authenticate: Callable[[Request], Awaitable[object]] | None = None
) -> None:
    """Make every error of ``app`` answer with :class:`ErrorResponse`.

    ``authenticate`` (raising :class:`ApiError`) is applied to requests whose body is
    not JSON, which FastAPI rejects before authentication would have run.
    """
    app.state.api_authenticate = authenticate
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(BindingError, _on_binding_error)
    app.add_exception_handler(NumberError, _on_number_error)
    app.add_exception_handler(StoreError, _on_store_error)
    app.add_exception_handler(Exception, _on_unexpected)
