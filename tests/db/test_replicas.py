"""Read replicas on real engines: a project made by `dbops up`, a streaming replica made by
`dbops db replica add`, and the services opened as the README shows (``open_database(
load_settings())``), which find the replica by themselves.

What is proven, each against the database rather than the router's own word:

- read-your-writes: 1,000 writes each followed by the same actor's read through the services,
  with the replica slowed (``recovery_min_apply_delay``), never miss the write, while another
  actor's read right after the write does see the old value (the replica really lags);
- past the wait bound the read goes to the primary; a replica lagging beyond the bound is
  skipped and comes back once it caught up; a promoted replica is never read from;
- a replica stopped in the middle of a run of reads costs zero failed reads;
- the monitoring's figures (snapshot, check, exporter) against the catalog's own.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from dbops.cli import app
from dbops.config import Settings, load_settings
from dbops.db import Database, EmbeddedCluster, open_database
from dbops.db.replicas import ReplicaRouter, _staleness
from dbops.db.standby import add_replica, remove_replica, replica_cluster
from dbops.errors import NotFound
from dbops.exporter import snapshot_metrics
from dbops.monitoring import collect_snapshot, evaluate
from dbops.monitoring.checks import problems
from dbops.services import Actor, TeamService, UserService
from tests.fixtures.db import SUITE_PG_VERSION

pytestmark = [pytest.mark.slow, pytest.mark.scale]

runner = CliRunner()


def _cli(home: Path, *args: str) -> str:
    env = {"DBOPS_HOME": str(home), "COLUMNS": "200"}
    if SUITE_PG_VERSION is not None:
        env["DBOPS_PG_VERSION"] = str(SUITE_PG_VERSION)
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project as a user makes it: `dbops up` (small demo data), then one replica."""
    home = tmp_path_factory.mktemp("replicas") / ".dbops"
    _cli(home, "up", "--users", "40", "--teams", "5", "--no-progress")
    _cli(home, "db", "replica", "add", "r1")
    yield home
    _cli(home, "db", "stop")
    EmbeddedCluster(home).destroy()


@pytest.fixture
def primary(home: Path) -> EmbeddedCluster:
    return EmbeddedCluster(home)


@pytest.fixture
def replica(primary: EmbeddedCluster) -> Iterator[EmbeddedCluster]:
    """Replica r1, running, with no apply delay after the test."""
    replica = replica_cluster(primary, "r1")
    replica.start_standby()
    yield replica
    replica.start_standby()
    _apply_delay(replica, "0")


def _apply_delay(replica: EmbeddedCluster, delay: str) -> None:
    with psycopg.connect(replica.libpq_url("postgres"), autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET recovery_min_apply_delay = '{delay}'")
        conn.execute("SELECT pg_reload_conf()")


def _open(home: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Database:
    """``open_database(load_settings())`` in the project, as the README shows it."""
    monkeypatch.setenv("DBOPS_HOME", str(home))
    monkeypatch.setenv("DBOPS_PROCESS_REPORT_S", "0")
    monkeypatch.setenv("DBOPS_REPLICA_CHECK_S", "0.1")
    for key, value in env.items():
        monkeypatch.setenv(f"DBOPS_{key.upper()}", value)
    load_settings.cache_clear()  # read once per process: this test's environment
    db = open_database(load_settings())
    load_settings.cache_clear()
    assert db.replicas is not None, "the embedded replica was not found"
    assert db.replicas.wait_checked(10)
    return db


def _router(db: Database) -> ReplicaRouter:
    assert db.replicas is not None
    return db.replicas


def _until(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _owner_and_team(db: Database) -> tuple[Actor, uuid.UUID]:
    tag = uuid.uuid4().hex[:8]
    user = UserService(db).create(
        Actor.system("test"),
        email=f"ryw-{tag}@example.com",
        password="a long enough password",
        display_name="RYW",
    )
    actor = Actor.user(user.id)
    team = TeamService(db).create(actor, name="RYW", slug=f"ryw-{tag}")
    # Other actors may read from a replica that has not applied the new team yet.
    observer = Actor.system("observer")
    _until(lambda: _exists(TeamService(db), observer, team.id))
    return actor, team.id


def _exists(teams: TeamService, actor: Actor, team_id: uuid.UUID) -> bool:
    try:
        teams.get(actor, team_id)
    except NotFound:
        return False
    return True


def test_the_cli_lists_the_replica_as_the_primary_sees_it(
    home: Path, primary: EmbeddedCluster, replica: EmbeddedCluster
) -> None:
    import json

    rows = json.loads(_cli(home, "db", "replica", "list", "--json"))
    assert [r["name"] for r in rows] == ["r1"]
    row = rows[0]
    assert row["running"] is True
    assert row["port"] == replica.port
    with psycopg.connect(primary.libpq_url(), autocommit=True) as conn:
        state = conn.execute(
            "SELECT state FROM pg_stat_replication WHERE application_name = 'dbops_replica_r1'"
        ).fetchone()
        slot = conn.execute(
            "SELECT active FROM pg_replication_slots WHERE slot_name = 'dbops_replica_r1'"
        ).fetchone()
    assert state == (row["state"],) == ("streaming",)
    assert slot == (True,)
    text = _cli(home, "db", "replica", "list")
    assert text.startswith("r1: streaming, port ")
    assert max(len(line) for line in text.splitlines()) <= 80


def test_reads_after_the_actors_writes_see_them_1000_times(
    home: Path, replica: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    _apply_delay(replica, "3ms")
    with _open(home, monkeypatch, replica_wait_s="1") as db:
        teams = TeamService(db)
        actor, team_id = _owner_and_team(db)
        observer = Actor.system("observer")  # wrote nothing: no wait for it
        misses = stale_for_others = 0
        for i in range(1000):
            name = f"RYW {i}"
            teams.rename(actor, team_id, name)
            if teams.get(observer, team_id).name != name:
                stale_for_others += 1
            if teams.get(actor, team_id).name != name:
                misses += 1
        stats = _router(db).stats()
    assert misses == 0
    # The replica really lagged: a read that does not wait for the write missed it.
    assert stale_for_others > 500, stale_for_others
    # ... and the actor's reads ran on the replica, after waiting for the replay.
    assert stats.replica_reads >= 1900, stats
    assert stats.waited >= 900, stats


def test_past_the_wait_bound_the_read_goes_to_the_primary(
    home: Path, replica: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    _apply_delay(replica, "200ms")
    with _open(home, monkeypatch, replica_wait_s="0.01") as db:
        teams = TeamService(db)
        actor, team_id = _owner_and_team(db)
        for i in range(50):
            teams.rename(actor, team_id, f"bound {i}")
            assert teams.get(actor, team_id).name == f"bound {i}"
        stats = _router(db).stats()
    assert stats.fallbacks.get("behind", 0) >= 45, stats


def test_a_lagging_replica_is_skipped_and_comes_back(
    home: Path, replica: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _open(home, monkeypatch, replica_max_lag_s="0.5") as db:
        router, teams = _router(db), TeamService(db)
        actor, team_id = _owner_and_team(db)
        _until(lambda: router.states()[0].usable)
        _apply_delay(replica, "1h")
        observer = Actor.system("observer")
        stop = threading.Event()
        written: list[str] = []

        def write() -> None:  # WAL the replica receives but does not apply
            while not stop.is_set():
                written.append(f"lag {len(written)}")
                teams.rename(actor, team_id, written[-1])
                time.sleep(0.02)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            _until(lambda: router.states()[0].reason.startswith("lagging"))
        finally:
            stop.set()
            writer.join()
        before = router.stats().fallbacks.get("no replica", 0)
        # The observer wrote nothing, yet reads the last write, which the replica has not
        # applied: its read went to the primary, as no replica may take it.
        assert teams.get(observer, team_id).name == written[-1]
        assert router.stats().fallbacks.get("no replica", 0) == before + 1
        _apply_delay(replica, "0")
        _until(lambda: router.states()[0].usable)
        reads = router.stats().replica_reads
        teams.get(observer, team_id)
        assert router.stats().replica_reads == reads + 1


def test_a_replica_stopped_mid_run_costs_no_failed_read(
    home: Path, replica: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _open(home, monkeypatch) as db:
        router, teams = _router(db), TeamService(db)
        actor, team_id = _owner_and_team(db)
        observer = Actor.system("observer")
        errors: list[BaseException] = []
        reads = [0]
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                try:
                    teams.get(observer, team_id)
                    teams.get(actor, team_id)
                    reads[0] += 2
                except BaseException as exc:
                    errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            _until(lambda: router.stats().replica_reads > 200)
            replica.stop()  # fast shutdown: the replica ends the sessions reading on it
            on_replica = router.stats().replica_reads
            _until(lambda: reads[0] > on_replica + 400)
        finally:
            stop.set()
            for t in threads:
                t.join()
        stats = router.stats()
        assert errors == []
        assert stats.fallbacks.get("failed", 0) + stats.fallbacks.get("no replica", 0) > 0
        assert router.states()[0].reason.startswith("down")
        replica.start_standby()
        _until(lambda: router.states()[0].usable)
        before = router.stats().replica_reads
        teams.get(observer, team_id)
        assert router.stats().replica_reads == before + 1


def test_a_promoted_replica_is_never_read_from(
    primary: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    promoted = add_replica(primary, "r2")
    try:
        promoted.run_as_server(
            [promoted.binaries().tool("pg_ctl"), "promote", "-w", "-D", str(promoted.datadir)]
        )
        url = promoted.libpq_url(user="dbops_app")
        with _open(home, monkeypatch, replica_urls=url) as db:
            router = _router(db)
            _until(lambda: router.states()[0].reason == "not in recovery")
            assert [s.usable for s in router.states()] == [False]
    finally:
        remove_replica(primary, "r2")


def test_monitoring_shows_the_replica_then_the_slot_it_leaves_behind(
    primary: EmbeddedCluster, replica: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBOPS_CHECK_SLOT_RETAINED_WARNING_BYTES", str(1024 * 1024))
    settings = Settings()
    with open_database(settings, primary.url(), purpose="admin") as db:
        snap = collect_snapshot(db, settings)
        assert snap.database is not None
        assert snap.database.replicas is not None
        assert [r.application for r in snap.database.replicas] == ["dbops_replica_r1"]
        assert [(s.name, s.active) for s in snap.database.slots or ()] == [
            ("dbops_replica_r1", True)
        ]
        replica.stop()
        with psycopg.connect(primary.libpq_url(), autocommit=True) as conn:
            # WAL the stopped replica will need: a write, then the rest of the segment.
            conn.execute("CREATE TABLE wal_filler AS SELECT g FROM generate_series(1, 1000) g")
            conn.execute("DROP TABLE wal_filler")
            conn.execute("SELECT pg_switch_wal()")
        snap = collect_snapshot(db, settings)
        with db.connection() as conn:
            oracle = conn.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, active "
                "FROM pg_replication_slots WHERE slot_name = 'dbops_replica_r1'"
            ).fetchone()
    assert oracle is not None
    assert oracle[1] is False
    assert snap.database is not None
    assert snap.database.replicas == ()
    (slot,) = snap.database.slots or ()
    assert slot.active is False
    assert slot.retained_bytes is not None
    assert 1024 * 1024 <= slot.retained_bytes <= oracle[0]
    found = problems(evaluate(snap, settings), "replication_slots")
    assert [(f.severity.value, f.subject) for f in found] == [("warning", "dbops_replica_r1")]
    families = {f.name: f for f in snapshot_metrics(snap, settings)}
    (sample,) = families["dbops_replication_slot_retained_bytes"].samples
    assert sample.value == slot.retained_bytes
    (active,) = families["dbops_replication_slot_active"].samples
    assert active.value == 0.0


def test_an_idle_streaming_standby_has_no_lag(
    primary: EmbeddedCluster, replica: EmbeddedCluster
) -> None:
    """The standby's own lag is 0 while it streams with nothing left to replay, however long
    the primary has been idle; with WAL received but not applied, it grows."""
    settings = Settings()
    with open_database(settings, replica.url(), purpose="admin") as db:
        _until(lambda: _standby_lag(db, settings) == 0.0)
        time.sleep(1.5)  # no write anywhere: the last replayed transaction gets older
        assert _standby_lag(db, settings) == 0.0
        _apply_delay(replica, "1h")
        with psycopg.connect(primary.libpq_url(), autocommit=True) as conn:
            conn.execute("CREATE TABLE lag_probe ()")
            conn.execute("DROP TABLE lag_probe")
        time.sleep(1.0)
        lag = _standby_lag(db, settings)
        assert lag is not None
        assert lag >= 1.0


def _standby_lag(db: Database, settings: object) -> float | None:
    snap = collect_snapshot(db, settings)  # type: ignore[arg-type]
    assert snap.server is not None
    assert snap.server.in_recovery
    assert snap.database is not None
    return snap.database.replica_lag_s


# ------------------------------------------------------------------------ pure parts
def test_staleness_is_the_age_of_the_newest_primary_position_replayed() -> None:
    samples = [(10.0, 100), (11.0, 200), (12.0, 300)]
    assert _staleness(samples, 300, 12.5) == 0.5
    assert _staleness(samples, 250, 12.5) == 1.5
    assert _staleness(samples, 200, 12.5) == 1.5
    assert _staleness(samples, 50, 12.5) == 2.5  # behind every sample: at least the oldest's age
    assert _staleness([], 50, 12.5) is None


def test_the_process_report_says_where_the_reads_ran(
    home: Path, primary: EmbeddedCluster, replica: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Pool page and the exporter read the router's counts from the process's report."""
    from dbops.telemetry import report

    with _open(home, monkeypatch, process_report_s="60") as db:
        teams = TeamService(db)
        _, team_id = _owner_and_team(db)
        for _ in range(20):
            teams.get(Actor.system("observer"), team_id)
        stats = _router(db).stats()
        reporter = report.reporter()
        assert reporter is not None
        assert reporter.report_now()
        settings = Settings()
        with open_database(settings, primary.url(), purpose="admin") as admin:
            snap = collect_snapshot(admin, settings)
    (process,) = [p for p in snap.live_processes() if p.pid == os.getpid()]
    (routing,) = process.routing
    assert routing.replica_reads == stats.replica_reads >= 20
    assert routing.primary_reads == stats.primary_reads
    assert {f.key: f.count for f in routing.fallbacks} == stats.fallbacks
    assert [(r.name, r.usable) for r in routing.replicas] == [("r1", True)]
    families = {f.name: f for f in snapshot_metrics(snap, settings)}
    served = {
        (s.labels["served_by"], s.labels["reason"]): s.value
        for s in families["dbops_app_replica_reads"].samples
        if s.name.endswith("_total") and s.labels["pid"] == str(os.getpid())
    }
    assert served[("replica", "")] == stats.replica_reads


def test_a_position_carried_from_another_process_is_waited_for(
    home: Path, replica: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two Databases stand for two processes: the reader sees the writer's write only when it
    carries the writer's position (``last_write`` -> ``carry_write``)."""
    _apply_delay(replica, "3ms")
    with _open(home, monkeypatch, replica_wait_s="1") as writer, _open(home, monkeypatch) as reader:
        actor, team_id = _owner_and_team(writer)
        key = f"user:{actor.user_id}"
        stale = 0
        for i in range(200):
            TeamService(writer).rename(actor, team_id, f"carried {i}")
            if TeamService(reader).get(actor, team_id).name != f"carried {i}":
                stale += 1  # the reader knew nothing of the write
        assert stale > 100, stale
        for i in range(200):
            TeamService(writer).rename(actor, team_id, f"carried again {i}")
            position = _router(writer).last_write(key)
            assert position is not None
            _router(reader).carry_write(key, position)
            assert TeamService(reader).get(actor, team_id).name == f"carried again {i}"
