"""One monitoring query: rows as frozen dataclasses, under its own statement timeout."""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.rows import class_row

from dbops.errors import FeatureUnavailable

__all__ = ["CollectorUnavailable", "fetch", "fetch_one", "one_round_trip_each", "version_tuple"]

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
#: The session form, inside :func:`one_round_trip_each` only (which resets it).
SET_SESSION_TIMEOUT_SQL = "SELECT set_config('statement_timeout', %(timeout)s, false)"
RESET_TIMEOUT_SQL = "RESET statement_timeout"

#: Connections inside :func:`one_round_trip_each`, with the timeout their session has now.
_SESSION_TIMEOUT: weakref.WeakKeyDictionary[psycopg.Connection[Any], str] = (
    weakref.WeakKeyDictionary()
)


@contextmanager
def one_round_trip_each(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """Run every :func:`fetch` on ``conn`` as one statement: one round trip each (autocommit).

    Outside it, a fetch is a transaction of its own with ``SET LOCAL statement_timeout``: four
    round trips (``BEGIN``, the setting, the query, ``COMMIT``), which made most of a snapshot's
    time (bench/bench_exporter.py). Inside, the timeout is a session setting sent only when it
    changes, and each query is its own implicit transaction; on exit the setting goes back to
    the connection's own (``RESET``), so no later borrower of a pooled connection inherits it.
    """
    conn.autocommit = True
    _SESSION_TIMEOUT[conn] = ""
    try:
        yield conn
    finally:
        sent = _SESSION_TIMEOUT.pop(conn, "")
        if sent and not conn.closed:
            conn.execute(RESET_TIMEOUT_SQL)


def fetch(
    conn: psycopg.Connection[Any],
    query: str,
    row_type: type[T],
    params: Mapping[str, Any] | None = None,
    timeout_ms: int = 2_000,
) -> list[T]:
    """Run ``query`` in a transaction (or a savepoint) with ``statement_timeout = timeout_ms``.

    The timeout is local to that transaction/savepoint, so it never leaks to the next user of
    a pooled connection. A timeout raises :class:`psycopg.errors.QueryCanceled`. Inside
    :func:`one_round_trip_each`, the query runs alone with the timeout on the session instead.
    """
    sent = _SESSION_TIMEOUT.get(conn)
    if sent is not None and conn.autocommit:
        timeout = str(max(int(timeout_ms), 1))
        if sent != timeout:
            conn.execute(SET_SESSION_TIMEOUT_SQL, {"timeout": timeout})
            _SESSION_TIMEOUT[conn] = timeout
        with conn.cursor(row_factory=class_row(row_type)) as cur:
            return cur.execute(query, params).fetchall()
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
