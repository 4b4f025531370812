"""The Backups page: real backups and drills show up, an empty directory is a note, not a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dbops.core.manifest import Drill, Manifest, TableRows, write_manifest
from dbops.db import Database, Dsn
from dbops.ops.backup import create_backup, verify_backup
from dbops.services import Actor, TeamService, UserService
from tests.dashboard.conftest import app, texts, write_snapshot
from tests.fixtures.db import make_settings
from tests.fixtures.snapshots import degraded_snapshot, healthy_snapshot

PAGE = "views/backups.py"
ADMIN = Actor.system("dashboard-backup-test")


def _render(monkeypatch: pytest.MonkeyPatch, backup_dir: Path, **env: str) -> tuple[str, Any]:
    monkeypatch.setenv("DBOPS_BACKUP_DIR", str(backup_dir))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    at = app()
    at.run()
    assert not at.exception, at.exception
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return texts(at), at


def _backups_table(at: Any) -> Any:
    """The page's table of backups (the one with a ``last_drill`` column)."""
    frames = [df.value for df in at.dataframe]
    return next(f for f in frames if "last_drill" in f.columns)


@pytest.mark.slow
def test_real_backup_and_drill_are_listed(
    clean_db: Database, migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = UserService(clean_db).create(
        ADMIN, email="bob.backup@example.com", password="correct horse 1", display_name="Bob"
    )
    TeamService(clean_db).create(ADMIN, name="Backup Page", slug="backup-page", owner_id=owner.id)
    backup_dir = tmp_path / "backups"
    settings = make_settings(migrated, backup_dir=backup_dir)
    manifest = create_backup(settings, Dsn.parse(migrated, source="test"))
    drill = verify_backup(settings, manifest.id)
    assert drill.ok

    shown, at = _render(monkeypatch, backup_dir, DATABASE_URL=migrated)
    assert manifest.id in shown
    assert "passed" in shown
    assert drill.message in shown
    table = _backups_table(at)
    row = table[table["id"] == manifest.id].iloc[0]
    assert row["verified"]
    assert row["drill_s"] == pytest.approx(drill.duration_s)
    assert row["rows"] == sum(t.rows for t in manifest.tables)
    assert "Backups 1" in shown
    # the snapshot saw the verified backup: no backup finding
    assert "Backup checks pass" in shown
    assert "Maintenance plan" in shown
    assert "No backups in" not in shown
    assert "postgres:" not in shown  # no password-bearing URL anywhere


def test_empty_backup_dir_is_a_note_with_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot_file = write_snapshot(tmp_path / "snap.json", healthy_snapshot())
    empty = tmp_path / "no-backups-here"
    shown, _ = _render(monkeypatch, empty, DBOPS_DASHBOARD_SNAPSHOT_FILE=str(snapshot_file))
    assert f"No backups in `{empty}`" in shown
    assert "dbops backup create" in shown
    assert "Backups 0" in shown
    assert "Traceback" not in shown


def _manifest(
    backup_dir: Path, backup_id: str, created: datetime, drills: tuple[Drill, ...]
) -> None:
    folder = backup_dir / backup_id
    folder.mkdir(parents=True)
    write_manifest(
        folder,
        Manifest(
            id=backup_id,
            created_at=created,
            database="dbops",
            server_version="15.8",
            revision="0007",
            format="custom",
            jobs=1,
            duration_s=1.5,
            files=(),
            tables=(TableRows("public", "users", 42),),
            drills=drills,
        ),
    )


def test_failed_drill_and_broken_manifest_are_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup_dir = tmp_path / "backups"
    now = datetime.now(UTC)
    _manifest(backup_dir, "20261120T000000Z-aaaaaa", now - timedelta(days=3), ())
    failed = Drill(now - timedelta(hours=1), False, 7.25, "restored rows differ: users 41 != 42")
    _manifest(backup_dir, "20261125T000000Z-bbbbbb", now - timedelta(hours=2), (failed,))
    (backup_dir / "20261124T000000Z-broken").mkdir()
    (backup_dir / "20261124T000000Z-broken" / "manifest.json").write_text("{not json")
    snapshot_file = write_snapshot(tmp_path / "snap.json", degraded_snapshot())

    shown, at = _render(monkeypatch, backup_dir, DBOPS_DASHBOARD_SNAPSHOT_FILE=str(snapshot_file))
    assert "20261125T000000Z-bbbbbb" in shown
    assert "20261120T000000Z-aaaaaa" in shown
    assert "FAILED" in shown
    assert "restored rows differ" in shown
    assert "20261124T000000Z-broken" in shown  # the unreadable folder is named, not hidden
    assert "Newest verified never" in shown
    # the degraded snapshot's backup findings are listed with their hints
    assert "backup_stale" in shown
    assert "backup_unverified" in shown
    assert "Backup checks pass" not in shown
    table = _backups_table(at)
    assert list(table["id"]) == ["20261125T000000Z-bbbbbb", "20261120T000000Z-aaaaaa"]
    assert list(table["last_drill"]) == ["FAILED", "never verified"]
    assert not table["verified"].any()


def test_backups_are_listed_without_a_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Manifests are files: the list shows even when no snapshot can be had (database down)."""
    backup_dir = tmp_path / "backups"
    ok = Drill(datetime.now(UTC), True, 3.5, "18 tables, 42 rows, revision 0007")
    _manifest(backup_dir, "20261125T000000Z-cccccc", datetime.now(UTC), (ok,))
    absent = tmp_path / "absent.json"
    shown, at = _render(monkeypatch, backup_dir, DBOPS_DASHBOARD_SNAPSHOT_FILE=str(absent))
    assert "20261125T000000Z-cccccc" in shown
    assert "No snapshot, so no backup checks and no maintenance plan" in shown
    assert "Maintenance plan" not in shown
    assert list(_backups_table(at)["verified"]) == [True]
