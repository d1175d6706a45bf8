"""External tools the integration tests drive (SIPp, pjsua2)."""

from __future__ import annotations

import os
import shutil

import pytest


def tools_required() -> bool:
    """Whether a missing tool must fail the test instead of skipping it (CI)."""
    return os.environ.get("B2BUA_REQUIRE_TOOLS") == "1"


def require_tool(name: str) -> str:
    """Return the path of executable `name`; skip the test if missing, or fail
    when B2BUA_REQUIRE_TOOLS=1 so CI cannot pass by silently skipping."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if tools_required():
            pytest.fail(f"{message} and B2BUA_REQUIRE_TOOLS=1", pytrace=False)
        pytest.skip(message)
    return path
