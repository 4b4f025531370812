"""Bulk loading over one psycopg connection: COPY in chunks, deferred index builds, ANALYZE.

Nothing here knows what is loaded: the seed uses it, and restore or archiving can too. Every
function takes a connection whose transaction the caller owns, so a failed load (a duplicate
found while rebuilding a unique index, say) rolls back the dropped indexes with the rows.

Rows come either as **text chunks** (``(text, row_count)`` pairs in COPY's text format, one
line per row, values escaped with :func:`escape_copy_text`: the fastest path, used by the
seed) or as **row tuples** (Python values adapted by psycopg, for callers that hold objects).
Progress goes through an optional callback ``progress(table, rows_done, rows_total)``, called
once with ``rows_done=0`` before the first chunk and again after every chunk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

__all__ = [
    "DEFER_INDEXES_MIN_ROWS",
    "CopyStats",
    "DeferredIndex",
    "Progress",
    "TextChunks",
    "analyze",
    "copy_rows",
    "copy_text",
    "defer_indexes",
    "escape_copy_text",
    "rebuild_indexes",
    "row_count",
    "table_exists",
]

logger = logging.getLogger(__name__)

#: ``progress(table, rows_done, rows_total)``.
Progress = Callable[[str, int, int], None]
#: ``(text, rows)`` pairs: ``rows`` lines of COPY text format, each ending in a newline.
TextChunks = Iterable[tuple[str, int]]

#: A table that receives at least this many rows, and more than it holds already, gets its
#: secondary indexes dropped before its COPY and rebuilt after it (in the same transaction):
#: one sorted build is several times faster than a million random index insertions.
DEFER_INDEXES_MIN_ROWS = 50_000
#: Rows handed to COPY between two progress calls by :func:`copy_rows`.
ROWS_PER_PROGRESS = 10_000

COPY_FROM_STDIN = "COPY {} ({}) FROM STDIN"
ANALYZE_TABLES = "ANALYZE {}"
COUNT_ROWS = "SELECT count(*) FROM {}"
TABLE_EXISTS = "SELECT to_regclass(%(table)s) IS NOT NULL AS table_exists"
#: Indexes that nothing else depends on: not a primary key, not behind a constraint (unique,
#: exclusion, or the target of a foreign key), valid, in the default tablespace.
DEFERRABLE_INDEXES = """
SELECT n.nspname AS schema_name, c.relname AS index_name, pg_get_indexdef(c.oid) AS definition,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indrelid = %(table)s::regclass
  AND i.indisvalid AND NOT i.indisprimary AND c.reltablespace = 0
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
ORDER BY c.relname
"""
DROP_INDEX = "DROP INDEX {}"
#: Utility statements take no bind parameters: the comment goes in as ``sql.Literal``.
COMMENT_ON_INDEX = "COMMENT ON INDEX {} IS {}"


@dataclass(frozen=True)
class CopyStats:
    """What one COPY loaded."""

    table: str
    rows: int
    seconds: float


@dataclass(frozen=True)
class DeferredIndex:
    """A secondary index dropped before a load, with what it takes to build it again."""

    schema_name: str
    index_name: str
    definition: str
    comment: str | None

    @property
    def identifier(self) -> sql.Identifier:
        """The schema-qualified name, quoted."""
        return sql.Identifier(self.schema_name, self.index_name)


@dataclass(frozen=True)
class _Exists:
    table_exists: bool


def escape_copy_text(value: str) -> str:
    """Escape one value for COPY's text format (backslash, tab, newline, carriage return).

    Args:
        value: the value as text.

    Returns:
        The value, safe to put between tabs on one COPY line.
    """
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _table_name(table: str) -> sql.Identifier:
    """``"schema.table"`` or ``"table"`` as a quoted identifier."""
    return sql.Identifier(*table.split(".", 1))


def _copy_statement(table: str, columns: Sequence[str]) -> sql.Composed:
    return sql.SQL(COPY_FROM_STDIN).format(
        _table_name(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )


def copy_text(
    conn: psycopg.Connection[Any],
    table: str,
    columns: Sequence[str],
    chunks: TextChunks,
    *,
    total: int | None = None,
    progress: Progress | None = None,
) -> CopyStats:
    """COPY pre-formatted text chunks into ``table``.

    Args:
        conn: the connection; its transaction is the caller's.
        table: ``"table"`` or ``"schema.table"``.
        columns: the columns, in the order of the values on each line.
        chunks: ``(text, rows)`` pairs in COPY text format (see :func:`escape_copy_text`).
        total: rows expected, for the progress callback (``0`` when unknown).
        progress: called as ``progress(table, rows_done, total)``.

    Returns:
        The rows written and the time it took.
    """
    expected = total or 0
    started = time.perf_counter()
    rows = 0
    if progress is not None:
        progress(table, 0, expected)
    with conn.cursor() as cur, cur.copy(_copy_statement(table, columns)) as copy:
        for text, count in chunks:
            copy.write(text)
            rows += count
            if progress is not None:
                progress(table, rows, expected)
    stats = CopyStats(table, rows, time.perf_counter() - started)
    logger.debug("copied %d rows into %s in %.2f s", rows, table, stats.seconds)
    return stats


def copy_rows(
    conn: psycopg.Connection[Any],
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    total: int | None = None,
    progress: Progress | None = None,
) -> CopyStats:
    """COPY row tuples into ``table``, psycopg adapting each value.

    Args:
        conn: the connection; its transaction is the caller's.
        table: ``"table"`` or ``"schema.table"``.
        columns: the columns, in the order of the values in each row.
        rows: one sequence of values per row.
        total: rows expected, for the progress callback (``0`` when unknown).
        progress: called as ``progress(table, rows_done, total)`` every
            :data:`ROWS_PER_PROGRESS` rows and at the end.

    Returns:
        The rows written and the time it took.
    """
    expected = total or 0
    started = time.perf_counter()
    done = 0
    if progress is not None:
        progress(table, 0, expected)
    with conn.cursor() as cur, cur.copy(_copy_statement(table, columns)) as copy:
        for row in rows:
            copy.write_row(row)
            done += 1
            if progress is not None and done % ROWS_PER_PROGRESS == 0:
                progress(table, done, expected)
    if progress is not None and done % ROWS_PER_PROGRESS:
        progress(table, done, expected)
    return CopyStats(table, done, time.perf_counter() - started)


def table_exists(conn: psycopg.Connection[Any], table: str) -> bool:
    """Whether ``table`` (resolved through ``search_path``) exists."""
    cur = conn.cursor(row_factory=class_row(_Exists))
    found = cur.execute(TABLE_EXISTS, {"table": table}).fetchone()
    return found is not None and found.table_exists


def row_count(conn: psycopg.Connection[Any], table: str) -> int:
    """``count(*)`` of ``table``."""
    found = conn.execute(sql.SQL(COUNT_ROWS).format(_table_name(table))).fetchone()
    return int(found[0]) if found is not None else 0


def defer_indexes(
    conn: psycopg.Connection[Any],
    loads: Mapping[str, int],
    *,
    min_rows: int = DEFER_INDEXES_MIN_ROWS,
) -> list[DeferredIndex]:
    """Drop the secondary indexes of tables about to receive most of their rows.

    A table is chosen when it will receive at least ``min_rows`` rows and holds no more than
    that already. Primary keys and indexes behind constraints stay. Build the dropped indexes
    again with :func:`rebuild_indexes` in the same transaction.

    Args:
        conn: the connection; its transaction is the caller's.
        loads: table -> rows about to be loaded.
        min_rows: the smallest load worth deferring index maintenance for.

    Returns:
        The dropped indexes, in order.
    """
    deferred: list[DeferredIndex] = []
    index_cur = conn.cursor(row_factory=class_row(DeferredIndex))
    for table, rows in loads.items():
        if rows < min_rows or row_count(conn, table) > rows:
            continue
        for index in index_cur.execute(DEFERRABLE_INDEXES, {"table": table}).fetchall():
            conn.execute(sql.SQL(DROP_INDEX).format(index.identifier))
            deferred.append(index)
    if deferred:
        logger.debug("deferred %d indexes until after the load", len(deferred))
    return deferred


def rebuild_indexes(
    conn: psycopg.Connection[Any],
    indexes: Sequence[DeferredIndex],
    *,
    progress: Progress | None = None,
) -> None:
    """Build again, with their comments, the indexes :func:`defer_indexes` dropped.

    Args:
        conn: the connection whose transaction dropped them.
        indexes: what :func:`defer_indexes` returned.
        progress: called as ``progress("indexes", built, len(indexes))``.
    """
    if not indexes:
        return
    if progress is not None:
        progress("indexes", 0, len(indexes))
    for built, index in enumerate(indexes, start=1):
        # The statement comes from pg_get_indexdef(), not from user input.
        conn.execute(sql.SQL(index.definition))
        if index.comment is not None:
            conn.execute(
                sql.SQL(COMMENT_ON_INDEX).format(index.identifier, sql.Literal(index.comment))
            )
        if progress is not None:
            progress("indexes", built, len(indexes))


def analyze(conn: psycopg.Connection[Any], tables: Sequence[str]) -> None:
    """``ANALYZE`` the tables so that the planner sees their new sizes."""
    if tables:
        conn.execute(
            sql.SQL(ANALYZE_TABLES).format(sql.SQL(", ").join(_table_name(t) for t in tables))
        )
