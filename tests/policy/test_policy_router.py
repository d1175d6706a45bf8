"""Each abuse rule trips, says why, counts itself, and leaves normal callers alone.

A real BindingService on SQLite routes underneath; the wall clock is fake.
"""

from __future__ import annotations

from b2bua.bindings import BindingSpec
from b2bua.calls.routing import RouteDecision, RouteRejection
from b2bua.policy import BlockEntry, BlockSource, PolicySettings

from .conftest import POOL, A, B, C, World

STRANGERS = [f"1390000{i:04d}" for i in range(50)]


def rejected(result: RouteDecision | RouteRejection, reason: str) -> RouteRejection:
    assert isinstance(result, RouteRejection), result
    assert result.status == 403
    assert result.reason == reason
    return result


async def test_normal_caller_is_unaffected(world: World) -> None:
    binding = await world.bind()
    for _ in range(10):
        world.clock.now += 10
        result = world.call(A, binding.x)
        assert isinstance(result, RouteDecision) and result.targets == (B,)
        assert isinstance(world.call(B, binding.x), RouteDecision)
    counters = world.policy.counters
    assert counters.attempts == 20
    assert not any(counters.rejected.values())
    assert not any(counters.alerts.values())


async def test_inner_rejections_pass_through(world: World) -> None:
    binding = await world.bind()
    unknown = world.call(A, "700999999999999")
    assert isinstance(unknown, RouteRejection) and (unknown.status, unknown.reason) == (
        404,
        "unknown_number",
    )
    stranger = world.call(C, binding.x)
    assert isinstance(stranger, RouteRejection) and stranger.reason == "not_participant"
    assert not any(world.policy.counters.rejected.values())


async def test_caller_rate_limit_trips_with_reason_header_and_recovers(world: World) -> None:
    world.use(PolicySettings(rate_per_caller=3, rate_window_s=60))
    binding = await world.bind()
    other = await world.bind(a=C, b="13800000009")
    for _ in range(3):
        assert isinstance(world.call("+86" + A, binding.x), RouteDecision)
    # Across bindings: the limit is the caller's, not the binding's.
    limited = rejected(world.call(A, binding.x), "rate_limited")
    assert limited.reason_header == 'SIP;cause=403;text="rate limited"'
    assert limited.caller == A
    # Another caller is not affected.
    assert isinstance(world.call(C, other.x), RouteDecision)
    assert world.policy.counters.rejected["rate_limited"] == 1
    # Refused attempts are not counted: once two windows pass, A is fully back.
    world.clock.now += 120
    for _ in range(3):
        assert isinstance(world.call(A, binding.x), RouteDecision)
    rejected(world.call(A, binding.x), "rate_limited")


async def test_caller_rate_counts_across_bindings(world: World) -> None:
    world.use(PolicySettings(rate_per_caller=2))
    first = await world.bind()
    second = await world.bind(b=C)
    assert isinstance(world.call(A, first.x), RouteDecision)
    assert isinstance(world.call(A, second.x), RouteDecision)
    rejected(world.call(A, first.x), "rate_limited")


async def test_binding_attempt_cap(world: World) -> None:
    world.use(PolicySettings(binding_attempt_cap=4, binding_window_s=3600))
    binding = await world.bind()
    for caller in (A, B, A, B):
        world.clock.now += 30
        assert isinstance(world.call(caller, binding.x), RouteDecision)
    capped = rejected(world.call(B, binding.x), "binding_attempts_exceeded")
    assert capped.reason_header == 'SIP;cause=403;text="binding attempt limit"'
    other = await world.bind(a=C, b="13800000009")
    assert isinstance(world.call(C, other.x), RouteDecision)  # other bindings unaffected
    world.clock.now += 2 * 3600
    assert isinstance(world.call(A, binding.x), RouteDecision)
    assert world.policy.counters.rejected["binding_attempts_exceeded"] == 1


async def test_global_block_list(world: World) -> None:
    binding = await world.bind()
    now = world.clock.now
    world.policy.blocklist.put(BlockEntry("", A, BlockSource.MANUAL, "spam", now, "op"))
    result = rejected(world.call("+86" + A, binding.x), "blocked")
    assert result.reason_header is None and result.caller == A
    assert isinstance(world.call(B, binding.x), RouteDecision)
    assert world.policy.counters.rejected["blocked"] == 1


async def test_expiring_block_lapses(world: World) -> None:
    binding = await world.bind()
    now = world.clock.now
    world.policy.blocklist.put(BlockEntry("", A, BlockSource.MANUAL, "", now, "op", now + 60))
    rejected(world.call(A, binding.x), "blocked")
    world.clock.now += 61
    assert isinstance(world.call(A, binding.x), RouteDecision)


async def test_tenant_block_list_applies_to_that_tenant_only(world: World) -> None:
    binding = await world.bind()
    other_tenant, _ = await world.service.create_tenant("other")
    await world.service.import_numbers(other_tenant.id, ["700000000000999"])
    now = world.clock.now
    world.policy.blocklist.put(BlockEntry(world.tenant_id, A, BlockSource.MANUAL, "", now, "t"))
    rejected(world.call(A, binding.x), "blocked")
    spec = BindingSpec(mode="AXB", ttl_s=600, a=A, b=C, order_id="order-2")
    elsewhere = await world.service.create_binding(other_tenant.id, spec)
    assert isinstance(world.call(A, elsewhere.x), RouteDecision)


async def test_fraud_distinct_numbers_blocks_the_caller(world: World) -> None:
    k = 5
    world.use(PolicySettings(fraud_distinct_numbers=k, fraud_window_s=600, fraud_block_s=900))
    own = await world.bind()
    assert isinstance(world.call(A, own.x), RouteDecision)
    probes = [n for n in POOL if n != own.x]
    # A probes middle numbers it is not bound to: each is a plain 403/404 ...
    for number in probes[: k - 1]:
        world.clock.now += 5
        result = world.call(A, number)
        assert isinstance(result, RouteRejection) and result.reason in (
            "not_participant",
            "unknown_number",
        )
    # ... until the (K+1)th distinct number trips the pattern.
    world.clock.now += 5
    rejected(world.call(A, probes[k]), "fraud_distinct_numbers")
    counters = world.policy.counters
    assert counters.alerts["fraud_distinct_numbers"] == 1
    assert counters.auto_blocks == 1
    [entry] = world.policy.pending_blocks
    assert (entry.scope, entry.number, entry.source) == ("", A, BlockSource.AUTO)
    assert entry.expires_at == world.clock.now + 900
    # Blocked now, even on its own binding; B is untouched.
    rejected(world.call(A, own.x), "blocked")
    assert isinstance(world.call(B, own.x), RouteDecision)
    # The block expires; the caller starts afresh.
    world.clock.now += 901
    assert isinstance(world.call(A, own.x), RouteDecision)


async def test_distinct_numbers_outside_the_window_do_not_add_up(world: World) -> None:
    world.use(PolicySettings(fraud_distinct_numbers=3, fraud_window_s=60))
    for number in POOL[:10]:
        world.clock.now += 61
        world.call(A, number)
    assert world.policy.counters.alerts["fraud_distinct_numbers"] == 0


async def test_fraud_distinct_callers_on_one_number(world: World) -> None:
    k = 4
    world.use(PolicySettings(fraud_distinct_callers=k, fraud_window_s=600))
    binding = await world.bind()
    for stranger in STRANGERS[:k]:
        rejected_inner = world.call(stranger, binding.x)
        assert isinstance(rejected_inner, RouteRejection)
        assert rejected_inner.reason == "not_participant"
    rejected(world.call(STRANGERS[k], binding.x), "fraud_distinct_callers")
    rejected(world.call(STRANGERS[k + 1], binding.x), "fraud_distinct_callers")
    assert world.policy.counters.alerts["fraud_distinct_callers"] == 2
    assert {e.number for e in world.policy.pending_blocks} == set(STRANGERS[k : k + 2])
    # The participants still get through.
    assert isinstance(world.call(A, binding.x), RouteDecision)
    assert isinstance(world.call(B, binding.x), RouteDecision)


async def test_open_binding_strangers_count_only_when_configured(world: World) -> None:
    binding = await world.bind(a=A, b=None, mode="AXN")
    world.use(PolicySettings(fraud_distinct_callers=2))
    for stranger in STRANGERS[:5]:
        assert isinstance(world.call(stranger, binding.x), RouteDecision)
    world.use(PolicySettings(fraud_distinct_callers=2, fraud_count_open_callers=True))
    for stranger in STRANGERS[:2]:
        assert isinstance(world.call(stranger, binding.x), RouteDecision)
    rejected(world.call(STRANGERS[2], binding.x), "fraud_distinct_callers")


async def test_manual_block_is_not_replaced_by_an_automatic_one(world: World) -> None:
    world.use(PolicySettings(fraud_distinct_numbers=1, blocklist_enabled=False))
    now = world.clock.now
    manual = BlockEntry("", A, BlockSource.MANUAL, "by hand", now, "op")
    world.policy.blocklist.put(manual)
    world.call(A, POOL[0])
    rejected(world.call(A, POOL[1]), "fraud_distinct_numbers")
    assert world.policy.blocklist.get("", A) is manual
    assert world.policy.pending_blocks == []


async def test_each_rule_can_be_switched_off(world: World) -> None:
    binding = await world.bind()
    now = world.clock.now
    world.use(
        PolicySettings(
            rate_enabled=False, rate_per_caller=1, binding_cap_enabled=False,
            binding_attempt_cap=1, blocklist_enabled=False, fraud_enabled=False,
            fraud_distinct_numbers=1,
        )
    )  # fmt: skip
    world.policy.blocklist.put(BlockEntry("", A, BlockSource.MANUAL, "", now, "op"))
    for number in (binding.x, POOL[5], binding.x, POOL[6], binding.x):
        world.call(A, number)
    assert isinstance(world.call(A, binding.x), RouteDecision)
    assert not any(world.policy.counters.rejected.values())
    world.use(PolicySettings(enabled=False, rate_per_caller=1))
    world.call(A, binding.x)
    assert isinstance(world.call(A, binding.x), RouteDecision)
    assert world.policy.counters.attempts == 0


async def test_gauges_report_sizes(world: World) -> None:
    binding = await world.bind()
    world.call(A, binding.x)
    world.call(B, binding.x)
    gauges = world.policy.gauges()
    assert gauges["tracked_callers"] == 2 and gauges["tracked_bindings"] == 1
    assert gauges["blocklist_global"] == 0
