"""Backups: the last backup's age and size, the restore drill's state."""

from __future__ import annotations

from dbops.exporter.families._base import Families
from dbops.monitoring.snapshot import (
    BackupsStat,
)


def backup_metrics(f: Families, b: BackupsStat) -> None:
    """The backups section's families into ``f``."""
    f.gauge(
        "dbops_backup_manifests", "Backups in the backup directory (readable manifests).", b.count
    )
    f.gauge("dbops_backup_size_bytes", "Bytes of every backup in the directory.", b.total_bytes)
    f.gauge("dbops_backup_broken", "Backup folders whose manifest cannot be read.", b.broken)
    f.gauge(
        "dbops_backup_newest_age_seconds",
        "Age of the newest backup (absent: no backup).",
        b.newest_age_s,
    )
    f.gauge(
        "dbops_backup_verified_newest_age_seconds",
        "Age of the newest backup that passed a restore drill (absent: none did).",
        b.verified_age_s,
    )
    f.gauge(
        "dbops_backup_last_drill_success",
        "1 when the most recent restore drill passed, 0 when it failed (absent: no drill).",
        None if b.last_drill_ok is None else float(b.last_drill_ok),
    )
    f.gauge(
        "dbops_backup_last_drill_duration_seconds",
        "Duration of the most recent restore drill.",
        b.last_drill_duration_s,
    )
