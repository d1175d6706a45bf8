"""Export (CSV, JSON lines, one file per tenant), the API reader, retention purge."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from b2bua.api.call_records import CallFilter, InvalidCursor, StoreCallRecordQuery
from b2bua.cdr.chain import verify_chains
from b2bua.cdr.export import day_range, export_per_tenant, export_records
from b2bua.cdr.retention import purge_expired
from b2bua.cdr.service import CdrService
from b2bua.cdr.settings import CdrSettings
from b2bua.store import Store
from cdr.conftest import A, B, X, call_events, rejected_events

DAY = 86400.0
NOW = time.time()


async def fill(store: Store, starts: list[tuple[str, float, str | None]], node: str = "n1") -> None:
    service = CdrService(store, CdrSettings(batch_interval_s=0.02, retention_days=1e5), node)
    await service.start()
    for call_id, at, tenant in starts:
        events = (
            rejected_events(call_id, at=at) if tenant is None
            else call_events(call_id, at=at, tenant_id=tenant, caller=A if "r" not in call_id
                             else B, callee=B if "r" not in call_id else A)
        )  # fmt: skip
        for event in events:
            service.sink.emit(event)
    assert await service.writer.flush()
    await service.close()


async def test_export_streams_pages_in_time_order(store: Store) -> None:
    starts = [(f"c{i:03d}", NOW - 1000 + i, "t1" if i % 2 else "t2") for i in range(120)]
    await fill(store, starts)
    ids = [d.id async for d in store.cdr.iter_records(since=NOW - 990, until=NOW - 900, page=7)]
    assert ids == [f"c{i:03d}" for i in range(10, 100)]
    out = io.StringIO()
    count = await export_records(store.cdr, out, fmt="csv", since=NOW - 2000, until=NOW,
                                 tenant="t1")  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert count == len(rows) == 60
    assert rows[0]["id"] == "c001" and rows[0]["tenant_id"] == "t1"
    assert rows[0]["invite_at"].endswith("Z") and rows[0]["pdd_ms"] == "500"
    out = io.StringIO()
    await export_records(store.cdr, out, fmt="jsonl", since=NOW - 2000, until=NOW)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 120 and lines[5]["hash"] and lines[5]["duration_s"] == 30.0


async def test_one_file_per_tenant_for_a_day(store: Store, tmp_path: Path, store_url: str) -> None:
    day = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    since, until = day_range(day)
    assert until - since == DAY
    await fill(store, [("a1", since + 10, "t1"), ("a2", since + 20, "t2"), ("a3", since + 30, None),
                       ("a4", since - 10, "t1"), ("a5", until, "t2")])  # fmt: skip
    counts = await export_per_tenant(store.cdr, tmp_path / "d", fmt="jsonl", since=since,
                                     until=until)  # fmt: skip
    assert counts == {"t1.jsonl": 1, "t2.jsonl": 1, "_no_tenant.jsonl": 1}
    assert json.loads((tmp_path / "d" / "t2.jsonl").read_text())["id"] == "a2"
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "b2bua.cli", "cdr", "export", "--day", day,
         "--format", "csv", "--per-tenant-dir", str(tmp_path / "cli"), "--store", store_url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == [
        "_no_tenant.csv", "t1.csv", "t2.csv",
    ]  # fmt: skip


async def test_reader_filters_and_cursor(store: Store) -> None:
    starts = [(f"c{i:02d}", NOW - 100 + i, "t1") for i in range(10)]
    starts += [(f"r{i:02d}", NOW - 50 + i, "t2") for i in range(5)]  # B calls A
    await fill(store, starts)
    # The API's query over the store's call records (b2bua.api.call_records).
    reader = StoreCallRecordQuery(store.cdr)
    page, cursor = await reader.list_calls("t1", CallFilter(), 4, None)
    assert [r.id for r in page] == ["c09", "c08", "c07", "c06"] and cursor
    page, cursor = await reader.list_calls("t1", CallFilter(), 4, cursor)
    assert [r.id for r in page] == ["c05", "c04", "c03", "c02"]
    page, cursor = await reader.list_calls("t1", CallFilter(), 4, cursor)
    assert [r.id for r in page] == ["c01", "c00"] and cursor is None
    both, _ = await reader.list_calls(None, CallFilter(number=A), 100, None)
    assert len(both) == 15 and both[0].id == "r04"  # A as caller and as callee
    as_callee, _ = await reader.list_calls(None, CallFilter(number=A, since=NOW - 60), 3, None)
    assert [r.id for r in as_callee] == ["r04", "r03", "r02"]
    found, _ = await reader.list_calls(None, CallFilter(x=X, binding_id="bind-t2"), 100, None)
    assert {r.id for r in found} == {f"r{i:02d}" for i in range(5)}
    window, _ = await reader.list_calls(None, CallFilter(since=NOW - 95, until=NOW - 93), 10, None)
    assert [r.id for r in window] == ["c06", "c05"]
    record = await reader.get_call("c03")
    assert record is not None and record.callee == B and record.hash
    with pytest.raises(InvalidCursor):
        await reader.list_calls(None, CallFilter(), 10, "garbage!")


async def test_purge_keeps_the_rest_verifiable(store: Store) -> None:
    old = [(f"old{i:02d}", NOW - 200 * DAY + i, "t1") for i in range(25)]
    new = [(f"new{i:02d}", NOW - 10 * DAY + i, "t1") for i in range(5)]
    await fill(store, old + new)
    settings = CdrSettings(retention_days=180, purge_batch=10, purge_pause_s=0)
    assert await purge_expired(store.cdr, settings, now=NOW) == 25
    left = [d.id async for d in store.cdr.iter_records(since=None, until=None)]
    assert left == [f"new{i:02d}" for i in range(5)]
    reports = await verify_chains(store.cdr)
    assert reports[0].ok and reports[0].checked == 5
