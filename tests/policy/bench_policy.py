"""Hot-path cost of the policy layer (a script, not a test).

    .venv/bin/python tests/policy/bench_policy.py

Measures PolicyRouter.route minus the inner router's own cost, with every rule
enabled, for a steady caller, a caller in +86 form (normalisation cached), and
100,000 distinct callers cycling (dictionaries large, windows rolling).
"""

from __future__ import annotations

import time

from b2bua.calls.routing import RouteDecision, RouteRejection
from b2bua.policy import AbusePolicy, PolicyRouter, PolicySettings

X = "700123456789012"
DECISION = RouteDecision(
    binding_id="b1", tenant_id="t1", order_id="o1", mode="AXB", direction="a_to_b",
    middle_number=X, shown_number=X, targets=("13900000000",), caller="13800000000",
)  # fmt: skip


class Inner:
    def route(
        self, caller: str, dialled: str, *, wall_now: float
    ) -> RouteDecision | RouteRejection:
        return DECISION


def per_call(router: Inner | PolicyRouter, callers: list[str], n: int) -> float:
    route = router.route
    count = len(callers)
    now = 1_800_000_000.0
    started = time.perf_counter()
    for i in range(n):
        route(callers[i % count], X, wall_now=now + i * 0.001)
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    n = 300_000
    # Limits high enough that nothing trips: the cost of the checks themselves.
    settings = PolicySettings(
        rate_per_caller=10**9, binding_attempt_cap=10**9, fraud_distinct_numbers=10**6
    )
    cases = {
        "one caller, canonical": ["13800000000"],
        "one caller, +86 form": ["+8613800000000"],
        "100k callers cycling": [f"138{i:08d}" for i in range(100_000)],
    }
    for name, callers in cases.items():
        base = min(per_call(Inner(), callers, n) for _ in range(3))
        policy = min(
            per_call(PolicyRouter(Inner(), AbusePolicy(settings)), callers, n) for _ in range(3)
        )
        print(f"{name:24s} inner {base:5.2f} us  with policy {policy:5.2f} us"
              f"  -> policy costs {policy - base:5.2f} us/call")  # fmt: skip


if __name__ == "__main__":
    main()
