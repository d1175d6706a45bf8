"""Shared test setup: `tests/` importable (for `tooling`), structlog reset per test,
the `store_url` fixture every store-backed suite runs over, and the rule that
SIPp and phone tests may not skip in CI."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import structlog

# Explicit rather than relying on pytest's rootdir insertion, which depends on
# the import mode and on which directories carry an __init__.py.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """structlog's configuration is process-global: a test that points it at its
    captured (then closed) stream must not break the logging of later tests."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


_REQUIRED_MARKERS = ("sipp", "phone")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With B2BUA_REQUIRE_TOOLS=1, a skipped SIPp or real-phone test is a failure.

    `tooling.require_tool` already fails when a tool is missing; this also
    catches any other way such a test could skip (a skipif, an import guard),
    so CI can never pass without having driven the server with SIPp and phones.
    """
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if (
        report.skipped
        and os.environ.get("B2BUA_REQUIRE_TOOLS") == "1"
        and any(item.get_closest_marker(name) for name in _REQUIRED_MARKERS)
    ):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid} skipped, but B2BUA_REQUIRE_TOOLS=1 forbids it"


PG_DSN = os.environ.get("B2BUA_TEST_PG_DSN")

STORE_KINDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_DSN, reason="B2BUA_TEST_PG_DSN is not set"),
        ],
    ),
]


@pytest.fixture(params=STORE_KINDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL to an empty store of each kind: SQLite always, PostgreSQL with
    B2BUA_TEST_PG_DSN, in a fresh schema dropped afterwards so several test runs
    can share one database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/b2bua.db"
        return
    assert PG_DSN is not None
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield f"{PG_DSN}{'&' if '?' in PG_DSN else '?'}schema={schema}"
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
