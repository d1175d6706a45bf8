"""Fixtures that run the real `b2bua serve` process on free loopback ports.

`b2bua_server` is the default node (trusting 127.0.0.1), shared per module;
`start_b2bua` starts nodes with extra TOML settings. Each waits until the
process logs that it listens, and on teardown sends SIGTERM and asserts a clean
exit (code 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from integration.server import Server, start_process


@pytest.fixture
def start_b2bua(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Factory: `start(sip=..., trunks=..., sections=...)` (see write_config).

    Every server started is stopped afterwards and must exit 0.
    """
    servers: list[Server] = []

    def start(**settings: str) -> Server:
        directory = tmp_path / f"node{len(servers)}"
        directory.mkdir()
        server = start_process(directory, **settings)
        servers.append(server)
        return server

    yield start
    for server in servers:
        already = server.stopped
        code = server.stop()
        if not already:
            assert code == 0, f"b2bua exited with {code}:\n{server.log_path.read_text()}"


@pytest.fixture(scope="module")
def b2bua_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One default server shared by a module's tests (trusts 127.0.0.1)."""
    server = start_process(tmp_path_factory.mktemp("b2bua"))
    yield server
    code = server.stop()
    assert code == 0, f"b2bua exited with {code}:\n{server.log_path.read_text()}"
