"""Binding lifecycle, the four modes and call-time lookup, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from b2bua.bindings import (
    BindingFilter,
    BindingService,
    BindingSettings,
    BindingSpec,
    BindingState,
    BindingUpdate,
    Direction,
    InvalidBinding,
    ModeNotAllowed,
    NoNumberAvailable,
    NumberConflict,
    Rejection,
    RejectReason,
    Route,
    TenantNotFound,
)
from b2bua.store import open_store

A, B, C, D = "13800000001", "13800000002", "13800000003", "13800000004"
POOL = [f"70000000000000{i}" for i in range(1, 5)]


@dataclass
class FakeClock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def service(store_url: str, clock: FakeClock) -> AsyncIterator[BindingService]:
    store = await open_store(store_url)
    settings = BindingSettings(tenant_modes={"t_axb_only": frozenset({"AXB"})})
    service = BindingService(store, settings=settings, clock=clock)
    await service.start(background=False)
    yield service
    await service.close()
    await store.close()


async def tenant_with_pool(service: BindingService, pool: list[str] = POOL) -> str:
    tenant, _ = await service.create_tenant("acme")
    await service.import_numbers(tenant.id, pool)
    return tenant.id


def spec(mode: str = "AXB", **fields: object) -> BindingSpec:
    fields.setdefault("ttl_s", 600)
    fields.setdefault("order_id", "order-1")
    return BindingSpec(mode=mode, **fields)  # type: ignore[arg-type]


def route(result: Route | Rejection) -> Route:
    assert isinstance(result, Route), result
    return result


def rejection(result: Route | Rejection) -> RejectReason:
    assert isinstance(result, Rejection), result
    return result.reason


async def test_axb_routes_both_ways_showing_x(service: BindingService, clock: FakeClock) -> None:
    tenant_id = await tenant_with_pool(service)
    binding = await service.create_binding(tenant_id, spec(a=A, b="+86" + B, label="Courier"))
    assert binding.b == B
    to_b = route(service.resolve(A, binding.x, clock.now))
    assert to_b.targets == (B,) and to_b.display_number == binding.x
    assert to_b.direction is Direction.A_TO_B and to_b.binding.label == "Courier"
    to_a = route(service.resolve(B, binding.x, clock.now))
    assert to_a.targets == (A,) and to_a.direction is Direction.B_TO_A
    # Non-canonical forms of the caller and of X still find the binding.
    assert route(service.resolve("tel:+86" + A, "+86" + binding.x, clock.now)).targets == (B,)
    assert rejection(service.resolve(C, binding.x, clock.now)) is RejectReason.NOT_PARTICIPANT
    assert (
        rejection(service.resolve(A, "700999999999999", clock.now)) is RejectReason.UNKNOWN_NUMBER
    )
    assert RejectReason.NOT_PARTICIPANT.sip_status == 403
    assert RejectReason.UNKNOWN_NUMBER.sip_status == 404


async def test_axyb_each_side_sees_one_number(service: BindingService, clock: FakeClock) -> None:
    tenant_id = await tenant_with_pool(service)
    binding = await service.create_binding(tenant_id, spec("AXYB", a=A, b=B))
    assert binding.y is not None and binding.y != binding.x
    a_calls = route(service.resolve(A, binding.x, clock.now))
    assert a_calls.targets == (B,) and a_calls.display_number == binding.y
    b_calls = route(service.resolve(B, binding.y, clock.now))
    assert b_calls.targets == (A,) and b_calls.display_number == binding.x
    assert rejection(service.resolve(A, binding.y, clock.now)) is RejectReason.NOT_PARTICIPANT
    assert rejection(service.resolve(B, binding.x, clock.now)) is RejectReason.NOT_PARTICIPANT


async def test_gxb_hunts_the_group_in_order(service: BindingService, clock: FakeClock) -> None:
    tenant_id = await tenant_with_pool(service)
    binding = await service.create_binding(tenant_id, spec("GXB", group=(C, A), b=B))
    assert route(service.resolve(C, binding.x, clock.now)).targets == (B,)
    assert route(service.resolve(A, binding.x, clock.now)).targets == (B,)
    hunt = route(service.resolve(B, binding.x, clock.now))
    assert hunt.targets == (C, A) and hunt.direction is Direction.B_TO_A


async def test_axn_anyone_reaches_a(service: BindingService, clock: FakeClock) -> None:
    tenant_id = await tenant_with_pool(service)
    binding = await service.create_binding(tenant_id, spec("AXN", a=A))
    assert route(service.resolve("02012345678", binding.x, clock.now)).targets == (A,)
    assert rejection(service.resolve(A, binding.x, clock.now)) is RejectReason.NO_DEFAULT_CALLEE
    with_default = await service.create_binding(tenant_id, spec("AXN", a=C, b=D))
    assert with_default.x != binding.x  # an AXN binding has its X to itself
    assert route(service.resolve(C, with_default.x, clock.now)).targets == (D,)
    # No other binding may share an AXN binding's X, whoever its participants are.
    with pytest.raises(NumberConflict):
        await service.create_binding(tenant_id, spec(a="13900000001", b="13900000002",
                                                     x=binding.x))  # fmt: skip


async def test_direction_restriction(service: BindingService, clock: FakeClock) -> None:
    tenant_id = await tenant_with_pool(service)
    binding = await service.create_binding(tenant_id, spec(a=A, b=B, direction="a_to_b"))
    assert route(service.resolve(A, binding.x, clock.now)).targets == (B,)
    assert rejection(service.resolve(B, binding.x, clock.now)) is RejectReason.DIRECTION_NOT_ALLOWED


async def test_allocation_spreads_and_never_shares_a_participant(
    service: BindingService,
) -> None:
    tenant_id = await tenant_with_pool(service)
    first = [await service.create_binding(tenant_id, spec(a=f"1370000{i:04d}", b=f"1390000{i:04d}"))
             for i in range(4)]  # fmt: skip
    assert len({b.x for b in first}) == 4  # least used first: one binding per number
    same_a = [await service.create_binding(tenant_id, spec(a=A, b=f"1350000{i:04d}"))
              for i in range(4)]  # fmt: skip
    assert len({b.x for b in same_a}) == 4  # A is on every X now
    with pytest.raises(NoNumberAvailable):
        await service.create_binding(tenant_id, spec(a=A, b=D))
    assert NoNumberAvailable.http_status == 409


async def test_a_released_number_is_least_used_again(service: BindingService) -> None:
    # The pool skips buckets it knows are empty; a number whose load drops below
    # them must still come first.
    tenant_id = await tenant_with_pool(service)
    made = [await service.create_binding(tenant_id, spec(a=f"1370000{i:04d}", b=f"1390000{i:04d}"))
            for i in range(13)]  # fmt: skip
    assert sorted(service.number_load(x) for x in POOL) == [3, 3, 3, 4]
    released = next(b for b in made if b.x != made[-1].x)
    await service.release_binding(released.id)
    again = await service.create_binding(tenant_id, spec(a=C, b=D))
    assert again.x == released.x
    assert sorted(service.number_load(x) for x in POOL) == [3, 3, 3, 4]


async def test_concurrent_creations_get_distinct_numbers(service: BindingService) -> None:
    tenant_id = await tenant_with_pool(service)
    made = await asyncio.gather(
        *(service.create_binding(tenant_id, spec(a=A, b=f"1390000{i:04d}")) for i in range(4))
    )
    assert sorted(b.x for b in made) == POOL
    with pytest.raises(NoNumberAvailable):
        await service.create_binding(tenant_id, spec(a=A, b=D))


async def test_explicit_x_must_be_own_and_free(service: BindingService) -> None:
    tenant_id = await tenant_with_pool(service)
    other, _ = await service.create_tenant("other")
    await service.import_numbers(other.id, ["700000000000099"])
    binding = await service.create_binding(tenant_id, spec(a=A, b=B, x=POOL[2]))
    assert binding.x == POOL[2]
    with pytest.raises(NumberConflict):
        await service.create_binding(tenant_id, spec(a=A, b=C, x=POOL[2]))
    with pytest.raises(InvalidBinding) as info:
        await service.create_binding(tenant_id, spec(a=A, b=C, x="700000000000099"))
    assert info.value.field == "x"
    with pytest.raises(NumberConflict):
        await service.import_numbers(tenant_id, ["700000000000099"])


async def test_invalid_specs_name_the_field(service: BindingService) -> None:
    tenant_id = await tenant_with_pool(service)
    cases = [
        (spec(a="12345", b=B), "a"),
        (spec(a=A, b=B, order_id=None), "order_id"),
        (spec(a=A, b=B, ttl_s=0), "ttl_s"),
        (spec(a=A, b=B, ttl_s=10**9), "ttl_s"),
        (spec("XYZ", a=A, b=B), "mode"),
        (spec(a=A), "b"),
        (spec(a=A, b=A), "b"),
        (spec("GXB", group=(A, A), b=B), "group"),
        (spec(a=A, b=B, direction="sideways"), "direction"),
        (spec(a=A, b=B, label='a"b'), "label"),
    ]
    for bad, field in cases:
        with pytest.raises(InvalidBinding) as info:
            await service.create_binding(tenant_id, bad)
        assert info.value.field == field, bad
    with pytest.raises(TenantNotFound):
        await service.create_binding("t_missing", spec(a=A, b=B))


async def test_modes_per_tenant(service: BindingService, clock: FakeClock) -> None:
    await service.store.insert_tenant(
        __import__("b2bua.bindings.model", fromlist=["Tenant"]).Tenant(
            id="t_axb_only", name="n", api_key_hash="h"
        ),
        actor="op",
        node="n",
    )
    service.index.set_tenant("t_axb_only", False)
    await service.import_numbers("t_axb_only", ["700000000000050"])
    with pytest.raises(ModeNotAllowed):
        await service.create_binding("t_axb_only", spec("AXN", a=A))
    await service.create_binding("t_axb_only", spec(a=A, b=B))


async def test_expired_never_routes_before_the_sweep(
    service: BindingService, clock: FakeClock
) -> None:
    tenant_id = await tenant_with_pool(service)
    binding = await service.create_binding(tenant_id, spec(a=A, b=B, ttl_s=60))
    clock.now += 61
    assert rejection(service.resolve(A, binding.x, clock.now)) is RejectReason.EXPIRED
    assert RejectReason.EXPIRED.sip_status == 404
    assert (await service.get_binding(binding.id)).state is BindingState.EXPIRED
    assert await service.sweep_expired() == 1
    stored = await service.store.get_binding(binding.id)
    assert stored.state is BindingState.EXPIRED  # kept for tracing
    assert service.number_load(binding.x) == 0


async def test_cooling_period_after_release(service: BindingService, clock: FakeClock) -> None:
    tenant_id = await tenant_with_pool(service, POOL[:1])
    binding = await service.create_binding(tenant_id, spec(a=A, b=B))
    released = await service.release_binding(binding.id, actor="tenant")
    assert released.state is BindingState.RELEASED and released.released_by == "tenant"
    assert rejection(service.resolve(A, binding.x, clock.now)) is RejectReason.UNKNOWN_NUMBER
    assert (await service.release_binding(binding.id)).state is BindingState.RELEASED
    with pytest.raises(NoNumberAvailable):
        await service.create_binding(tenant_id, spec(a=A, b=C))  # A is cooling on the only X
    await service.create_binding(tenant_id, spec(a=C, b=D))  # strangers to X are not
    clock.now += 121
    again = await service.create_binding(tenant_id, spec(a=A, b=B))
    assert again.x == binding.x
    states = {b.id: b.state for b in await service.list_bindings(BindingFilter(number=A))}
    assert states == {binding.id: BindingState.RELEASED, again.id: BindingState.ACTIVE}


async def test_update_changes_b_and_extends(service: BindingService, clock: FakeClock) -> None:
    tenant_id = await tenant_with_pool(service)
    binding = await service.create_binding(tenant_id, spec(a=A, b=B, ttl_s=60))
    updated = await service.update_binding(
        binding.id, BindingUpdate(ttl_s=3600, b=C, direction="b_to_a", label="L", max_call_s=90)
    )
    assert updated.version == 2 and updated.b == C
    assert rejection(service.resolve(B, binding.x, clock.now)) is RejectReason.NOT_PARTICIPANT
    to_a = route(service.resolve(C, binding.x, clock.now))
    assert to_a.targets == (A,) and to_a.binding.max_call_s == 90
    clock.now += 120
    assert route(service.resolve(C, binding.x, clock.now)).binding.label == "L"
    with pytest.raises(InvalidBinding):
        await service.update_binding(binding.id, BindingUpdate(group=(D,)))
    other = await service.create_binding(tenant_id, spec(a=D, b="13900000009", x=binding.x))
    with pytest.raises(NumberConflict):
        await service.update_binding(binding.id, BindingUpdate(b=D))  # D is on X already
    assert other.x == binding.x


async def test_gxb_group_change(service: BindingService, clock: FakeClock) -> None:
    tenant_id = await tenant_with_pool(service)
    binding = await service.create_binding(tenant_id, spec("GXB", group=(A, C), b=B))
    await service.update_binding(binding.id, BindingUpdate(group=(D, C)))
    assert route(service.resolve(B, binding.x, clock.now)).targets == (D, C)
    assert rejection(service.resolve(A, binding.x, clock.now)) is RejectReason.NOT_PARTICIPANT


async def test_suspended_tenant_does_not_route(service: BindingService, clock: FakeClock) -> None:
    tenant_id = await tenant_with_pool(service)
    binding = await service.create_binding(tenant_id, spec(a=A, b=B))
    await service.set_tenant_suspended(tenant_id, True)
    assert rejection(service.resolve(A, binding.x, clock.now)) is RejectReason.TENANT_SUSPENDED
    await service.set_tenant_suspended(tenant_id, False)
    assert isinstance(service.resolve(A, binding.x, clock.now), Route)


async def test_retired_numbers_keep_their_bindings(
    service: BindingService, clock: FakeClock
) -> None:
    tenant_id = await tenant_with_pool(service, POOL[:1])
    binding = await service.create_binding(tenant_id, spec(a=A, b=B))
    assert await service.retire_numbers(tenant_id, POOL[:1]) == 1
    assert isinstance(service.resolve(A, binding.x, clock.now), Route)
    with pytest.raises(NoNumberAvailable):
        await service.create_binding(tenant_id, spec(a=C, b=D))
    [number] = await service.list_numbers(tenant_id)
    assert number.retired


async def test_tenant_scoping_and_api_keys(service: BindingService) -> None:
    tenant_id = await tenant_with_pool(service)
    other, key = await service.create_tenant("other")
    assert (await service.authenticate_tenant(key)) == other
    assert await service.authenticate_tenant("wrong") is None
    assert key not in other.api_key_hash
    binding = await service.create_binding(tenant_id, spec(a=A, b=B))
    with pytest.raises(LookupError):
        await service.get_binding(binding.id, tenant_id=other.id)
    with pytest.raises(LookupError):
        await service.release_binding(binding.id, tenant_id=other.id)
    assert (await service.get_binding(binding.id, tenant_id=tenant_id)).id == binding.id


async def test_restart_rebuilds_the_index(store_url: str, clock: FakeClock) -> None:
    store = await open_store(store_url)
    first = BindingService(store, clock=clock)
    await first.start(background=False)
    tenant_id = await tenant_with_pool(first, POOL[:1])
    kept = await first.create_binding(tenant_id, spec(a=A, b=B))
    gone = await first.create_binding(tenant_id, spec(a=C, b=D))
    await first.release_binding(gone.id)
    await store.close()
    store = await open_store(store_url)
    second = BindingService(store, clock=clock)
    await second.start(background=False)
    assert route(second.resolve(A, kept.x, clock.now)).targets == (B,)
    assert rejection(second.resolve(C, gone.x, clock.now)) is RejectReason.NOT_PARTICIPANT
    with pytest.raises(NoNumberAvailable):  # C's cooling survived the restart
        await second.create_binding(tenant_id, spec(a=C, b="13900000001"))
    await store.close()


async def test_two_services_on_one_store_follow_each_other(
    store_url: str, clock: FakeClock
) -> None:
    store_one, store_two = await open_store(store_url), await open_store(store_url)
    one = BindingService(store_one, clock=clock)
    two = BindingService(store_two, clock=clock)
    await one.start(background=False)
    await two.start(background=False)
    tenant_id = await tenant_with_pool(one, POOL[:1])
    await two.catch_up()
    binding = await one.create_binding(tenant_id, spec(a=A, b=B))
    # Two's index is stale: it picks the same X for A, the store refuses, no X is left.
    with pytest.raises(NoNumberAvailable):
        await two.create_binding(tenant_id, spec(a=A, b=C))
    await two.catch_up()
    assert route(two.resolve(A, binding.x, clock.now)).targets == (B,)
    await one.release_binding(binding.id)
    await two.catch_up()
    assert isinstance(two.resolve(A, binding.x, clock.now), Rejection)
    await store_one.close()
    await store_two.close()
