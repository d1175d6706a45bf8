"""One store suite over both dialects: SQLite always, PostgreSQL with B2BUA_TEST_PG_DSN.

Each PostgreSQL test gets a fresh schema (dropped afterwards), so several test runs
can share one database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

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
    """A URL to an empty store of each kind."""
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
