"""What capture and prune share: the lock, the timeouts, one-row reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from dbops.config import Settings

__all__ = [
    "CAPTURE_LOCK_KEY",
    "LOCK_SQL",
    "MISSING_SCHEMA_MESSAGE",
    "SET_TIMEOUTS_SQL",
    "begin_locked",
    "one_row",
]


T = TypeVar("T")

#: ``pg_advisory_xact_lock`` key shared by capture and prune ("dbophist").
CAPTURE_LOCK_KEY = 0x64626F70_68697374

SET_TIMEOUTS_SQL = """
SELECT set_config('statement_timeout', %(timeout)s, true),
       set_config('lock_timeout', %(timeout)s, true)
"""

LOCK_SQL = "SELECT pg_advisory_xact_lock(%(key)s)"

MISSING_SCHEMA_MESSAGE = "the history schema dbops_monitor is missing: run `dbops migrate`"


def one_row(
    conn: psycopg.Connection[Any],
    query: str | sql.Composed,
    row_type: type[T],
    params: Mapping[str, Any] | None = None,
) -> T | None:
    """One row of ``query`` in the caller's transaction (its timeouts already set)."""
    with conn.cursor(row_factory=class_row(row_type)) as cur:
        return cur.execute(query, params).fetchone()


def begin_locked(conn: psycopg.Connection[Any], settings: Settings) -> None:
    """Set this transaction's timeouts and wait for the history lock."""
    timeout = str(settings.history.capture_timeout_ms)
    conn.execute(SET_TIMEOUTS_SQL, {"timeout": timeout})
    conn.execute(LOCK_SQL, {"key": CAPTURE_LOCK_KEY})
