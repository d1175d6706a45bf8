"""Real processes: two nodes on one store follow each other; SIGKILL loses nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

WORKER = Path(__file__).with_name("node_worker.py")
A, B, C = "13800000001", "13800000002", "13800000003"


class Node:
    """A node_worker process spoken to in JSON lines."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )  # fmt: skip
        assert self.read() == {"ready": True}

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "node worker died"
        return json.loads(line)

    def __call__(self, op: str, **fields: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        reply = self.read()
        assert reply.pop("ok"), reply
        return reply

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no shutdown code runs
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def nodes(store_url: str) -> Iterator[Callable[[], Node]]:
    started: list[Node] = []

    def start() -> Node:
        node = Node(store_url)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


def spec(**fields: Any) -> dict[str, Any]:
    return {"mode": "AXB", "ttl_s": 600, "order_id": "o-1", **fields}


def within_one_second(check: Callable[[], bool]) -> float:
    """Seconds until ``check`` held; fails after 1 s."""
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        if check():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError("not seen on the other node within 1 s")


def test_two_nodes_see_each_others_changes(nodes: Callable[[], Node]) -> None:
    one, two = nodes(), nodes()
    tenant_id = one("tenant", name="acme")["tenant_id"]
    one("import", tenant_id=tenant_id, numbers=[f"70000000000000{i}" for i in range(1, 4)])
    made = one("create", tenant_id=tenant_id, spec=spec(a=A, b=B))
    x = made["x"]
    within_one_second(lambda: two("resolve", caller=A, x=x).get("route") == [B])
    # Changed on two: seen on one.
    two("update", id=made["id"], changes={"b": C})
    within_one_second(lambda: one("resolve", caller=A, x=x).get("route") == [C])
    # Created on two (its pool view came from one's import): seen on one.
    other = two("create", tenant_id=tenant_id, spec=spec(a="13900000001", b="13900000002"))
    within_one_second(
        lambda: one("resolve", caller="13900000001", x=other["x"]).get("route") == ["13900000002"]
    )
    # Released on one: no longer routes on two.
    one("release", id=made["id"])
    within_one_second(lambda: "reject" in two("resolve", caller=A, x=x))
    two("suspend", tenant_id=tenant_id, suspended=True)
    within_one_second(
        lambda: (
            one("resolve", caller="13900000001", x=other["x"]).get("reject") == "tenant_suspended"
        )
    )


def test_acknowledged_bindings_survive_sigkill(nodes: Callable[[], Node]) -> None:
    node = nodes()
    tenant_id = node("tenant", name="acme")["tenant_id"]
    node("import", tenant_id=tenant_id, numbers=[f"7000000000001{i:02d}" for i in range(10)])
    made = [node("create", tenant_id=tenant_id, spec=spec(a=f"1370000{i:04d}", b=f"1390000{i:04d}"))
            for i in range(30)]  # fmt: skip
    node.kill()
    restarted = nodes()
    for i, binding in enumerate(made):
        answer = restarted("resolve", caller=f"1370000{i:04d}", x=binding["x"])
        assert answer.get("route") == [f"1390000{i:04d}"], answer
