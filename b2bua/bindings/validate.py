"""Checking and normalising a binding request before any number is allocated."""

from __future__ import annotations

from dataclasses import dataclass

from b2bua.bindings.errors import InvalidBinding, ModeNotAllowed
from b2bua.bindings.model import BindingSpec, Direction, Mode
from b2bua.bindings.settings import BindingSettings
from b2bua.numbering import NumberError, NumberingRules

__all__ = ["CleanSpec", "clean_direction", "clean_real", "clean_spec"]


@dataclass(frozen=True)
class CleanSpec:
    """A :class:`BindingSpec` with canonical numbers and checked fields."""

    mode: Mode
    ttl_s: float
    a: str | None
    b: str | None
    group: tuple[str, ...]
    x: str | None
    y: str | None
    order_id: str | None
    direction: Direction
    max_call_s: int | None
    label: str | None
    record: bool
    consent: bool


def clean_real(value: str, rules: NumberingRules, field: str) -> str:
    try:
        return rules.real(value)
    except NumberError as exc:
        raise InvalidBinding(f"{field}: {exc}", field=field) from exc


def clean_middle(value: str, rules: NumberingRules, field: str) -> str:
    try:
        return rules.middle(value)
    except NumberError as exc:
        raise InvalidBinding(f"{field}: {exc}", field=field) from exc


def clean_direction(value: Direction | str) -> Direction:
    try:
        return Direction(value)
    except ValueError as exc:
        raise InvalidBinding("direction must be both, a_to_b or b_to_a", field="direction") from exc


def clean_ttl(ttl_s: float, settings: BindingSettings) -> float:
    if not isinstance(ttl_s, int | float) or isinstance(ttl_s, bool):
        raise InvalidBinding("ttl_s must be a number of seconds", field="ttl_s")
    if not 1 <= ttl_s <= settings.max_ttl_s:
        raise InvalidBinding(f"ttl_s must be 1..{settings.max_ttl_s}", field="ttl_s")
    return float(ttl_s)


def clean_max_call(value: int | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidBinding("max_call_s must be a positive integer", field="max_call_s")
    return value


def clean_group(
    group: tuple[str, ...] | list[str], rules: NumberingRules, settings: BindingSettings
) -> tuple[str, ...]:
    members = tuple(clean_real(m, rules, "group") for m in group)
    if not members:
        raise InvalidBinding("GXB needs at least one group member", field="group")
    if len(members) > settings.max_group_size:
        raise InvalidBinding(
            f"group has more than {settings.max_group_size} members", field="group"
        )
    if len(set(members)) != len(members):
        raise InvalidBinding("group lists a member twice", field="group")
    return members


def clean_label(label: str | None) -> str | None:
    """The label becomes a SIP display name: no quotes, backslashes or control characters."""
    if label is None:
        return None
    if len(label) > 64:
        raise InvalidBinding("label is longer than 64 characters", field="label")
    if any(ch in '"\\' or ord(ch) < 32 or ord(ch) == 127 for ch in label):
        raise InvalidBinding("label has quotes or control characters", field="label")
    return label


def clean_spec(
    spec: BindingSpec, tenant_id: str, rules: NumberingRules, settings: BindingSettings
) -> CleanSpec:
    """Validate ``spec`` for ``tenant_id``; raise :class:`InvalidBinding` naming the field."""
    try:
        mode = Mode(spec.mode)
    except ValueError as exc:
        raise InvalidBinding("mode must be AXB, AXYB, GXB or AXN", field="mode") from exc
    if mode.value not in settings.modes_for(tenant_id):
        raise ModeNotAllowed(f"mode {mode.value} is not allowed for this tenant", field="mode")
    a = clean_real(spec.a, rules, "a") if spec.a else None
    b = clean_real(spec.b, rules, "b") if spec.b else None
    group: tuple[str, ...] = ()
    if mode is Mode.GXB:
        group = clean_group(spec.group, rules, settings)
        if b is None:
            raise InvalidBinding("GXB needs b", field="b")
        if b in group:
            raise InvalidBinding("b must not be a group member", field="group")
        if a is not None:
            raise InvalidBinding("GXB takes group, not a", field="a")
    else:
        if spec.group:
            raise InvalidBinding("group is only for GXB", field="group")
        if a is None:
            raise InvalidBinding(f"{mode.value} needs a", field="a")
        if mode is not Mode.AXN and b is None:
            raise InvalidBinding(f"{mode.value} needs b", field="b")
        if a == b:
            raise InvalidBinding("a and b must differ", field="b")
    x = clean_middle(spec.x, rules, "x") if spec.x else None
    y = clean_middle(spec.y, rules, "y") if spec.y else None
    if y is not None and mode is not Mode.AXYB:
        raise InvalidBinding("y is only for AXYB", field="y")
    if x is not None and x == y:
        raise InvalidBinding("x and y must differ", field="y")
    order_id = spec.order_id.strip() if spec.order_id else None
    if settings.require_order_id and not order_id:
        raise InvalidBinding("order_id is required", field="order_id")
    if order_id is not None and len(order_id) > 128:
        raise InvalidBinding("order_id is longer than 128 characters", field="order_id")
    clean_label(spec.label)
    if settings.require_consent and not spec.consent:
        raise InvalidBinding("consent is required", field="consent")
    return CleanSpec(
        mode=mode,
        ttl_s=clean_ttl(spec.ttl_s, settings),
        a=a,
        b=b,
        group=group,
        x=x,
        y=y,
        order_id=order_id,
        direction=clean_direction(spec.direction),
        max_call_s=clean_max_call(spec.max_call_s),
        label=spec.label,
        record=bool(spec.record),
        consent=bool(spec.consent),
    )
