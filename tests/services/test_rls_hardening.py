"""The app role cannot weaken what protects the data (issue: security hardening).

Raw SQL as ``dbops_app`` with its own actor, skipping every service check: the owner rule in
the write policies (migration 0010), no object the app role can become the owner of, and role
defaults that the connections ignore, the setup removes and a check reports.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbops.config import to_libpq_url
from dbops.db import Database, EmbeddedCluster, open_database
from dbops.db.roles import ALL_ROLES, POLICY_ROLE, SYSTEM_ROLE
from dbops.monitoring import collect_snapshot, evaluate
from dbops.ops.policy_role import POLICY_VIEWS
from dbops.ops.roles import ROLE_NAMES, RoleName, setup_roles
from tests.fixtures.db import ROLE_PASSWORDS, make_settings, role_url
from tests.services._helpers import make_team, make_user

ACTOR = """
SELECT set_config('app.actor_kind', 'user', false), set_config('app.actor_id', %(id)s, false)
"""
DBOPS_SCHEMAS = ["public", "archive", "audit", "dbops_monitor"]
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"


@pytest.fixture
def as_role(pg_cluster: EmbeddedCluster, migrated: str) -> Iterator[Any]:
    """``as_role("app", user)``: a raw autocommit connection as a dbops role, acting as ``user``."""
    opened: list[psycopg.Connection[Any]] = []

    def connect(role: RoleName, user: uuid.UUID | None = None) -> psycopg.Connection[Any]:
        conn = psycopg.connect(to_libpq_url(role_url(pg_cluster, role)), autocommit=True)
        opened.append(conn)
        if user is not None:
            conn.execute(ACTOR, {"id": str(user)})
        return conn

    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture
def team(clean_db: Database) -> dict[str, uuid.UUID]:
    """A team with an owner and two members; a user outside it."""
    owner, member, other, outsider = (make_user(clean_db) for _ in range(4))
    team_id = make_team(clean_db, owners=[owner], members=[member, other])
    return {
        "team": team_id,
        "owner": owner,
        "member": member,
        "other": other,
        "outsider": outsider,
    }


def _role(conn: psycopg.Connection[Any], team: uuid.UUID, user: uuid.UUID) -> str | None:
    row = conn.execute(
        "SELECT role::text FROM team_members WHERE team_id = %s AND user_id = %s", (team, user)
    ).fetchone()
    return None if row is None else row[0]


# -- the owner rule in the write policies ------------------------------------------------------
RLS_REFUSAL = "row-level security"


def test_a_member_cannot_promote_itself_or_change_anyone(
    team: dict[str, Any], as_role: Any
) -> None:
    member = as_role("app", team["member"])
    t = team["team"]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=RLS_REFUSAL):
        member.execute(
            "UPDATE team_members SET role = 'OWNER' WHERE team_id = %s AND user_id = %s",
            (t, team["member"]),
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=RLS_REFUSAL):
        member.execute(
            "UPDATE team_members SET role = 'MEMBER' WHERE team_id = %s AND user_id = %s",
            (t, team["owner"]),
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=RLS_REFUSAL):
        member.execute(
            "INSERT INTO team_members (team_id, user_id, role) VALUES (%s, %s, 'OWNER')",
            (t, team["outsider"]),
        )
    # Deleting another member (the owner included) is no row at all, not an error.
    cur = member.execute(
        "DELETE FROM team_members WHERE team_id = %s AND user_id = ANY(%s)",
        (t, [team["owner"], team["other"]]),
    )
    assert cur.rowcount == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=RLS_REFUSAL):
        member.execute(
            "INSERT INTO invitations (team_id, email, role, token_hash, invited_by, expires_at) "
            "VALUES (%s, 'x@example.com', 'OWNER', '\\x00', %s, now() + interval '1 day')",
            (t, team["member"]),
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=RLS_REFUSAL):
        member.execute("UPDATE teams SET name = 'taken over' WHERE id = %s", (t,))
    owner = as_role("app", team["owner"])
    assert _role(owner, t, team["member"]) == "MEMBER"
    assert _role(owner, t, team["owner"]) == "OWNER"
    assert _role(owner, t, team["other"]) == "MEMBER"
    assert _role(owner, t, team["outsider"]) is None


def test_a_member_may_leave_and_lock_its_team(team: dict[str, Any], as_role: Any) -> None:
    member = as_role("app", team["member"])
    t = team["team"]
    with member.transaction():  # the locks of `leave`: the team, then the owners and itself
        assert member.execute("SELECT id FROM teams WHERE id = %s FOR UPDATE", (t,)).fetchone()
        locked = member.execute(
            "SELECT user_id FROM team_members WHERE team_id = %s FOR UPDATE", (t,)
        ).fetchall()
        assert len(locked) == 3
        cur = member.execute(
            "DELETE FROM team_members WHERE team_id = %s AND user_id = %s", (t, team["member"])
        )
        assert cur.rowcount == 1


def test_an_owner_changes_roles_hands_over_and_steps_down(
    team: dict[str, Any], as_role: Any
) -> None:
    owner = as_role("app", team["owner"])
    t = team["team"]
    with owner.transaction():
        owner.execute(
            "UPDATE team_members SET role = 'OWNER' WHERE team_id = %s AND user_id = %s",
            (t, team["member"]),
        )
        owner.execute(  # still an owner when this statement started
            "UPDATE team_members SET role = 'MEMBER' WHERE team_id = %s AND user_id = %s",
            (t, team["owner"]),
        )
    assert _role(owner, t, team["member"]) == "OWNER"
    # Now a member: the rule holds for the former owner too.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=RLS_REFUSAL):
        owner.execute(
            "UPDATE team_members SET role = 'OWNER' WHERE team_id = %s AND user_id = %s",
            (t, team["owner"]),
        )
    new_owner = as_role("app", team["member"])
    cur = new_owner.execute(
        "DELETE FROM team_members WHERE team_id = %s AND user_id = %s", (t, team["other"])
    )
    assert cur.rowcount == 1
    new_owner.execute("UPDATE teams SET name = 'renamed by its owner' WHERE id = %s", (t,))


# -- nothing the app role can become owns anything of dbops ------------------------------------
OWNED_BY_APP_SQL = """
WITH app_can_become AS (
  SELECT oid FROM pg_roles WHERE pg_has_role('dbops_app', oid, 'MEMBER')
)
SELECT 'relation ' || c.oid::regclass::text FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND c.relowner IN (SELECT oid FROM app_can_become)
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc AS p
JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname = ANY(%(schemas)s) AND p.proowner IN (SELECT oid FROM app_can_become)
UNION ALL
SELECT 'type ' || t.oid::regtype::text FROM pg_type AS t
JOIN pg_namespace AS n ON n.oid = t.typnamespace
WHERE n.nspname = ANY(%(schemas)s) AND t.typowner IN (SELECT oid FROM app_can_become)
UNION ALL
SELECT 'schema ' || n.nspname FROM pg_namespace AS n
WHERE n.nspname = ANY(%(schemas)s) AND n.nspowner IN (SELECT oid FROM app_can_become)
"""


def test_no_role_the_app_can_become_owns_an_object(db: Database) -> None:
    with db.connection() as conn:
        owned = conn.execute(OWNED_BY_APP_SQL, {"schemas": DBOPS_SCHEMAS}).fetchall()
        assert owned == []
        owners = conn.execute(
            "SELECT DISTINCT proowner::regrole::text FROM pg_proc WHERE proname LIKE 'rls\\_%%'"
        ).fetchall()
        assert owners == [(POLICY_ROLE,)]
        view_owners = conn.execute(
            "SELECT relname::text, relowner::regrole::text FROM pg_class "
            "WHERE relname LIKE 'rls\\_%%' AND relkind = 'v' ORDER BY 1"
        ).fetchall()
        assert view_owners == [(name, POLICY_ROLE) for name in sorted(POLICY_VIEWS)]
        can_become_policy = conn.execute(
            "SELECT pg_has_role('dbops_app', %s, 'MEMBER')", (POLICY_ROLE,)
        ).fetchone()
        assert can_become_policy == (False,)


@pytest.mark.parametrize(
    "statement",
    [
        "DROP FUNCTION rls_actor_team_ids() CASCADE",
        "ALTER FUNCTION rls_actor_team_ids() SECURITY INVOKER",
        "ALTER FUNCTION rls_actor_owned_team_ids() OWNER TO dbops_system",
        "CREATE OR REPLACE FUNCTION rls_actor_team_ids() RETURNS uuid[] LANGUAGE sql "
        "AS 'SELECT array_agg(id) FROM teams'",
        "DROP POLICY tenant_select ON users",
        "DROP VIEW rls_actor_teams CASCADE",
        "CREATE OR REPLACE VIEW rls_actor_teams AS SELECT id AS team_id FROM teams",
        "ALTER VIEW rls_actor_team_memberships SET (security_barrier = false)",
        "ALTER TABLE users NO FORCE ROW LEVEL SECURITY",
    ],
)
def test_the_app_cannot_touch_the_policies_even_as_the_system_role(
    as_role: Any, statement: str
) -> None:
    app = as_role("app")
    app.execute(f"SET ROLE {SYSTEM_ROLE}")
    with pytest.raises(
        psycopg.errors.InsufficientPrivilege, match=r"must be owner|permission denied"
    ):
        app.execute(statement)


# -- role defaults -----------------------------------------------------------------------------
LEAK = """
CREATE FUNCTION pg_temp.leak(value uuid) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN
  RAISE NOTICE 'seen %', value;
  RETURN true;
END
$$
"""


def test_the_policy_views_show_only_the_actors_own_world_even_to_a_leaky_function(
    team: dict[str, Any], as_role: Any, clean_db: Database
) -> None:
    """The views are readable by every role (the policies run as the caller): what they show is
    the actor's teams and the memberships in them, and ``security_barrier`` keeps a caller's
    cheap function from seeing the rows they filter out."""
    make_team(clean_db, owners=[team["outsider"]])  # a team the member must not see
    member = as_role("app", team["member"])
    seen: list[str] = []
    member.add_notice_handler(lambda notice: seen.append(str(notice.message_primary)))
    member.execute(LEAK)
    teams = member.execute("SELECT team_id FROM rls_actor_teams WHERE pg_temp.leak(team_id)")
    assert [r[0] for r in teams] == [team["team"]]
    rows = member.execute(
        "SELECT user_id FROM rls_actor_team_memberships WHERE pg_temp.leak(user_id)"
    ).fetchall()
    assert {r[0] for r in rows} == {team["owner"], team["member"], team["other"]}
    assert len(seen) == 1 + 3  # the function saw the visible rows and nothing else


@pytest.mark.parametrize("function", ["rls_actor_team_ids()", "rls_actor_owned_team_ids()"])
def test_a_role_without_tenant_tables_reads_nobodys_teams_through_the_policy_objects(
    team: dict[str, Any], as_role: Any, pg_cluster: EmbeddedCluster, function: str
) -> None:
    """The policies' views and functions answer for whatever ``app.actor_id`` a session sets,
    and any role may set it. The monitor role (no tenant table) setting a member's id gets no
    row from the views and may not call the functions; a role that may read ``team_members``
    sees through the views what that table's own policy shows it, no more."""
    expected_teams = [(team["team"],)]
    expected_members = {team["owner"], team["member"], team["other"]}
    monitor = as_role("monitor", team["member"])
    assert monitor.execute("SELECT team_id FROM rls_actor_teams").fetchall() == []
    assert monitor.execute("SELECT * FROM rls_actor_team_memberships").fetchall() == []
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        monitor.execute(f"SELECT {function}")
    app = as_role("app", team["member"])
    assert app.execute("SELECT team_id FROM rls_actor_teams").fetchall() == expected_teams
    assert app.execute(f"SELECT {function}").fetchone() is not None  # the app's writes use them
    reporter = f"rep_{uuid.uuid4().hex[:10]}"  # an operator's own role, granted one table
    with psycopg.connect(pg_cluster.libpq_url(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {reporter}")
        admin.execute(f"GRANT SELECT ON team_members TO {reporter}")
        try:
            with admin.transaction(force_rollback=True):
                admin.execute(f"SET LOCAL ROLE {reporter}")
                admin.execute(ACTOR.replace("false", "true"), {"id": str(team["member"])})
                through_view = admin.execute("SELECT user_id FROM rls_actor_team_memberships")
                assert {r[0] for r in through_view} == expected_members
                direct = admin.execute("SELECT user_id FROM team_members")
                assert {r[0] for r in direct} == expected_members
        finally:
            admin.execute(f"DROP OWNED BY {reporter}")
            admin.execute(f"DROP ROLE {reporter}")


def _portable_views() -> list[str]:
    """Migration 0013's own CREATE VIEW statements, as CREATE OR REPLACE."""
    path = MIGRATIONS / "2026_12_07_0200-0013_policy_views.py"
    spec = importlib.util.spec_from_file_location("policy_views_0013", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    views = [v for v in module.VIEWS if "CREATE VIEW" in v]
    assert len(views) == len(POLICY_VIEWS)
    return [v.replace("CREATE VIEW", "CREATE OR REPLACE VIEW") for v in views]


VISIBLE = """
SELECT (SELECT array_agg(id ORDER BY id) FROM users), (SELECT array_agg(id ORDER BY id) FROM teams),
       (SELECT array_agg((team_id, user_id)::text ORDER BY team_id, user_id) FROM team_members)
"""


def test_the_portable_views_a_migration_creates_give_the_same_rows_without_recursion(
    team: dict[str, Any], clean_db: Database, raw_conn: psycopg.Connection[Any]
) -> None:
    """Migration 0013's views before roles setup hands them over: owned by the migrating role,
    which is under RLS, they must not recurse into team_members' policy and must show what the
    planned form shows (one transaction as the superuser, rolled back)."""
    make_team(clean_db, owners=[team["outsider"]])
    conn = raw_conn  # the superuser, in a transaction rolled back at the end
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE dbops_app")
        conn.execute(ACTOR.replace("false", "true"), {"id": str(team["member"])})
        planned = conn.execute(VISIBLE).fetchone()
        conn.execute("RESET ROLE")
        for name in POLICY_VIEWS:
            conn.execute(f"ALTER VIEW {name} OWNER TO {ROLE_NAMES['owner']}")
        for statement in _portable_views():
            conn.execute(statement)
        conn.execute("SET LOCAL ROLE dbops_app")
        portable = conn.execute(VISIBLE).fetchone()
        conn.execute(f"SET LOCAL ROLE {ROLE_NAMES['owner']}")  # the owner itself: no recursion
        as_owner = conn.execute(VISIBLE).fetchone()
    assert planned is not None
    assert planned[1] == [team["team"]]
    assert sorted(planned[0]) == sorted([team["owner"], team["member"], team["other"]])
    assert portable == planned == as_owner


@pytest.fixture
def restore_roles(db: Database) -> Iterator[None]:
    yield
    setup_roles(db, ROLE_PASSWORDS)  # removes whatever a test left on the roles


def test_role_defaults_set_by_the_app_are_ignored_reported_and_removed(
    team: dict[str, Any],
    as_role: Any,
    db: Database,
    pg_cluster: EmbeddedCluster,
    restore_roles: None,
) -> None:
    app = as_role("app")
    app.execute(f"ALTER ROLE {ROLE_NAMES['app']} SET role = '{SYSTEM_ROLE}'")
    app.execute(f"ALTER ROLE {ROLE_NAMES['app']} SET statement_timeout = 1")
    app.execute(f"ALTER ROLE {ROLE_NAMES['app']} SET row_security = off")
    # A plain new session would now bypass RLS: the threat is real...
    raw = psycopg.connect(to_libpq_url(role_url(pg_cluster, "app")), autocommit=True)
    with raw:
        assert raw.execute("SELECT current_user").fetchone() == (SYSTEM_ROLE,)
    # ...but dbops' connections start as the login role, with policies and their timeouts.
    settings = make_settings(role_url(pg_cluster, "app"))
    with open_database(settings, role_url(pg_cluster, "app")) as app_db, app_db.read() as conn:
        row = conn.execute(
            "SELECT current_user::text, "
            "(SELECT setting FROM pg_settings WHERE name = 'statement_timeout'), "
            "current_setting('row_security'), (SELECT count(*) FROM users)"
        ).fetchone()
        assert row == (ROLE_NAMES["app"], str(settings.statement_timeout_ms), "on", 0)
    # The check sees them (critical, one finding per setting).
    snap = collect_snapshot(db, make_settings(db.dsn.sqlalchemy))
    assert snap.database is not None
    assert snap.database.role_defaults is not None
    assert {d.setting for d in snap.database.role_defaults} == {
        f"role={SYSTEM_ROLE}",
        "statement_timeout=1",
        "row_security=off",
    }
    critical = [
        f for f in evaluate(snap, make_settings(db.dsn.sqlalchemy)) if f.check == "role_defaults"
    ]
    assert [str(f.severity) for f in critical] == ["critical"] * 3
    # The setup removes them and says which; the read-only role keeps its own default.
    report = setup_roles(db, ROLE_PASSWORDS)
    assert sorted(report.defaults_removed) == sorted(
        [
            f"dbops_app: role={SYSTEM_ROLE}",
            "dbops_app: statement_timeout=1",
            "dbops_app: row_security=off",
        ]
    )
    with db.connection() as conn:
        left = conn.execute(
            "SELECT setrole::regrole::text, setconfig FROM pg_db_role_setting "
            "WHERE setrole::regrole::text = ANY(%s)",
            (list(ALL_ROLES),),
        ).fetchall()
    assert left == [(ROLE_NAMES["readonly"], ["default_transaction_read_only=on"])]
    snap = collect_snapshot(db, make_settings(db.dsn.sqlalchemy))
    assert snap.database is not None
    assert snap.database.role_defaults == ()
