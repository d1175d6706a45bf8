"""Tamper evidence: per-node hash chains, ``b2bua cdr verify`` names the first broken record."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from b2bua.cdr.chain import verify_chains
from b2bua.cdr.record import chain_hash
from b2bua.cdr.service import CdrService
from b2bua.cdr.settings import CdrSettings
from b2bua.store import Store
from cdr.conftest import call_events, raw_sql

T0 = time.time() - 3600.0
SETTINGS = CdrSettings(batch_interval_s=0.02)


async def write_calls(store: Store, node: str, count: int, *, offset: int = 0) -> None:
    service = CdrService(store, SETTINGS, node)
    await service.start()
    for i in range(offset, offset + count):
        for event in call_events(f"{node}-{i:03d}", at=T0 + i, end_after=5.0):
            service.sink.emit(event)
    assert await service.writer.flush()
    await service.close()


def verify_cli(store_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "b2bua.cli", "cdr", "verify", "--store", store_url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_intact_chains_per_node(store: Store, store_url: str) -> None:
    await write_calls(store, "node-a", 20)
    await write_calls(store, "node-b", 7)
    await write_calls(store, "node-a", 5, offset=20)  # a restart continues its chain
    reports = await verify_chains(store.cdr)
    assert [(r.node, r.ok, r.checked) for r in reports] == [("node-a", True, 25),
                                                            ("node-b", True, 7)]  # fmt: skip
    result = await asyncio.to_thread(verify_cli, store_url)
    assert result.returncode == 0, result.stderr
    assert '"ok": true' in result.stdout


async def test_edited_row_is_named(store: Store, store_url: str) -> None:
    await write_calls(store, "node-a", 10)
    # Someone shortens a call behind the server's back.
    await raw_sql(store_url, "UPDATE call_records SET duration_s = ? WHERE id = ?", 1.0,
                  "node-a-004")  # fmt: skip
    reports = await verify_chains(store.cdr)
    assert reports[0].record_id == "node-a-004" and not reports[0].ok
    assert reports[0].checked == 4
    result = await asyncio.to_thread(verify_cli, store_url)
    assert result.returncode == 1
    assert "node-a-004" in result.stdout and "node-a-004" in result.stderr


async def test_rehashed_row_breaks_the_next_link(store: Store, store_url: str) -> None:
    await write_calls(store, "node-a", 10)
    draft = await store.cdr.get_record("node-a-004")
    assert draft is not None
    draft.caller = "13700000000"
    await raw_sql(store_url, "UPDATE call_records SET caller = ?, hash = ? WHERE id = ?",
                  draft.caller, chain_hash(draft), draft.id)  # fmt: skip
    reports = await verify_chains(store.cdr)
    assert reports[0].record_id == "node-a-005"
    assert "prev_hash" in (reports[0].problem or "")


async def test_deleted_rows_are_detected(store: Store, store_url: str) -> None:
    await write_calls(store, "node-a", 10)
    await raw_sql(store_url, "DELETE FROM call_records WHERE id = ?", "node-a-003")
    reports = await verify_chains(store.cdr)
    assert reports[0].record_id == "node-a-004"
    assert "deleted" in (reports[0].problem or "")
    await raw_sql(store_url, "DELETE FROM call_records WHERE chain_seq >= ?", 4)
    reports = await verify_chains(store.cdr)
    assert not reports[0].ok and reports[0].record_id is None
    assert "at the end" in (reports[0].problem or "")
