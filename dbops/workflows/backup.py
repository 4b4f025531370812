"""A backup and its retention: take one, then apply the keep rules (what the scheduler runs)."""

from __future__ import annotations

from dbops.config import Settings
from dbops.core.manifest import Manifest
from dbops.db.dsn import Dsn
from dbops.ops.backup import PrunePlan, create_backup, prune_backups

__all__ = ["backup_and_prune"]


def backup_and_prune(settings: Settings, dsn: Dsn) -> tuple[Manifest, PrunePlan]:
    """A logical backup of ``dsn``, then the deletions ``backup_keep_*`` call for, applied.

    The new backup counts as the newest for the rules, so it is never the one pruned.
    """
    manifest = create_backup(settings, dsn)
    return manifest, prune_backups(settings, apply=True)
