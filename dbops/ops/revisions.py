"""The migration history and the database's revision, read without alembic or SQLAlchemy.

Read-only commands (``dbops status``, the commands that refuse a database behind the code's
head) only need the chain of revision ids and the one in ``alembic_version``; importing
alembic (and SQLAlchemy under it) for that was about half of their start-up (bench/bench_cli.py).
The ids come from each revision file's ``revision`` and ``down_revision`` assignments, read with
:mod:`ast` (nothing is executed); ``tests/ops/test_migrate.py`` proves the chain is alembic's
own. dbops' history is one line; anything else (a branch, a merge) is left to alembic
(:mod:`dbops.ops.migrate`) and raises here.
"""

from __future__ import annotations

import ast
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg

from dbops.errors import MigrationError, translate_exception

__all__ = ["MIGRATIONS_DIR", "code_head", "database_revision", "revision_chain"]


def _find_migrations_dir() -> Path:
    """The alembic script directory: shipped in the wheel, else ``migrations/`` of a checkout.

    The wheel carries the top-level ``migrations/`` as ``dbops/_migrations`` (hatch
    ``force-include`` in pyproject.toml); a checkout or an editable install has only the source.
    """
    shipped = Path(str(resources.files("dbops").joinpath("_migrations")))
    if (shipped / "env.py").is_file():
        return shipped
    return Path(__file__).resolve().parents[2] / "migrations"


#: The alembic script directory (see :func:`_find_migrations_dir`).
MIGRATIONS_DIR = _find_migrations_dir()

#: Both for a psycopg connection (no alembic there).
VERSION_TABLE_EXISTS = "SELECT to_regclass('alembic_version') IS NOT NULL AS migrated"
READ_VERSION = "SELECT version_num FROM alembic_version"


def _assigned(path: Path) -> tuple[str, str | None]:
    """``(revision, down_revision)`` as the file assigns them (constants only)."""
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        target = value = None
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            target, value = node.target.id, node.value
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            target, value = node.targets[0].id, node.value
        if target in ("revision", "down_revision") and value is not None:
            found[target] = ast.literal_eval(value)
    revision, down = found.get("revision"), found.get("down_revision")
    if not isinstance(revision, str) or not (down is None or isinstance(down, str)):
        raise MigrationError(f"{path.name}: not a one-line revision (branch or merge?)")
    return revision, down


@cache
def revision_chain() -> tuple[str, ...]:
    """Every revision id, oldest first (what ``dbops migrate`` applies, in order)."""
    parent: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        revision, down = _assigned(path)
        parent[revision] = down
    children: dict[str | None, str] = {}
    for revision, down in parent.items():
        if down in children:
            raise MigrationError(f"the migration history branches at {down or 'base'}")
        children[down] = revision
    chain: list[str] = []
    at = children.get(None)
    while at is not None:
        chain.append(at)
        at = children.get(at)
    if len(chain) != len(parent):
        raise MigrationError("the migration history is broken: not one chain from base")
    if not chain:
        raise MigrationError("the migration history is empty")
    return tuple(chain)


def code_head() -> str:
    """The newest revision of the code (``dbops.ops.migrate.head_revision()``, without alembic)."""
    return revision_chain()[-1]


def database_revision(conn: psycopg.Connection[Any]) -> str | None:
    """The revision the database behind ``conn`` is at; ``None`` when it was never migrated."""
    try:
        with conn.cursor() as cur:
            migrated = cur.execute(VERSION_TABLE_EXISTS).fetchone()
            if not migrated or not migrated[0]:
                return None
            row = cur.execute(READ_VERSION).fetchone()
    except psycopg.Error as exc:
        translated = translate_exception(exc)
        raise (translated or MigrationError(f"cannot read the revision: {exc}")) from exc
    return None if row is None else str(row[0])
