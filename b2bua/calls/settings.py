"""Engine settings and counters: plain values, filled by `app.py` from configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from b2bua.calls.dialog import LocalEndpoint
from b2bua.calls.routing import Trunk
from b2bua.sip.timers import TimerConfig


@dataclass(frozen=True)
class EngineSettings:
    """Everything the engine needs from configuration, as plain values."""

    endpoints: dict[str, LocalEndpoint]  # by transport: "UDP", "TCP"
    trunks: tuple[Trunk, ...]
    timers: TimerConfig = field(default_factory=TimerConfig)
    untrusted_action: str = "reject"  # or "drop"
    max_calls: int = 10_000
    max_transactions: int = 300_000  # new out-of-dialog requests beyond it: stateless 503
    per_source_rps: int = 0  # requests per second per source address; 0: no limit
    retry_after_s: int = 5
    ring_timeout_s: float = 120.0
    keepalive_interval_s: float = 30.0


@dataclass
class EngineCounters:
    """Totals the metrics module reads; the engine never imports a metrics library."""

    overload_rejections: int = 0  # every 503 for overload: the sum of the five below
    call_limit_rejections: int = 0  # new INVITEs refused at max_calls
    draining_rejections: int = 0  # new INVITEs refused while stopping
    shed_rejections: int = 0  # new INVITEs refused because the event loop was too busy
    rate_limited: int = 0  # requests refused by per_source_rps
    transaction_limit_rejections: int = 0  # requests refused by max_transactions
    untrusted_requests: int = 0
    stray_answers: int = 0
    malformed: int = 0
    requests_by_method: dict[str, int] = field(default_factory=dict)
    responses_by_status: dict[int, int] = field(default_factory=dict)
