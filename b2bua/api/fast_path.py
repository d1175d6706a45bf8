"""Hot routes answered before FastAPI's routing: a small pure ASGI middleware.

Binding creation is the API's hot path. Behind uvicorn, FastAPI's router, route
wrappers and dependency solver cost about as much CPU as creating the binding
itself, so :class:`FastRoutes` answers ``POST /v1/bindings`` directly: it reads the
body, calls the same function the declared FastAPI route calls, and answers its
JSON. The declared route stays for ``/openapi.json`` (and any request this
middleware passes on). Errors go to the app's own exception handlers, so every
answer keeps the one error shape; anything unhandled is left to FastAPI's outer
``ServerErrorMiddleware`` exactly as for a routed request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["FastHandler", "FastRoutes"]

FastHandler = Callable[[str | None, bytes, bytes], Awaitable[tuple[int, bytes]]]
"""``(authorization header, query string, body) -> (status, JSON body)``; raises like a route."""

_JSON = (b"content-type", b"application/json")


class FastRoutes:
    """Answer ``(method, path)`` pairs of ``routes`` without FastAPI's routing.

    Add it with ``app.add_middleware(FastRoutes, routes=...)`` before the app
    serves its first request.
    """

    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], FastHandler]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = None
        if scope["type"] == "http" and not scope.get("root_path"):
            handler = self.routes.get((scope["method"], scope["path"]))
        if handler is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away before sending its request
        try:
            status, answer = await handler(_header(scope, b"authorization"),
                                           scope.get("query_string", b""), body)  # fmt: skip
        except Exception as exc:
            on_error = _handler_for(scope, exc)
            if on_error is None:
                raise
            response = await on_error(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        headers = [(b"content-length", str(len(answer)).encode("ascii")), _JSON]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _handler_for(scope: Scope, exc: Exception) -> Callable[..., Awaitable[Any]] | None:
    """The app's exception handler for ``exc`` (as Starlette picks it), but not the
    catch-all: an unexpected error goes to ServerErrorMiddleware, as when routed."""
    handlers = scope["app"].exception_handlers
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]  # type: ignore[no-any-return]
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]  # type: ignore[no-any-return]
    return None
