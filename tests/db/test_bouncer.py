"""The services behind a real PgBouncer 1.18 in transaction pooling (prepared statements off).

Two server connections serve eight clients, so every transaction may run on a connection
another client used a moment before. Proven here: the services under eight threads make no
error; each transaction carries its own limits (a session setting would not survive the
bouncer); PgBouncer's figures in the snapshot, checks and exporter match the server's own
count of the connections; and why prepared statements must be off. The actor never leaking
between clients is ``tests/services/test_rls.py``'s leak test, run through the bouncer too.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from dbops.cli import app
from dbops.db import Database, EmbeddedCluster, open_database
from dbops.db.bouncer import Bouncer
from dbops.errors import OperationTimeout
from dbops.exporter import snapshot_metrics
from dbops.monitoring import collect_snapshot, evaluate
from dbops.monitoring.checks import problems
from dbops.services import Actor, MembershipService, TeamService, UserService, unit_of_work
from tests.fixtures.bouncer import SERVER_POOL, bouncer_url
from tests.fixtures.db import SUITE_PG_VERSION, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.scale]

#: What every client connection through the bouncer names itself: the server's own count of
#: PgBouncer's connections is taken by it.
APP_NAME = "dbops-via-bouncer"


def _through(bouncer: Bouncer, **overrides: Any) -> Database:
    url = bouncer_url(bouncer)
    settings = make_settings(
        url,
        prepared_statements=False,
        pool_min_size=8,
        pool_max_size=8,
        application_name=APP_NAME,
        **overrides,
    )
    return open_database(settings, url)


def test_the_services_under_eight_threads_make_no_error(
    bouncer: Bouncer, clean_db: Database
) -> None:
    system = Actor.system("bouncer-test")
    errors: list[BaseException] = []
    done = [0]
    lock = threading.Lock()
    with _through(bouncer) as db:
        users, teams, members = UserService(db), TeamService(db), MembershipService(db)
        barrier = threading.Barrier(8, timeout=30)

        def worker(n: int) -> None:
            tag = uuid.uuid4().hex[:8]
            try:
                owner = users.create(
                    system,
                    email=f"b{n}-{tag}@example.com",
                    password="a long enough password",
                    display_name=f"client {n}",
                )
                actor = Actor.user(owner.id)
                team = teams.create(actor, name=f"team {n}", slug=f"b{n}-{tag}")
                barrier.wait()
                for i in range(40):
                    teams.rename(actor, team.id, f"team {n}.{i}")
                    assert teams.get(actor, team.id).name == f"team {n}.{i}"
                    assert [m.user_id for m in members.members(actor, team.id)] == [owner.id]
                    assert [t.team_id for t in teams.teams_of_user(actor, owner.id)] == [team.id]
                    with lock:
                        done[0] += 1
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert done[0] == 8 * 40


def test_each_transaction_carries_its_limits_through_the_bouncer(
    bouncer: Bouncer, clean_db: Database
) -> None:
    """The startup ``options`` cannot pass PgBouncer; SET LOCAL in each transaction does."""
    with _through(bouncer, statement_timeout_ms=150, lock_timeout_ms=77) as db:
        with unit_of_work(db, Actor.system("limits")) as uow:
            row = uow.conn.execute(
                "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
                " current_setting('row_security'), current_setting('TimeZone')"
            ).fetchone()
        assert row == ("150ms", "77ms", "on", "UTC")
        with pytest.raises(OperationTimeout), unit_of_work(db, Actor.system("slow")) as uow:
            uow.conn.execute("SELECT pg_sleep(2)")
        with db.read() as conn:  # a read runs in a transaction of its own, limits included
            assert conn.execute("SHOW statement_timeout").fetchone() == ("150ms",)
        # ... and none of it stays on the server connection for the next client.
        with psycopg.connect(bouncer_url(bouncer), autocommit=True) as raw:
            assert raw.execute("SHOW statement_timeout").fetchone() != ("150ms",)
            assert raw.execute("SHOW lock_timeout").fetchone() == ("0",)


def test_prepared_statements_through_this_bouncer_fail(bouncer: Bouncer) -> None:
    """Why the setting must be off: PgBouncer 1.18 sends a prepared statement's execution to
    a server connection that may not have it."""
    clients = [
        psycopg.connect(bouncer_url(bouncer), autocommit=True, prepare_threshold=0)
        for _ in range(4)
    ]
    failures = 0
    try:
        for i in range(50):
            for n, conn in enumerate(clients):
                try:
                    conn.execute("SELECT %s::int + %s::int", (i, n)).fetchone()
                except psycopg.Error:
                    failures += 1
    finally:
        for conn in clients:
            conn.close()
    assert failures > 0


def test_the_snapshot_shows_pgbouncers_pools_as_the_server_counts_them(
    bouncer: Bouncer, pg_cluster: EmbeddedCluster, db: Database
) -> None:
    console = bouncer_url(bouncer, "monitor", "pgbouncer")
    settings = make_settings(pg_cluster.url(), monitor_pgbouncer_url=console)
    with _through(bouncer) as app_db:
        users = UserService(app_db)
        for _ in range(20):
            users.list_users(Actor.system("stats"), limit=5)
        snap = collect_snapshot(db, settings)
        with db.connection() as conn:
            servers = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND usename = 'dbops_app' AND backend_type = 'client backend'",
                (APP_NAME,),
            ).fetchone()
    assert snap.error("bouncer") is None, snap.errors
    assert snap.bouncer is not None
    assert snap.bouncer.version is not None
    assert snap.bouncer.version.startswith("PgBouncer 1.")
    (pool,) = [p for p in snap.bouncer.pools if p.user == "dbops_app"]
    assert pool.pool_mode == "transaction"
    assert pool.database == pg_cluster.database
    held = pool.servers_active + pool.servers_idle + pool.servers_used
    assert servers is not None
    assert held == servers[0]
    assert 1 <= held <= SERVER_POOL
    assert pool.clients_waiting == 0
    (traffic,) = [d for d in snap.bouncer.databases if d.database == pg_cluster.database]
    assert traffic.transactions >= 20
    assert traffic.queries >= traffic.transactions
    assert problems(evaluate(snap, settings), "bouncer_waiting") == []
    families = {f.name: f for f in snapshot_metrics(snap, settings)}
    servers_idle = {
        (s.labels["database"], s.labels["user"]): s.value
        for s in families["dbops_pgbouncer_servers_idle"].samples
    }
    assert servers_idle[(pool.database, "dbops_app")] == pool.servers_idle
    (total,) = [
        s
        for s in families["dbops_pgbouncer_transactions"].samples
        if s.labels["database"] == pg_cluster.database and s.name.endswith("_total")
    ]
    assert total.value == traffic.transactions


def test_an_unreachable_console_is_a_collector_error_not_a_crash(
    pg_cluster: EmbeddedCluster, db: Database
) -> None:
    settings = make_settings(
        pg_cluster.url(),
        monitor_pgbouncer_url="postgresql://dbops_monitor:secret-pw@127.0.0.1:1/pgbouncer",
    )
    snap = collect_snapshot(db, settings)
    error = snap.error("bouncer")
    assert error is not None
    assert "secret-pw" not in error.message
    assert snap.bouncer is None
    assert snap.database is not None  # the rest of the snapshot is there


def test_the_cli_starts_and_stops_a_bouncer_for_the_project(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"DBOPS_HOME": str(tmp_path / ".dbops"), "COLUMNS": "200"}
    if SUITE_PG_VERSION is not None:
        env["DBOPS_PG_VERSION"] = str(SUITE_PG_VERSION)
    env["DBOPS_APP_PASSWORD"] = "app-password-for-the-bouncer"

    def cli(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, (args, result.output)
        return result.stdout

    try:
        cli("up", "--no-demo-data")
        started = cli("db", "bouncer", "start")
        url = cli("db", "bouncer", "url").strip()
        assert url in started
        password_url = url.replace("dbops_app@", "dbops_app:app-password-for-the-bouncer@")
        with psycopg.connect(password_url, prepare_threshold=None) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("dbops_app",)
        assert "pgbouncer stopped" in cli("db", "stop")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(password_url, connect_timeout=2)
    finally:
        EmbeddedCluster(tmp_path / ".dbops").destroy()
