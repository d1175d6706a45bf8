"""Shared test setup: `tests/` importable (for `tooling`), structlog reset per test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

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
