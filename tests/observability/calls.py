"""Real calls through a real `b2bua serve` for the observability tests.

A tenant, a middle number X and an AXB binding A <-> B are made with the operator
commands (in process, through the real argument parser) against the SQLite file
the server then opens. SIPp plays B behind the outbound trunk and A calling X.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from integration.server import (
    STARTUP_TIMEOUT_S,
    Server,
    b2bua_command,
    free_sip_port,
    free_tcp_port,
    write_config,
)

from b2bua.operator_cli import add_operator_commands

HERE = Path(__file__).resolve().parent
UAC = HERE / "uac.xml"
UAS = HERE / "uas.xml"
X, A, B = "700100000000001", "13800000001", "13900000002"
UNBOUND_X = "700100000000999"


def operator(store_url: str, *argv: str) -> dict[str, Any]:
    """Run one operator command against `store_url`; its last JSON line."""
    parser = argparse.ArgumentParser(prog="b2bua")
    add_operator_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([*argv, "--store", store_url])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = args.handler(args, None)
    assert code == 0, err.getvalue()
    return dict(json.loads(out.getvalue().splitlines()[-1]))


def provision(store_url: str) -> dict[str, Any]:
    """Tenant, X in its pool, and an AXB binding A <-> B on X; returns the binding."""
    tenant = operator(store_url, "tenants", "create", "observability")
    tenant_id = str(tenant["id"])
    operator(store_url, "numbers", "import", tenant_id, X)
    binding = operator(
        store_url,
        "bindings",
        "create",
        tenant_id,
        "--mode",
        "AXB",
        "--a",
        A,
        "--b",
        B,
        "--x",
        X,
        "--ttl-s",
        "3600",
        "--order-id",
        "order-obs",
    )
    return {**binding, "tenant_id": tenant_id}


def trunk_to(port: int) -> str:
    """A [[trunks]] table sending outbound calls to a UAS on `port`."""
    return f"""
[[trunks]]
name = "carrier-b"
address = "udp:127.0.0.1:{port}"
inbound_from = ["127.0.0.1/32"]
"""


def start_uas(sipp: str, port: int, cwd: Path) -> subprocess.Popen[bytes]:
    """SIPp as B: rings, answers, waits for BYE; runs until killed."""
    return subprocess.Popen(
        [sipp, "-sf", str(UAS), "-i", "127.0.0.1", "-p", str(port), "-nostdin"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
    )


def run_uac(sipp: str, sip_port: int, cwd: Path, *, calls: int, dialled: str = X) -> int:
    """SIPp as A: `calls` calls to `dialled`, 200 ms each; its exit code (0: all succeeded)."""
    result = subprocess.run(
        [
            sipp,
            "-sf",
            str(UAC),
            "-s",
            dialled,
            "-set",
            "caller",
            A,
            "-d",
            "200",
            "-r",
            "20",
            "-m",
            str(calls),
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-nostdin",
            "-timeout",
            "15",
            "-timeout_error",
            f"127.0.0.1:{sip_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        timeout=30,
    )
    return result.returncode


def http_get(port: int, path: str) -> tuple[int, str]:
    """GET http://127.0.0.1:port/path; (status, body), error statuses included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def start_with_store(directory: Path, store_url: str) -> Server:
    """`b2bua serve` like `start_process`, but on the store at `store_url`."""
    sip_port, http_port = free_sip_port(), free_tcp_port()
    config_path = write_config(directory, sip_port, http_port)
    text = re.sub(r'(?m)^url = "sqlite:[^"]*"$', f'url = "{store_url}"', config_path.read_text())
    config_path.write_text(text)
    log_path = directory / "server.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [*b2bua_command(), "serve", "-c", str(config_path)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env={**os.environ, "B2BUA_OPERATOR_KEY": "test-operator-key"},
        )
    server = Server(process, sip_port, http_port, log_path, config_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(event.get("event") == "started" for event in server.log_events()):
            return server
        if process.poll() is not None:
            break
        time.sleep(0.05)
    server.stop()
    raise AssertionError(f"b2bua did not start:\n{log_path.read_text()[-3000:]}")
