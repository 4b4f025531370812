"""`dbops maintain plan|run` against a scratch database with dead rows and an invalid index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

from dbops.cli import app
from dbops.cli.maintain import FAILED_EXIT, KINDS
from dbops.config import to_libpq_url
from dbops.ops.maintenance import ActionKind

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "240"})


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No `.env` or `.dbops/` of the checkout is read by the CLI under test."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def url(empty_database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """DATABASE_URL is a scratch database with ``churn`` (dead rows) and ``items_code_key``
    (a unique index left invalid by duplicates, which are still there)."""
    monkeypatch.setenv("DATABASE_URL", empty_database)
    with psycopg.connect(to_libpq_url(empty_database), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE churn (id int PRIMARY KEY, note text) WITH (autovacuum_enabled = off)"
        )
        conn.execute("INSERT INTO churn SELECT g, repeat('x', 50) FROM generate_series(1, 10000) g")
        conn.execute("DELETE FROM churn WHERE id % 2 = 0")
        # Flush this session's counters now, or they land after ANALYZE and undo its reset.
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("ANALYZE churn")
        conn.execute(
            "CREATE TABLE items (id int PRIMARY KEY, code int) WITH (autovacuum_enabled = off)"
        )
        conn.execute("INSERT INTO items SELECT g, g FROM generate_series(1, 500) g")
        conn.execute("INSERT INTO items VALUES (9000, 7)")
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("ANALYZE items")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY items_code_key ON items (code)")
        conn.execute("SELECT pg_stat_force_next_flush()")
    return empty_database


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def _dead(url: str) -> int:
    return int(
        _query(url, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'churn'")[0][0]
    )


def _indexes(url: str) -> list[tuple[Any, ...]]:
    return _query(
        url,
        "SELECT c.relname::text, i.indisvalid FROM pg_index i JOIN pg_class c "
        "ON c.oid = i.indexrelid WHERE i.indrelid = 'items'::regclass ORDER BY 1",
    )


def test_kinds_in_the_help_are_the_action_kinds() -> None:
    assert tuple(k.value for k in ActionKind) == KINDS


def test_plan_json_lists_the_vacuum_and_the_reindex(url: str) -> None:
    result = invoke("maintain", "plan", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    found = {(a["kind"], a["index"] or a["table"]) for a in document["actions"]}
    assert ("reindex", "items_code_key") in found
    assert ("vacuum", "churn") in found
    assert document["actions"][0]["sql"] == 'REINDEX INDEX CONCURRENTLY "public"."items_code_key"'


def test_plan_table(url: str) -> None:
    result = invoke("maintain", "plan")
    assert result.exit_code == 0, result.output
    assert "maintenance plan" in result.stdout
    assert 'VACUUM "public"."churn"' in result.stdout


def test_dry_run_is_the_default_and_changes_nothing(url: str) -> None:
    dead = _dead(url)
    result = invoke("maintain", "run")
    assert result.exit_code == 0, result.output
    assert "maintenance dry run" in result.stdout
    assert "skipped" in result.stdout
    assert "applied" not in result.stdout.split("\n", 2)[1]  # the table rows say skipped
    assert "dry run: nothing was changed" in result.stderr
    assert _dead(url) == dead
    assert ("items_code_key", False) in _indexes(url)


def test_apply_only_vacuum_on_one_table(url: str) -> None:
    assert _dead(url) >= 4_000
    result = invoke("maintain", "run", "--apply", "--only", "vacuum", "--table", "churn")
    assert result.exit_code == 0, result.output
    assert "1 applied, 0 skipped, 0 failed" in result.stdout
    assert _dead(url) == 0
    assert ("items_code_key", False) in _indexes(url)  # the reindex was filtered out


def test_failed_reindex_exits_4_and_leaves_no_invalid_leftover(url: str) -> None:
    result = invoke("maintain", "run", "--apply", "--only", "reindex")
    assert result.exit_code == FAILED_EXIT, result.output
    assert "duplicate keys" in result.stdout
    assert "dropped the leftover invalid index items_code_key_ccnew" in result.stdout
    assert _indexes(url) == [("items_code_key", False), ("items_pkey", True)]


def test_apply_after_removing_duplicates_makes_the_index_valid(url: str) -> None:
    _query(url, "DELETE FROM items WHERE id = 9000 RETURNING id")
    result = invoke("maintain", "run", "--apply", "--only", "reindex")
    assert result.exit_code == 0, result.output
    assert "invalid -> valid" in result.stdout
    assert _indexes(url) == [("items_code_key", True), ("items_pkey", True)]


def test_unknown_kind_is_one_line_error(url: str) -> None:
    result = invoke("maintain", "run", "--only", "vacum")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: unknown maintenance kind 'vacum'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_nothing_to_do(url: str) -> None:
    result = invoke("maintain", "run", "--table", "no_such_table")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "nothing to do"


def test_output_never_shows_the_password(url: str) -> None:
    password = psycopg.conninfo.conninfo_to_dict(to_libpq_url(url)).get("password")
    result = invoke("maintain", "run", "--apply")
    assert result.exit_code == FAILED_EXIT  # the duplicates are still there
    if password:
        assert str(password) not in result.output
