"""In-process fixtures: a real BindingService on a real SQLite store, behind the API.

The app is driven through ``httpx.ASGITransport``: no socket, no server process.
A settable clock is shared by the service and the API so expiry is deterministic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from b2bua.api.call_records import CallRecordQuery
from b2bua.api.provisioning import ApiContext, ApiSettings, install_provisioning_api
from b2bua.bindings.service import BindingService
from b2bua.bindings.settings import BindingSettings
from b2bua.store import open_store
from b2bua.store.base import Store

OPERATOR_KEY = "operator-secret-key"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}
START = 1_800_000_000.0


class Clock:
    """Wall clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    """Everything a test needs: the client, the service and store behind it."""

    client: httpx.AsyncClient
    service: BindingService
    store: Store
    clock: Clock
    app: FastAPI
    numbers: dict[str, list[str]] = field(default_factory=dict)

    async def tenant(self, name: str = "acme", pool: int = 3, start: int = 0) -> Tenant:
        """Create a tenant (operator) and give it ``pool`` middle numbers."""
        response = await self.client.post("/v1/tenants", json={"name": name}, headers=OPERATOR)
        assert response.status_code == 201, response.text
        body = response.json()
        numbers = [f"700{start + i:012d}" for i in range(pool)]
        if numbers:
            response = await self.client.post(
                "/v1/numbers", json={"tenant_id": body["id"], "numbers": numbers}, headers=OPERATOR
            )
            assert response.status_code == 201, response.text
        return Tenant(body["id"], body["api_key"], numbers)


@dataclass(frozen=True)
class Tenant:
    """A tenant created through the API, with its key and pool."""

    id: str
    api_key: str
    numbers: list[str]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(tmp_path: Path) -> AsyncIterator[ApiFactory]:
    """Build an API over a fresh store; keyword arguments tune the settings."""
    opened: list[tuple[Store, httpx.AsyncClient]] = []

    async def build(
        *,
        binding_settings: BindingSettings | None = None,
        api_settings: ApiSettings | None = None,
        calls: CallRecordQuery | None = None,
        operator_key: str = OPERATOR_KEY,
        **_: Any,
    ) -> Api:
        store = await open_store(f"sqlite:///{tmp_path}/api-{len(opened)}.db")
        clock = Clock()
        service = BindingService(store, settings=binding_settings, clock=clock)
        await service.start(background=False)
        app = FastAPI(title="b2bua test")
        ctx = ApiContext(
            service=service,
            store=store,
            operator_key=operator_key,
            settings=api_settings or ApiSettings(),
            calls=calls,
            clock=clock,
        )
        install_provisioning_api(app, ctx)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api")
        opened.append((store, client))
        return Api(client, service, store, clock, app)

    yield build
    for store, client in opened:
        await client.aclose()
        await store.close()


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    """The API with default settings."""
    return await make_api()


def axb(**overrides: Any) -> dict[str, Any]:
    """A valid AXB request body, with ``overrides``."""
    body: dict[str, Any] = {
        "mode": "AXB",
        "a": "13800138000",
        "b": "13900139000",
        "ttl_s": 600,
        "order_id": "order-1",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def assert_error(response: httpx.Response, status: int, code: str | None = None,
                 field: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The response is the documented error shape with this status (and code, field)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "field"}, error
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert error["field"] == field, error
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    return error
