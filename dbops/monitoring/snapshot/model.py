"""The snapshot itself: every section, the errors, what was carried, and its JSON form."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from dbops.monitoring.snapshot._base import SCHEMA_VERSION, ServerInfo
from dbops.monitoring.snapshot.access import AccessStat
from dbops.monitoring.snapshot.activity import ActivityStat
from dbops.monitoring.snapshot.advice import Advice
from dbops.monitoring.snapshot.app import APP_ROLES, AppStat, CacheStat, PoolStat, ProcessReport
from dbops.monitoring.snapshot.backups import BackupsStat
from dbops.monitoring.snapshot.bouncer import BouncerStat
from dbops.monitoring.snapshot.codec import decode_as, encode
from dbops.monitoring.snapshot.data import DataStat
from dbops.monitoring.snapshot.database import DatabaseStat
from dbops.monitoring.snapshot.ha import HaStat
from dbops.monitoring.snapshot.indexes import IndexStat
from dbops.monitoring.snapshot.resources import ResourceStat
from dbops.monitoring.snapshot.statements import QueryStat, StatementsStat
from dbops.monitoring.snapshot.tables import TableStat

__all__ = [
    "CarriedSection",
    "SectionError",
    "Snapshot",
]


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
    #: PgBouncer's pools and traffic (None: no ``DBOPS_MONITOR_PGBOUNCER_URL``, or it failed).
    bouncer: BouncerStat | None = None
    #: The Patroni cluster's members (None: no ``DBOPS_MONITOR_PATRONI_URL``, or it failed).
    ha: HaStat | None = None
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
        return json.dumps(encode(self), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        """Read a snapshot written by :meth:`to_json`."""
        return decode_as(json.loads(text), Snapshot)
