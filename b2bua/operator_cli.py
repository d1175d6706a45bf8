"""Operator commands against the configured store (DESIGN section 6).

    b2bua numbers import TENANT_ID [NUMBER...] [--file FILE]
    b2bua numbers list [--tenant TENANT_ID]
    b2bua numbers retire TENANT_ID NUMBER...
    b2bua tenants create NAME [--webhook-url URL]
    b2bua tenants suspend|resume TENANT_ID
    b2bua bindings create TENANT_ID --mode AXB --a N --b N --ttl-s S --order-id O ...
    b2bua bindings show BINDING_ID
    b2bua bindings release BINDING_ID

Each command accepts ``-c/--config FILE`` (read by ``b2bua.cli``) and ``--store URL``
to override ``[store] url``. Results are printed as JSON; errors go to stderr with
exit status 1.
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
from b2bua.bindings.model import BindingSpec, PoolNumber, Tenant
from b2bua.bindings.settings import BindingSettings
from b2bua.numbering import NumberingRules
from b2bua.store import Store, StoreError, open_store

__all__ = ["add_operator_commands", "rules_from_config", "settings_from_config"]

Handler = Callable[[argparse.Namespace, Any], int]


def rules_from_config(numbering: Any) -> NumberingRules:
    """:class:`NumberingRules` from the ``[numbering]`` section (defaults when absent)."""
    return NumberingRules.from_config(numbering)


def settings_from_config(bindings: Any) -> BindingSettings:
    """:class:`BindingSettings` from the ``[bindings]`` section (defaults when absent)."""
    return BindingSettings.from_config(bindings)


def _store_url(args: argparse.Namespace, config: Any) -> str:
    if getattr(args, "store", None):
        return str(args.store)
    store = getattr(config, "store", None)
    return str(getattr(store, "url", "sqlite:///./b2bua.db"))


def _print(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False, default=str))


def _tenant_dict(tenant: Tenant) -> dict[str, object]:
    return {"id": tenant.id, "name": tenant.name, "suspended": tenant.suspended,
            "webhook_url": tenant.webhook_url}  # fmt: skip


def _number_dict(number: PoolNumber) -> dict[str, object]:
    return {"number": number.number, "tenant_id": number.tenant_id, "retired": number.retired}


def _command(
    body: Callable[[Any, argparse.Namespace], Awaitable[None]], *, load_index: bool = False
) -> Handler:
    """Wrap an async command body: open the store and a service, report errors."""

    def handler(args: argparse.Namespace, config: Any) -> int:
        async def run() -> None:
            from b2bua.bindings.service import BindingService

            store: Store = await open_store(_store_url(args, config))
            try:
                service = BindingService(
                    store,
                    rules_from_config(getattr(config, "numbering", None)),
                    settings_from_config(getattr(config, "bindings", None)),
                    node_id="operator-cli",
                )
                if load_index:
                    await service.start(background=False)
                await body(service, args)
            finally:
                await store.close()

        # stdout carries the JSON results; logs go to stderr.
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
        try:
            asyncio.run(run())
        except (BindingError, StoreError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    return handler


async def _numbers_import(service: Any, args: argparse.Namespace) -> None:
    numbers = list(args.numbers)
    if args.file:
        with open(args.file, encoding="utf-8") as lines:
            numbers += [line.strip() for line in lines if line.strip()]
    added = await service.import_numbers(args.tenant_id, numbers, actor="operator-cli")
    _print({"tenant_id": args.tenant_id, "added": added, "given": len(numbers)})


async def _numbers_list(service: Any, args: argparse.Namespace) -> None:
    for number in await service.list_numbers(args.tenant):
        _print(_number_dict(number))


async def _numbers_retire(service: Any, args: argparse.Namespace) -> None:
    retired = await service.retire_numbers(args.tenant_id, args.numbers, actor="operator-cli")
    _print({"tenant_id": args.tenant_id, "retired": retired})


async def _tenants_create(service: Any, args: argparse.Namespace) -> None:
    tenant, api_key = await service.create_tenant(
        args.name, webhook_url=args.webhook_url, actor="operator-cli"
    )
    _print({**_tenant_dict(tenant), "api_key": api_key})


def _tenants_suspend(suspended: bool) -> Callable[[Any, argparse.Namespace], Awaitable[None]]:
    async def body(service: Any, args: argparse.Namespace) -> None:
        tenant = await service.set_tenant_suspended(args.tenant_id, suspended, actor="operator-cli")
        _print(_tenant_dict(tenant))

    return body


async def _bindings_create(service: Any, args: argparse.Namespace) -> None:
    spec = BindingSpec(
        mode=args.mode, ttl_s=args.ttl_s, a=args.a, b=args.b, group=tuple(args.group or ()),
        x=args.x, y=args.y, order_id=args.order_id, direction=args.direction,
        max_call_s=args.max_call_s, label=args.label, record=args.record, consent=args.consent,
    )  # fmt: skip
    binding = await service.create_binding(args.tenant_id, spec, actor="operator-cli")
    _print(binding.to_dict())


async def _bindings_show(service: Any, args: argparse.Namespace) -> None:
    _print((await service.get_binding(args.binding_id)).to_dict())


async def _bindings_release(service: Any, args: argparse.Namespace) -> None:
    _print((await service.release_binding(args.binding_id, actor="operator-cli")).to_dict())


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", help="TOML file (default: embedded)")
    parser.add_argument("--store", metavar="URL", help="store URL, overrides [store] url")


def add_operator_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``numbers``, ``tenants`` and ``bindings`` on the ``b2bua`` parser."""
    numbers = subparsers.add_parser("numbers", help="middle-number pools")
    numbers_sub = numbers.add_subparsers(dest="action", required=True)
    p = numbers_sub.add_parser("import", help="add numbers to a tenant's pool")
    p.add_argument("tenant_id")
    p.add_argument("numbers", nargs="*")
    p.add_argument("--file", help="one number per line")
    p.set_defaults(handler=_command(_numbers_import))
    p = numbers_sub.add_parser("list", help="list pool numbers")
    p.add_argument("--tenant")
    p.set_defaults(handler=_command(_numbers_list))
    p = numbers_sub.add_parser("retire", help="retire numbers (no new bindings)")
    p.add_argument("tenant_id")
    p.add_argument("numbers", nargs="+")
    p.set_defaults(handler=_command(_numbers_retire))

    tenants = subparsers.add_parser("tenants", help="tenants")
    tenants_sub = tenants.add_subparsers(dest="action", required=True)
    p = tenants_sub.add_parser("create", help="create a tenant and print its API key")
    p.add_argument("name")
    p.add_argument("--webhook-url")
    p.set_defaults(handler=_command(_tenants_create))
    for action, suspended in (("suspend", True), ("resume", False)):
        p = tenants_sub.add_parser(action, help=f"{action} a tenant")
        p.add_argument("tenant_id")
        p.set_defaults(handler=_command(_tenants_suspend(suspended)))

    bindings = subparsers.add_parser("bindings", help="bindings")
    bindings_sub = bindings.add_subparsers(dest="action", required=True)
    p = bindings_sub.add_parser("create", help="create a binding")
    p.add_argument("tenant_id")
    p.add_argument("--mode", default="AXB", choices=["AXB", "AXYB", "GXB", "AXN"])
    p.add_argument("--a")
    p.add_argument("--b")
    p.add_argument("--group", nargs="+", help="GXB members in hunt order")
    p.add_argument("--x")
    p.add_argument("--y")
    p.add_argument("--ttl-s", type=int, default=3600)
    p.add_argument("--order-id")
    p.add_argument("--direction", default="both", choices=["both", "a_to_b", "b_to_a"])
    p.add_argument("--max-call-s", type=int)
    p.add_argument("--label")
    p.add_argument("--record", action="store_true")
    p.add_argument("--consent", action="store_true")
    p.set_defaults(handler=_command(_bindings_create, load_index=True))
    p = bindings_sub.add_parser("show", help="show a binding")
    p.add_argument("binding_id")
    p.set_defaults(handler=_command(_bindings_show))
    p = bindings_sub.add_parser("release", help="release a binding")
    p.add_argument("binding_id")
    p.set_defaults(handler=_command(_bindings_release))
    for parser in (*numbers_sub.choices.values(), *tenants_sub.choices.values(),
                   *bindings_sub.choices.values()):  # fmt: skip
        _common(parser)
