"""Backups on a real cluster: create, verify by restoring, restore all-or-nothing."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbops.config import Settings, to_libpq_url
from dbops.core.manifest import Manifest, TableRows, read_manifest, write_manifest
from dbops.db import Dsn, EmbeddedCluster
from dbops.db.roles import ALL_ROLES
from dbops.errors import BackupCorrupt, BackupError, BackupNotFound, RestoreRefused
from dbops.ops.backup import (
    Step,
    backup_root,
    create_backup,
    read_manifests,
    restore_backup,
    verify_backup,
)
from dbops.ops.backup._common import client_env, file_checksums
from dbops.ops.backup.create import new_backup_id
from dbops.ops.backup.restore import compare_rows, relation_count
from dbops.workflows.drill import restore_drill
from tests.fixtures.db import make_settings, session_settings
from tests.ops.backup.conftest import databases_like, row_counts, schema_text


def _corrupt(path: Path) -> None:
    """Flip one byte in the middle of ``path`` (size unchanged)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate_and_reseal(backup: Path, manifest: Manifest, keep: float) -> None:
    """Cut the dump to ``keep`` of its size and rewrite the manifest's checksums to match.

    A dump that passes its checksums but breaks midway: what a faulty pg_dump or a disk that
    lied would leave. pg_restore then fails after it has created part of the schema.
    """
    dump = backup / manifest.dump_path
    data = dump.read_bytes()
    dump.write_bytes(data[: int(len(data) * keep)])
    write_manifest(backup, dataclasses.replace(manifest, files=file_checksums(backup)))


def assert_same_schema(got: str, want: str) -> None:
    """Equal line for line, except that a line may differ in parentheses only.

    PostgreSQL flattens ``(a AND b) AND c`` into ``a AND b AND c`` when it parses a dumped
    CHECK expression again, so the restored constraint deparses with fewer parentheses.
    """
    got_lines, want_lines = got.splitlines(), want.splitlines()
    assert len(got_lines) == len(want_lines)
    for g, w in zip(got_lines, want_lines, strict=True):
        if g != w:
            assert g.replace("(", "").replace(")", "") == w.replace("(", "").replace(")", ""), (
                f"{g!r} != {w!r}"
            )


def test_round_trip_equals_the_source(
    bk_settings: Settings,
    source_url: str,
    pg_cluster: EmbeddedCluster,
    new_database_name: str,
) -> None:
    steps: list[Step] = []
    before, started = datetime.now(UTC), time.perf_counter()
    manifest = create_backup(bk_settings, Dsn.parse(source_url), progress=steps.append)
    took = time.perf_counter() - started
    assert {s.phase for s in steps} >= {"snapshot", "count", "dump"}
    # Its own duration in seconds (the dump takes a while: not 0, not ms) and start time.
    assert 0.05 < manifest.duration_s <= took + 0.001
    assert before <= manifest.created_at <= before + timedelta(seconds=took)
    assert manifest.id[:17] == new_backup_id(manifest.created_at)[:17]  # + a random suffix
    source_rows = row_counts(source_url)
    assert {(t.schema, t.table): t.rows for t in manifest.tables} == source_rows
    assert manifest.rows("public", "users") == 303
    assert manifest.revision is not None
    assert manifest.format == "custom"
    assert read_manifests(backup_root(bk_settings)) == [manifest]

    drill = restore_drill(bk_settings, manifest.id, scratch=Dsn.parse(source_url))
    assert drill.ok, drill.message
    assert "hot reads ok" in drill.message
    # ops alone proves files, revision and counts; the services' reads come from the workflow
    counts_only = verify_backup(bk_settings, manifest.id, scratch=Dsn.parse(source_url))
    assert counts_only.ok, counts_only.message
    assert "hot reads" not in counts_only.message

    target = pg_cluster.url(new_database_name)
    started = time.perf_counter()
    result = restore_backup(bk_settings, manifest.id, Dsn.parse(target))
    assert 0.05 < result.duration_s <= time.perf_counter() - started + 0.001
    assert result.method == "new database"
    assert result.kept_as is None
    assert_same_schema(schema_text(target), schema_text(source_url))
    assert row_counts(target) == source_rows


def test_counts_and_dump_share_one_snapshot(bk_settings: Settings, source_url: str) -> None:
    """A row committed after the snapshot was exported is in neither the counts nor the dump.

    The row is written while the tables are being counted, before pg_dump starts: a pg_dump
    with a snapshot of its own would dump it, and the restored users would not match.
    """
    seen: list[str] = []

    def write_after_export(step: Step) -> None:
        if step.phase == "count" and not seen:
            seen.append(step.message)
            with psycopg.connect(Dsn.parse(source_url).libpq, autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO users (email, password_hash, display_name) "
                    "VALUES ('late@example.com', 'x', 'Late')"
                )

    try:
        manifest = create_backup(bk_settings, Dsn.parse(source_url), progress=write_after_export)
        assert seen
        assert manifest.rows("public", "users") == 303
        drill = verify_backup(bk_settings, manifest.id, scratch=Dsn.parse(source_url))
        assert drill.ok, drill.message
    finally:
        with psycopg.connect(Dsn.parse(source_url).libpq, autocommit=True) as conn:
            conn.execute("DELETE FROM users WHERE email = 'late@example.com'")


@pytest.mark.slow
def test_directory_format_in_parallel_and_drill_in_a_private_cluster(
    bk_settings: Settings, source_url: str
) -> None:
    manifest = create_backup(bk_settings, Dsn.parse(source_url), backup_format="directory", jobs=2)
    assert manifest.format == "directory"
    assert manifest.jobs == 2
    assert len(manifest.files) > 3  # toc.dat and one file per table
    assert all(f.path.startswith("dump/") for f in manifest.files)

    drill = verify_backup(bk_settings)  # default: the newest, in a throwaway cluster
    assert drill.ok, drill.message
    on_disk = read_manifest(backup_root(bk_settings) / manifest.id)
    assert on_disk.drills == (drill,)
    assert on_disk.verified_at == drill.at
    assert drill.duration_s > 0
    assert "303" not in drill.message or "rows" in drill.message
    # The manifest was rewritten atomically: no temporary file is left beside it.
    assert sorted(p.name for p in (backup_root(bk_settings) / manifest.id).iterdir()) == [
        "dump",
        "manifest.json",
    ]


def test_a_database_set_up_as_dbops_up_does_passes_its_drill_in_a_fresh_cluster(
    migrated: str, tmp_path: Path
) -> None:
    """The shared test database has dbops' roles (its system policies name dbops_system). A
    fresh cluster has none of them; the restore creates them (NOLOGIN) first."""
    settings = make_settings(migrated, backup_dir=tmp_path / "backups")
    with psycopg.connect(to_libpq_url(migrated)) as conn:
        named = conn.execute(
            "SELECT count(*) FROM pg_policies WHERE roles::text[] && %s::text[]",
            (list(ALL_ROLES),),
        ).fetchone()
    assert named is not None
    assert named[0] > 0  # policies for dbops_system: the restore needs that role to exist
    create_backup(settings, Dsn.parse(migrated))
    drill = verify_backup(settings)  # a throwaway cluster of its own
    assert drill.ok, drill.message


def test_corrupted_file_fails_verify_naming_it_and_the_drill_is_recorded(
    bk_settings: Settings, source_url: str
) -> None:
    manifest = create_backup(bk_settings, Dsn.parse(source_url))
    backup = backup_root(bk_settings) / manifest.id
    _corrupt(backup / manifest.dump_path)

    started = time.perf_counter()
    with pytest.raises(BackupCorrupt, match=r"file dump\.pgdump does not match its sha256") as err:
        verify_backup(bk_settings, manifest.id, scratch=Dsn.parse(source_url))
    took = time.perf_counter() - started
    assert err.value.path == "dump.pgdump"
    assert "\n" not in err.value.message
    drill = read_manifest(backup).last_drill
    assert drill is not None
    assert not drill.ok
    assert 0 <= drill.duration_s <= took + 0.001  # the failed drill's own seconds
    assert "dump.pgdump" in drill.message
    assert read_manifest(backup).verified_at is None
    # Restore refuses the corrupted backup before touching anything.
    with pytest.raises(BackupCorrupt):
        restore_backup(bk_settings, manifest.id, Dsn.parse(source_url), force=True)


def test_missing_and_extra_files_are_named(bk_settings: Settings, source_url: str) -> None:
    manifest = create_backup(bk_settings, Dsn.parse(source_url))
    backup = backup_root(bk_settings) / manifest.id
    (backup / "stray.txt").write_text("x")
    with pytest.raises(BackupCorrupt, match=r"file stray\.txt is not in the manifest"):
        verify_backup(bk_settings, scratch=Dsn.parse(source_url))
    (backup / "stray.txt").unlink()
    dump = backup / manifest.dump_path
    original = dump.read_bytes()
    for changed in (original[:-10], original + b"extra"):  # smaller, bigger
        dump.write_bytes(changed)
        with pytest.raises(
            BackupCorrupt, match=r"file dump\.pgdump has [\d,]+ bytes, the manifest"
        ):
            verify_backup(bk_settings, scratch=Dsn.parse(source_url))
    dump.write_bytes(original)
    (backup / manifest.dump_path).unlink()
    with pytest.raises(BackupCorrupt, match=r"file dump\.pgdump is missing"):
        verify_backup(bk_settings, scratch=Dsn.parse(source_url))


def test_verify_fails_when_rows_differ_from_the_manifest(
    bk_settings: Settings, source_url: str
) -> None:
    manifest = create_backup(bk_settings, Dsn.parse(source_url))
    backup = backup_root(bk_settings) / manifest.id
    lying = tuple(
        dataclasses.replace(t, rows=t.rows + 1) if t.table == "teams" else t
        for t in manifest.tables
    )
    write_manifest(backup, dataclasses.replace(manifest, tables=lying))
    with pytest.raises(BackupError, match=r"public\.teams has 30 rows, the manifest 31"):
        verify_backup(bk_settings, scratch=Dsn.parse(source_url))
    assert read_manifest(backup).last_drill.ok is False  # type: ignore[union-attr]


def test_unknown_backup_id(bk_settings: Settings) -> None:
    with pytest.raises(BackupNotFound, match="no backups in"):
        verify_backup(bk_settings)
    with pytest.raises(BackupNotFound, match="no backup 'nope'"):
        restore_backup(bk_settings, "nope", Dsn.parse("postgresql://u@h/db"))


def test_restore_refuses_a_target_with_data(bk_settings: Settings, source_url: str) -> None:
    manifest = create_backup(bk_settings, Dsn.parse(source_url))
    before = row_counts(source_url)
    with pytest.raises(RestoreRefused, match=r"is not empty .* pass --force"):
        restore_backup(bk_settings, manifest.id, Dsn.parse(source_url))
    assert row_counts(source_url) == before


def test_half_failed_restore_leaves_an_empty_target_empty(
    bk_settings: Settings,
    source_url: str,
    pg_cluster: EmbeddedCluster,
    new_database_name: str,
) -> None:
    manifest = create_backup(bk_settings, Dsn.parse(source_url))
    _truncate_and_reseal(backup_root(bk_settings) / manifest.id, manifest, keep=0.6)
    # An existing empty target: rolled back to empty.
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{new_database_name}"')
    target = pg_cluster.url(new_database_name)
    with pytest.raises(BackupError, match="pg_restore failed"):
        restore_backup(bk_settings, manifest.id, Dsn.parse(target))
    with psycopg.connect(Dsn.parse(target).libpq) as conn:
        assert relation_count(conn) == 0
    # A missing target: still missing afterwards.
    missing = pg_cluster.url(new_database_name + "_new")
    with pytest.raises(BackupError, match="pg_restore failed"):
        restore_backup(bk_settings, manifest.id, Dsn.parse(missing))
    assert databases_like(pg_cluster, new_database_name) == {new_database_name}


def test_forced_restore_swaps_and_keeps_the_old_target(
    bk_settings: Settings,
    source_url: str,
    pg_cluster: EmbeddedCluster,
    new_database_name: str,
) -> None:
    manifest = create_backup(bk_settings, Dsn.parse(source_url))
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{new_database_name}"')
    target = pg_cluster.url(new_database_name)
    with psycopg.connect(Dsn.parse(target).libpq, autocommit=True) as conn:
        conn.execute("CREATE TABLE old_stuff (id int)")
        conn.execute("INSERT INTO old_stuff VALUES (1), (2)")

    result = restore_backup(bk_settings, manifest.id, Dsn.parse(target), force=True)

    assert result.kept_as is not None
    assert result.kept_as.startswith(f"{new_database_name}_pre_")
    assert row_counts(target) == row_counts(source_url)
    assert row_counts(pg_cluster.url(result.kept_as)) == {("public", "old_stuff"): 2}
    assert databases_like(pg_cluster, new_database_name) == {new_database_name, result.kept_as}


def test_half_failed_forced_restore_leaves_the_target_as_it_was(
    bk_settings: Settings,
    source_url: str,
    pg_cluster: EmbeddedCluster,
    new_database_name: str,
) -> None:
    manifest = create_backup(bk_settings, Dsn.parse(source_url))
    _truncate_and_reseal(backup_root(bk_settings) / manifest.id, manifest, keep=0.6)
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{new_database_name}"')
    target = pg_cluster.url(new_database_name)
    with psycopg.connect(Dsn.parse(target).libpq, autocommit=True) as conn:
        conn.execute("CREATE TABLE old_stuff (id int)")
        conn.execute("INSERT INTO old_stuff VALUES (1)")

    with pytest.raises(BackupError, match="pg_restore failed"):
        restore_backup(bk_settings, manifest.id, Dsn.parse(target), force=True)

    assert row_counts(target) == {("public", "old_stuff"): 1}
    assert databases_like(pg_cluster, new_database_name) == {new_database_name}


def test_password_goes_to_the_environment_never_the_command_line() -> None:
    dsn = Dsn.parse("postgresql://app:s3cr3t-pw@db.example:5433/prod?sslmode=require")
    conninfo, env = client_env(dsn)
    assert "s3cr3t" not in conninfo
    assert "dbname=prod" in conninfo
    assert "sslmode=require" in conninfo
    assert env["PGPASSWORD"] == "s3cr3t-pw"


def test_a_backup_never_writes_into_a_folder_another_run_is_filling(
    bk_settings: Settings, source_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs drawing the same id (same second, same random suffix): the second stops."""
    monkeypatch.setattr(
        "dbops.ops.backup.create.new_backup_id", lambda _now: "20261206T120000Z-abcdef"
    )
    root = backup_root(bk_settings)
    busy = root / ".partial-20261206T120000Z-abcdef"
    busy.mkdir(parents=True)
    (busy / "dump.pgdump").write_bytes(b"the other run's dump")
    with pytest.raises(BackupError, match="cannot create the backup directory"):
        create_backup(bk_settings, Dsn.parse(source_url))
    assert (busy / "dump.pgdump").read_bytes() == b"the other run's dump"  # left alone
    assert read_manifests(root) == []


ACLS = """
SELECT c.relname::text, c.relacl::text FROM pg_class AS c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relacl IS NOT NULL
  AND c.relname <> 'spatial_ref_sys'  -- PostGIS's own: CREATE EXTENSION grants it anyway
ORDER BY 1
"""


def _acls(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(to_libpq_url(url)) as conn:
        return [(str(r[0]), str(r[1])) for r in conn.execute(ACLS).fetchall()]


def test_owners_and_privileges_are_restored_or_left_out_as_asked(
    bk_settings: Settings, source_url: str, pg_cluster: EmbeddedCluster, new_database_name: str
) -> None:
    with psycopg.connect(to_libpq_url(source_url), autocommit=True) as conn:
        conn.execute("GRANT SELECT ON teams TO PUBLIC")
    granted = _acls(source_url)
    assert [table for table, _ in granted] == ["teams"]
    manifest = create_backup(bk_settings, Dsn.parse(source_url))
    kept = pg_cluster.url(new_database_name + "_kept")
    restore_backup(bk_settings, manifest.id, Dsn.parse(kept))
    assert _acls(kept) == granted
    bare = pg_cluster.url(new_database_name + "_bare")
    restore_backup(bk_settings, manifest.id, Dsn.parse(bare), owners=False)
    assert _acls(bare) == []


def test_the_dump_snapshot_is_held_without_a_statement_or_idle_timeout(
    bk_settings: Settings, source_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exporting transaction stays open for the whole dump: no timeout may end it.

    The session's settings are read on that connection while the tables are counted; the
    connection itself starts with the settings' statement timeout (not 0).
    """
    from dbops.ops.backup import _common, create

    seen: list[tuple[str, ...]] = []
    counted = _common.count_rows

    def observed(conn: psycopg.Connection[Any], *args: Any, **kwargs: Any) -> Any:
        seen.append(
            session_settings(conn, "statement_timeout", "idle_in_transaction_session_timeout")
        )
        return counted(conn, *args, **kwargs)

    monkeypatch.setattr(create, "count_rows", observed)
    settings = bk_settings.model_copy(
        update={"statement_timeout_ms": 5_000, "idle_in_transaction_timeout_ms": 5_000}
    )
    create_backup(settings, Dsn.parse(source_url))
    assert seen == [("0", "0")]


def test_failed_create_leaves_no_backup(bk_settings: Settings, tmp_path: Path) -> None:
    from dbops.errors import DatabaseUnavailable

    bad = Dsn.parse("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable):
        create_backup(bk_settings, bad)
    root = backup_root(bk_settings)
    assert read_manifests(root) == []
    assert list(root.iterdir()) == []


def test_restore_into_an_existing_empty_database_is_one_transaction(
    bk_settings: Settings,
    source_url: str,
    pg_cluster: EmbeddedCluster,
    new_database_name: str,
) -> None:
    manifest = create_backup(bk_settings, Dsn.parse(source_url))
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{new_database_name}"')
    target = pg_cluster.url(new_database_name)
    result = restore_backup(bk_settings, manifest.id, Dsn.parse(target))
    assert (result.method, result.kept_as) == ("single-transaction", None)
    assert row_counts(target) == row_counts(source_url)


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)) or ".": p.stat().st_mode & 0o777 for p in [root, *root.rglob("*")]
    }


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_backups_are_private_and_open_ones_are_tightened(
    bk_settings: Settings, source_url: str, fmt: str
) -> None:
    """A dump holds password hashes and e-mails: no other local user may read it."""
    root = backup_root(bk_settings)
    first = create_backup(bk_settings, Dsn.parse(source_url), backup_format=fmt)  # type: ignore[arg-type]
    modes = _modes(root)
    assert len(modes) >= 4
    for path, mode in modes.items():
        want = 0o700 if (root / path).is_dir() else 0o600
        assert mode == want, f"{path}: {mode:04o}"
    # An earlier version's backup, open to everyone, is refused by verify and tightened by the
    # next create.
    backup = root / first.id
    backup.chmod(0o755)
    (backup / first.dump_path).chmod(0o644)
    open_mode = r"\. is open to other users \(mode 0755; 2 paths\)"
    with pytest.raises(BackupCorrupt, match=open_mode) as err:
        verify_backup(bk_settings, first.id, scratch=Dsn.parse(source_url))
    assert err.value.path == "."
    create_backup(bk_settings, Dsn.parse(source_url), backup_format=fmt)  # type: ignore[arg-type]
    assert {m & 0o077 for m in _modes(root).values()} == {0}
    drill = verify_backup(bk_settings, first.id, scratch=Dsn.parse(source_url))
    assert drill.ok
    assert {m & 0o077 for m in _modes(root).values()} == {0}  # the drill's manifest rewrite too


def test_restore_into_an_existing_empty_database_with_wrong_rows_leaves_it_empty(
    bk_settings: Settings,
    source_url: str,
    pg_cluster: EmbeddedCluster,
    new_database_name: str,
) -> None:
    """The README promises all or nothing: the row check runs inside the restore's transaction.

    The manifest says one more team than the dump holds: the restore fails on the row check,
    and the target keeps zero relations (it used to keep all 74 restored ones).
    """
    manifest = create_backup(bk_settings, Dsn.parse(source_url))
    backup = backup_root(bk_settings) / manifest.id
    lying = tuple(
        dataclasses.replace(t, rows=t.rows + 1) if (t.schema, t.table) == ("public", "teams") else t
        for t in manifest.tables
    )
    write_manifest(backup, dataclasses.replace(manifest, tables=lying))
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{new_database_name}"')
    target = pg_cluster.url(new_database_name)
    with pytest.raises(BackupError) as err:
        restore_backup(bk_settings, manifest.id, Dsn.parse(target))
    assert err.value.message == (
        f"restored rows differ from backup {manifest.id}: public.teams has 30 rows, the manifest 31"
    )
    with psycopg.connect(to_libpq_url(target)) as conn:
        assert relation_count(conn) == 0
    # The same backup with its true manifest restores into the same database.
    write_manifest(backup, manifest)
    result = restore_backup(bk_settings, manifest.id, Dsn.parse(target))
    assert result.method == "single-transaction"
    assert row_counts(target) == row_counts(source_url)


def _manifest_of(tables: dict[str, int]) -> Manifest:
    return Manifest(
        id="20261206T120000Z-abcdef",
        created_at=datetime(2026, 12, 6, 12, tzinfo=UTC),
        database="x",
        server_version="15",
        revision=None,
        format="custom",
        jobs=1,
        duration_s=1.0,
        files=(),
        tables=tuple(
            TableRows(name.partition(".")[0], name.partition(".")[2], rows)
            for name, rows in sorted(tables.items())
        ),
    )


def test_restored_rows_are_compared_both_ways_and_told_three_at_a_time(
    empty_database: str,
) -> None:
    """A hand-built database against hand-built manifests: missing, extra and changed tables."""
    with psycopg.connect(to_libpq_url(empty_database), autocommit=True) as conn:
        for table, rows in (("a", 2), ("b", 0), ("c", 1_500)):
            conn.execute(f"CREATE TABLE {table} (id int)")
            conn.execute(f"INSERT INTO {table} SELECT generate_series(1, {rows})")
        conn.execute("CREATE TEMP TABLE scratch (id int)")  # never part of a backup

        def compare(tables: dict[str, int]) -> str | None:
            return compare_rows(conn, _manifest_of(tables))

        assert compare({"public.a": 2, "public.b": 0, "public.c": 1_500}) is None
        assert compare({"public.a": 2, "public.b": 0, "public.c": 1_501}) == (
            "public.c has 1,500 rows, the manifest 1,501"
        )
        assert compare({"public.a": 2, "public.b": 0}) == "table public.c is not in the manifest"
        assert compare({"public.a": 2, "public.b": 0, "public.c": 1_500, "public.d": 0}) == (
            "table public.d is missing"
        )
        three = {"public.a": 3, "public.b": 0, "public.z": 1}
        assert compare(three) == (
            "table public.z is missing; table public.c is not in the manifest; "
            "public.a has 2 rows, the manifest 3"
        )
        four = {"public.a": 3, "public.b": 1, "public.z": 1}
        assert compare(four) == (
            "table public.z is missing; table public.c is not in the manifest; "
            "public.a has 2 rows, the manifest 3 (and 1 more)"
        )
