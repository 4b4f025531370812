"""`dbops backup pitr-*` end to end on a private embedded cluster (DBOPS_HOME in a tmp dir)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner, Result

from dbops.cli import app
from dbops.db import EmbeddedCluster

runner = CliRunner()


def invoke(*args: str, home: Path | None = None, url: str | None = None) -> Result:
    env = {"COLUMNS": "240"}
    if home is not None:
        env["DBOPS_HOME"] = str(home)
    if url is not None:
        env["DATABASE_URL"] = url
    return runner.invoke(app, list(args), env=env)


def one_line_error(result: Result, exit_code: int) -> str:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def homes(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The live cluster's home and the copy's; both clusters stopped and deleted afterwards."""
    live, copy = tmp_path / "live", tmp_path / "copy"
    yield live, copy
    for home in (copy, live):
        EmbeddedCluster(home).destroy()


@pytest.mark.slow
def test_setup_backup_info_restore_through_the_cli(homes: tuple[Path, Path]) -> None:
    live, copy = homes
    first = invoke("backup", "pitr-setup", home=live)
    assert first.exit_code == 0, first.output
    assert "restarted: yes" in first.stdout
    again = invoke("backup", "pitr-setup", home=live)
    assert again.exit_code == 0, again.output
    assert "settings changed: none; restarted: no; stanza already there" in again.stdout

    cluster = EmbeddedCluster(live)
    with psycopg.connect(cluster.libpq_url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (id int)")
    base = invoke("backup", "pitr-base", home=live)
    assert base.exit_code == 0, base.output
    label = re.search(r"base backup (\S+) \(full\)", base.stdout)
    assert label is not None, base.stdout
    time.sleep(1.1)
    with psycopg.connect(cluster.libpq_url(), autocommit=True) as conn:
        conn.execute("INSERT INTO probe VALUES (1), (2)")
        row = conn.execute("SELECT now()").fetchone()
        time.sleep(0.2)
        conn.execute("DELETE FROM probe")
    assert row is not None
    noted: datetime = row[0]

    listed = invoke("backup", "pitr-info", home=live)
    assert listed.exit_code == 0, listed.output
    assert label.group(1) in listed.stdout

    copy.mkdir()
    (copy / "precious").write_text("x")
    refused = invoke("backup", "pitr-restore", "--to", noted.isoformat(), "--into", str(copy))
    # No DBOPS_HOME: `.dbops` in the cwd has no cluster, so nothing is set up there.
    assert "not set up" in one_line_error(refused, 1)
    refused = invoke(
        "backup", "pitr-restore", "--to", noted.isoformat(), "--into", str(copy), home=live
    )
    assert "is not empty" in one_line_error(refused, 1)
    (copy / "precious").unlink()

    restored = invoke(
        "backup", "pitr-restore", "--to", noted.isoformat(), "--into", str(copy), home=live
    )
    assert restored.exit_code == 0, restored.output
    assert "running on port" in restored.stdout
    assert ":***@127.0.0.1:" in restored.stdout
    assert str(cluster.password) not in restored.output
    with psycopg.connect(EmbeddedCluster(copy).libpq_url()) as conn:
        row = conn.execute("SELECT count(*) FROM probe").fetchone()
    assert row == (2,)
    with psycopg.connect(cluster.libpq_url()) as conn:
        assert conn.execute("SELECT count(*) FROM probe").fetchone() == (0,)
    stopped = invoke("db", "stop", home=copy)
    assert stopped.stdout.strip() == "embedded PostgreSQL stopped"


@pytest.mark.parametrize(
    "args",
    [
        ["pitr-setup"],
        ["pitr-base"],
        ["pitr-info"],
        ["pitr-restore", "--to", "2026-01-01T00:00:00Z", "--into", "copy"],
    ],
)
def test_database_url_is_refused_in_one_line(args: list[str]) -> None:
    result = invoke("backup", *args, url="postgresql://u:s3cret@127.0.0.1:1/x")
    line = one_line_error(result, 1)
    assert "embedded cluster only" in line
    assert "s3cret" not in result.output


def test_bad_target_time_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("backup", "pitr-restore", "--to", "yesterday", "--into", str(tmp_path / "c"))
    assert result.exit_code == 2
    assert "ISO timestamp" in result.output
    assert not (tmp_path / "c").exists()
