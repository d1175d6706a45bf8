"""What the provisioning routes need, handed in once by the wiring (``b2bua.app``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from b2bua.api.call_records import CallRecordQuery

if TYPE_CHECKING:
    from b2bua.bindings.service import BindingService
    from b2bua.store.base import Store

__all__ = ["ApiContext", "ApiSettings"]


@dataclass(frozen=True)
class ApiSettings:
    """Rules only the API enforces.

    The binding rules (``ttl_s`` bounds, ``order_id`` required, allowed modes, group
    size) live in the service's :class:`~b2bua.bindings.settings.BindingSettings`;
    ``require_consent`` (``[bindings] require_consent``) is checked here because the
    consent flag is an API-level attestation by the tenant.
    """

    require_consent: bool = False


@dataclass(frozen=True)
class ApiContext:
    """Everything :func:`b2bua.api.provisioning.install_provisioning_api` needs.

    Numbers are checked with the service's numbering rules (``service.rules``).
    ``calls`` defaults to the store's own call-record reads (``store.cdr``).
    ``clock`` is the wall clock (epoch seconds): binding expiry is a wall-clock
    instant shared by every node, unlike the loop's monotonic time used by SIP.
    """

    service: BindingService
    store: Store
    operator_key: str
    settings: ApiSettings = field(default_factory=ApiSettings)
    calls: CallRecordQuery | None = None
    clock: Callable[[], float] = time.time
