"""The policy layer of call routing: wraps any :class:`~b2bua.calls.routing.Router`.

Order of the checks, cheapest and most decisive first:

1. global block list (a blocked caller never reaches the inner router);
2. the caller's attempt rate across all bindings (403 with a Reason header);
3. the inner router (binding lookup: 404/403 for unknown X, non-participants,
   direction, suspended tenant);
4. the fraud watches, fed with every attempt that got this far, routed or not;
5. for a routed call: the tenant's own block list, then the binding's attempt cap.

Attempts refused by steps 1, 2 and 5 are not counted towards the rates, so a
caller hammering while limited does not extend its own penalty.
"""

from __future__ import annotations

from b2bua.calls.routing import RouteDecision, Router, RouteRejection
from b2bua.policy.abuse import (
    BINDING_CAP_HEADER,
    RATE_LIMITED_HEADER,
    REASON_BINDING_CAP,
    REASON_BLOCKED,
    REASON_RATE_LIMITED,
    AbusePolicy,
)

__all__ = ["PolicyRouter"]


class PolicyRouter:
    """A :class:`Router` applying :class:`AbusePolicy` around ``inner``.

    Answers from memory (dictionary lookups), like every router on the hot path.
    """

    __slots__ = ("inner", "policy")

    def __init__(self, inner: Router, policy: AbusePolicy) -> None:
        self.inner = inner
        self.policy = policy

    def route(
        self, caller: str, dialled: str, *, wall_now: float
    ) -> RouteDecision | RouteRejection:
        """Route through ``inner`` unless a policy rule refuses the call (403)."""
        policy = self.policy
        settings = policy.settings
        if not settings.enabled:
            return self.inner.route(caller, dialled, wall_now=wall_now)
        policy.counters.attempts += 1
        number = policy.canonical_caller(caller)
        blocklist = policy.blocklist
        if (
            settings.blocklist_enabled
            and number in blocklist.global_entries
            and blocklist.blocked_globally(number, wall_now) is not None
        ):
            return policy.reject(REASON_BLOCKED, number)
        if settings.rate_enabled and not policy.caller_rate.hit(
            number, settings.rate_per_caller, wall_now
        ):
            return policy.reject(REASON_RATE_LIMITED, number, RATE_LIMITED_HEADER)
        result = self.inner.route(caller, dialled, wall_now=wall_now)
        if settings.fraud_enabled:
            tripped = policy.watch(number, dialled, result, wall_now)
            if tripped is not None:
                return tripped
        if not isinstance(result, RouteDecision):
            return result
        if (
            settings.blocklist_enabled
            and number in blocklist.by_tenant
            and blocklist.blocked_for_tenant(number, result.tenant_id, wall_now) is not None
        ):
            return policy.reject(REASON_BLOCKED, number)
        if settings.binding_cap_enabled and not policy.binding_attempts.hit(
            result.binding_id, settings.binding_attempt_cap, wall_now
        ):
            return policy.reject(REASON_BINDING_CAP, number, BINDING_CAP_HEADER)
        return result
