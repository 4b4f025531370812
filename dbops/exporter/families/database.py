"""Database-wide statistics.

Size, transactions, cache hits, checkpoints, WAL, replication, wraparound, sequences, settings.
"""

from __future__ import annotations

from dbops.exporter.families._base import Families, ms_to_s
from dbops.monitoring.snapshot import (
    Snapshot,
)


def database_metrics(f: Families, snap: Snapshot) -> None:
    """The database section's families into ``f``."""
    db = snap.database
    if db is None:
        return
    labels = {"database": db.name or ""}
    f.gauge("dbops_database_size_bytes", "Size of the database.", db.size_bytes, **labels)
    f.counter("dbops_database_commits", "Committed transactions.", db.commits, **labels)
    f.counter("dbops_database_rollbacks", "Rolled-back transactions.", db.rollbacks, **labels)
    f.counter("dbops_database_deadlocks", "Deadlocks detected.", db.deadlocks, **labels)
    f.counter("dbops_database_temp_files", "Temporary files created.", db.temp_files, **labels)
    f.counter(
        "dbops_database_temp_bytes", "Bytes written to temporary files.", db.temp_bytes, **labels
    )
    # The hit ratio is a PromQL ratio of rates (recording rule dbops:database_cache_hit:ratio5m
    # in deploy/prometheus/alerts.yml); a ratio since the stats reset would barely move.
    f.counter(
        "dbops_database_blocks_hit",
        "Block reads served from shared buffers.",
        db.blks_hit,
        **labels,
    )
    f.counter(
        "dbops_database_blocks_read",
        "Block reads that went to the OS (page cache or disk).",
        db.blks_read,
        **labels,
    )
    f.gauge(
        "dbops_standby_replay_lag_seconds",
        "On a standby: time since the last replayed transaction.",
        db.replica_lag_s,
    )
    for x in db.xid_ages or ():
        f.gauge(
            "dbops_database_xid_age",
            "Transaction-ID age (wraparound at 2^31).",
            x.xid_age,
            database=x.database,
        )
        f.gauge(
            "dbops_database_multixact_age", "Multixact age.", x.multixact_age, database=x.database
        )
        f.gauge(
            "dbops_database_wraparound_ratio",
            "Transaction-ID age as a share of the 2^31 wraparound limit.",
            x.wraparound_ratio(),
            database=x.database,
        )
    for seq in db.sequences or ():
        f.gauge(
            "dbops_sequence_used_ratio",
            "Share of the sequence's range (or its column's) used.",
            seq.used_ratio,
            schema=seq.schema,
            sequence=seq.name,
        )
    if db.not_valid_constraints is not None:
        f.gauge(
            "dbops_not_valid_constraints", "NOT VALID constraints.", len(db.not_valid_constraints)
        )
    for r in db.replicas or ():
        name = r.application or r.client_addr or "replica"
        f.gauge(
            "dbops_replication_lag_seconds",
            "Replay lag of a standby.",
            r.replay_lag_s,
            replica=name,
        )
        f.gauge(
            "dbops_replication_lag_bytes",
            "WAL bytes a standby has not replayed.",
            r.lag_bytes,
            replica=name,
        )
    for slot in db.slots or ():
        f.gauge(
            "dbops_replication_slot_active",
            "1 when the slot is in use.",
            float(slot.active),
            slot=slot.name,
        )
        f.gauge(
            "dbops_replication_slot_retained_bytes",
            "WAL kept for the slot.",
            slot.retained_bytes,
            slot=slot.name,
        )
        f.gauge(
            "dbops_replication_slot_wal_lost",
            "1 when the slot lost WAL its consumer still needed (wal_status = lost).",
            float(slot.wal_status == "lost"),
            slot=slot.name,
        )
    if db.checkpoints is not None:
        cp = db.checkpoints
        f.counter("dbops_checkpoint_timed", "Scheduled checkpoints.", cp.timed)
        f.counter("dbops_checkpoint_requested", "Requested checkpoints.", cp.requested)
        f.counter(
            "dbops_checkpoint_write_seconds",
            "Time writing checkpoint files.",
            ms_to_s(cp.write_time_ms),
        )
        f.counter(
            "dbops_checkpoint_sync_seconds",
            "Time syncing checkpoint files.",
            ms_to_s(cp.sync_time_ms),
        )
        f.counter(
            "dbops_checkpoint_buffers_written",
            "Buffers written by checkpoints.",
            cp.buffers_written,
        )
