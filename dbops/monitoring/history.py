"""Query history without reset: pg_stat_statements deltas in schema ``dbops_monitor``.

:func:`capture` reads ``pg_stat_statements`` and stores, per (queryid, userid, dbid), what the
counters grew by since the previous capture; it never calls ``pg_stat_statements_reset()``.
The last raw counters are kept in ``dbops_monitor.baseline``. An entry whose counters went
down (it was reset on its own, or evicted and added again) or a reset of the whole view
(``pg_stat_statements_info.stats_reset`` changed, PostgreSQL 14+) is counted from zero: its
current counters are the delta, since they all grew after the previous capture. A delta is
therefore never negative; what ran between the previous capture and the reset is lost.

Only the current database's entries are captured. One capture is one transaction under an
advisory lock (two captures at once run one after the other and do not count a call twice)
with ``statement_timeout`` and ``lock_timeout`` from ``history_capture_timeout_ms``.
The reads (:func:`statement_series`, :func:`top_statements`, :func:`database_series`,
:func:`table_growth`) return frozen dataclasses from :mod:`dbops.monitoring.snapshot`.
See docs/history.md.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import class_row

from dbops.config import Settings
from dbops.db import Database
from dbops.errors import InvalidInput, PendingMigrations
from dbops.monitoring._fetch import CollectorUnavailable, fetch, version_tuple
from dbops.monitoring.collectors.statements import INSTALL_HINT
from dbops.monitoring.snapshot import (
    CaptureResult,
    DatabasePoint,
    ProcessPoint,
    PruneResult,
    StatementPoint,
    StatementTotal,
    TableGrowth,
)
from dbops.redact import redact_sql

__all__ = [
    "CAPTURE_LOCK_KEY",
    "ORDERS",
    "capture",
    "database_series",
    "process_series",
    "prune",
    "statement_series",
    "table_growth",
    "top_statements",
]

T = TypeVar("T")

#: ``pg_advisory_xact_lock`` key shared by capture and prune ("dbophist").
CAPTURE_LOCK_KEY = 0x64626F70_68697374

SET_TIMEOUTS_SQL = """
SELECT set_config('statement_timeout', %(timeout)s, true),
       set_config('lock_timeout', %(timeout)s, true)
"""

LOCK_SQL = "SELECT pg_advisory_xact_lock(%(key)s)"

EXTENSION_SQL = """
SELECT extversion AS version FROM pg_extension WHERE extname = 'pg_stat_statements'
"""

PREVIOUS_SQL = """
SELECT id, captured_at, stats_reset
FROM dbops_monitor.captures
ORDER BY id DESC
LIMIT 1
"""

#: ``clock_timestamp()``, not ``now()``: taken after the lock, so captures that waited for one
#: another still get increasing times.
INFO_SQL = """
SELECT clock_timestamp() AS captured_at, i.stats_reset, i.dealloc
FROM pg_stat_statements_info AS i
"""

#: pg_stat_statements 1.8 (PostgreSQL 13) has no pg_stat_statements_info.
INFO_13_SQL = """
SELECT clock_timestamp() AS captured_at, NULL::timestamptz AS stats_reset, NULL::bigint AS dealloc
"""

INSERT_CAPTURE_SQL = """
INSERT INTO dbops_monitor.captures
    (captured_at, interval_s, stats_reset, entries, dealloc, reset_detected, baseline)
VALUES
    (%(captured_at)s, %(interval_s)s, %(stats_reset)s, 0, %(dealloc)s, %(reset_detected)s,
     %(baseline)s)
RETURNING id
"""

#: The heart of a capture, in one statement so that the deltas and the new baseline come from
#: the same read of pg_stat_statements (two reads would lose the calls made in between).
#: ``restarted``: the entry is in the baseline but some counter went down, or the whole view
#: was reset; it is counted from zero. A new entry is counted from zero too.
DELTAS_SQL = """
WITH cur AS MATERIALIZED (
    SELECT s.queryid,
           s.userid,
           s.dbid,
           sum(s.calls)::bigint AS calls,
           sum(s.total_exec_time)::float8 AS total_exec_time_ms,
           sum(s.rows)::bigint AS rows,
           sum(s.shared_blks_hit)::bigint AS shared_blks_hit,
           sum(s.shared_blks_read)::bigint AS shared_blks_read,
           sum(s.temp_blks_written)::bigint AS temp_blks_written,
           sum(s.total_plan_time)::float8 AS total_plan_time_ms
    FROM pg_stat_statements(false) AS s
    WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND s.queryid IS NOT NULL
    GROUP BY s.queryid, s.userid, s.dbid
), cmp AS MATERIALIZED (
    SELECT c.queryid,
           c.userid,
           c.dbid,
           c.calls,
           c.total_exec_time_ms,
           c.rows,
           c.shared_blks_hit,
           c.shared_blks_read,
           c.temp_blks_written,
           c.total_plan_time_ms,
           b.queryid IS NULL AS is_new,
           b.queryid IS NOT NULL AND (
               %(reset_all)s
               OR c.calls < b.calls
               OR c.total_exec_time_ms < b.total_exec_time_ms
               OR c.rows < b.rows
               OR c.shared_blks_hit < b.shared_blks_hit
               OR c.shared_blks_read < b.shared_blks_read
               OR c.temp_blks_written < b.temp_blks_written
               OR c.total_plan_time_ms < b.total_plan_time_ms
           ) AS restarted,
           b.calls AS base_calls,
           b.total_exec_time_ms AS base_total_exec_time_ms,
           b.rows AS base_rows,
           b.shared_blks_hit AS base_shared_blks_hit,
           b.shared_blks_read AS base_shared_blks_read,
           b.temp_blks_written AS base_temp_blks_written,
           b.total_plan_time_ms AS base_total_plan_time_ms
    FROM cur AS c
    LEFT JOIN dbops_monitor.baseline AS b
      ON b.queryid = c.queryid AND b.userid = c.userid AND b.dbid = c.dbid
), delta AS (
    SELECT queryid,
           userid,
           dbid,
           CASE WHEN is_new OR restarted THEN calls ELSE calls - base_calls END AS calls,
           CASE WHEN is_new OR restarted THEN total_exec_time_ms
                ELSE total_exec_time_ms - base_total_exec_time_ms END AS total_exec_time_ms,
           CASE WHEN is_new OR restarted THEN rows ELSE rows - base_rows END AS rows,
           CASE WHEN is_new OR restarted THEN shared_blks_hit
                ELSE shared_blks_hit - base_shared_blks_hit END AS shared_blks_hit,
           CASE WHEN is_new OR restarted THEN shared_blks_read
                ELSE shared_blks_read - base_shared_blks_read END AS shared_blks_read,
           CASE WHEN is_new OR restarted THEN temp_blks_written
                ELSE temp_blks_written - base_temp_blks_written END AS temp_blks_written,
           CASE WHEN is_new OR restarted THEN total_plan_time_ms
                ELSE total_plan_time_ms - base_total_plan_time_ms END AS total_plan_time_ms
    FROM cmp
), sampled AS (
    INSERT INTO dbops_monitor.statement_samples
        (capture_id, captured_at, queryid, userid, dbid, interval_s, calls,
         total_exec_time_ms, rows, shared_blks_hit, shared_blks_read, temp_blks_written,
         total_plan_time_ms)
    SELECT %(capture_id)s, %(captured_at)s, d.queryid, d.userid, d.dbid, %(interval_s)s,
           d.calls, d.total_exec_time_ms, d.rows, d.shared_blks_hit, d.shared_blks_read,
           d.temp_blks_written, d.total_plan_time_ms
    FROM delta AS d
    WHERE NOT %(baseline)s AND d.calls > 0
    ORDER BY d.total_exec_time_ms DESC, d.calls DESC
    LIMIT %(limit)s
    RETURNING queryid, userid, dbid
), kept AS (
    INSERT INTO dbops_monitor.baseline AS b
        (queryid, userid, dbid, calls, total_exec_time_ms, rows, shared_blks_hit,
         shared_blks_read, temp_blks_written, total_plan_time_ms, captured_at)
    SELECT c.queryid, c.userid, c.dbid, c.calls, c.total_exec_time_ms, c.rows,
           c.shared_blks_hit, c.shared_blks_read, c.temp_blks_written, c.total_plan_time_ms,
           %(captured_at)s
    FROM cur AS c
    ON CONFLICT (queryid, userid, dbid) DO UPDATE
    SET calls = excluded.calls,
        total_exec_time_ms = excluded.total_exec_time_ms,
        rows = excluded.rows,
        shared_blks_hit = excluded.shared_blks_hit,
        shared_blks_read = excluded.shared_blks_read,
        temp_blks_written = excluded.temp_blks_written,
        total_plan_time_ms = excluded.total_plan_time_ms,
        captured_at = excluded.captured_at
    WHERE (b.calls, b.total_exec_time_ms, b.rows, b.shared_blks_hit, b.shared_blks_read,
           b.temp_blks_written, b.total_plan_time_ms)
          IS DISTINCT FROM
          (excluded.calls, excluded.total_exec_time_ms, excluded.rows, excluded.shared_blks_hit,
           excluded.shared_blks_read, excluded.temp_blks_written, excluded.total_plan_time_ms)
    RETURNING 1
), gone AS (
    DELETE FROM dbops_monitor.baseline AS b
    WHERE NOT EXISTS (
        SELECT 1 FROM cur AS c
        WHERE c.queryid = b.queryid AND c.userid = b.userid AND c.dbid = b.dbid
    )
    RETURNING 1
), seen AS (
    UPDATE dbops_monitor.statements AS t
    SET last_seen = %(captured_at)s
    FROM sampled AS s
    WHERE t.queryid = s.queryid AND t.userid = s.userid AND t.dbid = s.dbid
    RETURNING 1
)
SELECT (SELECT count(*) FROM cur)::int AS entries,
       (SELECT count(*) FROM sampled)::int AS samples,
       (SELECT count(*) FROM cmp WHERE restarted)::int AS restarted
"""

#: Sampled entries of this capture whose text is not stored yet (usually none: cheap check
#: before reading the texts, which is the slow part of pg_stat_statements).
MISSING_TEXTS_SQL = """
SELECT count(*)::int AS missing
FROM dbops_monitor.statement_samples AS x
WHERE x.capture_id = %(capture_id)s
  AND NOT EXISTS (
      SELECT 1 FROM dbops_monitor.statements AS t
      WHERE t.queryid = x.queryid AND t.userid = x.userid AND t.dbid = x.dbid
  )
"""

#: Texts are stored redacted (``dbops.redact``): the history is readable by the read-only role.
INSERT_TEXTS_SQL = f"""
INSERT INTO dbops_monitor.statements (queryid, userid, dbid, query, first_seen, last_seen)
SELECT DISTINCT ON (s.queryid, s.userid, s.dbid)
       s.queryid, s.userid, s.dbid, left({redact_sql("s.query")}, %(chars)s),
       %(captured_at)s, %(captured_at)s
FROM pg_stat_statements(true) AS s
JOIN dbops_monitor.statement_samples AS x
  ON x.queryid = s.queryid AND x.userid = s.userid AND x.dbid = s.dbid
 AND x.capture_id = %(capture_id)s
WHERE s.query IS NOT NULL
ORDER BY s.queryid, s.userid, s.dbid
ON CONFLICT (queryid, userid, dbid) DO NOTHING
"""

DATABASE_SAMPLE_SQL = """
INSERT INTO dbops_monitor.database_samples
    (capture_id, captured_at, size_bytes, numbackends, xact_commit, xact_rollback, temp_bytes,
     deadlocks, blks_hit, blks_read)
SELECT %(capture_id)s, %(captured_at)s, pg_database_size(d.datid), d.numbackends,
       d.xact_commit, d.xact_rollback, d.temp_bytes, d.deadlocks, d.blks_hit, d.blks_read
FROM pg_stat_database AS d
WHERE d.datname = current_database()
"""

#: The largest ``monitor_max_tables`` tables and materialized views, outside pg_* schemas.
TABLE_SAMPLES_SQL = """
INSERT INTO dbops_monitor.table_samples
    (capture_id, captured_at, schema_name, table_name, total_bytes, live_rows, dead_rows)
SELECT %(capture_id)s, %(captured_at)s, t.schema_name, t.table_name, t.total_bytes,
       t.live_rows, t.dead_rows
FROM (
    SELECT n.nspname::text AS schema_name,
           c.relname::text AS table_name,
           pg_total_relation_size(c.oid) AS total_bytes,
           s.n_live_tup AS live_rows,
           s.n_dead_tup AS dead_rows
    FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_all_tables AS s ON s.relid = c.oid
    WHERE c.relkind IN ('r', 'm')
      AND n.nspname NOT LIKE 'pg\\_%%'
      AND n.nspname <> 'information_schema'
) AS t
WHERE t.total_bytes IS NOT NULL
ORDER BY t.total_bytes DESC, t.schema_name, t.table_name
LIMIT %(limit)s
"""

FINISH_CAPTURE_SQL = """
UPDATE dbops_monitor.captures
SET entries = %(entries)s,
    samples = %(samples)s,
    restarted = %(restarted)s,
    duration_ms = %(duration_ms)s
WHERE id = %(capture_id)s
"""

PRUNE_CUTOFF_SQL = "SELECT now() - make_interval(days => %(days)s) AS cutoff"

PRUNE_STATEMENT_SAMPLES_SQL = """
DELETE FROM dbops_monitor.statement_samples WHERE captured_at < %(cutoff)s
"""

PRUNE_DATABASE_SAMPLES_SQL = """
DELETE FROM dbops_monitor.database_samples WHERE captured_at < %(cutoff)s
"""

PRUNE_TABLE_SAMPLES_SQL = """
DELETE FROM dbops_monitor.table_samples WHERE captured_at < %(cutoff)s
"""

#: The latest capture stays: the next capture's interval starts there.
PRUNE_CAPTURES_SQL = """
DELETE FROM dbops_monitor.captures
WHERE captured_at < %(cutoff)s
  AND id <> (SELECT max(id) FROM dbops_monitor.captures)
"""

#: The processes' pool and cache samples (migration 0011), and reports of processes that
#: have been silent since the cutoff.
PRUNE_PROCESS_SAMPLES_SQL = """
DELETE FROM dbops_monitor.process_samples WHERE reported_at < %(cutoff)s
"""
PRUNE_PROCESS_REPORTS_SQL = """
DELETE FROM dbops_monitor.process_reports WHERE reported_at < %(cutoff)s
"""

#: One point per process sample from ``since``, oldest first; rates against the process's
#: previous sample in the window (none for its first one, or if a counter went down).
PROCESS_SERIES_SQL = """
SELECT s.process, coalesce(r.name, '?') AS name, coalesce(r.pid, 0) AS pid, s.reported_at,
       s.pool_size AS size, s.pool_idle AS idle, greatest(s.pool_size - s.pool_idle, 0) AS in_use,
       s.pool_waiting AS waiting, s.pool_max AS max_size, s.requests, s.requests_wait_ms,
       s.timeouts, s.cache_hits, s.cache_misses, s.calls, s.errors,
       CASE WHEN s.calls >= lag(s.calls) OVER w
            THEN (s.calls - lag(s.calls) OVER w)
                 / nullif(extract(epoch FROM s.reported_at - lag(s.reported_at) OVER w), 0)
       END::float8 AS calls_per_s,
       CASE WHEN s.requests >= lag(s.requests) OVER w
            THEN (s.requests - lag(s.requests) OVER w)
                 / nullif(extract(epoch FROM s.reported_at - lag(s.reported_at) OVER w), 0)
       END::float8 AS requests_per_s
  FROM dbops_monitor.process_samples AS s
  LEFT JOIN dbops_monitor.process_reports AS r USING (process)
 WHERE s.reported_at >= %(since)s
WINDOW w AS (PARTITION BY s.process ORDER BY s.reported_at)
 ORDER BY s.reported_at, s.process
"""

#: Texts no sample refers to any more.
PRUNE_STATEMENTS_SQL = """
DELETE FROM dbops_monitor.statements AS t
WHERE t.last_seen < %(cutoff)s
  AND NOT EXISTS (
      SELECT 1 FROM dbops_monitor.statement_samples AS x
      WHERE x.queryid = t.queryid AND x.userid = t.userid AND x.dbid = t.dbid
  )
"""

STATEMENT_SERIES_SQL = """
SELECT x.captured_at,
       max(x.interval_s)::float8 AS interval_s,
       sum(x.calls)::bigint AS calls,
       (sum(x.calls) / greatest(max(x.interval_s), 0.001))::float8 AS calls_per_s,
       sum(x.total_exec_time_ms)::float8 AS total_exec_time_ms,
       (sum(x.total_exec_time_ms) / sum(x.calls))::float8 AS mean_exec_time_ms,
       sum(x.rows)::bigint AS rows
FROM dbops_monitor.statement_samples AS x
WHERE x.queryid = %(queryid)s
  AND x.captured_at >= coalesce(%(since)s::timestamptz, '-infinity')
  AND x.captured_at <= coalesce(%(until)s::timestamptz, 'infinity')
GROUP BY x.capture_id, x.captured_at
ORDER BY x.captured_at
"""

#: ``{order}`` is one of the output columns in :data:`ORDERS` (an identifier, never input).
TOP_STATEMENTS_SQL = """
SELECT x.queryid,
       (SELECT t.query FROM dbops_monitor.statements AS t
        WHERE t.queryid = x.queryid
        ORDER BY t.last_seen DESC
        LIMIT 1) AS query,
       sum(x.calls)::bigint AS calls,
       sum(x.total_exec_time_ms)::float8 AS total_exec_time_ms,
       (sum(x.total_exec_time_ms) / sum(x.calls))::float8 AS mean_exec_time_ms,
       sum(x.rows)::bigint AS rows,
       sum(x.shared_blks_hit)::bigint AS shared_blks_hit,
       sum(x.shared_blks_read)::bigint AS shared_blks_read,
       sum(x.temp_blks_written)::bigint AS temp_blks_written,
       sum(x.total_plan_time_ms)::float8 AS total_plan_time_ms,
       count(DISTINCT x.capture_id)::int AS samples,
       min(x.captured_at) AS first_sample,
       max(x.captured_at) AS last_sample
FROM dbops_monitor.statement_samples AS x
WHERE x.captured_at >= %(since)s
  AND x.captured_at <= coalesce(%(until)s::timestamptz, 'infinity')
GROUP BY x.queryid
ORDER BY {order} DESC, x.queryid
LIMIT %(limit)s
"""

#: ``*_per_s`` since the previous sample of the window; NULL when a counter went down.
DATABASE_SERIES_SQL = """
SELECT d.captured_at,
       d.size_bytes,
       d.numbackends,
       d.xact_commit,
       d.xact_rollback,
       d.temp_bytes,
       d.deadlocks,
       d.blks_hit,
       d.blks_read,
       CASE WHEN d.xact_commit >= lag(d.xact_commit) OVER w
            THEN ((d.xact_commit - lag(d.xact_commit) OVER w)
                  / greatest(extract(epoch FROM d.captured_at - lag(d.captured_at) OVER w),
                             0.001))::float8
       END AS commits_per_s,
       CASE WHEN d.xact_rollback >= lag(d.xact_rollback) OVER w
            THEN ((d.xact_rollback - lag(d.xact_rollback) OVER w)
                  / greatest(extract(epoch FROM d.captured_at - lag(d.captured_at) OVER w),
                             0.001))::float8
       END AS rollbacks_per_s
FROM dbops_monitor.database_samples AS d
WHERE d.captured_at >= %(since)s
WINDOW w AS (ORDER BY d.captured_at)
ORDER BY d.captured_at
"""

TABLE_GROWTH_SQL = """
WITH ranked AS (
    SELECT t.schema_name,
           t.table_name,
           t.captured_at,
           t.total_bytes,
           t.live_rows,
           t.dead_rows,
           row_number() OVER (PARTITION BY t.schema_name, t.table_name
                              ORDER BY t.captured_at) AS from_first,
           row_number() OVER (PARTITION BY t.schema_name, t.table_name
                              ORDER BY t.captured_at DESC) AS from_last
    FROM dbops_monitor.table_samples AS t
    WHERE t.captured_at >= %(since)s
)
SELECT f.schema_name AS schema,
       f.table_name AS "table",
       f.captured_at AS first_captured_at,
       l.captured_at AS last_captured_at,
       f.total_bytes AS first_bytes,
       l.total_bytes AS last_bytes,
       l.total_bytes - f.total_bytes AS growth_bytes,
       f.live_rows AS first_live_rows,
       l.live_rows AS last_live_rows,
       l.dead_rows AS last_dead_rows
FROM ranked AS f
JOIN ranked AS l ON l.schema_name = f.schema_name AND l.table_name = f.table_name
WHERE f.from_first = 1 AND l.from_last = 1
ORDER BY growth_bytes DESC, l.total_bytes DESC, f.schema_name, f.table_name
LIMIT %(limit)s
"""

#: ``order`` of :func:`top_statements` -> the output column it sorts by (largest first).
ORDERS: Mapping[str, str] = {
    "total_time": "total_exec_time_ms",
    "calls": "calls",
    "mean_time": "mean_exec_time_ms",
    "rows": "rows",
    "blks_read": "shared_blks_read",
    "temp": "temp_blks_written",
    "plan_time": "total_plan_time_ms",
}

MISSING_SCHEMA_MESSAGE = "the history schema dbops_monitor is missing: run `dbops migrate`"


@dataclass(frozen=True)
class _Version:
    version: str


@dataclass(frozen=True)
class _Previous:
    id: int
    captured_at: datetime
    stats_reset: datetime | None


@dataclass(frozen=True)
class _Info:
    captured_at: datetime
    stats_reset: datetime | None
    dealloc: int | None


@dataclass(frozen=True)
class _Id:
    id: int


@dataclass(frozen=True)
class _Counts:
    entries: int
    samples: int
    restarted: int


@dataclass(frozen=True)
class _Missing:
    missing: int


@dataclass(frozen=True)
class _Cutoff:
    cutoff: datetime


def _one(
    conn: psycopg.Connection[Any],
    query: str | sql.Composed,
    row_type: type[T],
    params: Mapping[str, Any] | None = None,
) -> T | None:
    """One row of ``query`` in the caller's transaction (its timeouts already set)."""
    with conn.cursor(row_factory=class_row(row_type)) as cur:
        return cur.execute(query, params).fetchone()


def _begin(conn: psycopg.Connection[Any], settings: Settings) -> None:
    """Set this transaction's timeouts and wait for the history lock."""
    timeout = str(settings.history.capture_timeout_ms)
    conn.execute(SET_TIMEOUTS_SQL, {"timeout": timeout})
    conn.execute(LOCK_SQL, {"key": CAPTURE_LOCK_KEY})


def capture(db: Database, settings: Settings) -> CaptureResult:
    """Store what pg_stat_statements grew by since the previous capture (never resets it).

    The first capture only records the baseline. Later ones write one sample per entry with
    new calls (at most ``history_top_statements``, top by time in the interval), its text the
    first time it is seen, a database sample and the sizes of the largest tables.

    Args:
        db: the database to capture (its current database's entries only).
        settings: ``history_*`` limits and timeouts.

    Returns:
        What was stored.

    Raises:
        CollectorUnavailable: pg_stat_statements is not installed (or too old).
        PendingMigrations: the ``dbops_monitor`` schema does not exist yet.
        OperationTimeout: the capture took longer than ``history_capture_timeout_ms``
            (``LockTimeout`` when another capture held the lock that long).
    """
    started = time.perf_counter()
    with db.connection() as conn:
        _begin(conn, settings)
        version = _one(conn, EXTENSION_SQL, _Version)
        if version is None:
            raise CollectorUnavailable(
                "pg_stat_statements is not installed in this database", hint=INSTALL_HINT
            )
        if version_tuple(version.version) < (1, 8):
            raise CollectorUnavailable(
                f"pg_stat_statements {version.version} is older than 1.8",
                hint="ALTER EXTENSION pg_stat_statements UPDATE;",
            )
        try:
            previous = _one(conn, PREVIOUS_SQL, _Previous)
        except pg_errors.UndefinedTable as exc:
            raise PendingMigrations(MISSING_SCHEMA_MESSAGE) from exc
        info_sql = INFO_SQL if version_tuple(version.version) >= (1, 9) else INFO_13_SQL
        info = _one(conn, info_sql, _Info)
        assert info is not None  # one row, always
        baseline = previous is None
        reset_all = (
            previous is not None
            and previous.stats_reset is not None
            and info.stats_reset is not None
            and info.stats_reset != previous.stats_reset
        )
        interval_s = (
            None
            if previous is None
            else max((info.captured_at - previous.captured_at).total_seconds(), 0.0)
        )
        values: dict[str, Any] = {
            "captured_at": info.captured_at,
            "interval_s": interval_s,
            "stats_reset": info.stats_reset,
            "dealloc": info.dealloc,
            "reset_detected": reset_all,
            "baseline": baseline,
        }
        row = _one(conn, INSERT_CAPTURE_SQL, _Id, values)
        assert row is not None
        values["capture_id"] = row.id
        counts = _one(
            conn,
            DELTAS_SQL,
            _Counts,
            {
                **values,
                "interval_s": interval_s or 0.0,
                "reset_all": reset_all,
                "limit": settings.history.top_statements,
            },
        )
        assert counts is not None
        new_statements = 0
        missing = _one(conn, MISSING_TEXTS_SQL, _Missing, values)
        if missing is not None and missing.missing:
            new_statements = conn.execute(
                INSERT_TEXTS_SQL, {**values, "chars": settings.monitor.query_text_chars}
            ).rowcount
        conn.execute(DATABASE_SAMPLE_SQL, values)
        conn.execute(TABLE_SAMPLES_SQL, {**values, "limit": settings.monitor.max_tables})
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        conn.execute(
            FINISH_CAPTURE_SQL,
            {
                "capture_id": row.id,
                "entries": counts.entries,
                "samples": counts.samples,
                "restarted": counts.restarted,
                "duration_ms": duration_ms,
            },
        )
    return CaptureResult(
        capture_id=row.id,
        captured_at=info.captured_at,
        baseline=baseline,
        interval_s=interval_s,
        entries=counts.entries,
        samples=counts.samples,
        restarted=counts.restarted,
        reset_detected=reset_all,
        new_statements=max(new_statements, 0),
        dealloc=info.dealloc,
        stats_reset=info.stats_reset,
        duration_ms=duration_ms,
    )


def prune(db: Database, settings: Settings) -> PruneResult:
    """Delete history older than ``history_retention_days``, and texts no sample uses.

    The latest capture is kept whatever its age: the next capture's interval starts there.
    Runs under the capture lock, so it never deletes under a running capture.
    """
    with db.connection() as conn:
        _begin(conn, settings)
        try:
            cutoff_row = _one(
                conn, PRUNE_CUTOFF_SQL, _Cutoff, {"days": settings.history.retention_days}
            )
            assert cutoff_row is not None
            params = {"cutoff": cutoff_row.cutoff}
            statement_samples = conn.execute(PRUNE_STATEMENT_SAMPLES_SQL, params).rowcount
        except pg_errors.UndefinedTable as exc:
            raise PendingMigrations(MISSING_SCHEMA_MESSAGE) from exc
        database_samples = conn.execute(PRUNE_DATABASE_SAMPLES_SQL, params).rowcount
        table_samples = conn.execute(PRUNE_TABLE_SAMPLES_SQL, params).rowcount
        captures = conn.execute(PRUNE_CAPTURES_SQL, params).rowcount
        statements = conn.execute(PRUNE_STATEMENTS_SQL, params).rowcount
        process_samples = process_reports = 0
        if _exists(conn, "dbops_monitor.process_samples"):  # migration 0011
            process_samples = conn.execute(PRUNE_PROCESS_SAMPLES_SQL, params).rowcount
            process_reports = conn.execute(PRUNE_PROCESS_REPORTS_SQL, params).rowcount
    return PruneResult(
        cutoff=cutoff_row.cutoff,
        captures=captures,
        statement_samples=statement_samples,
        database_samples=database_samples,
        table_samples=table_samples,
        statements=statements,
        process_samples=process_samples,
        process_reports=process_reports,
    )


def _exists(conn: psycopg.Connection[Any], relation: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
    return bool(row and row[0])


def _read(db: Database, query: str | sql.Composed, row_type: type[T], **params: Any) -> list[T]:
    with db.read() as conn:
        try:
            return fetch(
                conn,
                query,  # type: ignore[arg-type]
                row_type,
                params,
                timeout_ms=db.settings.monitor.collector_timeout_ms,
            )
        except pg_errors.UndefinedTable as exc:
            raise PendingMigrations(MISSING_SCHEMA_MESSAGE) from exc


def statement_series(
    db: Database,
    queryid: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[StatementPoint, ...]:
    """One point per capture in which ``queryid`` ran, oldest first (all roles summed).

    ``calls_per_s`` is the calls of the interval over its length (``interval_s``, the time
    since the previous capture).
    """
    return tuple(
        _read(db, STATEMENT_SERIES_SQL, StatementPoint, queryid=queryid, since=since, until=until)
    )


def top_statements(
    db: Database,
    *,
    since: datetime,
    limit: int = 20,
    order: str = "total_time",
    until: datetime | None = None,
) -> tuple[StatementTotal, ...]:
    """The statements with the largest sums of deltas from ``since`` (to ``until``).

    Args:
        db: the database whose history to read.
        since: start of the window (inclusive).
        limit: most statements returned.
        order: one of :data:`ORDERS` (``total_time``, ``calls``, ``mean_time``, ``rows``,
            ``blks_read``, ``temp``, ``plan_time``).
        until: end of the window (inclusive); open when ``None``.

    Raises:
        InvalidInput: ``order`` is not one of :data:`ORDERS`.
    """
    if order not in ORDERS:
        raise InvalidInput(
            f"order must be one of {', '.join(sorted(ORDERS))}, not {order!r}", field="order"
        )
    query = sql.SQL(TOP_STATEMENTS_SQL).format(order=sql.Identifier(ORDERS[order]))
    return tuple(_read(db, query, StatementTotal, since=since, until=until, limit=limit))


def database_series(db: Database, *, since: datetime) -> tuple[DatabasePoint, ...]:
    """Database size and counters at each capture from ``since``, oldest first."""
    return tuple(_read(db, DATABASE_SERIES_SQL, DatabasePoint, since=since))


def process_series(db: Database, *, since: datetime) -> tuple[ProcessPoint, ...]:
    """The application processes' pool and cache totals at each sample from ``since``.

    One point per process and sample (at most one every 5 s a process, migration 0011),
    oldest first; ``calls_per_s`` and ``requests_per_s`` against the process's previous point.
    """
    return tuple(_read(db, PROCESS_SERIES_SQL, ProcessPoint, since=since))


def table_growth(db: Database, *, since: datetime, limit: int = 20) -> tuple[TableGrowth, ...]:
    """Tables that grew most between their first and last sample from ``since``."""
    return tuple(_read(db, TABLE_GROWTH_SQL, TableGrowth, since=since, limit=limit))
