"""Safe EXPLAIN on a real database: plans, ANALYZE only for reads, rollback, generic plans."""

from __future__ import annotations

import json

import psycopg
import pytest

from dbops.db import Database
from dbops.errors import InvalidInput, OperationTimeout
from dbops.monitoring.explain import WRITE_REFUSED, explain


@pytest.fixture
def probe(mon_conn: psycopg.Connection) -> psycopg.Connection:
    mon_conn.execute("CREATE TABLE ex_probe (id int PRIMARY KEY, note text)")
    mon_conn.execute("INSERT INTO ex_probe SELECT g, 'n' || g FROM generate_series(1, 10000) AS g")
    mon_conn.execute("ANALYZE ex_probe")
    return mon_conn


def _count(conn: psycopg.Connection, where: str = "TRUE") -> int:
    row = conn.execute("SELECT count(*) FROM ex_probe WHERE " + where).fetchone()
    assert row is not None
    return int(row[0])


def test_select_plan(mon_db: Database, probe: psycopg.Connection) -> None:
    result = explain(mon_db, "SELECT * FROM ex_probe WHERE id = 5;", settings=mon_db.settings)
    assert "Index Scan" in result.text
    assert "ex_probe" in result.text
    plan = json.loads(result.plan_json)
    assert plan[0]["Plan"]["Total Cost"] == result.total_cost > 0
    assert result.planning_ms is None
    assert result.execution_ms is None
    assert not result.analyzed
    assert not result.generic


def test_analyze_select_gives_execution_time(mon_db: Database, probe: psycopg.Connection) -> None:
    result = explain(
        mon_db, "SELECT count(*) FROM ex_probe", settings=mon_db.settings, analyze=True
    )
    assert result.analyzed
    assert result.execution_ms is not None
    assert result.execution_ms >= 0
    assert result.planning_ms is not None
    assert "actual time=" in result.text


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO ex_probe VALUES (100000, 'x')",
        "WITH w AS (INSERT INTO ex_probe VALUES (100000, 'x') RETURNING id) SELECT * FROM w",
        "SELECT * FROM ex_probe WHERE id = 1 FOR UPDATE",
        "SELECT * INTO ex_copy FROM ex_probe",
        "SELECT nextval('ex_seq')",
    ],
)
def test_analyze_of_a_write_is_refused_and_nothing_changes(
    mon_db: Database, probe: psycopg.Connection, statement: str
) -> None:
    probe.execute("CREATE SEQUENCE ex_seq")
    with pytest.raises(InvalidInput, match="ANALYZE runs the statement; refused"):
        explain(mon_db, statement, settings=mon_db.settings, analyze=True)
    assert _count(probe) == 10000
    assert probe.execute("SELECT to_regclass('ex_copy')").fetchone() == (None,)
    assert probe.execute("SELECT last_value, is_called FROM ex_seq").fetchone() == (1, False)


def test_insert_refused_message(mon_db: Database, probe: psycopg.Connection) -> None:
    with pytest.raises(InvalidInput) as info:
        explain(
            mon_db,
            "INSERT INTO ex_probe VALUES (100000, 'x')",
            settings=mon_db.settings,
            analyze=True,
        )
    assert info.value.message == WRITE_REFUSED


def test_update_without_analyze_plans_and_changes_nothing(
    mon_db: Database, probe: psycopg.Connection
) -> None:
    result = explain(mon_db, "UPDATE ex_probe SET note = 'changed'", settings=mon_db.settings)
    assert "Update on ex_probe" in result.text
    assert _count(probe, "note = 'changed'") == 0


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("SELECT 1; SELECT 2", "exactly one statement, got 2"),
        ("", "exactly one statement, got 0"),
        ("-- only a comment", "exactly one statement, got 0"),
        ("EXPLAIN SELECT 1", "not ExplainStmt"),
        ("VACUUM ex_probe", "not VacuumStmt"),
        ("DROP TABLE ex_probe", "not DropStmt"),
        ("SELEC 1", "cannot parse"),
    ],
)
def test_not_one_explainable_statement_is_refused(
    mon_db: Database, probe: psycopg.Connection, statement: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        explain(mon_db, statement, settings=mon_db.settings)
    assert _count(probe) == 10000


def test_parameterized_text_gets_a_generic_plan(
    mon_db: Database, probe: psycopg.Connection
) -> None:
    query = "SELECT note FROM ex_probe WHERE id = $1 AND note <> $2"
    result = explain(mon_db, query, settings=mon_db.settings)
    assert result.generic
    assert not result.analyzed
    assert "$1" in result.text  # a generic plan shows the parameter, not a value
    with pytest.raises(InvalidInput, match="parameterized"):
        explain(mon_db, query, settings=mon_db.settings, analyze=True)
    # No prepared statement is left behind on the pooled connection.
    with mon_db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
    # ... and the next explain of parameterized text still works on it.
    assert explain(mon_db, query, settings=mon_db.settings).generic


def test_statement_timeout_applies(mon_db: Database, probe: psycopg.Connection) -> None:
    slow = "SELECT count(*) FROM generate_series(1, 100000000) AS a"
    with pytest.raises(OperationTimeout):
        explain(mon_db, slow, settings=mon_db.settings, analyze=True, timeout_ms=50)
    # The timeout was local to the rolled-back transaction.
    with mon_db.connection() as conn:
        row = conn.execute(
            "SELECT setting FROM pg_settings WHERE name = 'statement_timeout'"
        ).fetchone()
    assert row == (str(mon_db.settings.statement_timeout_ms),)


def test_volatile_function_refused_for_analyze(mon_db: Database, probe: psycopg.Connection) -> None:
    probe.execute("CREATE FUNCTION ex_touch() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1'")
    with pytest.raises(InvalidInput, match="ex_touch"):
        explain(mon_db, "SELECT ex_touch()", settings=mon_db.settings, analyze=True)
    # Without ANALYZE it only plans, so it is allowed; safe volatile functions run.
    assert explain(mon_db, "SELECT ex_touch()", settings=mon_db.settings).total_cost >= 0
    result = explain(mon_db, "SELECT random()", settings=mon_db.settings, analyze=True)
    assert result.execution_ms is not None


@pytest.mark.parametrize(
    ("text", "server_says"),
    [
        # pg_stat_statements turns interval '1 day' into interval $2: not SQL any more
        ("SELECT id FROM ex_probe WHERE id > $1 AND now() - interval $2 < now()", "syntax error"),
        ("SELECT id FROM ex_probe WHERE id = $1 + $2", "operator is not unique"),
        ("SELECT id FROM no_such_table WHERE id = $1", "does not exist"),
        ("SELECT no_such_column FROM ex_probe", "does not exist"),
    ],
)
def test_a_normalized_text_the_server_cannot_plan_is_invalid_input(
    mon_db: Database, probe: psycopg.Connection, text: str, server_says: str
) -> None:
    with pytest.raises(
        InvalidInput, match=f"the server cannot plan this statement: .*{server_says}"
    ):
        explain(mon_db, text, settings=mon_db.settings)
    # the pooled connection is usable afterwards, with no prepared statement left on it
    with mon_db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
    assert explain(mon_db, "SELECT 1", settings=mon_db.settings).total_cost >= 0
