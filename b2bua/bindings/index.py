"""The in-memory binding index: call-time lookup and the allocator's view of the pool.

:meth:`BindingIndex.resolve` answers "caller dialled X: where does the call go?"
with dictionary lookups only, never awaiting the store, so the SIP hot path stays
in microseconds. The index is filled from the store at start and kept in step by
the :class:`~b2bua.bindings.service.BindingService` (its own changes, and other
nodes' changes through the shared change sequence).

Entries are ``__slots__`` objects to keep a million active bindings well under
1 GB. They are replaced, never mutated, when a binding changes (the one exception
is :attr:`TenantEntry.suspended`, shared by all of a tenant's bindings so that a
suspension takes effect for every one of them at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from b2bua.bindings.model import ANY_CALLER, Binding, BindingState, Direction, Mode, claim_keys
from b2bua.numbering import NumberError, NumberingRules

__all__ = [
    "ActiveBinding",
    "BindingIndex",
    "NumberEntry",
    "RejectReason",
    "Rejection",
    "Route",
    "TenantEntry",
]


class RejectReason(StrEnum):
    """Why a call may not use the number it dialled (DESIGN section 4)."""

    UNKNOWN_NUMBER = "unknown_number"
    EXPIRED = "expired"
    NOT_PARTICIPANT = "not_participant"
    DIRECTION_NOT_ALLOWED = "direction_not_allowed"
    TENANT_SUSPENDED = "tenant_suspended"
    NO_DEFAULT_CALLEE = "no_default_callee"  # AXN: A dialled X and no default B is set

    @property
    def sip_status(self) -> int:
        """404 for a number that leads nowhere, 403 for a caller that may not use it."""
        return 404 if self in (RejectReason.UNKNOWN_NUMBER, RejectReason.EXPIRED) else 403


@dataclass(slots=True)
class TenantEntry:
    """A tenant as the index needs it; ``suspended`` is flipped in place."""

    id: str
    suspended: bool = False


@dataclass(slots=True)
class ActiveBinding:
    """What routing needs of one active binding (read-only by convention)."""

    id: str
    tenant: TenantEntry
    mode: Mode
    x: str
    y: str | None
    a: str | None
    b: str | None
    group: tuple[str, ...]
    expires_at: float
    direction: Direction
    order_id: str | None
    label: str | None
    max_call_s: int | None
    record: bool
    version: int

    @property
    def tenant_id(self) -> str:
        return self.tenant.id


@dataclass(slots=True, frozen=True)
class Route:
    """A call that may go ahead.

    ``targets`` holds one real number, or the GXB hunt list in order; the callee is
    shown ``display_number`` (X, or Y when A calls B in AXYB). ``direction`` says
    which way the call goes: ``a_to_b`` (A, or a GXB group member, calling) or
    ``b_to_a`` (B, or in AXN any caller reaching A).
    """

    binding: ActiveBinding
    targets: tuple[str, ...]
    display_number: str
    direction: Direction


@dataclass(slots=True, frozen=True)
class Rejection:
    """A call that must be refused, with the SIP status to answer."""

    reason: RejectReason
    binding_id: str | None = None

    @property
    def sip_status(self) -> int:
        return self.reason.sip_status


_UNKNOWN = Rejection(RejectReason.UNKNOWN_NUMBER)
_NOT_PARTICIPANT = Rejection(RejectReason.NOT_PARTICIPANT)


@dataclass(slots=True)
class NumberEntry:
    """A pool number: owner, how loaded it is, and its cooling and pending claims.

    ``active`` counts bindings in the index using the number (as X or Y); ``load``
    adds creations in flight, and is what the least-used allocation sorts by.
    ``cooling`` maps a participant to the time its claim on this number frees.
    """

    number: str
    tenant_id: str
    retired: bool = False
    active: int = 0
    load: int = 0
    open_binding: ActiveBinding | None = None
    cooling: dict[str, float] | None = None
    pending: dict[str, int] | None = None


class _PoolUsage:
    """A tenant's usable numbers bucketed by load, for least-used-first allocation."""

    def __init__(self) -> None:
        self.buckets: list[dict[str, NumberEntry]] = [{}]
        # Every bucket below this one is empty: as a pool fills up evenly its low
        # buckets empty out, and each allocation would walk past all of them.
        self.lowest = 0

    def put(self, entry: NumberEntry) -> None:
        while len(self.buckets) <= entry.load:
            self.buckets.append({})
        self.buckets[entry.load][entry.number] = entry
        if entry.load < self.lowest:
            self.lowest = entry.load

    def drop(self, entry: NumberEntry) -> None:
        if entry.load < len(self.buckets):
            self.buckets[entry.load].pop(entry.number, None)

    def candidates(self) -> list[NumberEntry]:
        """Numbers in least-used order (a snapshot: safe while loads change)."""
        ordered: list[NumberEntry] = []
        for bucket in self.buckets:
            ordered.extend(bucket.values())
        return ordered

    def first(self, accept: object) -> NumberEntry | None:
        """The least-used number ``accept(entry)`` agrees to, or None."""
        buckets = self.buckets
        while self.lowest < len(buckets) - 1 and not buckets[self.lowest]:
            self.lowest += 1
        for load in range(self.lowest, len(buckets)):
            for entry in buckets[load].values():
                if accept(entry):  # type: ignore[operator]
                    return entry
        return None


class BindingIndex:
    """Active bindings by ``(number dialled, caller)``, pool numbers, tenants, cooling."""

    def __init__(self, rules: NumberingRules, cooling_period_s: float) -> None:
        self.rules = rules
        self.cooling_period_s = cooling_period_s
        self.tenants: dict[str, TenantEntry] = {}
        self.numbers: dict[str, NumberEntry] = {}
        self.routes: dict[tuple[str, str], ActiveBinding] = {}
        self.by_id: dict[str, ActiveBinding] = {}
        self._pools: dict[str, _PoolUsage] = {}
        self._ended: dict[str, int] = {}  # recently removed id -> version, against stale replays

    # -- call time -------------------------------------------------------------
    def resolve(self, caller: str, x: str, now: float) -> Route | Rejection:
        """Route or reject a call from ``caller`` to ``x`` at wall-clock ``now``.

        Both numbers should be canonical (the fast path); other accepted forms are
        normalised on a miss. Expiry is checked here, so an expired binding never
        routes even before the sweeper has marked it.
        """
        binding = self.routes.get((x, caller))
        if binding is None:
            entry = self.numbers.get(x)
            if entry is not None and entry.open_binding is not None:
                binding = entry.open_binding  # AXN: any caller reaches A
            else:
                retry = self._normalised(caller, x)
                if retry is not None:
                    return self.resolve(retry[0], retry[1], now)
                if entry is None or entry.active == 0:
                    return _UNKNOWN
                return _NOT_PARTICIPANT
        if binding.expires_at <= now:
            return Rejection(RejectReason.EXPIRED, binding.id)
        if binding.tenant.suspended:
            return Rejection(RejectReason.TENANT_SUSPENDED, binding.id)
        mode = binding.mode
        if mode is Mode.AXB:
            if caller == binding.a:
                route = Route(binding, (binding.b,), x, Direction.A_TO_B)  # type: ignore[arg-type]
            else:
                route = Route(binding, (binding.a,), x, Direction.B_TO_A)  # type: ignore[arg-type]
        elif mode is Mode.AXYB:
            # A dials X and B sees Y; B dials Y and A sees X (DESIGN section 3).
            if x == binding.x:
                route = Route(binding, (binding.b,), binding.y, Direction.A_TO_B)  # type: ignore[arg-type]
            else:
                route = Route(binding, (binding.a,), binding.x, Direction.B_TO_A)  # type: ignore[arg-type]
        elif mode is Mode.GXB:
            if caller == binding.b:
                route = Route(binding, binding.group, x, Direction.B_TO_A)
            else:
                route = Route(binding, (binding.b,), x, Direction.A_TO_B)  # type: ignore[arg-type]
        elif caller == binding.a:
            if not binding.b:
                return Rejection(RejectReason.NO_DEFAULT_CALLEE, binding.id)
            route = Route(binding, (binding.b,), x, Direction.A_TO_B)
        else:
            route = Route(binding, (binding.a,), x, Direction.B_TO_A)  # type: ignore[arg-type]
        allowed = binding.direction
        if allowed is not Direction.BOTH and allowed is not route.direction:
            return Rejection(RejectReason.DIRECTION_NOT_ALLOWED, binding.id)
        return route

    def _normalised(self, caller: str, x: str) -> tuple[str, str] | None:
        """Canonical ``(caller, x)`` if that differs from the input, else None."""
        try:
            canonical_x = self.rules.middle(x)
        except NumberError:
            return None
        try:
            canonical_caller = self.rules.real(caller)
        except NumberError:
            canonical_caller = caller  # anonymous or foreign callers may still reach AXN
        if canonical_x == x and canonical_caller == caller:
            return None
        return canonical_caller, canonical_x

    # -- tenants and pool numbers ---------------------------------------------------
    def set_tenant(self, tenant_id: str, suspended: bool) -> TenantEntry:
        entry = self.tenants.get(tenant_id)
        if entry is None:
            entry = self.tenants[tenant_id] = TenantEntry(tenant_id, suspended)
            self._pools.setdefault(tenant_id, _PoolUsage())
        entry.suspended = suspended
        return entry

    def set_number(self, number: str, tenant_id: str, retired: bool) -> NumberEntry:
        """Add or refresh a pool number; a retired one leaves the allocator's pool."""
        entry = self.numbers.get(number)
        pool = self._pools.setdefault(tenant_id, _PoolUsage())
        if entry is None:
            entry = self.numbers[number] = NumberEntry(number, tenant_id, retired)
        elif entry.tenant_id != tenant_id:
            self._pools[entry.tenant_id].drop(entry)
            entry.tenant_id = tenant_id
        pool.drop(entry)
        entry.retired = retired
        if not retired:
            pool.put(entry)
        return entry

    def pool_candidates(self, tenant_id: str) -> list[NumberEntry]:
        pool = self._pools.get(tenant_id)
        return pool.candidates() if pool else []

    def _set_load(self, entry: NumberEntry, delta: int) -> None:
        pool = self._pools.get(entry.tenant_id)
        if pool is not None and not entry.retired:
            pool.drop(entry)
            entry.load = max(0, entry.load + delta)
            pool.put(entry)
        else:
            entry.load = max(0, entry.load + delta)

    # -- claims as the allocator sees them --------------------------------------
    def claim_free(
        self, entry: NumberEntry, participant: str, now: float, owner: str | None = None
    ) -> bool:
        """Could ``participant`` claim ``entry`` now (ignoring ``owner``'s own claims)?"""
        cooling_end = self.cooling_period_s
        if participant == ANY_CALLER:
            if entry.pending or (entry.active and not self._only(entry, owner)):
                return False
            return not entry.cooling or max(entry.cooling.values()) <= now
        holder = self.routes.get((entry.number, participant))
        if holder is not None and holder.id != owner and holder.expires_at + cooling_end > now:
            return False
        open_binding = entry.open_binding
        if open_binding is not None and open_binding.id != owner:
            return False
        if entry.pending and (participant in entry.pending or ANY_CALLER in entry.pending):
            return False
        cooling = entry.cooling
        if cooling:
            return cooling.get(participant, 0.0) <= now and cooling.get(ANY_CALLER, 0.0) <= now
        return True

    def _only(self, entry: NumberEntry, owner: str | None) -> bool:
        """True when the only binding on ``entry`` is ``owner`` (AXN updates)."""
        return (
            owner is not None
            and entry.open_binding is not None
            and (entry.open_binding.id == owner and entry.active == 1)
        )

    def pick(
        self, tenant_id: str, participant: str, now: float, exclude: set[str]
    ) -> NumberEntry | None:
        """The least-used usable number of the tenant ``participant`` may claim."""
        pool = self._pools.get(tenant_id)
        if pool is None:
            return None
        return pool.first(
            lambda e: e.number not in exclude and self.claim_free(e, participant, now)
        )

    def reserve(self, keys: list[tuple[str, str]], numbers: tuple[str, ...]) -> None:
        """Hold ``keys`` while a creation is in flight so a concurrent one avoids them."""
        for number, participant in keys:
            entry = self.numbers[number]
            if entry.pending is None:
                entry.pending = {}
            entry.pending[participant] = entry.pending.get(participant, 0) + 1
        for number in numbers:
            self._set_load(self.numbers[number], +1)

    def unreserve(self, keys: list[tuple[str, str]], numbers: tuple[str, ...]) -> None:
        for number, participant in keys:
            entry = self.numbers.get(number)
            if entry is None or not entry.pending:
                continue
            left = entry.pending.get(participant, 0) - 1
            if left > 0:
                entry.pending[participant] = left
            else:
                entry.pending.pop(participant, None)
                if not entry.pending:
                    entry.pending = None
        for number in numbers:
            if number in self.numbers:
                self._set_load(self.numbers[number], -1)

    # -- keeping in step with the store ----------------------------------------------
    def add(self, binding: Binding) -> ActiveBinding:
        """Make an active binding routable (its claims were accepted by the store)."""
        tenant = self.tenants.get(binding.tenant_id) or self.set_tenant(binding.tenant_id, False)
        entries = []
        for number in binding.numbers():
            entry = self.numbers.get(number)
            if entry is None:  # pool news not followed yet; the store accepted it
                entry = self.set_number(number, binding.tenant_id, False)
            entries.append(entry)
        active = ActiveBinding(
            binding.id, tenant, binding.mode, entries[0].number,
            entries[1].number if len(entries) > 1 else None,
            binding.a, binding.b, binding.group or (), binding.expires_at, binding.direction,
            binding.order_id, binding.label, binding.max_call_s, binding.record, binding.version,
        )  # fmt: skip
        for key in _route_keys(active):
            self.routes[key] = active
        if active.mode is Mode.AXN:
            entries[0].open_binding = active
        for entry in entries:
            entry.active += 1
            self._set_load(entry, +1)
        self.by_id[active.id] = active
        return active

    def _remove(self, active: ActiveBinding, ended_at: float | None) -> None:
        """Take ``active`` out of routing; with ``ended_at`` its claims start cooling."""
        self.by_id.pop(active.id, None)
        for key in _route_keys(active):
            if self.routes.get(key) is active:
                del self.routes[key]
        numbers = (active.x, active.y) if active.y else (active.x,)
        for number in numbers:
            entry = self.numbers.get(number)
            if entry is None:
                continue
            if entry.open_binding is active:
                entry.open_binding = None
            entry.active = max(0, entry.active - 1)
            self._set_load(entry, -1)
        if ended_at is not None:
            for number, participant in _claim_keys(active):
                self.cool(number, participant, ended_at + self.cooling_period_s)

    def cool(self, number: str, participant: str, until: float) -> None:
        """Keep ``participant`` off ``number`` until ``until`` (cooling period)."""
        entry = self.numbers.get(number)
        if entry is None:
            return
        if entry.cooling is None:
            entry.cooling = {}
        if entry.cooling.get(participant, 0.0) < until:
            entry.cooling[participant] = until

    def apply(self, binding: Binding) -> None:
        """Bring the index to ``binding``'s stored state (idempotent, ignores stale versions)."""
        old = self.by_id.get(binding.id)
        if old is not None and old.version >= binding.version:
            return
        if old is None and self._ended.get(binding.id, -1) >= binding.version:
            return
        if binding.state is BindingState.ACTIVE:
            if old is None:
                self.add(binding)
                return
            dropped = set(_claim_keys(old)) - set(_claim_keys(binding))
            self._remove(old, None)
            self.add(binding)
            for number, participant in dropped:
                self.cool(number, participant, binding.updated_at + self.cooling_period_s)
            return
        if binding.released_at is not None:
            ended_at = min(binding.released_at, binding.expires_at)
        else:
            ended_at = binding.expires_at
        if old is not None:
            self._remove(old, ended_at)
        else:
            for number, participant in _claim_keys(binding):
                self.cool(number, participant, ended_at + self.cooling_period_s)
        self._ended[binding.id] = binding.version
        if len(self._ended) > 100_000:
            del self._ended[next(iter(self._ended))]

    def purge_cooling(self, now: float) -> None:
        """Forget cooling claims that have run out."""
        for entry in self.numbers.values():
            if entry.cooling:
                for participant in [p for p, until in entry.cooling.items() if until <= now]:
                    del entry.cooling[participant]
                if not entry.cooling:
                    entry.cooling = None


def _route_keys(b: ActiveBinding) -> list[tuple[str, str]]:
    """Keys ``(number dialled, caller)`` under which ``b`` is found at call time."""
    if b.mode is Mode.AXB:
        return [(b.x, b.a), (b.x, b.b)]  # type: ignore[list-item]
    if b.mode is Mode.AXYB:
        return [(b.x, b.a), (b.y, b.b)]  # type: ignore[list-item]
    if b.mode is Mode.GXB:
        return [(b.x, member) for member in b.group] + [(b.x, b.b)]  # type: ignore[list-item]
    return [(b.x, b.a)]  # type: ignore[list-item]


def _claim_keys(b: ActiveBinding | Binding) -> list[tuple[str, str]]:
    return claim_keys(b.mode, b.x, b.y, b.a, b.b, b.group)
