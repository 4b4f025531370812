"""The scheduler's backup workflow: a new backup, then retention that never prunes it."""

from __future__ import annotations

from dbops.config import Settings
from dbops.db.dsn import Dsn
from dbops.ops.backup import backup_root, read_manifests
from dbops.workflows.backup import backup_and_prune


def test_the_new_backup_survives_its_own_retention(bk_settings: Settings, source_url: str) -> None:
    settings = bk_settings.model_copy(
        update={"backup_keep_last": 1, "backup_keep_daily": 0, "backup_keep_weekly": 0}
    )
    first, pruned = backup_and_prune(settings, Dsn.parse(source_url))
    assert pruned.delete == ()
    second, pruned = backup_and_prune(settings, Dsn.parse(source_url))
    assert [d.id for d in pruned.delete] == [first.id]
    assert [m.id for m in read_manifests(backup_root(settings))] == [second.id]
