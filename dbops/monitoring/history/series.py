"""Reads of the history for the dashboard and notebooks: series, top statements, growth."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from psycopg import errors as pg_errors
from psycopg import sql

from dbops.db import Database
from dbops.errors import InvalidInput, PendingMigrations
from dbops.monitoring._fetch import fetch
from dbops.monitoring.history._common import MISSING_SCHEMA_MESSAGE
from dbops.monitoring.snapshot import (
    DatabasePoint,
    ProcessPoint,
    StatementPoint,
    StatementTotal,
    TableGrowth,
)

__all__ = [
    "DATABASE_SERIES_SQL",
    "ORDERS",
    "PROCESS_SERIES_SQL",
    "STATEMENT_SERIES_SQL",
    "TABLE_GROWTH_SQL",
    "TOP_STATEMENTS_SQL",
    "database_series",
    "process_series",
    "statement_series",
    "table_growth",
    "top_statements",
]

T = TypeVar("T")


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
