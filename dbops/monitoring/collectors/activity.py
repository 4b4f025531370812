"""Activity: client connections by state/application/user, open sessions, lock waits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from dbops.config import MonitorSettings
from dbops.monitoring._fetch import fetch
from dbops.monitoring.collectors._section import Part, Section
from dbops.monitoring.snapshot import ActivityStat, BlockedPair, CountBy, SessionStat

__all__ = ["SECTION", "ConnectionCounts", "blocked_pairs", "connection_counts", "open_sessions"]

#: Client backends of the whole cluster, counted four ways at once (GROUPING SETS); the
#: ``GROUPING()`` bitmask says which: 7 = by state, 11 = by application, 13 = by user (role),
#: 14 = by client address (``local`` for the unix socket), 15 = total.
COUNTS_SQL = """
SELECT GROUPING(a.state, a.application_name, a.usename, client) AS grouping,
       coalesce(a.state, a.application_name, a.usename::text, client) AS key,
       count(*) AS count,
       current_setting('max_connections')::int AS max_connections
FROM pg_stat_activity AS a,
     LATERAL (SELECT coalesce(host(a.client_addr), 'local') AS client) AS c
WHERE a.backend_type = 'client backend'
GROUP BY GROUPING SETS ((a.state), (a.application_name), (a.usename), (client), ())
ORDER BY grouping, count DESC, key
"""

#: Sessions running a statement or holding a transaction open, oldest first.
SESSIONS_SQL = """
SELECT a.pid,
       a.usename::text AS user,
       a.application_name AS application,
       a.datname::text AS database,
       a.state,
       CASE WHEN a.state = 'active'
            THEN extract(epoch FROM clock_timestamp() - a.query_start)::float8 END AS query_s,
       extract(epoch FROM clock_timestamp() - a.state_change)::float8 AS state_s,
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS transaction_s,
       a.wait_event_type,
       a.wait_event,
       left(a.query, %(chars)s) AS query
FROM pg_stat_activity AS a
WHERE a.backend_type = 'client backend'
  AND a.pid <> pg_backend_pid()
  AND (a.state = 'active' OR a.xact_start IS NOT NULL)
ORDER BY coalesce(a.xact_start, a.query_start) NULLS LAST, a.pid
LIMIT %(limit)s
"""

#: Each lock-waiting session with each session it waits for (``pg_blocking_pids``, called on
#: lock waiters only: it takes the lock manager's locks).
BLOCKED_SQL = """
SELECT w.pid AS blocked_pid,
       w.usename::text AS blocked_user,
       left(w.query, %(chars)s) AS blocked_query,
       extract(epoch FROM clock_timestamp() - w.query_start)::float8 AS blocked_s,
       w.wait_event_type,
       w.wait_event,
       b.pid AS blocking_pid,
       h.usename::text AS blocking_user,
       h.state AS blocking_state,
       left(h.query, %(chars)s) AS blocking_query
FROM pg_stat_activity AS w
CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS b (pid)
LEFT JOIN pg_stat_activity AS h ON h.pid = b.pid
WHERE w.wait_event_type = 'Lock'
ORDER BY w.query_start, w.pid, b.pid
LIMIT %(limit)s
"""


@dataclass(frozen=True)
class _CountRow:
    grouping: int
    key: str | None
    count: int
    max_connections: int


@dataclass(frozen=True)
class ConnectionCounts:
    """Client connections of the cluster, total and by state, application, user and client."""

    max_connections: int
    total: int
    by_state: tuple[CountBy, ...]
    by_application: tuple[CountBy, ...]
    by_user: tuple[CountBy, ...]
    by_client: tuple[CountBy, ...]


def connection_counts(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings
) -> ConnectionCounts:
    """Connection counts and ``max_connections`` in one query."""
    rows = fetch(conn, COUNTS_SQL, _CountRow, timeout_ms=settings.collector_timeout_ms)

    def group(bits: int) -> tuple[CountBy, ...]:
        return tuple(CountBy(r.key, r.count) for r in rows if r.grouping == bits)

    total = next((r.count for r in rows if r.grouping == 15), 0)
    max_connections = rows[0].max_connections if rows else 0
    return ConnectionCounts(max_connections, total, group(7), group(11), group(13), group(14))


def open_sessions(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> list[SessionStat]:
    """Active and in-transaction sessions (not this one), oldest first."""
    return fetch(
        conn,
        SESSIONS_SQL,
        SessionStat,
        {"chars": settings.query_text_chars, "limit": settings.max_sessions},
        timeout_ms=settings.collector_timeout_ms,
    )


def blocked_pairs(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> list[BlockedPair]:
    """(waiting session, blocking session) pairs for every lock wait."""
    return fetch(
        conn,
        BLOCKED_SQL,
        BlockedPair,
        {"chars": settings.query_text_chars, "limit": settings.max_sessions},
        timeout_ms=settings.collector_timeout_ms,
    )


def _activity(results: Mapping[str, Any]) -> ActivityStat:
    counts: ConnectionCounts | None = results.get("activity.connections")
    sessions = results.get("activity.sessions")
    blocked = results.get("activity.blocked")
    return ActivityStat(
        max_connections=counts.max_connections if counts else None,
        total=counts.total if counts else None,
        by_state=counts.by_state if counts else None,
        by_application=counts.by_application if counts else None,
        by_user=counts.by_user if counts else None,
        sessions=None if sessions is None else tuple(sessions),
        blocked=None if blocked is None else tuple(blocked),
        by_client=counts.by_client if counts else None,
    )


#: The snapshot's ``activity``: connection counts, open sessions, lock waits.
SECTION = Section(
    "activity",
    (
        Part("activity.connections", connection_counts),
        Part("activity.sessions", open_sessions),
        Part("activity.blocked", blocked_pairs),
    ),
    _activity,
)
