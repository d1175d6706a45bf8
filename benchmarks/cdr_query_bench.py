"""Call-record query benchmark: the /v1/calls filters and export over N rows.

    .venv/bin/python benchmarks/cdr_query_bench.py [--rows 1000000] [--store URL]
        [--keep] [--repeat 20] [--max-fill-s 900]

Fills ``call_records`` with ``--rows`` synthetic finished records (default one
million; ``--rows 10000000`` for the ten-million case) spread over 180 days, 50
tenants, 200,000 middle numbers, 2,000,000 real numbers and 1,000,000 bindings,
then times, through the API reader (:class:`b2bua.api.call_records.StoreCallRecordQuery`),
the queries ``GET /v1/calls`` makes: newest page per tenant, by X, by real number
(caller or callee), by binding, by time window, a deep keyset page, and a one-day
streaming export. Each query runs ``--repeat`` times with random keys; p50/p99 are
printed in milliseconds.

The store defaults to a throwaway SQLite file; ``--store postgresql://127.0.0.1/test``
uses a throwaway schema (dropped afterwards unless ``--keep``). Filling stops
after ``--max-fill-s`` seconds so a run stays bounded (the row count reached is
printed). Rows are inserted directly in large transactions, not through the
writer: this measures reads, not the write path.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from b2bua.api.call_records import CallFilter, StoreCallRecordQuery
from b2bua.cdr.export import export_records
from b2bua.cdr.record import RECORD_COLUMNS
from b2bua.store import open_store
from b2bua.store.sql_cdr_read import RecordFilter

DAYS = 180
TENANTS, XS, NUMBERS, BINDINGS = 50, 200_000, 2_000_000, 1_000_000
CHUNK = 20_000


def _real(n: int) -> str:
    return f"139{n:08d}"


def synthetic_row(
    i: int, rows: int, rng: random.Random, t0: float, span: float
) -> tuple[object, ...]:
    """One finished record; keys drawn so every filter matches few rows."""
    invite = t0 + span * i / rows + rng.random()
    binding = rng.randrange(BINDINGS)
    tenant = binding % TENANTS
    x = f"7001{binding % XS:011d}"
    caller, callee = _real(rng.randrange(NUMBERS)), _real(rng.randrange(NUMBERS))
    values = {
        "id": f"{i:012d}{rng.getrandbits(32):08x}", "node": f"node-{i % 3}",
        "inbound_call_id": f"in-{i}", "outbound_call_id": f"out-{i}",
        "tenant_id": f"t{tenant:03d}", "binding_id": f"b{binding:07d}",
        "order_id": f"o{binding}", "mode": "AXB", "x": x, "caller": caller, "callee": callee,
        "shown_number": x, "direction": "both", "inbound_trunk": "carrier-a",
        "source_address": "udp:192.0.2.1:5060", "outbound_trunk": "carrier-b",
        "invite_at": invite, "ringing_at": invite + 0.5, "answered_at": invite + 3.0,
        "ended_at": invite + 63.0, "duration_s": 60.0, "pdd_ms": 500, "final_status": 200,
        "end_reason": "normal", "released_by": "caller", "rejection": None,
        "chain_seq": None, "prev_hash": None, "hash": None,
    }  # fmt: skip
    return tuple(values[c] for c in RECORD_COLUMNS)


async def fill(store: object, rows: int, max_s: float) -> int:
    """Insert ``rows`` records (or as many as fit in ``max_s``); return how many."""
    driver = store._driver  # type: ignore[attr-defined]
    rng = random.Random(7)
    span = DAYS * 86400.0
    t0 = time.time() - span
    sql = f"INSERT INTO call_records ({', '.join(RECORD_COLUMNS)}) VALUES" + (
        f" ({', '.join('?' * len(RECORD_COLUMNS))})"
    )
    start = time.monotonic()
    done = 0
    while done < rows and time.monotonic() - start < max_s:
        batch = [
            synthetic_row(i, rows, rng, t0, span) for i in range(done, min(done + CHUNK, rows))
        ]
        async with driver.transaction() as tx:
            await tx.executemany(sql, batch)
        done += len(batch)
        if done % 200_000 == 0:
            rate = done / (time.monotonic() - start)
            print(f"  filled {done:,} rows ({rate:,.0f} rows/s)", flush=True)
    if store.dialect == "postgresql":  # type: ignore[attr-defined]
        async with driver.transaction() as tx:
            await tx.execute("ANALYZE call_records")
    return done


async def timed(label: str, repeat: int, query: Callable[[], Awaitable[int]]) -> None:
    times, found = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        found += await query()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"  {label:<34} p50 {statistics.median(times):8.2f} ms   p99 {p99:8.2f} ms"
          f"   rows/query {found / repeat:8.1f}")  # fmt: skip


async def run(args: argparse.Namespace) -> None:
    url, schema = args.store, None
    if url is None:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='cdr-bench-')}/bench.db"
    elif url.startswith("postgres"):
        schema = f"cdr_bench_{uuid.uuid4().hex[:8]}"
        url = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    store = await open_store(url)
    try:
        print(f"store {url}")
        start = time.monotonic()
        rows = await fill(store, args.rows, args.max_fill_s)
        print(f"filled {rows:,} rows in {time.monotonic() - start:.0f} s")
        reader = StoreCallRecordQuery(store.cdr)
        rng = random.Random(11)
        sample = await store.cdr.list_records(RecordFilter(), limit=200)
        now = time.time()

        async def page(tenant: str | None, filters: CallFilter, cursor: str | None = None) -> int:
            records, _ = await reader.list_calls(tenant, filters, 100, cursor)
            return len(records)

        def pick() -> object:
            return rng.choice(sample)

        r = args.repeat
        await timed("tenant, newest page", r, lambda: page(f"t{rng.randrange(TENANTS):03d}",
                                                            CallFilter()))  # fmt: skip
        await timed("X", r, lambda: page(None, CallFilter(x=pick().x)))  # type: ignore[attr-defined]
        await timed("number (caller or callee)", r,
                    lambda: page(None, CallFilter(number=pick().callee)))  # type: ignore[attr-defined]  # fmt: skip
        await timed("binding_id", r,
                    lambda: page(None, CallFilter(binding_id=pick().binding_id)))  # type: ignore[attr-defined]  # fmt: skip
        await timed("time window, all tenants", r, lambda: page(None, CallFilter(
            since=now - rng.uniform(1, 170) * 86400, until=now)))  # fmt: skip
        await timed("tenant + 1-day window", r, lambda: page(
            f"t{rng.randrange(TENANTS):03d}",
            CallFilter(since=now - 30 * 86400, until=now - 29 * 86400)))  # fmt: skip

        async def deep() -> int:
            cursor = None
            for _ in range(50):  # page 50 of a tenant: keyset cost does not grow
                records, cursor = await reader.list_calls("t001", CallFilter(), 100, cursor)
            return len(records)

        await timed("tenant, 50 pages deep (total)", max(1, r // 10), deep)
        out = io.StringIO()
        start = time.perf_counter()
        exported = await export_records(store.cdr, out, fmt="csv", since=now - 100 * 86400,
                                        until=now - 99 * 86400)  # fmt: skip
        took = time.perf_counter() - start
        print(f"  export one day (csv)              {exported:,} rows in {took:.2f} s"
              f" ({exported / max(took, 1e-9):,.0f} rows/s)")  # fmt: skip
    finally:
        if schema and not args.keep:
            async with store._driver.transaction() as tx:  # type: ignore[attr-defined]
                await tx.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--store", help="store URL (default: a throwaway SQLite file)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--max-fill-s", type=float, default=900.0)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL schema")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
