"""The operator commands, through the real `b2bua` argument parser when it exists."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from b2bua.operator_cli import add_operator_commands


def run(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="b2bua")
    add_operator_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([*argv, "--store", url])
    assert args.handler(args, None) == 0, capsys.readouterr().err
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_operator_workflow(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ops.db"
    [tenant] = run(capsys, url, "tenants", "create", "acme")
    assert tenant["api_key"].startswith("tk_")
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("+86700000000000001\n700000000000002\n")
    [imported] = run(capsys, url, "numbers", "import", tenant["id"], "--file", str(numbers))
    assert imported["added"] == 2
    listed = run(capsys, url, "numbers", "list", "--tenant", tenant["id"])
    assert [n["number"] for n in listed] == ["700000000000001", "700000000000002"]
    [binding] = run(capsys, url, "bindings", "create", tenant["id"], "--a", "13800000001",
                    "--b", "13800000002", "--order-id", "o-1", "--ttl-s", "600")  # fmt: skip
    assert binding["state"] == "active"
    [shown] = run(capsys, url, "bindings", "show", binding["id"])
    assert shown["x"] == binding["x"]
    [released] = run(capsys, url, "bindings", "release", binding["id"])
    assert released["state"] == "released"
    [suspended] = run(capsys, url, "tenants", "suspend", tenant["id"])
    assert suspended["suspended"] is True
    [resumed] = run(capsys, url, "tenants", "resume", tenant["id"])
    assert resumed["suspended"] is False
    [retired] = run(capsys, url, "numbers", "retire", tenant["id"], "700000000000002")
    assert retired["retired"] == 1


def test_errors_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="b2bua")
    add_operator_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bindings", "show", "nope", "--store", f"sqlite:///{tmp_path}/x.db"])
    assert args.handler(args, None) == 1
    assert "not found" in capsys.readouterr().err


def test_through_the_b2bua_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cli = pytest.importorskip("b2bua.cli")
    code = cli.main(["tenants", "create", "acme", "--store", f"sqlite:///{tmp_path}/c.db"])
    assert code == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["name"] == "acme"
