"""One monitoring query: rows as frozen dataclasses, under its own statement timeout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import psycopg
from psycopg.rows import class_row

from dbops.errors import FeatureUnavailable

__all__ = ["CollectorUnavailable", "fetch", "fetch_one", "version_tuple"]

T = TypeVar("T")


class CollectorUnavailable(FeatureUnavailable):
    """A collector cannot run on this server (missing extension, privilege); ``hint`` says why."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


CollectorUnavailable.__module__ = "dbops.monitoring"


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.10"`` -> ``(1, 10)``: extension versions compare as numbers, not strings."""
    return tuple(int(part) for part in version.split(".") if part.isdigit())


#: ``SET LOCAL`` takes no bind parameters; ``set_config(..., true)`` is the same thing with one.
SET_LOCAL_TIMEOUT_SQL = "SELECT set_config('statement_timeout', %(timeout)s, true)"


def fetch(
    conn: psycopg.Connection[Any],
    query: str,
    row_type: type[T],
    params: Mapping[str, Any] | None = None,
    timeout_ms: int = 2_000,
) -> list[T]:
    """Run ``query`` in a transaction (or a savepoint) with ``statement_timeout = timeout_ms``.

    The timeout is local to that transaction/savepoint, so it never leaks to the next user of
    a pooled connection. A timeout raises :class:`psycopg.errors.QueryCanceled`.
    """
    with conn.transaction():
        conn.execute(SET_LOCAL_TIMEOUT_SQL, {"timeout": str(max(int(timeout_ms), 1))})
        with conn.cursor(row_factory=class_row(row_type)) as cur:
            return cur.execute(query, params).fetchall()


def fetch_one(
    conn: psycopg.Connection[Any],
    query: str,
    row_type: type[T],
    params: Mapping[str, Any] | None = None,
    timeout_ms: int = 2_000,
) -> T | None:
    """Like :func:`fetch` for a query that returns at most one row."""
    rows = fetch(conn, query, row_type, params, timeout_ms)
    return rows[0] if rows else None
