"""The shape of the services package: siblings share private modules, never each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dbops.services

PACKAGE = Path(dbops.services.__file__).parent
SERVICES = ("users", "teams", "memberships", "invitations")


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_module_imports_no_sibling_service(service: str) -> None:
    siblings = {f"dbops.services.{s}" for s in SERVICES if s != service}
    assert imported_modules(PACKAGE / f"{service}.py") & siblings == set()


@pytest.mark.parametrize("private", ["_base", "_cache", "_keys", "_ownership", "_query"])
def test_private_modules_import_no_service(private: str) -> None:
    services = {f"dbops.services.{s}" for s in SERVICES}
    assert imported_modules(PACKAGE / f"{private}.py") & services == set()


def test_bench_uses_only_public_names() -> None:
    bench = PACKAGE.parents[1] / "bench"
    for path in bench.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dbops"):
                names = [*(node.module or "").split("."), *(a.name for a in node.names)]
                assert not [n for n in names if n.startswith("_")], (path.name, node.module)
