"""One capture: what pg_stat_statements grew by since the previous one, never reset."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import errors as pg_errors

from dbops.config import Settings
from dbops.db import Database
from dbops.errors import PendingMigrations
from dbops.monitoring._fetch import CollectorUnavailable, version_tuple
from dbops.monitoring.collectors.statements import INSTALL_HINT
from dbops.monitoring.history._common import MISSING_SCHEMA_MESSAGE, begin_locked, one_row
from dbops.monitoring.snapshot import (
    CaptureResult,
)
from dbops.redact import redact_sql

__all__ = [
    "DATABASE_SAMPLE_SQL",
    "DELTAS_SQL",
    "EXTENSION_SQL",
    "FINISH_CAPTURE_SQL",
    "INFO_13_SQL",
    "INFO_SQL",
    "INSERT_CAPTURE_SQL",
    "INSERT_TEXTS_SQL",
    "MISSING_TEXTS_SQL",
    "PREVIOUS_SQL",
    "TABLE_SAMPLES_SQL",
    "capture",
]


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
        begin_locked(conn, settings)
        version = one_row(conn, EXTENSION_SQL, _Version)
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
            previous = one_row(conn, PREVIOUS_SQL, _Previous)
        except pg_errors.UndefinedTable as exc:
            raise PendingMigrations(MISSING_SCHEMA_MESSAGE) from exc
        info_sql = INFO_SQL if version_tuple(version.version) >= (1, 9) else INFO_13_SQL
        info = one_row(conn, info_sql, _Info)
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
        row = one_row(conn, INSERT_CAPTURE_SQL, _Id, values)
        assert row is not None
        values["capture_id"] = row.id
        counts = one_row(
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
        missing = one_row(conn, MISSING_TEXTS_SQL, _Missing, values)
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
