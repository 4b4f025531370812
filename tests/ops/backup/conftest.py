"""A migrated, seeded source database for the backup tests, and helpers to look at databases."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbops.config import Settings
from dbops.db import Dsn, EmbeddedCluster, open_database
from dbops.ops.backup._common import client_env, count_rows, pg_tool
from dbops.ops.migrate import upgrade
from dbops.ops.seed import seed
from tests.fixtures.db import SUITE_PG_VERSION, make_settings


@pytest.fixture(scope="module")
def source_url(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    """A database of its own (migrated, 300 seeded users), so other tests' data never moves."""
    name = f"bk_src_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = pg_cluster.url(name)
    settings = make_settings(url)
    upgrade(url, settings, "head")
    with open_database(settings, url) as db:
        seed(db, users=300, teams=30, seed=7)
    yield url
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def bk_settings(source_url: str, tmp_path: Path) -> Settings:
    """Settings on the source database with a fresh backup directory."""
    return make_settings(source_url, backup_dir=tmp_path / "backups")


@pytest.fixture
def new_database_name(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    """A database name not in use yet; whatever ends up under it (or kept copies) is dropped."""
    name = f"bk_t_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (name + "%",)
        ).fetchall()
        for (found,) in rows:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(found))
            )


def databases_like(cluster: EmbeddedCluster, prefix: str) -> set[str]:
    with psycopg.connect(cluster.libpq_url("postgres"), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)
        ).fetchall()
    return {r[0] for r in rows}


def schema_text(url: str) -> str:
    """``pg_dump --schema-only`` of ``url`` (owners and grants left out), as text."""
    conninfo, env = client_env(Dsn.parse(url))
    out = subprocess.run(
        [
            pg_tool("pg_dump", SUITE_PG_VERSION),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            conninfo,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    # PostgreSQL 15.14+ wraps the script in \\restrict <random key>: the only line that differs.
    return "\n".join(
        line
        for line in out.stdout.splitlines()
        if not line.startswith(("\\restrict", "\\unrestrict"))
    )


def row_counts(url: str) -> dict[tuple[str, str], int]:
    with psycopg.connect(Dsn.parse(url).libpq) as conn:
        return {(t.schema, t.table): t.rows for t in count_rows(conn)}
