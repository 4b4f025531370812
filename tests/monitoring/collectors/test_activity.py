"""Activity collector: a held lock shows as a blocked pair; idle-in-transaction sessions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

from dbops.config import to_libpq_url
from dbops.db import Database, EmbeddedCluster
from dbops.monitoring import Severity, Snapshot, collect_snapshot, evaluate
from tests.fixtures.monitoring import monitor_settings


def _wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_lock_wait_is_a_blocked_pair(
    mon_db: Database, mon_conn: psycopg.Connection, mon_url: str
) -> None:
    mon_conn.execute("CREATE TABLE locked (id int PRIMARY KEY, v int)")
    mon_conn.execute("INSERT INTO locked VALUES (1, 0)")
    holder = psycopg.connect(to_libpq_url(mon_url), application_name="test-holder")
    waiter = psycopg.connect(to_libpq_url(mon_url), application_name="test-waiter")
    try:
        holder.execute("UPDATE locked SET v = 1 WHERE id = 1")  # transaction left open
        holder_pid = holder.info.backend_pid
        waiter_pid = waiter.info.backend_pid
        thread = threading.Thread(
            target=lambda: waiter.execute("UPDATE locked SET v = 2 WHERE id = 1"), daemon=True
        )
        thread.start()
        _wait_for(
            lambda: (
                mon_conn.execute(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                    (waiter_pid,),
                ).fetchone()
                == (True,)
            )
        )
        settings = monitor_settings(mon_url, check_idle_in_transaction_s=0.001)
        snap = collect_snapshot(mon_db, settings)
        assert snap.errors == ()
        assert snap.activity is not None
        assert snap.activity.blocked is not None
        pairs = [(p.blocked_pid, p.blocking_pid) for p in snap.activity.blocked]
        assert (waiter_pid, holder_pid) in pairs
        pair = next(p for p in snap.activity.blocked if p.blocked_pid == waiter_pid)
        assert pair.wait_event_type == "Lock"
        assert pair.blocking_state == "idle in transaction"
        assert "UPDATE locked" in (pair.blocked_query or "")

        sessions = {s.pid: s for s in snap.activity.sessions or ()}
        assert sessions[holder_pid].state == "idle in transaction"
        assert sessions[waiter_pid].state == "active"
        apps = {c.key for c in snap.activity.by_application or ()}
        assert {"test-holder", "test-waiter"} <= apps
        assert snap.activity.max_connections == 100
        assert (snap.activity.total or 0) >= 3

        idle = [f for f in evaluate(snap, settings) if f.check == "idle_in_transaction"]
        holder_finding = next(f for f in idle if f.subject == f"pid {holder_pid}")
        assert holder_finding.severity == Severity.CRITICAL  # it blocks the waiter
    finally:
        holder.rollback()
        thread.join(10)
        waiter.rollback()
        holder.close()
        waiter.close()


def test_connections_are_counted_by_role_and_client_address(
    mon_db: Database, mon_url: str, pg_cluster: EmbeddedCluster, monitor_role: str
) -> None:
    """Access monitoring: a TCP login as another role shows under that role and 127.0.0.1,
    the unix-socket sessions under ``local``; the four groupings add up to the total."""
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER ROLE {} PASSWORD 'pw-test'").format(sql.Identifier(monitor_role))
        )
    ca = pg_cluster.tls_ca
    tls = f" sslmode=verify-full sslrootcert={ca}" if ca is not None else ""
    tcp = psycopg.connect(
        f"host=127.0.0.1 port={pg_cluster.port} dbname=postgres user={monitor_role} "
        f"password=pw-test{tls}"
    )
    try:
        snap = collect_snapshot(mon_db, monitor_settings(mon_url))
    finally:
        tcp.close()
    act = snap.activity
    assert act is not None
    assert act.by_user is not None
    assert act.by_client is not None
    by_user = {c.key: c.count for c in act.by_user}
    by_client = {c.key: c.count for c in act.by_client}
    assert by_user.get(monitor_role) == 1
    assert by_client.get("127.0.0.1", 0) >= 1
    assert by_client.get("local", 0) >= 1  # the collector's own connection
    assert sum(by_client.values()) == act.total == sum(by_user.values())
    assert Snapshot.from_json(snap.to_json()) == snap
