"""``/v1/blocklist`` over httpx's ASGI transport, on a real store and binding service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from b2bua.api.context import ApiContext
from b2bua.api.provisioning import install_provisioning_api
from b2bua.api.routes_policy import install_policy_api
from b2bua.bindings import BindingService
from b2bua.policy import AbusePolicy
from b2bua.policy.service import PolicyService
from b2bua.store import open_store

from .conftest import A, B, C, FakeClock

OPERATOR_KEY = "operator-secret"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}


@dataclass
class Client:
    http: httpx.AsyncClient
    service: BindingService
    policy: PolicyService
    clock: FakeClock

    async def tenant(self, name: str) -> tuple[str, dict[str, str]]:
        tenant, key = await self.service.create_tenant(name)
        return tenant.id, {"Authorization": f"Bearer {key}"}


async def build(tmp_path: Path, *, provisioning: bool) -> AsyncIterator[Client]:
    store = await open_store(f"sqlite:///{tmp_path}/api.db")
    clock = FakeClock()
    service = BindingService(store, clock=clock)
    await service.start(background=False)
    policy = PolicyService(store, AbusePolicy(rules=service.rules), clock=clock)
    await policy.start(background=False)
    app = FastAPI(title="policy test")
    ctx = ApiContext(service=service, store=store, operator_key=OPERATOR_KEY, clock=clock)
    if provisioning:
        install_provisioning_api(app, ctx)
    install_policy_api(app, policy, ctx)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as http:
        yield Client(http, service, policy, clock)
    await store.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Client]:
    async for client in build(tmp_path, provisioning=True):
        yield client


def error_of(response: httpx.Response, status: int) -> dict[str, str | None]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"}
    return error  # type: ignore[no-any-return]


async def test_operator_blocks_globally_and_calls_are_refused_at_once(api: Client) -> None:
    response = await api.http.post(
        "/v1/blocklist", json={"number": "+86" + A, "reason": "spam"}, headers=OPERATOR
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["number"] == A and body["tenant_id"] is None
    assert body["source"] == "manual" and body["expires_at"] is None
    assert body["created_at"].endswith("Z")
    assert api.policy.is_blocked(A) is not None  # this node's router sees it now
    listed = await api.http.get("/v1/blocklist", headers=OPERATOR)
    assert [e["number"] for e in listed.json()["items"]] == [A]
    removed = await api.http.delete(f"/v1/blocklist/{A}", headers=OPERATOR)
    assert removed.status_code == 200 and removed.json()["reason"] == "spam"
    assert api.policy.is_blocked(A) is None
    again = await api.http.delete(f"/v1/blocklist/{A}", headers=OPERATOR)
    assert error_of(again, 404)["field"] == "number"


async def test_tenant_manages_only_its_own_list(api: Client) -> None:
    mine, my_key = await api.tenant("acme")
    theirs, their_key = await api.tenant("other")
    ttl = await api.http.post("/v1/blocklist", json={"number": B, "ttl_s": 60}, headers=my_key)
    assert ttl.status_code == 201 and ttl.json()["tenant_id"] == mine
    assert ttl.json()["expires_at"] is not None
    await api.http.post("/v1/blocklist", json={"number": C}, headers=their_key)
    await api.http.post("/v1/blocklist", json={"number": A}, headers=OPERATOR)
    assert api.policy.is_blocked(B) is None
    assert api.policy.is_blocked(B, tenant_id=mine) is not None
    own = await api.http.get("/v1/blocklist", headers=my_key)
    assert [(e["number"], e["tenant_id"]) for e in own.json()["items"]] == [(B, mine)]
    foreign = await api.http.get(f"/v1/blocklist?tenant_id={theirs}", headers=my_key)
    error_of(foreign, 404)
    post_foreign = await api.http.post(
        "/v1/blocklist", json={"number": A, "tenant_id": theirs}, headers=my_key
    )
    error_of(post_foreign, 404)
    delete_foreign = await api.http.delete(f"/v1/blocklist/{C}", headers=my_key)
    error_of(delete_foreign, 404)  # not on *its* list
    everything = await api.http.get("/v1/blocklist", headers=OPERATOR)
    assert len(everything.json()["items"]) == 3
    only_global = await api.http.get("/v1/blocklist?scope=global", headers=OPERATOR)
    assert [e["number"] for e in only_global.json()["items"]] == [A]
    one_tenant = await api.http.get(f"/v1/blocklist?tenant_id={theirs}", headers=OPERATOR)
    assert [e["number"] for e in one_tenant.json()["items"]] == [C]
    by_operator = await api.http.delete(f"/v1/blocklist/{C}?tenant_id={theirs}", headers=OPERATOR)
    assert by_operator.status_code == 200


async def test_invalid_input_names_the_field(api: Client) -> None:
    bad = await api.http.post("/v1/blocklist", json={"number": "12345"}, headers=OPERATOR)
    error = error_of(bad, 422)
    assert (error["field"], error["code"]) == ("number", "invalid_number")
    for body, field in (
        ({"number": A, "ttl_s": 0}, "ttl_s"),
        ({"number": A, "colour": "red"}, "colour"),
        ({"number": 13800000001}, "number"),
        ({}, "number"),
    ):
        response = await api.http.post("/v1/blocklist", json=body, headers=OPERATOR)
        assert error_of(response, 422)["field"] == field, body
    query = await api.http.get("/v1/blocklist?number=abc", headers=OPERATOR)
    assert error_of(query, 422)["field"] == "number"
    path = await api.http.delete("/v1/blocklist/abc", headers=OPERATOR)
    assert error_of(path, 422)["field"] == "number"
    unknown_tenant = await api.http.post(
        "/v1/blocklist", json={"number": A, "tenant_id": "t_nobody"}, headers=OPERATOR
    )
    error_of(unknown_tenant, 404)


async def test_keys_are_required(api: Client) -> None:
    error_of(await api.http.get("/v1/blocklist"), 401)
    bad_key = {"Authorization": "Bearer nope"}
    error_of(await api.http.post("/v1/blocklist", json={"number": A}, headers=bad_key), 401)


async def test_paging(api: Client) -> None:
    numbers = [f"1380000000{i}" for i in range(5)]
    for number in numbers:
        await api.http.post("/v1/blocklist", json={"number": number}, headers=OPERATOR)
    seen: list[str] = []
    url = "/v1/blocklist?limit=2"
    while True:
        page = (await api.http.get(url, headers=OPERATOR)).json()
        seen += [e["number"] for e in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"/v1/blocklist?limit=2&cursor={page['next_cursor']}"
    assert seen == numbers


async def test_policy_api_alone_has_the_error_shape(tmp_path: Path) -> None:
    async for client in build(tmp_path, provisioning=False):
        error_of(await client.http.get("/v1/blocklist"), 401)
        response = await client.http.post("/v1/blocklist", json={"number": "x"}, headers=OPERATOR)
        assert error_of(response, 422)["field"] == "number"
        schema = (await client.http.get("/openapi.json")).json()
        assert "/v1/blocklist" in schema["paths"]
