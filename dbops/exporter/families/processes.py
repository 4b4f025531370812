"""The application processes that report to the database (dbops.telemetry.report): their pools."""

from __future__ import annotations

import collections

from dbops.exporter.families._base import Families
from dbops.exporter.families.access import access_event_metrics
from dbops.exporter.families.pool import cache_metrics, pool_metrics
from dbops.monitoring.snapshot import (
    Snapshot,
)


def process_metrics(f: Families, snap: Snapshot) -> None:
    """The application's processes: each live one's pools, caches and access events.

    One route for these facts: the processes' reports (:mod:`dbops.telemetry.report`), never the
    pool of the process that took the snapshot (the exporter's own). Labels ``process`` (its
    name) and ``pid``: a restarted process is a new series, as with a scraped target.
    """
    if snap.processes is None:
        return
    states = collections.Counter(p.state() for p in snap.processes)
    for state in ("live", "silent", "closed"):
        f.gauge(
            "dbops_processes",
            "Application processes that reported within the last hour, by state (live: within "
            "three of their report intervals).",
            float(states[state]),
            state=state,
        )
    for process in snap.live_processes():
        who = {"process": process.name, "pid": str(process.pid)}
        f.gauge(
            "dbops_process_report_age_seconds",
            "Seconds since the process's last report (server clock).",
            process.age_s,
            **who,
        )
        f.timestamp(
            "dbops_process_start_timestamp_seconds",
            "When the process started (its counters count from then).",
            process.started_at,
            **who,
        )
        for pool in process.pools:
            pool_metrics(f, pool, **who)
        for cache in process.caches:
            cache_metrics(f, cache, **who)
        counts = [(str(c.key), c.count) for c in process.access]
        access_event_metrics(f, "app", counts, **who)
        for routing in process.routing:
            doc = (
                "Lag-tolerant service reads by where they ran (dbops.db.replicas): replica, or "
                "primary with the reason (no replica, behind, failed)."
            )
            f.counter(
                "dbops_app_replica_reads",
                doc,
                routing.replica_reads,
                served_by="replica",
                reason="",
                **who,
            )
            for fallback in routing.fallbacks:
                f.counter(
                    "dbops_app_replica_reads",
                    doc,
                    fallback.count,
                    served_by="primary",
                    reason=str(fallback.key),
                    **who,
                )
            for replica in routing.replicas:
                f.gauge(
                    "dbops_app_replica_usable",
                    "1 when the process's router reads from the replica, 0 when it skips it.",
                    float(replica.usable),
                    replica=replica.name,
                    **who,
                )
