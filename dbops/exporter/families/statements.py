"""Top statements (pg_stat_statements): per-statement counters for the heaviest, the rest summed."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from dbops.config import Settings
from dbops.exporter.families._base import Families, ms_to_s, truncate
from dbops.monitoring.snapshot import (
    QueryStat,
    Snapshot,
)

#: A kept statement's series last while the kept set is at most this many times the top N.
KEEP_FACTOR = 2


def exported_statements(
    snapshot: Snapshot, settings: Settings, keep: Collection[str] = ()
) -> list[QueryStat]:
    """The statements whose ``dbops_statement_*`` series a scrape exports.

    The ``exporter_top_statements`` heaviest by total time, then those of ``keep`` (exported
    before) that the snapshot still holds, heaviest first, up to ``KEEP_FACTOR`` times the top
    N in all: a statement that drops a few places keeps its series (``rate()`` needs them),
    one that leaves the snapshot's own top list ends them. Entries without a queryid (another
    role's statement, hidden) are never exported.
    """
    limit = settings.exporter.top_statements
    ranked = [
        q
        for q in sorted(snapshot.statements.top if snapshot.statements else (), key=_heaviest)
        if q.queryid is not None
    ]
    ids: list[str] = []
    for q in ranked:
        if len(ids) >= limit:
            break
        if str(q.queryid) not in ids:
            ids.append(str(q.queryid))
    for q in ranked:
        if len(ids) >= KEEP_FACTOR * limit:
            break
        if str(q.queryid) in keep and str(q.queryid) not in ids:
            ids.append(str(q.queryid))
    chosen = set(ids)
    return [q for q in ranked if str(q.queryid) in chosen]


def _heaviest(q: QueryStat) -> float:
    return -q.total_exec_time_ms


def statement_metrics(
    f: Families, snap: Snapshot, settings: Settings, keep: Collection[str]
) -> None:
    """The top statements' families into ``f`` (the heaviest ``keep`` per view)."""
    stmts = snap.statements
    if stmts is None:
        return
    # The whole view: dbops_stat_statements_* (every entry of this database); one statement's
    # series are dbops_statement_*{queryid} (the heaviest ones only).
    f.gauge("dbops_stat_statements_entries", "Entries in pg_stat_statements.", stmts.entries)
    f.gauge("dbops_stat_statements_max_entries", "pg_stat_statements.max.", stmts.max_entries)
    f.counter(
        "dbops_stat_statements_dealloc", "Entries evicted from pg_stat_statements.", stmts.dealloc
    )
    f.counter(
        "dbops_stat_statements_calls",
        "Calls of every statement of this database in pg_stat_statements.",
        stmts.total_calls,
    )
    f.counter(
        "dbops_stat_statements_exec_seconds",
        "Execution time of all statements.",
        ms_to_s(stmts.total_exec_time_ms),
    )
    f.timestamp(
        "dbops_stat_statements_reset_timestamp_seconds",
        "Last reset of pg_stat_statements.",
        stmts.stats_reset,
    )
    # Several entries may share a queryid (one per user, database, top level): sum them.
    merged: dict[tuple[str, str, str], list[Any]] = {}
    for q in exported_statements(snap, settings, keep):
        key = (str(q.queryid), q.user or "", q.database or "")
        merged.setdefault(key, []).append(q)
    for (queryid, user, database), entries in merged.items():
        labels = {"queryid": queryid, "user": user, "database": database}
        calls = sum(q.calls for q in entries)
        total_ms = sum(q.total_exec_time_ms for q in entries)
        f.counter("dbops_statement_calls", "Calls of the statement.", calls, **labels)
        f.counter(
            "dbops_statement_exec_seconds",
            "Execution time of the statement.",
            total_ms / 1000.0,
            **labels,
        )
        plan = [q.total_plan_time_ms for q in entries if q.total_plan_time_ms is not None]
        f.counter(
            "dbops_statement_plan_seconds",
            "Planning time (pg_stat_statements.track_planning).",
            sum(plan) / 1000.0 if plan else None,
            **labels,
        )
        f.counter(
            "dbops_statement_rows",
            "Rows returned or affected.",
            sum(q.rows for q in entries),
            **labels,
        )
        f.counter(
            "dbops_statement_shared_blocks_hit",
            "Shared buffer hits.",
            sum(q.shared_blks_hit for q in entries),
            **labels,
        )
        f.counter(
            "dbops_statement_shared_blocks_read",
            "Shared blocks read from disk or OS cache.",
            sum(q.shared_blks_read for q in entries),
            **labels,
        )
        f.counter(
            "dbops_statement_temp_blocks_written",
            "Temp blocks written (work_mem spills).",
            sum(q.temp_blks_written for q in entries),
            **labels,
        )
        f.gauge(
            "dbops_statement_mean_exec_seconds",
            "Mean execution time since the stats reset.",
            total_ms / calls / 1000.0 if calls else None,
            **labels,
        )
        f.gauge(
            "dbops_statement_max_exec_seconds",
            "Longest execution since the stats reset.",
            max(q.max_exec_time_ms for q in entries) / 1000.0,
            **labels,
        )
        f.info(
            "dbops_statement",
            "Normalized query text of the statement (truncated).",
            {"query": truncate(entries[0].query, settings.exporter.query_label_chars)},
            **labels,
        )
