"""``/openapi.json`` documents everything; every error has the one shape."""

from __future__ import annotations

from b2bua.api.models import BindingList, BindingOut

from .conftest import OPERATOR, Api, assert_error

OPERATIONS = {
    ("/v1/tenants", "post"), ("/v1/tenants", "get"), ("/v1/tenants/{tenant_id}", "get"),
    ("/v1/tenants/{tenant_id}", "patch"), ("/v1/numbers", "post"), ("/v1/numbers", "get"),
    ("/v1/bindings", "post"), ("/v1/bindings", "get"), ("/v1/bindings/{binding_id}", "get"),
    ("/v1/bindings/{binding_id}", "patch"), ("/v1/bindings/{binding_id}", "delete"),
    ("/v1/calls", "get"), ("/v1/calls/{call_id}", "get"),
}  # fmt: skip


async def test_openapi_describes_every_operation_and_error(api: Api) -> None:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    found = {(p, m) for p, ops in schema["paths"].items() for m in ops if p.startswith("/v1/")}
    assert found == OPERATIONS
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http", "scheme": "bearer",
        "description": "`Authorization: Bearer <key>`: the operator key or a tenant's API key.",
    }  # fmt: skip
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, method in OPERATIONS:
        operation = schema["paths"][path][method]
        assert operation["security"] == [{"ApiKey": []}], (path, method)
        responses = operation["responses"]
        statuses = ["401"]
        if operation.get("parameters") or operation.get("requestBody"):
            statuses.append("422")
        for status in statuses:
            content = responses[status]["content"]["application/json"]["schema"]
            assert content == error_ref, (path, method, status)
        assert "WWW-Authenticate" in responses["401"]["headers"]
        if "{" in path:
            assert "404" in responses, (path, method)
    # FastAPI's own 422 shape is gone: every 422 is ours.
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for name in ("BindingCreate", "BindingPatch", "TenantCreate", "TenantPatch", "NumbersImport"):
        assert schema["components"]["schemas"][name]["additionalProperties"] is False
    created = schema["paths"]["/v1/bindings"]["post"]["responses"]
    assert {"201", "401", "403", "404", "409", "422"} <= set(created)
    binding = schema["components"]["schemas"]["BindingOut"]["properties"]
    assert binding["expires_at"]["format"] == "date-time"


async def test_unknown_route_and_method_have_the_error_shape(api: Api) -> None:
    assert_error(await api.client.get("/v1/nothing", headers=OPERATOR), 404, "not_found")
    assert_error(await api.client.put("/v1/bindings", headers=OPERATOR), 405, "method_not_allowed")


async def test_non_utf8_body_is_422(api: Api) -> None:
    response = await api.client.post(
        "/v1/tenants",
        content=b'{"name": "\xff\xfe"}',
        headers={"Content-Type": "application/json", **OPERATOR},
    )
    assert_error(response, 422, "invalid_json", "body")


async def test_binding_answers_match_the_documented_model(api: Api) -> None:
    # Binding routes serialise without pydantic for speed; the body must still be
    # exactly what the BindingOut model documents and would produce.
    tenant = await api.tenant()
    body = {"mode": "GXB", "group": ["13800138000", "13700137000"], "b": "13900139000",
            "ttl_s": 61, "order_id": "o-1", "label": "Ünïcode", "max_call_s": 90}  # fmt: skip
    created = await api.client.post("/v1/bindings", json=body, headers=tenant.auth)
    assert created.status_code == 201
    assert created.headers["content-type"] == "application/json"
    answer = created.json()
    model = BindingOut.model_validate(answer)
    assert model.model_dump(mode="json") == answer
    api.clock.now += 0.123456  # microseconds survive both ways
    released = (await api.client.delete(f"/v1/bindings/{answer['id']}", headers=tenant.auth)).json()
    assert BindingOut.model_validate(released).model_dump(mode="json") == released
    listed = (await api.client.get("/v1/bindings", headers=tenant.auth)).json()
    assert BindingList.model_validate(listed).model_dump(mode="json") == listed
