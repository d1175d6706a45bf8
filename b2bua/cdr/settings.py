"""Settings of the call-record service; ``b2bua.config`` builds them from ``[cdr]``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["CdrSettings"]


@dataclass(frozen=True)
class CdrSettings:
    """How records are written, recovered, pushed to webhooks and purged.

    Writer:
    - ``batch_interval_s``: a group commit at least this often while events wait;
    - ``batch_max``: commit at once when this many events are queued, and never put
      more records than this in one transaction;
    - ``max_queue``: events held in memory at most (queue plus records waiting for
      the store); past it new events are dropped and counted, SIP never waits;
    - ``retry_max_s``: longest pause between attempts while the store is down.

    Crash recovery:
    - ``heartbeat_interval_s``: how often the writer proves it is alive;
    - ``stale_after_s``: another node whose heartbeat is older than this is dead,
      and its open records are closed as ``interrupted`` (checked every
      ``stale_check_interval_s``).

    Webhooks: ``webhook_timeout_s`` per POST; ``webhook_max_attempts`` before a
    delivery is given up (kept with ``failed_at`` set); the n-th retry waits
    ``webhook_backoff_s * 2**(n-1)`` capped at ``webhook_max_backoff_s``, with
    10 % jitter; ``webhook_concurrency`` POSTs in flight at most; ``webhook_poll_s``
    between looks at the outbox when nothing woke the worker.

    Retention: records whose attempt began more than ``retention_days`` ago are
    deleted every ``purge_interval_s``, ``purge_batch`` per transaction with
    ``purge_pause_s`` between batches so other writers get the database.
    """

    batch_interval_s: float = 0.1
    batch_max: int = 1000
    max_queue: int = 200_000
    retry_max_s: float = 1.0
    heartbeat_interval_s: float = 1.0
    stale_after_s: float = 30.0
    stale_check_interval_s: float = 15.0
    webhook_timeout_s: float = 5.0
    webhook_max_attempts: int = 12
    webhook_backoff_s: float = 2.0
    webhook_max_backoff_s: float = 1800.0
    webhook_concurrency: int = 16
    webhook_poll_s: float = 1.0
    retention_days: float = 180.0
    purge_interval_s: float = 3600.0
    purge_batch: int = 5000
    purge_pause_s: float = 0.05

    @classmethod
    def from_config(cls, section: Any) -> CdrSettings:
        """Settings from a ``[cdr]`` section: any object with (some of) these attribute names."""
        if section is None:
            return cls()
        given = {
            f.name: getattr(section, f.name)
            for f in dataclasses.fields(cls)
            if hasattr(section, f.name)
        }
        return cls(**given)
