"""The store contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from b2bua.bindings.model import ANY_CALLER, Binding, BindingFilter, BindingState, Mode, Tenant
from b2bua.store import (
    AuditEntry,
    ClaimRow,
    ConflictError,
    NewBinding,
    NotFoundError,
    Store,
    StoreError,
    open_store,
)
from b2bua.store.migrations import MIGRATIONS

X1, X2 = "700000000000001", "700000000000002"
A, B, C = "13800000001", "13800000002", "13800000003"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    store = await open_store(store_url)
    yield store
    await store.close()


async def make_tenant(store: Store, tenant_id: str = "t1") -> Tenant:
    tenant = Tenant(id=tenant_id, name=tenant_id, api_key_hash=f"hash-{tenant_id}")
    await store.insert_tenant(tenant, actor="op", node="n1")
    return tenant


def axb(binding_id: str, x: str, a: str, b: str, *, expires_at: float = 1000.0) -> NewBinding:
    binding = Binding(
        id=binding_id, tenant_id="t1", mode=Mode.AXB, x=x, a=a, b=b, expires_at=expires_at,
        order_id="o-" + binding_id, created_at=10.0, updated_at=10.0, created_by="op",
        updated_by="op",
    )  # fmt: skip
    claims = (
        ClaimRow(x, a, binding_id, expires_at + 120),
        ClaimRow(x, b, binding_id, expires_at + 120),
    )
    return NewBinding(binding, claims, 10.0, "n1")


async def test_migrations_are_applied_once(store_url: str, store: Store) -> None:
    assert await store.schema_version() == MIGRATIONS[-1].version
    again = await open_store(store_url)  # a second start applies nothing and fails nothing
    assert await again.schema_version() == MIGRATIONS[-1].version
    await again.close()


async def test_tenants_round_trip(store: Store) -> None:
    tenant = await make_tenant(store)
    assert await store.get_tenant("t1") == tenant
    assert await store.find_tenant_by_key_hash("hash-t1") == tenant
    assert await store.find_tenant_by_key_hash("nope") is None
    await store.update_tenant(replace(tenant, suspended=True), actor="op", node="n1")
    assert (await store.get_tenant("t1")).suspended
    with pytest.raises(NotFoundError):
        await store.get_tenant("missing")
    with pytest.raises(ConflictError):
        await make_tenant(store)


async def test_a_number_belongs_to_one_tenant(store: Store) -> None:
    await make_tenant(store, "t1")
    await make_tenant(store, "t2")
    assert await store.import_numbers("t1", [X1, X2], now=1, actor="op", node="n") == 2
    assert await store.import_numbers("t1", [X1], now=1, actor="op", node="n") == 0
    with pytest.raises(ConflictError):
        await store.import_numbers("t2", [X2, "700000000000003"], now=1, actor="op", node="n")
    assert [n.number for n in await store.list_numbers("t2")] == []
    assert await store.retire_numbers("t1", [X2], now=2, actor="op", node="n") == 1
    numbers = {n.number: n for n in await store.list_numbers("t1")}
    assert numbers[X2].retired and not numbers[X1].retired
    with pytest.raises(NotFoundError):
        await store.import_numbers("nobody", [X1], now=1, actor="op", node="n")


async def test_claims_refuse_a_shared_participant(store: Store) -> None:
    await make_tenant(store)
    await store.import_numbers("t1", [X1, X2], now=1, actor="op", node="n")
    await store.create_binding(axb("b1", X1, A, B), actor="op")
    with pytest.raises(ConflictError) as info:
        await store.create_binding(axb("b2", X1, A, C), actor="op")
    assert (X1, A) in info.value.keys
    await store.create_binding(axb("b3", X2, A, C), actor="op")  # another X is fine
    await store.create_binding(axb("b4", X1, C, "13800000004"), actor="op")  # other people
    assert {b.id for b in await store.list_bindings(BindingFilter(), now=20)} == {"b1", "b3", "b4"}


async def test_claims_refuse_retired_and_foreign_numbers(store: Store) -> None:
    await make_tenant(store)
    await store.import_numbers("t1", [X1], now=1, actor="op", node="n")
    with pytest.raises(ConflictError):
        await store.create_binding(axb("b1", X2, A, B), actor="op")  # not in the pool
    await store.retire_numbers("t1", [X1], now=2, actor="op", node="n")
    with pytest.raises(ConflictError):
        await store.create_binding(axb("b1", X1, A, B), actor="op")


async def test_axn_claims_its_whole_number(store: Store) -> None:
    await make_tenant(store)
    await store.import_numbers("t1", [X1, X2], now=1, actor="op", node="n")
    await store.create_binding(axb("b1", X1, A, B), actor="op")
    open_binding = Binding(id="n1", tenant_id="t1", mode=Mode.AXN, x=X1, a=C, expires_at=1000)
    star = (ClaimRow(X1, ANY_CALLER, "n1", 1120),)
    with pytest.raises(ConflictError):
        await store.create_binding(NewBinding(open_binding, star, 10, "n"), actor="op")
    open_binding = replace(open_binding, x=X2)
    await store.create_binding(
        NewBinding(open_binding, (ClaimRow(X2, ANY_CALLER, "n1", 1120),), 10, "n"), actor="op"
    )
    with pytest.raises(ConflictError):
        await store.create_binding(axb("b2", X2, "13900000001", "13900000002"), actor="op")


async def test_cooling_then_free(store: Store) -> None:
    await make_tenant(store)
    await store.import_numbers("t1", [X1], now=1, actor="op", node="n")
    first = axb("b1", X1, A, B, expires_at=100)
    await store.create_binding(first, actor="op")
    again = axb("b2", X1, A, B, expires_at=400)
    # Expired at 100 but cooling until 220: still refused at 150.
    with pytest.raises(ConflictError):
        await store.create_binding(replace(again, now=150.0), actor="op")
    await store.create_binding(replace(again, now=221.0), actor="op")


async def test_concurrent_creations_never_conflict(store: Store) -> None:
    """Many creations in flight for the same participant: exactly one wins per X."""
    await make_tenant(store)
    await store.import_numbers("t1", [X1], now=1, actor="op", node="n")
    attempts = [store.create_binding(axb(f"b{i}", X1, A, f"1390000{i:04d}"), actor="op")
                for i in range(50)]  # fmt: skip
    results = await asyncio.gather(*attempts, return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, ConflictError) for r in results if r is not None)


async def test_update_is_optimistic_and_release_keeps_the_row(store: Store) -> None:
    await make_tenant(store)
    await store.import_numbers("t1", [X1], now=1, actor="op", node="n")
    new = axb("b1", X1, A, B)
    await store.create_binding(new, actor="op")
    released = replace(new.binding, state=BindingState.RELEASED, version=2, released_at=50.0,
                       released_by="op")  # fmt: skip
    cooling = [ClaimRow(X1, A, "b1", 170), ClaimRow(X1, B, "b1", 170)]
    await store.update_binding(released, cooling, expected_version=1, now=50, actor="op",
                               action="binding.release", node="n")  # fmt: skip
    with pytest.raises(ConflictError):
        await store.update_binding(released, cooling, expected_version=1, now=51, actor="op",
                                   action="binding.release", node="n")  # fmt: skip
    stored = await store.get_binding("b1")
    assert stored.state is BindingState.RELEASED and stored.version == 2
    actions = [e.action for e in await store.list_audit(binding_id="b1")]
    assert actions == ["binding.create", "binding.release"]
    assert {c.free_at for c in await store.live_claims(60)} == {170}
    await store.prune(now=171)
    assert await store.live_claims(0) == []


async def test_expiry_sweep_marks_and_reports(store: Store) -> None:
    await make_tenant(store)
    await store.import_numbers("t1", [X1, X2], now=1, actor="op", node="n")
    await store.create_binding(axb("b1", X1, A, B, expires_at=100), actor="op")
    await store.create_binding(axb("b2", X2, A, B, expires_at=500), actor="op")
    expired = await store.expire_bindings(now=200, node="n")
    assert [b.id for b in expired] == ["b1"] and expired[0].state is BindingState.EXPIRED
    assert await store.expire_bindings(now=200, node="n") == []
    live = [b.id async for b in store.iter_live_bindings()]
    assert live == ["b2"]
    found = await store.list_bindings(BindingFilter(state="expired"), now=600)
    assert {b.id for b in found} == {"b1", "b2"}  # b2 is past expiry though not swept


async def test_change_sequence_lists_every_write(store: Store) -> None:
    start = await store.last_change_seq()
    await make_tenant(store)
    await store.import_numbers("t1", [X1], now=1, actor="op", node="n")
    await store.create_binding(axb("b1", X1, A, B), actor="op")
    changes = await store.changes_after(start)
    assert [(c.kind, c.key) for c in changes] == [("tenant", "t1"), ("numbers", "t1"),
                                                  ("binding", "b1")]  # fmt: skip
    assert await store.changes_after(changes[-1].seq) == []
    assert await store.changes_after(changes[-1].seq, [changes[0].seq]) == [changes[0]]


async def test_list_bindings_filters(store: Store) -> None:
    await make_tenant(store)
    await store.import_numbers("t1", [X1, X2], now=1, actor="op", node="n")
    await store.create_binding(axb("b1", X1, A, B), actor="op")
    await store.create_binding(axb("b2", X2, A, C), actor="op")
    assert {b.id for b in await store.list_bindings(BindingFilter(number=C), now=20)} == {"b2"}
    assert {b.id for b in await store.list_bindings(BindingFilter(x=X1), now=20)} == {"b1"}
    found = await store.list_bindings(BindingFilter(order_id="o-b2"), now=20)
    assert [b.id for b in found] == ["b2"]
    assert await store.list_bindings(BindingFilter(tenant_id="t2"), now=20) == []
    assert await store.get_bindings(["b1", "nope"]) == [await store.get_binding("b1")]


async def test_audit_entries(store: Store) -> None:
    await store.add_audit(AuditEntry(5.0, "op", "custom", None, None, {"k": [1, 2]}))
    [entry] = await store.list_audit()
    assert entry.detail == {"k": [1, 2]} and entry.action == "custom"


async def test_bad_urls_are_store_errors() -> None:
    with pytest.raises(StoreError):
        await open_store("mysql://x/y")
    with pytest.raises(StoreError):
        await open_store("sqlite:///")
