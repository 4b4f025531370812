"""Statements collector: a statement the test runs shows; a missing extension is a hint."""

from __future__ import annotations

from pathlib import Path

import psycopg

from dbops.config import to_libpq_url
from dbops.db import Database, EmbeddedCluster, open_database
from dbops.monitoring import collect_snapshot
from tests.fixtures.monitoring import monitor_settings


def test_statement_run_by_the_test_shows(
    mon_db: Database, mon_conn: psycopg.Connection, mon_url: str
) -> None:
    mon_conn.execute("CREATE TABLE marker_table (id int, note text)")
    for i in range(5):
        mon_conn.execute(
            "SELECT count(*) FROM marker_table WHERE id > %s AND note <> 'x'", (i,)
        ).fetchone()
    settings = monitor_settings(mon_url, monitor_top_statements=500, monitor_query_text_chars=40)
    snap = collect_snapshot(mon_db, settings)
    assert snap.errors == ()
    st = snap.statements
    assert st is not None
    assert st.entries >= 1
    assert st.max_entries == 10_000
    assert st.stats_reset is not None  # pg_stat_statements_info on 14+
    assert st.dealloc is not None
    mine = [q for q in st.top if q.query and q.query.startswith("SELECT count(*) FROM marker_t")]
    assert len(mine) == 1, [q.query for q in st.top]
    q = mine[0]
    assert q.calls == 5
    assert len(q.query or "") == 40  # cut on the server
    assert q.user == "postgres"
    assert q.database == mon_conn.info.dbname
    assert q.queryid is not None
    assert q.total_exec_time_ms >= 0
    assert q.rows == 5
    # Ranked by total time, this database only.
    totals = [x.total_exec_time_ms for x in st.top]
    assert totals == sorted(totals, reverse=True)
    assert {x.database for x in st.top} == {mon_conn.info.dbname}


def test_missing_extension_is_a_section_error_with_hint(mon_url: str) -> None:
    with psycopg.connect(to_libpq_url(mon_url), autocommit=True) as conn:
        conn.execute("DROP EXTENSION pg_stat_statements")
    settings = monitor_settings(mon_url)
    with open_database(settings, mon_url) as db:
        snap = collect_snapshot(db, settings)
    assert snap.statements is None
    err = snap.error("statements")
    assert err is not None
    assert "not installed" in err.message
    assert "CREATE EXTENSION pg_stat_statements" in (err.hint or "")
    assert [e.collector for e in snap.errors] == ["statements"]
    assert snap.indexes is not None
    assert snap.database is not None


def test_extension_installed_but_not_preloaded_is_a_section_error_with_hint(
    tmp_path: Path,
) -> None:
    """The server restarted without the library: the view raises, the section says why."""
    cluster = EmbeddedCluster(tmp_path / "cluster", database="nopreload", durable=False)
    url = cluster.ensure_running()
    try:
        with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'auto_explain'")
        cluster.stop()
        url = cluster.ensure_running()
        settings = monitor_settings(url)
        with open_database(settings, url) as db:
            snap = collect_snapshot(db, settings)
        assert snap.statements is None
        err = snap.error("statements")
        assert err is not None
        assert err.message == "pg_stat_statements is installed but not loaded"
        assert err.hint == (
            "shared_preload_libraries = 'pg_stat_statements' (then restart the server)"
        )
        assert snap.database is not None
    finally:
        cluster.destroy()


def test_an_extension_left_at_an_old_version_is_refused_below_1_8_only(
    mon_url: str, mon_conn: psycopg.Connection
) -> None:
    """After pg_upgrade the extension keeps its version: 1.7 says to update, 1.8 collects."""
    mon_conn.execute("DROP EXTENSION pg_stat_statements")
    mon_conn.execute("CREATE EXTENSION pg_stat_statements VERSION '1.7'")
    settings = monitor_settings(mon_url)
    with open_database(settings, mon_url) as db:
        old = collect_snapshot(db, settings)
        err = old.error("statements")
        assert err is not None
        assert err.message == "pg_stat_statements 1.7 is older than 1.8"
        assert err.hint == "ALTER EXTENSION pg_stat_statements UPDATE;"
        mon_conn.execute("ALTER EXTENSION pg_stat_statements UPDATE TO '1.8'")
        snap = collect_snapshot(db, settings)
    assert snap.error("statements") is None
    assert snap.statements is not None
    assert snap.statements.extension_version == "1.8"
    assert snap.statements.stats_reset is None  # pg_stat_statements_info arrived in 1.9
