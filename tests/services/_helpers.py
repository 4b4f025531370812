"""Helpers of the service tests: rows inserted with plain SQL, cheap hashing, statement counts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from argon2 import PasswordHasher

from dbops.db import Database
from dbops.db.engine import ActorContext
from dbops.db.roles import SYSTEM_ROLE
from dbops.models import Role
from dbops.services._base import Actor
from dbops.services.invitations import InvitationService
from dbops.services.teams import TeamService
from dbops.services.users import UserService

SYSTEM = Actor.system("tests")
#: argon2id at its cheapest: the tests create many users; the real default is far slower.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "correct horse battery"

#: Every statement this database executed (pg_stat_statements), except the counting itself.
STATEMENT_CALLS = """
SELECT coalesce(sum(calls), 0)::bigint
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%%pg_stat_statements%%'
  AND toplevel  -- not the statements of functions (RLS policies call some)
"""

INSERT_USER = """
INSERT INTO users (email, password_hash, display_name)
VALUES (%(email)s, 'argon2$not-a-real-hash', %(name)s)
RETURNING id
"""
INSERT_TEAM = "INSERT INTO teams (name, slug) VALUES (%(name)s, %(slug)s) RETURNING id"
INSERT_MEMBER = """
INSERT INTO team_members (team_id, user_id, role) VALUES (%(team_id)s, %(user_id)s, %(role)s)
"""
#: ``n`` teams at once, each with every user of ``user_ids`` as an owner (race fixtures).
INSERT_TEAMS_OWNED_BY = """
WITH new_teams AS (
  INSERT INTO teams (name, slug)
  SELECT 'race ' || i, %(prefix)s || '-' || i FROM generate_series(1, %(n)s) AS i
  RETURNING id
), owners AS (
  INSERT INTO team_members (team_id, user_id, role)
  SELECT t.id, u.id, 'OWNER' FROM new_teams AS t CROSS JOIN unnest(%(user_ids)s::uuid[]) AS u(id)
)
SELECT id FROM new_teams ORDER BY id
"""
OWNERS_OF = """
SELECT user_id FROM team_members WHERE team_id = %(team_id)s AND role = 'OWNER' ORDER BY user_id
"""
SOFT_DELETE_USER = "UPDATE users SET deleted_at = now() WHERE id = %(id)s"
SOFT_DELETE_TEAM = "UPDATE teams SET deleted_at = now() WHERE id = %(id)s"


#: ``Database.read(SYSTEM_CONTEXT)``: an autocommit read as an explicit system actor.
SYSTEM_CONTEXT: ActorContext = ("system", "", "tests", SYSTEM_ROLE)
#: The explicit system actor row-level security needs for the helpers' raw SQL (migration 0008).
SET_SYSTEM_ACTOR = (
    "SELECT set_config('role', 'dbops_system', true), "
    "set_config('app.actor_kind', 'system', true), set_config('app.actor_name', 'tests', true)"
)


@contextmanager
def as_system(db: Database) -> Iterator[psycopg.Connection[Any]]:
    """A transaction on ``db`` acting as an explicit system actor (the services' tests run as
    the application role, under row-level security)."""
    with db.connection() as conn:
        conn.execute(SET_SYSTEM_ACTOR)
        yield conn


def unique(prefix: str) -> str:
    """A short unique lowercase word, for emails and slugs."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def make_user(db: Database, email: str | None = None, name: str = "Test User") -> uuid.UUID:
    """A live user; returns its id."""
    with as_system(db) as conn:
        row = conn.execute(
            INSERT_USER, {"email": email or f"{unique('u')}@example.com", "name": name}
        ).fetchone()
    assert row is not None
    return row[0]


def user_email(db: Database, user_id: uuid.UUID) -> str:
    """The stored email of a user."""
    with as_system(db) as conn:
        row = conn.execute("SELECT email FROM users WHERE id = %s", (user_id,)).fetchone()
    assert row is not None
    return str(row[0])


def make_team(
    db: Database,
    owners: Sequence[uuid.UUID] = (),
    members: Sequence[uuid.UUID] = (),
    slug: str | None = None,
) -> uuid.UUID:
    """A live team with the given owners and (plain) members; returns its id."""
    slug = slug or unique("team-")
    with as_system(db) as conn:
        row = conn.execute(INSERT_TEAM, {"name": slug, "slug": slug}).fetchone()
        assert row is not None
        team_id: uuid.UUID = row[0]
        for user_id, role in [(u, Role.OWNER) for u in owners] + [
            (u, Role.MEMBER) for u in members
        ]:
            conn.execute(
                INSERT_MEMBER, {"team_id": team_id, "user_id": user_id, "role": role.value}
            )
    return team_id


def make_teams_owned_by(db: Database, n: int, owners: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """``n`` teams in one statement, each with every user of ``owners`` as an OWNER."""
    with as_system(db) as conn:
        rows = conn.execute(
            INSERT_TEAMS_OWNED_BY,
            {"prefix": unique("race-"), "n": n, "user_ids": list(owners)},
        ).fetchall()
    return [r[0] for r in rows]


def owners_of(db: Database, team_id: uuid.UUID) -> list[uuid.UUID]:
    """The team's OWNER user ids, straight from the table."""
    with as_system(db) as conn:
        return [r[0] for r in conn.execute(OWNERS_OF, {"team_id": team_id}).fetchall()]


def role_in_table(db: Database, team_id: uuid.UUID, user_id: uuid.UUID) -> Role | None:
    """The role column of one membership row (None if there is no row)."""
    with as_system(db) as conn:
        row = conn.execute(
            "SELECT role FROM team_members WHERE team_id = %s AND user_id = %s",
            (team_id, user_id),
        ).fetchone()
    return None if row is None else Role(row[0])


def soft_delete_user(db: Database, user_id: uuid.UUID) -> None:
    """Mark a user deleted."""
    with as_system(db) as conn:
        conn.execute(SOFT_DELETE_USER, {"id": user_id})


def soft_delete_team(db: Database, team_id: uuid.UUID) -> None:
    """Mark a team deleted."""
    with as_system(db) as conn:
        conn.execute(SOFT_DELETE_TEAM, {"id": team_id})


#: The same without ``set_config`` statements (those that put an actor on a connection,
#: decision 0007). pg_stat_statements stores them normalized (``set_config($6, $1, $2)``): the
#: setting names are parameters there, so the function name is what can be matched.
WORK_STATEMENT_CALLS = STATEMENT_CALLS + "  AND query NOT LIKE 'SELECT set_config(%%'\n"


def statement_calls(conn: psycopg.Connection[Any], *, actor_settings: bool = True) -> int:
    """Statements run so far in the test database (needs an autocommit connection).

    ``actor_settings`` false leaves out ``set_config`` statements (the actor's, among others).
    """
    row = conn.execute(STATEMENT_CALLS if actor_settings else WORK_STATEMENT_CALLS).fetchone()
    assert row is not None
    return int(row[0])


def add_member(db: Database, team_id: uuid.UUID, user_id: uuid.UUID, role: Role) -> None:
    """Put a membership row in place directly (the membership service is tested elsewhere)."""
    with as_system(db) as conn:
        conn.execute(INSERT_MEMBER, {"team_id": team_id, "user_id": user_id, "role": role.value})


@dataclass
class World:
    """The services, and Ada (a user actor) who owns team ``acme``: the input tests' start."""

    users: UserService
    teams: TeamService
    invitations: InvitationService
    me: Actor
    user_id: uuid.UUID
    team_id: uuid.UUID


def make_world(db: Database) -> World:
    """Ada (ada@example.com) and her team Acme (``acme``), through the services."""
    users = UserService(db, hasher=FAST_HASHER)
    teams = TeamService(db)
    user = users.create(SYSTEM, email="ada@example.com", password=PASSWORD, display_name="Ada")
    me = Actor.user(user.id)
    team = teams.create(me, name="Acme", slug="acme")
    return World(users, teams, InvitationService(db), me, user.id, team.id)
