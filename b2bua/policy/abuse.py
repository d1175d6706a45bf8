"""The abuse controls' state: counters, block lists, fraud watches, metrics counters.

:class:`AbusePolicy` is plain synchronous state that the
:class:`~b2bua.policy.router.PolicyRouter` consults on every INVITE and the
:class:`~b2bua.policy.service.PolicyService` keeps in step with the store. It does
no I/O and never awaits: automatic block entries it makes are queued in
:attr:`AbusePolicy.pending_blocks` for the service to persist.

Metrics: :attr:`AbusePolicy.counters` holds plain integers and dictionaries (calls
looked at, rejections by reason, fraud alerts by rule, automatic blocks) and
:meth:`AbusePolicy.gauges` the current sizes; the metrics module reads them, so
nothing here imports a metrics library.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from b2bua.bindings.index import RejectReason
from b2bua.calls.routing import RouteDecision, RouteRejection
from b2bua.numbering import DEFAULT_RULES, NumberError, NumberingRules
from b2bua.policy.blocklist import BlockList
from b2bua.policy.limits import DistinctTracker, SlidingCounter
from b2bua.policy.model import GLOBAL_SCOPE, BlockEntry, BlockSource
from b2bua.policy.settings import PolicySettings

__all__ = [
    "REASON_BINDING_CAP",
    "REASON_BLOCKED",
    "REASON_FRAUD_CALLERS",
    "REASON_FRAUD_NUMBERS",
    "REASON_RATE_LIMITED",
    "AbusePolicy",
    "PolicyCounters",
]

# Rejection reasons (call records and the `rejected` counter use these names).
REASON_BLOCKED = "blocked"
REASON_RATE_LIMITED = "rate_limited"
REASON_BINDING_CAP = "binding_attempts_exceeded"
REASON_FRAUD_NUMBERS = "fraud_distinct_numbers"
REASON_FRAUD_CALLERS = "fraud_distinct_callers"
REASONS = (
    REASON_BLOCKED,
    REASON_RATE_LIMITED,
    REASON_BINDING_CAP,
    REASON_FRAUD_NUMBERS,
    REASON_FRAUD_CALLERS,
)

# DESIGN section 4: over a rate limit -> 403 with a Reason header (RFC 3326).
RATE_LIMITED_HEADER = 'SIP;cause=403;text="rate limited"'
BINDING_CAP_HEADER = 'SIP;cause=403;text="binding attempt limit"'

_NOT_PARTICIPANT = RejectReason.NOT_PARTICIPANT.value
_PENDING_MAX = 10_000
AUTO_ACTOR = "policy"


def _zeros(names: tuple[str, ...]) -> dict[str, int]:
    return dict.fromkeys(names, 0)


@dataclass(slots=True)
class PolicyCounters:
    """Monotonic counters for the metrics module (read, never reset).

    - ``attempts``: calls the policy looked at (all rules enabled or not);
    - ``rejected``: calls the policy refused, by reason (every reason present);
    - ``alerts``: fraud pattern trips by rule (``fraud_distinct_numbers``,
      ``fraud_distinct_callers``); each trip blocks one caller;
    - ``auto_blocks``: automatic block entries made (one per trip, unless the caller
      already had a manual global block, which is kept);
    - ``auto_blocks_dropped``: automatic entries not persisted because the queue to
      the store was full (they still hold on this node).
    """

    attempts: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: _zeros(REASONS))
    alerts: dict[str, int] = field(
        default_factory=lambda: _zeros((REASON_FRAUD_NUMBERS, REASON_FRAUD_CALLERS))
    )
    auto_blocks: int = 0
    auto_blocks_dropped: int = 0


class AbusePolicy:
    """Rate limits, attempt caps, block lists and fraud watches of one node."""

    def __init__(
        self, settings: PolicySettings | None = None, rules: NumberingRules = DEFAULT_RULES
    ) -> None:
        self.settings = settings = settings or PolicySettings()
        self.rules = rules
        self.blocklist = BlockList()
        self.counters = PolicyCounters()
        self.caller_rate = SlidingCounter(settings.rate_window_s)
        self.binding_attempts = SlidingCounter(settings.binding_window_s)
        self.numbers_by_caller = DistinctTracker(settings.fraud_window_s)
        self.strangers_by_number = DistinctTracker(settings.fraud_window_s)
        self.pending_blocks: list[BlockEntry] = []
        self._real: dict[str, str] = {}
        self._middle: dict[str, str] = {}

    # -- numbers -------------------------------------------------------------------
    def canonical_caller(self, raw: str) -> str:
        """``raw`` in canonical real form when it is one (cached), else ``raw`` itself.

        Anonymous or foreign callers keep their raw form, so they are still counted
        (all ``anonymous`` callers share one rate, which is the point).
        """
        found = self._real.get(raw)
        if found is None:
            try:
                found = self.rules.real(raw)
            except NumberError:
                found = raw
            self._remember(self._real, raw, found)
        return found

    def canonical_middle(self, raw: str) -> str:
        """``raw`` as a canonical middle number when it is one (cached), else ``raw``."""
        found = self._middle.get(raw)
        if found is None:
            try:
                found = self.rules.middle(raw)
            except NumberError:
                found = raw
            self._remember(self._middle, raw, found)
        return found

    def _remember(self, cache: dict[str, str], raw: str, canonical: str) -> None:
        if len(cache) >= self.settings.number_cache_size:
            cache.clear()  # crude but bounded; a miss costs one normalisation
        cache[raw] = canonical

    # -- rejections ----------------------------------------------------------------
    def reject(self, reason: str, caller: str, header: str | None = None) -> RouteRejection:
        """Count and build a 403 for ``reason``."""
        self.counters.rejected[reason] += 1
        return RouteRejection(403, reason, header, caller)

    # -- fraud patterns -----------------------------------------------------------
    def watch(
        self, caller: str, dialled: str, result: RouteDecision | RouteRejection, now: float
    ) -> RouteRejection | None:
        """Feed one attempt to the fraud patterns; a rejection if one tripped.

        Every attempt counts, refused ones included: a caller probing middle numbers
        it is not bound to is exactly the marketing pattern.
        """
        settings = self.settings
        if isinstance(result, RouteDecision):
            number = result.middle_number
            stranger = (
                settings.fraud_count_open_callers
                and result.mode == "AXN"
                and result.direction == "b_to_a"
            )
        else:
            number = self.canonical_middle(dialled)
            stranger = result.reason == _NOT_PARTICIPANT
        limit = settings.fraud_distinct_numbers
        if self.numbers_by_caller.add(caller, number, limit, now) > limit:
            # Forgotten so that the caller starts afresh once the block expires.
            self.numbers_by_caller.forget(caller)
            return self._trip(REASON_FRAUD_NUMBERS, caller, now)
        if stranger:
            limit = settings.fraud_distinct_callers
            # Not forgotten: while X is being swept, every further stranger trips.
            if self.strangers_by_number.add(number, caller, limit, now) > limit:
                return self._trip(REASON_FRAUD_CALLERS, caller, now)
        return None

    def _trip(self, rule: str, caller: str, now: float) -> RouteRejection:
        counters = self.counters
        counters.alerts[rule] += 1
        existing = self.blocklist.get(GLOBAL_SCOPE, caller)
        if existing is None or (existing.source is BlockSource.AUTO or not existing.active_at(now)):
            entry = BlockEntry(
                GLOBAL_SCOPE,
                caller,
                BlockSource.AUTO,
                "fraud:" + rule.removeprefix("fraud_"),
                now,
                AUTO_ACTOR,
                now + self.settings.fraud_block_s,
            )
            self.blocklist.put(entry)
            counters.auto_blocks += 1
            if len(self.pending_blocks) < _PENDING_MAX:
                self.pending_blocks.append(entry)
            else:
                counters.auto_blocks_dropped += 1
        return self.reject(rule, caller)

    def take_pending_blocks(self) -> list[BlockEntry]:
        """Automatic block entries made since the last call (for the service to persist)."""
        pending, self.pending_blocks = self.pending_blocks, []
        return pending

    # -- metrics ---------------------------------------------------------------------
    def gauges(self) -> dict[str, int]:
        """Current sizes: tracked callers, bindings, middle numbers, block entries."""
        return {
            "tracked_callers": len(self.caller_rate),
            "tracked_bindings": len(self.binding_attempts),
            "watched_callers": len(self.numbers_by_caller),
            "watched_numbers": len(self.strangers_by_number),
            "blocklist_global": len(self.blocklist.global_entries),
            "blocklist_tenant": len(self.blocklist) - len(self.blocklist.global_entries),
        }
