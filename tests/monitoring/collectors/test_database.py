"""Database collector: sequences near their maximum, NOT VALID constraints, counters."""

from __future__ import annotations

import contextlib

import psycopg

from dbops.config import to_libpq_url
from dbops.db import Database
from dbops.monitoring import Severity, collect_snapshot, evaluate
from tests.fixtures.db import flush_stats
from tests.fixtures.monitoring import monitor_settings


def test_sequences_near_max_and_not_valid_constraints(
    mon_db: Database, mon_conn: psycopg.Connection, mon_url: str
) -> None:
    mon_conn.execute("CREATE SEQUENCE small_seq AS smallint MAXVALUE 100")
    mon_conn.execute("SELECT setval('small_seq', 95)")
    # A bigint sequence on an integer column runs out at the column's maximum.
    mon_conn.execute("CREATE TABLE narrow (id serial PRIMARY KEY, v int)")
    mon_conn.execute("ALTER SEQUENCE narrow_id_seq AS bigint MAXVALUE 9223372036854775807")
    mon_conn.execute("SELECT setval('narrow_id_seq', 1800000000)")
    mon_conn.execute("CREATE SEQUENCE fresh_seq")  # never read: unknown, not 0
    mon_conn.execute("INSERT INTO narrow (id, v) VALUES (1, -1)")
    mon_conn.execute("ALTER TABLE narrow ADD CONSTRAINT v_positive CHECK (v > 0) NOT VALID")

    settings = monitor_settings(mon_url)
    snap = collect_snapshot(mon_db, settings)
    assert snap.errors == ()
    db = snap.database
    assert db is not None
    assert db.sequences is not None
    seqs = {s.name: s for s in db.sequences}
    assert seqs["small_seq"].used_ratio is not None
    assert abs(seqs["small_seq"].used_ratio - 94 / 99) < 1e-9
    narrow = seqs["narrow_id_seq"]
    assert narrow.owned_by == "narrow.id"
    assert narrow.column_type == "integer"
    assert narrow.data_type == "bigint"
    assert narrow.used_ratio is not None
    assert 0.83 < narrow.used_ratio < 0.84
    assert seqs["fresh_seq"].last_value is None
    assert seqs["fresh_seq"].used_ratio is None

    assert db.not_valid_constraints is not None
    assert [(c.table, c.name, c.kind) for c in db.not_valid_constraints] == [
        ("narrow", "v_positive", "check")
    ]

    findings = evaluate(snap, settings)
    by_subject = {(f.check, f.subject): f.severity for f in findings}
    assert by_subject[("sequences", "public.small_seq")] == Severity.CRITICAL
    assert by_subject[("sequences", "public.narrow_id_seq")] == Severity.WARNING
    assert by_subject[("invalid_constraints", "public.narrow.v_positive")] == Severity.WARNING


def test_database_counters_and_cluster_facts(mon_db: Database, mon_url: str) -> None:
    with psycopg.connect(to_libpq_url(mon_url), autocommit=True) as conn:
        conn.execute("SELECT 1")
        flush_stats(conn)  # at least one commit counted in this database
    snap = collect_snapshot(mon_db, monitor_settings(mon_url))
    db = snap.database
    assert db is not None
    assert snap.server is not None
    assert db.name == snap.server.database
    assert (db.size_bytes or 0) > 0
    assert (db.commits or 0) > 0
    assert db.replicas == ()
    assert db.slots == ()
    assert db.replica_lag_s is None
    assert db.xid_ages
    assert {x.database for x in db.xid_ages} >= {db.name}
    assert db.checkpoints is not None
    assert db.checkpoints.timed >= 0
    assert db.setting("max_connections") == "100"
    assert db.setting("pg_stat_statements.max") == "10000"
    assert snap.server.version_num >= 130000
    assert snap.server.in_recovery is False


def test_stats_reset_is_when_the_statistics_were_reset(
    mon_db: Database, mon_conn: psycopg.Connection, mon_url: str
) -> None:
    """pg_stat_reset() between two clock readings of the server: the snapshot says when."""
    before = mon_conn.execute("SELECT clock_timestamp()").fetchone()
    mon_conn.execute("SELECT pg_stat_reset()")
    after = mon_conn.execute("SELECT clock_timestamp()").fetchone()
    assert before is not None
    assert after is not None
    # A temporary file (a sort bigger than work_mem) and a rollback since the reset.
    with mon_conn.transaction():
        mon_conn.execute("SET LOCAL work_mem = '64kB'")
        mon_conn.execute("SELECT g FROM generate_series(1, 200000) AS g ORDER BY g DESC").fetchone()
    with contextlib.suppress(psycopg.errors.DivisionByZero), mon_conn.transaction():
        mon_conn.execute("SELECT 1 / 0")
    flush_stats(mon_conn)  # a backend reports lazily
    mon_conn.execute("SELECT pg_stat_clear_snapshot()")
    low = mon_conn.execute(COUNTERS).fetchone()
    snap = collect_snapshot(mon_db, monitor_settings(mon_url))
    mon_conn.execute("SELECT pg_stat_clear_snapshot()")
    high = mon_conn.execute(COUNTERS).fetchone()
    assert snap.database is not None
    assert snap.database.stats_reset is not None
    assert before[0] <= snap.database.stats_reset <= after[0]
    # The counters of pg_stat_database, read by hand just before and just after.
    assert low is not None
    assert high is not None
    got = [getattr(snap.database, name) for name in COUNTER_FIELDS]
    for name, lo, value, hi in zip(COUNTER_FIELDS, low, got, high, strict=True):
        assert value is not None, name
        assert lo <= value <= hi, (name, lo, value, hi)
    assert (snap.database.temp_files or 0) >= 1
    assert (snap.database.rollbacks or 0) >= 1


#: Snapshot field -> the pg_stat_database column it comes from.
COUNTERS_OF = {
    "commits": "xact_commit",
    "rollbacks": "xact_rollback",
    "deadlocks": "deadlocks",
    "temp_files": "temp_files",
    "temp_bytes": "temp_bytes",
    "blks_hit": "blks_hit",
    "blks_read": "blks_read",
}
COUNTER_FIELDS = tuple(COUNTERS_OF)
COUNTERS = (
    f"SELECT {', '.join(COUNTERS_OF.values())} FROM pg_stat_database "
    "WHERE datname = current_database()"
)
