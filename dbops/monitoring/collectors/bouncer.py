"""PgBouncer: ``SHOW POOLS`` and ``SHOW STATS`` on its console (``DBOPS_MONITOR_PGBOUNCER_URL``).

The console speaks only the simple query protocol, so the queries go through psycopg's
``ClientCursor`` on an autocommit connection of their own (the snapshot's connection is to
PostgreSQL, not to the bouncer). Rows are read by column name: PgBouncer adds columns between
releases (1.18 here; 1.21 added prepared-statement counters).
"""

from __future__ import annotations

from typing import Any

from dbops.config import Settings
from dbops.monitoring.snapshot import BouncerDatabase, BouncerPool, BouncerStat

__all__ = ["collect_bouncer"]

_US = 1_000_000


def collect_bouncer(settings: Settings) -> BouncerStat | None:
    """PgBouncer's pools and per-database traffic; None when no console URL is configured."""
    url = settings.monitor.pgbouncer_url
    if url is None:
        return None
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(
        url.get_secret_value(),
        autocommit=True,
        cursor_factory=psycopg.ClientCursor,
        connect_timeout=settings.connect_timeout_s,
        row_factory=dict_row,
    ) as conn:
        pools = conn.execute("SHOW POOLS").fetchall()
        stats = conn.execute("SHOW STATS").fetchall()
        version = conn.execute("SHOW VERSION").fetchall()
    return BouncerStat(
        pools=tuple(_pool(row) for row in pools if row["database"] != "pgbouncer"),
        databases=tuple(_database(row) for row in stats if row["database"] != "pgbouncer"),
        version=str(next(iter(version[0].values()))) if version else None,
    )


def _pool(row: dict[str, Any]) -> BouncerPool:
    return BouncerPool(
        database=str(row["database"]),
        user=str(row["user"]),
        clients_active=int(row["cl_active"]),
        clients_waiting=int(row["cl_waiting"]),
        servers_active=int(row["sv_active"]),
        servers_idle=int(row["sv_idle"]),
        servers_used=int(row["sv_used"]),
        max_wait_s=int(row["maxwait"]) + int(row.get("maxwait_us") or 0) / _US,
        pool_mode=row.get("pool_mode"),
    )


def _database(row: dict[str, Any]) -> BouncerDatabase:
    return BouncerDatabase(
        database=str(row["database"]),
        transactions=int(row["total_xact_count"]),
        queries=int(row["total_query_count"]),
        bytes_received=int(row["total_received"]),
        bytes_sent=int(row["total_sent"]),
        transaction_s=int(row["total_xact_time"]) / _US,
        query_s=int(row["total_query_time"]) / _US,
        wait_s=int(row["total_wait_time"]) / _US,
        avg_transaction_s=int(row["avg_xact_time"]) / _US,
        avg_wait_s=int(row["avg_wait_time"]) / _US,
    )
