"""The `dbops` command against the private test cluster: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner, Result

from dbops.cli import app
from dbops.cli._errors import report as _report
from dbops.config import to_libpq_url
from dbops.db import Database, EmbeddedCluster
from dbops.ops.migrate import head_revision, history
from dbops.ops.seed import PERSONAS

runner = CliRunner()
UNREACHABLE = "postgresql://u:secret@127.0.0.1:1/x"
OWN_SSL = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
DBOPS_SCRIPT = Path(sys.executable).parent / "dbops"
HEAD = head_revision()
#: Every revision, oldest first.
REVISIONS = [info.revision for info in reversed(history())]
USER_COUNTS = (
    "SELECT count(*) FILTER (WHERE deleted_at IS NULL), "
    "count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM users"
)
TEAM_COUNTS = USER_COUNTS.replace("users", "teams")


def invoke(*args: str) -> Result:
    # A wide terminal: rich must not fold the URL or the messages the tests look for.
    return runner.invoke(app, list(args), env={"COLUMNS": "240"})


def assert_one_line_error(result: Result, exit_code: int) -> str:
    """The command failed with ``exit_code`` and exactly one ``error:`` line, no traceback."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No `.env` or `.dbops/` of the checkout is ever read by the CLI under test."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def tcp_url(pg_cluster: EmbeddedCluster) -> str:
    """The migrated test database over TCP, with the cluster's real password in it."""
    return pg_cluster.tcp_url()


# ------------------------------------------------------------------------------ migrations
def test_migrate_current_downgrade_roundtrip(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)

    result = invoke("current")
    assert result.exit_code == 0, result.output
    expected = f"base (empty); head is {HEAD}: {len(REVISIONS)} pending ({', '.join(REVISIONS)})"
    assert result.stdout.strip() == expected

    result = invoke("migrate", "0001")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "upgraded base (empty) -> 0001" + (
        " (head)" if HEAD == "0001" else ""
    )

    result = invoke("migrate")
    assert result.exit_code == 0, result.output
    assert invoke("current").stdout.strip() == f"{HEAD} (head)"
    result = invoke("migrate")
    assert result.stdout.strip() == f"already at {HEAD} (head): nothing to do"

    result = invoke("downgrade", "base")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"downgraded {HEAD} -> base (empty)"
    assert invoke("current").stdout.startswith("base (empty)")
    with psycopg.connect(to_libpq_url(empty_database)) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'users'"
        ).fetchone()
    assert tables == (0,)


def test_history_lists_every_revision_without_a_database() -> None:
    result = invoke("history")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "│" in line]
    firsts = [row.split("│")[0].strip() for row in rows]
    assert firsts == [f"{HEAD} (head)", *reversed(REVISIONS[:-1])]
    foundation = rows[-1].split("│")
    assert foundation[1].strip() == "base"
    assert foundation[2].strip().startswith("Foundation")


def test_downgrade_needs_a_revision() -> None:
    result = invoke("downgrade")
    assert result.exit_code == 2
    assert "Missing argument 'REV'" in result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------------- status
def test_status_on_an_unmigrated_database_shows_pending(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)
    result = invoke("status")
    assert result.exit_code == 0, result.output
    assert f"{len(REVISIONS)} pending ({', '.join(REVISIONS)})" in result.stdout
    assert "unavailable: schema not migrated" in result.stdout

    report = json.loads(invoke("status", "--json").stdout)
    assert report["current_revision"] is None
    assert report["head_revision"] == HEAD
    assert report["pending"] == REVISIONS
    assert report["counts"] is None
    assert report["up_to_date"] is False


def test_seed_then_status_reports_counts_and_hides_the_password(
    clean_db: Database, tcp_url: str, pg_cluster: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = pg_cluster.password
    assert password
    monkeypatch.setenv("DATABASE_URL", tcp_url)

    result = invoke("seed", "--users", "30", "--teams", "4", "--seed", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    seeded_users = 30 + len(PERSONAS)
    assert f"seeded {seeded_users} users (30 + {len(PERSONAS)} personas), 4 teams" in result.stdout

    result = invoke("status")
    assert result.exit_code == 0, result.output
    out = result.output
    assert password not in out
    assert f"postgres:***@127.0.0.1:{pg_cluster.port}/dbops_test" in out
    with clean_db.read() as conn:
        version = conn.execute("SHOW server_version").fetchone()
        members = conn.execute("SELECT count(*) FROM team_members").fetchone()
        # Counted independently (the shared database may hold rows of other tests too).
        users = conn.execute(USER_COUNTS).fetchone()
        teams = conn.execute(TEAM_COUNTS).fetchone()
    assert version is not None
    assert members is not None
    assert f"PostgreSQL {version[0]}" in out
    assert "not supported" not in out
    assert f"{HEAD} (head)" in out
    assert users is not None
    assert teams is not None
    assert users[0] >= seeded_users
    assert f"{users[0]:,} live, {users[1]:,} deleted" in out
    assert f"{teams[0]:,} live, {teams[1]:,} deleted" in out
    assert re.search(rf"memberships\s+│ {members[0]:,}\s", out)
    assert "1-20 connections" in out
    assert "statement 30,000 ms, lock 5,000 ms" in out

    result = invoke("status", "--json")
    assert password not in result.output
    report = json.loads(result.stdout)
    assert report["up_to_date"] is True
    assert report["embedded"] is False
    assert report["counts"]["live_users"] == users[0]
    assert report["counts"]["memberships"] == members[0]
    statuses = {row["status"] for row in report["counts"]["invitations_by_status"]}
    assert statuses == {"pending", "accepted", "revoked", "expired"}
    assert report["pool"]["max_size"] == 20
    assert report["server"]["size_bytes"] > 0


def test_up_migrates_seeds_and_reports(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)
    skipped = invoke("up", "--no-progress")
    assert skipped.exit_code == 0, skipped.output
    assert f"migrated to {HEAD}" in skipped.stdout
    assert "demo data skipped" in skipped.stdout  # an external database gets no fake users
    assert "0 live, 0 deleted" in skipped.stdout

    args = ("up", "--users", "20", "--teams", "3", "--seed", "7", "--no-progress", "--demo-data")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert f"schema at head ({HEAD})" in result.stdout
    assert f"{20 + len(PERSONAS)} live, 0 deleted" in result.stdout

    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert f"schema at head ({HEAD})" in again.stdout
    assert "demo data already present" in again.stdout
    assert f"{20 + len(PERSONAS)} live, 0 deleted" in again.stdout


# ------------------------------------------------------------------------------ error paths
@pytest.mark.parametrize("command", ["status", "migrate", "current", "seed"])
def test_unreachable_database_is_one_line_exit_3(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    line = assert_one_line_error(invoke(command), 3)
    assert "cannot reach the database" in line
    assert "secret" not in invoke(command).output


def test_wrong_password_is_authentication_failed(
    tcp_url: str, pg_cluster: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = pg_cluster.password
    assert password
    wrong = tcp_url.replace(f":{password}@", ":not-the-password@")
    monkeypatch.setenv("DATABASE_URL", wrong)
    result = invoke("status")
    line = assert_one_line_error(result, 3)
    assert "refused the user name or password" in line
    assert "not-the-password" not in result.output
    assert password not in result.output


def test_seed_refuses_pending_migrations(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)
    line = assert_one_line_error(invoke("seed", "--users", "5", "--teams", "1"), 1)
    assert line == f"error: database is at no revision, code expects {HEAD}: run `dbops migrate`"


def test_seed_arguments_out_of_range_are_one_line(
    migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated)
    line = assert_one_line_error(invoke("seed", "--users", "2", "--teams", "5"), 1)
    assert "teams must not exceed users" in line


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["seed", "--users", "-5"], "--users"),
        (["seed", "--users", "many"], "--users"),
        (["migrate", "0001", "extra"], "unexpected extra argument"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], hint: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert hint in result.output
    assert "Traceback" not in result.output


def test_invalid_setting_is_one_line_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:hunter2@127.0.0.1:1/app")
    monkeypatch.setenv("DBOPS_POOL_MAX_SIZE", "0")
    result = invoke("status")
    line = assert_one_line_error(result, 2)
    assert line.startswith("error: invalid setting DBOPS_POOL_MAX_SIZE:")
    assert "greater than or equal to 1" in line
    assert "hunter2" not in result.output


def test_non_postgres_url_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://app:hunter2@db/app")
    result = invoke("current")
    line = assert_one_line_error(result, 2)
    assert "DATABASE_URL must be a postgresql:// URL" in line
    assert "hunter2" not in result.output


def test_verbose_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    result = invoke("--verbose", "status")
    assert result.exit_code == 3
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot reach the database")


def test_unexpected_error_is_one_redacted_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = _report(RuntimeError("boom at postgresql://u:pw123@h/db\nsecond line"), verbose=False)
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == (
        "error: unexpected RuntimeError: boom at postgresql://u:***@h/db second line "
        "(run with --verbose for the traceback)"
    )


# -------------------------------------------------------------------------------- dbops db
def test_db_commands_with_database_url_manage_nothing(
    tcp_url: str, pg_cluster: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", tcp_url)
    for command in ("start", "stop"):
        line = assert_one_line_error(invoke("db", command), 1)
        assert line == "error: DATABASE_URL is set: dbops manages no server"
    result = invoke("db", "url")
    assert result.exit_code == 0
    assert result.stdout.strip() == to_libpq_url(tcp_url).replace(str(pg_cluster.password), "***")
    result = invoke("db", "status")
    assert result.exit_code == 0
    assert str(pg_cluster.password) not in result.output


def test_db_lifecycle_on_a_fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("DBOPS_HOME", str(home))
    monkeypatch.setenv("DBOPS_EMBEDDED_DATABASE", "cli_test")
    try:
        assert "not created" in invoke("db", "status").stdout
        assert "run `dbops db start` first" in assert_one_line_error(invoke("db", "url"), 1)

        result = invoke("db", "start")
        assert result.exit_code == 0, result.output
        assert "embedded PostgreSQL started" in result.stdout
        assert "already running" in invoke("db", "start").stdout

        cluster = EmbeddedCluster(home, database="cli_test")
        status = invoke("db", "status").stdout
        assert "running" in status
        assert str(cluster.port) in status
        assert f"on (TCP needs it; CA {cluster.tls_dir / 'ca.crt'})" in status

        socket_url = invoke("db", "url").stdout.strip()
        assert socket_url == cluster.libpq_url()
        with psycopg.connect(socket_url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("cli_test",)

        password = cluster.password
        assert password
        redacted = invoke("db", "url", "--tcp").stdout.strip()
        ca = cluster.tls_dir / "ca.crt"
        assert redacted == (
            f"postgresql://postgres:***@127.0.0.1:{cluster.port}/cli_test"
            f"?sslmode=verify-full&sslrootcert={ca}"
        )
        shown = invoke("db", "url", "--tcp", "--show-password").stdout.strip()
        with psycopg.connect(shown) as conn:
            assert conn.execute(OWN_SSL).fetchone() == (True,)

        result = invoke("status")
        assert result.exit_code == 0, result.output
        assert "[embedded cluster]" in result.stdout
        assert password not in result.output

        assert "embedded PostgreSQL stopped" in invoke("db", "stop").stdout
        assert "was not running" in invoke("db", "stop").stdout
        assert "stopped" in invoke("db", "status").stdout
    finally:
        EmbeddedCluster(home, database="cli_test").destroy()


def test_no_binaries_prints_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_bindirs() -> Iterator[Path]:
        return iter(())

    monkeypatch.setattr("dbops.db.embedded._candidate_bindirs", no_bindirs)
    monkeypatch.setenv("DBOPS_HOME", str(tmp_path / "nothing"))
    for args in (["db", "start"], ["status"]):
        line = assert_one_line_error(invoke(*args), 1)
        assert "no PostgreSQL server binaries found" in line
        assert "apt-get install postgresql" in line
        assert "set DATABASE_URL" in line


# ------------------------------------------------------------------------ the real script
def _run_script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("DBOPS_")
    }
    return subprocess.run(
        [str(DBOPS_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**clean, **env},
    )


def test_installed_script_runs_and_fails_cleanly(migrated: str) -> None:
    assert DBOPS_SCRIPT.exists(), "the dbops entry point is not installed in the venv"
    ok = _run_script("current", env={"DATABASE_URL": migrated})
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"{HEAD} (head)"

    failed = _run_script("status", env={"DATABASE_URL": UNREACHABLE})
    assert failed.returncode == 3
    assert failed.stdout == ""
    assert "Traceback" not in failed.stderr
    assert "secret" not in failed.stderr
    assert failed.stderr.startswith("error: cannot reach the database")
    assert len(failed.stderr.strip().splitlines()) == 1


def test_seed_progress_draws_a_bar_per_table_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    from dbops.cli._render import SeedProgress

    with SeedProgress() as bar:
        report = bar.update
        for table, total in (("users", 30), ("team_locations", 4), ("indexes", 2)):
            report(table, 0, total)
            report(table, total, total)
    out, err = capsys.readouterr()
    assert out == ""
    for table in ("users", "team_locations", "indexes"):
        assert table in err
    assert "30/30" in err


def test_seed_asks_before_replacing_bigger_demo_data(
    clean_db: Database, migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated)
    assert invoke("seed", "--users", "60", "--teams", "6", "--no-progress").exit_code == 0
    line = assert_one_line_error(invoke("seed", "--users", "5", "--teams", "1"), 1)
    assert "existing demo data has 96 rows, more than the 15 this seed writes" in line
    assert "--replace" in line
    result = invoke("seed", "--users", "5", "--teams", "1", "--replace", "--no-progress")
    assert result.exit_code == 0, result.output
    assert (
        f"seeded {5 + len(PERSONAS)} users (5 + {len(PERSONAS)} personas), 1 teams" in result.stdout
    )
    assert "(replaced " in result.stdout


# ----------------------------------------------------------------------- invalid URLs (issue 6)
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://u:p%zzSECRET@127.0.0.1:1/db", "invalid percent-encoded token"),
        ("postgresql://u:SECRET@127.0.0.1:1/db?sslmode=bogus", "invalid sslmode"),
        ("postgresql://u:SECRET@127.0.0.1:99999/db", "invalid port"),
        ("postgresql://u:SECRET@[::1/db", "not a valid PostgreSQL URL"),
    ],
)
@pytest.mark.parametrize("command", ["status", "current", "migrate", "seed", "up"])
def test_invalid_database_url_is_a_settings_error_without_the_password(
    url: str, reason: str, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    result = invoke(command)
    line = assert_one_line_error(result, 2)
    assert reason in line
    assert "SECRET" not in result.output
    assert "cannot reach" not in line
    assert "unexpected" not in line


def test_db_url_with_an_invalid_database_url_is_a_settings_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p%zzSECRET@h/db")
    result = invoke("db", "url")
    assert "invalid percent-encoded token" in assert_one_line_error(result, 2)
    assert "SECRET" not in result.output


# ------------------------------------------------------------------- rendering (issue 6)
def test_status_keeps_the_url_on_one_line_at_80_columns(
    migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated)
    result = runner.invoke(app, ["status"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    libpq = to_libpq_url(migrated)
    assert len(libpq) > 60  # long enough to have wrapped inside the table
    assert f"database: {libpq}  [DATABASE_URL]" in result.stdout.splitlines()


def test_schema_group_runs_the_same_commands(
    migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated)
    assert invoke("schema", "current").stdout == invoke("current").stdout == f"{HEAD} (head)\n"
    assert invoke("schema", "history").stdout == invoke("history").stdout


# ------------------------------------------------------- a stopped cluster (issue 6)
def test_read_only_commands_report_a_stopped_cluster_instead_of_starting_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("DBOPS_HOME", str(home))
    monkeypatch.setenv("DBOPS_EMBEDDED_DATABASE", "stopped_test")
    cluster = EmbeddedCluster(home, database="stopped_test")
    try:
        line = assert_one_line_error(invoke("status"), 3)
        assert line == (
            f"error: no embedded cluster in {cluster.home} yet "
            "(create it with `dbops db start` or `dbops up`)"
        )
        assert not cluster.initialized()

        assert invoke("db", "start").exit_code == 0
        assert invoke("db", "stop").exit_code == 0
        for command in ("status", "current"):
            line = assert_one_line_error(invoke(command), 3)
            assert line == (
                "error: embedded cluster is stopped (start it with `dbops db start` or `dbops up`)"
            )
            assert not cluster.running(), f"`dbops {command}` started the cluster"
        assert invoke("history").exit_code == 0  # needs no database at all

        url = invoke("db", "url")
        assert url.exit_code == 0
        assert url.stdout.strip() == cluster.libpq_url()
        assert "embedded cluster is stopped" in url.stderr
        assert not cluster.running()

        migrated = invoke("migrate")
        assert migrated.exit_code == 0, migrated.output
        assert f"starting the embedded cluster in {cluster.home} ..." in migrated.stderr
        assert migrated.stdout.startswith("upgraded base (empty) -> ")
        assert cluster.running()
        assert invoke("current").stdout.strip() == f"{HEAD} (head)"
        ran = invoke("db", "url")
        assert ran.stderr == ""

        up = invoke("up", "--no-demo-data")
        assert up.exit_code == 0, up.output
        assert "demo data skipped (--no-demo-data)" in up.stdout
        assert "DATABASE_URL" not in up.stdout
    finally:
        cluster.destroy()


# ------------------------------------------------------------- migrate --sql (issue 6)
def test_migrate_sql_prints_a_range_without_a_database(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["migrate", "--sql", "base:head"], env={"DBOPS_HOME": str(tmp_path / "none")}
    )
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE users" in result.stdout
    assert "CREATE INDEX CONCURRENTLY" in result.stdout
    assert not (tmp_path / "none").exists(), "--sql with FROM:TO must not create a cluster"


def test_migrate_sql_from_the_database_revision_prints_nothing_to_apply_at_head(
    migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated)
    result = invoke("migrate", "--sql")
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE" not in result.stdout
    assert invoke("current").stdout == f"{HEAD} (head)\n"


#: URLs with a reserved character of the user-info in every part, each with the password (or
#: what a reader could take for it) holding ``S3CRET``: no command may print any of it.
MALFORMED_URLS = [
    "postgresql://u:p@S3CRETpw@127.0.0.1:1/db",
    "postgresql://u:p/S3CRET@127.0.0.1:1/db",
    "postgresql://u:p?S3CRET@127.0.0.1:1/db",
    "postgresql://u:p#S3CRET@127.0.0.1:1/db",
    "postgresql://u:p:S3CRET@127.0.0.1:1/db",
    "postgresql://u:p%S3CRET@127.0.0.1:1/db",
    "postgresql://u:p%zzS3CRET@127.0.0.1:1/db",
    "postgresql://u@S3CRET:pw@127.0.0.1:1/db",
    "postgresql://u:S3CRET@127.0.0.1:1/d@b",
    "postgresql://u:S3CRET@127.0.0.1:1/d/b?sslmode=S3CRET",
    "postgresql://u:S3CRET@127.0.0.1:1/db?password=S3CRET&port=S3CRET",
    "postgresql://u:S3CRET@127.0.0.1:S3CRET/db",
    "postgresql://u:S3CRET@[::1/db",
    "postgresql://u:S3CRET@127.0.0.1:1/db?x=%S3CRET",
    "postgresql://u:S3%CRET@127.0.0.1:1/db",
]


@pytest.mark.parametrize("url", MALFORMED_URLS)
@pytest.mark.parametrize("command", [["status"], ["current"], ["db", "url"]])
def test_no_fragment_of_a_password_is_ever_printed(
    monkeypatch: pytest.MonkeyPatch, url: str, command: list[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    result = invoke(*command)
    assert result.exit_code in ((0, 2, 3) if command[0] == "db" else (2, 3)), result.output
    text = result.output + (result.stderr or "")
    for fragment in ("S3CRET", "3CRE", "CRET", "S3C", "pw@"):
        assert fragment not in text, (url, text)
    assert "Traceback" not in text
