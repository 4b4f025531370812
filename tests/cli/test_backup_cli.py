"""`dbops backup ...` against the private test cluster: exit codes, one-line errors, no password."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner, Result

from dbops.cli import app
from dbops.db import EmbeddedCluster, open_database
from dbops.ops.migrate import upgrade
from dbops.ops.seed import seed
from tests.fixtures.db import make_settings

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "240"})


def assert_one_line_error(result: Result, exit_code: int) -> str:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(scope="module")
def source_db(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    """A migrated, seeded database of its own; its name."""
    name = f"bk_cli_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = pg_cluster.url(name)
    settings = make_settings(url)
    upgrade(url, settings, "head")
    with open_database(settings, url) as db:
        seed(db, users=50, teams=5, seed=3)
    yield name
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as conn:
        for (found,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (name + "%",)
        ).fetchall():
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(found)))


@pytest.fixture
def env(
    source_db: str, pg_cluster: EmbeddedCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """DATABASE_URL over TCP with the real password, backups in a temp dir; the password."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", pg_cluster.tcp_url(source_db))
    monkeypatch.setenv("DBOPS_BACKUP_DIR", str(tmp_path / "backups"))
    password = pg_cluster.password
    assert password
    return password


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, str]]]:
    """Every program started (argv, environment); the real programs run."""
    calls: list[tuple[list[str], dict[str, str]]] = []
    real = subprocess.Popen

    def recording(argv: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        calls.append((list(argv), dict(kwargs.get("env") or {})))
        return real(argv, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording)
    return calls


def test_create_list_show_verify_restore_prune(
    env: str,
    source_db: str,
    pg_cluster: EmbeddedCluster,
    spawned: list[tuple[list[str], dict[str, str]]],
) -> None:
    password = env
    created = invoke("backup", "create", "--json")
    assert created.exit_code == 0, created.output
    manifest = json.loads(created.stdout)
    backup_id = manifest["id"]
    assert manifest["database"] == source_db

    listed = invoke("backup", "list")
    assert listed.exit_code == 0, listed.output
    assert backup_id in listed.stdout
    assert "never verified" in listed.stdout
    shown = invoke("backup", "show", backup_id)
    assert shown.exit_code == 0, shown.output
    assert "public.users" in shown.stdout

    scratch = pg_cluster.tcp_url("postgres")
    verified = invoke("backup", "verify", "--scratch-url", scratch, "--no-progress")
    assert verified.exit_code == 0, verified.output
    assert "hot reads ok" in verified.stdout
    narrow = runner.invoke(app, ["backup", "list"], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    listed_text = narrow.stdout
    assert "passed" in listed_text
    # A standard terminal: 80 columns, nothing cut (rich marks a cut cell with "…"); --wide
    # (or a terminal of 120 columns, as invoke()'s) has every column.
    assert max(len(line) for line in listed_text.splitlines()) <= 80, listed_text
    assert "…" not in listed_text
    assert backup_id in listed_text
    wide = runner.invoke(app, ["backup", "list", "--wide"], env={"COLUMNS": "80"}).stdout
    assert source_db in wide
    assert source_db in invoke("backup", "list").stdout
    assert "custom" in wide

    target = pg_cluster.tcp_url(f"{source_db}_copy")
    restored = invoke("backup", "restore", backup_id, "--target", target)
    assert restored.exit_code == 0, restored.output
    assert "***" in restored.stdout

    dry = invoke("backup", "prune", "--keep-last", "0", "--keep-daily", "0", "--keep-weekly", "0")
    assert dry.exit_code == 0, dry.output
    assert "newest verified" in dry.stdout

    for result in (created, listed, shown, verified, restored, dry):
        assert password not in result.output
    # pg_dump and pg_restore ran, each with the password in PGPASSWORD and never in argv.
    connecting = [(a, e) for a, e in spawned if any(x.startswith("--dbname=") for x in a)]
    assert {Path(argv[0]).name for argv, _ in connecting} == {"pg_dump", "pg_restore"}
    for argv, child_env in connecting:
        assert not any(password in arg for arg in argv), argv
        assert child_env.get("PGPASSWORD") == password


def test_corrupted_backup_fails_verify_with_exit_4_naming_the_file(
    env: str, pg_cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    created = invoke("backup", "create", "--json")
    assert created.exit_code == 0, created.output
    backup_id = json.loads(created.stdout)["id"]
    dump = tmp_path / "backups" / backup_id / "dump.pgdump"
    data = dump.read_bytes()
    dump.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))

    result = invoke("backup", "verify", backup_id, "--scratch-url", pg_cluster.tcp_url())
    line = assert_one_line_error(result, 4)
    assert "dump.pgdump" in line
    assert env not in result.output
    shown = json.loads(invoke("backup", "show", backup_id, "--json").stdout)
    assert shown["drills"][-1]["ok"] is False


def test_restore_refuses_a_target_with_data(
    env: str, source_db: str, pg_cluster: EmbeddedCluster
) -> None:
    created = invoke("backup", "create", "--json")
    backup_id = json.loads(created.stdout)["id"]
    result = invoke("backup", "restore", backup_id, "--target", pg_cluster.tcp_url(source_db))
    line = assert_one_line_error(result, 1)
    assert "--force" in line
    assert env not in result.output


def test_errors_are_one_line_with_their_exit_codes(env: str) -> None:
    line = assert_one_line_error(invoke("backup", "show", "nope"), 1)
    assert "no backup 'nope'" in line
    assert_one_line_error(invoke("backup", "verify"), 1)  # no backups yet
    bad_format = invoke("backup", "create", "--format", "zip")
    assert bad_format.exit_code == 2
    bad_target = invoke("backup", "restore", "x", "--target", "mysql://u:pw@h/db")
    assert "pw" not in assert_one_line_error(bad_target, 2)


def test_unreachable_database_exits_3_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2-secret@127.0.0.1:1/x")
    monkeypatch.setenv("DBOPS_BACKUP_DIR", str(tmp_path / "b"))
    result = invoke("backup", "create")
    assert_one_line_error(result, 3)
    assert "hunter2" not in result.output
    assert not any((tmp_path / "b").iterdir())
