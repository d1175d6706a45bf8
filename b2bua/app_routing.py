"""Glue between the call engine's `Router` and the binding index.

The engine speaks `RouteDecision`/`RouteRejection`; the binding service speaks
`Route`/`Rejection`. This adapter normalises the numbers a carrier sent
(`+86...`, `tel:` forms) once, asks the in-memory index, and translates. It is
app-level wiring, so neither `calls/` nor `bindings/` needs to know the other.
"""

from __future__ import annotations

from b2bua.bindings.index import Rejection, Route
from b2bua.bindings.service import BindingService
from b2bua.calls.routing import RouteDecision, RouteRejection
from b2bua.numbering import NumberError, NumberingRules


class BindingRouter:
    """Routes calls through `BindingService.resolve` (memory only, never awaits)."""

    def __init__(self, service: BindingService, rules: NumberingRules) -> None:
        self._service = service
        self._rules = rules

    def route(
        self, caller: str, dialled: str, *, wall_now: float
    ) -> RouteDecision | RouteRejection:
        """Normalise, resolve, translate. Unparseable callers may still reach AXN numbers."""
        try:
            middle = self._rules.middle(dialled)
        except NumberError:
            return RouteRejection(404, "unknown_number", caller=caller)
        try:
            canonical_caller = self._rules.real(caller)
        except NumberError:
            canonical_caller = caller
        result = self._service.resolve(canonical_caller, middle, wall_now)
        if isinstance(result, Rejection):
            return RouteRejection(result.sip_status, result.reason.value, caller=canonical_caller)
        return _decision(result, canonical_caller, middle)


def _decision(route: Route, caller: str, middle: str) -> RouteDecision:
    binding = route.binding
    return RouteDecision(
        binding_id=binding.id,
        tenant_id=binding.tenant_id,
        order_id=binding.order_id,
        mode=binding.mode.value,
        direction=route.direction.value,
        middle_number=middle,
        shown_number=route.display_number,
        targets=route.targets,
        label=binding.label,
        max_call_s=binding.max_call_s,
        caller=caller,
    )
