"""The host's and server's resources: disk, WAL, memory."""

from __future__ import annotations

from dataclasses import dataclass

from dbops.monitoring.snapshot._base import CountBy

__all__ = [
    "ResourceStat",
]


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
