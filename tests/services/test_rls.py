"""Row-level security and dbops' roles, proven against the server with raw SQL.

The services are not trusted here: each test connects as one of dbops' roles and runs SQL
that skips every application check, so what passes is what the database itself enforces
(migration 0008, ``dbops.ops.roles``, docs/decisions/0007-row-level-security.md).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from dbops.config import to_libpq_url
from dbops.db import Database, EmbeddedCluster, open_database
from dbops.errors import InvalidInput
from dbops.models import Role
from dbops.ops.roles import ROLE_NAMES, RoleName
from dbops.services._base import Actor, reading, unit_of_work
from dbops.services.users import SELECT_USER_BY_EMAIL_SQL, SELECT_VISIBLE_USER_BY_EMAIL_SQL
from tests.fixtures.bouncer import bouncer_url
from tests.fixtures.db import make_settings, role_url
from tests.services._helpers import add_member, make_team, make_user

ACTOR = """
SELECT set_config('app.actor_kind', %(kind)s, false), set_config('app.actor_id', %(id)s, false)
"""
COUNTS = """
SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM teams),
       (SELECT count(*) FROM team_members), (SELECT count(*) FROM invitations)
"""


@dataclass
class Tenants:
    """Two teams with one owner each, and a user in no team."""

    alice: uuid.UUID
    bob: uuid.UUID
    loner: uuid.UUID
    team_a: uuid.UUID
    team_b: uuid.UUID


@pytest.fixture
def tenants(clean_db: Database) -> Tenants:
    alice, bob, loner = make_user(clean_db), make_user(clean_db), make_user(clean_db)
    team_a, team_b = make_team(clean_db, owners=[alice]), make_team(clean_db, owners=[bob])
    return Tenants(alice, bob, loner, team_a, team_b)


@pytest.fixture
def as_role(pg_cluster: EmbeddedCluster, migrated: str) -> Iterator[Any]:
    """``as_role("app")``: a raw autocommit psycopg connection as one of dbops' roles."""
    opened: list[psycopg.Connection[Any]] = []

    def connect(role: RoleName) -> psycopg.Connection[Any]:
        conn = psycopg.connect(to_libpq_url(role_url(pg_cluster, role)), autocommit=True)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


def _act(conn: psycopg.Connection[Any], kind: str = "", user: uuid.UUID | None = None) -> None:
    conn.execute(ACTOR, {"kind": kind, "id": "" if user is None else str(user)})


def _counts(conn: psycopg.Connection[Any]) -> tuple[int, ...]:
    row = conn.execute(COUNTS).fetchone()
    assert row is not None
    return tuple(row)


# -- reads ---------------------------------------------------------------------------------------


def test_no_actor_sees_zero_rows(tenants: Tenants, as_role: Any) -> None:
    app = as_role("app")
    assert _counts(app) == (0, 0, 0, 0)
    _act(app, "user", None)  # a user kind without an id is no actor either
    assert _counts(app) == (0, 0, 0, 0)
    _act(app, "System", None)  # the system actor is spelled exactly
    assert _counts(app) == (0, 0, 0, 0)
    # For the app role a system actor is its switch to dbops_system: the setting alone is
    # not enough (the a_system_* policies serve only the owner that ran the migration).
    _act(app, "system", None)
    assert _counts(app) == (0, 0, 0, 0)


def test_a_system_actor_is_explicit_and_sees_every_row(tenants: Tenants, as_role: Any) -> None:
    app = as_role("app")
    app.execute("SET ROLE dbops_system")  # what the services send for Actor.system(...)
    assert _counts(app) == (3, 2, 2, 0)
    app.execute("RESET ROLE")
    assert _counts(app) == (0, 0, 0, 0)


def test_only_the_app_role_may_switch_to_the_system_role(as_role: Any) -> None:
    for role in ("readonly", "monitor", "owner"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_role(role).execute("SET ROLE dbops_system")


def test_a_user_sees_their_team_themselves_and_teammates_only(
    tenants: Tenants, as_role: Any, clean_db: Database
) -> None:
    add_member(clean_db, tenants.team_a, tenants.loner, Role.MEMBER)
    app = as_role("app")
    _act(app, "user", tenants.alice)
    teams = {r[0] for r in app.execute("SELECT id FROM teams")}
    assert teams == {tenants.team_a}
    users = {r[0] for r in app.execute("SELECT id FROM users")}
    assert users == {tenants.alice, tenants.loner}
    # Cross-tenant reads by key return nothing, whatever the query.
    assert app.execute("SELECT * FROM teams WHERE id = %s", (tenants.team_b,)).fetchall() == []
    assert app.execute("SELECT * FROM users WHERE id = %s", (tenants.bob,)).fetchall() == []
    rows = app.execute("SELECT * FROM team_members WHERE team_id = %s", (tenants.team_b,))
    assert rows.fetchall() == []
    # Bob in turn sees only his own.
    _act(app, "user", tenants.bob)
    assert {r[0] for r in app.execute("SELECT id FROM teams")} == {tenants.team_b}
    assert {r[0] for r in app.execute("SELECT id FROM users")} == {tenants.bob}


# -- writes --------------------------------------------------------------------------------------


def test_cross_tenant_writes_fail_for_the_app_role(tenants: Tenants, as_role: Any) -> None:
    app = as_role("app")
    _act(app, "user", tenants.alice)
    b = {"team": tenants.team_b, "bob": tenants.bob, "alice": tenants.alice}
    assert app.execute("UPDATE teams SET name = 'mine' WHERE id = %(team)s", b).rowcount == 0
    assert app.execute("DELETE FROM team_members WHERE team_id = %(team)s", b).rowcount == 0
    assert app.execute("UPDATE users SET display_name = 'x' WHERE id = %(bob)s", b).rowcount == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        app.execute(
            "INSERT INTO team_members (team_id, user_id, role) "
            "VALUES (%(team)s, %(alice)s, 'OWNER')",
            b,
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        app.execute(
            "INSERT INTO invitations (team_id, email, role, token_hash, expires_at) "
            "VALUES (%(team)s, 'x@example.com', 'MEMBER', '\\x00', now())",
            b,
        )
    # Moving one's own team's row into the other tenant fails the WITH CHECK.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        app.execute(
            "UPDATE team_members SET team_id = %(team)s WHERE user_id = %(alice)s",
            b,
        )
    # Users and teams are created by system steps only.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        app.execute("INSERT INTO teams (name, slug) VALUES ('T', 'rls-t')")
    app.execute("SET ROLE dbops_system")
    assert app.execute("SELECT name FROM teams WHERE id = %(team)s", b).fetchone() not in (
        None,
        ("mine",),
    )


def test_a_user_may_change_their_own_rows(tenants: Tenants, as_role: Any) -> None:
    app = as_role("app")
    _act(app, "user", tenants.alice)
    params = {"team": tenants.team_a, "alice": tenants.alice}
    assert app.execute("UPDATE teams SET name = 'A2' WHERE id = %(team)s", params).rowcount == 1
    sql = "UPDATE users SET display_name = 'Al' WHERE id = %(alice)s"
    assert app.execute(sql, params).rowcount == 1


# -- roles ---------------------------------------------------------------------------------------

DDL = (
    "CREATE TABLE rls_probe (id int)",
    "ALTER TABLE teams ADD COLUMN probe int",
    "DROP POLICY tenant_select ON teams",
    "ALTER TABLE users NO FORCE ROW LEVEL SECURITY",
    "CREATE SCHEMA rls_probe",
)


@pytest.mark.parametrize("role", ["app", "readonly", "monitor"])
@pytest.mark.parametrize("statement", DDL)
def test_only_the_owner_changes_the_schema(as_role: Any, role: RoleName, statement: str) -> None:
    conn = as_role(role)
    # In a read-write transaction, so the read-only role is refused by privilege, not only
    # by its default_transaction_read_only.
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ WRITE")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


@pytest.mark.parametrize("statement", DDL)
def test_the_owner_may_change_the_schema(as_role: Any, statement: str) -> None:
    owner = as_role("owner")
    with owner.transaction(force_rollback=True):
        owner.execute(statement)


def test_role_attributes_and_ownership(db: Database) -> None:
    with db.connection() as conn:
        attrs = {
            name: (superuser, bypass, createrole)
            for name, superuser, bypass, createrole in conn.execute(
                "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole FROM pg_roles "
                "WHERE rolname = ANY(%s)",
                ([*ROLE_NAMES.values(), "dbops_system"],),
            )
        }
        owned = conn.execute(
            "SELECT c.relname, r.rolname FROM pg_class AS c JOIN pg_roles AS r "
            "ON r.oid = c.relowner WHERE c.relname = ANY(%s)",
            (["users", "teams", "team_members", "invitations"],),
        ).fetchall()
        forced = conn.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relname IN ('users', 'teams', 'team_members', 'invitations') "
            "AND relnamespace = 'public'::regnamespace"
        ).fetchall()
    assert attrs["dbops_app"] == (False, False, False)
    assert attrs["dbops_owner"] == (False, False, False)
    assert attrs["dbops_monitor"] == (False, False, False)
    assert attrs["dbops_readonly"] == (False, True, False)
    assert attrs["dbops_system"] == (False, True, False)
    assert {owner for _, owner in owned} == {"dbops_owner"}
    assert all(enabled and force for _, enabled, force in forced), forced


def test_the_owner_is_held_by_the_policies_too(tenants: Tenants, as_role: Any) -> None:
    owner = as_role("owner")
    assert _counts(owner) == (0, 0, 0, 0)  # FORCE: owning the tables is no bypass
    _act(owner, "system")
    assert _counts(owner)[:2] == (3, 2)


def test_the_readonly_role_reads_across_tenants_but_no_secret_and_writes_nothing(
    tenants: Tenants, as_role: Any
) -> None:
    ro = as_role("readonly")
    assert _counts(ro)[:2] == (3, 2)  # an operator's view: BYPASSRLS
    assert len(ro.execute("SELECT email FROM users").fetchall()) == 3
    for secret in ("password_hash", "phone_ciphertext", "phone_blind_index"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            ro.execute(f"SELECT {secret} FROM users")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        ro.execute("SELECT token_hash FROM invitations")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        ro.execute("SELECT * FROM audit.record")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        ro.execute("UPDATE teams SET name = 'x'")
    with ro.transaction(force_rollback=True):
        ro.execute("SET TRANSACTION READ WRITE")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            ro.execute("UPDATE teams SET name = 'x'")


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT count(*) FROM audit.record",
        "UPDATE audit.record SET actor_name = 'x'",
        "DELETE FROM audit.record",
        "SELECT count(*) FROM archive.users",
    ],
)
def test_the_app_role_cannot_touch_the_audit_trail_or_the_archive(
    as_role: Any, statement: str
) -> None:
    app = as_role("app")
    app.execute("SET ROLE dbops_system")  # not even as a system actor
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute(statement)


def test_the_monitor_role_reads_statistics_but_no_user_row(tenants: Tenants, as_role: Any) -> None:
    mon = as_role("monitor")
    for table in ("users", "teams", "team_members", "invitations"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            mon.execute(f"SELECT * FROM {table}")
    assert mon.execute("SELECT count(*) FROM pg_stat_statements").fetchone() is not None
    assert mon.execute("SELECT count(*) FROM pg_stat_user_tables").fetchone() is not None


# -- the actor on pooled connections -------------------------------------------------------------

CURRENT = """
SELECT coalesce(current_setting('app.actor_kind', true), ''),
       coalesce(current_setting('app.actor_id', true), ''),
       (SELECT count(*) FROM teams)
"""


@pytest.mark.parametrize("via", ["pool", "pgbouncer"])
def test_no_actor_leaks_across_pooled_connections_under_concurrency(
    via: str, tenants: Tenants, pg_cluster: EmbeddedCluster, clean_db: Database, request: Any
) -> None:
    """Eight threads, two server connections: every borrower sees exactly its own actor.

    Service reads, units of work (transaction-local) and raw borrowers that name no actor
    (``read()``, ``connection()``) interleave on the same two server connections; a raw
    borrower must find no actor, a user only their team. ``pool``: dbops' pool of two
    connections (service reads carry the actor on the session). ``pgbouncer``: eight client
    connections through a real PgBouncer in transaction pooling with two server connections
    and prepared statements off: each transaction may land on a connection another client
    used a moment before, and nothing may be left on it.
    """
    if via == "pool":
        url = role_url(pg_cluster, "app")
        settings = make_settings(url, pool_min_size=2, pool_max_size=2)
    else:
        url = bouncer_url(request.getfixturevalue("bouncer"))
        settings = make_settings(url, pool_min_size=8, pool_max_size=8, prepared_statements=False)
    shared = open_database(settings, url)
    users = [tenants.alice, tenants.bob, tenants.loner]
    expected_teams = {tenants.alice: 1, tenants.bob: 1, tenants.loner: 0}
    problems: list[str] = []
    barrier = threading.Barrier(8, timeout=30)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(60):
            user = users[(n + i) % 3]
            actor = Actor.user(user)
            step = (n + i) % 4
            try:
                if step == 0:
                    with reading(shared, actor) as conn:
                        row = conn.execute(CURRENT).fetchone()
                    want: tuple[Any, ...] = ("user", str(user), expected_teams[user])
                elif step == 1:
                    with unit_of_work(shared, actor) as uow:
                        row = uow.conn.execute(CURRENT).fetchone()
                    want = ("user", str(user), expected_teams[user])
                elif step == 2:
                    with shared.read() as conn:
                        row = conn.execute(CURRENT).fetchone()
                    want = ("", "", 0)
                else:
                    with shared.connection() as conn:
                        row = conn.execute(CURRENT).fetchone()
                    want = ("", "", 0)
                if row != want:
                    problems.append(f"thread {n} step {step}: got {row}, wanted {want}")
            except Exception as exc:  # pragma: no cover - reported below
                problems.append(f"thread {n}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        shared.close()
    assert problems == []


def test_a_rolled_back_read_cannot_bring_an_actor_back(
    tenants: Tenants, pg_cluster: EmbeddedCluster
) -> None:
    """A session actor is cleared before a transaction starts, never inside one."""
    url = role_url(pg_cluster, "app")
    single = open_database(make_settings(url, pool_min_size=1, pool_max_size=1), url)
    try:
        with reading(single, Actor.user(tenants.alice)):
            pass
        seen: list[Any] = []

        def fail() -> None:
            with single.connection() as conn:
                seen.append(conn.execute(CURRENT).fetchone())
                raise RuntimeError("roll back")

        with pytest.raises(RuntimeError):
            fail()
        assert seen == [("", "", 0)]
        with single.read() as conn:
            assert conn.execute(CURRENT).fetchone() == ("", "", 0)
    finally:
        single.close()


def test_without_prepared_statements_a_read_leaves_no_actor_on_the_session(
    tenants: Tenants, pg_cluster: EmbeddedCluster
) -> None:
    """``prepared_statements`` off means a transaction-pooling bouncer may hand the server
    connection to another client after each transaction: reads must keep no session state."""
    url = role_url(pg_cluster, "app")
    settings = make_settings(url, prepared_statements=False, pool_min_size=1, pool_max_size=1)
    bouncer = open_database(settings, url)
    try:
        with reading(bouncer, Actor.user(tenants.alice)) as conn:
            assert conn.execute(CURRENT).fetchone() == ("user", str(tenants.alice), 1)
        with bouncer.pool.connection() as raw:  # the same connection, past dbops' tracking
            assert raw.execute(CURRENT).fetchone() == ("", "", 0)
        with (
            pytest.raises(InvalidInput),  # translated; the transaction rolled back
            reading(bouncer, Actor.user(tenants.bob)) as conn,
        ):
            conn.execute("SELECT 1 / 0")
        with bouncer.pool.connection() as raw:
            assert raw.execute(CURRENT).fetchone() == ("", "", 0)
    finally:
        bouncer.close()


def test_roles_are_named_in_one_place() -> None:
    assert set(ROLE_NAMES) == {"owner", "app", "readonly", "monitor"}
    assert all(name.startswith("dbops_") for name in ROLE_NAMES.values())


def test_a_failed_login_role_url_never_prints_its_password(pg_cluster: EmbeddedCluster) -> None:
    url = f"postgresql://dbops_app:wrong-secret@127.0.0.1:{pg_cluster.port}/dbops_test"
    with pytest.raises(Exception) as err:
        open_database(make_settings(url), url)
    assert "wrong-secret" not in str(err.value)


# -- caches shared by every actor ----------------------------------------------------------------


def test_a_strangers_read_never_poisons_or_leaks_through_the_cache(
    tenants: Tenants, clean_db: Database
) -> None:
    """Cached answers are shared across actors: a stranger's RLS-filtered miss must not be
    stored for the member, and a member's hit must not reach the stranger."""
    from dbops.errors import NotFound
    from dbops.services import MemoryCache
    from dbops.services.memberships import MembershipService
    from dbops.services.teams import TeamService

    cache = MemoryCache(ttl_s=300)
    members, teams = MembershipService(clean_db, cache), TeamService(clean_db, cache)
    alice, bob = Actor.user(tenants.alice), Actor.user(tenants.bob)
    slug = teams.get(Actor.system("tests"), tenants.team_a).slug
    # Bob first: he learns nothing, and nothing he read is cached for Alice.
    assert members.role_of(bob, tenants.team_a, tenants.alice) is None
    with pytest.raises(NotFound):
        teams.get_by_slug(bob, slug)
    assert members.role_of(alice, tenants.team_a, tenants.alice) is Role.OWNER
    assert teams.get_by_slug(alice, slug).id == tenants.team_a
    # Alice's answers are cached now; Bob still gets nothing.
    assert members.role_of(bob, tenants.team_a, tenants.alice) is None
    with pytest.raises(NotFound):
        teams.get_by_slug(bob, slug)


# -- plans: the policy drives the scan -----------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "table"),
    [
        ("teams.SELECT_TEAM_BY_SLUG_SQL", "teams"),
        ("_ownership.SELECT_ROLE_SQL", "team_members"),
        ("users.SELECT_USER_BY_EMAIL_SQL", "users"),
        ("users.SELECT_VISIBLE_USER_BY_EMAIL_SQL", "users"),
    ],
)
def test_a_user_actors_hot_read_is_an_index_scan_driven_by_the_policy(
    tenants: Tenants, as_role: Any, statement: str, table: str
) -> None:
    """Under RLS the key lookups stay index lookups (``=`` on text and uuid is LEAKPROOF).

    The e-mail lookup compares the stored (lowercase) column, not ``lower(email)``: ``lower()``
    is not LEAKPROOF, so under a per-row policy it could only filter a scan of every user
    (migration 0012).
    """
    import importlib

    module_name, constant = statement.split(".")
    module = importlib.import_module(f"dbops.services.{module_name}")
    query = getattr(module, constant)
    params = {
        "email": "nobody@example.com",
        "slug": "nothing",
        "team_id": tenants.team_a,
        "user_id": tenants.alice,
        "id": tenants.alice,
        "actor_id": tenants.alice,
    }
    app = as_role("app")
    _act(app, "user", tenants.alice)
    with app.transaction(force_rollback=True):
        app.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(str(r[0]) for r in app.execute("EXPLAIN " + query, params))
    assert f"Seq Scan on {table}" not in plan, plan
    assert "Index Cond" in plan, plan


# -- cost: a user row's visibility does not grow with the actor's teams ------------------------

BIG_TEAM = 1_500

#: ``n`` users (lowercase e-mails ``big<i>@example.com``) made members of ``team``, in one go.
ADD_BIG_TEAM = """
WITH added AS (
    INSERT INTO users (email, password_hash, display_name)
    SELECT 'big' || i || '@example.com', 'x', 'Big ' || i FROM generate_series(1, %(n)s) AS i
    RETURNING id
)
INSERT INTO team_members (team_id, user_id, role)
SELECT %(team)s, id, 'MEMBER' FROM added
"""
#: Index entries and heap rows read from team_members so far in this transaction (the
#: backend's pending counters: nothing is flushed inside a transaction block).
MEMBERSHIP_ROWS_READ = """
SELECT sum(pg_stat_get_xact_tuples_returned(c.oid) + pg_stat_get_xact_tuples_fetched(c.oid))
FROM pg_class AS c
WHERE c.oid = 'team_members'::regclass
   OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'team_members'::regclass)
"""


def _membership_rows_read(app: psycopg.Connection[Any], actor: uuid.UUID, email: str) -> int:
    """How many membership rows one user-by-email lookup by ``actor`` reads."""
    _act(app, "user", actor)
    params = {"email": email, "actor_id": actor}
    with app.transaction(force_rollback=True):
        before = app.execute(MEMBERSHIP_ROWS_READ).fetchone()
        found = app.execute(SELECT_VISIBLE_USER_BY_EMAIL_SQL, params).fetchall()
        after = app.execute(MEMBERSHIP_ROWS_READ).fetchone()
    assert len(found) == 1
    assert before is not None
    assert after is not None
    return int(after[0]) - int(before[0])


def test_a_user_lookup_reads_as_few_memberships_for_a_member_of_a_big_team(
    tenants: Tenants, as_role: Any, clean_db: Database, raw_conn: psycopg.Connection[Any]
) -> None:
    """The oracle is the same lookup by an actor whose only team has two members.

    0008's policy built the actor's teammates as an array for every statement: for a member
    of a 1,500-member team it read all 1,500 memberships before the one row the lookup wants
    (and then compared the row with each). Keyed by the row (0012), the check reads that
    user's own memberships, whatever the team sizes: the counts must be equal.
    """
    mate_email = f"mate{uuid.uuid4().hex[:8]}@example.com"
    add_member(clean_db, tenants.team_b, make_user(clean_db, email=mate_email), Role.MEMBER)
    raw_conn.execute(ADD_BIG_TEAM, {"n": BIG_TEAM, "team": tenants.team_a})
    raw_conn.commit()
    # Fresh statistics for both lookups: without them the plan (and the rows it reads) hung
    # on whether autovacuum had analyzed the 1,500 new rows yet (35 rows read in one CI run).
    raw_conn.execute("ANALYZE users, team_members")
    raw_conn.commit()
    app = as_role("app")

    small = _membership_rows_read(app, tenants.bob, mate_email)
    big = _membership_rows_read(app, tenants.alice, f"big{BIG_TEAM // 2}@example.com")
    assert 0 < small < 20
    assert big == small
    # Not blind: an actor who shares no team with the row finds nothing.
    _act(app, "user", tenants.bob)
    assert app.execute(SELECT_USER_BY_EMAIL_SQL, {"email": "big1@example.com"}).fetchall() == []
