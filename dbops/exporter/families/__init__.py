"""Snapshot -> metric families: one module per snapshot section.

As postgres_exporter registers one collector per file.

:func:`snapshot_metrics` calls each section's function in a fixed order; a new section adds a
module here and one call below. :func:`slow_part_metrics` is the part the background cadence
refreshes (statements, tables, data, checks).
"""

from __future__ import annotations

from collections.abc import Collection

from prometheus_client.core import (
    Metric,
)

from dbops.config import Settings
from dbops.exporter.families._base import Families
from dbops.exporter.families.access import access_event_metrics
from dbops.exporter.families.activity import activity_metrics
from dbops.exporter.families.app import statement_families
from dbops.exporter.families.backups import backup_metrics
from dbops.exporter.families.bouncer import bouncer_metrics
from dbops.exporter.families.checks import check_metrics
from dbops.exporter.families.data import data_metrics
from dbops.exporter.families.database import database_metrics
from dbops.exporter.families.ha import ha_metrics
from dbops.exporter.families.indexes import index_metrics
from dbops.exporter.families.processes import process_metrics
from dbops.exporter.families.resources import resource_metrics
from dbops.exporter.families.statements import statement_metrics
from dbops.exporter.families.tables import table_metrics
from dbops.monitoring.cadence import SLOW_COLLECTORS
from dbops.monitoring.snapshot import (
    Snapshot,
)


def snapshot_metrics(
    snapshot: Snapshot, settings: Settings, *, keep: Collection[str] = (), slow: bool = True
) -> list[Metric]:
    """Every metric family a snapshot gives (pure: same snapshot and ``keep``, same families).

    ``keep``: queryids exported by the previous scrape (:func:`exported_statements`); they stay
    while the snapshot still holds them, so that a statement's series do not come and go.
    ``slow`` false leaves out :func:`slow_part_metrics`.
    """
    f = Families()
    f.gauge(
        "dbops_snapshot_duration_seconds", "Time the snapshot took to collect.", snapshot.duration_s
    )
    f.timestamp(
        "dbops_snapshot_timestamp_seconds", "When the snapshot was taken.", snapshot.taken_at
    )
    f.gauge(
        "dbops_snapshot_errors", "Collectors that failed in this snapshot.", len(snapshot.errors)
    )
    for name in SLOW_COLLECTORS:
        f.gauge(
            "dbops_collector_age_seconds",
            "How much older than the snapshot this collector's part is (the exporter refreshes "
            "the expensive ones every exporter_slow_interval_s; 0: taken with the snapshot).",
            snapshot.part_age_s(name),
            collector=name,
        )
    if snapshot.server is not None:
        server = snapshot.server
        f.info(
            "dbops_server",
            "The PostgreSQL server and database.",
            {
                "version": server.version,
                "database": server.database,
                # Which node answered (a multi-host URL follows the primary): local = socket.
                "address": server.address or "local",
            },
        )
        f.gauge("dbops_server_version_num", "server_version_num.", server.version_num)
        f.gauge("dbops_in_recovery", "1 on a standby.", 1.0 if server.in_recovery else 0.0)
        f.timestamp("dbops_server_start_timestamp_seconds", "Postmaster start.", server.started_at)
    activity_metrics(f, snapshot)
    database_metrics(f, snapshot)
    if snapshot.resources is not None:
        resource_metrics(f, snapshot.resources)
    if snapshot.backups is not None:
        backup_metrics(f, snapshot.backups)
    if snapshot.bouncer is not None:
        bouncer_metrics(f, snapshot.bouncer)
    if snapshot.ha is not None:
        ha_metrics(f, snapshot.ha)
    if snapshot.access is not None and snapshot.access.server is not None:
        counts = [(str(c.key), c.count) for c in snapshot.access.server.by_kind()]
        access_event_metrics(f, "server", counts, process="", pid="")
    process_metrics(f, snapshot)
    check_metrics(f, snapshot, settings)
    families = f.all()
    apps = [
        (p.app, {"process": p.name, "pid": str(p.pid)})
        for p in snapshot.live_processes()
        if p.app is not None
    ]
    if apps:
        families.extend(statement_families(apps))
    if slow:
        families.extend(slow_part_metrics(snapshot, settings, keep=keep))
    return families


def slow_part_metrics(
    snapshot: Snapshot, settings: Settings, *, keep: Collection[str] = ()
) -> list[Metric]:
    """The families of the :data:`SLOW_COLLECTORS`' parts: statements, indexes, tables, data.

    They depend on those parts alone (and ``keep``), so while the parts are carried unchanged
    the exporter serves them rendered once (:class:`_MetricsApp`): they are most of the series.
    """
    f = Families()
    statement_metrics(f, snapshot, settings, keep)
    index_metrics(f, snapshot)
    table_metrics(f, snapshot)
    data_metrics(f, snapshot)
    return f.all()
