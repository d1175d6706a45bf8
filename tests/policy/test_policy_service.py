"""Block lists in the store: management, automatic entries, restart, other nodes.

One suite over SQLite and PostgreSQL (with ``B2BUA_TEST_PG_DSN``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from b2bua.bindings import BindingService, Tenant
from b2bua.bindings.errors import TenantNotFound
from b2bua.calls.routing import RouteRejection
from b2bua.policy import AbusePolicy, BlockSource, PolicySettings
from b2bua.policy.errors import BlockNotFound, InvalidBlock
from b2bua.policy.service import PolicyService
from b2bua.store import Store, open_store

from .conftest import POOL, A, B, C, FakeClock

NOT_PARTICIPANT = RouteRejection(403, "not_participant")


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url)
    yield opened
    await opened.close()


async def node(store: Store, clock: FakeClock, name: str, **settings: object) -> PolicyService:
    policy = AbusePolicy(PolicySettings(**settings))  # type: ignore[arg-type]
    service = PolicyService(store, policy, clock=clock, node_id=name)
    await service.start(background=False)
    return service


async def test_block_list_management(store: Store, clock: FakeClock) -> None:
    service = await node(store, clock, "one")
    tenant = (await store_tenant(store, clock)).id
    entry = await service.block("+86" + A, reason="spam", actor="operator")
    assert (entry.scope, entry.number, entry.source) == ("", A, BlockSource.MANUAL)
    assert service.is_blocked(A) is entry
    await service.block(B, tenant_id=tenant, ttl_s=60, actor=f"tenant:{tenant}")
    assert service.is_blocked(B) is None
    assert service.is_blocked(B, tenant_id=tenant) is not None
    assert [e.number for e in await service.list_blocks()] == [A, B]
    assert [e.number for e in await service.list_blocks(global_only=True)] == [A]
    assert [e.number for e in await service.list_blocks(tenant_id=tenant)] == [B]
    assert [e.number for e in await service.list_blocks(number=B)] == [B]
    clock.now += 61
    assert [e.number for e in await service.list_blocks()] == [A]
    assert len(await service.list_blocks(include_expired=True)) == 2
    removed = await service.unblock(A)
    assert removed.reason == "spam"
    assert service.is_blocked(A) is None
    with pytest.raises(BlockNotFound):
        await service.unblock(A)
    with pytest.raises(InvalidBlock) as bad:
        await service.block("12345")
    assert bad.value.field == "number"
    with pytest.raises(TenantNotFound):
        await service.block(A, tenant_id="t_nobody")
    actions = [e.action for e in await store.list_audit(limit=10)]
    assert actions.count("blocklist.add") == 2 and actions.count("blocklist.remove") == 1


async def store_tenant(store: Store, clock: FakeClock) -> Tenant:
    service = BindingService(store, clock=clock)
    tenant, _ = await service.create_tenant("acme")
    await service.import_numbers(tenant.id, POOL[:2])
    return tenant


async def test_other_nodes_follow_and_restart_reloads(store: Store, clock: FakeClock) -> None:
    one = await node(store, clock, "one")
    two = await node(store, clock, "two")
    await one.block(A)
    await one.block(B, ttl_s=30)
    assert two.is_blocked(A) is None
    assert await two.catch_up() == 2
    assert two.is_blocked(A) is not None and two.is_blocked(B) is not None
    await one.unblock(A)
    await two.catch_up()
    assert two.is_blocked(A) is None
    restarted = await node(store, clock, "three")
    assert restarted.is_blocked(B) is not None and restarted.is_blocked(A) is None
    clock.now += 31
    assert restarted.is_blocked(B) is None
    assert await restarted.sweep() == 1
    assert await one.list_blocks(include_expired=True) == []


async def test_automatic_blocks_are_persisted_and_shared(store: Store, clock: FakeClock) -> None:
    one = await node(store, clock, "one", fraud_distinct_numbers=2, fraud_block_s=600)
    two = await node(store, clock, "two")
    router_policy = one.policy
    for number in POOL[:3]:
        router_policy.watch(A, number, NOT_PARTICIPANT, clock.now)
    assert router_policy.counters.alerts["fraud_distinct_numbers"] == 1
    assert await one.flush() == 1
    assert one.policy.pending_blocks == []
    [stored] = await one.list_blocks()
    assert (stored.number, stored.source) == (A, BlockSource.AUTO)
    assert stored.reason == "fraud:distinct_numbers"
    assert stored.expires_at == clock.now + 600
    await two.catch_up()
    assert two.is_blocked(A) is not None


async def test_manual_entry_wins_over_a_late_automatic_one(store: Store, clock: FakeClock) -> None:
    one = await node(store, clock, "one", fraud_distinct_numbers=1)
    two = await node(store, clock, "two")
    await two.block(C, reason="by hand")  # one has not seen it yet
    for number in POOL[:2]:
        one.policy.watch(C, number, NOT_PARTICIPANT, clock.now)
    assert await one.flush() == 1
    [stored] = await one.list_blocks()
    assert (stored.source, stored.reason) == (BlockSource.MANUAL, "by hand")
    assert one.policy.blocklist.get("", C) == stored


async def test_background_tasks_follow_within_one_second(store: Store) -> None:
    one = PolicyService(store, AbusePolicy(), node_id="one")
    two = PolicyService(store, AbusePolicy(), node_id="two", follow_interval_s=0.1)
    await one.start(background=False)
    await two.start(background=True)
    try:
        await one.block(A)
        started = time.monotonic()
        while two.is_blocked(A) is None:
            assert time.monotonic() - started < 1.0, "not followed within 1 s"
            await asyncio.sleep(0.02)
    finally:
        await two.close()


async def test_many_changes_are_read_in_chunks(store: Store, clock: FakeClock) -> None:
    one = await node(store, clock, "one")
    two = await node(store, clock, "two")
    numbers = [f"1370000{i:04d}" for i in range(450)]
    for number in numbers:
        await one.block(number)
    assert await two.catch_up() == 450
    assert all(two.is_blocked(n) is not None for n in numbers)
