"""Each team's member count (``team_member_counts``, migration 0014) equals a count of its rows.

The oracle is ``count(*)`` over ``team_members`` per team, as the superuser, after every way
memberships change: the services, hand-written SQL (multi-row, moving, cascades), the seed's
``COPY``, ``TRUNCATE``, concurrent writers. And the counts are no way around the policies: the
app role reads its own teams' counts only and writes none.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest

from dbops.config import to_libpq_url
from dbops.db import Database, EmbeddedCluster
from dbops.db.roles import POLICY_ROLE
from dbops.models import Role
from dbops.ops.roles import COUNT_FUNCTION
from dbops.ops.seed import seed
from dbops.services import Actor, MembershipService, TeamService
from tests.fixtures.db import role_url
from tests.services._helpers import SYSTEM, make_team, make_user

#: Teams whose stored count differs from their rows (no row reads as 0), and rows of no team.
MISCOUNTED = """
SELECT t.id, coalesce(c.members, 0) AS stored, count(m.user_id) AS actual
FROM teams AS t
LEFT JOIN team_member_counts AS c ON c.team_id = t.id
LEFT JOIN team_members AS m ON m.team_id = t.id
GROUP BY t.id, c.members
HAVING coalesce(c.members, 0) <> count(m.user_id)
"""
ORPHANS = "SELECT count(*) FROM team_member_counts WHERE team_id NOT IN (SELECT id FROM teams)"


def _miscounted(db: Database) -> list[tuple[Any, ...]]:
    with db.connection() as conn:
        wrong = conn.execute(MISCOUNTED).fetchall()
        orphans = conn.execute(ORPHANS).fetchone()
    assert orphans == (0,)
    return wrong


def _sql(db: Database, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with db.connection() as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def test_counts_follow_the_services_and_hand_written_sql(clean_db: Database, db: Database) -> None:
    """``clean_db``: the app role under RLS (the services); ``db``: the superuser (raw SQL)."""
    teams, members = TeamService(clean_db), MembershipService(clean_db)
    owner, a, b, c = (make_user(clean_db) for _ in range(4))
    team = teams.create(Actor.user(owner), name="Counted", slug="counted").id
    other = make_team(clean_db, owners=[a])
    assert _miscounted(db) == []
    assert [t.member_count for t in teams.teams_of_user(SYSTEM, owner)] == [1]

    members.add_member(Actor.user(owner), team, a)
    members.add_member(Actor.user(owner), team, b, role=Role.OWNER)
    members.add_member(Actor.user(owner), team, c)
    assert [t.member_count for t in teams.teams_of_user(SYSTEM, owner)] == [4]
    members.change_role(Actor.user(owner), team, c, Role.OWNER)  # an UPDATE that moves nothing
    members.remove_member(Actor.user(owner), team, c)
    members.leave(Actor.user(b), team)
    assert [t.member_count for t in teams.teams_of_user(SYSTEM, owner)] == [2]
    assert _miscounted(db) == []

    # One statement over several teams, both ways; a membership moved by hand.
    bulk = [make_user(clean_db) for _ in range(5)]
    _sql(
        db,
        "INSERT INTO team_members (team_id, user_id) "
        "SELECT t, u FROM unnest(%s::uuid[]) AS t, unnest(%s::uuid[]) AS u",
        ([team, other], bulk),
    )
    assert _miscounted(db) == []
    third = make_team(clean_db)  # no member yet: the move creates its count
    _sql(
        db,
        "UPDATE team_members SET team_id = %s WHERE team_id = %s AND user_id = %s",
        (third, team, a),
    )
    assert _sql(db, "SELECT members FROM team_member_counts WHERE team_id = %s", (third,)) == [(1,)]
    assert _miscounted(db) == []
    _sql(db, "DELETE FROM team_members WHERE user_id = ANY(%s)", (bulk[:3],))
    assert _miscounted(db) == []

    # Cascades: a user deleted for good leaves every team; a team deleted takes its count.
    _sql(db, "DELETE FROM users WHERE id = %s", (bulk[3],))
    assert _miscounted(db) == []
    _sql(db, "DELETE FROM teams WHERE id = %s", (other,))
    assert _sql(db, "SELECT count(*) FROM team_member_counts WHERE team_id = %s", (other,)) == [
        (0,)
    ]
    assert _miscounted(db) == []
    # owner, a (moved away), 5 bulk (3 removed, 1 deleted with its user): owner and one left
    assert [t.member_count for t in teams.teams_of_user(SYSTEM, owner)] == [2]

    _sql(db, "TRUNCATE team_members")
    assert _sql(db, "SELECT count(*) FROM team_member_counts") == [(0,)]
    assert _miscounted(db) == []


def test_the_seed_copy_and_its_replacement_are_counted(clean_db: Database, db: Database) -> None:
    result = seed(db, users=300, teams=40, seed=7)
    assert result.memberships > 40
    assert _miscounted(db) == []
    assert _sql(db, "SELECT sum(members) FROM team_member_counts") == [(result.memberships,)]
    seed(db, users=200, teams=30, seed=8, replace=True)  # DELETEs, then COPY again
    assert _miscounted(db) == []


def test_concurrent_joins_and_leaves_lose_no_count_and_do_not_deadlock(
    clean_db: Database, db: Database, migrated: str
) -> None:
    """Writers whose statements touch the same two teams in opposite orders, many times over
    (the trigger updates counters in team order: without it these deadlock)."""
    first, second = make_team(clean_db), make_team(clean_db)
    users = [make_user(clean_db) for _ in range(40)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def writer(mine: list[uuid.UUID], order: list[uuid.UUID]) -> None:
        try:
            with psycopg.connect(to_libpq_url(migrated)) as conn:
                start.wait()
                for user in mine:  # one statement, both teams, rows in this writer's order
                    conn.execute(
                        "INSERT INTO team_members (team_id, user_id) VALUES (%s, %s), (%s, %s)",
                        (order[0], user, order[1], user),
                    )
                    conn.commit()
                for user in mine[::2]:  # a user leaving both teams, as a cascade would
                    conn.execute("DELETE FROM team_members WHERE user_id = %s", (user,))
                    conn.commit()
        except BaseException as exc:  # reported below: a deadlock must fail the test
            errors.append(exc)

    threads = [
        threading.Thread(
            target=writer,
            args=(users[i::4], [first, second] if i % 2 else [second, first]),
        )
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _miscounted(db) == []
    assert _sql(
        db,
        "SELECT members FROM team_member_counts WHERE team_id = ANY(%s) ORDER BY members",
        ([first, second],),
    ) == [(20,), (20,)]


def test_the_app_reads_its_own_teams_counts_and_writes_none(
    clean_db: Database, db: Database, pg_cluster: EmbeddedCluster
) -> None:
    member, outsider = make_user(clean_db), make_user(clean_db)
    mine = make_team(clean_db, owners=[member])
    theirs = make_team(clean_db, owners=[outsider])
    with psycopg.connect(to_libpq_url(role_url(pg_cluster, "app")), autocommit=True) as app:
        app.execute(
            "SELECT set_config('app.actor_kind', 'user', false), "
            "set_config('app.actor_id', %s, false)",
            (str(member),),
        )
        seen = app.execute("SELECT team_id, members FROM team_member_counts").fetchall()
        assert seen == [(mine, 1)]
        for statement in (
            "UPDATE team_member_counts SET members = 1000",
            "INSERT INTO team_member_counts VALUES (gen_random_uuid(), 1)",
            "DELETE FROM team_member_counts",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner"):
            app.execute("ALTER TABLE team_members DISABLE TRIGGER count_members_inserted")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(
                f"CREATE OR REPLACE FUNCTION {COUNT_FUNCTION} RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$"
            )
    owner, public_execute = _sql(
        db,
        "SELECT proowner::regrole::text, has_function_privilege('public', oid, 'EXECUTE') "
        "FROM pg_proc WHERE oid = %s::regprocedure",
        (COUNT_FUNCTION,),
    )[0]
    assert (owner, public_execute) == (POLICY_ROLE, False)
    assert _sql(db, "SELECT members FROM team_member_counts WHERE team_id = %s", (theirs,)) == [
        (1,)
    ]
