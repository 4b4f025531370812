"""Indexes: use since the statistics reset, size, structure, redundancy and bloat."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IndexStat"]


@dataclass(frozen=True)
class IndexStat:
    """One index with its use since the statistics were reset, its size and structure.

    ``covered_by`` names another index of the same table that makes this one redundant (an
    exact duplicate, or one whose leading columns are this index's columns with the same
    method, expressions and predicate). ``bloat_bytes`` is the btree estimate (``None`` for
    other methods, or when ``pg_stats`` is not readable).
    """

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
    covered_by: str | None = None
    bloat_bytes: int | None = None
