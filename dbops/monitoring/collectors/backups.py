"""Backups: the manifests in the backup directory, summed up for the snapshot (no SQL).

Reads ``manifest.json`` files only, so it works whether the database is up or not, and it
imports nothing but the standard-library manifest module of :mod:`dbops.ops.backup`.
"""

from __future__ import annotations

from datetime import datetime

from dbops.config import Settings
from dbops.core.manifest import BrokenManifest, default_backup_dir, read_manifests
from dbops.monitoring.snapshot import BackupsStat

__all__ = ["collect_backups"]


def collect_backups(settings: Settings, *, now: datetime) -> BackupsStat:
    """Count, size, newest and newest verified backup, and the last restore drill.

    Args:
        settings: ``backup_dir`` (default ``<home>/backups``).
        now: the snapshot's time; ages are measured from it.
    """
    directory = default_backup_dir(settings.backup.dir, settings.home)
    broken: list[BrokenManifest] = []
    manifests = read_manifests(directory, on_broken=broken.append)
    newest = manifests[0] if manifests else None
    verified = next((m for m in manifests if m.verified_at is not None), None)
    drills = [d for m in manifests for d in m.drills]
    last = max(drills, key=lambda d: d.at, default=None)
    return BackupsStat(
        directory=str(directory),
        count=len(manifests),
        total_bytes=sum(m.size_bytes for m in manifests),
        broken=len(broken),
        newest_id=newest.id if newest else None,
        newest_at=newest.created_at if newest else None,
        newest_age_s=_age(now, newest.created_at) if newest else None,
        newest_bytes=newest.size_bytes if newest else None,
        verified_id=verified.id if verified else None,
        verified_at=verified.created_at if verified else None,
        verified_age_s=_age(now, verified.created_at) if verified else None,
        last_drill_at=last.at if last else None,
        last_drill_ok=last.ok if last else None,
        last_drill_duration_s=last.duration_s if last else None,
        last_drill_message=last.message if last else None,
    )


def _age(now: datetime, then: datetime) -> float:
    return round(max(0.0, (now - then).total_seconds()), 3)
