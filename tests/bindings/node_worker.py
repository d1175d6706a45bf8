"""A b2bua node reduced to its binding service, driven by JSON lines on stdin.

Used by the multi-node and restart tests until the SIP server exists: each line is
a command (``{"op": "create", ...}``) and gets one JSON line back, written only
after the operation was acknowledged by the service.

    python tests/bindings/node_worker.py STORE_URL
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from b2bua.bindings import BindingService, BindingSpec, BindingUpdate, Route
from b2bua.bindings.settings import BindingSettings
from b2bua.store import open_store


async def handle(service: BindingService, command: dict[str, Any]) -> dict[str, Any]:
    op = command.pop("op")
    if op == "tenant":
        tenant, _ = await service.create_tenant(command["name"])
        return {"tenant_id": tenant.id}
    if op == "import":
        return {"added": await service.import_numbers(command["tenant_id"], command["numbers"])}
    if op == "create":
        spec = BindingSpec(**command["spec"])
        return (await service.create_binding(command["tenant_id"], spec)).to_dict()
    if op == "update":
        changes = BindingUpdate(**command["changes"])
        return (await service.update_binding(command["id"], changes)).to_dict()
    if op == "release":
        return (await service.release_binding(command["id"])).to_dict()
    if op == "suspend":
        tenant = await service.set_tenant_suspended(command["tenant_id"], command["suspended"])
        return {"suspended": tenant.suspended}
    if op == "resolve":
        result = service.resolve(command["caller"], command["x"], time.time())
        if isinstance(result, Route):
            return {"route": list(result.targets), "binding_id": result.binding.id,
                    "display": result.display_number}  # fmt: skip
        return {"reject": result.reason.value}
    raise ValueError(f"unknown op {op}")


async def main(url: str) -> None:
    # stdout carries the protocol; logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    store = await open_store(url)
    service = BindingService(store, settings=BindingSettings(follow_interval_s=0.1))
    await service.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    while line := await reader.readline():
        try:
            reply: dict[str, Any] = {"ok": True, **await handle(service, json.loads(line))}
        except Exception as exc:  # report every failure to the test instead of dying
            reply = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
        print(json.dumps(reply), flush=True)
    await service.close()
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
