"""``b2bua cdr ...``: export, verify and purge call records against the configured store.

    b2bua cdr export (--since T --until T | --day YYYY-MM-DD [--utc-offset +08:00])
                     [--format csv|jsonl] [--tenant ID] [--output FILE | --per-tenant-dir DIR]
    b2bua cdr verify
    b2bua cdr purge [--retention-days N] [--max-batches N]
    b2bua cdr webhook-secret TENANT_ID [--rotate]

Times are RFC 3339 (``2026-05-09T00:00:00+08:00``; UTC when no offset) or epoch
seconds. Every command takes ``-c/--config FILE`` and ``--store URL``. ``verify``
exits 1 and names the first broken record of each broken chain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from b2bua.cdr.chain import verify_chains
from b2bua.cdr.export import FORMATS, day_range, export_per_tenant, export_records
from b2bua.cdr.retention import purge_expired
from b2bua.cdr.settings import CdrSettings
from b2bua.store import StoreError, open_store
from b2bua.store.sql_cdr import SqlCdrStore
from b2bua.store.sql_cdr_read import ALL_TENANTS

__all__ = ["add_cdr_commands", "parse_time"]

Body = Callable[[SqlCdrStore, argparse.Namespace, CdrSettings], Awaitable[int]]


def parse_time(text: str) -> float:
    """RFC 3339 (UTC when it has no offset) or epoch seconds, as epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _store_url(args: argparse.Namespace, config: Any) -> str:
    if getattr(args, "store", None):
        return str(args.store)
    return str(getattr(getattr(config, "store", None), "url", "sqlite:///./b2bua.db"))


def _command(body: Body) -> Callable[[argparse.Namespace, Any], int]:
    """Open the store, run ``body``, report store errors as exit status 1."""

    def handler(args: argparse.Namespace, config: Any) -> int:
        settings = CdrSettings.from_config(getattr(config, "cdr", None))

        async def run() -> int:
            store = await open_store(_store_url(args, config))
            try:
                return await body(store.cdr, args, settings)
            finally:
                await store.close()

        # Standard output carries the export; logs go to standard error.
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
        try:
            return asyncio.run(run())
        except (StoreError, OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return handler


async def _export(store: SqlCdrStore, args: argparse.Namespace, settings: CdrSettings) -> int:
    if args.day:
        since, until = day_range(args.day, args.utc_offset)
    elif args.since and args.until:
        since, until = parse_time(args.since), parse_time(args.until)
    else:
        raise ValueError("give --day, or both --since and --until")
    if args.per_tenant_dir:
        if args.tenant:
            raise ValueError("--tenant and --per-tenant-dir exclude each other")
        counts = await export_per_tenant(
            store, Path(args.per_tenant_dir), fmt=args.format, since=since, until=until
        )
        print(json.dumps({"files": counts, "records": sum(counts.values())}), file=sys.stderr)
        return 0
    tenant = args.tenant or ALL_TENANTS
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            count = await export_records(
                store, out, fmt=args.format, since=since, until=until, tenant=tenant
            )
    else:
        count = await export_records(
            store, sys.stdout, fmt=args.format, since=since, until=until, tenant=tenant
        )
    print(json.dumps({"records": count}), file=sys.stderr)
    return 0


async def _verify(store: SqlCdrStore, args: argparse.Namespace, settings: CdrSettings) -> int:
    reports = await verify_chains(store)
    for report in reports:
        print(json.dumps({
            "node": report.node, "ok": report.ok, "checked": report.checked,
            "head_seq": report.head_seq, "head_hash": report.head_hash,
            "first_broken_record": report.record_id, "problem": report.problem,
        }))  # fmt: skip
    broken = [r for r in reports if not r.ok]
    for report in broken:
        print(f"chain of node {report.node} is broken: {report.problem}", file=sys.stderr)
    return 1 if broken else 0


async def _purge(store: SqlCdrStore, args: argparse.Namespace, settings: CdrSettings) -> int:
    if args.retention_days is not None:
        settings = CdrSettings(**{**settings.__dict__, "retention_days": args.retention_days})
    purged = await purge_expired(store, settings, now=time.time(), max_batches=args.max_batches)
    print(json.dumps({"purged": purged, "retention_days": settings.retention_days}))
    return 0


async def _webhook_secret(
    store: SqlCdrStore, args: argparse.Namespace, settings: CdrSettings
) -> int:
    secret = await store.webhook_secret(args.tenant_id, rotate=args.rotate)
    print(json.dumps({"tenant_id": args.tenant_id, "webhook_secret": secret}))
    return 0


def add_cdr_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``cdr export|verify|purge|webhook-secret`` on the ``b2bua`` parser."""
    cdr = subparsers.add_parser("cdr", help="call records: export, verify, purge")
    sub = cdr.add_subparsers(dest="action", required=True)
    p = sub.add_parser("export", help="stream records as CSV or JSON lines")
    p.add_argument("--since", help="first invite time (inclusive)")
    p.add_argument("--until", help="end of the range (exclusive)")
    p.add_argument("--day", help="one calendar day YYYY-MM-DD instead of --since/--until")
    p.add_argument("--utc-offset", default="+08:00", help="time zone of --day (default +08:00)")
    p.add_argument("--format", choices=FORMATS, default="csv")
    p.add_argument("--tenant", help="only this tenant's records")
    p.add_argument("--output", help="file to write (default: standard output)")
    p.add_argument("--per-tenant-dir", metavar="DIR", help="one file per tenant in DIR")
    p.set_defaults(handler=_command(_export))
    p = sub.add_parser("verify", help="check every node's hash chain")
    p.set_defaults(handler=_command(_verify))
    p = sub.add_parser("purge", help="delete records older than the retention")
    p.add_argument("--retention-days", type=float)
    p.add_argument("--max-batches", type=int)
    p.set_defaults(handler=_command(_purge))
    p = sub.add_parser("webhook-secret", help="show (or --rotate) a tenant's signing secret")
    p.add_argument("tenant_id")
    p.add_argument("--rotate", action="store_true")
    p.set_defaults(handler=_command(_webhook_secret))
    for parser in sub.choices.values():
        parser.add_argument("-c", "--config", metavar="FILE", help="TOML file (default: embedded)")
        parser.add_argument("--store", metavar="URL", help="store URL, overrides [store] url")
