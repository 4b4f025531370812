"""Point-in-time recovery with pgBackRest against a private embedded cluster of this module.

Not the session's shared cluster: setup restarts the cluster it archives. Every cluster and
restored copy started here is stopped and deleted by the fixtures' finalizers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from dbops.config import Settings
from dbops.db import EmbeddedCluster
from dbops.errors import EmbeddedClusterError, PitrError
from dbops.ops import pitr
from dbops.ops.pitr import _layout

pytestmark = pytest.mark.slow


def pitr_settings(home: Path, **overrides: object) -> Settings:
    """Settings of an embedded cluster in ``home``, never the developer's environment."""
    fields: dict[str, object] = {"_env_file": None, "database_url": None, "home": home}
    return Settings(**{**fields, **overrides})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Live:
    """The archived cluster of this module and what its first setup did."""

    settings: Settings
    cluster: EmbeddedCluster
    first_setup: pitr.SetupResult


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    home = tmp_path_factory.mktemp("pitr") / "live"
    settings = pitr_settings(home)
    cluster = EmbeddedCluster(home, database=settings.embedded_database)
    try:
        cluster.ensure_running()
        first = pitr.setup(settings)
        yield Live(settings, cluster, first)
    finally:
        cluster.destroy()


@pytest.fixture
def copies() -> Iterator[list[Path]]:
    """Homes of restored copies made by a test: stopped and deleted afterwards."""
    homes: list[Path] = []
    yield homes
    for home in homes:
        EmbeddedCluster(home).destroy()


def backed_up(live: Live) -> datetime:
    """The earliest restorable time, taking a first base backup if none exists (any order)."""
    listed = pitr.info(live.settings)
    if not listed.backups:
        pitr.base_backup(live.settings)
        listed = pitr.info(live.settings)
    earliest = listed.earliest_target
    assert earliest is not None
    wait = (earliest - datetime.now(UTC)).total_seconds()
    if wait > 0:
        time.sleep(wait + 0.1)
    return earliest


def one(conn: psycopg.Connection[tuple[object, ...]], query: str) -> object:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_setup_turns_archiving_on_with_one_restart(live: Live) -> None:
    first = live.first_setup
    assert first.restarted
    assert first.stanza_created
    assert "archive_mode" in first.settings_changed
    assert first.config.read_text().count(f"pg1-path={live.cluster.datadir}") == 1
    with psycopg.connect(live.cluster.libpq_url()) as conn:
        assert one(conn, "SHOW archive_mode") == "on"
        assert one(conn, "SHOW wal_level") == "replica"
        assert str(first.config) in str(one(conn, "SHOW archive_command"))


def test_the_repository_and_its_configuration_are_private(live: Live) -> None:
    """Every base backup and WAL segment lies under the repository: no other local user."""
    base = live.first_setup.config.parent
    repo = _layout.repo_dir(live.settings, live.cluster)
    for path in (base, repo, base / "log", base / "spool", base / "lock"):
        assert path.stat().st_mode & 0o777 == 0o700, path
    assert live.first_setup.config.stat().st_mode & 0o777 == 0o600
    repo.chmod(0o755)  # as an earlier version left them: the next command closes them again
    live.first_setup.config.chmod(0o640)
    pitr.setup(live.settings)
    assert repo.stat().st_mode & 0o777 == 0o700
    assert live.first_setup.config.stat().st_mode & 0o777 == 0o600


def test_setup_again_changes_nothing_and_does_not_restart(live: Live) -> None:
    pid_before = live.cluster.status().pid
    again = pitr.setup(live.settings)
    assert again.config_written is False
    assert again.settings_changed == ()
    assert again.restarted is False
    assert again.stanza_created is False
    assert live.cluster.status().pid == pid_before


def test_restore_to_time_brings_deleted_rows_back_in_a_copy_only(
    live: Live, tmp_path: Path, copies: list[Path]
) -> None:
    """The issue's test: insert, note the time, delete, restore to that time."""
    cluster = live.cluster
    with psycopg.connect(cluster.libpq_url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE pitr_probe (id int PRIMARY KEY, note text)")
    pitr.base_backup(live.settings)
    time.sleep(1.1)  # backup times have second precision: the target comes after its end
    with psycopg.connect(cluster.libpq_url(), autocommit=True) as conn:
        conn.execute("INSERT INTO pitr_probe VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        noted = one(conn, "SELECT now()")
        time.sleep(0.2)
        conn.execute("DELETE FROM pitr_probe")
    assert isinstance(noted, datetime)
    before = cluster.status()

    home = tmp_path / "copy"
    copies.append(home)
    result = pitr.restore_to(live.settings, noted, home)

    assert result.started
    with psycopg.connect(result.url) as conn:
        assert one(conn, "SELECT count(*) FROM pitr_probe") == 3
        assert one(conn, "SELECT pg_is_in_recovery()") is False
        assert one(conn, "SHOW archive_mode") == "off"  # never archives into the live repo
        conn.execute("INSERT INTO pitr_probe VALUES (4, 'writable')")
    assert result.port != before.port
    assert result.datadir != before.datadir
    assert "***" in result.tcp_url
    assert str(cluster.password) not in result.tcp_url
    # The live cluster: rows still deleted, same process, port, data directory and settings.
    after = cluster.status()
    assert (after.pid, after.port, after.datadir) == (before.pid, before.port, before.datadir)
    with psycopg.connect(cluster.libpq_url()) as conn:
        assert one(conn, "SELECT count(*) FROM pitr_probe") == 0
        assert one(conn, "SHOW archive_mode") == "on"
    # The copy is an embedded cluster of its own: `DBOPS_HOME=<home> dbops db stop` stops it.
    assert EmbeddedCluster(home).stop() is True


def test_restore_without_start_lays_out_a_stopped_copy(
    live: Live, tmp_path: Path, copies: list[Path]
) -> None:
    target = backed_up(live)
    home = tmp_path / "cold"
    copies.append(home)
    result = pitr.restore_to(live.settings, target, home, start=False)
    assert result.started is False
    copy = EmbeddedCluster(home)
    assert copy.initialized()
    assert not copy.running()
    assert copy.port == result.port != live.cluster.port
    assert live.cluster.running()


def test_target_past_the_archived_wal_fails_with_the_server_log(
    live: Live, tmp_path: Path, copies: list[Path]
) -> None:
    """With the live cluster stopped its newest WAL is not archived: recovery cannot reach."""
    backed_up(live)
    with psycopg.connect(live.cluster.libpq_url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS pitr_late (id int)")
        conn.execute("INSERT INTO pitr_late VALUES (1)")
        noted = one(conn, "SELECT now()")
    assert isinstance(noted, datetime)
    live.cluster.stop()
    home = tmp_path / "late"
    copies.append(home)
    try:
        with pytest.raises(PitrError, match="the restored copy did not start") as caught:
            pitr.restore_to(live.settings, noted, home)
        assert "holds no commit after" in str(caught.value)
        assert f"Remove {home}" in str(caught.value)
    finally:
        live.cluster.ensure_running()


def test_setup_keeps_a_logical_wal_level(live: Live) -> None:
    """Logical decoding archives too: setup must not take it away (and restart) for replica."""

    def wal_level(value: str) -> None:
        with psycopg.connect(live.cluster.libpq_url(), autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET wal_level = '{value}'")
        _layout.restart(live.settings, live.cluster)

    wal_level("logical")
    try:
        again = pitr.setup(live.settings)
        assert "wal_level" not in again.settings_changed
        assert again.restarted is False
        with psycopg.connect(live.cluster.libpq_url()) as conn:
            assert one(conn, "SHOW wal_level") == "logical"
    finally:
        wal_level("replica")


def test_incremental_backup_builds_on_the_last_one(live: Live) -> None:
    started = time.monotonic()
    first = pitr.base_backup(live.settings)
    took = time.monotonic() - started
    assert 0 < first.seconds <= took  # seconds of this backup, measured around it
    assert took - first.seconds < 0.5  # nearly all of it: not a ratio or a remainder
    full = first.backup
    incr = pitr.base_backup(live.settings, incremental=True).backup
    assert (full.type, incr.type) == ("full", "incr")
    assert incr.prior == full.label
    listed = pitr.info(live.settings)
    assert [b.label for b in listed.backups][-2:] == [full.label, incr.label]
    assert listed.wal_min is not None
    assert listed.wal_max is not None
    assert listed.earliest_target == listed.backups[0].finished_at + timedelta(seconds=1)


def test_restore_into_a_non_empty_directory_is_refused(live: Live, tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(PitrError, match="is not empty"):
        pitr.restore_to(live.settings, datetime.now(UTC), target)
    assert (target / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]


def test_restore_into_the_live_cluster_is_refused(live: Live) -> None:
    with pytest.raises(PitrError, match="belongs to the live cluster"):
        pitr.restore_to(live.settings, datetime.now(UTC), live.cluster.datadir / "sub")


def test_target_before_the_oldest_base_backup_is_refused(live: Live, tmp_path: Path) -> None:
    oldest = backed_up(live)
    with pytest.raises(PitrError, match="before the oldest base backup"):
        pitr.restore_to(live.settings, oldest - timedelta(seconds=5), tmp_path / "early")
    assert not (tmp_path / "early").exists()


def test_a_copy_that_cannot_be_laid_out_is_one_pitr_error(
    live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process took the directory between the checks and the layout, say."""
    backed_up(live)

    def taken(self: EmbeddedCluster, *, port: int, password: str | None) -> None:
        raise EmbeddedClusterError(f"{self.datadir} holds a cluster already")

    monkeypatch.setattr(EmbeddedCluster, "prepare_restore", taken)
    home = tmp_path / "raced"
    with pytest.raises(PitrError) as info:
        pitr.restore_to(live.settings, datetime.now(UTC), home, start=False)
    assert str(info.value).startswith(f"cannot lay out {home}: ")
    assert str(info.value).endswith("holds a cluster already")


def test_target_in_the_future_is_refused(live: Live, tmp_path: Path) -> None:
    with pytest.raises(PitrError, match="in the future"):
        pitr.restore_to(live.settings, datetime.now(UTC) + timedelta(hours=1), tmp_path / "x")


def test_external_database_is_refused_in_one_line_without_password(tmp_path: Path) -> None:
    settings = pitr_settings(tmp_path, database_url="postgresql://u:s3cret@db.example/x")
    for call in (
        lambda: pitr.setup(settings),
        lambda: pitr.base_backup(settings),
        lambda: pitr.info(settings),
        lambda: pitr.restore_to(settings, datetime.now(UTC), tmp_path / "c"),
    ):
        with pytest.raises(PitrError, match="embedded cluster only") as caught:
            call()
        assert "s3cret" not in str(caught.value)
        assert "\n" not in str(caught.value)


def test_failing_archive_turns_archive_mode_off_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """archive_mode=on with an archive_command that fails would keep every WAL segment."""
    home = tmp_path / "broken"
    settings = pitr_settings(home)
    cluster = EmbeddedCluster(home, database=settings.embedded_database)
    try:
        cluster.ensure_running()
        # The stanza exists, but pgBackRest (the server user) cannot write the archive.
        _layout.write_config(settings, cluster)
        _layout.run(settings, cluster, "stanza-create")
        archive = _layout.repo_dir(settings, cluster) / "archive" / pitr.STANZA
        archive.chmod(0o555)
        monkeypatch.setenv("PGBACKREST_ARCHIVE_TIMEOUT", "3")
        with pytest.raises(PitrError, match="archive_mode is off again"):
            pitr.setup(settings)
        with psycopg.connect(cluster.libpq_url()) as conn:
            assert one(conn, "SHOW archive_mode") == "off"
    finally:
        cluster.destroy()
