"""`dbops roles setup|status` against a database of its own in the test cluster."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from typer.testing import CliRunner, Result

from dbops.cli import app
from dbops.config import to_libpq_url
from dbops.db import EmbeddedCluster
from dbops.ops.migrate import upgrade
from tests.fixtures.db import make_settings

runner = CliRunner()

SECRET = "s3cret-app-password-in-a-file"


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "240"})


@pytest.fixture
def url(empty_database: str, migrated: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """DATABASE_URL: a migrated database; the app role's password comes from a file."""
    upgrade(empty_database, make_settings(empty_database), "head")
    secret = tmp_path / "app.password"
    secret.write_text(SECRET + "\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", empty_database)
    monkeypatch.setenv("DBOPS_APP_PASSWORD_FILE", str(secret))
    return empty_database


def test_setup_then_status(url: str, pg_cluster: EmbeddedCluster) -> None:
    result = invoke("roles", "setup")
    assert result.exit_code == 0, result.output
    assert "roles ready" in result.stdout
    assert "objects given to dbops_owner" in result.stdout
    # Generated passwords are named, never shown; the file's one is never printed either.
    assert "generated passwords (not shown) for: owner, readonly, monitor" in result.output
    assert SECRET not in result.output
    status = invoke("roles", "status")
    assert status.exit_code == 0, status.output
    assert "app (dbops_app)" in status.stdout
    assert "row-level security applies" in status.stdout
    assert "readonly (dbops_readonly)" in status.stdout
    # The tables now belong to the owner role, and the app role logs in with the file's
    # password over TCP (TLS, verify-full: the cluster's CA).
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        owners = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename IN ('users', 'teams', 'team_members', 'invitations')"
            )
        }
    assert owners == {"dbops_owner"}
    name = url.split("@/", 1)[1].split("?", 1)[0]
    parts = urlsplit(to_libpq_url(pg_cluster.tcp_url(name)))
    host = parts.netloc.rpartition("@")[2]
    app_url = urlunsplit(parts._replace(netloc=f"dbops_app:{quote(SECRET, safe='')}@{host}"))
    with psycopg.connect(app_url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("dbops_app",)
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_setup_is_idempotent(url: str) -> None:
    assert invoke("roles", "setup").exit_code == 0
    again = invoke("roles", "setup")
    assert again.exit_code == 0, again.output
    assert re.search(r"created\W+none", again.stdout), again.stdout
    assert re.search(r"objects given to dbops_owner\W+0\b", again.stdout), again.stdout


def test_setup_says_what_it_removed(url: str) -> None:
    """A password left in the statistics and a role default set by the app role: both go."""
    leaked = "plain-" + "x7q" * 4
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS cli_leak")
        conn.execute(f"CREATE ROLE cli_leak PASSWORD '{leaked}'")
        conn.execute("ALTER ROLE dbops_app SET statement_timeout = 1")
    try:
        result = invoke("roles", "setup")
        assert result.exit_code == 0, result.output
        assert "removed a role default that dbops did not set: dbops_app: statement_timeout=1" in (
            result.stderr
        )
        assert re.search(
            r"removed \d+ pg_stat_statements entries holding a password", result.stderr
        )
        assert leaked not in result.output
        with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
            texts = [r[0] for r in conn.execute("SELECT query FROM pg_stat_statements")]
        assert not any(leaked in t for t in texts)
        again = invoke("roles", "setup")  # nothing left: nothing said
        assert "removed" not in again.stderr
    finally:
        with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
            conn.execute("DROP ROLE IF EXISTS cli_leak")
            conn.execute("ALTER ROLE dbops_app RESET ALL")
