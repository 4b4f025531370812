"""The backups section: manifests on disk -> BackupsStat -> checks (no database for the stat)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dbops.config import Settings
from dbops.core.manifest import BackupFile, Drill, Manifest, TableRows, write_manifest
from dbops.db import Database
from dbops.monitoring import Severity, Snapshot, collect_snapshot, evaluate
from dbops.monitoring.collectors.backups import collect_backups
from dbops.monitoring.snapshot import BackupsStat
from tests.fixtures.monitoring import monitor_settings
from tests.fixtures.snapshots import healthy_snapshot

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _store(root: Path, at: datetime, drills: tuple[Drill, ...] = (), size: int = 100) -> Manifest:
    m = Manifest(
        id=f"{at:%Y%m%dT%H%M%SZ}-abcdef",
        created_at=at,
        database="dbops",
        server_version="15.8",
        revision="0004",
        format="custom",
        jobs=1,
        duration_s=1.0,
        files=(BackupFile("dump.pgdump", size, "0" * 64),),
        tables=(TableRows("public", "users", 1),),
        drills=drills,
    )
    (root / m.id).mkdir(parents=True)
    write_manifest(root / m.id, m)
    return m


def _settings(root: Path, **kw: object) -> Settings:
    return Settings(_env_file=None, backup_dir=root, **kw)  # type: ignore[arg-type]


def _findings(stat: BackupsStat, settings: Settings) -> dict[str, list[tuple[str, str | None]]]:
    snap = dataclasses.replace(healthy_snapshot(), backups=stat)
    out: dict[str, list[tuple[str, str | None]]] = {}
    for f in evaluate(snap, settings):
        if f.check.startswith("backup_"):
            out.setdefault(f.check, []).append((str(f.severity), f.subject))
    return out


def test_collector_reads_newest_verified_and_last_drill(tmp_path: Path) -> None:
    verified = _store(
        tmp_path,
        NOW - timedelta(days=2),
        drills=(Drill(NOW - timedelta(days=2) + timedelta(minutes=9), True, 4.0, "ok"),),
    )
    newest = _store(
        tmp_path,
        NOW - timedelta(hours=3),
        drills=(Drill(NOW - timedelta(hours=2), False, 1.5, "file dump.pgdump differs"),),
        size=300,
    )
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("[]")

    stat = collect_backups(_settings(tmp_path), now=NOW)

    assert stat.count == 2
    assert stat.broken == 1
    assert stat.total_bytes == 400
    assert stat.newest_id == newest.id
    assert stat.newest_age_s == 3 * 3600
    assert stat.newest_bytes == 300
    assert stat.verified_id == verified.id
    assert stat.verified_age_s == 2 * 86400
    assert stat.last_drill_ok is False
    assert stat.last_drill_duration_s == 1.5
    assert stat.last_drill_message == "file dump.pgdump differs"
    snap = dataclasses.replace(healthy_snapshot(), backups=stat)
    assert Snapshot.from_json(snap.to_json()) == snap


def test_no_backup_dir_is_a_missing_backup_not_an_error(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "none")
    stat = collect_backups(settings, now=NOW)
    assert (stat.count, stat.newest_age_s, stat.verified_age_s) == (0, None, None)
    found = _findings(stat, settings)
    assert found == {"backup_missing": [("warning", str(tmp_path / "none"))]}


def test_checks_warn_when_a_backup_or_the_verified_one_is_too_old(tmp_path: Path) -> None:
    _store(
        tmp_path,
        NOW - timedelta(hours=30),
        drills=(Drill(NOW - timedelta(hours=29), True, 4.0, "ok"),),
    )
    stat = collect_backups(_settings(tmp_path), now=NOW)
    strict = _settings(tmp_path, backup_max_age_s=86_400, backup_verified_max_age_s=86_400)
    found = _findings(stat, strict)
    assert found["backup_missing"] == [("ok", None)]
    assert found["backup_stale"] == [("warning", stat.newest_id)]
    assert found["backup_unverified"] == [("warning", stat.verified_id)]
    lenient = _settings(tmp_path, backup_max_age_s=200_000, backup_verified_max_age_s=200_000)
    assert {c: [s for s, _ in v] for c, v in _findings(stat, lenient).items()} == {
        "backup_missing": ["ok"],
        "backup_stale": ["ok"],
        "backup_unverified": ["ok"],
    }


def test_never_verified_backups_warn(tmp_path: Path) -> None:
    _store(tmp_path, NOW - timedelta(hours=1))
    settings = _settings(tmp_path)
    found = _findings(collect_backups(settings, now=NOW), settings)
    assert found["backup_stale"] == [("ok", None)]
    assert found["backup_unverified"] == [("warning", None)]


def test_unknown_backups_give_no_finding() -> None:
    snap = dataclasses.replace(healthy_snapshot(), backups=None)
    assert not [f for f in evaluate(snap, Settings(_env_file=None)) if f.check.startswith("backup")]
    assert all(
        f.severity is Severity.OK for f in evaluate(healthy_snapshot(), Settings(_env_file=None))
    )


def test_collect_snapshot_includes_backups(mon_db: Database, mon_url: str, tmp_path: Path) -> None:
    _store(tmp_path, datetime.now(UTC) - timedelta(minutes=5))
    snap = collect_snapshot(mon_db, monitor_settings(mon_url, backup_dir=tmp_path))
    assert snap.backups is not None
    assert snap.backups.count == 1
    assert snap.backups.newest_age_s is not None
    assert 250 < snap.backups.newest_age_s < 3600
    assert snap.error("backups") is None
