"""Rules every service shares about who may change a team: the team lock, roles, owners.

* Every change of a team (its row, members or invitations) first locks the team row with
  :data:`LOCK_TEAM_SQL` (``SELECT ... FOR UPDATE``) through :func:`lock_team`, which
  serializes all changes of one team, then locks the owner rows and the rows of the users the
  change is about.
* A live team never ends with zero live owners (:meth:`TeamState.require_owner_left`); removing
  a user checks every team it belongs to under the same locks
  (:func:`ensure_not_last_owner_anywhere`). A soft-deleted user who still has an OWNER row is
  not an owner.
* :func:`load_role` is the hot role check (one prepared statement over an autocommit pooled
  connection, read through the cache under :func:`~dbops.services._keys.role_key`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row, scalar_row

from dbops.core.ownership import SOLE_OWNERS_SQL
from dbops.db.engine import Database
from dbops.errors import Conflict, Forbidden, NotFound
from dbops.models.base import Role
from dbops.services._base import Actor, reading
from dbops.services._cache import QueryCache, cached, keep, peek
from dbops.services._keys import role_key
from dbops.services._query import fetch_all, fetch_one
from dbops.services._visibility import TEAM_NOT_FOUND

__all__ = [
    "DELETED_TEAM_NOT_FOUND",
    "LOCK_TEAM_SQL",
    "MEMBERSHIP_ROW",
    "SELECT_ROLE_SQL",
    "TeamMembership",
    "TeamState",
    "conflict_if_member",
    "ensure_not_last_owner_anywhere",
    "insert_member",
    "load_role",
    "load_role_seen_by",
    "lock_team",
    "remove_user_memberships",
    "require_role",
]

#: The hot role check: live team, live user. Kept constant so psycopg prepares it per connection.
SELECT_ROLE_SQL = """
SELECT m.role
FROM team_members AS m
JOIN teams AS t ON t.id = m.team_id
JOIN users AS u ON u.id = m.user_id
WHERE m.team_id = %(team_id)s
  AND m.user_id = %(user_id)s
  AND t.deleted_at IS NULL
  AND u.deleted_at IS NULL
"""

#: A user actor's own role and another user's role in the same team, in one round trip and one
#: scan: the two memberships through pk_team_members, each table read once (under row-level
#: security each table reference costs its policy: two sub-selects paid them twice). Always
#: one row; a role is NULL where that membership (live team, live user) does not exist.
SELECT_OWN_AND_ROLE_SQL = """
SELECT max(m.role) FILTER (WHERE m.user_id = %(actor_id)s) AS own,
       max(m.role) FILTER (WHERE m.user_id = %(user_id)s) AS theirs
FROM team_members AS m
JOIN teams AS t ON t.id = m.team_id
JOIN users AS u ON u.id = m.user_id
WHERE m.team_id = %(team_id)s
  AND m.user_id = ANY (ARRAY[%(actor_id)s, %(user_id)s])
  AND t.deleted_at IS NULL
  AND u.deleted_at IS NULL
"""

#: The one team lock: first statement of every change of a team (live or soft-deleted).
LOCK_TEAM_SQL = """
SELECT id, slug, deleted_at FROM teams WHERE id = %(team_id)s FOR UPDATE
"""

#: Run after LOCK_TEAM_SQL: the live owners plus the rows of the users a write is about, locked.
LOCK_TEAM_MEMBERS_SQL = """
SELECT m.team_id, m.user_id, m.role, m.created_at AS joined_at
FROM team_members AS m
JOIN users AS u ON u.id = m.user_id
WHERE m.team_id = %(team_id)s
  AND u.deleted_at IS NULL
  AND (m.role = 'OWNER' OR m.user_id = ANY(%(user_ids)s))
FOR UPDATE OF m
"""

INSERT_MEMBER_SQL = """
INSERT INTO team_members (team_id, user_id, role)
VALUES (%(team_id)s, %(user_id)s, %(role)s::role_enum)
ON CONFLICT (team_id, user_id) DO NOTHING
RETURNING team_id, user_id, role, created_at AS joined_at
"""

#: Removal of a user: its row first (``FOR UPDATE`` waits for, and then blocks, new memberships).
LOCK_USER_SQL = "SELECT id FROM users WHERE id = %(user_id)s FOR UPDATE"

#: Then every live team the user belongs to, in id order so that two removals cannot deadlock.
LOCK_TEAMS_OF_USER_SQL = """
SELECT t.id
FROM teams AS t
WHERE t.deleted_at IS NULL
  AND t.id IN (SELECT m.team_id FROM team_members AS m WHERE m.user_id = %(user_id)s)
ORDER BY t.id
FOR UPDATE OF t
"""


DELETE_MEMBERSHIPS_OF_USER_SQL = """
DELETE FROM team_members WHERE user_id = %(user_id)s RETURNING team_id
"""

DELETED_TEAM_NOT_FOUND = "no deleted team with this id"
ONLY_OWNERS = "only an owner of the team can change its members"
LAST_OWNER = "a team must keep at least one owner: make another member an owner first"

RANK = {Role.MEMBER: 1, Role.OWNER: 2}


@dataclass(frozen=True)
class TeamMembership:
    """One membership: who is in which team, with which role, since when."""

    team_id: uuid.UUID
    user_id: uuid.UUID
    role: Role
    joined_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))  # psycopg hands the enum over as text


@dataclass(frozen=True)
class _TeamRow:
    id: uuid.UUID
    slug: str
    deleted_at: datetime | None


_TEAM_ROW = class_row(_TeamRow)
MEMBERSHIP_ROW = class_row(TeamMembership)


@dataclass(frozen=True)
class TeamState:
    """Locked snapshot of a team taken by :func:`lock_team`: its owners and some members' roles."""

    team_id: uuid.UUID
    slug: str
    owners: frozenset[uuid.UUID]
    roles: dict[uuid.UUID, TeamMembership]

    def role(self, user_id: uuid.UUID | None) -> Role | None:
        """The role of ``user_id`` if it was asked for (or is an owner), else None."""
        found = self.roles.get(user_id) if user_id is not None else None
        return found.role if found else None

    def require_owner(
        self, actor: Actor, *, hidden: str = TEAM_NOT_FOUND, forbidden: str = ONLY_OWNERS
    ) -> None:
        """Pass for system actors and owners; NotFound(``hidden``) for non-members.

        ``hidden`` must be the message the call gives when the row does not exist at all
        (docs/permissions.md); a member who is not an owner gets Forbidden(``forbidden``).
        """
        if actor.is_system:
            return
        role = self.role(actor.user_id)
        if role is None:
            raise NotFound(hidden)
        if role is not Role.OWNER:
            raise Forbidden(forbidden)

    def require_owner_left(
        self, *, removed: Iterable[uuid.UUID] = (), added: Iterable[uuid.UUID] = ()
    ) -> None:
        """Forbidden unless an owner is left once ``removed`` lose and ``added`` gain OWNER."""
        if not (self.owners - set(removed)) | set(added):
            raise Forbidden(LAST_OWNER)


def lock_team(
    conn: psycopg.Connection[Any],
    team_id: uuid.UUID,
    user_ids: Iterable[uuid.UUID | None],
    *,
    deleted: bool = False,
) -> TeamState:
    """Lock a team and its owner rows (plus the rows of ``user_ids``).

    Must run inside a transaction, before any change to the team or its members or
    invitations: the team row lock is what makes concurrent changes of one team run one after
    the other.

    Raises:
        NotFound: no live team with this id (no soft-deleted one, with ``deleted=True``).
    """
    team = fetch_one(conn, LOCK_TEAM_SQL, _TEAM_ROW, {"team_id": team_id})
    if team is None or (team.deleted_at is not None) != deleted:
        raise NotFound(DELETED_TEAM_NOT_FOUND if deleted else TEAM_NOT_FOUND)
    asked = [u for u in user_ids if u is not None]
    rows = fetch_all(
        conn, LOCK_TEAM_MEMBERS_SQL, MEMBERSHIP_ROW, {"team_id": team_id, "user_ids": asked}
    )
    return TeamState(
        team_id=team_id,
        slug=team.slug,
        owners=frozenset(m.user_id for m in rows if m.role is Role.OWNER),
        roles={m.user_id: m for m in rows},
    )


def insert_member(
    conn: psycopg.Connection[Any], team_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> TeamMembership | None:
    """Insert a membership (after :func:`lock_team`); None if the user is a member already."""
    params = {"team_id": team_id, "user_id": user_id, "role": role}
    return fetch_one(conn, INSERT_MEMBER_SQL, MEMBERSHIP_ROW, params)


def ensure_not_last_owner_anywhere(
    conn: psycopg.Connection[Any], user_id: uuid.UUID
) -> list[uuid.UUID]:
    """Forbidden if ``user_id`` is the last live owner of any live team; else lock for removal.

    Call it inside the transaction that removes (or soft-deletes) the user, before the change.
    It locks the user row (``FOR UPDATE``: no membership can be added to the user until the
    transaction ends) and then every live team the user belongs to, in id order, the same team
    lock every membership write takes, so no concurrent demotion can slip in between the check
    and the removal. Co-owners who are soft-deleted do not count. Returns the ids of the teams.
    """
    params = {"user_id": user_id}
    conn.execute(LOCK_USER_SQL, params)
    team_ids = fetch_all(conn, LOCK_TEAMS_OF_USER_SQL, scalar_row, params)
    sole = conn.execute(SOLE_OWNERS_SQL, {"ids": [user_id]}).fetchone()
    slugs: list[str] = list(sole[2]) if sole is not None else []
    if slugs:
        raise Forbidden(
            "the user is the last owner of team(s) "
            + ", ".join(slugs)
            + ": transfer ownership or delete the team first"
        )
    return team_ids


def remove_user_memberships(conn: psycopg.Connection[Any], user_id: uuid.UUID) -> list[uuid.UUID]:
    """Delete every membership of ``user_id`` inside the caller's transaction.

    Runs :func:`ensure_not_last_owner_anywhere` first (Forbidden if the user is the last owner
    of a live team). Returns the ids of the teams the user left: after its commit, the caller
    deletes ``role_key(team_id, user_id)`` for each of them.
    """
    ensure_not_last_owner_anywhere(conn, user_id)
    return fetch_all(conn, DELETE_MEMBERSHIPS_OF_USER_SQL, scalar_row, {"user_id": user_id})


def load_role(
    db: Database, cache: QueryCache | None, actor: Actor, team_id: uuid.UUID, user_id: uuid.UUID
) -> Role | None:
    """The role of ``user_id`` in ``team_id`` (None: not a live member of a live team).

    Read through ``cache`` under :func:`role_key`: one round trip on a miss, none on a hit.
    """

    def load() -> Role | None:
        params = {"team_id": team_id, "user_id": user_id}
        with reading(db, actor) as conn:
            row = conn.execute(SELECT_ROLE_SQL, params).fetchone()
        return None if row is None else Role(row[0])

    if cache is None:
        return load()
    return cached(cache, role_key(team_id, user_id), load, str, Role)


def load_role_seen_by(
    db: Database, cache: QueryCache | None, actor: Actor, team_id: uuid.UUID, user_id: uuid.UUID
) -> Role | None:
    """The role of ``user_id`` in ``team_id`` as the user ``actor`` may learn it.

    None unless the actor is itself a live member of the team (a non-member learns nothing).

    Both answers go through ``cache`` under :func:`role_key`. With the actor's own role cached
    this is :func:`load_role` for ``user_id``; without it one statement reads both (one round
    trip where two reads took two). The other user's role is stored only when the actor is a
    member: under row-level security a non-member reads no membership of the team, so its
    "absent" is not everyone's answer.
    """
    own_id = actor.user_id
    if own_id is None:
        raise ValueError("load_role_seen_by is for user actors")
    own_key, their_key = role_key(team_id, own_id), role_key(team_id, user_id)
    generations = (0, 0)
    if cache is not None:
        found, own = peek(cache, own_key, Role)
        if found:
            return None if own is None else load_role(db, cache, actor, team_id, user_id)
        generations = (cache.generation(own_key), cache.generation(their_key))
    params = {"team_id": team_id, "actor_id": own_id, "user_id": user_id}
    with reading(db, actor) as conn:
        row = conn.execute(SELECT_OWN_AND_ROLE_SQL, params).fetchone()
    assert row is not None  # an aggregate without GROUP BY: always one row
    own, theirs = (None if value is None else Role(value) for value in row)
    if cache is not None:
        keep(cache, own_key, own, str, generations[0])
        if own is not None:
            keep(cache, their_key, theirs, str, generations[1])
    return None if own is None else theirs


def require_role(
    db: Database, cache: QueryCache | None, actor: Actor, team_id: uuid.UUID, minimum: Role
) -> Role:
    """The actor's role in the team if it is at least ``minimum`` (system actors: OWNER).

    Raises NotFound for a non-member (the team's existence is not revealed) and Forbidden for a
    member whose role is too low.
    """
    if actor.is_system:
        return Role.OWNER
    assert actor.user_id is not None
    role = load_role(db, cache, actor, team_id, actor.user_id)
    if role is None:
        raise NotFound(TEAM_NOT_FOUND)
    if RANK[role] < RANK[minimum]:
        raise Forbidden(f"this needs the {minimum.value} role in the team")
    return role


def conflict_if_member(added: TeamMembership | None, message: str) -> TeamMembership:
    """``added`` (from :func:`insert_member`), or Conflict(field="user_id") when it is None."""
    if added is None:
        raise Conflict(message, field="user_id")
    return added
