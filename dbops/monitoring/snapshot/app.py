"""The application side: pools, query caches, process reports, service statement latency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dbops.db.roles import ROLE_NAMES, SYSTEM_ROLE
from dbops.monitoring.snapshot._base import CountBy

__all__ = [
    "APP_ROLES",
    "STALE_GRACE_S",
    "STALE_INTERVALS",
    "AppStat",
    "CacheStat",
    "PoolStat",
    "ProcessReport",
    "ReplicaRoute",
    "ReplicaRouting",
    "StatementLatency",
    "is_live",
]


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
class ReplicaRoute:
    """One replica as a process's router saw it at its last report."""

    name: str
    usable: bool
    #: ``ok``, or why reads skip it (``down: ...``, ``lagging 7.2 s``, ``not in recovery``).
    reason: str
    staleness_s: float | None


@dataclass(frozen=True)
class ReplicaRouting:
    """Where a process's lag-tolerant reads ran since it started (:mod:`dbops.db.replicas`).

    ``fallbacks``: primary reads by reason (``no replica``, ``behind``: the wait for the actor's
    write ran out, ``failed``: the replica could not answer and the read ran again).
    """

    replica_reads: int
    primary_reads: int
    waited: int
    fallbacks: tuple[CountBy, ...]
    replicas: tuple[ReplicaRoute, ...]


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
    #: Its replica routers' counts (empty: it reads from the primary only).
    routing: tuple[ReplicaRouting, ...] = ()

    @property
    def label(self) -> str:
        """``name (pid N)``, what the dashboard and the exporter's ``process`` label show."""
        return f"{self.name} (pid {self.pid})"

    def state(self) -> str:
        """``live``, ``closed`` (it said so) or ``silent`` (it stopped reporting)."""
        if self.live:
            return "live"
        return "closed" if self.closed else "silent"


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
