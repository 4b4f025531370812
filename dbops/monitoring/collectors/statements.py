"""``pg_stat_statements``: the top statements by total time, and the table's own state.

Ranking reads ``pg_stat_statements(false)`` (no query text); the text is fetched afterwards
for the top N only and cut on the server, so 5,000 entries do not make collection slow.
Columns follow the extension version: 1.8 (PostgreSQL 13) is the oldest supported, 1.11
(PostgreSQL 17) renamed ``blk_read_time`` to ``shared_blk_read_time``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from dbops.config import MonitorSettings
from dbops.monitoring._fetch import CollectorUnavailable, fetch, fetch_one, version_tuple
from dbops.monitoring.collectors._section import Part, Section, only
from dbops.monitoring.snapshot import QueryStat, StatementsStat
from dbops.redact import SECRET_PATTERN_SQL, redact_sql

__all__ = [
    "SECTION",
    "collect_statements",
    "extension_version",
    "statement_summary",
    "top_statements",
]

INSTALL_HINT = (
    "CREATE EXTENSION pg_stat_statements; (the server also needs "
    "shared_preload_libraries = 'pg_stat_statements' and a restart)"
)

EXTENSION_VERSION_SQL = """
SELECT extversion AS version FROM pg_extension WHERE extname = 'pg_stat_statements'
"""

#: Entries are counted cluster-wide (``pg_stat_statements.max`` is); totals for this database.
SUMMARY_SQL = """
SELECT count(*) AS entries,
       coalesce(sum(s.calls) FILTER (WHERE s.dbid = d.oid), 0)::bigint AS total_calls,
       coalesce(sum(s.total_exec_time) FILTER (WHERE s.dbid = d.oid), 0)::float8
         AS total_exec_time_ms,
       current_setting('pg_stat_statements.max', true)::int AS max_entries,
       NULL::bigint AS dealloc,
       NULL::timestamptz AS stats_reset
FROM pg_stat_statements(false) AS s
CROSS JOIN (SELECT oid FROM pg_database WHERE datname = current_database()) AS d
"""

#: 1.9+ (PostgreSQL 14+): evictions and the reset time come from pg_stat_statements_info.
SUMMARY_WITH_INFO_SQL = """
SELECT count(*) AS entries,
       coalesce(sum(s.calls) FILTER (WHERE s.dbid = d.oid), 0)::bigint AS total_calls,
       coalesce(sum(s.total_exec_time) FILTER (WHERE s.dbid = d.oid), 0)::float8
         AS total_exec_time_ms,
       current_setting('pg_stat_statements.max', true)::int AS max_entries,
       (SELECT i.dealloc FROM pg_stat_statements_info AS i) AS dealloc,
       (SELECT i.stats_reset FROM pg_stat_statements_info AS i) AS stats_reset
FROM pg_stat_statements(false) AS s
CROSS JOIN (SELECT oid FROM pg_database WHERE datname = current_database()) AS d
"""

#: Top N of this database by total execution time, without the text. ``{blk}`` names the I/O
#: timing columns: ``blk_`` up to pg_stat_statements 1.10, ``shared_blk_`` from 1.11
#: (PostgreSQL 17). ``%(limit)s`` is the driver's placeholder (``str.format`` leaves it).
_TOP_TEMPLATE = """
SELECT s.queryid,
       NULL::text AS query,
       r.rolname::text AS user,
       current_database()::text AS database,
       s.calls,
       s.total_exec_time AS total_exec_time_ms,
       s.mean_exec_time AS mean_exec_time_ms,
       s.max_exec_time AS max_exec_time_ms,
       s.stddev_exec_time AS stddev_exec_time_ms,
       s.rows,
       s.shared_blks_hit,
       s.shared_blks_read,
       s.temp_blks_read,
       s.temp_blks_written,
       s.total_plan_time AS total_plan_time_ms,
       s.{blk}read_time AS blk_read_time_ms,
       s.{blk}write_time AS blk_write_time_ms
FROM pg_stat_statements(false) AS s
LEFT JOIN pg_roles AS r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.total_exec_time DESC
LIMIT %(limit)s
"""
TOP_SQL = _TOP_TEMPLATE.format(blk="blk_")
TOP_17_SQL = _TOP_TEMPLATE.format(blk="shared_blk_")

#: Text of the chosen query ids, redacted then cut on the server (one text per id is enough;
#: redacted first, so a cut cannot leave half a literal the pattern misses).
TEXTS_SQL = f"""
SELECT DISTINCT ON (s.queryid) s.queryid, left({redact_sql("s.query")}, %(chars)s) AS query
FROM pg_stat_statements(true) AS s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.queryid = ANY(%(ids)s)
ORDER BY s.queryid
"""


#: Entries of every database whose text holds a secret-looking literal (a utility statement
#: such as ``ALTER ROLE ... PASSWORD '...'`` keeps its literals in the statistics).
SECRET_TEXTS_SQL = f"""
SELECT count(*) AS n FROM pg_stat_statements(true) AS s WHERE s.query ~* '{SECRET_PATTERN_SQL}'
"""


@dataclass(frozen=True)
class _Version:
    version: str


@dataclass(frozen=True)
class _Summary:
    entries: int
    total_calls: int
    total_exec_time_ms: float
    max_entries: int | None
    dealloc: int | None
    stats_reset: datetime | None


@dataclass(frozen=True)
class _Count:
    n: int


@dataclass(frozen=True)
class _Text:
    queryid: int
    query: str


def extension_version(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> str:
    """The installed version of pg_stat_statements; :class:`CollectorUnavailable` if absent."""
    row = fetch_one(conn, EXTENSION_VERSION_SQL, _Version, timeout_ms=settings.collector_timeout_ms)
    if row is None:
        raise CollectorUnavailable(
            "pg_stat_statements is not installed in this database", hint=INSTALL_HINT
        )
    if version_tuple(row.version) < (1, 8):
        raise CollectorUnavailable(
            f"pg_stat_statements {row.version} is older than 1.8",
            hint="ALTER EXTENSION pg_stat_statements UPDATE;",
        )
    return row.version


def statement_summary(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings, version: str
) -> _Summary:
    """Entries in use vs ``pg_stat_statements.max``, totals, evictions and the reset time."""
    query = SUMMARY_WITH_INFO_SQL if version_tuple(version) >= (1, 9) else SUMMARY_SQL
    row = fetch_one(conn, query, _Summary, timeout_ms=settings.collector_timeout_ms)
    assert row is not None  # an aggregate always returns one row
    return row


def top_statements(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings, version: str
) -> list[QueryStat]:
    """The top ``monitor_top_statements`` statements of this database by total time."""
    query = TOP_17_SQL if version_tuple(version) >= (1, 11) else TOP_SQL
    rows = fetch(
        conn,
        query,
        QueryStat,
        {"limit": settings.top_statements},
        timeout_ms=settings.collector_timeout_ms,
    )
    ids = [row.queryid for row in rows if row.queryid is not None]
    if not ids:
        return rows
    texts = fetch(
        conn,
        TEXTS_SQL,
        _Text,
        {"ids": ids, "chars": settings.query_text_chars},
        timeout_ms=settings.collector_timeout_ms,
    )
    by_id = {t.queryid: t.query for t in texts}
    return [
        replace(row, query=by_id.get(row.queryid) if row.queryid is not None else None)
        for row in rows
    ]


def collect_statements(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings
) -> StatementsStat:
    """The statements section: summary and top statements, or a hint when unavailable."""
    version = extension_version(conn, settings=settings)
    try:
        summary = statement_summary(conn, settings=settings, version=version)
        top = top_statements(conn, settings=settings, version=version)
        secrets = fetch_one(
            conn, SECRET_TEXTS_SQL, _Count, timeout_ms=settings.collector_timeout_ms
        )
    except pg_errors.ObjectNotInPrerequisiteState as exc:
        raise CollectorUnavailable(
            "pg_stat_statements is installed but not loaded",
            hint="shared_preload_libraries = 'pg_stat_statements' (then restart the server)",
        ) from exc
    return StatementsStat(
        top=tuple(top),
        entries=summary.entries,
        max_entries=summary.max_entries,
        total_exec_time_ms=summary.total_exec_time_ms,
        total_calls=summary.total_calls,
        dealloc=summary.dealloc,
        stats_reset=summary.stats_reset,
        extension_version=version,
        secret_texts=secrets.n if secrets else None,
    )


#: The snapshot's ``statements``: the summary and the top statements with their texts.
SECTION = Section("statements", (Part("statements", collect_statements),), only("statements"))
