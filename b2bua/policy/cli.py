"""Operator commands for the block lists, against the configured store.

    b2bua blocklist add NUMBER [--tenant TENANT_ID] [--reason TEXT] [--ttl-s S]
    b2bua blocklist remove NUMBER [--tenant TENANT_ID]
    b2bua blocklist list [--tenant TENANT_ID | --global] [--number NUMBER]

Without ``--tenant`` a command acts on the global list (``list`` then shows every
list unless ``--global``). Running servers pick a change up within a second through
the store's change sequence. Results are JSON lines on stdout; errors go to stderr
with exit status 1. Each command accepts ``-c/--config FILE`` and ``--store URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from b2bua.bindings.errors import BindingError
from b2bua.numbering import NumberingRules
from b2bua.policy.abuse import AbusePolicy
from b2bua.policy.errors import BlockNotFound, InvalidBlock
from b2bua.policy.service import PolicyService
from b2bua.store import StoreError, open_store

__all__ = ["add_policy_commands"]

ACTOR = "operator-cli"
Handler = Callable[[argparse.Namespace, Any], int]
Body = Callable[[PolicyService, argparse.Namespace], Awaitable[None]]


def _store_url(args: argparse.Namespace, config: Any) -> str:
    if getattr(args, "store", None):
        return str(args.store)
    return str(getattr(getattr(config, "store", None), "url", "sqlite:///./b2bua.db"))


def _print(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False, default=str))


def _command(body: Body) -> Handler:
    """Wrap an async command body: open the store and a policy service, report errors."""

    def handler(args: argparse.Namespace, config: Any) -> int:
        async def run() -> None:
            store = await open_store(_store_url(args, config))
            try:
                rules = NumberingRules.from_config(getattr(config, "numbering", None))
                service = PolicyService(store, AbusePolicy(rules=rules), node_id=ACTOR)
                await body(service, args)
            finally:
                await store.close()

        # stdout carries the JSON results; logs go to stderr.
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
        try:
            asyncio.run(run())
        except (InvalidBlock, BlockNotFound, BindingError, StoreError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    return handler


async def _add(service: PolicyService, args: argparse.Namespace) -> None:
    entry = await service.block(
        args.number, tenant_id=args.tenant, reason=args.reason, ttl_s=args.ttl_s, actor=ACTOR
    )
    _print(entry.to_dict())


async def _remove(service: PolicyService, args: argparse.Namespace) -> None:
    _print((await service.unblock(args.number, tenant_id=args.tenant, actor=ACTOR)).to_dict())


async def _list(service: PolicyService, args: argparse.Namespace) -> None:
    entries = await service.list_blocks(
        tenant_id=args.tenant, global_only=args.global_only, number=args.number
    )
    for entry in entries:
        _print(entry.to_dict())


def add_policy_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``blocklist add|remove|list`` on the ``b2bua`` parser."""
    blocklist = subparsers.add_parser("blocklist", help="block lists of real numbers")
    actions = blocklist.add_subparsers(dest="action", required=True)
    p = actions.add_parser("add", help="block a number (global list unless --tenant)")
    p.add_argument("number")
    p.add_argument("--tenant", metavar="TENANT_ID", help="the tenant's own list")
    p.add_argument("--reason", default="", help="free text kept with the entry")
    p.add_argument("--ttl-s", type=int, help="seconds until the block lapses (default: never)")
    p.set_defaults(handler=_command(_add))
    p = actions.add_parser("remove", help="unblock a number")
    p.add_argument("number")
    p.add_argument("--tenant", metavar="TENANT_ID", help="the tenant's own list")
    p.set_defaults(handler=_command(_remove))
    p = actions.add_parser("list", help="list block entries (all lists by default)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--tenant", metavar="TENANT_ID", help="only this tenant's list")
    which.add_argument("--global", dest="global_only", action="store_true", help="only global")
    p.add_argument("--number", help="only entries for this number")
    p.set_defaults(handler=_command(_list))
    for parser in actions.choices.values():
        parser.add_argument("-c", "--config", metavar="FILE", help="TOML file (default: embedded)")
        parser.add_argument("--store", metavar="URL", help="store URL, overrides [store] url")
