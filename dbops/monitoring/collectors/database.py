"""The database and the cluster: size, transactions, wraparound, sequences, replication."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from dbops.config import MonitorSettings
from dbops.db.roles import ALL_ROLES, EXPECTED_ROLE_DEFAULTS, ROLE_DEFAULTS_SQL
from dbops.monitoring._fetch import fetch, fetch_one
from dbops.monitoring.collectors._section import Part, Section
from dbops.monitoring.snapshot import (
    CheckpointStat,
    ConstraintStat,
    DatabaseStat,
    ReplicaStat,
    RoleDefault,
    SequenceStat,
    SettingStat,
    SlotStat,
    XidAgeStat,
)

__all__ = [
    "KEY_SETTINGS",
    "LIST_FIELDS",
    "SECTION",
    "DatabaseCounters",
    "checkpoints",
    "database_counters",
    "key_settings",
    "not_valid_constraints",
    "replicas",
    "replication_slots",
    "role_defaults",
    "sequences",
    "xid_ages",
]

#: Server settings a snapshot keeps (what a reader needs to judge the other numbers).
KEY_SETTINGS = (
    "autovacuum",
    "autovacuum_freeze_max_age",
    "checkpoint_timeout",
    "effective_cache_size",
    "idle_in_transaction_session_timeout",
    "lock_timeout",
    "maintenance_work_mem",
    "max_connections",
    "max_wal_size",
    "pg_stat_statements.max",
    "pg_stat_statements.track",
    "random_page_cost",
    "shared_buffers",
    "shared_preload_libraries",
    "statement_timeout",
    "track_io_timing",
    "wal_level",
    "work_mem",
)

#: Counters of this database, its size, and the replay lag when this server is a standby: 0
#: while it streams from its primary and has replayed all it received (an idle primary sends
#: nothing, which is no lag), else the time since the last replayed transaction (a standby
#: cut off from its primary, or applying behind: its lag grows).
DATABASE_SQL = """
SELECT d.datname::text AS name,
       pg_database_size(d.datid) AS size_bytes,
       d.xact_commit AS commits,
       d.xact_rollback AS rollbacks,
       d.deadlocks,
       d.temp_files,
       d.temp_bytes,
       d.blks_hit,
       d.blks_read,
       d.stats_reset,
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
             AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')
            THEN 0::float8
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
       END AS replica_lag_s
FROM pg_stat_database AS d
WHERE d.datname = current_database()
"""

#: Transaction-ID and multixact age of every database (wraparound is cluster-wide).
XID_AGES_SQL = """
SELECT datname::text AS database,
       age(datfrozenxid)::bigint AS xid_age,
       mxid_age(datminmxid)::bigint AS multixact_age
FROM pg_database
ORDER BY xid_age DESC, datname
"""

#: Sequences with the share of their range used, against the owning column's type too.
SEQUENCES_SQL = """
WITH seqs AS (
  SELECT s.schemaname::text AS schema,
         s.sequencename::text AS name,
         format_type(s.data_type, NULL) AS data_type,
         s.last_value,
         s.min_value,
         s.max_value,
         s.increment_by AS increment,
         tab.relname::text || '.' || att.attname::text AS owned_by,
         format_type(att.atttypid, NULL) AS column_type,
         CASE WHEN s.increment_by > 0
              THEN least(s.max_value, CASE att.atttypid WHEN 'int2'::regtype THEN 32767
                                                        WHEN 'int4'::regtype THEN 2147483647
                                                        ELSE s.max_value END)
              ELSE s.max_value END AS limit_value,
         CASE WHEN s.increment_by < 0
              THEN greatest(s.min_value, CASE att.atttypid WHEN 'int2'::regtype THEN -32768
                                                           WHEN 'int4'::regtype THEN -2147483648
                                                           ELSE s.min_value END)
              ELSE s.min_value END AS floor_value
  FROM pg_sequences AS s
  JOIN pg_namespace AS n ON n.nspname = s.schemaname
  JOIN pg_class AS c ON c.relnamespace = n.oid AND c.relname = s.sequencename
  LEFT JOIN pg_depend AS dep ON dep.classid = 'pg_class'::regclass AND dep.objid = c.oid
    AND dep.refclassid = 'pg_class'::regclass AND dep.refobjsubid > 0
    AND dep.deptype IN ('a', 'i')
  LEFT JOIN pg_class AS tab ON tab.oid = dep.refobjid
  LEFT JOIN pg_attribute AS att ON att.attrelid = dep.refobjid AND att.attnum = dep.refobjsubid
)
SELECT schema, name, data_type, last_value, min_value, max_value, increment, owned_by,
       column_type,
       CASE WHEN last_value IS NULL THEN NULL
            WHEN increment > 0
              THEN ((last_value::numeric - min_value)
                    / nullif(limit_value::numeric - min_value, 0))::float8
            ELSE ((max_value::numeric - last_value)
                  / nullif(max_value::numeric - floor_value, 0))::float8
       END AS used_ratio
FROM seqs
ORDER BY used_ratio DESC NULLS LAST, schema, name
LIMIT 1000
"""

#: CHECK and FOREIGN KEY constraints added NOT VALID and never validated.
NOT_VALID_SQL = """
SELECT n.nspname::text AS schema,
       t.relname::text AS table,
       c.conname::text AS name,
       CASE c.contype WHEN 'c' THEN 'check' WHEN 'f' THEN 'foreign key' ELSE c.contype::text END
         AS kind
FROM pg_constraint AS c
JOIN pg_class AS t ON t.oid = c.conrelid
JOIN pg_namespace AS n ON n.oid = t.relnamespace
WHERE NOT c.convalidated
ORDER BY n.nspname, t.relname, c.conname
"""

#: Standbys streaming from this server (empty without replicas). A standby that has replayed
#: all the primary wrote has no replay lag, whatever the last measured ``replay_lag`` was (it
#: lingers for a while after the standby caught up).
REPLICAS_SQL = """
SELECT r.application_name AS application,
       host(r.client_addr) AS client_addr,
       r.state,
       r.sync_state,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint END AS lag_bytes,
       extract(epoch FROM r.write_lag)::float8 AS write_lag_s,
       extract(epoch FROM r.flush_lag)::float8 AS flush_lag_s,
       CASE WHEN NOT pg_is_in_recovery() AND r.replay_lsn >= pg_current_wal_lsn() THEN 0::float8
            ELSE extract(epoch FROM r.replay_lag)::float8 END AS replay_lag_s
FROM pg_stat_replication AS r
ORDER BY r.application_name, r.pid
"""

#: Replication slots and the WAL each one holds back.
SLOTS_SQL = """
SELECT s.slot_name::text AS name,
       s.slot_type,
       s.active,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint END
         AS retained_bytes,
       s.wal_status
FROM pg_replication_slots AS s
ORDER BY s.slot_name
"""

#: Checkpoints before PostgreSQL 17.
CHECKPOINTS_BGWRITER_SQL = """
SELECT checkpoints_timed AS timed,
       checkpoints_req AS requested,
       checkpoint_write_time AS write_time_ms,
       checkpoint_sync_time AS sync_time_ms,
       buffers_checkpoint AS buffers_written,
       stats_reset
FROM pg_stat_bgwriter
"""

#: Checkpoints on PostgreSQL 17+ (their own view).
CHECKPOINTS_17_SQL = """
SELECT num_timed AS timed,
       num_requested AS requested,
       write_time AS write_time_ms,
       sync_time AS sync_time_ms,
       buffers_written,
       stats_reset
FROM pg_stat_checkpointer
"""

SETTINGS_SQL = """
SELECT name, setting, unit, source
FROM pg_settings
WHERE name = ANY(%(names)s)
ORDER BY name
"""


@dataclass(frozen=True)
class DatabaseCounters:
    """One row of :data:`DATABASE_SQL`."""

    name: str
    size_bytes: int
    commits: int
    rollbacks: int
    deadlocks: int
    temp_files: int
    temp_bytes: int
    blks_hit: int
    blks_read: int
    stats_reset: datetime | None
    replica_lag_s: float | None


def database_counters(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings
) -> DatabaseCounters:
    """Size and counters of the current database."""
    row = fetch_one(conn, DATABASE_SQL, DatabaseCounters, timeout_ms=settings.collector_timeout_ms)
    assert row is not None  # the current database always has a row
    return row


def xid_ages(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> list[XidAgeStat]:
    """Wraparound age of every database, oldest first."""
    return fetch(conn, XID_AGES_SQL, XidAgeStat, timeout_ms=settings.collector_timeout_ms)


def sequences(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> list[SequenceStat]:
    """Sequences, most used first (``last_value`` is ``None`` where the role may not read)."""
    return fetch(conn, SEQUENCES_SQL, SequenceStat, timeout_ms=settings.collector_timeout_ms)


def not_valid_constraints(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings
) -> list[ConstraintStat]:
    """Constraints still marked NOT VALID."""
    return fetch(conn, NOT_VALID_SQL, ConstraintStat, timeout_ms=settings.collector_timeout_ms)


def replicas(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> list[ReplicaStat]:
    """Connected standbys with their lag."""
    return fetch(conn, REPLICAS_SQL, ReplicaStat, timeout_ms=settings.collector_timeout_ms)


def replication_slots(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings
) -> list[SlotStat]:
    """Replication slots with the WAL they retain."""
    return fetch(conn, SLOTS_SQL, SlotStat, timeout_ms=settings.collector_timeout_ms)


def checkpoints(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> CheckpointStat:
    """Checkpoint counters; the view depends on the server version."""
    query = CHECKPOINTS_17_SQL if conn.info.server_version >= 170000 else CHECKPOINTS_BGWRITER_SQL
    row = fetch_one(conn, query, CheckpointStat, timeout_ms=settings.collector_timeout_ms)
    assert row is not None
    return row


def key_settings(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> list[SettingStat]:
    """The server settings listed in :data:`KEY_SETTINGS` that the role can see."""
    return fetch(
        conn,
        SETTINGS_SQL,
        SettingStat,
        {"names": list(KEY_SETTINGS)},
        timeout_ms=settings.collector_timeout_ms,
    )


def role_defaults(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> list[RoleDefault]:
    """Role-level defaults on dbops' roles, but the one dbops sets (the read-only default)."""
    rows = fetch(
        conn,
        ROLE_DEFAULTS_SQL,
        RoleDefault,
        {"names": list(ALL_ROLES)},
        timeout_ms=settings.collector_timeout_ms,
    )
    return [r for r in rows if (r.role, r.database, r.setting) not in EXPECTED_ROLE_DEFAULTS]


#: The :class:`DatabaseStat` field each list part fills (``database.counters`` fills the rest);
#: the cadence carries the slow ones by it.
LIST_FIELDS = {
    "database.xid_ages": "xid_ages",
    "database.sequences": "sequences",
    "database.constraints": "not_valid_constraints",
    "database.replicas": "replicas",
    "database.slots": "slots",
    "database.settings": "settings",
    "database.role_defaults": "role_defaults",
}


def _database(results: Mapping[str, Any]) -> DatabaseStat:
    counters: DatabaseCounters | None = results.get("database.counters")
    lists = {
        field: None if results.get(part) is None else tuple(results[part])
        for part, field in LIST_FIELDS.items()
    }
    return DatabaseStat(
        name=counters.name if counters else None,
        size_bytes=counters.size_bytes if counters else None,
        commits=counters.commits if counters else None,
        rollbacks=counters.rollbacks if counters else None,
        deadlocks=counters.deadlocks if counters else None,
        temp_files=counters.temp_files if counters else None,
        temp_bytes=counters.temp_bytes if counters else None,
        blks_hit=counters.blks_hit if counters else None,
        blks_read=counters.blks_read if counters else None,
        stats_reset=counters.stats_reset if counters else None,
        replica_lag_s=counters.replica_lag_s if counters else None,
        checkpoints=results.get("database.checkpoints"),
        **lists,
    )


#: The snapshot's ``database``: size and counters, wraparound, sequences, constraints not
#: validated, replication, checkpoints, key settings, role defaults.
SECTION = Section(
    "database",
    (
        Part("database.counters", database_counters),
        Part("database.xid_ages", xid_ages),
        Part("database.sequences", sequences),
        Part("database.constraints", not_valid_constraints),
        Part("database.replicas", replicas),
        Part("database.slots", replication_slots),
        Part("database.checkpoints", checkpoints),
        Part("database.settings", key_settings),
        Part("database.role_defaults", role_defaults),
    ),
    _database,
)
