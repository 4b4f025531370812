"""Health checks: ``evaluate(snapshot, settings)`` -> findings, pure (no I/O, no clock).

Each check reads one part of a :class:`Snapshot` and the thresholds in
:class:`dbops.config.Settings`, and returns findings with a severity, a message and a fix hint.
A check whose input is unknown (``None``: collector failed) returns no finding at all; the
``collector_errors`` check reports the gap instead. A check that finds nothing wrong returns
one ``ok`` finding, so every known check appears once at least. docs/checks.md lists them all
(a test keeps it in step with :data:`CHECKS`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from dbops.config import Settings
from dbops.monitoring.snapshot import PoolStat, Snapshot

__all__ = [
    "CHECKS",
    "Check",
    "Finding",
    "Severity",
    "evaluate",
    "problems",
    "worst",
    "worst_first",
]


class Severity(enum.StrEnum):
    """How bad a finding is; the order is ok < warning < critical."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0, 1, 2 for ok, warning, critical."""
        return list(Severity).index(self)


@dataclass(frozen=True)
class Finding:
    """One result of one check about one subject (``None``: the database as a whole)."""

    check: str
    severity: Severity
    message: str
    hint: str | None = None
    subject: str | None = None


Rule = Callable[[Snapshot, Settings], list[Finding] | None]


@dataclass(frozen=True)
class Check:
    """A named check, the settings it reads, and its rule."""

    id: str
    title: str
    settings: tuple[str, ...]
    rule: Rule
    ok_message: str


def _q(name: str) -> str:
    """Quote an identifier for a hint the user will paste into psql."""
    return '"' + name.replace('"', '""') + '"'


def _qn(schema: str, name: str) -> str:
    return f"{_q(schema)}.{_q(name)}"


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"


def _duration(seconds: float) -> str:
    """``90`` -> ``1.5 min``, ``7200`` -> ``2.0 h``, ``604800`` -> ``7.0 days``."""
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


# ------------------------------------------------------------------------------------ rules
def _collector_errors(snap: Snapshot, s: Settings) -> list[Finding]:
    return [
        Finding(
            "collector_errors",
            Severity.WARNING,
            f"collector {e.collector} failed: {e.message}",
            e.hint,
            e.collector,
        )
        for e in snap.errors
    ]


def _replication_lag(snap: Snapshot, s: Settings) -> list[Finding] | None:
    db = snap.database
    if db is None or (db.replicas is None and db.replica_lag_s is None):
        return None
    lags: list[tuple[str, float]] = [
        (r.application or r.client_addr or "replica", r.replay_lag_s)
        for r in db.replicas or ()
        if r.replay_lag_s is not None
    ]
    if db.replica_lag_s is not None:
        lags.append(("this standby", db.replica_lag_s))
    out = []
    for subject, lag in lags:
        if lag >= s.check_replication_lag_critical_s:
            severity = Severity.CRITICAL
        elif lag >= s.check_replication_lag_warning_s:
            severity = Severity.WARNING
        else:
            continue
        out.append(
            Finding(
                "replication_lag",
                severity,
                f"{subject} is {lag:.0f} s behind the primary",
                "check the standby's disk and network, and long queries on it "
                "(hot_standby_feedback, max_standby_streaming_delay)",
                subject,
            )
        )
    return out


def _long_running_queries(snap: Snapshot, s: Settings) -> list[Finding] | None:
    if snap.activity is None or snap.activity.sessions is None:
        return None
    out = []
    for sess in snap.activity.sessions:
        if sess.state != "active" or sess.query_s is None:
            continue
        if sess.query_s >= s.check_long_running_query_critical_s:
            severity = Severity.CRITICAL
        elif sess.query_s >= s.check_long_running_query_s:
            severity = Severity.WARNING
        else:
            continue
        out.append(
            Finding(
                "long_running_queries",
                severity,
                f"pid {sess.pid} ({sess.user}) has run one statement for {sess.query_s:.0f} s",
                f"SELECT pg_cancel_backend({sess.pid}); -- or pg_terminate_backend",
                f"pid {sess.pid}",
            )
        )
    return out


def _idle_in_transaction(snap: Snapshot, s: Settings) -> list[Finding] | None:
    if snap.activity is None or snap.activity.sessions is None:
        return None
    blocking = {p.blocking_pid for p in snap.activity.blocked or ()}
    out = []
    for sess in snap.activity.sessions:
        if not (sess.state or "").startswith("idle in transaction") or sess.state_s is None:
            continue
        if sess.state_s < s.check_idle_in_transaction_s:
            continue
        blocks = sess.pid in blocking
        out.append(
            Finding(
                "idle_in_transaction",
                Severity.CRITICAL if blocks else Severity.WARNING,
                f"pid {sess.pid} ({sess.application or sess.user}) has been idle in a "
                f"transaction for {sess.state_s:.0f} s" + (" and blocks others" if blocks else ""),
                f"SELECT pg_terminate_backend({sess.pid}); and set "
                "idle_in_transaction_session_timeout (DBOPS_IDLE_IN_TRANSACTION_TIMEOUT_MS)",
                f"pid {sess.pid}",
            )
        )
    return out


def _cache_hit(snap: Snapshot, s: Settings) -> list[Finding] | None:
    db = snap.database
    if db is None or db.blks_hit is None or db.blks_read is None:
        return None
    ratio = db.cache_hit_ratio()
    if ratio is None or db.blks_hit + db.blks_read < s.check_cache_hit_min_blocks:
        return []
    if ratio < s.check_cache_hit_critical:
        severity = Severity.CRITICAL
    elif ratio < s.check_cache_hit_warning:
        severity = Severity.WARNING
    else:
        return []
    return [
        Finding(
            "cache_hit",
            severity,
            f"buffer cache hit ratio is {_pct(ratio)}",
            "raise shared_buffers (and memory), or find the statements reading most blocks "
            "(pg_stat_statements shared_blks_read)",
            db.name,
        )
    ]


def _connections(snap: Snapshot, s: Settings) -> list[Finding] | None:
    act = snap.activity
    if act is None or act.total is None or not act.max_connections:
        return None
    ratio = act.total / act.max_connections
    if ratio >= s.check_connections_critical:
        severity = Severity.CRITICAL
    elif ratio >= s.check_connections_warning:
        severity = Severity.WARNING
    else:
        return []
    return [
        Finding(
            "connections",
            severity,
            f"{act.total} of max_connections {act.max_connections} in use ({_pct(ratio)})",
            "use a pooler (pgbouncer) or smaller pools (DBOPS_POOL_MAX_SIZE) before raising "
            "max_connections",
        )
    ]


def _wraparound(snap: Snapshot, s: Settings) -> list[Finding] | None:
    if snap.database is None or snap.database.xid_ages is None:
        return None
    out = []
    for item in snap.database.xid_ages:
        ratio = item.wraparound_ratio()
        if ratio >= s.check_wraparound_critical:
            severity = Severity.CRITICAL
        elif ratio >= s.check_wraparound_warning:
            severity = Severity.WARNING
        else:
            continue
        out.append(
            Finding(
                "wraparound",
                severity,
                f"database {item.database} is at {_pct(ratio)} of transaction-ID wraparound "
                f"(age {max(item.xid_age, item.multixact_age):,})",
                f"VACUUM (FREEZE, VERBOSE) in database {_q(item.database)}; look for old "
                "transactions, prepared transactions and stale replication slots",
                item.database,
            )
        )
    return out


def _sequences(snap: Snapshot, s: Settings) -> list[Finding] | None:
    if snap.database is None or snap.database.sequences is None:
        return None
    out = []
    for seq in snap.database.sequences:
        if seq.used_ratio is None:
            continue
        if seq.used_ratio >= s.check_sequence_critical:
            severity = Severity.CRITICAL
        elif seq.used_ratio >= s.check_sequence_warning:
            severity = Severity.WARNING
        else:
            continue
        column = f" (column {seq.owned_by} is {seq.column_type})" if seq.owned_by else ""
        out.append(
            Finding(
                "sequences",
                severity,
                f"sequence {seq.schema}.{seq.name} has used {_pct(seq.used_ratio)} of its "
                f"range{column}",
                f"ALTER SEQUENCE {_qn(seq.schema, seq.name)} AS bigint; and change the owning "
                "column to bigint (a table rewrite: plan it)",
                f"{seq.schema}.{seq.name}",
            )
        )
    return out


def _invalid_indexes(snap: Snapshot, s: Settings) -> list[Finding] | None:
    if snap.indexes is None:
        return None
    return [
        Finding(
            "invalid_indexes",
            Severity.WARNING,
            f"index {ix.schema}.{ix.name} is invalid (a failed CREATE INDEX CONCURRENTLY?): "
            "writes maintain it, queries cannot use it",
            f"REINDEX INDEX CONCURRENTLY {_qn(ix.schema, ix.name)}; "
            f"-- or DROP INDEX CONCURRENTLY {_qn(ix.schema, ix.name)};",
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
            f"ALTER TABLE {_qn(c.schema, c.table)} VALIDATE CONSTRAINT {_q(c.name)};",
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
            f"DROP INDEX CONCURRENTLY {_qn(ix.schema, ix.name)};",
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
                f"statistics have counted for {_duration(age)} only: too soon to call an "
                f"index unused (DBOPS_CHECK_UNUSED_INDEX_MIN_STATS_AGE_S = "
                f"{_duration(s.check_unused_index_min_stats_age_s)})",
            )
        ]
    return [
        Finding(
            "unused_indexes",
            Severity.WARNING,
            f"index {ix.schema}.{ix.name} ({ix.size_bytes:,} bytes) has no scans since the "
            "statistics were reset (check replicas before dropping it)",
            f"DROP INDEX CONCURRENTLY {_qn(ix.schema, ix.name)};",
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
            f"index on {_qn(g.schema, g.table)} ({', '.join(g.columns)}) would save about "
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
                f"({_pct(ratio)}), {pool.waiting} waiting",
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
            f"({_pct(ratio)}){evicted}",
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


# ---------------------------------------------------------------------------------- backups
_BACKUP_HINT = "run `dbops backup create` (and schedule it, e.g. cron)"
_VERIFY_HINT = "run `dbops backup verify` (a restore drill; schedule it after each backup)"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds < 172_800 else f"{seconds / 86400:.1f} days"


def _backup_missing(snap: Snapshot, s: Settings) -> list[Finding] | None:
    b = snap.backups
    if b is None:
        return None
    if b.count:
        return []
    broken = f" ({b.broken} with an unreadable manifest)" if b.broken else ""
    return [
        Finding(
            "backup_missing",
            Severity.WARNING,
            f"no backup in {b.directory}{broken}",
            _BACKUP_HINT,
            b.directory,
        )
    ]


def _backup_stale(snap: Snapshot, s: Settings) -> list[Finding] | None:
    b = snap.backups
    if b is None or b.newest_age_s is None:
        return None
    if b.newest_age_s <= s.backup_max_age_s:
        return []
    return [
        Finding(
            "backup_stale",
            Severity.WARNING,
            f"the newest backup ({b.newest_id}) is {_hours(b.newest_age_s)} old",
            _BACKUP_HINT,
            b.newest_id,
        )
    ]


def _backup_unverified(snap: Snapshot, s: Settings) -> list[Finding] | None:
    b = snap.backups
    if b is None or not b.count:
        return None
    out = []
    if b.verified_age_s is None:
        out.append(
            Finding(
                "backup_unverified",
                Severity.WARNING,
                f"none of the {b.count} backups has passed a restore drill",
                _VERIFY_HINT,
            )
        )
    elif b.verified_age_s > s.backup_verified_max_age_s:
        out.append(
            Finding(
                "backup_unverified",
                Severity.WARNING,
                f"the newest verified backup ({b.verified_id}) is {_hours(b.verified_age_s)} old",
                _VERIFY_HINT,
                b.verified_id,
            )
        )
    if b.last_drill_ok is False:
        out.append(
            Finding(
                "backup_unverified",
                Severity.WARNING,
                f"the last restore drill failed: {b.last_drill_message}",
                "`dbops backup show <id>` for the drill; fix the cause, then "
                "`dbops backup create` and `dbops backup verify`",
                "last drill",
            )
        )
    return out


def _app_login_failures(snap: Snapshot) -> int | None:
    """Refused sign-ins of the window in the application: its live processes' reports.

    Without reports (``snap.processes`` unknown, or no live process that says), the collecting
    process's own count, for a snapshot taken inside the application (``app=True``).
    """
    counts = [p.login_failed_recent for p in snap.live_processes()]
    known = [n for n in counts if n is not None]
    if known:
        return sum(known)
    acc = snap.access
    return acc.app.login_failed_recent if acc is not None and acc.app is not None else None


def _failed_logins(snap: Snapshot, s: Settings) -> list[Finding] | None:
    acc = snap.access
    if acc is None:
        return None
    sources = [
        (
            "app",
            _app_login_failures(snap),
            "sign-ins refused by UserService.authenticate",
            "see the WARNING records of logger dbops.access (statement, actor); throttle or "
            "lock the account under attack",
        ),
        (
            "server",
            acc.server.login_failed_recent if acc.server else None,
            "database logins refused by the server",
            "grep the server log for SQLSTATE 28P01/28000 (user@database and client host are "
            "in each line); rotate the password, tighten pg_hba.conf",
        ),
    ]
    known = [(name, n, what, hint) for name, n, what, hint in sources if n is not None]
    if not known:
        return None
    minutes = acc.window_s / 60
    return [
        Finding(
            "failed_logins",
            Severity.WARNING,
            f"{n} {what} in the last {minutes:.0f} min",
            hint,
            name,
        )
        for name, n, what, hint in known
        if n >= s.check_failed_logins_warning
    ]


# --------------------------------------------------------------------------------- security
def _secret_statements(snap: Snapshot, s: Settings) -> list[Finding] | None:
    st = snap.statements
    if st is None or st.secret_texts is None:
        return None
    if not st.secret_texts:
        return []
    return [
        Finding(
            "secret_statements",
            Severity.CRITICAL,
            f"{st.secret_texts} pg_stat_statements entries hold a password or secret literal, "
            "readable by every pg_read_all_stats member (dbops shows them redacted)",
            "run `dbops roles setup` (it removes them), then change those passwords; send "
            "only SCRAM verifiers (libpq PQencryptPasswordConn, psql \\password)",
        )
    ]


def _role_defaults(snap: Snapshot, s: Settings) -> list[Finding] | None:
    defaults = snap.database.role_defaults if snap.database else None
    if defaults is None:
        return None
    return [
        Finding(
            "role_defaults",
            Severity.CRITICAL,
            f"role {d.role} has the default {d.setting}"
            + (f" in database {d.database}" if d.database else "")
            + ": a role default can undo row-level security or timeouts",
            "run `dbops roles setup` (it removes them); find who ran ALTER ROLE ... SET",
            d.role,
        )
        for d in defaults
    ]


#: Every check, in the order findings are reported.
CHECKS: tuple[Check, ...] = (
    Check("collector_errors", "Collector errors", (), _collector_errors, "every collector ran"),
    Check(
        "replication_lag",
        "Replication lag",
        ("check_replication_lag_warning_s", "check_replication_lag_critical_s"),
        _replication_lag,
        "no replica lags behind",
    ),
    Check(
        "long_running_queries",
        "Long-running queries",
        ("check_long_running_query_s", "check_long_running_query_critical_s"),
        _long_running_queries,
        "no long-running statements",
    ),
    Check(
        "idle_in_transaction",
        "Idle in transaction",
        ("check_idle_in_transaction_s",),
        _idle_in_transaction,
        "no session idles in an open transaction",
    ),
    Check(
        "cache_hit",
        "Cache hit ratio",
        ("check_cache_hit_warning", "check_cache_hit_critical", "check_cache_hit_min_blocks"),
        _cache_hit,
        "cache hit ratio is fine (or too few reads to judge)",
    ),
    Check(
        "connections",
        "Connections",
        ("check_connections_warning", "check_connections_critical"),
        _connections,
        "connections are well below max_connections",
    ),
    Check(
        "wraparound",
        "Transaction-ID wraparound",
        ("check_wraparound_warning", "check_wraparound_critical"),
        _wraparound,
        "no database is near transaction-ID wraparound",
    ),
    Check(
        "sequences",
        "Sequences near their maximum",
        ("check_sequence_warning", "check_sequence_critical"),
        _sequences,
        "no sequence is near its maximum",
    ),
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
    Check("backup_missing", "Backups", (), _backup_missing, "the backup directory has backups"),
    Check(
        "backup_stale",
        "Backup age",
        ("backup_max_age_s",),
        _backup_stale,
        "the newest backup is recent",
    ),
    Check(
        "backup_unverified",
        "Verified backup",
        ("backup_verified_max_age_s",),
        _backup_unverified,
        "a recent backup passed its restore drill, and the last drill passed",
    ),
    Check(
        "failed_logins",
        "Failed logins",
        ("check_failed_logins_warning", "monitor_access_window_s"),
        _failed_logins,
        "no burst of failed logins in the recent window",
    ),
    Check(
        "secret_statements",
        "Secrets in statement statistics",
        (),
        _secret_statements,
        "no pg_stat_statements text holds a password or secret literal",
    ),
    Check(
        "role_defaults",
        "Role defaults on dbops roles",
        (),
        _role_defaults,
        "dbops' roles carry no role-level setting but their own",
    ),
)


def evaluate(snapshot: Snapshot, settings: Settings) -> list[Finding]:
    """Run every check over ``snapshot``; pure: same input, same findings."""
    findings: list[Finding] = []
    for check in CHECKS:
        found = check.rule(snapshot, settings)
        if found is None:
            continue
        findings.extend(found or [Finding(check.id, Severity.OK, check.ok_message)])
    return findings


def problems(findings: list[Finding], check: str | None = None) -> list[Finding]:
    """The findings that are not a check's "all fine" row (of ``check`` only, when given)."""
    return [
        f for f in findings if f.severity is not Severity.OK and (check is None or f.check == check)
    ]


def worst(findings: list[Finding]) -> Severity:
    """The highest severity among ``findings`` (``ok`` for none)."""
    return max((f.severity for f in findings), key=lambda s: s.rank, default=Severity.OK)


def worst_first(findings: list[Finding]) -> list[Finding]:
    """``findings`` critical first, then warnings, then ok; the checks' order within each."""
    return sorted(findings, key=lambda f: -f.severity.rank)
