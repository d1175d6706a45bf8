"""The binding service: lifecycle of tenants, pool numbers and bindings, and lookup.

Writes go to the store first and reach the in-memory index only once committed, so
an acknowledged binding is durable and a failed one never routed. The index is
loaded at :meth:`BindingService.start` and then follows the store's change sequence
so that changes made through other nodes route here within a second.

Time: every timestamp is wall-clock epoch seconds from the injected ``clock``
(default :func:`time.time`); bindings expire at wall-clock instants shared by every
node. :meth:`BindingService.resolve` takes ``now`` in the same clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

import structlog

from b2bua.bindings.errors import (
    BindingNotActive,
    BindingNotFound,
    InvalidBinding,
    NoNumberAvailable,
    NumberConflict,
    TenantNotFound,
    TenantSuspended,
)
from b2bua.bindings.follow import ChangeFollower
from b2bua.bindings.index import BindingIndex, NumberEntry, Rejection, Route
from b2bua.bindings.model import (
    ANY_CALLER,
    Binding,
    BindingFilter,
    BindingSpec,
    BindingState,
    BindingUpdate,
    Mode,
    PoolNumber,
    Tenant,
    claim_keys,
)
from b2bua.bindings.settings import BindingSettings
from b2bua.bindings.validate import (
    CleanSpec,
    clean_direction,
    clean_group,
    clean_label,
    clean_max_call,
    clean_real,
    clean_spec,
    clean_ttl,
)
from b2bua.numbering import NumberError, NumberingRules
from b2bua.store import ClaimRow, ConflictError, NewBinding, NotFoundError, Store

__all__ = ["BindingService", "hash_api_key"]

log = structlog.get_logger("b2bua.bindings")


def hash_api_key(api_key: str) -> str:
    """The stored form of a tenant API key (SHA-256 hex; keys are 256-bit random)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


class BindingService(ChangeFollower):
    """Tenants, pool numbers and bindings, with an in-memory index for call routing."""

    def __init__(
        self,
        store: Store,
        numbering_rules: NumberingRules | None = None,
        settings: BindingSettings | None = None,
        clock: Callable[[], float] = time.time,
        *,
        node_id: str | None = None,
    ) -> None:
        self.store = store
        self.rules = numbering_rules or NumberingRules()
        self.settings = settings or BindingSettings()
        self.clock = clock
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.index = BindingIndex(self.rules, self.settings.cooling_period_s)
        self._seq = 0
        self._gaps: dict[int, float] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------
    async def start(self, *, background: bool = True) -> None:
        """Load the index from the store and start following changes and sweeping.

        With ``background=False`` no task is started (tests and CLI commands).
        """
        # Read the sequence first: whatever commits during the load is replayed, and
        # replays are harmless because the index ignores versions it already has.
        self._seq = await self.store.last_change_seq()
        for tenant in await self.store.list_tenants():
            self.index.set_tenant(tenant.id, tenant.suspended)
        for number in await self.store.list_numbers():
            self.index.set_number(number.number, number.tenant_id, number.retired)
        async for binding in self.store.iter_live_bindings():
            self.index.apply(binding)
        now = self.clock()
        for claim in await self.store.live_claims(now):
            holder = self.index.by_id.get(claim.binding_id)
            if holder is None or (claim.number, claim.participant) not in claim_keys(
                holder.mode, holder.x, holder.y, holder.a, holder.b, holder.group
            ):
                self.index.cool(claim.number, claim.participant, claim.free_at)
        log.info("binding index loaded", active=len(self.index.by_id), node=self.node_id)
        if background:
            self._tasks = [
                asyncio.create_task(self._follow(), name="bindings-follow"),
                asyncio.create_task(self._sweep_loop(), name="bindings-sweep"),
            ]

    async def close(self) -> None:
        """Stop the background tasks (the store stays open; its owner closes it)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # -- call time -------------------------------------------------------------
    def resolve(self, caller: str, x: str, now: float) -> Route | Rejection:
        """Route or reject ``caller`` dialling ``x``; ``now`` is wall-clock epoch seconds.

        Answers from memory only (no await). See :meth:`BindingIndex.resolve`.
        """
        return self.index.resolve(caller, x, now)

    # -- tenants ---------------------------------------------------------------
    async def create_tenant(
        self, name: str, *, webhook_url: str | None = None, actor: str = "operator"
    ) -> tuple[Tenant, str]:
        """Create a tenant; returns it and its API key (shown once, stored as a hash)."""
        if not name or len(name) > 200:
            raise InvalidBinding("name must be 1..200 characters", field="name")
        api_key = "tk_" + secrets.token_urlsafe(32)
        now = self.clock()
        tenant = Tenant(
            id="t_" + uuid.uuid4().hex[:16], name=name, api_key_hash=hash_api_key(api_key),
            webhook_url=webhook_url, created_at=now, updated_at=now,
        )  # fmt: skip
        await self.store.insert_tenant(tenant, actor=actor, node=self.node_id)
        self.index.set_tenant(tenant.id, False)
        return tenant, api_key

    async def get_tenant(self, tenant_id: str) -> Tenant:
        try:
            return await self.store.get_tenant(tenant_id)
        except NotFoundError as exc:
            raise TenantNotFound(f"tenant {tenant_id} not found") from exc

    async def list_tenants(self) -> list[Tenant]:
        return await self.store.list_tenants()

    async def authenticate_tenant(self, api_key: str) -> Tenant | None:
        """The tenant whose API key this is, or None."""
        return await self.store.find_tenant_by_key_hash(hash_api_key(api_key))

    async def update_tenant(
        self,
        tenant_id: str,
        *,
        suspended: bool | None = None,
        webhook_url: str | None = None,
        clear_webhook: bool = False,
        actor: str = "operator",
    ) -> Tenant:
        """Suspend/resume a tenant or change its webhook URL."""
        tenant = await self.get_tenant(tenant_id)
        changes: dict[str, object] = {"updated_at": self.clock()}
        if suspended is not None:
            changes["suspended"] = bool(suspended)
        if webhook_url is not None or clear_webhook:
            changes["webhook_url"] = webhook_url
        tenant = replace(tenant, **changes)  # type: ignore[arg-type]
        try:
            await self.store.update_tenant(tenant, actor=actor, node=self.node_id)
        except NotFoundError as exc:
            raise TenantNotFound(f"tenant {tenant_id} not found") from exc
        self.index.set_tenant(tenant.id, tenant.suspended)
        return tenant

    async def set_tenant_suspended(
        self, tenant_id: str, suspended: bool, *, actor: str = "operator"
    ) -> Tenant:
        """Suspend (bindings stop routing at once) or resume a tenant."""
        return await self.update_tenant(tenant_id, suspended=suspended, actor=actor)

    # -- pool numbers ------------------------------------------------------------
    def _middle_numbers(self, numbers: Sequence[str]) -> list[str]:
        clean = []
        for value in numbers:
            try:
                clean.append(self.rules.middle(value))
            except NumberError as exc:
                raise InvalidBinding(f"numbers: {exc}", field="numbers") from exc
        return clean

    async def import_numbers(
        self, tenant_id: str, numbers: Sequence[str], *, actor: str = "operator"
    ) -> int:
        """Add middle numbers to a tenant's pool; returns how many were new.

        Raises :class:`NumberConflict` if any belongs to another tenant (nothing added).
        """
        clean = self._middle_numbers(numbers)
        try:
            added = await self.store.import_numbers(
                tenant_id, clean, now=self.clock(), actor=actor, node=self.node_id
            )
        except NotFoundError as exc:
            raise TenantNotFound(f"tenant {tenant_id} not found") from exc
        except ConflictError as exc:
            raise NumberConflict(str(exc), field="numbers") from exc
        await self._reload_pool(tenant_id)
        return added

    async def retire_numbers(
        self, tenant_id: str, numbers: Sequence[str], *, actor: str = "operator"
    ) -> int:
        """Retire numbers: no new bindings on them; existing bindings run to their end."""
        clean = self._middle_numbers(numbers)
        retired = await self.store.retire_numbers(
            tenant_id, clean, now=self.clock(), actor=actor, node=self.node_id
        )
        await self._reload_pool(tenant_id)
        return retired

    async def list_numbers(self, tenant_id: str | None = None) -> list[PoolNumber]:
        return await self.store.list_numbers(tenant_id)

    def number_load(self, number: str) -> int:
        """Active bindings using ``number`` according to this node's index."""
        entry = self.index.numbers.get(number)
        return entry.active if entry else 0

    # -- bindings ----------------------------------------------------------------
    async def create_binding(
        self, tenant_id: str, spec: BindingSpec, *, actor: str = "operator"
    ) -> Binding:
        """Create a binding, allocating X (and Y) unless given; durable when it returns.

        Raises :class:`InvalidBinding` (422), :class:`NoNumberAvailable` or
        :class:`NumberConflict` (409), :class:`TenantNotFound` (404).
        """
        tenant = self.index.tenants.get(tenant_id)
        if tenant is None:
            raise TenantNotFound(f"tenant {tenant_id} not found")
        if tenant.suspended:
            raise TenantSuspended(f"tenant {tenant_id} is suspended")
        clean = clean_spec(spec, tenant_id, self.rules, self.settings)
        exclude: set[str] = set()
        for _ in range(max(1, self.settings.allocation_attempts)):
            now = self.clock()
            x, y = self._choose_numbers(tenant_id, clean, now, exclude)
            binding = Binding(
                id=uuid.uuid4().hex, tenant_id=tenant_id, mode=clean.mode, x=x, y=y,
                a=clean.a, b=clean.b, group=clean.group, expires_at=now + clean.ttl_s,
                order_id=clean.order_id, direction=clean.direction, max_call_s=clean.max_call_s,
                label=clean.label, record=clean.record, consent=clean.consent,
                created_at=now, updated_at=now, created_by=actor, updated_by=actor,
            )  # fmt: skip
            keys = claim_keys(binding.mode, x, y, binding.a, binding.b, binding.group)
            free_at = binding.expires_at + self.settings.cooling_period_s
            claims = tuple(ClaimRow(n, p, binding.id, free_at) for n, p in keys)
            self.index.reserve(keys, binding.numbers())
            try:
                await self.store.create_binding(
                    NewBinding(binding, claims, now, self.node_id), actor=actor
                )
            except ConflictError as exc:
                # Another node (or a stale index) got there first: try other numbers.
                if clean.x is not None:
                    raise NumberConflict(f"{x} is not free for these participants: {exc}") from exc
                exclude.update(n for n, _ in exc.keys)
                if not exc.keys:
                    exclude.update(binding.numbers())
                continue
            finally:
                self.index.unreserve(keys, binding.numbers())
            self.index.apply(binding)
            return binding
        raise NoNumberAvailable("no middle number is free for these participants")

    def _choose_numbers(
        self, tenant_id: str, clean: CleanSpec, now: float, exclude: set[str]
    ) -> tuple[str, str | None]:
        """X (and Y for AXYB): the requested ones if free, else the least used free ones."""
        if clean.mode is Mode.AXN:
            x_callers: tuple[str, ...] = (ANY_CALLER,)
        elif clean.mode is Mode.AXYB:
            x_callers = (clean.a or "",)
        elif clean.mode is Mode.GXB:
            x_callers = (*clean.group, clean.b or "")
        else:
            x_callers = (clean.a or "", clean.b or "")
        x = self._choose_one(tenant_id, clean.x, "x", x_callers, now, exclude)
        if clean.mode is not Mode.AXYB:
            return x.number, None
        y = self._choose_one(tenant_id, clean.y, "y", (clean.b or "",), now, exclude | {x.number})
        return x.number, y.number

    def _choose_one(
        self,
        tenant_id: str,
        requested: str | None,
        field: str,
        callers: tuple[str, ...],
        now: float,
        exclude: set[str],
    ) -> NumberEntry:
        index = self.index
        if requested is not None:
            entry = index.numbers.get(requested)
            if entry is None or entry.tenant_id != tenant_id:
                raise InvalidBinding(f"{field} {requested} is not in your pool", field=field)
            if entry.retired:
                raise InvalidBinding(f"{field} {requested} is retired", field=field)
            if not all(index.claim_free(entry, c, now) for c in callers):
                raise NumberConflict(
                    f"{field} {requested} is in use or cooling for these participants",
                    field=field,
                )
            return entry
        first, rest = callers[0], callers[1:]
        skip = set(exclude)
        while True:
            entry = index.pick(tenant_id, first, now, skip)
            if entry is None:
                raise NoNumberAvailable("no middle number is free for these participants")
            if all(index.claim_free(entry, c, now) for c in rest):
                return entry
            skip.add(entry.number)

    async def _current(self, binding_id: str, tenant_id: str | None) -> Binding:
        try:
            binding = await self.store.get_binding(binding_id)
        except NotFoundError as exc:
            raise BindingNotFound(f"binding {binding_id} not found") from exc
        if tenant_id is not None and binding.tenant_id != tenant_id:
            raise BindingNotFound(f"binding {binding_id} not found")
        return binding

    def _effective(self, binding: Binding, now: float) -> Binding:
        state = binding.state_at(now)
        return binding if state is binding.state else replace(binding, state=state)

    async def get_binding(self, binding_id: str, *, tenant_id: str | None = None) -> Binding:
        """A binding by id (404 for another tenant's); ``state`` is the effective one."""
        return self._effective(await self._current(binding_id, tenant_id), self.clock())

    async def list_bindings(self, filters: BindingFilter | None = None) -> list[Binding]:
        """Bindings matching ``filters``, newest first."""
        now = self.clock()
        found = await self.store.list_bindings(filters or BindingFilter(), now=now)
        return [self._effective(b, now) for b in found]

    async def update_binding(
        self,
        binding_id: str,
        changes: BindingUpdate,
        *,
        actor: str = "operator",
        tenant_id: str | None = None,
    ) -> Binding:
        """Extend expiry, change B, the group, direction, max call duration or label."""
        current = await self._current(binding_id, tenant_id)
        now = self.clock()
        if current.state_at(now) is not BindingState.ACTIVE:
            raise BindingNotActive(f"binding {binding_id} is {current.state_at(now).value}")
        fields: dict[str, object] = {}
        if changes.ttl_s is not None:
            fields["expires_at"] = now + clean_ttl(changes.ttl_s, self.settings)
        if changes.b is not None:
            b = clean_real(changes.b, self.rules, "b")
            if b == current.a or b in current.group:
                raise InvalidBinding("b must differ from the other participants", field="b")
            fields["b"] = b
        if changes.group is not None:
            if current.mode is not Mode.GXB:
                raise InvalidBinding("group is only for GXB", field="group")
            group = clean_group(changes.group, self.rules, self.settings)
            if fields.get("b", current.b) in group:
                raise InvalidBinding("b must not be a group member", field="group")
            fields["group"] = group
        if changes.direction is not None:
            fields["direction"] = clean_direction(changes.direction)
        if changes.max_call_s is not None or "max_call_s" in changes.clear:
            fields["max_call_s"] = clean_max_call(changes.max_call_s)
        if changes.label is not None or "label" in changes.clear:
            fields["label"] = clean_label(changes.label)
        new = replace(
            current,
            **fields,  # type: ignore[arg-type]  # each field was checked by its clean_* above
            version=current.version + 1,
            updated_at=now,
            updated_by=actor,
        )
        old_keys = set(claim_keys(current.mode, current.x, current.y, current.a, current.b,
                                  current.group))  # fmt: skip
        new_keys = claim_keys(new.mode, new.x, new.y, new.a, new.b, new.group)
        added = [k for k in new_keys if k not in old_keys]
        for number, participant in added:
            entry = self.index.numbers.get(number)
            if entry is None or not self.index.claim_free(entry, participant, now, owner=new.id):
                raise NumberConflict(f"{participant} cannot be bound to {number} now")
        keep_until = new.expires_at + self.settings.cooling_period_s
        claims = [ClaimRow(n, p, new.id, keep_until) for n, p in new_keys]
        cool_until = now + self.settings.cooling_period_s
        claims += [ClaimRow(n, p, new.id, cool_until) for n, p in old_keys - set(new_keys)]
        check = [c for c in claims if (c.number, c.participant) in set(added)]
        await self._write_update(new, claims, check, current.version, now, actor, "binding.update")
        return new

    async def release_binding(
        self, binding_id: str, *, actor: str = "operator", tenant_id: str | None = None
    ) -> Binding:
        """Release a binding now; it stays stored. Releasing twice returns it unchanged."""
        current = await self._current(binding_id, tenant_id)
        now = self.clock()
        if current.state_at(now) is not BindingState.ACTIVE:
            return self._effective(current, now)
        new = replace(
            current, state=BindingState.RELEASED, version=current.version + 1, updated_at=now,
            updated_by=actor, released_at=now, released_by=actor,
        )  # fmt: skip
        cool_until = now + self.settings.cooling_period_s
        claims = [
            ClaimRow(n, p, new.id, cool_until)
            for n, p in claim_keys(new.mode, new.x, new.y, new.a, new.b, new.group)
        ]
        await self._write_update(new, claims, [], current.version, now, actor, "binding.release")
        return new

    async def _write_update(
        self,
        new: Binding,
        claims: list[ClaimRow],
        check: list[ClaimRow],
        expected_version: int,
        now: float,
        actor: str,
        action: str,
    ) -> None:
        keys = [(c.number, c.participant) for c in check]
        self.index.reserve(keys, ())
        try:
            await self.store.update_binding(
                new, claims, check=check, expected_version=expected_version, now=now,
                actor=actor, action=action, node=self.node_id,
            )  # fmt: skip
        except NotFoundError as exc:
            raise BindingNotFound(f"binding {new.id} not found") from exc
        except ConflictError as exc:
            raise NumberConflict(str(exc)) from exc
        finally:
            self.index.unreserve(keys, ())
        self.index.apply(new)
