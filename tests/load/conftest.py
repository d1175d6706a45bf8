"""The SIPp load kit (sipp_scenarios/load.py) for the load tests, imported by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tooling import require_tool

KIT_PATH = Path(__file__).resolve().parents[2] / "sipp_scenarios" / "load.py"

# Short timers: non-INVITE server transactions linger 64*T1 = 6.4 s (Timer J),
# which bounds how long the state-back-to-zero checks wait.
FAST_TIMERS = """
[timers]
t1 = 0.1
t2 = 0.4
t4 = 0.5
"""


def load_script(name: str, path: Path) -> ModuleType:
    """A script imported by path (sipp_scenarios/ and benchmarks/ are not packages), once."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def kit() -> ModuleType:
    """sipp_scenarios/load.py; skips (or fails with B2BUA_REQUIRE_TOOLS=1) without SIPp."""
    require_tool("sipp")
    return load_script("b2bua_load_kit", KIT_PATH)
