"""Settings of the abuse controls; ``b2bua.config`` maps a ``[policy]`` section here."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["PolicySettings"]


@dataclass(frozen=True)
class PolicySettings:
    """What the abuse controls allow; every rule can be switched off on its own.

    Counting is per node (each node limits what it sees; with N nodes behind a
    dispatcher that spreads one caller's calls, the effective limit is up to N
    times higher). Block lists are shared through the store.

    - ``enabled``: master switch; off means the policy router passes every call on.
    - ``rate_enabled``, ``rate_per_caller``, ``rate_window_s``: a caller (across all
      bindings) gets at most ``rate_per_caller`` admitted attempts in any
      ``rate_window_s`` (a sliding window, estimated from two fixed windows).
    - ``binding_cap_enabled``, ``binding_attempt_cap``, ``binding_window_s``: at most
      ``binding_attempt_cap`` admitted attempts per binding in any
      ``binding_window_s`` (sliding, like the caller rate). Per window rather than in
      total, because long-lived AXN bindings of couriers would otherwise wear out.
    - ``blocklist_enabled``: global and per-tenant block lists of real numbers.
    - ``fraud_enabled``: the marketing/fraud patterns. A caller reaching more than
      ``fraud_distinct_numbers`` distinct middle numbers within ``fraud_window_s``, or
      a middle number called by more than ``fraud_distinct_callers`` distinct
      non-participants within ``fraud_window_s``, gets the caller blocked for
      ``fraud_block_s`` (an automatic, expiring global block entry) and raises an
      alert. ``fraud_count_open_callers`` also counts strangers reaching an AXN
      binding (by design they are not participants; off by default because a busy
      courier legitimately hears from many of them).
    - ``number_cache_size``: how many raw caller/dialled forms the router remembers
      in canonical form, so normalisation stays a dictionary lookup.
    """

    enabled: bool = True
    rate_enabled: bool = True
    rate_per_caller: int = 30
    rate_window_s: float = 60.0
    binding_cap_enabled: bool = True
    binding_attempt_cap: int = 120
    binding_window_s: float = 3600.0
    blocklist_enabled: bool = True
    fraud_enabled: bool = True
    fraud_distinct_numbers: int = 30
    fraud_distinct_callers: int = 10
    fraud_window_s: float = 600.0
    fraud_block_s: float = 3600.0
    fraud_count_open_callers: bool = False
    number_cache_size: int = 100_000

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be positive"
            for name in (
                "rate_per_caller",
                "rate_window_s",
                "binding_attempt_cap",
                "binding_window_s",
                "fraud_distinct_numbers",
                "fraud_distinct_callers",
                "fraud_window_s",
                "fraud_block_s",
                "number_cache_size",
            )
            if not getattr(self, name) > 0
        ]
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_config(cls, section: Any) -> PolicySettings:
        """Settings from a ``[policy]`` section: any object with these attribute names
        (missing ones keep their defaults)."""
        if section is None:
            return cls()
        values = {f.name: getattr(section, f.name) for f in fields(cls) if hasattr(section, f.name)}
        return cls(**values)
