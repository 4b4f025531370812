"""Access monitoring, the server's side: refused logins and denials counted from its log."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbops.config import to_libpq_url
from dbops.db import Database, EmbeddedCluster
from dbops.exporter import snapshot_metrics
from dbops.monitoring import collect_snapshot
from dbops.monitoring.collectors import resources
from dbops.monitoring.collectors.access import collect_access, server_access
from dbops.monitoring.collectors.resources import count_log_lines, default_log_files
from dbops.monitoring.snapshot import ServerAccessStat, Snapshot
from tests.fixtures.monitoring import monitor_settings

WRONG = "not-the-password-x9"

#: Lines of a server log under the embedded prefix ``'%m [%p] %e %q%u@%d %h '`` (and older ones).
DAY = b"2026-01-01 10:"
LINES = [
    DAY + b'00:00.000 UTC [7] 28P01 app@db 127.0.0.1 FATAL:  password authentication failed "app"',
    DAY + b"00:00.000 UTC [7] 28P01 app@db 127.0.0.1 DETAIL:  Connection matched file",
    DAY + b"01:00.123 UTC [8] 28000 app@db 127.0.0.1 FATAL:  pg_hba.conf rejects connection",
    DAY + b"02:00.000 UTC [9] 42501 app@db [local] ERROR:  new row violates row-level security",
    DAY + b"02:00.000 UTC [9] 42501 app@db [local] STATEMENT:  INSERT INTO teams VALUES ($1)",
    DAY + b"03:00.000 UTC [9] 42501 ro@db [local] ERROR:  permission denied for table users",
    DAY + b"04:00.000 UTC [10] 42501 ERROR:  permission denied for table users",
    DAY
    + b"05:00.000 UTC [11] 00000 app@db 127.0.0.1 LOG:  statement: SELECT '28P01 x@y z FATAL:  '",
    DAY + b"05:00.000 UTC [11] 22012 app@db  ERROR:  division by zero",
    DAY + b"06:00.000 UTC [12] 00000 LOG:  checkpoint starting: time",
]


def _server(cluster: EmbeddedCluster) -> ServerAccessStat:
    stat = server_access(default_log_files(cluster.datadir), now=datetime.now(UTC), window_s=900.0)
    assert stat is not None
    return stat


def _wait(check: Callable[[ServerAccessStat], bool], cluster: EmbeddedCluster) -> ServerAccessStat:
    deadline = time.monotonic() + 5
    while True:  # the server writes its log asynchronously to us
        stat = _server(cluster)
        if check(stat) or time.monotonic() > deadline:
            return stat
        time.sleep(0.05)


def _tcp(cluster: EmbeddedCluster, **params: str) -> str:
    base = to_libpq_url(cluster.tcp_url()).split("?", 1)[0]
    return base + "?" + "&".join(f"{k}={v}" for k, v in params.items())


@pytest.fixture
def fresh_tails() -> Iterator[None]:
    resources._TAILS.clear()
    yield
    resources._TAILS.clear()


# -------------------------------------------------------------- the embedded cluster's log
def test_wrong_password_over_tls_is_one_failed_login(pg_cluster: EmbeddedCluster) -> None:
    url = to_libpq_url(pg_cluster.tcp_url())
    assert "sslmode=verify-full" in url
    before = _server(pg_cluster)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(url, password=WRONG, connect_timeout=5)
    after = _wait(lambda s: s.login_failed > before.login_failed, pg_cluster)

    assert after.login_failed == before.login_failed + 1
    assert before.login_failed_recent is not None
    assert after.login_failed_recent == before.login_failed_recent + 1
    assert (after.rls_denied, after.privilege_denied) == (
        before.rls_denied,
        before.privilege_denied,
    )
    # The line names SQLSTATE, user@database and client host (log_line_prefix), never the password.
    log = pg_cluster.logfile.read_text()
    refused = [line for line in log.splitlines() if " 28P01 " in line and "FATAL:" in line]
    assert f" 28P01 postgres@{pg_cluster.database} 127.0.0.1 FATAL:  " in refused[-1]
    assert refused[-1].split(" ")[2] == "UTC"  # log_timezone: the window reads these times
    assert WRONG not in log


def test_tcp_without_tls_is_a_failed_login_too(pg_cluster: EmbeddedCluster) -> None:
    before = _server(pg_cluster)
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(_tcp(pg_cluster, sslmode="disable"), connect_timeout=5)
    after = _wait(lambda s: s.login_failed > before.login_failed, pg_cluster)
    assert after.login_failed == before.login_failed + 1


def test_rls_and_privilege_denials_are_counted_apart(
    pg_cluster: EmbeddedCluster, mon_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    suffix = uuid.uuid4().hex[:8]
    rls, hidden = sql.Identifier(f"rls_{suffix}"), sql.Identifier(f"hidden_{suffix}")
    role = sql.Identifier(f"acc_{suffix}")
    before = _server(pg_cluster)
    with mon_conn.transaction(force_rollback=True):
        for template in (
            "CREATE TABLE {rls} (id int)",
            "ALTER TABLE {rls} ENABLE ROW LEVEL SECURITY",
            "CREATE POLICY nothing ON {rls} USING (false) WITH CHECK (false)",
            "CREATE TABLE {hidden} (id int)",
            "CREATE ROLE {role}",
            "GRANT INSERT ON {rls} TO {role}",
            "SET LOCAL ROLE {role}",
        ):
            mon_conn.execute(sql.SQL(template).format(rls=rls, hidden=hidden, role=role))
        for statement in (
            sql.SQL("INSERT INTO {} VALUES (1)").format(rls),
            sql.SQL("SELECT * FROM {}").format(hidden),
            sql.SQL("DELETE FROM {}").format(hidden),
        ):
            with (
                pytest.raises(psycopg.errors.InsufficientPrivilege),
                mon_conn.transaction(),
            ):
                mon_conn.execute(statement)
    after = _wait(
        lambda s: (
            (s.rls_denied, s.privilege_denied)
            == (before.rls_denied + 1, before.privilege_denied + 2)
        ),
        pg_cluster,
    )
    assert after.rls_denied == before.rls_denied + 1
    assert after.privilege_denied == before.privilege_denied + 2
    assert after.login_failed == before.login_failed


def test_snapshot_and_metrics_on_the_embedded_cluster(
    mon_db: Database, mon_url: str, pg_cluster: EmbeddedCluster
) -> None:
    settings = monitor_settings(mon_url)
    snap = collect_snapshot(mon_db, settings, data_dir=pg_cluster.datadir)
    assert snap.error("access") is None
    assert snap.access is not None
    assert snap.access.window_s == settings.monitor_access_window_s
    assert snap.access.app is None  # not asked for: the collecting process is no application
    server = snap.access.server
    assert server is not None
    samples = {
        (s.labels["kind"], s.labels["source"]): s.value
        for m in snapshot_metrics(snap, settings)
        if m.name == "dbops_access_events"
        for s in m.samples
    }
    assert samples == {
        ("login_failed", "server"): server.login_failed,
        ("rls_denied", "server"): server.rls_denied,
        ("privilege_denied", "server"): server.privilege_denied,
    }
    inside = collect_snapshot(mon_db, settings, data_dir=pg_cluster.datadir, app=True)
    assert inside.access is not None
    assert inside.access.app is not None  # a snapshot taken inside the application
    assert Snapshot.from_json(inside.to_json()) == inside
    remote = collect_snapshot(mon_db, settings)
    assert remote.access is not None
    assert remote.access.server is None  # no log on this host for a DATABASE_URL server
    assert not [m for m in snapshot_metrics(remote, settings) if m.name == "dbops_access_events"]


# ------------------------------------------------------------------------ log parsing
def test_log_lines_are_counted_by_kind() -> None:
    counts = count_log_lines(LINES)
    assert dict(counts.errors) == {"28": 2, "42": 3, "22": 1}
    assert dict(counts.access) == {"login_failed": 2, "rls_denied": 1, "privilege_denied": 2}
    assert counts.login_times == (
        datetime(2026, 1, 1, 10, 0, tzinfo=UTC),
        datetime(2026, 1, 1, 10, 1, 0, 123000, tzinfo=UTC),
    )
    assert counts.last_login_untimed is False


def test_recent_logins_follow_the_log_times(tmp_path: Path, fresh_tails: None) -> None:
    log = tmp_path / "log" / "postgresql.log"
    log.parent.mkdir()
    log.write_bytes(b"\n".join(LINES) + b"\n")
    at = datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
    whole = server_access([log], now=at, window_s=300.0)  # since 10:00:00: both
    assert whole == ServerAccessStat(
        login_failed=2, rls_denied=1, privilege_denied=2, login_failed_recent=2
    )
    assert server_access([log], now=at, window_s=240.0).login_failed_recent == 1  # type: ignore[union-attr]
    assert server_access([log], now=at, window_s=60.0).login_failed_recent == 0  # type: ignore[union-attr]
    with log.open("ab") as fh:  # a log in local time: the recent refusals are unknown
        fh.write(b"2026-01-01 11:06:00.000 CET [13] 28P01 a@b c FATAL:  password auth\n")
    later = server_access([log], now=at, window_s=300.0)
    assert later is not None
    assert later.login_failed == 3
    assert later.login_failed_recent is None
    assert server_access([tmp_path / "missing.log"], now=at, window_s=60.0) is None


def test_collect_access_without_a_log_or_app(tmp_path: Path) -> None:
    settings = monitor_settings("postgresql://x/y", monitor_access_window_s=60.0)
    now = datetime.now(UTC)
    stat = collect_access(settings, now=now)
    assert (stat.window_s, stat.app, stat.server) == (60.0, None, None)
    assert collect_access(settings, now=now, data_dir=tmp_path / "absent").server is None
    assert collect_access(settings, now=now, app=True).app is not None


def test_an_unreadable_log_does_not_hide_the_next_one(tmp_path: Path) -> None:
    resources._TAILS.clear()
    log = tmp_path / "b.log"
    log.write_bytes(
        b"2026-01-02 03:04:05.000 UTC [9] 28P01 FATAL:  password authentication failed for "
        b'user "x"\n'
    )
    try:
        stat = server_access(
            [tmp_path / "gone.log", log],
            now=datetime(2026, 1, 2, 3, 10, tzinfo=UTC),
            window_s=900,
        )
    finally:
        resources._TAILS.clear()
    assert stat is not None
    assert (stat.login_failed, stat.login_failed_recent) == (1, 1)
    assert server_access([tmp_path / "gone.log"], now=datetime.now(UTC), window_s=900) is None
