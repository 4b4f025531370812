"""Checks of the server and the database as a whole.

The server's version, connections, long and idle transactions, cache hits, replication lag,
wraparound, sequences, and the collectors that could not run.
"""

from __future__ import annotations

from dbops.config import Settings
from dbops.db.builds import SUPPORTED_RANGE, supports
from dbops.monitoring.checks._base import (
    Check,
    Finding,
    Severity,
    pct,
    quote_ident,
    quote_name,
)
from dbops.monitoring.snapshot import Snapshot
from dbops.units import format_bytes

__all__ = ["CHECKS"]


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


def _server_version(snap: Snapshot, s: Settings) -> list[Finding] | None:
    if snap.server is None:
        return None
    if supports(snap.server.version_num):
        return []
    return [
        Finding(
            "server_version",
            Severity.WARNING,
            f"PostgreSQL {snap.server.version} is not a version dbops supports "
            f"({SUPPORTED_RANGE}): its catalog queries are untested there",
            f"upgrade the server to PostgreSQL {SUPPORTED_RANGE} (docs/versions.md)",
        )
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


def _ha_cluster(snap: Snapshot, s: Settings) -> list[Finding] | None:
    """Patroni's cluster: a running leader, and a running standby to fail over to."""
    ha = snap.ha
    if ha is None:
        return None
    out = []
    if ha.leader() is None:
        out.append(
            Finding(
                "ha_cluster",
                Severity.CRITICAL,
                "the Patroni cluster has no running leader: writes fail until one is elected",
                "patronictl list; check etcd and the nodes' Patroni logs",
                ha.scope or "cluster",
            )
        )
    serving = ha.serving()
    if serving < 2:
        down = [f"{m.name} ({m.state})" for m in ha.members if not m.serving]
        out.append(
            Finding(
                "ha_cluster",
                Severity.WARNING,
                f"{serving} of {len(ha.members)} Patroni members running"
                + (f"; down: {', '.join(down)}" if down else "")
                + ": no standby to fail over to",
                "start the member's Patroni (it rejoins with pg_rewind), or add a node",
                ha.scope or "cluster",
            )
        )
    return out


def _replication_slots(snap: Snapshot, s: Settings) -> list[Finding] | None:
    db = snap.database
    if db is None or db.slots is None:
        return None
    out = []
    for slot in db.slots:
        retained = slot.retained_bytes or 0
        who = "its replica is not connected" if not slot.active else "its replica lags"
        if slot.wal_status == "lost":
            severity = Severity.CRITICAL
            message = f"slot {slot.name} lost WAL its replica needs: the replica cannot catch up"
            hint = (
                "rebuild the replica and drop the slot: "
                f"SELECT pg_drop_replication_slot('{slot.name}')"
            )
        elif retained >= s.check_slot_retained_critical_bytes:
            severity = Severity.CRITICAL
            message = f"slot {slot.name} keeps {format_bytes(retained)} of WAL ({who})"
            hint = _SLOT_HINT.format(name=slot.name)
        elif retained >= s.check_slot_retained_warning_bytes:
            severity = Severity.WARNING
            message = f"slot {slot.name} keeps {format_bytes(retained)} of WAL ({who})"
            hint = _SLOT_HINT.format(name=slot.name)
        else:
            continue
        out.append(Finding("replication_slots", severity, message, hint, slot.name))
    return out


_SLOT_HINT = (
    "start or repair the replica; if it is gone for good, drop the slot (dbops db replica "
    "remove NAME, or SELECT pg_drop_replication_slot('{name}')) before the disk fills"
)


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
            f"buffer cache hit ratio is {pct(ratio)}",
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
            f"{act.total} of max_connections {act.max_connections} in use ({pct(ratio)})",
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
                f"database {item.database} is at {pct(ratio)} of transaction-ID wraparound "
                f"(age {max(item.xid_age, item.multixact_age):,})",
                f"VACUUM (FREEZE, VERBOSE) in database {quote_ident(item.database)}; look for old "
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
                f"sequence {seq.schema}.{seq.name} has used {pct(seq.used_ratio)} of its "
                f"range{column}",
                f"ALTER SEQUENCE {quote_name(seq.schema, seq.name)} AS bigint; and change the "
                "owning column to bigint (a table rewrite: plan it)",
                f"{seq.schema}.{seq.name}",
            )
        )
    return out


#: This topic's checks, in the order they run and are listed.
CHECKS: tuple[Check, ...] = (
    Check("collector_errors", "Collector errors", (), _collector_errors, "every collector ran"),
    Check(
        "server_version",
        "PostgreSQL version",
        (),
        _server_version,
        "a PostgreSQL version dbops supports",
    ),
    Check(
        "replication_lag",
        "Replication lag",
        ("check_replication_lag_warning_s", "check_replication_lag_critical_s"),
        _replication_lag,
        "no replica lags behind",
    ),
    Check(
        "ha_cluster",
        "High availability (Patroni)",
        (),
        _ha_cluster,
        "a running leader and a running standby (or no Patroni watched)",
    ),
    Check(
        "replication_slots",
        "Replication slots",
        ("check_slot_retained_warning_bytes", "check_slot_retained_critical_bytes"),
        _replication_slots,
        "no replication slot keeps much WAL",
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
)
