"""``/v1/tenants`` and ``/v1/numbers``."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import OPERATOR, Api, assert_error


async def test_tenant_lifecycle(api: Api) -> None:
    created = await api.client.post(
        "/v1/tenants", json={"name": "Acme", "webhook_url": "https://acme.example/cdr"},
        headers=OPERATOR,
    )  # fmt: skip
    assert created.status_code == 201
    body = created.json()
    assert body["id"] and body["api_key"] and body["name"] == "Acme"
    assert body["webhook_url"] == "https://acme.example/cdr"
    assert body["suspended"] is False
    url = f"/v1/tenants/{body['id']}"
    shown = (await api.client.get(url, headers=OPERATOR)).json()
    assert "api_key" not in shown
    assert shown["created_at"].endswith("Z")

    suspended = await api.client.patch(url, json={"suspended": True}, headers=OPERATOR)
    assert suspended.status_code == 200
    assert suspended.json()["suspended"] is True
    assert suspended.json()["webhook_url"] == "https://acme.example/cdr"  # not sent: kept
    assert api.service.index.tenants[body["id"]].suspended is True  # routing sees it now

    resumed = await api.client.patch(
        url, json={"suspended": False, "webhook_url": None}, headers=OPERATOR
    )
    assert resumed.json()["suspended"] is False
    assert resumed.json()["webhook_url"] is None
    changed = await api.client.patch(
        url, json={"suspended": False, "webhook_url": "http://new.example/x"}, headers=OPERATOR
    )
    assert changed.json()["webhook_url"] == "http://new.example/x"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": 5}, "name"),
        ({"name": "a", "webhook_url": "ftp://x"}, "webhook_url"),
        ({"name": "a", "webhook_url": "not a url"}, "webhook_url"),
        ({"name": "a", "api_key": "mine"}, "api_key"),
    ],
)
async def test_invalid_tenant(api: Api, body: dict[str, Any], field: str) -> None:
    response = await api.client.post("/v1/tenants", json=body, headers=OPERATOR)
    assert_error(response, 422, field=field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "suspended"),
        ({"suspended": "yes"}, "suspended"),
        ({"suspended": True, "name": "b"}, "name"),
        ({"suspended": True, "webhook_url": "x"}, "webhook_url"),
    ],
)
async def test_invalid_tenant_patch(api: Api, body: dict[str, Any], field: str) -> None:
    tenant = await api.tenant()
    response = await api.client.patch(f"/v1/tenants/{tenant.id}", json=body, headers=OPERATOR)
    assert_error(response, 422, field=field)


async def test_unknown_tenant_is_404(api: Api) -> None:
    assert_error(await api.client.get("/v1/tenants/t_none", headers=OPERATOR), 404, "not_found")
    response = await api.client.patch(
        "/v1/tenants/t_none", json={"suspended": True}, headers=OPERATOR
    )
    assert_error(response, 404, "not_found")


async def test_import_numbers(api: Api) -> None:
    tenant = await api.tenant(pool=0)
    numbers = [
        "700000000000001",
        "+86700000000000002",
        "0086700000000000003",
        "tel:700000000000004",
    ]
    response = await api.client.post(
        "/v1/numbers", json={"tenant_id": tenant.id, "numbers": numbers}, headers=OPERATOR
    )
    assert response.status_code == 201
    assert response.json() == {"added": 4}
    again = await api.client.post(
        "/v1/numbers",
        json={"tenant_id": tenant.id, "numbers": ["700000000000001", "700000000000005"]},
        headers=OPERATOR,
    )
    assert again.json() == {"added": 1}
    listed = (await api.client.get("/v1/numbers", headers=tenant.auth)).json()
    assert [n["number"] for n in listed["items"]] == [f"70000000000000{i}" for i in range(1, 6)]
    assert all(n["tenant_id"] == tenant.id and n["retired"] is False for n in listed["items"])
    assert listed["next_cursor"] is None


async def test_numbers_of_another_tenant_conflict(api: Api) -> None:
    alice = await api.tenant("alice", start=0)
    bob = await api.tenant("bob", start=100)
    response = await api.client.post(
        "/v1/numbers",
        json={"tenant_id": bob.id, "numbers": [alice.numbers[0], "700000000000999"]},
        headers=OPERATOR,
    )
    assert_error(response, 409)
    listed = (await api.client.get("/v1/numbers", headers=bob.auth)).json()
    assert "700000000000999" not in {n["number"] for n in listed["items"]}  # all or nothing


async def test_numbers_for_unknown_tenant_is_404(api: Api) -> None:
    response = await api.client.post(
        "/v1/numbers", json={"tenant_id": "t_none", "numbers": ["700000000000001"]},
        headers=OPERATOR,
    )  # fmt: skip
    assert_error(response, 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tenant_id": "t", "numbers": []}, "numbers"),
        ({"tenant_id": "t", "numbers": ["700000000000001", "13800138000"]}, "numbers.1"),
        ({"tenant_id": "t", "numbers": ["7001"]}, "numbers.0"),
        ({"tenant_id": "t", "numbers": [7000]}, "numbers.0"),
        ({"tenant_id": "t", "numbers": "700000000000001"}, "numbers"),
        ({"numbers": ["700000000000001"]}, "tenant_id"),
        ({"tenant_id": "t", "numbers": ["700000000000001"], "retired": True}, "retired"),
    ],
)
async def test_invalid_import(api: Api, body: dict[str, Any], field: str) -> None:
    response = await api.client.post("/v1/numbers", json=body, headers=OPERATOR)
    assert_error(response, 422, field=field)


async def test_number_paging(api: Api) -> None:
    tenant = await api.tenant(pool=5)
    first = (await api.client.get("/v1/numbers", params={"limit": 2}, headers=tenant.auth)).json()
    assert [n["number"] for n in first["items"]] == tenant.numbers[:2]
    rest = await api.client.get(
        "/v1/numbers", params={"limit": 10, "cursor": first["next_cursor"]}, headers=tenant.auth
    )
    assert [n["number"] for n in rest.json()["items"]] == tenant.numbers[2:]
    assert rest.json()["next_cursor"] is None
    bad = await api.client.get("/v1/numbers", params={"cursor": "zz"}, headers=tenant.auth)
    assert_error(bad, 422, field="cursor")
