"""Each abuse rule tripped through SIP bytes: the call engine with a PolicyRouter.

The sans-IO bench of the call tests runs the engine on a fake clock; a table
router stands in for the binding index underneath the policy.
"""

from __future__ import annotations

import itertools

from calls.harness import CALLER_TRUNK, A, B, Bench, FakeRouter, X, axb, invite_from_a, only

from b2bua.calls.events import CallAttempted, CallEnded
from b2bua.calls.routing import RouteRejection
from b2bua.policy import AbusePolicy, BlockEntry, BlockSource, PolicyRouter, PolicySettings
from b2bua.sip import Response

_ids = itertools.count(1)


def bench_with(
    settings: PolicySettings, router: FakeRouter | None = None
) -> tuple[Bench, AbusePolicy]:
    """A bench whose engine routes through a PolicyRouter around ``router``."""
    policy = AbusePolicy(settings)
    inner = router or FakeRouter({(A, X): axb()})
    return Bench(PolicyRouter(inner, policy)), policy  # type: ignore[arg-type]


def call(bench: Bench, caller: str = A, dialled: str = X) -> Response:
    """Send one INVITE; return the final answer (or the 100 Trying if it was routed)."""
    n = next(_ids)
    sent = bench.feed(
        invite_from_a(caller=caller, dialled=dialled, call_id=f"c{n}", branch=f"z9hG4bKp{n}"),
        CALLER_TRUNK,
    )
    answers = [m for m, _ in sent if isinstance(m, Response)]
    finals = [r for r in answers if r.status >= 200]
    return finals[0] if finals else answers[0]


def rejections(bench: Bench) -> list[str | None]:
    return [e.rejection for e in bench.sink.events if isinstance(e, CallAttempted)]


def test_rate_limit_answers_403_with_a_reason_header() -> None:
    bench, policy = bench_with(PolicySettings(rate_per_caller=2, rate_window_s=60))
    assert call(bench).status == 100
    assert call(bench).status == 100
    refused = call(bench)
    assert refused.status == 403
    assert refused.headers.get("reason") == 'SIP;cause=403;text="rate limited"'
    assert rejections(bench)[-1] == "rate_limited"
    assert policy.counters.rejected["rate_limited"] == 1
    ended = [e for e in bench.sink.events if isinstance(e, CallEnded)]
    assert ended[-1].status == 403
    # The forwarded calls reached the trunk; the refused one did not.
    assert len(only(bench.sent(), "INVITE")) == 0
    bench.now += 180
    assert call(bench).status == 100


def test_blocked_caller_answers_403_blocked() -> None:
    bench, policy = bench_with(PolicySettings())
    policy.blocklist.put(BlockEntry("", A, BlockSource.MANUAL, "", 0.0, "operator"))
    refused = call(bench)
    assert refused.status == 403
    assert refused.headers.get("reason") is None
    assert rejections(bench) == ["blocked"]
    attempted = next(e for e in bench.sink.events if isinstance(e, CallAttempted))
    assert attempted.caller == A  # canonical, from P-Asserted-Identity +86...


def test_binding_attempt_cap_answers_403_with_a_reason_header() -> None:
    router = FakeRouter({(A, X): axb(), (B, X): axb()})
    bench, policy = bench_with(PolicySettings(binding_attempt_cap=2), router)
    assert call(bench, A).status == 100
    assert call(bench, B).status == 100
    refused = call(bench, A)
    assert refused.status == 403
    assert refused.headers.get("reason") == 'SIP;cause=403;text="binding attempt limit"'
    assert rejections(bench)[-1] == "binding_attempts_exceeded"
    assert policy.counters.rejected["binding_attempts_exceeded"] == 1


def test_caller_sweeping_middle_numbers_gets_blocked() -> None:
    bench, policy = bench_with(PolicySettings(fraud_distinct_numbers=3))
    for i in range(3):
        assert call(bench, A, f"70012345678{i:04d}").status == 404
    tripped = call(bench, A, "700123456789999")
    assert tripped.status == 403
    assert rejections(bench)[-1] == "fraud_distinct_numbers"
    assert call(bench, A, X).status == 403  # its own binding too, while blocked
    assert rejections(bench)[-1] == "blocked"
    assert policy.counters.alerts["fraud_distinct_numbers"] == 1
    assert [e.number for e in policy.pending_blocks] == [A]


def test_number_called_by_many_strangers_blocks_the_strangers() -> None:
    strangers = [f"1390000{i:04d}" for i in range(4)]
    table = {(s, X): RouteRejection(403, "not_participant", caller=s) for s in strangers}
    router = FakeRouter({(A, X): axb(), **table})
    bench, policy = bench_with(PolicySettings(fraud_distinct_callers=3), router)
    for stranger in strangers[:3]:
        assert call(bench, stranger).status == 403
    assert rejections(bench) == ["not_participant"] * 3
    assert call(bench, strangers[3]).status == 403
    assert rejections(bench)[-1] == "fraud_distinct_callers"
    assert policy.counters.alerts["fraud_distinct_callers"] == 1
    assert call(bench, A).status == 100  # the participant still gets through


def test_normal_calls_are_untouched() -> None:
    bench, policy = bench_with(PolicySettings())
    for _ in range(5):
        bench.now += 30
        assert call(bench).status == 100
    assert not any(policy.counters.rejected.values())
