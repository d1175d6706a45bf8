"""Randomised: two services on one store creating and releasing at once never share a key."""

from __future__ import annotations

import asyncio
import random

from b2bua.bindings import (
    BindingFilter,
    BindingService,
    BindingSpec,
    BindingState,
    NoNumberAvailable,
)
from b2bua.bindings.model import ANY_CALLER, claim_keys
from b2bua.store import open_store

PEOPLE = [f"1380000{i:04d}" for i in range(12)]
POOL = [f"7000000000000{i:02d}" for i in range(6)]


async def test_no_two_active_bindings_share_a_claim(store_url: str) -> None:
    stores = [await open_store(store_url), await open_store(store_url)]
    services = [BindingService(store) for store in stores]
    for service in services:
        await service.start(background=False)
    tenant, _ = await services[0].create_tenant("acme")
    await services[0].import_numbers(tenant.id, POOL)
    await services[1].catch_up()
    rng = random.Random(3)

    async def worker(service: BindingService, seed: int) -> None:
        local = random.Random(seed)
        for _ in range(40):
            mode = local.choice(["AXB", "AXB", "AXYB", "GXB", "AXN"])
            a, b, c = local.sample(PEOPLE, 3)
            fields = {"a": a, "b": b} if mode in ("AXB", "AXYB") else {}
            if mode == "GXB":
                fields = {"group": (a, c), "b": b}
            if mode == "AXN":
                fields = {"a": a}
            try:
                binding = await service.create_binding(
                    tenant.id, BindingSpec(mode=mode, ttl_s=600, order_id="o", **fields)
                )
            except NoNumberAvailable:
                continue
            if local.random() < 0.5:
                await service.release_binding(binding.id)

    await asyncio.gather(*(worker(services[i % 2], rng.randrange(10**6)) for i in range(6)))
    active = await services[0].list_bindings(BindingFilter(state="active", limit=10_000))
    assert active, "the workload created nothing"
    seen: dict[tuple[str, str], str] = {}
    by_number: dict[str, set[str]] = {}
    for binding in active:
        assert binding.state is BindingState.ACTIVE
        for key in claim_keys(binding.mode, binding.x, binding.y, binding.a, binding.b,
                              binding.group):  # fmt: skip
            assert key not in seen, (key, seen.get(key), binding.id)
            seen[key] = binding.id
            by_number.setdefault(key[0], set()).add(binding.id)
    for (number, participant), binding_id in seen.items():
        if participant == ANY_CALLER:
            assert by_number[number] == {binding_id}  # an AXN binding is alone on its X
    for store in stores:
        await store.close()
