"""Pruning: history older than ``history_retention_days`` goes, the latest capture stays."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from dbops.config import Settings
from dbops.db import Database
from dbops.errors import PendingMigrations
from dbops.monitoring.history._common import MISSING_SCHEMA_MESSAGE, begin_locked, one_row
from dbops.monitoring.snapshot import (
    PruneResult,
)

__all__ = [
    "PRUNE_CAPTURES_SQL",
    "PRUNE_CUTOFF_SQL",
    "PRUNE_DATABASE_SAMPLES_SQL",
    "PRUNE_PROCESS_REPORTS_SQL",
    "PRUNE_PROCESS_SAMPLES_SQL",
    "PRUNE_STATEMENTS_SQL",
    "PRUNE_STATEMENT_SAMPLES_SQL",
    "PRUNE_TABLE_SAMPLES_SQL",
    "prune",
]


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

#: Texts no sample refers to any more.
PRUNE_STATEMENTS_SQL = """
DELETE FROM dbops_monitor.statements AS t
WHERE t.last_seen < %(cutoff)s
  AND NOT EXISTS (
      SELECT 1 FROM dbops_monitor.statement_samples AS x
      WHERE x.queryid = t.queryid AND x.userid = t.userid AND x.dbid = t.dbid
  )
"""


@dataclass(frozen=True)
class _Cutoff:
    cutoff: datetime


def prune(db: Database, settings: Settings) -> PruneResult:
    """Delete history older than ``history_retention_days``, and texts no sample uses.

    The latest capture is kept whatever its age: the next capture's interval starts there.
    Runs under the capture lock, so it never deletes under a running capture.
    """
    with db.connection() as conn:
        begin_locked(conn, settings)
        try:
            cutoff_row = one_row(
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
