"""The monitor role (``dbops_monitor``): full snapshot, exporter and history, no tenant row.

The data section reaches the tenant tables only through the SECURITY DEFINER aggregate
functions of migration 0009 (EXECUTE for the monitor and read-only roles). Each test connects
as one of dbops' roles, so what passes is what the server allows
(docs/decisions/0008-monitor-aggregates.md).
"""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dbops.config import to_libpq_url
from dbops.db import Database, EmbeddedCluster, open_database
from dbops.db.roles import POLICY_ROLE
from dbops.exporter import make_server
from dbops.models import Role
from dbops.monitoring import collect_snapshot
from dbops.monitoring.collectors.data import ON_TABLES, THROUGH_FUNCTIONS, collect_data
from dbops.monitoring.history import capture, prune
from dbops.ops.roles import DATA_FUNCTIONS, ROLE_NAMES, RoleName, grant_privileges
from tests.fixtures.db import make_settings, role_url
from tests.fixtures.monitoring import monitor_settings
from tests.services._helpers import (
    add_member,
    as_system,
    make_team,
    make_user,
    soft_delete_team,
    soft_delete_user,
)

INSERT_INVITATION = """
INSERT INTO invitations (team_id, email, role, token_hash, created_at, expires_at)
VALUES (%(team)s, %(email)s, 'MEMBER', %(token)s, now() - interval '2 days',
        now() + %(ttl)s::interval)
"""

#: Each function's result columns: counts, days, roles, bucket sizes, and the one sample of
#: team ids; no uuid, e-mail or name column.
RESULTS = {
    "data_counts": "TABLE(live_users bigint, deleted_users bigint, live_teams bigint, "
    "deleted_teams bigint, pending_invitations bigint, expired_invitations bigint)",
    "data_memberships_by_role": "TABLE(key text, count bigint)",
    "data_signups_per_day": "TABLE(day date, count bigint)",
    "data_team_sizes": "TABLE(members bigint, teams bigint)",
    "data_zero_owner_teams": "TABLE(count bigint, sample text[])",
}
FUNCTIONS_SQL = """
SELECT p.proname::text, pg_get_function_result(p.oid), p.prosecdef,
       array_to_string(p.proconfig, ',')
FROM pg_proc AS p
WHERE p.pronamespace = 'dbops_monitor'::regnamespace AND p.proname LIKE 'data\\_%%'
"""
#: Who may execute a function: every grantee of EXECUTE in its ACL (0 = PUBLIC).
EXECUTORS_SQL = """
SELECT coalesce(r.rolname, 'PUBLIC')::text
FROM aclexplode((SELECT proacl FROM pg_proc WHERE oid = to_regprocedure(%(function)s))) AS a
LEFT JOIN pg_roles AS r ON r.oid = a.grantee
WHERE a.privilege_type = 'EXECUTE'
"""


@pytest.fixture
def zero_owner_ids(clean_db: Database) -> set[str]:
    """Every state the data section counts; returns the ids of live teams without an owner."""
    owner, member, gone, deleted = (make_user(clean_db) for _ in range(4))
    soft_delete_user(clean_db, deleted)
    owned = make_team(clean_db, owners=[owner], members=[member])
    orphan = make_team(clean_db, members=[member])
    headless = make_team(clean_db, owners=[gone])  # its only owner is deleted
    soft_delete_user(clean_db, gone)
    soft_delete_team(clean_db, make_team(clean_db, owners=[owner]))
    big = make_team(clean_db, owners=[owner])
    for _ in range(11):  # the "10 or more" bucket
        add_member(clean_db, big, make_user(clean_db), Role.MEMBER)
    with as_system(clean_db) as conn:
        for ttl in ("7 days", "7 days", "-1 day"):
            conn.execute(
                INSERT_INVITATION,
                {
                    "team": owned,
                    "email": f"{uuid.uuid4().hex}@example.com",
                    "token": uuid.uuid4().bytes * 2,
                    "ttl": ttl,
                },
            )
    return {str(orphan), str(headless)}


@pytest.fixture
def role_db(pg_cluster: EmbeddedCluster, migrated: str) -> Iterator[Any]:
    """``role_db("monitor")``: a Database as one of dbops' roles (closed after the test)."""
    opened: list[Database] = []

    def open_as(role: RoleName) -> Database:
        url = role_url(pg_cluster, role)
        database = open_database(make_settings(url), url)
        opened.append(database)
        return database

    yield open_as
    for database in opened:
        database.close()


def _connect(pg_cluster: EmbeddedCluster, role: RoleName, **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(to_libpq_url(role_url(pg_cluster, role)), **kwargs)


# -- the snapshot ---------------------------------------------------------------------------------


def test_a_snapshot_as_the_monitor_role_has_no_error_and_the_superusers_numbers(
    zero_owner_ids: set[str], clean_db: Database, role_db: Any, pg_cluster: EmbeddedCluster
) -> None:
    monitor = role_db("monitor")
    snap = collect_snapshot(monitor, monitor.settings)
    assert snap.errors == ()
    assert snap.server is not None
    assert snap.server.current_user == ROLE_NAMES["monitor"]
    as_superuser = collect_snapshot(clean_db, clean_db.settings)
    assert as_superuser.data is not None
    assert snap.data == as_superuser.data
    data = snap.data
    assert (data.live_users, data.deleted_users) == (13, 2)
    assert (data.live_teams, data.deleted_teams) == (4, 1)
    assert (data.pending_invitations, data.expired_invitations) == (2, 1)
    assert {(c.key, c.count) for c in data.memberships_by_role} == {("OWNER", 4), ("MEMBER", 13)}
    assert sum(d.count for d in data.signups_per_day) == 15
    assert {(t.members, t.teams) for t in data.team_sizes} == {(1, 2), (2, 1), (10, 1)}
    assert data.zero_owner_teams == 2
    assert set(data.zero_owner_team_sample) == zero_owner_ids
    # ... while the tables themselves stay closed to it.
    with _connect(pg_cluster, "monitor", autocommit=True) as conn:
        for table in ("users", "teams", "team_members", "invitations"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {table}")


def test_the_exporter_as_the_monitor_role_serves_the_data_metrics(
    zero_owner_ids: set[str], role_db: Any, db: Database
) -> None:
    monitor = role_db("monitor")
    with db.read() as conn:  # the oracle: the audit trail's head as the superuser reads it
        head = conn.execute("SELECT last_id FROM audit.head").fetchone()
    assert head is not None
    assert head[0] > 0
    settings = monitor.settings.model_copy(update={"exporter_min_interval_s": 0.0})
    with (
        make_server(settings, port=0, db=monitor).start() as server,
        urllib.request.urlopen(f"{server.url}/metrics", timeout=30) as resp,
    ):
        text = resp.read().decode()
    assert "dbops_up 1.0" in text
    assert "dbops_snapshot_errors 0.0" in text
    assert 'dbops_data_users{state="live"} 13.0' in text
    assert 'dbops_data_memberships{role="OWNER"} 4.0' in text
    assert 'dbops_data_invitations{state="expired"} 1.0' in text
    assert "dbops_data_zero_owner_teams 2.0" in text
    assert f"dbops_audit_head_id {float(head[0])}" in text  # the anchor Prometheus keeps
    assert 'dbops_collector_errors_total{collector="data"} 0.0' in text


def test_both_query_forms_give_the_same_numbers(
    zero_owner_ids: set[str], clean_db: Database
) -> None:
    """The functions hold a copy of the plain SQL (a migration cannot import it): no drift."""
    with clean_db.pool.connection() as conn:
        conn.autocommit = True
        on_tables = collect_data(conn, settings=clean_db.settings.monitor, queries=ON_TABLES)
        through = collect_data(conn, settings=clean_db.settings.monitor, queries=THROUGH_FUNCTIONS)
        chosen = collect_data(conn, settings=clean_db.settings.monitor)
    assert on_tables is not None
    assert on_tables.live_users == 13
    assert through == on_tables
    assert chosen == on_tables


def test_a_role_that_may_not_execute_every_function_reads_the_tables(
    zero_owner_ids: set[str], role_db: Any, db: Database
) -> None:
    """The read-only role without one grant: all or nothing, the plain SQL (same numbers)."""
    readonly = role_db("readonly")
    before = collect_snapshot(readonly, readonly.settings)
    with db.connection() as conn:
        conn.execute(
            "REVOKE EXECUTE ON FUNCTION dbops_monitor.data_team_sizes(integer) FROM dbops_readonly"
        )
    try:
        after = collect_snapshot(readonly, readonly.settings)
    finally:
        with db.connection() as conn:
            grant_privileges(conn)
    assert before.errors == after.errors == ()
    assert after.data == before.data
    assert after.data is not None
    assert after.data.live_users == 13


def test_before_migration_0009_the_monitor_role_gets_a_privilege_error(
    zero_owner_ids: set[str], role_db: Any, db: Database
) -> None:
    """Without EXECUTE (as on a database not migrated that far) the data section fails
    with the hint, never with zero counts."""
    monitor = role_db("monitor")
    with db.connection() as conn:
        conn.execute("REVOKE EXECUTE ON FUNCTION dbops_monitor.data_counts() FROM dbops_monitor")
    try:
        snap = collect_snapshot(monitor, monitor.settings)
    finally:
        with db.connection() as conn:
            grant_privileges(conn)
    assert snap.data is None
    error = snap.error("data")
    assert error is not None
    assert "permission denied" in error.message
    assert error.hint is not None
    assert "dbops_monitor.data_*" in error.hint


# -- the functions --------------------------------------------------------------------------------


def test_the_functions_return_aggregates_only_and_run_as_their_owner(db: Database) -> None:
    with db.connection() as conn:
        rows = conn.execute(FUNCTIONS_SQL).fetchall()
    assert {r[0]: r[1] for r in rows} == RESULTS
    assert {f"dbops_monitor.{r[0]}" for r in rows} == {f.split("(")[0] for f in DATA_FUNCTIONS}
    for _, _, definer, config in rows:
        assert definer
        assert config == "search_path=pg_catalog, pg_temp"


OWNERS_SQL = """
SELECT DISTINCT r.rolname::text, r.rolbypassrls, pg_has_role('dbops_app', r.oid, 'MEMBER')
FROM pg_proc AS p JOIN pg_roles AS r ON r.oid = p.proowner
WHERE p.pronamespace = 'dbops_monitor'::regnamespace AND p.proname LIKE 'data\\_%%'
"""


def test_the_functions_read_past_the_policies_as_a_role_the_app_cannot_become(
    db: Database,
) -> None:
    """Owned by the owner (under forced RLS), the aggregates passed a policy per row: 3 s for
    the counts at 1M users instead of 0.15 s. Their owner bypasses RLS and is out of the app's
    reach (it could rewrite a SECURITY DEFINER function otherwise)."""
    with db.connection() as conn:
        owners = conn.execute(OWNERS_SQL).fetchall()
    assert owners == [(POLICY_ROLE, True, False)]


def test_only_the_monitor_and_readonly_roles_may_execute_them(
    db: Database, pg_cluster: EmbeddedCluster, zero_owner_ids: set[str]
) -> None:
    """Not PUBLIC, not the application role: cross-tenant numbers are no service's business."""
    with db.connection() as conn:
        for function in DATA_FUNCTIONS:
            grantees = {r[0] for r in conn.execute(EXECUTORS_SQL, {"function": function})}
            assert grantees == {POLICY_ROLE, "dbops_monitor", "dbops_readonly"}, function
    with _connect(pg_cluster, "app", autocommit=True) as app:
        app.execute("SELECT set_config('app.actor_kind', 'system', false)")
        for function in DATA_FUNCTIONS:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(f"SELECT * FROM {function.replace('(integer)', '(10)')}")
    with _connect(pg_cluster, "readonly", autocommit=True) as readonly:
        row = readonly.execute("SELECT live_users FROM dbops_monitor.data_counts()").fetchone()
    assert row == (13,)


def test_the_callers_actor_is_put_back(
    zero_owner_ids: set[str], pg_cluster: EmbeddedCluster
) -> None:
    """The owner is held by the FORCED policies: after a call it still sees no row."""
    with _connect(pg_cluster, "owner") as owner:  # one transaction: the local setting
        owner.execute("SELECT set_config('app.actor_kind', 'user', false)")
        assert owner.execute("SELECT count(*) FROM users").fetchone() == (0,)
        counts = owner.execute("SELECT live_users FROM dbops_monitor.data_counts()").fetchone()
        assert counts == (13,)
        assert owner.execute("SELECT current_setting('app.actor_kind')").fetchone() == ("user",)
        assert owner.execute("SELECT count(*) FROM users").fetchone() == (0,)
        owner.rollback()


def test_the_arguments_are_clamped(zero_owner_ids: set[str], pg_cluster: EmbeddedCluster) -> None:
    with _connect(pg_cluster, "monitor", autocommit=True) as conn:
        row = conn.execute("SELECT count, sample FROM dbops_monitor.data_zero_owner_teams(1000)")
        count, sample = row.fetchone() or (None, None)
        assert (count, len(sample)) == (2, 2)
        row = conn.execute("SELECT sample FROM dbops_monitor.data_zero_owner_teams(-5)")
        assert row.fetchone() == ([],)
        sizes = conn.execute("SELECT * FROM dbops_monitor.data_team_sizes(100000)").fetchall()
        assert max(members for members, _ in sizes) == 12  # at most 100, here the largest team
        days = conn.execute("SELECT * FROM dbops_monitor.data_signups_per_day(0)").fetchall()
        assert len(days) == 1  # today (UTC) only: everyone signed up just now


# -- the history ----------------------------------------------------------------------------------


def test_history_capture_and_prune_run_as_the_monitor_role(monitor_history_url: str) -> None:
    settings = monitor_settings(monitor_history_url, history_capture_timeout_ms=5_000)
    with open_database(settings, monitor_history_url) as monitor:
        first = capture(monitor, settings)
        with monitor.connection() as conn:
            conn.execute("SELECT count(*) FROM pg_class")
        second = capture(monitor, settings)
        pruned = prune(monitor, settings)
        with monitor.connection() as conn:
            who = conn.execute("SELECT current_user::text").fetchone()
            captures = conn.execute("SELECT count(*) FROM dbops_monitor.captures").fetchone()
    assert who == (ROLE_NAMES["monitor"],)
    assert first.baseline
    assert not second.baseline
    assert second.samples >= 1
    assert captures == (2,)
    assert pruned.captures == 0
