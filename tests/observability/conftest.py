"""One real server with a few real calls through it, shared by the observability tests.

`observed` provisions a binding, starts `b2bua serve` with a trunk to a SIPp
UAS, places three answered calls (SIPp UAC) and one call to an unbound middle
number (refused), then scrapes `/metrics`. Tests read the scrape and the
server's JSON log; the server stops (and must exit 0) at the end of the session.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from integration.server import Server, free_sip_port, start_process
from tooling import require_tool

from observability.calls import http_get, provision, run_uac, start_uas, trunk_to

ANSWERED_CALLS = 3


@dataclass
class Observed:
    """The server after the calls, the binding used and the `/metrics` text."""

    server: Server
    binding: dict[str, Any]
    metrics: str
    uac_exit: int
    rejected_exit: int


@pytest.fixture(scope="session")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """Start, call, scrape (see module docstring)."""
    sipp = require_tool("sipp")
    directory = tmp_path_factory.mktemp("observed")
    binding = provision(f"sqlite:///{directory / 'b2bua.db'}")
    uas_port = free_sip_port()
    uas = start_uas(sipp, uas_port, directory)
    server = start_process(directory, trunks=trunk_to(uas_port))
    try:
        uac_exit = run_uac(sipp, server.sip_port, directory, calls=ANSWERED_CALLS)
        rejected_exit = run_uac(
            sipp, server.sip_port, directory, calls=1, dialled="700100000000999"
        )
        time.sleep(1.2)  # at least two loop-lag samples and a readiness ping
        status, text = http_get(server.http_port, "/metrics")
        assert status == 200, text
        yield Observed(server, binding, text, uac_exit, rejected_exit)
    finally:
        uas.kill()
        uas.wait(10)
        code = server.stop()
    assert code == 0, f"b2bua exited with {code}:\n{server.log_path.read_text()[-3000:]}"
