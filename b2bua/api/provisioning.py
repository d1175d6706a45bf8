"""The provisioning API (DESIGN section 6) as one call for the wiring.

``install_provisioning_api(app, ctx)`` adds ``/v1/tenants``, ``/v1/numbers``,
``/v1/bindings`` and ``/v1/calls`` to an existing FastAPI app, makes every error of
the app answer ``{"error": {"code", "message", "field"}}``, and documents the
bearer-key scheme and the error responses in ``/openapi.json``.
"""

from typing import Any

from fastapi import FastAPI

from b2bua.api.context import ApiContext, ApiSettings
from b2bua.api.deps import Deps
from b2bua.api.errors import install_error_handlers
from b2bua.api.fast_path import FastRoutes
from b2bua.api.routes_bindings import EXTRA_SCHEMAS, bindings_router
from b2bua.api.routes_calls import calls_router
from b2bua.api.routes_numbers import numbers_router
from b2bua.api.routes_tenants import tenants_router

__all__ = ["ApiContext", "ApiSettings", "install_provisioning_api"]


def install_provisioning_api(app: FastAPI, ctx: ApiContext) -> None:
    """Add the provisioning routes and the shared error handling to ``app``."""
    deps = Deps(ctx)
    install_error_handlers(app, deps.authenticate)
    # Bindings first: routes are matched in order and binding creation is the hot path.
    for router in (
        bindings_router(deps),
        tenants_router(deps),
        numbers_router(deps),
        calls_router(deps),
    ):
        app.include_router(router)
    # Before FastAPI's routing: the hot routes skip its per-request layers.
    app.add_middleware(FastRoutes, routes=deps.fast_routes)
    # The schema is cached on first use; a router added after that would be missing.
    app.openapi_schema = None
    _document_extra_schemas(app)


def _document_extra_schemas(app: FastAPI) -> None:
    """Add the models routes reference only through ``openapi_extra`` to the schema."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in EXTRA_SCHEMAS:
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(model_schema.pop("$defs", {}))
            schemas[model.__name__] = model_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
