"""``POST /v1/bindings`` is answered before FastAPI's routing (FastRoutes); it must
answer exactly as the declared route does, errors included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from b2bua.api.fast_path import FastRoutes

from .conftest import OPERATOR, Api, ApiFactory, assert_error, axb

VOLATILE = {"id", "tenant_id", "created_by", "updated_by"}


def without_fast_path(api: Api) -> httpx.AsyncClient:
    """A client of ``api``'s app with the middleware removed: the declared route."""
    api.app.user_middleware = [m for m in api.app.user_middleware if m.cls is not FastRoutes]
    api.app.middleware_stack = None
    return httpx.AsyncClient(transport=httpx.ASGITransport(api.app), base_url="http://api")


def comparable(response: httpx.Response) -> tuple[int, str, dict[str, Any]]:
    body = response.json()
    if "error" in body:
        # Messages may name ids of the tenant each app created.
        body = {"error": {k: v for k, v in body["error"].items() if k != "message"}}
    else:
        body = {k: v for k, v in body.items() if k not in VOLATILE}
    return response.status_code, response.headers["content-type"], body


@pytest.fixture
async def twins(make_api: ApiFactory) -> AsyncIterator[tuple[Api, Api, httpx.AsyncClient]]:
    fast, routed = await make_api(), await make_api()
    client = without_fast_path(routed)
    yield fast, routed, client
    await client.aclose()


async def test_fast_path_answers_like_the_declared_route(
    twins: tuple[Api, Api, httpx.AsyncClient],
) -> None:
    fast, routed, routed_client = twins
    assert [m.cls for m in fast.app.user_middleware] == [FastRoutes]
    assert routed.app.user_middleware == []
    tenants = [await fast.tenant(pool=1), await routed.tenant(pool=1)]
    cases: list[tuple[dict[str, str], str, Any]] = [
        ({}, "", axb()),
        ({}, "", axb(b="13600136000")),  # 409: the only X is taken for A
        ({}, "", axb(a="13500135000", b="13400134000", ttl_s="60")),
        ({}, "", axb(a="13500135000", b="13400134000", group=["bad"])),
        ({}, "", axb(a="not-a-number")),
        ({}, "", [1]),
        ({}, "", b'{"mode": '),
        ({"Authorization": "Bearer nope"}, "", axb()),
        ({"Authorization": "Bearer nope"}, "", b'{"mode": '),
        ({}, "?tenant_id=t_someone_else", axb(order_id="o-2")),
        ({}, "?tenant_id=" + "x" * 65, axb()),
        (OPERATOR, "", axb()),
    ]
    statuses = []
    for headers, query, body in cases:
        answers = []
        for client, tenant in ((fast.client, tenants[0]), (routed_client, tenants[1])):
            sent = {**tenant.auth, **headers}
            if isinstance(body, bytes):
                response = await client.post(f"/v1/bindings{query}", content=body, headers=sent)
            else:
                response = await client.post(f"/v1/bindings{query}", json=body, headers=sent)
            answers.append(comparable(response))
        assert answers[0] == answers[1], (headers, query, body)
        statuses.append(answers[0][0])
    assert sorted(set(statuses)) == [201, 401, 404, 409, 422]


async def test_operator_names_the_tenant_in_the_query(api: Api) -> None:
    tenant = await api.tenant()
    response = await api.client.post(
        "/v1/bindings", params={"tenant_id": tenant.id}, json=axb(), headers=OPERATOR
    )
    assert response.status_code == 201, response.text
    assert response.json()["tenant_id"] == tenant.id
    assert response.json()["created_by"] == "operator"


async def test_a_body_in_several_chunks(api: Api) -> None:
    tenant = await api.tenant()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"mode": "AXB", "a": "13800138000", '
        yield b'"b": "13900139000", "ttl_s": 600, "order_id": "o-1"}'

    response = await api.client.post("/v1/bindings", content=chunks(), headers=tenant.auth)
    assert response.status_code == 201, response.text


async def test_an_unexpected_error_is_a_500_in_the_error_shape(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await api.tenant()

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(api.service, "create_binding", broken)
    transport = httpx.ASGITransport(api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        response = await client.post("/v1/bindings", json=axb(), headers=tenant.auth)
    assert_error(response, 500, "internal")


async def test_other_routes_and_methods_still_go_through_fastapi(api: Api) -> None:
    tenant = await api.tenant()
    assert (await api.client.get("/v1/bindings", headers=tenant.auth)).status_code == 200
    assert_error(await api.client.put("/v1/bindings", headers=tenant.auth), 405)
    response = await api.client.post("/v1/bindings/", json=axb(), headers=tenant.auth)
    assert response.status_code == 307  # FastAPI's redirect to /v1/bindings, as before
