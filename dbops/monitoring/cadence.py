"""Slow collectors on their own cadence: what the exporter and the dashboard share.

A snapshot at 1M users spends most of its time in a few collectors (statement statistics, the
bloat estimate, per-table and per-index rows, the data counts). The exporter's scrapes and the
dashboard's pages take a snapshot of the rest each time and carry the latest slow parts,
refreshed in the background (:class:`SlowSections`); each carried part says when it was taken,
and the exporter exports that age.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

from dbops.config import Settings
from dbops.db import Database
from dbops.monitoring.collect import COLLECTORS, SECTIONS, collect_snapshot
from dbops.monitoring.collectors import database
from dbops.monitoring.snapshot import CarriedSection, Snapshot

__all__ = ["SLOW_COLLECTORS", "Cadence", "SlowSections"]

#: The collectors run on their own cadence (``exporter_slow_interval_s`` for the exporter,
#: ``dashboard_slow_interval_s`` for the dashboard) in the background, their latest parts
#: carried into every snapshot with their age (``dbops_collector_age_seconds``), as pgwatch
#: schedules metrics by interval: the expensive ones (pg_stat_statements with thousands of
#: entries and the bloat estimate cost ten times the rest of a snapshot; per-table and
#: per-index rows are most of the series) and catalog state that changes slowly (settings,
#: role defaults, NOT VALID constraints, sequences, xid ages). Each snapshot collects the
#: rest: activity, counters, replication, checkpoints, resources, the processes' reports.
SLOW_COLLECTORS = (
    "statements",
    "indexes.bloat",
    "indexes",
    "tables",
    "data",
    "database.xid_ages",
    "database.sequences",
    "database.constraints",
    "database.settings",
    "database.role_defaults",
)
#: Where the slow parts sit, from the sections themselves: the snapshot fields whose parts are
#: all slow (``indexes.bloat`` is inside ``indexes``), and the ``snapshot.database`` fields of
#: the slow database parts.
_SNAPSHOT_PARTS = tuple(
    s.field for s in SECTIONS if all(p.name in SLOW_COLLECTORS for p in s.parts)
)
_DATABASE_PARTS = {
    name: field for name, field in database.LIST_FIELDS.items() if name in SLOW_COLLECTORS
}


class SlowSections:
    """The parts of :data:`SLOW_COLLECTORS`, refreshed in the background at their own cadence.

    :meth:`complete` gives a snapshot taken without them their latest parts, as
    :class:`~dbops.monitoring.snapshot.CarriedSection` entries with the time they were taken.
    The first call collects them in the caller's thread (the first snapshot is whole); later,
    when the parts are older than ``interval_s``, one refresh runs in a daemon thread and the
    caller goes on with the parts it has: a scrape or a page never waits for them again. A
    refresh that fails keeps the previous parts, whose age then grows (what an alert on
    ``dbops_collector_age_seconds`` sees); its errors are in the parts it carries.

    Args:
        collect: takes a snapshot of the slow collectors only.
        interval_s: refresh when the parts are at least this old.
        clock: monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        collect: Callable[[], Snapshot],
        *,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._collect = collect
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._parts: Snapshot | None = None
        self._parts_at = 0.0
        self._refreshing = False
        self._expired = False

    def expire(self) -> None:
        """Make the next :meth:`complete` collect the parts in the caller's thread.

        A person pressed "Refresh now": they wait for fresh numbers rather than see old ones.
        """
        with self._lock:
            self._expired = True

    def complete(self, snapshot: Snapshot) -> Snapshot:
        """``snapshot`` with the slow parts it lacks: the latest ones, marked as carried."""
        with self._lock:
            parts, due = self._parts, self._clock() - self._parts_at >= self._interval_s
            here, self._expired = parts is None or self._expired, False
            start = not here and due and not self._refreshing
            if start:
                self._refreshing = True
        if here:
            parts = self._refresh() or parts
        elif start:
            threading.Thread(
                target=self._refresh, name="dbops-slow-collectors", daemon=True
            ).start()
        if parts is None:
            return snapshot
        errors = tuple(e for e in parts.errors if e.collector in SLOW_COLLECTORS)
        database = snapshot.database
        if database is not None and parts.database is not None:
            database = dataclasses.replace(
                database,
                **{field: getattr(parts.database, field) for field in _DATABASE_PARTS.values()},
            )
        return dataclasses.replace(
            snapshot,
            **{field: getattr(parts, field) for field in _SNAPSHOT_PARTS},
            database=database,
            errors=snapshot.errors + errors,
            carried=tuple(CarriedSection(name, parts.taken_at) for name in SLOW_COLLECTORS),
        )

    def _refresh(self) -> Snapshot | None:
        try:
            parts = self._collect()
        except Exception:  # the database went away: keep the old parts, their age shows it
            parts = None
        with self._lock:
            self._refreshing = False
            if parts is not None:
                self._parts, self._parts_at = parts, self._clock()
            return self._parts


class Cadence:
    """Snapshots of ``db``: the cheap collectors on each call, the slow ones carried.

    The slow parts come from one :class:`SlowSections` refreshed every ``interval_s``, their
    queries under ``monitor_slow_collector_timeout_ms``.
    """

    def __init__(self, db: Database, settings: Settings, *, interval_s: float) -> None:
        self._db, self._settings = db, settings
        # The slow refresh reads its parts only: not the manifests or the server log again.
        fast = (
            *(name for name in COLLECTORS if name not in SLOW_COLLECTORS),
            "backups",
            "access",
            "bouncer",
            "ha",
        )
        # In the background nobody waits on them: their own, longer statement timeout.
        patient = dict.fromkeys(SLOW_COLLECTORS, settings.monitor.slow_collector_timeout_ms)
        self._slow = SlowSections(
            lambda: collect_snapshot(db, settings, skip=fast, timeouts_ms=patient),
            interval_s=interval_s,
        )

    def __call__(self) -> Snapshot:
        """A snapshot: the cheap collectors now, the slow parts as last refreshed."""
        return self._slow.complete(collect_snapshot(self._db, self._settings, skip=SLOW_COLLECTORS))

    def expire(self) -> None:
        """The next call collects the slow parts too, in the caller's thread."""
        self._slow.expire()
