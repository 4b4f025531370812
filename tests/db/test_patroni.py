"""High availability on real engines: etcd 3.4 and two Patroni 3.0 nodes on loopback.

dbops is set up through the libpq multi-host URL (``target_session_attrs=read-write``) as a
user would with ``DATABASE_URL``: ``dbops migrate``, ``dbops roles setup``. Then, while a
writer creates users through the services, the primary's postmaster is killed: Patroni
promotes the synchronous standby, the same pool reconnects by itself, and every write the
service acknowledged is on the new primary (synchronous mode). The roles and row-level
security are the same on both nodes; backups and their restore drill run against the cluster;
the snapshot says which node is the primary.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from dbops.cli import app
from dbops.config import Settings
from dbops.db import Database, open_database
from dbops.errors import DbopsError
from dbops.exporter import snapshot_metrics
from dbops.monitoring import collect_snapshot, evaluate
from dbops.monitoring.checks import problems
from dbops.services import Actor, TeamService, UserService
from tests.fixtures.db import make_settings
from tests.fixtures.patroni import LocalPatroni

pytestmark = [pytest.mark.slow, pytest.mark.scale]

PASSWORDS = {
    role: f"ha-{role}-{uuid.uuid4().hex[:8]}" for role in ("owner", "app", "readonly", "monitor")
}

#: Row-level security as the migrations leave it, per table: the oracle both nodes are held to.
FORCED_SQL = """
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1
"""
ROLES_SQL = """
SELECT rolname, rolcanlogin, rolbypassrls, rolsuper FROM pg_roles
WHERE rolname LIKE 'dbops%' ORDER BY 1
"""


@pytest.fixture(scope="module")
def ha(patroni: LocalPatroni, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The cluster with dbops set up through the multi-host URL; the CLI's environment."""
    with psycopg.connect(patroni.url(db="postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE dbops")
    env = {
        "DATABASE_URL": patroni.url(),
        "DBOPS_HOME": str(tmp_path_factory.mktemp("ha") / ".dbops"),
        "COLUMNS": "200",
        **{f"DBOPS_{role.upper()}_PASSWORD": password for role, password in PASSWORDS.items()},
    }
    _cli(env, "migrate")
    _cli(env, "roles", "setup")
    return env


def _cli(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def _app(patroni: LocalPatroni, **overrides: Any) -> Database:
    url = patroni.url("dbops_app", PASSWORDS["app"])
    return open_database(make_settings(url, pool_max_size=4, **overrides), url)


def _on_each_node(patroni: LocalPatroni, query: str) -> list[list[tuple[Any, ...]]]:
    out = []
    for node in patroni.nodes:
        with psycopg.connect(patroni.node_url(node), autocommit=True) as conn:
            out.append(conn.execute(query).fetchall())
    return out


class _Writer:
    """A thread creating users through the services until stopped: what they acknowledged."""

    def __init__(self, db: Database, tag: str) -> None:
        self.users = UserService(db)
        self.system = Actor.system(f"ha-{tag}")
        self.tag = tag
        #: (e-mail, when the service returned) of each acknowledged write.
        self.acked: list[tuple[str, float]] = []
        #: When each failed call returned (the caller saw an error: not acknowledged).
        self.failures: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> _Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            email = f"{self.tag}-{i}-{uuid.uuid4().hex[:6]}@example.com"
            i += 1
            try:
                self.users.create(
                    self.system, email=email, password="a long enough password", display_name="w"
                )
            except DbopsError:
                self.failures.append(time.monotonic())
                time.sleep(0.05)
                continue
            self.acked.append((email, time.monotonic()))

    def missing(self, patroni: LocalPatroni) -> int:
        """Acknowledged writes the primary does not have."""
        emails = [email for email, _ in self.acked]
        with psycopg.connect(patroni.url(), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM users WHERE email = ANY(%s)", (emails,)
            ).fetchone()
        assert row is not None
        return len(emails) - int(row[0])


def test_roles_and_row_level_security_are_the_same_on_both_nodes(
    patroni: LocalPatroni, ha: dict[str, str]
) -> None:
    forced = _on_each_node(patroni, FORCED_SQL)
    roles = _on_each_node(patroni, ROLES_SQL)
    assert forced[0] == forced[1]
    assert {table for table, rls, force in forced[0] if rls and force} >= {
        "users",
        "teams",
        "team_members",
        "invitations",
    }
    assert roles[0] == roles[1]
    by_name = {name: (login, bypass, superuser) for name, login, bypass, superuser in roles[0]}
    # The app logs in under row-level security; only the system role it switches to for
    # system jobs bypasses it, and it cannot log in.
    assert by_name["dbops_app"] == (True, False, False)
    assert by_name["dbops_system"] == (False, True, False)


def test_the_snapshot_names_the_primary_it_reached(
    patroni: LocalPatroni, ha: dict[str, str]
) -> None:
    leader = patroni.leader()
    assert leader is not None
    url = patroni.url("dbops_monitor", PASSWORDS["monitor"])
    settings = make_settings(url)
    with open_database(settings, url, purpose="monitor") as db:
        snap = collect_snapshot(db, settings)
    assert snap.server is not None
    assert snap.server.in_recovery is False
    assert snap.server.address == f"127.0.0.1:{leader.pg_port}"


def test_a_failover_under_writes_loses_no_acknowledged_write(
    patroni: LocalPatroni, ha: dict[str, str], record_property: Any
) -> None:
    old = patroni.leader()
    assert old is not None
    with _app(patroni) as db, _Writer(db, "ha") as writer:
        acked = writer.acked
        _until(lambda: len(acked) >= 50, 30)
        # Synchronous: each acknowledged commit is on the standby too.
        with psycopg.connect(patroni.node_url(old), autocommit=True) as conn:
            states = conn.execute("SELECT sync_state FROM pg_stat_replication").fetchall()
        assert states == [("sync",)]
        pid = old.postmaster_pid()
        assert pid is not None
        killed_at = time.monotonic()
        os.kill(pid, 9)
        _until(lambda: bool(acked) and acked[-1][1] > killed_at + 0.001, 60)
        resumed = next(t for _, t in acked if t > killed_at)
        before = len(acked)
        _until(lambda: len(acked) >= before + 50, 30)
    # The same pool served the new primary: no reopen, no restart of the app.
    new = patroni.leader()
    assert new is not None
    assert new.name != old.name
    with psycopg.connect(patroni.url(), autocommit=True) as conn:
        assert conn.execute("SELECT inet_server_port()").fetchone() == (new.pg_port,)
    assert writer.missing(patroni) == 0
    unavailable = resumed - killed_at
    record_property("unavailable_s", round(unavailable, 2))
    record_property("acknowledged_writes", len(acked))
    record_property("failed_calls", len(writer.failures))
    print(
        f"failover: {unavailable:.2f} s without writes, {len(acked)} acknowledged, "
        f"{len(writer.failures)} calls failed during it"
    )
    assert unavailable < 30


def test_row_level_security_holds_on_the_new_primary(
    patroni: LocalPatroni, ha: dict[str, str]
) -> None:
    with _app(patroni) as db:
        users, teams = UserService(db), TeamService(db)
        tag = uuid.uuid4().hex[:6]
        system = Actor.system("ha-rls")
        alice = users.create(
            system,
            email=f"alice-{tag}@example.com",
            password="a long enough password",
            display_name="alice",
        )
        bob = users.create(
            system,
            email=f"bob-{tag}@example.com",
            password="a long enough password",
            display_name="bob",
        )
        team = teams.create(Actor.user(alice.id), name="A", slug=f"a-{tag}")
        assert [t.team_id for t in teams.teams_of_user(Actor.user(alice.id), alice.id)] == [team.id]
        with db.read(("user", str(bob.id), "", "none")) as conn:
            assert conn.execute(
                "SELECT count(*) FROM teams WHERE id = %s", (team.id,)
            ).fetchone() == (0,)


def test_a_member_down_and_back_in_the_checks_and_the_exporter(
    patroni: LocalPatroni, ha: dict[str, str]
) -> None:
    """The old primary (its postmaster killed above) is taken down whole, then started: the
    ha_cluster check and the exporter say so, and it rejoins as the synchronous standby."""
    leader = patroni.leader()
    assert leader is not None
    old = next(n for n in patroni.nodes if n.name != leader.name)
    patroni.kill_node(old)
    rest = " ".join(f"http://127.0.0.1:{n.rest_port}" for n in (old, leader))  # old: no answer
    url = patroni.url("dbops_monitor", PASSWORDS["monitor"])
    settings = make_settings(url, monitor_patroni_url=rest)
    with open_database(settings, url, purpose="monitor") as db:
        _until(lambda: _members(db, settings).get(old.name) not in ("running", "streaming"), 30)
        snap = collect_snapshot(db, settings)
        assert snap.ha is not None
        assert snap.ha.source == f"http://127.0.0.1:{leader.rest_port}"
        ha_leader = snap.ha.leader()
        assert ha_leader is not None
        assert ha_leader.name == leader.name
        assert snap.server is not None
        assert ha_leader.address == snap.server.address  # Patroni and the server agree
        found = problems(evaluate(snap, settings), "ha_cluster")
        assert [f.severity.value for f in found] == ["warning"]
        families = {f.name: f for f in snapshot_metrics(snap, settings)}
        running = {
            s.labels["member"]: s.value for s in families["dbops_patroni_member_running"].samples
        }
        # Patroni lists a dead member until its key expires (ttl), then not at all.
        assert running.get(leader.name) == 1.0
        assert running.get(old.name, 0.0) == 0.0
        assert sum(running.values()) == 1.0
        patroni.start_node(old)
        _until(patroni.healthy, 60)
        snap = collect_snapshot(db, settings)
        assert problems(evaluate(snap, settings), "ha_cluster") == []
    roles = {m["name"]: m["role"] for m in patroni.cluster()}
    assert roles == {leader.name: "leader", old.name: "sync_standby"}


def _members(db: Database, settings: Settings) -> dict[str, str]:
    snap = collect_snapshot(db, settings, skip=("statements", "indexes", "tables", "data"))
    return {} if snap.ha is None else {m.name: m.state for m in snap.ha.members}


def test_backups_run_against_the_cluster_and_pass_their_drill(
    patroni: LocalPatroni, ha: dict[str, str]
) -> None:
    created = json.loads(_cli(ha, "backup", "create", "--json", "--no-progress"))
    verified = json.loads(_cli(ha, "backup", "verify", created["id"], "--json", "--no-progress"))
    print(json.dumps(verified)[:800])
    assert verified["ok"] is True


def _until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _patch_config(patroni: LocalPatroni, change: dict[str, Any]) -> None:
    import urllib.request

    leader = patroni.leader()
    assert leader is not None
    request = urllib.request.Request(
        f"http://127.0.0.1:{leader.rest_port}/config",
        data=json.dumps(change).encode(),
        method="PATCH",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def _fail_over_with_the_walsender_paused(patroni: LocalPatroni) -> tuple[int, int, int]:
    """Writes run; the primary's walsender is paused, writes go on for 1.5 s; the primary is
    killed. Returns (acknowledged, acknowledged while paused, acknowledged but missing)."""
    old = patroni.leader()
    assert old is not None
    with _app(patroni) as db, _Writer(db, "paused") as writer:
        acked = writer.acked
        _until(lambda: len(acked) >= 20, 30)
        with psycopg.connect(patroni.node_url(old), autocommit=True) as conn:
            (walsender,) = conn.execute("SELECT pid FROM pg_stat_replication").fetchone() or ()
        os.kill(walsender, 19)  # SIGSTOP: the standby receives nothing from now on
        paused_at = time.monotonic()
        time.sleep(1.5)
        pid = old.postmaster_pid()
        assert pid is not None
        os.kill(pid, 9)
        os.kill(walsender, 9)
        _until(lambda: (lead := patroni.leader()) is not None and lead.name != old.name, 60)
        _until(lambda: acked[-1][1] > paused_at + 1.5, 60)
    during = sum(1 for _, t in acked if paused_at <= t <= paused_at + 1.5)
    return len(acked), during, writer.missing(patroni)


def _rejoin(patroni: LocalPatroni) -> None:
    leader = patroni.leader()
    assert leader is not None
    for node in patroni.nodes:
        if node.name != leader.name:
            patroni.kill_node(node)
            patroni.start_node(node)


def test_synchronous_mode_is_what_keeps_acknowledged_writes(
    patroni: LocalPatroni, ha: dict[str, str], record_property: Any
) -> None:
    """The control for the failover test: with the standby cut off (its walsender paused),
    synchronous mode acknowledges nothing and loses nothing; without it, the primary goes on
    acknowledging writes the standby never gets, and the failover loses them."""
    _until(patroni.healthy, 60)
    acked, during, lost = _fail_over_with_the_walsender_paused(patroni)
    assert (during, lost) == (0, 0), (acked, during, lost)
    _rejoin(patroni)
    _until(patroni.healthy, 60)
    # Asynchronous, and a failover allowed however far behind the replica is (default: 1 MB).
    _patch_config(patroni, {"synchronous_mode": False, "maximum_lag_on_failover": 1 << 30})
    try:
        _until(lambda: all(m.get("role") != "sync_standby" for m in patroni.cluster()), 30)
        acked, during, lost = _fail_over_with_the_walsender_paused(patroni)
        record_property("async_lost", lost)
        print(
            f"asynchronous: {during} writes acknowledged while the standby was cut off, "
            f"{lost} of them lost in the failover"
        )
        assert during > 0
        assert lost > 0
    finally:
        _rejoin(patroni)
        _patch_config(patroni, {"synchronous_mode": True, "maximum_lag_on_failover": 1 << 20})
        _until(patroni.healthy, 60)
