"""The monitoring snapshot: frozen dataclasses of everything collected, and its JSON form.

Standard library only, so that the dashboard, notebooks and the exporter can load a snapshot
from JSON without a database driver. ``None`` always means "unknown" (a collector failed, the
server does not expose it, or the role may not read it), never a sentinel value. Durations are
seconds (``_s``) or milliseconds (``_ms``) as the name says; sizes are bytes.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from dbops.db.roles import ROLE_NAMES, SYSTEM_ROLE
from dbops.redact import redact

__all__ = [
    "AccessStat",
    "ActivityStat",
    "Advice",
    "AppAccessStat",
    "AppStat",
    "BackupsStat",
    "BlockedPair",
    "CacheStat",
    "CaptureResult",
    "CarriedSection",
    "CheckpointStat",
    "ConstraintStat",
    "CountBy",
    "DataStat",
    "DatabasePoint",
    "DatabaseStat",
    "DayCount",
    "IndexStat",
    "IndexSuggestion",
    "PoolStat",
    "PruneResult",
    "QueryStat",
    "Rejection",
    "ReplicaStat",
    "ResourceStat",
    "RoleDefault",
    "SectionError",
    "SequenceStat",
    "ServerAccessStat",
    "ServerInfo",
    "SessionStat",
    "SettingStat",
    "SlotStat",
    "Snapshot",
    "StatementGain",
    "StatementLatency",
    "StatementPoint",
    "StatementTotal",
    "StatementsStat",
    "TableGrowth",
    "TableStat",
    "TeamSizeCount",
    "XidAgeStat",
]

#: Bumped when a field changes meaning or is removed (adding optional fields keeps it).
SCHEMA_VERSION = 1

T = TypeVar("T")


def _redact_fields(obj: object, *names: str) -> None:
    """Redact secret-looking literals in ``obj``'s text fields (a frozen dataclass).

    Every query text of a snapshot passes here however the snapshot was made (collected,
    read from JSON, built by a test): no consumer can show a ``PASSWORD '...'`` literal.
    """
    for name in names:
        value = getattr(obj, name)
        if value is not None:
            object.__setattr__(obj, name, redact(value))


@dataclass(frozen=True)
class ServerInfo:
    """The server and database the snapshot describes."""

    version: str
    version_num: int
    database: str
    current_user: str
    in_recovery: bool
    started_at: datetime | None


@dataclass(frozen=True)
class CountBy:
    """A count for one value of a grouping key (state, application, user, role)."""

    key: str | None
    count: int


# ----------------------------------------------------------------------------- statements
@dataclass(frozen=True)
class QueryStat:
    """One ``pg_stat_statements`` entry (times in milliseconds, as the extension reports)."""

    queryid: int | None
    query: str | None
    user: str | None
    database: str | None
    calls: int
    total_exec_time_ms: float
    mean_exec_time_ms: float
    max_exec_time_ms: float
    stddev_exec_time_ms: float
    rows: int
    shared_blks_hit: int
    shared_blks_read: int
    temp_blks_read: int
    temp_blks_written: int
    total_plan_time_ms: float | None
    blk_read_time_ms: float | None
    blk_write_time_ms: float | None

    def __post_init__(self) -> None:
        _redact_fields(self, "query")


@dataclass(frozen=True)
class StatementsStat:
    """The top statements by total time, and the state of the statistics table itself."""

    top: tuple[QueryStat, ...]
    entries: int
    max_entries: int | None
    total_exec_time_ms: float
    total_calls: int
    dealloc: int | None
    stats_reset: datetime | None
    extension_version: str
    #: Entries (all databases) whose text holds a secret-looking literal (``dbops.redact``),
    #: before redaction: what any ``pg_read_all_stats`` reader could read. ``None``: unknown.
    secret_texts: int | None = None


# -------------------------------------------------------------------------------- indexes
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


# --------------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class TableStat:
    """One table: rows, scans, sizes, cache hits and (auto)vacuum/analyze times."""

    schema: str
    name: str
    live_rows: int
    dead_rows: int
    seq_scans: int
    seq_tuples_read: int
    index_scans: int | None
    table_bytes: int
    indexes_bytes: int
    toast_bytes: int
    total_bytes: int
    heap_blks_hit: int | None
    heap_blks_read: int | None
    modifications_since_analyze: int | None
    last_vacuum: datetime | None
    last_autovacuum: datetime | None
    last_analyze: datetime | None
    last_autoanalyze: datetime | None

    def dead_share(self) -> float:
        """Dead rows over live plus dead (0 for an empty table): maintenance plan, pages."""
        total = self.live_rows + self.dead_rows
        return self.dead_rows / total if total else 0.0


# ------------------------------------------------------------------------------- activity
@dataclass(frozen=True)
class SessionStat:
    """A client session that is running a statement or holds a transaction open.

    ``query_s`` is how long the current statement has run (active sessions only), ``state_s``
    how long the session has been in its state, ``transaction_s`` the age of its transaction.
    """

    pid: int
    user: str | None
    application: str | None
    database: str | None
    state: str | None
    query_s: float | None
    state_s: float | None
    transaction_s: float | None
    wait_event_type: str | None
    wait_event: str | None
    query: str | None

    def __post_init__(self) -> None:
        _redact_fields(self, "query")


@dataclass(frozen=True)
class BlockedPair:
    """A session waiting for a lock (``blocked_*``) and one session it waits for."""

    blocked_pid: int
    blocked_user: str | None
    blocked_query: str | None
    blocked_s: float | None
    wait_event_type: str | None
    wait_event: str | None
    blocking_pid: int
    blocking_user: str | None
    blocking_state: str | None
    blocking_query: str | None

    def __post_init__(self) -> None:
        _redact_fields(self, "blocked_query", "blocking_query")


@dataclass(frozen=True)
class ActivityStat:
    """Client connections of the whole cluster vs ``max_connections``.

    Each part comes from its own query; a part is ``None`` when that query failed.
    """

    max_connections: int | None
    total: int | None
    by_state: tuple[CountBy, ...] | None
    by_application: tuple[CountBy, ...] | None
    by_user: tuple[CountBy, ...] | None
    sessions: tuple[SessionStat, ...] | None
    blocked: tuple[BlockedPair, ...] | None
    #: By client address (``local``: the unix socket); None also in snapshots written before it.
    by_client: tuple[CountBy, ...] | None = None


# ------------------------------------------------------------------------------- database
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


# ------------------------------------------------------------------------------- app side
@dataclass(frozen=True)
class PoolStat:
    """The process's psycopg_pool (``get_stats()``; counters since the pool opened)."""

    name: str | None
    min_size: int
    max_size: int
    size: int
    idle: int
    waiting: int
    requests: int
    requests_queued: int
    requests_wait_ms: int
    timeouts: int
    connection_errors: int
    connections_lost: int

    def in_use(self) -> int:
        """Connections handed out right now."""
        return max(self.size - self.idle, 0)

    def mean_checkout_wait_ms(self) -> float | None:
        """Average wait of the requests that had to queue, or ``None`` when none did."""
        return self.requests_wait_ms / self.requests_queued if self.requests_queued else None


@dataclass(frozen=True)
class CacheStat:
    """The service layer's query cache counters."""

    backend: str
    hits: int
    misses: int
    invalidations: int
    size: int | None


@dataclass(frozen=True)
class ProcessReport:
    """One application process's last report (:mod:`dbops.telemetry.report`): its own figures.

    Counters are since the process started (``started_at``); ``age_s`` is how long ago the
    report was written, by the server's clock. ``live`` is decided once, when the snapshot is
    taken, so that every consumer agrees: the process did not say it closed and reported
    within three of its own intervals (:data:`STALE_INTERVALS`, plus :data:`STALE_GRACE_S`).
    """

    process: str
    name: str
    host: str
    pid: int
    started_at: datetime
    reported_at: datetime
    reported_by: str
    interval_s: float
    age_s: float
    live: bool
    closed: bool
    pools: tuple[PoolStat, ...]
    caches: tuple[CacheStat, ...]
    app: AppStat | None
    access: tuple[CountBy, ...]
    #: Sign-ins refused in the process's last ``monitor_access_window_s`` (``None``: unknown).
    login_failed_recent: int | None = None

    @property
    def label(self) -> str:
        """``name (pid N)``, what the dashboard and the exporter's ``process`` label show."""
        return f"{self.name} (pid {self.pid})"

    def state(self) -> str:
        """``live``, ``closed`` (it said so) or ``silent`` (it stopped reporting)."""
        if self.live:
            return "live"
        return "closed" if self.closed else "silent"


#: Transaction IDs (and multixacts) wrap around at 2^31.
WRAPAROUND_LIMIT = 2**31

#: The roles dbops' services run as (the app role, and the system role for a system actor).
APP_ROLES = frozenset({ROLE_NAMES["app"], SYSTEM_ROLE})

#: A process is live while its last report is younger than this many of its intervals ...
STALE_INTERVALS = 3
#: ... plus this margin (a report's own write and a busy server's delay).
STALE_GRACE_S = 5.0


def is_live(*, closed: bool, age_s: float, interval_s: float) -> bool:
    """The one rule for :attr:`ProcessReport.live`."""
    return not closed and age_s <= STALE_INTERVALS * interval_s + STALE_GRACE_S


@dataclass(frozen=True)
class DayCount:
    """A count for one UTC day."""

    day: date
    count: int


@dataclass(frozen=True)
class TeamSizeCount:
    """How many live teams have ``members`` live members (the last bucket is "or more")."""

    members: int
    teams: int


@dataclass(frozen=True)
class DataStat:
    """The application's own data: users, teams, memberships, invitations, integrity."""

    live_users: int
    deleted_users: int
    live_teams: int
    deleted_teams: int
    memberships_by_role: tuple[CountBy, ...]
    pending_invitations: int
    expired_invitations: int
    signups_per_day: tuple[DayCount, ...]
    team_sizes: tuple[TeamSizeCount, ...]
    zero_owner_teams: int
    zero_owner_team_sample: tuple[str, ...]
    #: The audit trail's last record id (``audit.head``); ``None``: no trail, or not readable.
    #: It only grows: a smaller value later means records were deleted (or a restore).
    audit_last_id: int | None = None


@dataclass(frozen=True)
class SectionError:
    """A collector that failed or timed out; its part of the snapshot is ``None``."""

    collector: str
    message: str
    elapsed_s: float
    hint: str | None = None


@dataclass(frozen=True)
class CarriedSection:
    """A collector's part of a snapshot taken by an earlier collection, at ``taken_at`` (UTC).

    The exporter refreshes its expensive collectors on their own cadence and carries their
    latest parts into each scrape's snapshot (``dbops.monitoring.cadence.SLOW_COLLECTORS``).
    """

    collector: str
    taken_at: datetime


# --------------------------------------------------------------------------- index advice
@dataclass(frozen=True)
class StatementGain:
    """What one index does to one statement's generic plan (costs in planner units)."""

    queryid: int | None
    calls: int
    mean_exec_time_ms: float
    cost_before: float
    cost_after: float
    saved_ms: float


@dataclass(frozen=True)
class IndexSuggestion:
    """A btree index the planner used in a what-if plan, with the statements it serves.

    ``saved_ms`` is the estimated execution time saved over the statistics period: for each
    served statement, calls x (1 - cost_after / cost_before) x mean time. ``write_ms`` is the
    estimated extra write time of UPDATE statements that set an indexed column (they lose HOT).
    """

    schema: str
    table: str
    columns: tuple[str, ...]
    using: str
    create_sql: str
    statements: tuple[StatementGain, ...]
    saved_ms: float
    write_ms: float
    write_note: str | None
    reason: str

    @property
    def queryids(self) -> tuple[int | None, ...]:
        """The statements this index serves."""
        return tuple(s.queryid for s in self.statements)


@dataclass(frozen=True)
class Rejection:
    """A statement or candidate that produced no suggestion, and why."""

    queryid: int | None
    table: str | None
    columns: tuple[str, ...] | None
    reason: str


@dataclass(frozen=True)
class Advice:
    """Suggestions ranked by net time saved, the rejections, and how long advice took."""

    suggestions: tuple[IndexSuggestion, ...]
    rejected: tuple[Rejection, ...]
    elapsed_ms: float


# ------------------------------------------------------------------------------ resources
@dataclass(frozen=True)
class ResourceStat:
    """Disk, CPU, memory and server-log errors of the server.

    ``wal_bytes`` comes from SQL (``pg_ls_waldir``; ``None`` without pg_monitor). The other
    parts need the server on this host (the embedded cluster, given its data directory) and are
    ``None`` otherwise: the volume of the data directory, CPU seconds and resident memory summed
    over the postmaster and its children, and ``log_errors``: ERROR/FATAL/PANIC lines of the
    server log counted by SQLSTATE class (``key``: ``"22"``, ``"57"``, ...), cumulative since
    this process first read the log (starting from at most its last megabyte).
    """

    wal_bytes: int | None = None
    volume_free_bytes: int | None = None
    volume_total_bytes: int | None = None
    cpu_seconds: float | None = None
    memory_rss_bytes: int | None = None
    processes: int | None = None
    log_errors: tuple[CountBy, ...] | None = None


# -------------------------------------------------------------------------------- backups
@dataclass(frozen=True)
class BackupsStat:
    """The logical backups in the backup directory, read from their manifests (no database).

    Ages are seconds before the snapshot's ``taken_at``. The *verified* backup is the newest
    one with a passing restore drill (``dbops backup verify``); its age is how much data a
    restore proven to work would lose. ``last_drill_*`` describe the most recent drill of any
    backup, passed or failed. ``broken`` counts backup folders whose manifest cannot be read.
    """

    directory: str
    count: int
    total_bytes: int
    broken: int
    newest_id: str | None
    newest_at: datetime | None
    newest_age_s: float | None
    newest_bytes: int | None
    verified_id: str | None
    verified_at: datetime | None
    verified_age_s: float | None
    last_drill_at: datetime | None
    last_drill_ok: bool | None
    last_drill_duration_s: float | None
    last_drill_message: str | None


# --------------------------------------------------------------------------------- access
@dataclass(frozen=True)
class AppAccessStat:
    """Access events of the collecting process's service calls since it started.

    Counted by :mod:`dbops.telemetry.access` from the failures of every public service method:
    refused sign-ins, :class:`~dbops.errors.Forbidden`, :class:`~dbops.errors.NotFound`
    (missing or hidden from the actor), and statements the server refused under row-level
    security or for a missing privilege (SQLSTATE 42501). ``login_failed_recent`` counts the
    refused sign-ins of the last :attr:`AccessStat.window_s` seconds.
    """

    login_failed: int
    forbidden: int
    not_found: int
    rls_denied: int
    privilege_denied: int
    login_failed_recent: int

    def by_kind(self) -> tuple[CountBy, ...]:
        """The cumulative counts, one per kind."""
        return (
            CountBy("login_failed", self.login_failed),
            CountBy("forbidden", self.forbidden),
            CountBy("not_found", self.not_found),
            CountBy("rls_denied", self.rls_denied),
            CountBy("privilege_denied", self.privilege_denied),
        )


@dataclass(frozen=True)
class ServerAccessStat:
    """Refused logins and denials in the server log (a server on this host: the embedded one).

    Counted like :attr:`ResourceStat.log_errors` (cumulative since this process first read the
    log, starting from at most its last megabyte): ``login_failed`` are ERROR/FATAL lines of
    SQLSTATE class 28 (``28P01`` wrong password, ``28000`` no or a rejecting ``pg_hba.conf``
    entry, an unknown role), ``rls_denied`` lines of SQLSTATE 42501 about row-level security
    (``new row violates row-level security policy``), ``privilege_denied`` the other 42501
    lines (``permission denied for table``). ``login_failed_recent`` counts the refused logins
    of the last :attr:`AccessStat.window_s` seconds by the log's own times; ``None`` when a
    refused login's time could not be read (``log_timezone`` other than UTC).
    """

    login_failed: int
    rls_denied: int
    privilege_denied: int
    login_failed_recent: int | None

    def by_kind(self) -> tuple[CountBy, ...]:
        """The cumulative counts, one per kind."""
        return (
            CountBy("login_failed", self.login_failed),
            CountBy("rls_denied", self.rls_denied),
            CountBy("privilege_denied", self.privilege_denied),
        )


@dataclass(frozen=True)
class AccessStat:
    """Access monitoring: the application's side and the server's side.

    ``app`` is ``None`` unless the snapshot was taken inside the application process
    (``collect_snapshot(..., app=True)``); ``server`` is ``None`` when the server's log is not
    on this host (or cannot be read). ``window_s`` is the span of the ``*_recent`` counts.
    """

    window_s: float
    app: AppAccessStat | None = None
    server: ServerAccessStat | None = None


# ------------------------------------------------------------------------------- snapshot
@dataclass(frozen=True)
class Snapshot:
    """Everything one collection saw, at ``taken_at`` (UTC).

    A section is ``None`` when unknown (its collector failed: see ``errors``). ``data`` is also
    ``None`` when the database has no dbops tables, and ``pool``/``cache`` when none was given.
    ``advice`` is ``None`` unless index advice was asked for (and ran without error).
    ``app`` (the collecting process's own statement latencies) is ``None`` unless asked for.
    ``resources`` is ``None`` when its collector failed. ``backups`` is ``None`` when the
    backup directory could not be read (or the snapshot predates backups). ``access`` is
    ``None`` when its collector failed (or the snapshot predates it). ``pool`` and ``cache``
    are the collecting process's own (a dashboard's, an exporter's); the application's pools,
    caches and statements are its processes' reports, ``processes`` (``None`` when unknown).
    ``carried`` names the parts an earlier collection took (the exporter's slow cadence).
    """

    taken_at: datetime
    server: ServerInfo | None
    statements: StatementsStat | None
    indexes: tuple[IndexStat, ...] | None
    tables: tuple[TableStat, ...] | None
    activity: ActivityStat | None
    database: DatabaseStat | None
    pool: PoolStat | None
    cache: CacheStat | None
    data: DataStat | None
    errors: tuple[SectionError, ...]
    duration_s: float
    advice: Advice | None = None
    schema_version: int = SCHEMA_VERSION
    app: AppStat | None = None
    resources: ResourceStat | None = None
    backups: BackupsStat | None = None
    access: AccessStat | None = None
    processes: tuple[ProcessReport, ...] | None = None
    #: Parts taken by an earlier collection (empty: every part is from ``taken_at``).
    carried: tuple[CarriedSection, ...] = ()

    def collected_at(self, collector: str) -> datetime:
        """When ``collector``'s part was taken: ``taken_at`` unless it is carried."""
        return next((c.taken_at for c in self.carried if c.collector == collector), self.taken_at)

    def part_age_s(self, collector: str) -> float:
        """How much older than the snapshot ``collector``'s part is, in seconds (0 or more).

        Parts collected in the same call as the snapshot (the first, "Refresh now") started a
        moment after it: their age is 0, not a few negative milliseconds.
        """
        return max(0.0, (self.taken_at - self.collected_at(collector)).total_seconds())

    def stats_age_s(self) -> float | None:
        """How long the database's statistics have counted, at ``taken_at``.

        Since ``pg_stat_database.stats_reset``; never reset, since the server started (a lower
        bound: PostgreSQL 15 keeps the counters over a clean restart). ``None`` when unknown.
        """
        since = self.database.stats_reset if self.database is not None else None
        if since is None and self.server is not None:
            since = self.server.started_at
        return None if since is None else (self.taken_at - since).total_seconds()

    def live_processes(self) -> tuple[ProcessReport, ...]:
        """The application processes reporting now (``()`` when unknown or none)."""
        return tuple(p for p in self.processes or () if p.live)

    def app_roles(self) -> frozenset[str]:
        """The roles whose statements are the application's, not dbops' own work.

        dbops' app role and the system role its services switch to (:data:`APP_ROLES`), and
        the role each reporting process connects as (a ``DATABASE_URL`` user). Setup,
        migrations, backups and monitoring run as the other roles (the owner, the read-only
        and monitor roles, an administrator).
        """
        return APP_ROLES | {p.reported_by for p in self.processes or ()}

    def app_statements(self) -> tuple[QueryStat, ...]:
        """The top statements run by one of :meth:`app_roles` (``()`` when unknown or none)."""
        roles = self.app_roles()
        top = self.statements.top if self.statements is not None else ()
        return tuple(q for q in top if q.user in roles)

    def app_pools(self) -> tuple[PoolStat, ...]:
        """The pools of the live application processes: the pools that serve the app."""
        return tuple(pool for p in self.live_processes() for pool in p.pools)

    def error(self, collector: str) -> SectionError | None:
        """The error recorded for ``collector``, if any."""
        return next((e for e in self.errors if e.collector == collector), None)

    def to_json(self, *, indent: int | None = None) -> str:
        """The snapshot as JSON; :meth:`from_json` gives back an equal snapshot."""
        return json.dumps(_encode(self), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        """Read a snapshot written by :meth:`to_json`."""
        return _decode_as(json.loads(text), Snapshot)


# ------------------------------------------------------------------------------ JSON codec
def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _decode(value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _decode(value, args[0])
    if origin is tuple:
        (item,) = (a for a in typing.get_args(tp) if a is not Ellipsis)
        return tuple(_decode(v, item) for v in value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        known = {f.name for f in dataclasses.fields(tp)}
        # Unknown keys come from a newer writer: ignore them rather than fail.
        return tp(**{k: _decode(v, hints[k]) for k, v in value.items() if k in known})
    if tp is datetime:
        return datetime.fromisoformat(value)
    if tp is date:
        return date.fromisoformat(value)
    if tp is float:
        return float(value)
    return value


def _decode_as(value: Any, tp: type[T]) -> T:
    result: T = _decode(value, tp)
    return result


# ------------------------------------------------------------------ query history (history.py)
@dataclass(frozen=True)
class CaptureResult:
    """What one :func:`dbops.monitoring.history.capture` stored.

    ``baseline`` is true for the first capture (it records counters, no samples).
    ``restarted`` counts entries whose counters went down (reset or deallocated and back) and
    that were counted from zero; ``reset_detected`` says the whole view was reset
    (``pg_stat_statements_info.stats_reset`` changed, PostgreSQL 14+).
    """

    capture_id: int
    captured_at: datetime
    baseline: bool
    interval_s: float | None
    entries: int
    samples: int
    restarted: int
    reset_detected: bool
    new_statements: int
    dealloc: int | None
    stats_reset: datetime | None
    duration_ms: float


@dataclass(frozen=True)
class PruneResult:
    """Rows :func:`dbops.monitoring.history.prune` deleted, older than ``cutoff``."""

    cutoff: datetime
    captures: int
    statement_samples: int
    database_samples: int
    table_samples: int
    statements: int
    process_samples: int = 0
    process_reports: int = 0


@dataclass(frozen=True)
class ProcessPoint:
    """An application process's pool and cache totals at one sample (its pools summed).

    Counters are since the process started; ``*_per_s`` are rates since its previous point
    (``None`` for its first point in a window).
    """

    process: str
    name: str
    pid: int
    reported_at: datetime
    size: int
    idle: int
    in_use: int
    waiting: int
    max_size: int
    requests: int
    requests_wait_ms: int
    timeouts: int
    cache_hits: int
    cache_misses: int
    calls: int
    errors: int
    calls_per_s: float | None
    requests_per_s: float | None


@dataclass(frozen=True)
class StatementPoint:
    """One capture interval of one queryid (summed over the roles that ran it)."""

    captured_at: datetime
    interval_s: float
    calls: int
    calls_per_s: float
    total_exec_time_ms: float
    mean_exec_time_ms: float
    rows: int


@dataclass(frozen=True)
class StatementTotal:
    """Sum of one queryid's deltas over a time window, with its normalized text."""

    queryid: int
    query: str | None
    calls: int
    total_exec_time_ms: float
    mean_exec_time_ms: float
    rows: int
    shared_blks_hit: int
    shared_blks_read: int
    temp_blks_written: int
    total_plan_time_ms: float
    samples: int
    first_sample: datetime
    last_sample: datetime

    def __post_init__(self) -> None:
        _redact_fields(self, "query")


@dataclass(frozen=True)
class DatabasePoint:
    """Database size and cumulative counters at one capture.

    ``*_per_s`` are rates since the previous point (``None`` for the first point of a window,
    or when a counter went down after a stats reset).
    """

    captured_at: datetime
    size_bytes: int
    numbackends: int
    xact_commit: int
    xact_rollback: int
    temp_bytes: int
    deadlocks: int
    blks_hit: int
    blks_read: int
    commits_per_s: float | None
    rollbacks_per_s: float | None


@dataclass(frozen=True)
class TableGrowth:
    """Size and rows of one table at the first and last capture of a window."""

    schema: str
    table: str
    first_captured_at: datetime
    last_captured_at: datetime
    first_bytes: int
    last_bytes: int
    growth_bytes: int
    first_live_rows: int | None
    last_live_rows: int | None
    last_dead_rows: int | None


# ------------------------------------------------------------------ app statement latency
@dataclass(frozen=True)
class StatementLatency:
    """One service statement's latency histogram and errors in this process (since start).

    ``bucket_counts`` are cumulative, one per bound of :attr:`AppStat.buckets_s` (calls that
    took at most that long); ``count`` (every call, failed ones included) is the ``+Inf``
    bucket. ``errors`` counts failures by SQLSTATE class (``key``: ``"23"``, ``"40"``, ...,
    ``"other"`` when the failure had no SQLSTATE).
    """

    name: str
    count: int
    sum_s: float
    bucket_counts: tuple[int, ...]
    errors: tuple[CountBy, ...]

    def error_count(self) -> int:
        """Failed calls of every class."""
        return sum(e.count for e in self.errors)


@dataclass(frozen=True)
class AppStat:
    """The collecting process's service statements: latency histograms and errors."""

    buckets_s: tuple[float, ...]
    statements: tuple[StatementLatency, ...]

    def statement(self, name: str) -> StatementLatency | None:
        """The statement called ``name``, if it ran."""
        return next((s for s in self.statements if s.name == name), None)
