"""Checks of what the application does.

Slow statements, index suggestions, pool saturation, pg_stat_statements capacity, and the
data's own integrity (teams without an owner).
"""

from __future__ import annotations

from dbops.config import Settings
from dbops.monitoring.checks._base import (
    Check,
    Finding,
    Severity,
    pct,
    quote_name,
)
from dbops.monitoring.snapshot import PoolStat, Snapshot

__all__ = ["CHECKS"]


def _slow_queries(snap: Snapshot, s: Settings) -> list[Finding] | None:
    if snap.statements is None:
        return None
    return [
        Finding(
            "slow_queries",
            Severity.WARNING,
            f"queryid {q.queryid}: {q.mean_exec_time_ms:.1f} ms on average over {q.calls:,} "
            f"calls: {(q.query or '')[:120]}",
            "EXPLAIN (ANALYZE, BUFFERS) the statement; look for a missing index or a "
            "sequential scan",
            str(q.queryid),
        )
        for q in snap.statements.top
        if q.mean_exec_time_ms >= s.check_slow_query_ms and q.calls >= s.check_slow_query_calls
    ]


def _suggested_indexes(snap: Snapshot, s: Settings) -> list[Finding] | None:
    if snap.advice is None:  # advice was not asked for, or failed (see collector_errors)
        return None
    return [
        Finding(
            "suggested_indexes",
            Severity.WARNING,
            f"index on {quote_name(g.schema, g.table)} ({', '.join(g.columns)}) would save about "
            f"{g.saved_ms:,.0f} ms of execution time over {len(g.statements)} statement(s) "
            f"since the statistics reset (planner-verified with hypopg): {g.reason}",
            g.create_sql,
            f"{g.schema}.{g.table}({','.join(g.columns)})",
        )
        for g in snap.advice.suggestions
    ]


def _pool_saturation(snap: Snapshot, s: Settings) -> list[Finding] | None:
    """The pools of the application's live processes (their reports), not the snapshot's own."""
    if snap.processes is None:
        return None
    out: list[Finding] = []
    for process in snap.live_processes():
        for pool in process.pools:
            out.extend(_one_pool(process.label, pool, s))
    return out


def _one_pool(process: str, pool: PoolStat, s: Settings) -> list[Finding]:
    where = f"{process} pool {pool.name}"
    ratio = pool.in_use() / pool.max_size if pool.max_size else 0.0
    out = []
    if pool.waiting and pool.in_use() >= pool.max_size:
        out.append(
            Finding(
                "pool_saturation",
                Severity.CRITICAL,
                f"{where}: all {pool.max_size} connections in use and "
                f"{pool.waiting} requests waiting",
                "raise DBOPS_POOL_MAX_SIZE or shorten transactions",
                where,
            )
        )
    elif pool.waiting or ratio >= s.check_pool_saturation_warning:
        out.append(
            Finding(
                "pool_saturation",
                Severity.WARNING,
                f"{where}: {pool.in_use()} of {pool.max_size} connections in use "
                f"({pct(ratio)}), {pool.waiting} waiting",
                "raise DBOPS_POOL_MAX_SIZE or shorten transactions",
                where,
            )
        )
    if pool.timeouts:
        out.append(
            Finding(
                "pool_saturation",
                Severity.WARNING,
                f"{where}: {pool.timeouts} checkouts failed (timeout) since it opened",
                "raise DBOPS_POOL_MAX_SIZE or DBOPS_POOL_TIMEOUT_S",
                where,
            )
        )
    return out


def _bouncer_waiting(snap: Snapshot, s: Settings) -> list[Finding] | None:
    """PgBouncer's pools: a client waiting for a server connection (its ``maxwait``)."""
    if snap.bouncer is None:
        return None
    out = []
    for pool in snap.bouncer.pools:
        if pool.max_wait_s >= s.check_bouncer_wait_critical_s:
            severity = Severity.CRITICAL
        elif pool.max_wait_s >= s.check_bouncer_wait_warning_s:
            severity = Severity.WARNING
        else:
            continue
        where = f"{pool.database}/{pool.user}"
        out.append(
            Finding(
                "bouncer_waiting",
                severity,
                f"pgbouncer pool {where}: {pool.clients_waiting} clients waiting, the oldest "
                f"for {pool.max_wait_s:.1f} s ({pool.servers_active} server connections busy)",
                "raise default_pool_size in pgbouncer.ini (within max_connections), or find "
                "the long transactions holding the server connections",
                where,
            )
        )
    return out


def _statements_capacity(snap: Snapshot, s: Settings) -> list[Finding] | None:
    st = snap.statements
    if st is None or not st.max_entries:
        return None
    ratio = st.entries / st.max_entries
    if ratio < s.check_statements_capacity and not st.dealloc:
        return []
    evicted = f"; {st.dealloc:,} entries evicted since the reset" if st.dealloc else ""
    return [
        Finding(
            "statements_capacity",
            Severity.WARNING,
            f"pg_stat_statements holds {st.entries:,} of {st.max_entries:,} entries "
            f"({pct(ratio)}){evicted}",
            "raise pg_stat_statements.max (restart), or set pg_stat_statements.track = top",
        )
    ]


def _zero_owner_teams(snap: Snapshot, s: Settings) -> list[Finding] | None:
    if snap.data is None:
        return None
    if not snap.data.zero_owner_teams:
        return []
    sample = ", ".join(snap.data.zero_owner_team_sample)
    return [
        Finding(
            "zero_owner_teams",
            Severity.CRITICAL,
            f"{snap.data.zero_owner_teams} live teams have no live owner (e.g. {sample})",
            "give each team an owner (team_members.role = 'OWNER'), then find the code path "
            "that removed the last one",
        )
    ]


#: This topic's checks, in the order they run and are listed.
CHECKS: tuple[Check, ...] = (
    Check(
        "slow_queries",
        "Slow queries",
        ("check_slow_query_ms", "check_slow_query_calls"),
        _slow_queries,
        "no slow statements among the top statements",
    ),
    Check(
        "suggested_indexes",
        "Suggested indexes",
        (),
        _suggested_indexes,
        "index advice found no index the planner would use to cut a top statement's cost",
    ),
    Check(
        "pool_saturation",
        "Connection pool saturation",
        ("check_pool_saturation_warning",),
        _pool_saturation,
        "the connection pool has room",
    ),
    Check(
        "bouncer_waiting",
        "PgBouncer clients waiting",
        ("check_bouncer_wait_warning_s", "check_bouncer_wait_critical_s"),
        _bouncer_waiting,
        "no client waits at PgBouncer (or no PgBouncer is watched)",
    ),
    Check(
        "statements_capacity",
        "pg_stat_statements capacity",
        ("check_statements_capacity",),
        _statements_capacity,
        "pg_stat_statements has room and evicted nothing",
    ),
    Check(
        "zero_owner_teams",
        "Teams without an owner",
        (),
        _zero_owner_teams,
        "every live team has a live owner",
    ),
)
