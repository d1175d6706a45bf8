"""The "curl story" over real HTTP against the real ``b2bua serve`` process.

An operator creates a tenant and fills its pool; the tenant creates, changes,
searches and releases a binding and reads its calls; bad requests get the
documented errors. Uses the integration fixtures' process runner (SQLite in a
temporary directory, operator key from ``B2BUA_OPERATOR_KEY``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from integration.server import Server, start_process

pytestmark = pytest.mark.timeout(60)

OPERATOR_KEY = "test-operator-key"  # what integration.server puts in the environment


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory: Path = tmp_path_factory.mktemp("api-process")
    server = start_process(directory)
    yield server
    code = server.stop()
    assert code == 0, f"b2bua exited with {code}:\n{server.log_path.read_text()}"


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=10) as client:
        yield client


def _error(response: httpx.Response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"}
    if field is not None:
        assert error["field"] == field
    return error


def test_curl_story(http: httpx.Client) -> None:
    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    created = http.post("/v1/tenants", json={"name": "Meals Ltd"}, headers=operator)
    assert created.status_code == 201, created.text
    tenant_id, api_key = created.json()["id"], created.json()["api_key"]
    tenant = {"Authorization": f"Bearer {api_key}"}

    pool = ["700100000000001", "+86700100000000002"]
    imported = http.post(
        "/v1/numbers", json={"tenant_id": tenant_id, "numbers": pool}, headers=operator
    )
    assert (imported.status_code, imported.json()) == (201, {"added": 2})
    numbers = http.get("/v1/numbers", headers=tenant).json()["items"]
    assert [n["number"] for n in numbers] == ["700100000000001", "700100000000002"]

    body = {"mode": "AXB", "a": "13800138000", "b": "13900139000", "ttl_s": 600,
            "order_id": "order-42", "label": "Meals"}  # fmt: skip
    binding = http.post("/v1/bindings", json=body, headers=tenant)
    assert binding.status_code == 201, binding.text
    made = binding.json()
    assert made["x"] in {"700100000000001", "700100000000002"}
    assert made["expires_at"].endswith("Z")
    url = f"/v1/bindings/{made['id']}"

    changed = http.patch(url, json={"ttl_s": 1200, "b": "13700137000"}, headers=tenant)
    assert changed.status_code == 200, changed.text
    assert changed.json()["b"] == "13700137000"
    assert changed.json()["expires_at"] > made["expires_at"]

    found = http.get("/v1/bindings", params={"order_id": "order-42"}, headers=tenant)
    assert [b["id"] for b in found.json()["items"]] == [made["id"]]
    assert http.get(url, headers=tenant).json()["version"] == 2

    released = http.delete(url, headers=tenant)
    assert released.status_code == 200
    assert released.json()["state"] == "released"
    active = http.get("/v1/bindings", params={"state": "active"}, headers=tenant)
    assert active.json()["items"] == []

    calls = http.get("/v1/calls", params={"x": made["x"]}, headers=tenant)
    assert calls.status_code == 200
    assert isinstance(calls.json()["items"], list)


def test_bad_requests_get_documented_errors(http: httpx.Client) -> None:
    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    unauthenticated = http.get("/v1/bindings")
    _error(unauthenticated, 401)
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    _error(http.get("/v1/bindings", headers={"Authorization": "Bearer nope"}), 401)

    created = http.post("/v1/tenants", json={"name": "Rides"}, headers=operator).json()
    tenant = {"Authorization": f"Bearer {created['api_key']}"}
    _error(http.post("/v1/tenants", json={"name": "x"}, headers=tenant), 403)
    bad_number = {"mode": "AXB", "a": "12345", "b": "13900139000", "ttl_s": 60, "order_id": "o"}
    _error(http.post("/v1/bindings", json=bad_number, headers=tenant), 422, "a")
    bad_group = {"mode": "GXB", "group": ["13800138000", "x"], "b": "13900139000",
                 "ttl_s": 60, "order_id": "o"}  # fmt: skip
    _error(http.post("/v1/bindings", json=bad_group, headers=tenant), 422, "group.1")
    _error(http.post("/v1/bindings", json={**bad_number, "a": "13800138000", "zz": 1},
                     headers=tenant), 422, "zz")  # fmt: skip
    no_pool = {**bad_number, "a": "13800138000"}
    _error(http.post("/v1/bindings", json=no_pool, headers=tenant), 409)
    _error(http.get("/v1/bindings/does-not-exist", headers=tenant), 404)
    _error(http.get("/v1/calls/does-not-exist", headers=tenant), 404)
    garbled = http.post(
        "/v1/bindings", content=b"{", headers={**tenant, "Content-Type": "application/json"}
    )
    _error(garbled, 422, "body")


def test_openapi_is_served(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    for path in ("/v1/tenants", "/v1/numbers", "/v1/bindings", "/v1/bindings/{binding_id}",
                 "/v1/calls", "/v1/calls/{call_id}", "/v1/tenants/{tenant_id}"):  # fmt: skip
        assert path in schema["paths"]
