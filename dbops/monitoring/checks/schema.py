"""Checks of the schema's objects: invalid indexes and constraints, duplicate and unused indexes."""

from __future__ import annotations

from dbops.config import Settings
from dbops.monitoring.checks._base import (
    Check,
    Finding,
    Severity,
    duration,
    quote_ident,
    quote_name,
)
from dbops.monitoring.snapshot import Snapshot

__all__ = ["CHECKS"]


def _invalid_indexes(snap: Snapshot, s: Settings) -> list[Finding] | None:
    if snap.indexes is None:
        return None
    return [
        Finding(
            "invalid_indexes",
            Severity.WARNING,
            f"index {ix.schema}.{ix.name} is invalid (a failed CREATE INDEX CONCURRENTLY?): "
            "writes maintain it, queries cannot use it",
            f"REINDEX INDEX CONCURRENTLY {quote_name(ix.schema, ix.name)}; "
            f"-- or DROP INDEX CONCURRENTLY {quote_name(ix.schema, ix.name)};",
            f"{ix.schema}.{ix.name}",
        )
        for ix in snap.indexes
        if not ix.is_valid
    ]


def _invalid_constraints(snap: Snapshot, s: Settings) -> list[Finding] | None:
    if snap.database is None or snap.database.not_valid_constraints is None:
        return None
    return [
        Finding(
            "invalid_constraints",
            Severity.WARNING,
            f"{c.kind} constraint {c.name} on {c.schema}.{c.table} is NOT VALID: existing rows "
            "were never checked",
            f"ALTER TABLE {quote_name(c.schema, c.table)} "
            f"VALIDATE CONSTRAINT {quote_ident(c.name)};",
            f"{c.schema}.{c.table}.{c.name}",
        )
        for c in snap.database.not_valid_constraints
    ]


def _duplicate_indexes(snap: Snapshot, s: Settings) -> list[Finding] | None:
    if snap.indexes is None:
        return None
    return [
        Finding(
            "duplicate_indexes",
            Severity.WARNING,
            f"index {ix.schema}.{ix.name} is covered by {ix.covered_by} on the same table "
            f"({ix.size_bytes:,} bytes, slows every write)",
            f"DROP INDEX CONCURRENTLY {quote_name(ix.schema, ix.name)};",
            f"{ix.schema}.{ix.name}",
        )
        for ix in snap.indexes
        if ix.covered_by is not None
    ]


def _unused_indexes(snap: Snapshot, s: Settings) -> list[Finding] | None:
    if snap.indexes is None:
        return None
    age = snap.stats_age_s()
    if age is not None and age < s.check_unused_index_min_stats_age_s:
        return [
            Finding(
                "unused_indexes",
                Severity.OK,
                f"statistics have counted for {duration(age)} only: too soon to call an "
                f"index unused (DBOPS_CHECK_UNUSED_INDEX_MIN_STATS_AGE_S = "
                f"{duration(s.check_unused_index_min_stats_age_s)})",
            )
        ]
    return [
        Finding(
            "unused_indexes",
            Severity.WARNING,
            f"index {ix.schema}.{ix.name} ({ix.size_bytes:,} bytes) has no scans since the "
            "statistics were reset (check replicas before dropping it)",
            f"DROP INDEX CONCURRENTLY {quote_name(ix.schema, ix.name)};",
            f"{ix.schema}.{ix.name}",
        )
        for ix in snap.indexes
        if ix.scans == 0
        and ix.is_valid
        and not ix.is_unique
        and not ix.is_primary
        and ix.covered_by is None  # reported as a duplicate already
        and ix.size_bytes >= s.check_unused_index_min_bytes
    ]


#: This topic's checks, in the order they run and are listed.
CHECKS: tuple[Check, ...] = (
    Check("invalid_indexes", "Invalid indexes", (), _invalid_indexes, "no invalid indexes"),
    Check(
        "invalid_constraints",
        "NOT VALID constraints",
        (),
        _invalid_constraints,
        "every constraint is validated",
    ),
    Check("duplicate_indexes", "Duplicate indexes", (), _duplicate_indexes, "no duplicate indexes"),
    Check(
        "unused_indexes",
        "Unused indexes",
        ("check_unused_index_min_bytes",),
        _unused_indexes,
        "no unused indexes above the size limit",
    ),
)
