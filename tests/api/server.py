"""A real HTTP server around the provisioning API, on a thread, for black-box tests.

The schemathesis test and the benchmark talk HTTP to it over loopback; the app, the
store and the service all live on the server thread's own event loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from b2bua.api.provisioning import ApiContext, install_provisioning_api
from b2bua.bindings.service import BindingService
from b2bua.store import open_store

OPERATOR_KEY = "operator-secret-key"


@dataclass
class LiveServer:
    """Where the server listens and the keys to use."""

    url: str
    operator_key: str = OPERATOR_KEY
    tenant_id: str = ""
    tenant_key: str = ""
    numbers: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(db_path: Path, pool: int = 50) -> Iterator[LiveServer]:
    """Run the API on 127.0.0.1 on a thread; a tenant with ``pool`` numbers exists."""
    port = _free_port()
    live = LiveServer(url=f"http://127.0.0.1:{port}")
    started = threading.Event()
    failure: list[BaseException] = []
    holder: dict[str, uvicorn.Server] = {}

    async def main() -> None:
        store = await open_store(f"sqlite:///{db_path}")
        service = BindingService(store)
        await service.start(background=False)
        tenant, key = await service.create_tenant("live")
        live.numbers = [f"700{i:012d}" for i in range(pool)]
        await service.import_numbers(tenant.id, live.numbers)
        live.tenant_id, live.tenant_key = tenant.id, key
        app = FastAPI(title="b2bua")
        install_provisioning_api(
            app, ApiContext(service=service, store=store, operator_key=OPERATOR_KEY)
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        holder["server"] = server
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        started.set()
        try:
            await task
        finally:
            await store.close()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the test thread below
            failure.append(exc)
            started.set()

    thread = threading.Thread(target=run, name="api-live-server", daemon=True)
    thread.start()
    if not started.wait(30) or failure:
        raise RuntimeError(f"API server did not start: {failure}")
    try:
        yield live
    finally:
        if "server" in holder:
            holder["server"].should_exit = True
        thread.join(10)
