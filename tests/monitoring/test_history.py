"""Query history: deltas of pg_stat_statements across captures, resets, eviction, concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from dbops.config import Settings, to_libpq_url
from dbops.db import Database, open_database
from dbops.errors import InvalidInput, PendingMigrations
from dbops.monitoring._fetch import CollectorUnavailable
from dbops.monitoring.history import (
    CAPTURE_LOCK_KEY,
    capture,
    database_series,
    prune,
    statement_series,
    table_growth,
    top_statements,
)
from dbops.monitoring.snapshot import CaptureResult
from dbops.ops.migrate import upgrade
from tests.fixtures.monitoring import monitor_settings

PROBE = "SELECT count(*) FROM hist_probe WHERE id > %s"
OTHER = "SELECT max(id) FROM hist_probe WHERE id < %s"

QUERYID_SQL = """
SELECT s.queryid FROM pg_stat_statements AS s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.query LIKE %(prefix)s
"""
SAMPLE_CALLS_SQL = """
SELECT coalesce(sum(calls), 0) FROM dbops_monitor.statement_samples
WHERE capture_id = %(capture_id)s AND queryid = %(queryid)s
"""
ALL_SAMPLE_CALLS_SQL = """
SELECT coalesce(sum(calls), 0) FROM dbops_monitor.statement_samples WHERE queryid = %(queryid)s
"""
WAITERS_SQL = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND NOT granted AND database = (
    SELECT oid FROM pg_database WHERE datname = current_database())
"""


@pytest.fixture
def hist_settings(mon_url: str) -> Settings:
    """Settings of the history tests (short timeouts, everything sampled)."""
    return monitor_settings(mon_url, history_capture_timeout_ms=5_000)


@pytest.fixture
def hist_db(mon_url: str, hist_settings: Settings) -> Iterator[Database]:
    """The scratch database migrated to head (schema dbops_monitor), with a probe table."""
    upgrade(mon_url, hist_settings)
    with psycopg.connect(to_libpq_url(mon_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE hist_probe (id int)")
        conn.execute("INSERT INTO hist_probe SELECT generate_series(1, 10)")
    database = open_database(hist_settings, mon_url)
    yield database
    database.close()


def _run(conn: psycopg.Connection, times: int, query: str = PROBE) -> None:
    for i in range(times):
        conn.execute(query, (i,)).fetchone()


def _queryid(conn: psycopg.Connection, query: str = PROBE) -> int:
    rows = conn.execute(QUERYID_SQL, {"prefix": query.split("%s")[0] + "%"}).fetchall()
    assert len(rows) == 1, rows
    return int(rows[0][0])


def _calls(conn: psycopg.Connection, result: CaptureResult, queryid: int) -> int:
    row = conn.execute(
        SAMPLE_CALLS_SQL, {"capture_id": result.capture_id, "queryid": queryid}
    ).fetchone()
    assert row is not None
    return int(row[0])


def _no_negative_deltas(conn: psycopg.Connection) -> None:
    row = conn.execute(
        """
        SELECT count(*) FROM dbops_monitor.statement_samples
        WHERE calls <= 0 OR total_exec_time_ms < 0 OR rows < 0 OR shared_blks_hit < 0
           OR shared_blks_read < 0 OR temp_blks_written < 0 OR total_plan_time_ms < 0
        """
    ).fetchone()
    assert row == (0,)


def test_first_capture_only_records_the_baseline(
    hist_db: Database, hist_settings: Settings, mon_conn: psycopg.Connection
) -> None:
    _run(mon_conn, 3)
    first = capture(hist_db, hist_settings)
    assert first.baseline is True
    assert first.samples == 0
    assert first.interval_s is None
    assert first.entries >= 1
    assert first.stats_reset is not None
    assert first.dealloc is not None
    assert mon_conn.execute("SELECT count(*) FROM dbops_monitor.statement_samples").fetchone() == (
        0,
    )
    probe = _queryid(mon_conn)
    assert mon_conn.execute(
        "SELECT calls FROM dbops_monitor.baseline WHERE queryid = %s", (probe,)
    ).fetchone() == (3,)
    assert mon_conn.execute("SELECT count(*) FROM dbops_monitor.database_samples").fetchone() == (
        1,
    )


def test_calls_between_captures_are_the_delta(
    hist_db: Database, hist_settings: Settings, mon_conn: psycopg.Connection
) -> None:
    _run(mon_conn, 2)  # in the baseline: these two are never counted
    before_first = time.monotonic()
    capture(hist_db, hist_settings)
    after_first = time.monotonic()
    probe = _queryid(mon_conn)

    time.sleep(0.3)
    _run(mon_conn, 5)
    before_second = time.monotonic()
    second = capture(hist_db, hist_settings)
    after_second = time.monotonic()
    assert second.baseline is False
    # Seconds between the two captures, within what this process measured around them.
    assert second.interval_s is not None
    assert before_second - after_first <= second.interval_s <= after_second - before_first
    # Milliseconds the capture took, within what this process measured around it.
    assert 0 < second.duration_ms <= (after_second - before_second) * 1000
    assert _calls(mon_conn, second, probe) == 5
    assert second.new_statements >= 1
    text = mon_conn.execute(
        "SELECT query FROM dbops_monitor.statements WHERE queryid = %s", (probe,)
    ).fetchone()
    assert text is not None
    assert text[0].startswith("SELECT count(*) FROM hist_probe WHERE id >")

    _run(mon_conn, 3)
    third = capture(hist_db, hist_settings)
    assert _calls(mon_conn, third, probe) == 3
    assert third.restarted == 0
    _no_negative_deltas(mon_conn)


def test_a_statement_first_seen_after_the_baseline_counts_all_its_calls(
    hist_db: Database, hist_settings: Settings, mon_conn: psycopg.Connection
) -> None:
    capture(hist_db, hist_settings)
    _run(mon_conn, 4, OTHER)
    second = capture(hist_db, hist_settings)
    assert _calls(mon_conn, second, _queryid(mon_conn, OTHER)) == 4


def test_no_new_calls_write_no_sample(
    hist_db: Database, hist_settings: Settings, mon_conn: psycopg.Connection
) -> None:
    _run(mon_conn, 2)
    capture(hist_db, hist_settings)
    probe = _queryid(mon_conn)
    second = capture(hist_db, hist_settings)
    assert _calls(mon_conn, second, probe) == 0
    assert mon_conn.execute(
        "SELECT count(*) FROM dbops_monitor.statement_samples WHERE queryid = %s", (probe,)
    ).fetchone() == (0,)


def test_a_reset_of_the_whole_view_starts_a_new_baseline(
    hist_db: Database, hist_settings: Settings, mon_conn: psycopg.Connection
) -> None:
    _run(mon_conn, 5)
    capture(hist_db, hist_settings)
    probe = _queryid(mon_conn)

    # The baseline made smaller than anything the entry will hold after the reset (a state
    # built by hand): no counter goes down, so only the changed stats_reset can tell that the
    # view was reset. Counted from zero that is 8 calls; from the baseline it would be 7.
    mon_conn.execute(
        "UPDATE dbops_monitor.baseline SET calls = 1, total_exec_time_ms = 0, rows = 1, "
        "shared_blks_hit = 0, shared_blks_read = 0, temp_blks_written = 0, "
        "total_plan_time_ms = 0 WHERE queryid = %s",
        (probe,),
    )
    mon_conn.execute("SELECT pg_stat_statements_reset()")
    _run(mon_conn, 8)
    after_reset = capture(hist_db, hist_settings)
    assert after_reset.reset_detected is True
    assert after_reset.restarted >= 1
    assert _calls(mon_conn, after_reset, probe) == 8  # counted from zero, not 8 - 1

    _run(mon_conn, 2)
    later = capture(hist_db, hist_settings)
    assert later.reset_detected is False
    assert _calls(mon_conn, later, probe) == 2
    _no_negative_deltas(mon_conn)


def test_a_reset_with_fewer_calls_never_gives_a_negative_delta(
    hist_db: Database, hist_settings: Settings, mon_conn: psycopg.Connection
) -> None:
    _run(mon_conn, 6)
    capture(hist_db, hist_settings)
    probe = _queryid(mon_conn)
    mon_conn.execute("SELECT pg_stat_statements_reset()")
    _run(mon_conn, 2)
    after_reset = capture(hist_db, hist_settings)
    assert _calls(mon_conn, after_reset, probe) == 2
    _no_negative_deltas(mon_conn)


def test_a_deallocated_entry_restarts_from_zero(
    hist_db: Database, hist_settings: Settings, mon_conn: psycopg.Connection
) -> None:
    _run(mon_conn, 6)
    _run(mon_conn, 3, OTHER)
    capture(hist_db, hist_settings)
    probe, other = _queryid(mon_conn), _queryid(mon_conn, OTHER)

    # One entry reset on its own, as an eviction would: stats_reset does not change.
    mon_conn.execute(
        """
        SELECT pg_stat_statements_reset(s.userid, s.dbid, s.queryid)
        FROM pg_stat_statements AS s WHERE s.queryid = %s
        """,
        (probe,),
    )
    _run(mon_conn, 2)
    _run(mon_conn, 1, OTHER)
    second = capture(hist_db, hist_settings)
    assert second.reset_detected is False
    assert second.restarted == 1  # the reset entry only: 2 < 6 calls
    assert _calls(mon_conn, second, probe) == 2
    assert _calls(mon_conn, second, other) == 1  # the others keep their baseline

    _run(mon_conn, 4)
    third = capture(hist_db, hist_settings)
    assert _calls(mon_conn, third, probe) == 4
    _no_negative_deltas(mon_conn)


def test_two_captures_at_once_wait_for_each_other_and_count_once(
    hist_db: Database, hist_settings: Settings, mon_conn: psycopg.Connection, mon_url: str
) -> None:
    _run(mon_conn, 1)
    capture(hist_db, hist_settings)
    probe = _queryid(mon_conn)
    _run(mon_conn, 5)

    results: list[CaptureResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(capture(hist_db, hist_settings))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with psycopg.connect(to_libpq_url(mon_url)) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (CAPTURE_LOCK_KEY,))
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5
        while mon_conn.execute(WAITERS_SQL).fetchone() != (2,):
            assert time.monotonic() < deadline, "the captures did not wait for the lock"
            time.sleep(0.02)
        holder.rollback()  # both start together now
        for thread in threads:
            thread.join(10)

    assert errors == []
    assert len(results) == 2
    total = mon_conn.execute(ALL_SAMPLE_CALLS_SQL, {"queryid": probe}).fetchone()
    assert total == (5,)
    _first, second = sorted(results, key=lambda r: r.captured_at)
    assert second.interval_s is not None
    assert second.interval_s >= 0


def test_prune_removes_old_rows_only(
    hist_db: Database, hist_settings: Settings, mon_conn: psycopg.Connection
) -> None:
    capture(hist_db, hist_settings)
    _run(mon_conn, 2, OTHER)
    _run(mon_conn, 2)
    old = capture(hist_db, hist_settings)
    _run(mon_conn, 3)
    new = capture(hist_db, hist_settings)
    probe, other = _queryid(mon_conn), _queryid(mon_conn, OTHER)
    for table in ("captures", "statement_samples", "database_samples", "table_samples"):
        key = "id" if table == "captures" else "capture_id"
        mon_conn.execute(
            f"UPDATE dbops_monitor.{table} SET captured_at = captured_at - interval '20 days' "
            f"WHERE {key} <= %s",
            (old.capture_id,),
        )
    mon_conn.execute(
        "UPDATE dbops_monitor.statements SET last_seen = last_seen - interval '20 days'"
    )

    result = prune(hist_db, hist_settings)
    assert result.captures == 2
    assert result.statement_samples >= 2  # probe and other of the old capture, at least
    assert result.database_samples == 2
    assert result.table_samples >= 2
    assert result.cutoff < datetime.now(UTC) - timedelta(days=13)

    def count(query: str, *params: object) -> int:
        row = mon_conn.execute(query, params).fetchone()
        assert row is not None
        return int(row[0])

    assert count("SELECT count(*) FROM dbops_monitor.captures") == 1
    assert (
        count(
            "SELECT count(*) FROM dbops_monitor.statement_samples WHERE capture_id = %s",
            new.capture_id,
        )
        == new.samples
    )
    assert count(ALL_SAMPLE_CALLS_SQL.replace("%(queryid)s", "%s"), probe) == 3
    # The text of a statement with no sample left goes; one still sampled stays.
    assert count("SELECT count(*) FROM dbops_monitor.statements WHERE queryid = %s", other) == 0
    assert count("SELECT count(*) FROM dbops_monitor.statements WHERE queryid = %s", probe) == 1
    # The baseline is not history: prune never touches it.
    assert count("SELECT count(*) FROM dbops_monitor.baseline WHERE queryid = %s", other) == 1


def test_prune_keeps_the_latest_capture_however_old(
    hist_db: Database, hist_settings: Settings, mon_conn: psycopg.Connection
) -> None:
    capture(hist_db, hist_settings)
    last = capture(hist_db, hist_settings)
    mon_conn.execute(
        "UPDATE dbops_monitor.captures SET captured_at = captured_at - interval '30 days'"
    )
    assert prune(hist_db, hist_settings).captures == 1
    row = mon_conn.execute("SELECT id FROM dbops_monitor.captures").fetchall()
    assert row == [(last.capture_id,)]


def test_series_and_totals_read_back_in_order(
    hist_db: Database, hist_settings: Settings, mon_conn: psycopg.Connection
) -> None:
    capture(hist_db, hist_settings)
    _run(mon_conn, 5)
    first = capture(hist_db, hist_settings)
    mon_conn.execute("INSERT INTO hist_probe SELECT generate_series(1, 5000)")
    _run(mon_conn, 3)
    second = capture(hist_db, hist_settings)
    probe = _queryid(mon_conn)

    points = statement_series(hist_db, probe)
    assert [p.calls for p in points] == [5, 3]
    assert [p.captured_at for p in points] == [first.captured_at, second.captured_at]
    for point, result in zip(points, (first, second), strict=True):
        assert result.interval_s is not None
        assert point.interval_s == pytest.approx(result.interval_s)
        assert point.calls_per_s == pytest.approx(point.calls / point.interval_s)
        assert point.mean_exec_time_ms == pytest.approx(point.total_exec_time_ms / point.calls)
    assert points[0].rows == 5
    assert statement_series(hist_db, probe, since=second.captured_at) == points[1:]
    assert statement_series(hist_db, probe, until=first.captured_at) == points[:1]

    since = first.captured_at - timedelta(seconds=1)
    totals = top_statements(hist_db, since=since, limit=500)
    mine = [t for t in totals if t.queryid == probe]
    assert len(mine) == 1
    total = mine[0]
    assert (total.calls, total.samples) == (8, 2)
    assert total.query is not None
    assert "hist_probe" in total.query
    assert total.total_exec_time_ms == pytest.approx(sum(p.total_exec_time_ms for p in points))
    assert (total.first_sample, total.last_sample) == (first.captured_at, second.captured_at)
    assert [t.total_exec_time_ms for t in totals] == sorted(
        (t.total_exec_time_ms for t in totals), reverse=True
    )
    by_calls = top_statements(hist_db, since=since, limit=500, order="calls")
    assert [t.calls for t in by_calls] == sorted((t.calls for t in by_calls), reverse=True)
    assert len(top_statements(hist_db, since=since, limit=1)) == 1
    with pytest.raises(InvalidInput, match="order must be one of"):
        top_statements(hist_db, since=since, limit=5, order="total_time; DROP TABLE x")

    db_points = database_series(hist_db, since=first.captured_at)
    assert [p.captured_at for p in db_points] == [first.captured_at, second.captured_at]
    assert db_points[0].commits_per_s is None
    # Backends report commits lazily: check the rate against the counters, not against zero.
    seconds = (db_points[1].captured_at - db_points[0].captured_at).total_seconds()
    commits = db_points[1].xact_commit - db_points[0].xact_commit
    assert commits >= 0
    assert db_points[1].commits_per_s == pytest.approx(commits / seconds)
    assert db_points[1].size_bytes > 0

    growth = table_growth(hist_db, since=since, limit=50)
    probe_growth = [g for g in growth if (g.schema, g.table) == ("public", "hist_probe")]
    assert len(probe_growth) == 1
    assert probe_growth[0].growth_bytes == probe_growth[0].last_bytes - probe_growth[0].first_bytes
    assert probe_growth[0].growth_bytes > 0
    assert growth[0].growth_bytes >= growth[-1].growth_bytes


def test_table_growth_ranks_a_hand_built_history_and_returns_twenty_by_default(
    hist_db: Database, mon_conn: psycopg.Connection
) -> None:
    """25 tables, two samples each, table k grown by k * 1,000 bytes (k = 1..25)."""
    base = datetime(2020, 1, 1, tzinfo=UTC)
    captures = []
    for at in (base, base + timedelta(hours=1)):
        row = mon_conn.execute(
            "INSERT INTO dbops_monitor.captures (captured_at, interval_s, stats_reset, entries,"
            " dealloc, reset_detected, baseline) VALUES (%s, 60, NULL, 0, NULL, false, true)"
            " RETURNING id",
            (at,),
        ).fetchone()
        assert row is not None
        captures.append(row[0])
    for k in range(1, 26):
        for capture_id, at, size in (
            (captures[0], base, 10_000),
            (captures[1], base + timedelta(hours=1), 10_000 + k * 1_000),
        ):
            mon_conn.execute(
                "INSERT INTO dbops_monitor.table_samples (capture_id, captured_at, schema_name,"
                " table_name, total_bytes, live_rows, dead_rows) VALUES (%s, %s, 'grown', %s, %s,"
                " %s, %s)",
                (capture_id, at, f"t{k:02d}", size, k, k // 2),
            )
    mon_conn.commit()
    until = base + timedelta(hours=2)
    growth = [g for g in table_growth(hist_db, since=base) if g.last_captured_at < until]
    assert len(table_growth(hist_db, since=base)) == 20
    assert [g.table for g in growth] == [f"t{k:02d}" for k in range(25, 25 - len(growth), -1)]
    top = growth[0]
    assert (top.first_bytes, top.last_bytes, top.growth_bytes) == (10_000, 35_000, 25_000)
    assert (top.first_live_rows, top.last_live_rows, top.last_dead_rows) == (25, 25, 12)
    assert (top.first_captured_at, top.last_captured_at) == (base, base + timedelta(hours=1))
    later = table_growth(hist_db, since=base + timedelta(minutes=1), limit=100)
    assert all(g.growth_bytes == 0 for g in later if g.schema == "grown")  # one sample: no growth


def test_top_statement_samples_are_capped_per_capture(
    hist_db: Database, mon_url: str, mon_conn: psycopg.Connection
) -> None:
    settings = monitor_settings(mon_url, history_top_statements=1)
    capture(hist_db, settings)
    _run(mon_conn, 2)
    _run(mon_conn, 2, OTHER)
    second = capture(hist_db, settings)
    assert second.samples == 1
    # The baseline still takes every entry, so nothing is counted twice later.
    _run(mon_conn, 1, OTHER)
    third = capture(hist_db, settings)
    assert third.samples == 1


def test_an_extension_left_at_an_old_version_says_to_update_it(
    hist_db: Database, hist_settings: Settings, mon_conn: psycopg.Connection
) -> None:
    """After pg_upgrade the extension keeps its old version: 1.7 is refused, 1.8 captures."""
    mon_conn.execute("DROP EXTENSION pg_stat_statements")
    mon_conn.execute("CREATE EXTENSION pg_stat_statements VERSION '1.7'")
    with pytest.raises(
        CollectorUnavailable, match=r"pg_stat_statements 1\.7 is older than 1\.8"
    ) as err:
        capture(hist_db, hist_settings)
    assert err.value.hint == "ALTER EXTENSION pg_stat_statements UPDATE;"
    mon_conn.execute("ALTER EXTENSION pg_stat_statements UPDATE TO '1.8'")
    first = capture(hist_db, hist_settings)  # 1.8 has no pg_stat_statements_info view
    _run(mon_conn, 3)
    second = capture(hist_db, hist_settings)
    assert first.samples == 0
    assert _calls(mon_conn, second, _queryid(mon_conn)) == 3


def test_without_the_history_schema_capture_says_to_migrate(mon_db: Database, mon_url: str) -> None:
    with pytest.raises(PendingMigrations, match="dbops migrate"):
        capture(mon_db, monitor_settings(mon_url))
    with pytest.raises(PendingMigrations, match="dbops migrate"):
        statement_series(mon_db, 1)


#: (seconds after the start, xact_commit, xact_rollback) of four captures built by hand: a
#: pg_stat_reset() between the second and the third sends the counters back near zero.
SERIES = [(0, 1_000, 10), (60, 1_600, 40), (120, 50, 0), (180, 350, 3)]


def test_rates_are_per_second_and_unknown_across_a_counter_reset(
    hist_db: Database, mon_conn: psycopg.Connection
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for offset, commits, rollbacks in SERIES:
        at = start + timedelta(seconds=offset)
        row = mon_conn.execute(
            "INSERT INTO dbops_monitor.captures (captured_at, interval_s, entries, baseline) "
            "VALUES (%s, 60, 0, false) RETURNING id",
            (at,),
        ).fetchone()
        assert row is not None
        mon_conn.execute(
            "INSERT INTO dbops_monitor.database_samples (capture_id, captured_at, size_bytes, "
            "numbackends, xact_commit, xact_rollback, temp_bytes, deadlocks, blks_hit, "
            "blks_read) VALUES (%s, %s, 1, 1, %s, %s, 0, 0, 0, 0)",
            (row[0], at, commits, rollbacks),
        )
    points = database_series(hist_db, since=start)
    assert [(p.commits_per_s, p.rollbacks_per_s) for p in points] == [
        (None, None),  # nothing before the first
        (pytest.approx(10.0), pytest.approx(0.5)),  # 600 and 30 in 60 s
        (None, None),  # the counters went down: reset, no rate (never negative)
        (pytest.approx(5.0), pytest.approx(0.05)),  # 300 and 3 in 60 s, from the new start
    ]
