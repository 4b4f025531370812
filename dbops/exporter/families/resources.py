"""Host resources: CPU, memory, disk of the database's host (when local)."""

from __future__ import annotations

from dbops.exporter.families._base import Families
from dbops.monitoring.snapshot import (
    ResourceStat,
)


def resource_metrics(f: Families, res: ResourceStat) -> None:
    """The host resources' families into ``f``."""
    f.gauge("dbops_wal_bytes", "Size of the WAL directory.", res.wal_bytes)
    f.gauge(
        "dbops_volume_free_bytes",
        "Free space on the data directory's volume.",
        res.volume_free_bytes,
    )
    f.gauge(
        "dbops_volume_total_bytes", "Size of the data directory's volume.", res.volume_total_bytes
    )
    f.counter(
        "dbops_server_cpu_seconds",
        "CPU seconds of the postmaster and its children (exited ones included).",
        res.cpu_seconds,
    )
    f.gauge(
        "dbops_server_memory_rss_bytes",
        "Resident memory of the postmaster and its children.",
        res.memory_rss_bytes,
    )
    for item in res.log_errors or ():
        f.counter(
            "dbops_server_log_errors",
            "ERROR/FATAL/PANIC lines in the server log, by SQLSTATE class.",
            item.count,
            sqlstate_class=item.key or "other",
        )
