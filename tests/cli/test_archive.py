"""`dbops archive run|restore|status` against the private cluster: output, errors, durations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from dbops.cli import app
from dbops.cli.archive import parse_duration
from dbops.db import Database

runner = CliRunner()

ARCHIVE_TABLES = (
    "archive.users, archive.teams, archive.team_members, archive.invitations, "
    "archive.invitation_senders, archive.team_locations"
)


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "240"})


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def target(
    clean_db: Database, migrated: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Database]:
    """DATABASE_URL set to the test database: an old soft-deleted user and team, a live owner."""
    monkeypatch.setenv("DATABASE_URL", migrated)
    with clean_db.connection() as conn:
        conn.execute(
            "INSERT INTO users (email, password_hash, display_name, deleted_at) VALUES "
            "('old@example.com', 'h', 'Old', now() - interval '100 days'), "
            "('boss@example.com', 'h', 'Boss', NULL), "
            "('sole@example.com', 'h', 'Sole', now() - interval '100 days')"
        )
        conn.execute(
            "INSERT INTO teams (name, slug, deleted_at) VALUES "
            "('Gone', 'gone', now() - interval '100 days'), ('Solo', 'solo', NULL)"
        )
        conn.execute(
            "INSERT INTO team_members (team_id, user_id, role) "
            "SELECT t.id, u.id, 'OWNER' FROM teams t, users u "
            "WHERE (t.slug, u.email) IN "
            "(('gone', 'boss@example.com'), ('solo', 'sole@example.com'))"
        )
    yield clean_db
    with clean_db.connection() as conn:
        conn.execute("TRUNCATE " + ARCHIVE_TABLES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        ("30m", timedelta(minutes=30)),
        (" 45s ", timedelta(seconds=45)),
        ("0d", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["90", "d", "-1d", "1.5d", "90 days", "1y", ""])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="is not a duration like 90d"):
        parse_duration(text)
    result = invoke("archive", "run", "--older-than", text)
    assert result.exit_code == 2
    assert "is not a duration like 90d" in result.stderr


@pytest.mark.parametrize("text", ["99999999999d", "9999999999999999999999w", "36526d", "5300w"])
def test_durations_beyond_a_century_are_usage_errors(text: str) -> None:
    """A huge value used to end in "unexpected OverflowError"."""
    with pytest.raises(typer.BadParameter, match="longer than 100 years"):
        parse_duration(text)
    result = invoke("archive", "run", "--older-than", text)
    assert result.exit_code == 2
    assert "longer than 100 years" in result.stderr
    assert "Traceback" not in result.output
    assert parse_duration("36525d") == timedelta(days=36_525)


def test_run_dry_then_apply_then_status_then_restore(target: Database) -> None:
    result = invoke("archive", "run", "--older-than", "90d")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("dry run: would archive 1 users, 1 teams, 1 memberships,")
    assert lines[1].startswith("skipped user ")
    assert lines[1].endswith("(sole@example.com): last owner of live team(s) solo")
    assert lines[-1] == "nothing changed: pass --apply to archive"

    result = invoke("archive", "run", "--older-than", "90d", "--batch-size", "1", "--apply")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("archived 1 users, 1 teams, 1 memberships,")
    assert "rows/s; run " in result.stdout

    result = invoke("archive", "status")
    assert result.exit_code == 0, result.output
    assert "│ users " in result.stdout
    assert "soft-deleted users (live)" in result.stdout

    result = invoke("archive", "restore", "--user", "old@example.com")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("restored user old@example.com (")
    assert "still soft-deleted" in result.stdout

    result = invoke("archive", "restore", "--team", "gone")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("restored team gone (")


def test_restore_conflict_is_one_line_exit_1(target: Database) -> None:
    assert invoke("archive", "run", "--older-than", "90d", "--apply").exit_code == 0
    with target.connection() as conn:
        conn.execute("INSERT INTO teams (name, slug) VALUES ('Gone again', 'gone')")
    result = invoke("archive", "restore", "--team", "gone")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: cannot restore team gone: a live team now has this slug"
    )
    result = invoke("archive", "restore", "--user", "nobody@example.com")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no archived user"


@pytest.mark.parametrize("args", [[], ["--user", "a@example.com", "--team", "x"]])
def test_restore_needs_exactly_one_target(args: list[str]) -> None:
    result = invoke("archive", "restore", *args)
    assert result.exit_code == 2
    assert "give exactly one of --user or --team" in result.stderr


@pytest.mark.parametrize("args", [["status"], ["run", "--older-than", "90d"]])
def test_an_unmigrated_database_is_one_line_pending_migrations(
    empty_database: str, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_database)
    result = invoke("archive", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: database is at no revision")
    assert "run `dbops migrate`" in result.stderr
