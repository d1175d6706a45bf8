"""Direction restriction, tenant suspension and consent, as the policy router sees them.

Changes go through the BindingService, which updates this node's in-memory index
as soon as the store committed, so the very next call sees them; another node
sharing the store follows the change sequence and sees them within a second.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from b2bua.bindings import BindingService, BindingSettings, BindingSpec, BindingUpdate
from b2bua.bindings.errors import InvalidBinding
from b2bua.calls.routing import RouteDecision, RouteRejection
from b2bua.policy import AbusePolicy, PolicyRouter
from b2bua.store import open_store

from .conftest import POOL, A, B, ServiceRouter, World


def reason(result: RouteDecision | RouteRejection) -> str:
    return result.reason if isinstance(result, RouteRejection) else "routed"


async def test_direction_change_applies_to_the_next_call(world: World) -> None:
    binding = await world.bind()
    assert reason(world.call(B, binding.x)) == "routed"
    await world.service.update_binding(binding.id, BindingUpdate(direction="a_to_b"))
    refused = world.call(B, binding.x)
    assert isinstance(refused, RouteRejection) and refused.status == 403
    assert refused.reason == "direction_not_allowed"
    assert reason(world.call(A, binding.x)) == "routed"


async def test_tenant_suspension_applies_to_the_next_call(world: World) -> None:
    binding = await world.bind()
    await world.service.set_tenant_suspended(world.tenant_id, True)
    refused = world.call(A, binding.x)
    assert isinstance(refused, RouteRejection) and refused.status == 403
    assert refused.reason == "tenant_suspended"
    await world.service.set_tenant_suspended(world.tenant_id, False)
    assert reason(world.call(A, binding.x)) == "routed"


async def test_other_node_follows_direction_and_suspension_within_one_second(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    store_one, store_two = await open_store(url), await open_store(url)
    one = BindingService(store_one, node_id="one")
    two = BindingService(store_two, settings=BindingSettings(follow_interval_s=0.1), node_id="two")
    await one.start(background=False)
    await two.start(background=True)
    router_two = PolicyRouter(ServiceRouter(two), AbusePolicy(rules=two.rules))
    try:
        tenant, _ = await one.create_tenant("acme")
        await one.import_numbers(tenant.id, POOL[:3])
        spec = BindingSpec(mode="AXB", ttl_s=600, a=A, b=B, order_id="o-1")
        binding = await one.create_binding(tenant.id, spec)

        async def seen(caller: str, expected: str) -> float:
            started = time.monotonic()
            while time.monotonic() - started < 1.0:
                if reason(router_two.route(caller, binding.x, wall_now=time.time())) == expected:
                    return time.monotonic() - started
                await asyncio.sleep(0.02)
            raise AssertionError(f"{expected} not seen on the other node within 1 s")

        await seen(B, "routed")
        await one.update_binding(binding.id, BindingUpdate(direction="a_to_b"))
        await seen(B, "direction_not_allowed")
        await one.set_tenant_suspended(tenant.id, True)
        await seen(A, "tenant_suspended")
    finally:
        await two.close()
        await store_one.close()
        await store_two.close()


async def test_consent_is_required_when_configured(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/consent.db")
    service = BindingService(store, settings=BindingSettings(require_consent=True))
    await service.start(background=False)
    try:
        tenant, _ = await service.create_tenant("acme")
        await service.import_numbers(tenant.id, POOL[:2])
        spec = BindingSpec(mode="AXB", ttl_s=600, a=A, b=B, order_id="o-1")
        with pytest.raises(InvalidBinding) as refused:
            await service.create_binding(tenant.id, spec)
        assert refused.value.field == "consent"
        granted = BindingSpec(mode="AXB", ttl_s=600, a=A, b=B, order_id="o-1", consent=True)
        assert (await service.create_binding(tenant.id, granted)).consent
    finally:
        await store.close()
