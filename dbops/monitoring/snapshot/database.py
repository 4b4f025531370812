"""The database as a whole: wraparound, sequences, replicas, slots, checkpoints, settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "WRAPAROUND_LIMIT",
    "CheckpointStat",
    "ConstraintStat",
    "DatabaseStat",
    "ReplicaStat",
    "RoleDefault",
    "SequenceStat",
    "SettingStat",
    "SlotStat",
    "XidAgeStat",
]


@dataclass(frozen=True)
class XidAgeStat:
    """Transaction-ID and multixact age of one database (wraparound at 2^31)."""

    database: str
    xid_age: int
    multixact_age: int

    def wraparound_ratio(self) -> float:
        """The older of the two ages as a share of the 2^31 limit (the check, exporter, pages)."""
        return max(self.xid_age, self.multixact_age) / WRAPAROUND_LIMIT


@dataclass(frozen=True)
class SequenceStat:
    """A sequence and how much of its range is used.

    ``used_ratio`` is measured against the smaller of the sequence's maximum and the maximum of
    the column that owns it (a bigint sequence feeding an integer column runs out at 2^31 - 1);
    ``None`` when the sequence was never read or the role may not read it.
    """

    schema: str
    name: str
    data_type: str
    last_value: int | None
    min_value: int
    max_value: int
    increment: int
    owned_by: str | None
    column_type: str | None
    used_ratio: float | None


@dataclass(frozen=True)
class ConstraintStat:
    """A ``NOT VALID`` constraint: rows written before it was added were never checked."""

    schema: str
    table: str
    name: str
    kind: str


@dataclass(frozen=True)
class ReplicaStat:
    """One standby connected to this server (``pg_stat_replication``)."""

    application: str | None
    client_addr: str | None
    state: str | None
    sync_state: str | None
    lag_bytes: int | None
    write_lag_s: float | None
    flush_lag_s: float | None
    replay_lag_s: float | None


@dataclass(frozen=True)
class SlotStat:
    """A replication slot and the WAL it keeps."""

    name: str
    slot_type: str
    active: bool
    retained_bytes: int | None
    wal_status: str | None


@dataclass(frozen=True)
class CheckpointStat:
    """Checkpoints since the statistics reset (pg_stat_checkpointer on 17, bgwriter before)."""

    timed: int
    requested: int
    write_time_ms: float
    sync_time_ms: float
    buffers_written: int
    stats_reset: datetime | None


@dataclass(frozen=True)
class SettingStat:
    """A server setting that matters for monitoring (value in ``unit`` as the server has it)."""

    name: str
    setting: str
    unit: str | None
    source: str | None


@dataclass(frozen=True)
class RoleDefault:
    """A role-level default (``ALTER ROLE ... SET``) on one of dbops' roles that dbops did not set.

    Any role may set its own defaults; one on a dbops role can undo what protects the data
    (``role = 'dbops_system'`` bypasses row-level security for every new app connection).
    """

    role: str
    database: str | None
    setting: str


@dataclass(frozen=True)
class DatabaseStat:
    """The current database (and cluster-wide facts); each part ``None`` when unknown."""

    name: str | None = None
    size_bytes: int | None = None
    commits: int | None = None
    rollbacks: int | None = None
    deadlocks: int | None = None
    temp_files: int | None = None
    temp_bytes: int | None = None
    blks_hit: int | None = None
    blks_read: int | None = None
    stats_reset: datetime | None = None
    replica_lag_s: float | None = None
    xid_ages: tuple[XidAgeStat, ...] | None = None
    sequences: tuple[SequenceStat, ...] | None = None
    not_valid_constraints: tuple[ConstraintStat, ...] | None = None
    replicas: tuple[ReplicaStat, ...] | None = None
    slots: tuple[SlotStat, ...] | None = None
    checkpoints: CheckpointStat | None = None
    settings: tuple[SettingStat, ...] | None = None
    role_defaults: tuple[RoleDefault, ...] | None = None

    def cache_hit_ratio(self) -> float | None:
        """Share of block reads served from shared buffers, or ``None`` before any read."""
        if self.blks_hit is None or self.blks_read is None:
            return None
        total = self.blks_hit + self.blks_read
        return self.blks_hit / total if total else None

    def setting(self, name: str) -> str | None:
        """The value of one collected server setting, or ``None``."""
        for item in self.settings or ():
            if item.name == name:
                return item.setting
        return None


#: Transaction IDs (and multixacts) wrap around at 2^31.
WRAPAROUND_LIMIT = 2**31
