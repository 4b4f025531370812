"""``dbops.ops.maintenance.run`` on a scratch database: dead rows, invalid indexes, failures.

Every table is created with autovacuum off, so only the code under test vacuums it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dbops.config import to_libpq_url
from dbops.errors import InvalidInput
from dbops.ops.maintenance import (
    Action,
    ActionKind,
    ActionResult,
    Facts,
    Outcome,
    ProgressEvent,
    is_reindex_leftover,
    run,
)

LOCK_MS = 2_000
STATEMENT_MS = 30_000

INDEXES_SQL = """
SELECT c.relname::text, i.indisvalid
FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
WHERE i.indrelid = %s::regclass ORDER BY 1
"""


@pytest.fixture
def url(empty_database: str) -> str:
    return empty_database


@pytest.fixture
def conn(url: str) -> Iterator[psycopg.Connection[Any]]:
    """A superuser autocommit connection to the scratch database, for setting things up."""
    with psycopg.connect(to_libpq_url(url), autocommit=True) as c:
        yield c


def _dead_rows(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(
        "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = %s", [table]
    ).fetchone()
    assert row is not None
    return int(row[0])


def _indexes(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, bool]]:
    return [(r[0], r[1]) for r in conn.execute(INDEXES_SQL, [table]).fetchall()]


def _make_dead_rows(
    conn: psycopg.Connection[Any], table: str = "churn", rows: int = 20_000
) -> None:
    conn.execute(
        f"CREATE TABLE {table} (id int PRIMARY KEY, note text) WITH (autovacuum_enabled = off)"
    )
    conn.execute(
        f"INSERT INTO {table} SELECT g, repeat('x', 50) FROM generate_series(1, %s) g", [rows]
    )
    conn.execute(f"DELETE FROM {table} WHERE id % 2 = 0")
    conn.execute("SELECT pg_stat_force_next_flush()")  # the next statement sees the counts


def _make_invalid_unique(conn: psycopg.Connection[Any]) -> None:
    """``items_code_key``: a unique index made invalid by building it over duplicates."""
    conn.execute(
        "CREATE TABLE items (id int PRIMARY KEY, code int) WITH (autovacuum_enabled = off)"
    )
    conn.execute("INSERT INTO items SELECT g, g FROM generate_series(1, 2000) g")
    conn.execute("INSERT INTO items VALUES (5000, 7)")  # a duplicate code
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY items_code_key ON items (code)")
    assert ("items_code_key", False) in _indexes(conn, "items")


VACUUM_CHURN = Action(ActionKind.VACUUM, "public", "churn", "test")
REINDEX_ITEMS = Action(ActionKind.REINDEX, "public", "items", "test", index="items_code_key")


# ------------------------------------------------------------------------------ the values
def test_sql_is_quoted_from_identifiers() -> None:
    action = Action(ActionKind.REINDEX, 'my "schema"', "t", "r", index="ix; DROP TABLE t")
    assert action.sql == 'REINDEX INDEX CONCURRENTLY "my ""schema"""."ix; DROP TABLE t"'
    assert Action(ActionKind.VACUUM_ANALYZE, "public", "Users", "r").sql == (
        'VACUUM (ANALYZE) "public"."Users"'
    )
    assert Action(ActionKind.ANALYZE, "public", "t", "r").sql == 'ANALYZE "public"."t"'
    seq = Action(ActionKind.ADVISORY, "public", None, "r", sequence="users_id_seq")
    assert seq.sql == 'ALTER SEQUENCE "public"."users_id_seq" AS bigint'
    assert not seq.runs


def test_action_needs_its_identifiers() -> None:
    with pytest.raises(InvalidInput, match="needs a table and an index"):
        Action(ActionKind.REINDEX, "public", "t", "r")
    with pytest.raises(InvalidInput, match="needs a table"):
        Action(ActionKind.VACUUM, "public", None, "r")
    with pytest.raises(InvalidInput, match="advisory"):
        Action(ActionKind.ADVISORY, "public", "t", "r")


def test_leftover_names() -> None:
    assert is_reindex_leftover("items_code_key_ccnew")
    assert is_reindex_leftover("items_code_key_ccnew12")
    assert is_reindex_leftover("items_code_key_ccold")
    assert not is_reindex_leftover("items_ccnew_code")


def test_negative_timeout_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        run(url, [], lock_timeout_ms=-1, statement_timeout_ms=0)


# ------------------------------------------------------------------------------ dead rows
def test_dry_run_changes_nothing_and_apply_removes_dead_rows(
    url: str, conn: psycopg.Connection[Any]
) -> None:
    _make_dead_rows(conn)
    dead = _dead_rows(conn, "churn")
    assert dead >= 9_000

    dry = run(url, [VACUUM_CHURN], lock_timeout_ms=LOCK_MS, statement_timeout_ms=STATEMENT_MS)
    (result,) = dry.results
    assert result.outcome is Outcome.SKIPPED
    assert result.reason == "dry run"
    assert result.before is not None
    assert result.before.dead_rows == dead
    assert result.after is None
    assert _dead_rows(conn, "churn") == dead
    assert not dry.failed
    assert not dry.applied_mode

    before_run = time.monotonic()
    report = run(
        url, [VACUUM_CHURN], apply=True, lock_timeout_ms=LOCK_MS, statement_timeout_ms=STATEMENT_MS
    )
    took = time.monotonic() - before_run
    (result,) = report.results
    assert result.outcome is Outcome.APPLIED, result.reason
    # Durations in seconds, measured around the work: the action within the run, the run
    # within what this test measured around it.
    assert 0 < result.duration_s <= report.duration_s <= took
    assert result.after is not None
    assert result.after.dead_rows == 0
    assert result.after.last_vacuum is not None
    assert result.after.last_vacuum.utcoffset() is not None
    assert result.before is not None
    assert result.before.last_vacuum is None
    assert result.dead_rows_removed == dead
    assert report.dead_rows_removed == dead
    assert report.count(Outcome.APPLIED) == 1
    assert _dead_rows(conn, "churn") == 0


def test_vacuum_analyze_and_analyze_set_last_analyze(
    url: str, conn: psycopg.Connection[Any]
) -> None:
    _make_dead_rows(conn)
    conn.execute("CREATE TABLE fresh (id int) WITH (autovacuum_enabled = off)")
    conn.execute("INSERT INTO fresh SELECT generate_series(1, 100)")
    report = run(
        url,
        [
            Action(ActionKind.VACUUM_ANALYZE, "public", "churn", "test"),
            Action(ActionKind.ANALYZE, "public", "fresh", "test"),
        ],
        apply=True,
        lock_timeout_ms=LOCK_MS,
        statement_timeout_ms=STATEMENT_MS,
    )
    assert [r.outcome for r in report.results] == [Outcome.APPLIED, Outcome.APPLIED]
    churn, fresh = report.results
    assert churn.after is not None
    assert churn.after.last_analyze is not None
    assert churn.after.last_vacuum is not None
    assert fresh.before is not None
    assert fresh.before.last_analyze is None
    assert fresh.after is not None
    assert fresh.after.last_analyze is not None


def test_lock_timeout_fails_one_action_and_the_rest_runs(
    url: str, conn: psycopg.Connection[Any]
) -> None:
    _make_dead_rows(conn, "locked", rows=2_000)
    _make_dead_rows(conn, "churn", rows=2_000)
    with psycopg.connect(to_libpq_url(url)) as holder:
        holder.execute("LOCK TABLE locked IN SHARE UPDATE EXCLUSIVE MODE")
        started = time.monotonic()
        report = run(
            url,
            [Action(ActionKind.VACUUM, "public", "locked", "test"), VACUUM_CHURN],
            apply=True,
            lock_timeout_ms=300,
            statement_timeout_ms=STATEMENT_MS,
        )
        elapsed = time.monotonic() - started
    locked, churn = report.results
    assert locked.outcome is Outcome.FAILED
    assert locked.reason is not None
    assert locked.reason.startswith("lock timeout")
    assert "300 ms" in locked.reason
    assert locked.after is not None
    assert locked.after.dead_rows == locked.before.dead_rows  # type: ignore[union-attr]
    assert churn.outcome is Outcome.APPLIED
    assert report.failed
    assert report.count(Outcome.FAILED) == 1
    assert elapsed < 10


def test_statement_timeout_is_honored(url: str, conn: psycopg.Connection[Any]) -> None:
    """lock_timeout off: the wait for the lock ends at statement_timeout instead."""
    _make_dead_rows(conn, rows=2_000)
    with psycopg.connect(to_libpq_url(url)) as holder:
        holder.execute("LOCK TABLE churn IN SHARE UPDATE EXCLUSIVE MODE")
        started = time.monotonic()
        report = run(url, [VACUUM_CHURN], apply=True, lock_timeout_ms=0, statement_timeout_ms=400)
        elapsed = time.monotonic() - started
    (result,) = report.results
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None
    assert result.reason.startswith("statement timeout")
    assert "400 ms" in result.reason
    assert elapsed < 10


# ------------------------------------------------------------------------------ reindex
def test_invalid_index_becomes_valid_after_the_duplicates_go(
    url: str, conn: psycopg.Connection[Any]
) -> None:
    _make_invalid_unique(conn)
    conn.execute("DELETE FROM items WHERE id = 5000")
    report = run(
        url, [REINDEX_ITEMS], apply=True, lock_timeout_ms=LOCK_MS, statement_timeout_ms=STATEMENT_MS
    )
    (result,) = report.results
    assert result.outcome is Outcome.APPLIED, result.reason
    assert result.before is not None
    assert result.before.index_valid is False
    assert result.after is not None
    assert result.after.index_valid is True
    assert result.after.index_bytes is not None
    assert result.after.index_bytes > 0
    assert ("items_code_key", True) in _indexes(conn, "items")
    conn.execute("INSERT INTO items VALUES (6000, 6001)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO items VALUES (6001, 6001)")


def test_failed_reindex_over_duplicates_leaves_no_invalid_index(
    url: str, conn: psycopg.Connection[Any]
) -> None:
    _make_invalid_unique(conn)  # the duplicate stays
    before = _indexes(conn, "items")
    report = run(
        url, [REINDEX_ITEMS], apply=True, lock_timeout_ms=LOCK_MS, statement_timeout_ms=STATEMENT_MS
    )
    (result,) = report.results
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None
    assert result.reason.startswith("duplicate keys")
    assert "7" not in result.reason.split(";")[0]  # no row value in the message
    assert result.dropped == ("items_code_key_ccnew",)
    assert "dropped the leftover invalid index items_code_key_ccnew" in result.reason
    assert result.leftover == ()
    assert _indexes(conn, "items") == before  # only the original, still invalid: no _ccnew


def test_cleanup_drops_only_what_the_failed_reindex_created(
    url: str, conn: psycopg.Connection[Any]
) -> None:
    """An older invalid index that merely looks like a leftover is not the run's to drop."""
    _make_invalid_unique(conn)
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY items_code_key_ccnew ON items (code)")
    report = run(
        url, [REINDEX_ITEMS], apply=True, lock_timeout_ms=LOCK_MS, statement_timeout_ms=STATEMENT_MS
    )
    (result,) = report.results
    assert result.outcome is Outcome.FAILED
    assert result.dropped == ("items_code_key_ccnew1",)
    assert _indexes(conn, "items") == [
        ("items_code_key", False),
        ("items_code_key_ccnew", False),
        ("items_pkey", True),
    ]


def test_reindex_timed_out_behind_a_writer_leaves_no_invalid_index(
    url: str, conn: psycopg.Connection[Any]
) -> None:
    """REINDEX CONCURRENTLY creates ``_ccnew``, then waits for the open writer and times out.

    The cleanup (DROP INDEX CONCURRENTLY) waits for that writer too; it ends a second later.
    Progress shows the wait while it lasts.
    """
    conn.execute("CREATE TABLE busy (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = off)")
    conn.execute("INSERT INTO busy SELECT g, g FROM generate_series(1, 1000) g")
    conn.execute("CREATE INDEX busy_v ON busy (v)")
    writer = psycopg.connect(to_libpq_url(url))
    writer.execute("INSERT INTO busy VALUES (0, 0)")  # open transaction that wrote to busy
    timer = threading.Timer(1.5, writer.rollback)
    timer.start()
    events: list[ProgressEvent] = []
    try:
        report = run(
            url,
            [Action(ActionKind.REINDEX, "public", "busy", "test", index="busy_v")],
            apply=True,
            lock_timeout_ms=700,
            statement_timeout_ms=STATEMENT_MS,
            progress=events.append,
            poll_interval_s=0.05,
        )
    finally:
        timer.join()
        writer.close()
    (result,) = report.results
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None
    assert result.reason.startswith("lock timeout")
    assert result.dropped == ("busy_v_ccnew",)
    assert _indexes(conn, "busy") == [("busy_pkey", True), ("busy_v", True)]
    phases = [e.phase for e in events]
    assert phases[0] == "started"
    assert phases[-1] == "failed"
    assert any(p.startswith("waiting for") for p in phases), phases
    assert all(e.command == "reindex concurrently" for e in events[1:-1])
    # Polled every 50 ms through a wait of most of a second: a row is reported when it
    # changes, not once per poll.
    assert all(a != b for a, b in itertools.pairwise(events)), phases
    assert len(events) < 10, phases


def test_progress_reports_phases_and_blocks(url: str, conn: psycopg.Connection[Any]) -> None:
    """A vacuum slowed down by cost-based delay (set on the database), so the poller sees it."""
    _make_dead_rows(conn, rows=10_000)
    database = conn.info.dbname
    conn.execute(f'ALTER DATABASE "{database}" SET vacuum_cost_delay = 5')
    conn.execute(f'ALTER DATABASE "{database}" SET vacuum_cost_limit = 1')
    events: list[ProgressEvent] = []
    report = run(
        url,
        [VACUUM_CHURN],
        apply=True,
        lock_timeout_ms=LOCK_MS,
        statement_timeout_ms=STATEMENT_MS,
        progress=events.append,
        poll_interval_s=0.05,
    )
    assert report.results[0].outcome is Outcome.APPLIED, report.results[0].reason
    assert events[0].phase == "started"
    assert events[-1].phase == "done"
    polled = events[1:-1]
    assert polled, "no progress row seen"
    assert all(e.command == "vacuum" and e.index == 0 for e in polled)
    assert any(e.phase == "scanning heap" for e in polled), [e.phase for e in polled]
    assert any(e.blocks_total and e.blocks_total > 0 for e in polled)
    done = [e.blocks_done or 0 for e in polled if e.phase == "scanning heap"]
    assert done == sorted(done)  # blocks done only grow


def test_advisory_is_never_run(url: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE SEQUENCE s")
    advisory = Action(ActionKind.ADVISORY, "public", None, "near max", sequence="s")
    report = run(url, [advisory], apply=True, lock_timeout_ms=LOCK_MS, statement_timeout_ms=0)
    (result,) = report.results
    assert result.outcome is Outcome.SKIPPED
    assert result.reason == "advisory: nothing to run"
    row = conn.execute("SELECT data_type FROM pg_sequences WHERE sequencename = 's'").fetchone()
    assert row == ("bigint",)  # untouched (it was bigint already; nothing ran at all)


def test_missing_table_fails_with_a_reason(url: str) -> None:
    report = run(
        url,
        [Action(ActionKind.VACUUM, "public", "nope", "test")],
        apply=True,
        lock_timeout_ms=LOCK_MS,
        statement_timeout_ms=STATEMENT_MS,
    )
    (result,) = report.results
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None
    assert "42P01" in result.reason


def test_a_table_the_role_may_not_vacuum_is_a_failure_not_applied(
    url: str, conn: psycopg.Connection[Any], monitor_role: str
) -> None:
    """VACUUM only warns ("skipping ...") for a table the role does not own: that is no success."""
    _make_dead_rows(conn, rows=2_000)
    as_role = to_libpq_url(url).replace("postgres@", f"{monitor_role}@", 1)
    report = run(
        as_role, [VACUUM_CHURN], apply=True, lock_timeout_ms=LOCK_MS, statement_timeout_ms=0
    )
    (result,) = report.results
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None
    assert result.reason.startswith("the server skipped it:")
    assert "churn" in result.reason
    assert _dead_rows(conn, "churn") > 0


def test_an_unreachable_database_is_recorded_per_action() -> None:
    dead_end = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"
    report = run(
        dead_end,
        [VACUUM_CHURN, VACUUM_CHURN],
        apply=True,
        lock_timeout_ms=LOCK_MS,
        statement_timeout_ms=0,
    )
    assert [r.outcome for r in report.results] == [Outcome.FAILED, Outcome.FAILED]
    reason = report.results[0].reason
    assert reason is not None
    assert reason.startswith("cannot connect:")


@pytest.mark.parametrize(
    ("before", "after", "saved"),
    [
        (Facts(index_bytes=8_192), Facts(index_bytes=4_096), 4_096),
        (Facts(index_bytes=8_192), Facts(index_bytes=None), None),  # the index is gone
        (Facts(index_bytes=None), Facts(index_bytes=4_096), None),  # unknown before
        (Facts(dead_rows=10), Facts(dead_rows=None), None),
    ],
)
def test_a_saving_needs_both_sides_known(before: Facts, after: Facts, saved: int | None) -> None:
    """Either side unknown is no number (not a crash on ``None - int``)."""
    result = ActionResult(REINDEX_ITEMS, Outcome.APPLIED, 0.1, before, after)
    assert result.index_bytes_saved == saved
    dead = None if before.dead_rows is None or after.dead_rows is None else 0
    assert result.dead_rows_removed == dead


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (ValueError("bad value"), "ValueError: bad value"),
        (OSError("first line\nsecond line"), "OSError: first line"),
        (RuntimeError(), "RuntimeError: "),
    ],
)
def test_a_failure_without_a_sqlstate_is_its_type_and_first_line(
    error: BaseException, why: str
) -> None:
    from dbops.ops.maintenance import _why

    assert _why(error, LOCK_MS, STATEMENT_MS) == why
