"""Binding creations per second over HTTP: the provisioning API under 32 clients.

Starts its own server process on loopback, creates a tenant with a pool of middle
numbers, then opens ``--concurrency`` keep-alive HTTP/1.1 connections that each
send ``POST /v1/bindings`` back to back (every binding with fresh participants)
until ``--count`` bindings were created or ``--max-seconds`` passed. Prints the
rate and the p50/p99 latency. Target (issue 4): >= 1,500/s with p99 < 50 ms on
SQLite.

The load generator is a raw asyncio HTTP/1.1 client (no httpx) so that it takes
as little as possible of the CPU it shares with the server on this machine.

``--switch-interval 0.0005 --gc-tune`` (standalone mode) try the process settings
recommended for ``b2bua serve``; see :func:`internal_server`.

Modes:
- ``serve`` (default): the real ``b2bua serve -c <tmp config>``; needs the API wired.
- ``standalone``: a process running only the provisioning API under uvicorn, the
  same way ``b2bua.app`` runs it (uvloop, httptools when installed, SQLite store).

    .venv/bin/python benchmarks/api_bench.py [--mode standalone] [--count 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

OPERATOR_KEY = "bench-operator-key"
REPO = Path(__file__).resolve().parents[1]


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_sip_port() -> int:
    for _ in range(50):
        port = _free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free SIP port")


def start_server(
    mode: str, workdir: Path, tuning: list[str]
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server process; return it and its HTTP port."""
    http_port = _free_port()
    db = workdir / "bench.db"
    env = {**os.environ, "B2BUA_OPERATOR_KEY": OPERATOR_KEY}
    if mode == "serve":
        sip_port = _free_sip_port()
        config = workdir / "b2bua.toml"
        config.write_text(
            f'[sip]\nlisten = ["udp:127.0.0.1:{sip_port}", "tcp:127.0.0.1:{sip_port}"]\n'
            f'[http]\nlisten = "127.0.0.1:{http_port}"\n'
            f'[store]\nurl = "sqlite:///{db}"\n'
            '[logging]\nlevel = "warning"\n'
        )
        script = Path(sys.executable).parent / "b2bua"
        command = [str(script)] if script.exists() else [sys.executable, "-m", "b2bua.cli"]
        command += ["serve", "-c", str(config)]
    else:
        command = [sys.executable, __file__, "--internal-server", str(http_port), str(db)]
        command += tuning
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{(workdir / 'server.log').read_text()}")
        try:
            schema = httpx.get(f"http://127.0.0.1:{http_port}/openapi.json", timeout=1)
            if "/v1/bindings" not in schema.json().get("paths", {}):
                raise RuntimeError("the server does not serve /v1/bindings (API not wired?)")
            return process, http_port
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start in 20 s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def setup_tenant(port: int, pool: int) -> str:
    """Create the tenant and its pool; return the tenant's API key."""
    base = f"http://127.0.0.1:{port}"
    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    tenant = httpx.post(f"{base}/v1/tenants", json={"name": "bench"}, headers=operator).json()
    numbers = [f"700{i:012d}" for i in range(pool)]
    response = httpx.post(
        f"{base}/v1/numbers", json={"tenant_id": tenant["id"], "numbers": numbers},
        headers=operator, timeout=30,
    )  # fmt: skip
    response.raise_for_status()
    return str(tenant["api_key"])


class Load:
    """Shared state of the client tasks."""

    def __init__(self, count: int, deadline: float) -> None:
        self.count = count
        self.deadline = deadline
        self.issued = 0
        self.latencies: list[float] = []
        self.errors: dict[int, int] = {}
        self.samples: list[bytes] = []

    def next_index(self) -> int | None:
        if self.issued >= self.count or time.monotonic() > self.deadline:
            return None
        self.issued += 1
        return self.issued


async def client(port: int, api_key: str, load: Load, offset: int) -> None:
    """One keep-alive connection sending POST /v1/bindings back to back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /v1/bindings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
    )
    try:
        while (index := load.next_index()) is not None:
            n = offset + index
            body = json.dumps({
                "mode": "AXB", "a": f"138{n:08d}", "b": f"139{n:08d}",
                "ttl_s": 3600, "order_id": f"bench-{n}",
            }).encode()  # fmt: skip
            request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            payload = await reader.readexactly(length)
            load.latencies.append(time.perf_counter() - started)
            status = int(status_line.split()[1])
            if status != 201:
                load.errors[status] = load.errors.get(status, 0) + 1
                if len(load.samples) < 3:
                    load.samples.append(payload[:300])
    finally:
        writer.close()


async def run_load(port: int, api_key: str, count: int, concurrency: int, seconds: float) -> Load:
    load = Load(count, time.monotonic() + seconds)
    offset = int(time.time()) % 1000 * 100_000  # fresh participants on every run
    await asyncio.gather(*(client(port, api_key, load, offset) for _ in range(concurrency)))
    return load


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("serve", "standalone"), default="serve")
    parser.add_argument("--count", type=int, default=20_000, help="bindings to create")
    parser.add_argument("--warmup", type=int, default=1_000, help="bindings before measuring")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pool", type=int, default=200, help="middle numbers in the pool")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument(
        "--switch-interval",
        type=float,
        help="standalone: sys.setswitchinterval in the server (default 0.005 s)",
    )
    parser.add_argument(
        "--gc-tune",
        action="store_true",
        help="standalone: gc.freeze() after start and a gen-0 threshold of 50,000",
    )
    parser.add_argument(
        "--internal-server", nargs=2, metavar=("PORT", "DB"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.internal_server:
        return internal_server(
            int(args.internal_server[0]), args.internal_server[1], args.switch_interval,
            args.gc_tune,
        )  # fmt: skip
    tuning = ["--switch-interval", str(args.switch_interval)] if args.switch_interval else []
    tuning += ["--gc-tune"] if args.gc_tune else []
    if tuning and args.mode == "serve":
        parser.error("--switch-interval and --gc-tune apply to --mode standalone only")

    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        process, port = start_server(args.mode, Path(tmp), tuning)
        try:
            api_key = setup_tenant(port, args.pool)
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(run_load(port, api_key, args.warmup, args.concurrency, 30))
                started = time.perf_counter()
                load = runner.run(
                    run_load(port, api_key, args.count, args.concurrency, args.max_seconds)
                )
                elapsed = time.perf_counter() - started
        finally:
            stop_server(process)
    done = len(load.latencies)
    created = done - sum(load.errors.values())
    ms = [v * 1000 for v in load.latencies]
    print(f"machine: {os.cpu_count()} CPUs shared by server and load generator (loopback)")
    print(
        f"mode={args.mode} concurrency={args.concurrency} keep-alive, pool={args.pool}"
        f" switch_interval={args.switch_interval or 'default'} gc_tune={args.gc_tune}"
    )
    print(f"requests={done} created={created} errors={load.errors or 'none'} in {elapsed:.2f}s")
    for sample in load.samples:
        print(f"  error sample: {sample!r}")
    print(f"rate={created / elapsed:,.0f} bindings/s")
    if ms:
        print(
            f"latency ms: p50={statistics.median(ms):.1f} p90={percentile(ms, 0.9):.1f}"
            f" p99={percentile(ms, 0.99):.1f} max={max(ms):.1f}"
        )
    target = created / elapsed >= 1500 and ms and percentile(ms, 0.99) < 50
    print(f"target (>= 1500/s, p99 < 50 ms): {'met' if target else 'NOT met'}")
    return 0 if created else 1


def internal_server(port: int, db: str, switch_interval: float | None, gc_tune: bool) -> int:
    """The ``standalone`` server: only the provisioning API, run like b2bua.app runs it.

    ``switch_interval`` and ``gc_tune`` are the two process settings found to matter:
    the store's SQLite thread needs the GIL to hand back each ``BEGIN``/``COMMIT``
    of a group commit, and with the default 5 ms switch interval each hand-over can
    wait that long while the loop is busy; full collections of the young generation
    under load cause the p99 tail.
    """
    import uvicorn
    from fastapi import FastAPI

    from b2bua.api.provisioning import ApiContext, install_provisioning_api
    from b2bua.bindings.service import BindingService
    from b2bua.store import open_store

    if switch_interval:
        sys.setswitchinterval(switch_interval)

    async def serve() -> None:
        store = await open_store(f"sqlite:///{db}")
        service = BindingService(store)
        await service.start()
        app = FastAPI(title="b2bua")
        install_provisioning_api(
            app, ApiContext(service=service, store=store, operator_key=OPERATOR_KEY)
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        if gc_tune:
            import gc

            gc.freeze()  # what exists after start (modules, index) is never collected
            gc.set_threshold(50_000, 50, 100)
        try:
            await server.serve()
        finally:
            await service.close()
            await store.close()

    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
