"""Logical backups proven by restoring them: create, list, verify, restore, prune.

``manifest`` (standard library only) is what monitoring reads; the rest runs pg_dump and
pg_restore and is imported on first use of a name, so importing this package (or the
manifest) loads no driver, no SQLAlchemy and no service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbops._lazy import lazy_exports
from dbops.core.manifest import (
    MANIFEST_VERSION,
    BackupFile,
    BrokenManifest,
    Drill,
    Manifest,
    TableRows,
    read_manifests,
)

if TYPE_CHECKING:
    from dbops.ops.backup._common import (
        Progress,
        Step,
        backup_root,
        client_env,
        find_backup,
        pg_tool,
    )
    from dbops.ops.backup.create import create_backup
    from dbops.ops.backup.prune import PruneDecision, PrunePlan, plan_prune, prune_backups
    from dbops.ops.backup.restore import RestoreResult, restore_backup
    from dbops.ops.backup.verify import verify_backup

__all__ = [
    "MANIFEST_VERSION",
    "BackupFile",
    "BrokenManifest",
    "Drill",
    "Manifest",
    "Progress",
    "PruneDecision",
    "PrunePlan",
    "RestoreResult",
    "Step",
    "TableRows",
    "backup_root",
    "client_env",
    "create_backup",
    "find_backup",
    "pg_tool",
    "plan_prune",
    "prune_backups",
    "read_manifests",
    "restore_backup",
    "verify_backup",
]

_LAZY = {
    "Progress": "_common",
    "Step": "_common",
    "backup_root": "_common",
    "client_env": "_common",
    "pg_tool": "_common",
    "find_backup": "_common",
    "create_backup": "create",
    "PruneDecision": "prune",
    "PrunePlan": "prune",
    "plan_prune": "prune",
    "prune_backups": "prune",
    "RestoreResult": "restore",
    "restore_backup": "restore",
    "verify_backup": "verify",
}


__getattr__, __dir__ = lazy_exports(
    __name__, {name: f"{__name__}.{module}" for name, module in _LAZY.items()}
)
