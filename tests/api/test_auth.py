"""Authentication and tenant isolation: 401, 403 and 404-for-foreign on every endpoint."""

from __future__ import annotations

import pytest

from .conftest import OPERATOR, Api, ApiFactory, assert_error, axb

EVERY_ENDPOINT = [
    ("POST", "/v1/tenants", {"name": "x"}),
    ("GET", "/v1/tenants", None),
    ("GET", "/v1/tenants/t_1", None),
    ("PATCH", "/v1/tenants/t_1", {"suspended": True}),
    ("POST", "/v1/numbers", {"tenant_id": "t_1", "numbers": ["700000000000001"]}),
    ("GET", "/v1/numbers", None),
    ("POST", "/v1/bindings", axb()),
    ("GET", "/v1/bindings", None),
    ("GET", "/v1/bindings/b1", None),
    ("PATCH", "/v1/bindings/b1", {"ttl_s": 5}),
    ("DELETE", "/v1/bindings/b1", None),
    ("GET", "/v1/calls", None),
    ("GET", "/v1/calls/c1", None),
]
OPERATOR_ONLY = [e for e in EVERY_ENDPOINT if e[:2] in {
    ("POST", "/v1/tenants"), ("GET", "/v1/tenants"), ("PATCH", "/v1/tenants/t_1"),
    ("POST", "/v1/numbers"),
}]  # fmt: skip

BAD_HEADERS = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic b3BlcmF0b3I6eA=="},
    {"Authorization": "Bearer wrong-key"},
    {"Authorization": "Bearer tk_" + "A" * 43},
    {"Authorization": "bearer operator-secret-key-but-longer"},
]


@pytest.mark.parametrize(("method", "path", "body"), EVERY_ENDPOINT)
@pytest.mark.parametrize("headers", BAD_HEADERS)
async def test_every_endpoint_needs_a_valid_key(
    api: Api, method: str, path: str, body: object, headers: dict[str, str]
) -> None:
    response = await api.client.request(method, path, json=body, headers=headers)
    assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(("method", "path", "body"), OPERATOR_ONLY)
async def test_operator_endpoints_refuse_tenant_keys(
    api: Api, method: str, path: str, body: object
) -> None:
    tenant = await api.tenant()
    response = await api.client.request(method, path, json=body, headers=tenant.auth)
    assert_error(response, 403, "forbidden")


async def test_scheme_is_case_insensitive(api: Api) -> None:
    response = await api.client.get(
        "/v1/tenants", headers={"Authorization": "bearer operator-secret-key"}
    )
    assert response.status_code == 200


async def test_empty_operator_key_disables_operator_access(make_api: ApiFactory) -> None:
    api = await make_api(operator_key="")
    for value in ("Bearer ", "Bearer  ", "Bearer x"):
        response = await api.client.get("/v1/tenants", headers={"Authorization": value})
        assert_error(response, 401)


async def test_garbled_json_without_a_key_is_401_not_422(api: Api) -> None:
    response = await api.client.post(
        "/v1/bindings", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 401)
    tenant = await api.tenant()
    response = await api.client.post(
        "/v1/bindings",
        content=b"{not json",
        headers={"Content-Type": "application/json", **tenant.auth},
    )
    assert_error(response, 422, "invalid_json", "body")


async def test_tenant_key_works_and_is_stored_only_as_a_hash(api: Api) -> None:
    tenant = await api.tenant()
    response = await api.client.get(f"/v1/tenants/{tenant.id}", headers=tenant.auth)
    assert response.status_code == 200
    assert "api_key" not in response.json()
    assert "api_key_hash" not in response.json()
    stored = await api.store.get_tenant(tenant.id)
    assert stored.api_key_hash != tenant.api_key
    assert tenant.api_key not in stored.api_key_hash
    assert len(stored.api_key_hash) == 64


async def test_a_tenant_never_sees_another_tenants_objects(api: Api) -> None:
    alice = await api.tenant("alice", start=0)
    bob = await api.tenant("bob", start=100)
    created = await api.client.post("/v1/bindings", json=axb(), headers=alice.auth)
    assert created.status_code == 201
    binding_id = created.json()["id"]

    # Foreign ids answer exactly like unknown ones.
    for method, body in (("GET", None), ("PATCH", {"ttl_s": 10}), ("DELETE", None)):
        foreign = await api.client.request(
            method, f"/v1/bindings/{binding_id}", json=body, headers=bob.auth
        )
        unknown = await api.client.request(
            method, "/v1/bindings/no-such-binding", json=body, headers=bob.auth
        )
        assert_error(foreign, 404, "not_found")
        assert_error(unknown, 404, "not_found")
    foreign_tenant = await api.client.get(f"/v1/tenants/{alice.id}", headers=bob.auth)
    unknown_tenant = await api.client.get("/v1/tenants/t_nobody", headers=bob.auth)
    assert_error(foreign_tenant, 404)
    assert_error(unknown_tenant, 404)

    # Lists are scoped: Bob sees none of Alice's bindings or numbers.
    listed = await api.client.get("/v1/bindings", headers=bob.auth)
    assert listed.json()["items"] == []
    numbers = await api.client.get("/v1/numbers", headers=bob.auth)
    assert {n["number"] for n in numbers.json()["items"]} == set(bob.numbers)
    for path in ("/v1/bindings", "/v1/numbers", "/v1/calls"):
        sneaky = await api.client.get(path, params={"tenant_id": alice.id}, headers=bob.auth)
        assert_error(sneaky, 404, field="tenant_id")
    sneaky_create = await api.client.post(
        "/v1/bindings", params={"tenant_id": alice.id}, json=axb(), headers=bob.auth
    )
    assert_error(sneaky_create, 404)

    # Alice's binding is untouched by Bob's attempts.
    mine = await api.client.get(f"/v1/bindings/{binding_id}", headers=alice.auth)
    assert mine.json()["state"] == "active"
    assert mine.json()["version"] == 1


async def test_operator_sees_every_tenant(api: Api) -> None:
    alice = await api.tenant("alice", start=0)
    bob = await api.tenant("bob", start=100)
    await api.client.post("/v1/bindings", json=axb(), headers=alice.auth)
    await api.client.post("/v1/bindings", json=axb(), headers=bob.auth)
    everything = await api.client.get("/v1/bindings", headers=OPERATOR)
    assert {b["tenant_id"] for b in everything.json()["items"]} == {alice.id, bob.id}
    only_bob = await api.client.get("/v1/bindings", params={"tenant_id": bob.id}, headers=OPERATOR)
    assert {b["tenant_id"] for b in only_bob.json()["items"]} == {bob.id}
    numbers = await api.client.get("/v1/numbers", headers=OPERATOR)
    assert len(numbers.json()["items"]) == len(alice.numbers) + len(bob.numbers)
    tenants = await api.client.get("/v1/tenants", headers=OPERATOR)
    assert {t["id"] for t in tenants.json()["items"]} == {alice.id, bob.id}


async def test_key_parsing_is_the_same_on_every_route(api: Api) -> None:
    # POST /v1/bindings reads its header itself (hot path); others use FastAPI's scheme.
    tenant = await api.tenant()
    for value in (f"Bearer  {tenant.api_key}", f"bearer {tenant.api_key} "):
        headers = {"Authorization": value}
        listed = await api.client.get("/v1/bindings", headers=headers)
        created = await api.client.post("/v1/bindings", json=axb(), headers=headers)
        assert (listed.status_code, created.status_code) == (200, 201), (value, created.text)
        await api.client.delete(f"/v1/bindings/{created.json()['id']}", headers=headers)
