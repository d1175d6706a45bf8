"""Webhook delivery: POST call events from the store's outbox to each tenant.

Each tenant with a ``webhook_url`` gets ``call.started`` when an attempt of its
bindings is recorded and ``call.finished`` with every finished record. A POST
carries the JSON event and these headers:

- ``Idempotency-Key``: ``<record id>:<event>``, the same on every retry;
- ``X-B2BUA-Event``: ``call.started`` or ``call.finished``;
- ``X-B2BUA-Timestamp``: epoch seconds of this attempt;
- ``X-B2BUA-Signature``: ``sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``
  with the tenant's ``webhook_secret`` (generated on first use; ``b2bua cdr
  webhook-secret`` shows or rotates it). Signing the timestamp lets a receiver
  refuse replays of an old delivery.

Any 2xx is success. Anything else (status, timeout, refused connection) is
retried with exponential backoff and jitter; after ``webhook_max_attempts`` the
delivery is kept in the outbox with ``failed_at`` set for the operator. The
outbox lives in the store, so pending deliveries survive restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import random
import time
from collections.abc import Callable

import httpx

from b2bua.cdr.settings import CdrSettings
from b2bua.observability.logging import get_logger
from b2bua.store.errors import StoreError
from b2bua.store.sql_cdr import SqlCdrStore
from b2bua.store.sql_webhooks import OutboxItem

__all__ = ["WebhookWorker", "backoff_s", "sign"]

log = get_logger(__name__)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-B2BUA-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def backoff_s(settings: CdrSettings, attempts: int, jitter: float = 0.5) -> float:
    """Pause after the ``attempts``-th failure; ``jitter`` in [0, 1) spreads retries ±10 %."""
    base = min(settings.webhook_backoff_s * 2 ** (attempts - 1), settings.webhook_max_backoff_s)
    return float(base * (0.9 + 0.2 * jitter))


class WebhookWorker:
    """Claims due outbox rows and POSTs them; one per node, several nodes may share a store."""

    def __init__(
        self,
        store: SqlCdrStore,
        settings: CdrSettings,
        *,
        clock: Callable[[], float] = time.time,
        client: httpx.AsyncClient | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._client = client
        self._own_client = client is None
        self._jitter = jitter
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.delivered = 0
        self.failed_attempts = 0
        self.given_up = 0

    def wake(self) -> None:
        """New events are in the outbox: look now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Start the delivery task."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._settings.webhook_timeout_s, follow_redirects=False
            )
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cdr-webhooks")

    async def close(self) -> None:
        """Stop after the deliveries in flight (unfinished ones are retried after restart)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, self._settings.webhook_timeout_s + 1)
            except TimeoutError:
                pass  # cancelled by wait_for; the claims simply expire
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while not self._closing:
            try:
                busy = await self.run_once()
            except StoreError as exc:
                log.error("webhook_outbox_failed", error=str(exc))
                busy = 0
            if busy < self._settings.webhook_concurrency and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.webhook_poll_s)
                self._wake.clear()

    async def run_once(self) -> int:
        """Claim one round of due deliveries and attempt them all; return how many."""
        settings = self._settings
        items = await self._store.claim_webhooks(
            now=self._clock(),
            # The claim must outlast the POST so no other worker sends it meanwhile.
            lease_s=settings.webhook_timeout_s + 10.0,
            limit=settings.webhook_concurrency,
        )
        if items:
            await asyncio.gather(*(self._deliver(item) for item in items))
        return len(items)

    async def _deliver(self, item: OutboxItem) -> None:
        if not item.url:
            await self._store.webhook_done(item.id)  # the tenant removed its webhook
            return
        secret = item.secret or await self._store.webhook_secret(item.tenant_id)
        body = item.payload.encode()
        stamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": item.event_key,
            "X-B2BUA-Event": item.kind,
            "X-B2BUA-Timestamp": str(stamp),
            "X-B2BUA-Signature": sign(secret, stamp, body),
        }
        assert self._client is not None
        try:
            response = await self._client.post(item.url, content=body, headers=headers)
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            self.delivered += 1
            await self._store.webhook_done(item.id)
            return
        attempts = item.attempts + 1
        self.failed_attempts += 1
        now = self._clock()
        if attempts >= self._settings.webhook_max_attempts:
            self.given_up += 1
            log.warning("webhook_given_up", tenant_id=item.tenant_id, key=item.event_key,
                        attempts=attempts, error=error)  # fmt: skip
            await self._store.webhook_retry(
                item.id, attempts=attempts, next_at=None, error=error, now=now
            )
            return
        delay = backoff_s(self._settings, attempts, self._jitter())
        await self._store.webhook_retry(
            item.id, attempts=attempts, next_at=now + delay, error=error, now=now
        )
