"""``b2bua blocklist add|remove|list`` against a store URL."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from b2bua.bindings import BindingService
from b2bua.policy.cli import add_policy_commands
from b2bua.store import open_store

from .conftest import A, B


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="b2bua")
    add_policy_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.handler(args, None)
    return result


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def make_tenant(url: str) -> str:
    async def create() -> str:
        store = await open_store(url)
        try:
            tenant, _ = await BindingService(store).create_tenant("acme")
            return tenant.id
        finally:
            await store.close()

    return asyncio.run(create())


def test_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    tenant_id = make_tenant(url)
    assert run(["blocklist", "add", "+86" + A, "--reason", "spam", "--store", url]) == 0
    assert run(["blocklist", "add", B, "--tenant", tenant_id, "--ttl-s", "60", "--store", url]) == 0
    added = lines(capsys.readouterr().out)
    assert [(e["number"], e["tenant_id"]) for e in added] == [(A, None), (B, tenant_id)]
    assert run(["blocklist", "list", "--store", url]) == 0
    assert [e["number"] for e in lines(capsys.readouterr().out)] == [A, B]
    assert run(["blocklist", "list", "--global", "--store", url]) == 0
    assert [e["number"] for e in lines(capsys.readouterr().out)] == [A]
    assert run(["blocklist", "remove", A, "--store", url]) == 0
    assert lines(capsys.readouterr().out)[0]["reason"] == "spam"
    assert run(["blocklist", "list", "--tenant", tenant_id, "--store", url]) == 0
    assert [e["number"] for e in lines(capsys.readouterr().out)] == [B]


def test_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    assert run(["blocklist", "add", "12345", "--store", url]) == 1
    assert "number" in capsys.readouterr().err
    assert run(["blocklist", "remove", A, "--store", url]) == 1
    assert "not on that block list" in capsys.readouterr().err
    assert run(["blocklist", "add", A, "--tenant", "t_nobody", "--store", url]) == 1
