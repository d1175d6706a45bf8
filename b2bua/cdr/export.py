"""Streaming export of call records as CSV or JSON lines.

Records are read in keyset pages of ``invite_at, id`` (see
:meth:`~b2bua.store.sql_cdr_read.CdrReads.iter_records`) and written as they
come, so memory stays constant for any number of rows. Times are RFC 3339 UTC
with milliseconds (``2026-05-09T04:00:00.123Z``); CSV leaves absent values empty.

``export_per_tenant`` writes one file per tenant (``<tenant id>.csv``, records of
refused attempts with no tenant in ``_no_tenant.csv``) under a directory, each
first written to a temporary name and renamed when complete, so a half-written
export never looks finished. With ``day_range`` that is one day's records, one
file per tenant, for handing over to each tenant or archiving before purge.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from b2bua.cdr.record import FLOAT_COLUMNS, RECORD_COLUMNS, RecordDraft
from b2bua.store.sql_cdr import SqlCdrStore
from b2bua.store.sql_cdr_read import ALL_TENANTS

__all__ = ["FORMATS", "day_range", "export_per_tenant", "export_records", "rfc3339"]

FORMATS = ("csv", "jsonl")
_TIME_COLUMNS = FLOAT_COLUMNS - {"duration_s"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def rfc3339(at: float | None) -> str | None:
    """Epoch seconds as RFC 3339 UTC with milliseconds."""
    if at is None:
        return None
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def export_row(draft: RecordDraft) -> dict[str, Any]:
    """The exported form of one record."""
    row = dict(zip(RECORD_COLUMNS, draft.to_row(), strict=True))
    for column in _TIME_COLUMNS:
        row[column] = rfc3339(row[column])
    return row


def day_range(day: str, utc_offset: str = "+08:00") -> tuple[float, float]:
    """``[start, end)`` of the calendar day ``YYYY-MM-DD`` at ``utc_offset`` (China: +08:00)."""
    sign = -1 if utc_offset.startswith("-") else 1
    hours, _, minutes = utc_offset.lstrip("+-").partition(":")
    zone = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), zone)
    return start.timestamp(), (start + timedelta(days=1)).timestamp()


def _row_writer(out: TextIO, fmt: str) -> Callable[[RecordDraft], None]:
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=RECORD_COLUMNS, lineterminator="\n")
        writer.writeheader()

        def write_row(draft: RecordDraft) -> None:
            writer.writerow(export_row(draft))

        return write_row
    if fmt == "jsonl":

        def write_line(draft: RecordDraft) -> None:
            out.write(json.dumps(export_row(draft), ensure_ascii=False, separators=(",", ":")))
            out.write("\n")

        return write_line
    raise ValueError(f"unknown export format {fmt!r} (csv or jsonl)")


async def export_records(
    store: SqlCdrStore,
    out: TextIO,
    *,
    fmt: str,
    since: float | None,
    until: float | None,
    tenant: str | None = ALL_TENANTS,
) -> int:
    """Write the records with ``since <= invite_at < until`` to ``out``; return how many."""
    write = _row_writer(out, fmt)
    count = 0
    async for draft in store.iter_records(since=since, until=until, tenant=tenant):
        write(draft)
        count += 1
    return count


async def export_per_tenant(
    store: SqlCdrStore, directory: Path, *, fmt: str, since: float | None, until: float | None
) -> dict[str, int]:
    """One file per tenant with records in the range; return the count per file name."""
    directory.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    tenants: list[str | None] = [*await store.record_tenants(), None]
    for tenant in tenants:
        name = f"{_SAFE_NAME.sub('_', tenant) if tenant else '_no_tenant'}.{fmt}"
        partial = directory / f".{name}.partial"
        out: TextIO | None = None
        write: Callable[[RecordDraft], None] | None = None
        count = 0
        try:
            async for draft in store.iter_records(since=since, until=until, tenant=tenant):
                if out is None:
                    out = open(partial, "w", encoding="utf-8", newline="")  # noqa: SIM115
                    write = _row_writer(out, fmt)
                assert write is not None
                write(draft)
                count += 1
        finally:
            if out is not None:
                out.close()
        if count:
            os.replace(partial, directory / name)
            counts[name] = count
    return counts
