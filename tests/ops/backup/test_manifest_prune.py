"""Manifests (JSON, atomic write, broken files) and the prune plan over synthetic manifests."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dbops.config import Settings
from dbops.core.manifest import (
    BackupFile,
    BrokenManifest,
    Drill,
    Manifest,
    TableRows,
    read_manifest,
    write_manifest,
)
from dbops.errors import BackupCorrupt, BackupError
from dbops.ops.backup import plan_prune, prune_backups, read_manifests
from dbops.ops.backup._common import check_files, file_checksums

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)  # a Thursday
#: The synthetic backups' dump (its checksum is in their manifests).
DUMP = b"0123456789"


def _manifest(at: datetime, *, verified: bool = False, suffix: str = "a") -> Manifest:
    drills = (Drill(at + timedelta(minutes=5), True, 1.5, "ok"),) if verified else ()
    return Manifest(
        id=f"{at:%Y%m%dT%H%M%SZ}-{suffix}",
        created_at=at,
        database="dbops",
        server_version="15.8",
        revision="0004",
        format="custom",
        jobs=1,
        duration_s=0.5,
        files=(BackupFile("dump.pgdump", 10, hashlib.sha256(DUMP).hexdigest()),),
        tables=(TableRows("public", "users", 3),),
        pg_dump_version="15.8",
        drills=drills,
    )


def _store(root: Path, manifest: Manifest) -> None:
    (root / manifest.id).mkdir(parents=True)
    (root / manifest.id / "dump.pgdump").write_bytes(DUMP)
    write_manifest(root / manifest.id, manifest)


def test_manifest_json_round_trip_and_atomic_write(tmp_path: Path) -> None:
    m = _manifest(NOW, verified=True)
    assert Manifest.from_json(m.to_json()) == m
    (tmp_path / m.id).mkdir()
    write_manifest(tmp_path / m.id, m)
    assert read_manifest(tmp_path / m.id) == m
    assert [p.name for p in (tmp_path / m.id).iterdir()] == ["manifest.json"]
    assert m.verified_at == NOW + timedelta(minutes=5)
    assert m.size_bytes == 10


def test_a_manifest_is_strict_json_or_not_written(tmp_path: Path) -> None:
    """A NaN duration would be written as ``NaN``: JSON other tools refuse to read."""
    broken = dataclasses.replace(_manifest(NOW), duration_s=float("nan"))
    with pytest.raises(ValueError, match="JSON compliant"):
        broken.to_json()
    (tmp_path / broken.id).mkdir()
    with pytest.raises(ValueError, match="JSON compliant"):
        write_manifest(tmp_path / broken.id, broken)
    assert list((tmp_path / broken.id).iterdir()) == []  # nothing half-written


def test_newer_manifest_version_is_refused() -> None:
    data = json.loads(_manifest(NOW).to_json())
    data["version"] = 99
    with pytest.raises(ValueError, match="newer"):
        Manifest.from_json(json.dumps(data))


#: A manifest as dbops 0.1 wrote it to disk (format version 1), kept literally: backups on
#: disk outlive the code that wrote them, so every later dbops must read this one.
STORED_V1 = """{
  "id": "20261126T030000Z-a",
  "created_at": "2026-11-26T03:00:00+00:00",
  "database": "dbops",
  "server_version": "15.8",
  "revision": "0004",
  "format": "custom",
  "jobs": 1,
  "duration_s": 0.5,
  "files": [
    {
      "path": "dump.pgdump",
      "size_bytes": 10,
      "sha256": "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882"
    }
  ],
  "tables": [{"schema": "public", "table": "users", "rows": 3}],
  "pg_dump_version": "15.8",
  "drills": [],
  "version": 1
}
"""


def test_a_stored_version_1_manifest_is_read_and_written_back_as_version_1() -> None:
    manifest = Manifest.from_json(STORED_V1)
    assert manifest == _manifest(NOW)
    assert manifest.version == 1
    assert json.loads(manifest.to_json())["version"] == 1
    assert manifest.to_json().startswith('{\n  "id": "20261126T030000Z-a",\n  "created_at"')
    assert json.loads(_manifest(NOW).to_json())["version"] == 1


def test_broken_manifest_is_skipped_and_reported(tmp_path: Path) -> None:
    good = _manifest(NOW)
    older = _manifest(NOW - timedelta(days=1))
    _store(tmp_path, good)
    _store(tmp_path, older)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "manifest.json").write_text("{not json")
    (tmp_path / "no-manifest").mkdir()
    (tmp_path / ".partial-x").mkdir()  # a backup being written: silently ignored
    broken: list[BrokenManifest] = []
    assert read_manifests(tmp_path, on_broken=broken.append) == [good, older]
    assert sorted(b.path.name for b in broken) == ["junk", "no-manifest"]
    assert read_manifests(tmp_path / "missing") == []


@pytest.mark.parametrize("folder", ["20261126T020000Z-a", "20261126T040000Z-a"])
def test_a_manifest_in_another_backups_folder_is_broken(tmp_path: Path, folder: str) -> None:
    """A copied or renamed folder (its name before or after the id): never read as that id."""
    manifest = _manifest(NOW)
    (tmp_path / folder).mkdir()
    write_manifest(tmp_path / folder, manifest)
    broken: list[BrokenManifest] = []
    assert read_manifests(tmp_path, on_broken=broken.append) == []
    assert [(b.path.name, b.reason) for b in broken] == [
        (folder, "manifest id '20261126T030000Z-a' differs from its folder")
    ]


def test_prune_keeps_exactly_what_it_promises() -> None:
    # Two backups a day for 20 days, newest first; one old verified backup on day 15.
    manifests = []
    for day in range(20):
        for hour, suffix in ((2, "b"), (1, "a")):
            at = NOW.replace(hour=hour) - timedelta(days=day)
            manifests.append(_manifest(at, verified=(day == 15 and suffix == "a"), suffix=suffix))
    plan = plan_prune(manifests, keep_last=3, keep_daily=5, keep_weekly=3)

    kept = {m.id: d.reasons for d in plan.decisions for m in [d.manifest] if d.keep}
    newest = manifests[0]
    last3 = [m.id for m in manifests[:3]]
    daily = [m.id for m in manifests[0:10:2]]  # the newest of each of the 5 latest days
    # ISO weeks: Thu 26 Nov back to Mon 23 Nov, then the two weeks before (newest of each).
    weekly = [manifests[0].id, manifests[8].id, manifests[22].id]
    verified = next(m.id for m in manifests if m.verified_at is not None)
    assert set(kept) == {*last3, *daily, *weekly, verified}
    # Each rule names every backup it keeps (one kept for two rules carries both reasons).
    assert all("last" in kept[i] for i in last3)
    assert all("daily" in kept[i] for i in daily)
    assert all("weekly" in kept[i] for i in weekly)
    assert sum("daily" in r for r in kept.values()) == 5
    assert sum("weekly" in r for r in kept.values()) == 3
    assert "newest" in kept[newest.id]
    assert kept[verified] == ("newest verified",)
    assert len(plan.delete) == 40 - len(kept)
    assert all(m.id not in kept for m in plan.delete)


def test_prune_never_drops_the_newest_or_the_only_verified_backup() -> None:
    old_verified = _manifest(NOW - timedelta(days=400), verified=True)
    newer = [_manifest(NOW - timedelta(days=d)) for d in range(3)]
    plan = plan_prune([*newer, old_verified], keep_last=0, keep_daily=0, keep_weekly=0)
    assert {m.id for m in plan.keep} == {newer[0].id, old_verified.id}
    assert plan_prune([], keep_last=1, keep_daily=1, keep_weekly=1).decisions == ()


def test_prune_dry_run_deletes_nothing_and_apply_deletes_the_plan(tmp_path: Path) -> None:
    manifests = [_manifest(NOW - timedelta(days=d)) for d in range(5)]
    for m in manifests:
        _store(tmp_path, m)
    (tmp_path / "junk").mkdir()  # unreadable: never touched
    settings = Settings(
        _env_file=None,
        backup_dir=tmp_path,
        backup_keep_last=2,
        backup_keep_daily=0,
        backup_keep_weekly=0,
    )
    plan = prune_backups(settings)
    assert not plan.applied
    assert [m.id for m in plan.delete] == [m.id for m in manifests[2:]]
    assert plan.freed_bytes == 30
    assert len(read_manifests(tmp_path)) == 5

    done = prune_backups(settings, apply=True)
    assert done.applied
    assert read_manifests(tmp_path) == manifests[:2]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*(m.id for m in manifests[:2]), "junk"]
    )


def _settings(root: Path) -> Settings:
    return Settings(
        _env_file=None,
        backup_dir=root,
        backup_keep_last=0,
        backup_keep_daily=0,
        backup_keep_weekly=0,
    )


def test_prune_keeps_the_newest_verified_backup_that_is_still_intact(tmp_path: Path) -> None:
    """A dump that rotted after its drill is not proof: the older intact one is kept."""
    older = _manifest(NOW - timedelta(days=30), verified=True, suffix="old")
    rotted = _manifest(NOW - timedelta(days=10), verified=True, suffix="rot")
    newest = _manifest(NOW, suffix="new")
    for m in (older, rotted, newest):
        _store(tmp_path, m)
    (tmp_path / rotted.id / "dump.pgdump").write_bytes(b"0123456780")  # same size, changed
    plan = prune_backups(_settings(tmp_path))
    kept = {d.manifest.id: d.reasons for d in plan.decisions if d.keep}
    assert kept == {newest.id: ("newest",), older.id: ("newest verified",)}
    assert [i for i, _ in plan.corrupt] == [rotted.id]
    assert "sha256" in plan.corrupt[0][1]
    prune_backups(_settings(tmp_path), apply=True)
    assert {m.id for m in read_manifests(tmp_path)} == {newest.id, older.id}


def test_prune_with_no_intact_verified_backup_keeps_none_as_proven(tmp_path: Path) -> None:
    only = _manifest(NOW - timedelta(days=3), verified=True, suffix="only")
    newest = _manifest(NOW, suffix="new")
    for m in (only, newest):
        _store(tmp_path, m)
    (tmp_path / only.id / "dump.pgdump").unlink()
    plan = prune_backups(_settings(tmp_path))
    assert [d.manifest.id for d in plan.decisions if d.keep] == [newest.id]
    assert [i for i, _ in plan.corrupt] == [only.id]
    assert "missing" in plan.corrupt[0][1]


def test_a_byte_flipped_deep_inside_a_large_dump_is_found(tmp_path: Path) -> None:
    """The checksum covers the whole file, not its first chunk (reads go 1 MiB at a time)."""
    backup = tmp_path / "b"
    backup.mkdir()
    dump = backup / "dump.pgdump"
    dump.write_bytes(bytes(range(256)) * (3 * 4096 + 17))  # ~3 MiB, not a multiple of 1 MiB
    manifest = dataclasses.replace(_manifest(NOW), files=file_checksums(backup))
    check_files(backup, manifest)  # intact
    data = bytearray(dump.read_bytes())
    data[len(data) - 5] ^= 0x01  # in the last, partial chunk
    dump.write_bytes(bytes(data))
    with pytest.raises(BackupCorrupt, match=r"dump\.pgdump does not match its sha256"):
        check_files(backup, manifest)


def test_prune_keeps_the_newest_verified_backup_not_the_newest_drilled_one() -> None:
    """A backup whose drill failed was drilled, not verified: the older passing one is kept."""
    verified = _manifest(NOW - timedelta(days=20), verified=True, suffix="ok")
    failed = dataclasses.replace(
        _manifest(NOW - timedelta(days=10), suffix="bad"),
        drills=(Drill(NOW - timedelta(days=10), False, 2.0, "rows differ"),),
    )
    newest = _manifest(NOW, suffix="new")
    plan = plan_prune([newest, failed, verified], keep_last=0, keep_daily=0, keep_weekly=0)
    kept = {d.manifest.id: d.reasons for d in plan.decisions if d.keep}
    assert kept == {newest.id: ("newest",), verified.id: ("newest verified",)}
    assert failed.id in {m.id for m in plan.delete}


def test_only_the_newest_of_several_intact_verified_backups_is_the_proof() -> None:
    older = _manifest(NOW - timedelta(days=30), verified=True, suffix="old")
    newer = _manifest(NOW - timedelta(days=10), verified=True, suffix="new")
    plan = plan_prune([newer, older], keep_last=0, keep_daily=0, keep_weekly=0)
    assert {d.manifest.id: d.reasons for d in plan.decisions} == {
        newer.id: ("newest", "newest verified"),
        older.id: (),
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.decisions[0].reasons = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.applied = True  # type: ignore[misc]


def test_a_backup_that_cannot_be_deleted_is_a_clear_error(tmp_path: Path) -> None:
    manifests = [_manifest(NOW - timedelta(days=d)) for d in range(3)]
    for m in manifests:
        _store(tmp_path, m)
    # Something already holds the name the oldest backup is renamed to before deletion.
    blocker = tmp_path / f".deleting-{manifests[2].id}"
    blocker.mkdir()
    (blocker / "something").write_text("x")
    with pytest.raises(BackupError, match=f"cannot delete backup {manifests[2].id}"):
        prune_backups(_settings(tmp_path), apply=True)
    assert manifests[2].id in {m.id for m in read_manifests(tmp_path)}  # nothing half-done
