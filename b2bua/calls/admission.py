"""Admission control: which new requests the engine takes on, sans-IO.

Three limits, all checked before a server transaction exists, so a refused
request costs a parse and one stateless 503 (no transaction, no timers, no
retransmissions of ours):

- `max_transactions`: live transactions on the node (a memory bound);
- `per_source_rps`: requests per second from one source address, a token bucket
  per address holding one second's worth;
- load shedding: the adapter measures how busy the event loop is and sets
  `shed_fraction`; that share of new INVITEs is refused, spread evenly (a credit
  counter, not randomness, so tests are deterministic).

Only requests that start new work are refused: a new INVITE or another
out-of-dialog request. ACK, CANCEL and in-dialog requests (BYE above all) always
pass, because they finish calls in progress, and refusing them would cause
retransmissions and keep state alive longer, the opposite of shedding load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from b2bua.sip.message import Request, Response, make_response

# A source table that would grow past this is reset: spoofed source addresses
# must not become a memory leak (the buckets refill in a second anyway).
MAX_SOURCES = 65_536


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class Admission:
    """The node's admission limits; see the module docstring."""

    __slots__ = (
        "_buckets",
        "_credit",
        "max_transactions",
        "per_source_rps",
        "shed_fraction",
    )

    def __init__(self, *, max_transactions: int = 300_000, per_source_rps: int = 0) -> None:
        self.max_transactions = max_transactions
        self.per_source_rps = per_source_rps
        self.shed_fraction = 0.0  # set by the adapter from its load measurement
        self._credit = 0.0
        self._buckets: dict[str, _Bucket] = {}

    def source_allows(self, host: str, *, now: float) -> bool:
        """Take one token from `host`'s bucket; False when it is empty (or no limit: True)."""
        rate = self.per_source_rps
        if rate <= 0:
            return True
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) >= MAX_SOURCES:
                self._buckets.clear()
            bucket = self._buckets[host] = _Bucket(float(rate), now)
        else:
            # Refill for the time since the last request, up to one second's worth.
            bucket.tokens = min(float(rate), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def sheds_invite(self) -> bool:
        """Whether this new INVITE is one of the `shed_fraction` refused.

        A credit of (1 - shed_fraction) accrues per INVITE and an INVITE is
        admitted per whole unit, so refusals are spread evenly over the stream.
        """
        shed = self.shed_fraction
        if shed <= 0.0:
            return False
        self._credit += 1.0 - shed
        if self._credit >= 1.0:
            self._credit -= 1.0
            return False
        return True

    def transactions_full(self, live: int) -> bool:
        """Whether `live` transactions leave no room for a new one."""
        return live >= self.max_transactions


def overload_response(request: Request, retry_after_s: int) -> Response:
    """A stateless 503 with Retry-After (RFC 3261 section 21.5.4).

    The To tag is derived from the request's Call-ID, From tag and branch, so a
    retransmitted request gets a byte-identical answer without any state kept
    (RFC 3261 section 16.11 does the same for stateless proxies).
    """
    key = f"{request.call_id}\0{request.from_tag or ''}\0{request.top_via.branch or ''}"
    tag = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()
    return make_response(request, 503, to_tag=tag, extra=[("Retry-After", str(retry_after_s))])


__all__ = ["MAX_SOURCES", "Admission", "overload_response"]
