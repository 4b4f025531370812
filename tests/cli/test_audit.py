"""`dbops audit verify|history|show` against a private migrated database."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner, Result

from dbops.cli import app
from dbops.cli.audit import CHAIN_BROKEN_EXIT
from dbops.config import to_libpq_url
from dbops.db import open_database
from dbops.ops.migrate import upgrade
from dbops.services._base import Actor
from dbops.services.teams import TeamService
from dbops.services.users import UserService
from tests.fixtures.db import make_settings
from tests.services._helpers import FAST_HASHER, PASSWORD, SYSTEM

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "240"})


@pytest.fixture
def url(empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """DATABASE_URL is a migrated database where a user made a team and renamed it."""
    monkeypatch.chdir(tmp_path)
    settings = make_settings(empty_database)
    upgrade(empty_database, settings)
    with open_database(settings, empty_database) as db:
        owner = UserService(db, hasher=FAST_HASHER).create(
            SYSTEM, email="ada@example.com", password=PASSWORD, display_name="Ada"
        )
        teams = TeamService(db)
        team = teams.create(Actor.user(owner.id), name="Acme", slug="acme")
        teams.rename(Actor.user(owner.id), team.id, "Acme Two")
    monkeypatch.setenv("DATABASE_URL", empty_database)
    return empty_database


def test_verify_ok_then_names_the_edited_record(url: str) -> None:
    result = invoke("audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("audit chain ok: 4 records, last record 4, head hash ")
    with psycopg.connect(to_libpq_url(url)) as conn:
        conn.execute("ALTER TABLE audit.record DISABLE TRIGGER append_only")
        conn.execute("UPDATE audit.record SET actor_id = %s WHERE id = 4", (str(uuid.uuid4()),))
        conn.execute("ALTER TABLE audit.record ENABLE TRIGGER append_only")
    result = invoke("audit", "verify")
    assert result.exit_code == CHAIN_BROKEN_EXIT
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("audit chain broken: record 4 edited (teams ")
    document = json.loads(invoke("audit", "verify", "--json").stdout)
    assert document["ok"] is False
    assert document["problem"]["record_id"] == 4


def test_verify_names_a_deleted_record(url: str) -> None:
    with psycopg.connect(to_libpq_url(url)) as conn:
        conn.execute("ALTER TABLE audit.record DISABLE TRIGGER append_only")
        conn.execute("DELETE FROM audit.record WHERE id = 2")
        conn.execute("ALTER TABLE audit.record ENABLE TRIGGER append_only")
    result = invoke("audit", "verify")
    assert result.exit_code == CHAIN_BROKEN_EXIT
    assert "record 2 deleted" in result.stderr


def test_verify_with_the_anchor_it_printed_catches_a_rewound_tail(url: str) -> None:
    result = invoke("audit", "verify")
    assert result.exit_code == 0, result.output
    anchor = result.stdout.strip().rpartition("anchor for the next verify: ")[2]
    assert anchor.startswith("4:")
    assert invoke("audit", "verify", "--anchor", anchor).exit_code == 0
    with psycopg.connect(to_libpq_url(url)) as conn:  # delete record 4, rewind the head to 3
        conn.execute("ALTER TABLE audit.record DISABLE TRIGGER append_only")
        conn.execute("DELETE FROM audit.record WHERE id = 4")
        conn.execute("ALTER TABLE audit.record ENABLE TRIGGER append_only")
        conn.execute("ALTER TABLE audit.head DISABLE TRIGGER USER")
        conn.execute(
            "UPDATE audit.head SET last_id = 3, "
            "last_hash = (SELECT hash FROM audit.record WHERE id = 3)"
        )
        conn.execute("ALTER TABLE audit.head ENABLE TRIGGER USER")
    assert invoke("audit", "verify").exit_code == 0  # undetectable without the anchor
    result = invoke("audit", "verify", "--anchor", anchor)
    assert result.exit_code == CHAIN_BROKEN_EXIT
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "audit chain broken: record 4 deleted: the anchor names record 4, the chain (and "
        "its head) now ends at record 3"
    ]
    bad = invoke("audit", "verify", "--anchor", "4:nothex")
    assert bad.exit_code not in (0, CHAIN_BROKEN_EXIT)
    assert "SEQ:HASH" in bad.stderr


def test_history_of_a_team_and_a_user(url: str) -> None:
    result = invoke("audit", "history", "team", "acme")
    assert result.exit_code == 0, result.output
    assert "INSERT" in result.stdout
    assert "UPDATE" in result.stdout
    assert "name" in result.stdout
    rows = json.loads(invoke("audit", "history", "team", "acme", "--json").stdout)
    assert [(r["op"], r["changed"]) for r in rows][1] == ("UPDATE", ["name"])
    assert rows[0]["actor"].startswith("user ")
    users = json.loads(invoke("audit", "history", "user", "ADA@example.com", "--json").stdout)
    assert [(r["op"], r["actor"]) for r in users] == [("INSERT", "system tests")]
    assert "password_hash" not in users[0]["row"]


def test_show_as_of_a_past_time(url: str) -> None:
    rows = json.loads(invoke("audit", "history", "team", "acme", "--json").stdout)
    first = invoke("audit", "show", "team", "acme", "--as-of", rows[0]["at"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["name"] == "Acme"
    latest = invoke("audit", "show", "team", "acme", "--as-of", rows[1]["at"])
    assert json.loads(latest.stdout)["name"] == "Acme Two"
    before = invoke("audit", "show", "team", "acme", "--as-of", "2000-01-01")
    assert before.exit_code == 1
    assert before.stderr.startswith("error: team acme did not exist at 2000-01-01T00:00:00+00:00")


def test_bad_input_is_one_clear_line(url: str) -> None:
    bad_time = invoke("audit", "show", "team", "acme", "--as-of", "yesterday")
    assert bad_time.exit_code == 2
    assert "not an ISO 8601 time" in bad_time.stderr
    unknown = invoke("audit", "history", "team", "nope")
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == "error: no team 'nope' in the table or the audit trail"
    bad_kind = invoke("audit", "history", "invoice", "x")
    assert bad_kind.exit_code == 2


def test_a_database_without_the_trail_says_so(empty_database: str, monkeypatch) -> None:
    upgrade(empty_database, make_settings(empty_database), "0004")
    monkeypatch.setenv("DATABASE_URL", empty_database)
    result = invoke("audit", "verify")
    assert result.exit_code == 1
    assert "the audit trail is not installed" in result.stderr
    assert "run `dbops migrate`" in result.stderr
