"""Tables: rows, scans, sizes, cache hits and (auto)vacuum/analyze times."""

from __future__ import annotations

from typing import Any

import psycopg

from dbops.config import MonitorSettings
from dbops.monitoring._fetch import fetch
from dbops.monitoring.collectors._section import Part, Section, rows
from dbops.monitoring.snapshot import TableStat

__all__ = ["SECTION", "collect_tables"]

#: User tables, largest first (``monitor_max_tables`` of them).
TABLES_SQL = """
SELECT s.schemaname::text AS schema,
       s.relname::text AS name,
       s.n_live_tup AS live_rows,
       s.n_dead_tup AS dead_rows,
       s.seq_scan AS seq_scans,
       s.seq_tup_read AS seq_tuples_read,
       s.idx_scan AS index_scans,
       pg_relation_size(s.relid) AS table_bytes,
       pg_indexes_size(s.relid) AS indexes_bytes,
       coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS toast_bytes,
       pg_total_relation_size(s.relid) AS total_bytes,
       io.heap_blks_hit,
       io.heap_blks_read,
       s.n_mod_since_analyze AS modifications_since_analyze,
       s.last_vacuum,
       s.last_autovacuum,
       s.last_analyze,
       s.last_autoanalyze
FROM pg_stat_user_tables AS s
JOIN pg_class AS c ON c.oid = s.relid
LEFT JOIN pg_statio_user_tables AS io ON io.relid = s.relid
ORDER BY total_bytes DESC, s.schemaname, s.relname
LIMIT %(limit)s
"""


def collect_tables(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> list[TableStat]:
    """The largest ``monitor_max_tables`` user tables."""
    return fetch(
        conn,
        TABLES_SQL,
        TableStat,
        {"limit": settings.max_tables},
        timeout_ms=settings.collector_timeout_ms,
    )


#: The snapshot's ``tables``.
SECTION = Section("tables", (Part("tables", collect_tables),), rows("tables"))
