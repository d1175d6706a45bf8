"""The sans-IO rule: b2bua/sip and b2bua/calls import no I/O, clock or storage module.

Walks every import statement of those packages, so a forbidden import fails
here even when it sits in a branch the other tests never execute.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "b2bua"
FORBIDDEN = {
    "asyncio",
    "socket",
    "selectors",
    "time",
    "random",
    "secrets",
    "threading",
    "sqlite3",
    "asyncpg",
    "prometheus_client",
    "uvloop",
    "logging",
    "structlog",
}
# What each sans-IO package may import from the project itself (inwards only).
ALLOWED_PROJECT = {
    "sip": {"b2bua.sip"},
    "calls": {"b2bua.sip", "b2bua.calls", "b2bua.bindings", "b2bua.numbering"},
}


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED_PROJECT))
def test_sans_io_packages_import_no_io(package: str) -> None:
    files = sorted((PACKAGE / package).rglob("*.py"))
    assert files, f"no modules under b2bua/{package}"
    problems = []
    for path in files:
        for name in _imports(path):
            root = name.split(".")[0]
            if root in FORBIDDEN:
                problems.append(f"{path.name} imports {name}")
            if root == "b2bua" and not any(
                name == allowed or name.startswith(allowed + ".")
                for allowed in ALLOWED_PROJECT[package]
            ):
                problems.append(f"{path.name} imports {name} (dependencies point inwards)")
    assert not problems, problems
