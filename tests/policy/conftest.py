"""Fixtures of the policy tests: a fake wall clock, a real BindingService, stores.

The router under the policy is a small adapter over ``BindingService.resolve`` (the
lead's ``BindingRouter`` plays that role in the server), so the rules are tested
against real bindings on a real SQLite store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from b2bua.bindings import BindingService, BindingSettings, BindingSpec, Rejection
from b2bua.bindings.model import Binding
from b2bua.calls.routing import RouteDecision, RouteRejection
from b2bua.policy import AbusePolicy, PolicyRouter, PolicySettings
from b2bua.store import Store, open_store

START = 1_800_000_000.0
A, B, C = "13800000001", "13800000002", "13800000003"
POOL = [f"7000000000000{i:02d}" for i in range(1, 41)]


@dataclass
class FakeClock:
    """Wall clock (epoch seconds) the test moves by hand."""

    now: float = START

    def __call__(self) -> float:
        return self.now


class ServiceRouter:
    """The plain adapter: ``BindingService.resolve`` as a ``Router``."""

    def __init__(self, service: BindingService) -> None:
        self.service = service

    def route(
        self, caller: str, dialled: str, *, wall_now: float
    ) -> RouteDecision | RouteRejection:
        found = self.service.resolve(caller, dialled, wall_now)
        if isinstance(found, Rejection):
            return RouteRejection(found.sip_status, found.reason.value, caller=caller)
        binding = found.binding
        return RouteDecision(
            binding_id=binding.id,
            tenant_id=binding.tenant_id,
            order_id=binding.order_id,
            mode=binding.mode.value,
            direction=found.direction.value,
            middle_number=self.service.rules.middle(dialled),
            shown_number=found.display_number,
            targets=found.targets,
            caller=caller,
        )


@dataclass
class World:
    """A tenant with a pool, bindings made on demand, and the policy router over them."""

    service: BindingService
    store: Store
    clock: FakeClock
    tenant_id: str
    settings: PolicySettings = field(default_factory=PolicySettings)
    policy: AbusePolicy = field(init=False)
    router: PolicyRouter = field(init=False)
    _next: int = 0

    def __post_init__(self) -> None:
        self.use(self.settings)

    def use(self, settings: PolicySettings) -> None:
        """A fresh policy with ``settings`` around the same bindings."""
        self.settings = settings
        self.policy = AbusePolicy(settings, self.service.rules)
        self.router = PolicyRouter(ServiceRouter(self.service), self.policy)

    async def bind(
        self, a: str = A, b: str | None = B, mode: str = "AXB", **extra: object
    ) -> Binding:
        spec = BindingSpec(mode=mode, ttl_s=86_400, a=a, b=b, order_id="order-1")
        if extra:
            spec = replace(spec, **extra)  # type: ignore[arg-type]
        return await self.service.create_binding(self.tenant_id, spec)

    def call(self, caller: str, dialled: str) -> RouteDecision | RouteRejection:
        return self.router.route(caller, dialled, wall_now=self.clock.now)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def world(tmp_path: Path, clock: FakeClock) -> AsyncIterator[World]:
    """A real BindingService on SQLite with one tenant and a 40-number pool."""
    store = await open_store(f"sqlite:///{tmp_path}/world.db")
    service = BindingService(store, settings=BindingSettings(), clock=clock)
    await service.start(background=False)
    tenant, _ = await service.create_tenant("acme")
    await service.import_numbers(tenant.id, POOL)
    yield World(service, store, clock, tenant.id)
    await service.close()
    await store.close()
