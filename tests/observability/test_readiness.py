"""`/readyz` follows the store and the listeners, and recovers without a restart."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from integration.server import Server

from b2bua.observability.health import ReadinessMonitor, listener_up
from b2bua.transport.tcp import start_tcp
from b2bua.transport.udp import start_udp
from observability.calls import http_get, start_with_store
from observability.tcp_proxy import TcpProxy

PG_DSN = os.environ.get("B2BUA_TEST_PG_DSN")


class FakeListener:
    is_serving = True


async def test_monitor_follows_the_store_ping() -> None:
    healthy = True

    async def ping() -> None:
        if not healthy:
            raise ConnectionError("database gone")

    changes: list[bool] = []
    monitor = ReadinessMonitor(ping, lambda: [FakeListener()], on_change=changes.append)
    assert await monitor.check() and monitor.ready()
    healthy = False
    assert not await monitor.check() and not monitor.ready()
    healthy = True
    assert await monitor.check() and monitor.ready()
    assert changes == [True, False, True]


async def test_a_hanging_ping_counts_as_down() -> None:
    async def ping() -> None:
        await asyncio.sleep(10)

    monitor = ReadinessMonitor(ping, lambda: [FakeListener()], timeout_s=0.05)
    assert not await monitor.check()


async def test_listeners_down_means_not_ready() -> None:
    listener = FakeListener()
    monitor = ReadinessMonitor(lambda: asyncio.sleep(0), lambda: [listener])
    assert await monitor.check() and monitor.ready()
    listener.is_serving = False
    assert not monitor.ready()  # the store is fine, the listener is not
    assert not ReadinessMonitor(lambda: asyncio.sleep(0), list).ready()  # no listener at all


class NullSink:
    def message_received(self, data: bytes, source: object) -> None:
        """Ignore everything."""


async def test_listener_up_for_real_transports() -> None:
    udp = await start_udp("127.0.0.1", 0, NullSink())  # type: ignore[arg-type]
    tcp = await start_tcp("127.0.0.1", 0, NullSink(), max_message_size=65535, idle_timeout=5)  # type: ignore[arg-type]
    assert listener_up(udp) and listener_up(tcp)
    await udp.close()
    await tcp.close(timeout=1)
    assert not listener_up(udp) and not listener_up(tcp)


def wait_for_readyz(server: Server, status: int, timeout: float) -> float:
    """Seconds until /readyz answers `status`; fails after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if http_get(server.http_port, "/readyz")[0] == status:
            return time.monotonic() - started
        time.sleep(0.1)
    pytest.fail(f"/readyz did not answer {status} in {timeout}s:\n{server.log_path.read_text()}")


@pytest.mark.postgres
@pytest.mark.skipif(not PG_DSN, reason="B2BUA_TEST_PG_DSN is not set")
def test_readyz_follows_the_database(tmp_path: Path) -> None:
    """PostgreSQL behind a proxy we cut and restore; the shared server keeps running."""
    assert PG_DSN is not None
    parts = urlsplit(PG_DSN)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxy.start()
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    schema = f"obs_{uuid.uuid4().hex[:12]}"
    query = f"{parts.query}&schema={schema}" if parts.query else f"schema={schema}"
    url = urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    server = None
    try:
        server = start_with_store(tmp_path, url)
        wait_for_readyz(server, 200, 5)
        proxy.stop()
        wait_for_readyz(server, 503, 6)
        assert http_get(server.http_port, "/healthz")[0] == 200  # alive, just not ready
        proxy.start()
        wait_for_readyz(server, 200, 10)
        assert server.is_alive()
        assert server.stop() == 0, server.log_path.read_text()[-3000:]
    finally:
        if server is not None:
            server.stop()
        proxy.close()
        asyncio.run(_drop_schema(PG_DSN, schema))


async def _drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
