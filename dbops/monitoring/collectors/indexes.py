"""Indexes: every index with its scans, size and validity, redundancy, and btree bloat."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from dbops.config import MonitorSettings
from dbops.monitoring._fetch import fetch
from dbops.monitoring.collectors._section import Part, Section, rows
from dbops.monitoring.snapshot import IndexStat

__all__ = ["SECTION", "IndexRow", "collect_indexes", "find_covering", "index_bloat", "index_rows"]

#: Every index outside the system schemas, with what redundancy checks compare.
INDEXES_SQL = """
SELECT n.nspname::text AS schema,
       t.relname::text AS table,
       c.relname::text AS name,
       am.amname::text AS method,
       pg_get_indexdef(i.indexrelid) AS definition,
       pg_relation_size(i.indexrelid) AS size_bytes,
       s.idx_scan AS scans,
       s.idx_tup_read AS tuples_read,
       i.indisunique AS is_unique,
       i.indisprimary AS is_primary,
       i.indisvalid AS is_valid,
       EXISTS (
         SELECT 1 FROM pg_constraint AS con
         WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid
           AND con.contype IN ('p', 'u', 'x')
       ) AS is_constraint,
       i.indnkeyatts::int AS key_count,
       i.indkey::int2[]::int[] AS columns,
       i.indclass::oid[]::bigint[] AS opclasses,
       i.indcollation::oid[]::bigint[] AS collations,
       i.indoption::int2[]::int[] AS options,
       pg_get_expr(i.indexprs, i.indrelid) AS expressions,
       pg_get_expr(i.indpred, i.indrelid) AS predicate
FROM pg_index AS i
JOIN pg_class AS c ON c.oid = i.indexrelid
JOIN pg_class AS t ON t.oid = i.indrelid
JOIN pg_namespace AS n ON n.oid = t.relnamespace
JOIN pg_am AS am ON am.oid = c.relam
LEFT JOIN pg_stat_all_indexes AS s ON s.indexrelid = i.indexrelid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast'
ORDER BY n.nspname, t.relname, c.relname
"""

#: Estimated btree bloat (the well-known ioguix/pgexperts estimate): expected pages from
#: row count and average key width in ``pg_stats``, compared with the real pages. Indexes
#: whose columns have no statistics (never analyzed, or not readable by the role) are absent.
BLOAT_SQL = """
WITH keys AS (
  SELECT i.indexrelid, n.nspname, c.relname AS idxname, c.reltuples, c.relpages,
         coalesce(
           substring(array_to_string(c.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::int, 90
         ) AS fillfactor,
         max(coalesce(st.null_frac, 0)) AS max_null_frac,
         sum((1 - coalesce(st.null_frac, 0)) * coalesce(st.avg_width, 1024)) AS data_width,
         bool_or(a.atttypid = 'pg_catalog.name'::regtype) AS has_name_type
  FROM pg_index AS i
  JOIN pg_class AS c ON c.oid = i.indexrelid
  JOIN pg_class AS t ON t.oid = i.indrelid
  JOIN pg_namespace AS n ON n.oid = c.relnamespace
  JOIN pg_am AS am ON am.oid = c.relam AND am.amname = 'btree'
  JOIN pg_attribute AS a ON a.attrelid = i.indexrelid AND a.attnum > 0
  JOIN pg_stats AS st ON st.schemaname = n.nspname
    AND ((st.tablename = t.relname
          AND st.attname = pg_get_indexdef(a.attrelid, a.attnum, true))
      OR (st.tablename = c.relname AND st.attname = a.attname))
  WHERE i.indisvalid AND c.relpages > 0 AND t.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  GROUP BY i.indexrelid, n.nspname, c.relname, c.reltuples, c.relpages, c.reloptions
), widths AS (
  SELECT k.*,
         current_setting('block_size')::numeric AS bs,
         8 AS maxalign,
         CASE WHEN k.max_null_frac = 0 THEN 2 ELSE 2 + ((32 + 8 - 1) / 8) END AS tuple_hdr
  FROM keys AS k
), tuples AS (
  SELECT w.*,
         (w.tuple_hdr
          + w.maxalign - CASE WHEN w.tuple_hdr % w.maxalign = 0 THEN w.maxalign
                              ELSE w.tuple_hdr % w.maxalign END
          + w.data_width
          + w.maxalign - CASE WHEN w.data_width = 0 THEN 0
                              WHEN w.data_width::int % w.maxalign = 0 THEN w.maxalign
                              ELSE w.data_width::int % w.maxalign END
         )::numeric AS tuple_width
  FROM widths AS w
)
SELECT t.nspname::text AS schema,
       t.idxname::text AS name,
       greatest(
         t.bs * (t.relpages - coalesce(1 + ceil(
           t.reltuples / floor((t.bs - 16 - 24) * t.fillfactor / (100 * (4 + t.tuple_width)))
         ), 0)),
         0
       )::bigint AS bloat_bytes
FROM tuples AS t
WHERE NOT t.has_name_type
"""


@dataclass(frozen=True)
class IndexRow:
    """One row of :data:`INDEXES_SQL`: an :class:`IndexStat` plus its structure."""

    schema: str
    table: str
    name: str
    method: str
    definition: str
    size_bytes: int
    scans: int | None
    tuples_read: int | None
    is_unique: bool
    is_primary: bool
    is_valid: bool
    is_constraint: bool
    key_count: int
    columns: list[int]
    opclasses: list[int]
    collations: list[int]
    options: list[int]
    expressions: str | None
    predicate: str | None

    def keys(self) -> list[tuple[int, int, int, int]]:
        """Key columns as (attnum, opclass, collation, option); attnum 0 is an expression."""
        return [
            (self.columns[i], self.opclasses[i], self.collations[i], self.options[i])
            for i in range(self.key_count)
        ]

    def included(self) -> list[int]:
        """``INCLUDE`` columns (not part of the key)."""
        return list(self.columns[self.key_count :])


@dataclass(frozen=True)
class _Bloat:
    schema: str
    name: str
    bloat_bytes: int


def index_rows(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> list[IndexRow]:
    """Every index of the database with its structure (one catalog query)."""
    return fetch(conn, INDEXES_SQL, IndexRow, timeout_ms=settings.collector_timeout_ms)


def index_bloat(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings
) -> dict[tuple[str, str], int]:
    """Estimated bloat bytes of each btree index that has column statistics."""
    rows = fetch(conn, BLOAT_SQL, _Bloat, timeout_ms=settings.collector_timeout_ms)
    return {(r.schema, r.name): r.bloat_bytes for r in rows}


def _covers(big: IndexRow, small: IndexRow) -> bool:
    """True when ``big`` makes ``small`` redundant (``small`` can be dropped)."""
    if (big.schema, big.table) != (small.schema, small.table) or big.name == small.name:
        return False
    if not big.is_valid or big.method != small.method:
        return False
    if big.expressions != small.expressions or big.predicate != small.predicate:
        return False
    small_keys, big_keys = small.keys(), big.keys()
    if small.is_unique:
        # A unique index enforces something; only an identical unique index replaces it.
        return big.is_unique and big_keys == small_keys and small.included() == big.included()
    if big_keys == small_keys:
        return set(small.included()) <= set(big.included())
    if small.method != "btree" or small.included():
        return False  # prefix use is a btree property; INCLUDE columns serve index-only scans
    return big_keys[: len(small_keys)] == small_keys


def find_covering(rows: Sequence[IndexRow]) -> dict[str, str]:
    """Map ``schema.index`` of each redundant index to the index that covers it.

    Of two identical indexes only one is reported: a constraint's index is kept, then the
    first by name.
    """
    covered: dict[str, str] = {}
    for small in rows:
        for big in rows:
            if not _covers(big, small):
                continue
            if _covers(small, big):  # identical: report only one of the two
                keep_small = (small.is_constraint, big.name) > (big.is_constraint, small.name)
                if keep_small:
                    continue
            covered[f"{small.schema}.{small.name}"] = big.name
            break
    return covered


def collect_indexes(
    conn: psycopg.Connection[Any],
    *,
    settings: MonitorSettings,
    bloat: dict[tuple[str, str], int] | None = None,
) -> list[IndexStat]:
    """Every index as an :class:`IndexStat`, with ``covered_by`` and the bloat estimate."""
    rows = index_rows(conn, settings=settings)
    covered = find_covering(rows)
    return [
        IndexStat(
            schema=r.schema,
            table=r.table,
            name=r.name,
            method=r.method,
            definition=r.definition,
            size_bytes=r.size_bytes,
            scans=r.scans,
            tuples_read=r.tuples_read,
            is_unique=r.is_unique,
            is_primary=r.is_primary,
            is_valid=r.is_valid,
            is_constraint=r.is_constraint,
            covered_by=covered.get(f"{r.schema}.{r.name}"),
            bloat_bytes=None if bloat is None else bloat.get((r.schema, r.name)),
        )
        for r in rows
    ]


#: The snapshot's ``indexes``: the bloat estimate first (a slow part the exporter and the
#: dashboard carry), then every index with it.
SECTION = Section(
    "indexes",
    (
        Part("indexes.bloat", index_bloat),
        Part("indexes", collect_indexes, needs=lambda ctx: {"bloat": ctx.results["indexes.bloat"]}),
    ),
    rows("indexes"),
)
