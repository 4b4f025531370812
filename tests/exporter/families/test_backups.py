"""Backup metrics of the exporter over the canned snapshots (no database)."""

from __future__ import annotations

import dataclasses

from tests.exporter.test_exporter import _registry, _source, _value
from tests.fixtures.snapshots import degraded_snapshot, healthy_snapshot


def test_healthy_backup_metrics() -> None:
    reg = _registry(_source(healthy_snapshot()))
    assert _value(reg, "dbops_backup_manifests") == 3.0
    assert _value(reg, "dbops_backup_size_bytes") == 3_000_000.0
    assert _value(reg, "dbops_backup_broken") == 0.0
    assert _value(reg, "dbops_backup_newest_age_seconds") == 10_800.123
    assert _value(reg, "dbops_backup_verified_newest_age_seconds") == 10_800.123
    assert _value(reg, "dbops_backup_last_drill_success") == 1.0
    assert _value(reg, "dbops_backup_last_drill_duration_seconds") == 12.5
    assert _value(reg, "dbops_check_status", check="backup_stale", severity="ok") == 1.0


def test_degraded_backup_metrics_and_checks() -> None:
    reg = _registry(_source(degraded_snapshot()))
    assert _value(reg, "dbops_backup_newest_age_seconds") == 270_000.0
    assert _value(reg, "dbops_backup_verified_newest_age_seconds") == 875_000.0
    assert _value(reg, "dbops_backup_last_drill_success") == 0.0
    assert _value(reg, "dbops_backup_broken") == 1.0
    for check in ("backup_stale", "backup_unverified"):
        assert _value(reg, "dbops_check_status", check=check, severity="warning") == 1.0
    assert _value(reg, "dbops_check_findings", check="backup_unverified", severity="warning") == 2.0


def test_no_backup_gives_counts_but_no_ages() -> None:
    snap = healthy_snapshot()
    assert snap.backups is not None
    empty = dataclasses.replace(
        snap.backups,
        count=0,
        total_bytes=0,
        newest_id=None,
        newest_at=None,
        newest_age_s=None,
        newest_bytes=None,
        verified_id=None,
        verified_at=None,
        verified_age_s=None,
        last_drill_at=None,
        last_drill_ok=None,
        last_drill_duration_s=None,
        last_drill_message=None,
    )
    reg = _registry(_source(dataclasses.replace(snap, backups=empty)))
    assert _value(reg, "dbops_backup_manifests") == 0.0
    assert _value(reg, "dbops_backup_newest_age_seconds") is None
    assert _value(reg, "dbops_backup_verified_newest_age_seconds") is None
    assert _value(reg, "dbops_backup_last_drill_success") is None
    assert _value(reg, "dbops_check_status", check="backup_missing", severity="warning") == 1.0
    # Backups unknown (reading the directory failed): no backup series at all.
    reg = _registry(_source(dataclasses.replace(snap, backups=None)))
    assert _value(reg, "dbops_backup_manifests") is None
