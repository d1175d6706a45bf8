"""Webhooks: signed, idempotent POSTs from the outbox, retried across a restart."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field

from b2bua.cdr.service import CdrService
from b2bua.cdr.settings import CdrSettings
from b2bua.cdr.webhooks import backoff_s
from b2bua.store import open_store
from cdr.conftest import add_tenant, call_events

SETTINGS = CdrSettings(
    batch_interval_s=0.02, webhook_backoff_s=0.1, webhook_poll_s=0.05, webhook_timeout_s=2.0
)


@dataclass
class Receiver:
    """A tiny HTTP server answering 500 to the first ``fail_first`` requests, then 204."""

    fail_first: int
    requests: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    port: int = 0
    server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = 500 if len(self.requests) < self.fail_first else 204
                self.requests.append((headers, body, status))
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def delivered(self) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b, status in self.requests if status == 204]


async def eventually(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_delivery_retried_across_a_restart(store_url: str) -> None:
    receiver = Receiver(fail_first=3)
    await receiver.start()
    store = await open_store(store_url)
    await add_tenant(store, "t1", webhook_url=f"http://127.0.0.1:{receiver.port}/hook")
    await add_tenant(store, "t2")  # no webhook: nothing is sent for it
    service = CdrService(store, SETTINGS, "node-a")
    await service.start()
    for event in call_events("c1", at=time.time() - 40, tenant_id="t1"):
        service.sink.emit(event)
    for event in call_events("c2", at=time.time() - 40, tenant_id="t2"):
        service.sink.emit(event)
    await eventually(lambda: len(receiver.requests) >= 2)  # both events failed once
    await service.close()
    await store.close()
    assert not receiver.delivered()

    store = await open_store(store_url)  # the outbox survived the restart
    pending, _ = await store.cdr.outbox_stats()
    assert pending == 2
    service = CdrService(store, SETTINGS, "node-a")
    await service.start()
    await eventually(lambda: len(receiver.delivered()) == 2)
    await asyncio.sleep(0.1)
    await service.close()
    assert await store.cdr.outbox_stats() == (0, 0)
    secret = await store.cdr.webhook_secret("t1")  # generated on first use
    await store.close()
    await receiver.close()

    keys = [h["idempotency-key"] for h, _, _ in receiver.requests]
    assert set(keys) == {"c1:call.started", "c1:call.finished"}
    for headers, body in receiver.delivered():
        event = json.loads(body)
        assert headers["x-b2bua-event"] == event["event"]
        assert event["call"]["id"] == "c1" and event["call"]["tenant_id"] == "t1"
        stamp = headers["x-b2bua-timestamp"]
        mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
        assert headers["x-b2bua-signature"] == f"sha256={mac.hexdigest()}"
        assert headers["content-type"] == "application/json"
    finished = next(json.loads(b) for h, b in receiver.delivered() if b"call.finished" in b)
    assert finished["call"]["hash"] and finished["call"]["end_reason"] == "normal"


async def test_gives_up_after_max_attempts(store_url: str) -> None:
    receiver = Receiver(fail_first=1000)
    await receiver.start()
    store = await open_store(store_url)
    await add_tenant(store, "t1", webhook_url=f"http://127.0.0.1:{receiver.port}/hook")
    settings = CdrSettings(batch_interval_s=0.02, webhook_backoff_s=0.01, webhook_poll_s=0.02,
                           webhook_max_attempts=3)  # fmt: skip
    service = CdrService(store, settings, "node-a")
    await service.start()
    for event in call_events("c1", at=time.time() - 40, tenant_id="t1"):
        service.sink.emit(event)
    await eventually(lambda: service.webhooks.given_up == 2)
    await service.close()
    assert await store.cdr.outbox_stats() == (0, 2)
    assert len(receiver.requests) == 6
    await store.close()
    await receiver.close()


def test_backoff_grows_and_is_capped() -> None:
    settings = CdrSettings(webhook_backoff_s=2.0, webhook_max_backoff_s=60.0)
    assert [backoff_s(settings, n) for n in (1, 2, 3, 10)] == [2.0, 4.0, 8.0, 60.0]
    assert backoff_s(settings, 1, jitter=0.0) == 1.8
