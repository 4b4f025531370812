"""``dbops.ops`` reports through callbacks and logging: it imports no terminal library."""

from __future__ import annotations

import ast
from pathlib import Path

import dbops.ops

DRAWING = {"rich", "typer", "click", "tqdm"}


def test_ops_imports_no_terminal_library() -> None:
    root = Path(dbops.ops.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in DRAWING]
    assert found == []
