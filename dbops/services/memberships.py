"""Team memberships and roles: the cached role check and every membership change.

Rules, enforced inside one transaction per call:

* Only an OWNER of a team changes its membership (add, remove, change role, transfer); any
  member may leave. System actors (jobs, admin CLI) bypass the role rules.
* A live team never ends with zero (live) owners. Every write first locks the team row
  (``SELECT ... FOR UPDATE``), which serializes all membership changes of one team, then locks
  the owner rows and checks that at least one owner is left after the change. Two owners who
  demote or remove each other at the same moment therefore run one after the other, and the
  second sees the first's result.
* A user who is not a (live) member of a live team gets :class:`~dbops.errors.NotFound` for
  the team, so ids of other tenants' teams cannot be probed; a member whose role is too low
  gets :class:`~dbops.errors.Forbidden`.

:meth:`MembershipService.role_of` is the hot read: one prepared statement over an autocommit
pooled connection (one round trip), read through an optional :class:`QueryCache` under
``role:<team_id>:<user_id>``. Every write deletes the keys whose answer it changed, after its
commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.rows import args_row, scalar_row
from pydantic import BaseModel, ConfigDict

from dbops.db.engine import Database
from dbops.errors import Conflict, Forbidden, InvalidInput, NotFound
from dbops.models.base import Role
from dbops.services._base import (
    Actor,
    UnitOfWork,
    check_actor,
    in_transaction,
    reading,
    user_of,
)
from dbops.services._cache import QueryCache, cached
from dbops.services._query import fetch_all, fetch_one
from dbops.services.schemas import validate

__all__ = [
    "INSERT_MEMBER_SQL",
    "ROLE_OF_SQL",
    "MemberView",
    "MembershipService",
    "TeamMembership",
    "check_actor",
    "ensure_not_last_owner_anywhere",
    "remove_user_memberships",
    "role_cache_key",
    "user_of",
]

#: The hot role check: live team, live user. Kept constant so psycopg prepares it per connection.
ROLE_OF_SQL = """
SELECT m.role
FROM team_members AS m
JOIN teams AS t ON t.id = m.team_id
JOIN users AS u ON u.id = m.user_id
WHERE m.team_id = %(team_id)s
  AND m.user_id = %(user_id)s
  AND t.deleted_at IS NULL
  AND u.deleted_at IS NULL
"""

MEMBERS_SQL = """
SELECT m.team_id, m.user_id, u.email, u.display_name, m.role, m.created_at AS joined_at
FROM team_members AS m
JOIN teams AS t ON t.id = m.team_id
JOIN users AS u ON u.id = m.user_id
WHERE m.team_id = %(team_id)s
  AND t.deleted_at IS NULL
  AND u.deleted_at IS NULL
ORDER BY m.role, m.created_at, m.user_id
"""

TEAM_IS_LIVE_SQL = "SELECT id FROM teams WHERE id = %(team_id)s AND deleted_at IS NULL"

#: First lock of every membership write: serializes all changes of one team's members.
LOCK_TEAM_SQL = "SELECT id FROM teams WHERE id = %(team_id)s AND deleted_at IS NULL FOR UPDATE"

#: Run after LOCK_TEAM_SQL: the owners plus the rows of the users a write is about, locked.
LOCK_TEAM_STATE_SQL = """
SELECT m.user_id, m.role, m.created_at
FROM team_members AS m
JOIN users AS u ON u.id = m.user_id
WHERE m.team_id = %(team_id)s
  AND u.deleted_at IS NULL
  AND (m.role = 'OWNER' OR m.user_id = ANY(%(user_ids)s))
FOR UPDATE OF m
"""

#: ``FOR KEY SHARE``: the user cannot be removed (see LOCK_USER_SQL) until this transaction ends.
USER_IS_LIVE_SQL = """
SELECT id FROM users WHERE id = %(user_id)s AND deleted_at IS NULL FOR KEY SHARE
"""

INSERT_MEMBER_SQL = """
INSERT INTO team_members (team_id, user_id, role)
VALUES (%(team_id)s, %(user_id)s, %(role)s::role_enum)
ON CONFLICT (team_id, user_id) DO NOTHING
RETURNING team_id, user_id, role, created_at
"""

UPDATE_ROLE_SQL = """
UPDATE team_members
SET role = %(role)s::role_enum
WHERE team_id = %(team_id)s AND user_id = %(user_id)s
RETURNING team_id, user_id, role, created_at
"""

DELETE_MEMBER_SQL = """
DELETE FROM team_members WHERE team_id = %(team_id)s AND user_id = %(user_id)s
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

#: Live teams where the user is an owner and no other live owner exists.
SOLE_OWNED_TEAMS_SQL = """
SELECT t.slug
FROM team_members AS m
JOIN teams AS t ON t.id = m.team_id
WHERE m.user_id = %(user_id)s
  AND m.role = 'OWNER'
  AND t.deleted_at IS NULL
  AND NOT EXISTS (
    SELECT 1
    FROM team_members AS o
    JOIN users AS ou ON ou.id = o.user_id
    WHERE o.team_id = m.team_id
      AND o.role = 'OWNER'
      AND o.user_id <> m.user_id
      AND ou.deleted_at IS NULL
  )
ORDER BY t.slug
"""

DELETE_MEMBERSHIPS_OF_USER_SQL = """
DELETE FROM team_members WHERE user_id = %(user_id)s RETURNING team_id
"""

TEAM_NOT_FOUND = "team not found"
ONLY_OWNERS = "only an owner of the team can change its members"
LAST_OWNER = "a team must keep at least one owner: make another member an owner first"

_RANK = {Role.MEMBER: 1, Role.OWNER: 2}


@dataclass(frozen=True)
class TeamMembership:
    """One membership: who is in which team, with which role, since when."""

    team_id: uuid.UUID
    user_id: uuid.UUID
    role: Role
    joined_at: datetime


@dataclass(frozen=True)
class MemberView:
    """A member as listed by :meth:`MembershipService.members`."""

    team_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    display_name: str
    role: Role
    joined_at: datetime


def _membership(
    team_id: uuid.UUID, user_id: uuid.UUID, role: str, joined_at: datetime
) -> TeamMembership:
    return TeamMembership(team_id, user_id, Role(role), joined_at)


def _member_view(
    team_id: uuid.UUID,
    user_id: uuid.UUID,
    email: str,
    display_name: str,
    role: str,
    joined_at: datetime,
) -> MemberView:
    return MemberView(team_id, user_id, email, display_name, Role(role), joined_at)


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MemberTarget(_Input):
    """A team and one of its (future) members."""

    team_id: uuid.UUID
    user_id: uuid.UUID


class MemberRole(MemberTarget):
    """A team, a user and the role the user gets there."""

    role: Role


class TeamRef(_Input):
    """A team, by id."""

    team_id: uuid.UUID


class RoleCheck(TeamRef):
    """The least role an action needs in a team."""

    minimum: Role


@lru_cache(maxsize=65_536)
def role_cache_key(team_id: uuid.UUID, user_id: uuid.UUID) -> str:
    """The cache key of the answer of :meth:`MembershipService.role_of`.

    Code outside this module that changes that answer (soft-deleting a user or a team) deletes
    these keys after its commit. Memoized: formatting two UUIDs costs more than the whole
    in-process cache lookup it names.
    """
    return f"role:{team_id}:{user_id}"


def _as_uuid(value: Any, field: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{field}: must be a UUID", field) from None


@dataclass(frozen=True)
class TeamState:
    """Locked snapshot of a team taken by :func:`lock_team`: its owners and some members' roles."""

    team_id: uuid.UUID
    owners: frozenset[uuid.UUID]
    roles: dict[uuid.UUID, TeamMembership]

    def role(self, user_id: uuid.UUID | None) -> Role | None:
        """The role of ``user_id`` if it was asked for (or is an owner), else None."""
        found = self.roles.get(user_id) if user_id is not None else None
        return found.role if found else None

    def require_owner(self, actor: Actor, *, hidden: str = TEAM_NOT_FOUND) -> None:
        """Pass for system actors and owners; NotFound(``hidden``) for non-members."""
        if actor.is_system:
            return
        role = self.role(actor.user_id)
        if role is None:
            raise NotFound(hidden)
        if role is not Role.OWNER:
            raise Forbidden(ONLY_OWNERS)

    def require_owner_left(
        self, *, removed: Iterable[uuid.UUID] = (), added: Iterable[uuid.UUID] = ()
    ) -> None:
        """Forbidden unless an owner is left once ``removed`` lose and ``added`` gain OWNER."""
        if not (self.owners - set(removed)) | set(added):
            raise Forbidden(LAST_OWNER)


def lock_team(
    conn: psycopg.Connection[Any], team_id: uuid.UUID, user_ids: Iterable[uuid.UUID | None]
) -> TeamState:
    """Lock a live team and its owner rows (plus the rows of ``user_ids``); NotFound if none.

    Must run inside a transaction, before any change to the team's members or invitations: the
    team row lock is what makes concurrent changes of one team run one after the other.
    """
    if fetch_one(conn, LOCK_TEAM_SQL, scalar_row, {"team_id": team_id}) is None:
        raise NotFound(TEAM_NOT_FOUND)
    asked = [u for u in user_ids if u is not None]
    rows = fetch_all(
        conn,
        LOCK_TEAM_STATE_SQL,
        args_row(lambda u, r, at: TeamMembership(team_id, u, Role(r), at)),
        {"team_id": team_id, "user_ids": asked},
    )
    return TeamState(
        team_id=team_id,
        owners=frozenset(m.user_id for m in rows if m.role is Role.OWNER),
        roles={m.user_id: m for m in rows},
    )


def ensure_not_last_owner_anywhere(
    conn: psycopg.Connection[Any], user_id: uuid.UUID
) -> list[uuid.UUID]:
    """Forbidden if ``user_id`` is the last live owner of any live team; else lock for removal.

    Call it inside the transaction that removes (or soft-deletes) the user, before the change.
    It locks the user row (``FOR UPDATE``: no membership can be added to the user until the
    transaction ends) and then every live team the user belongs to, in id order, the same team
    lock every membership write takes, so no concurrent demotion can slip in between the check
    and the removal. Returns the ids of those teams.
    """
    params = {"user_id": user_id}
    conn.execute(LOCK_USER_SQL, params)
    team_ids = fetch_all(conn, LOCK_TEAMS_OF_USER_SQL, scalar_row, params)
    slugs = fetch_all(conn, SOLE_OWNED_TEAMS_SQL, scalar_row, params)
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
    deletes ``role_cache_key(team_id, user_id)`` for each of them.
    """
    ensure_not_last_owner_anywhere(conn, user_id)
    return fetch_all(conn, DELETE_MEMBERSHIPS_OF_USER_SQL, scalar_row, {"user_id": user_id})


class MembershipService:
    """Role checks and membership changes of teams.

    Args:
        db: The process's database.
        cache: Optional read-through cache of :meth:`role_of`; the same cache instance (or the
            same Redis prefix) must be given to every service that writes memberships, so that
            their invalidations reach it.
    """

    def __init__(self, db: Database, cache: QueryCache | None = None) -> None:
        self._db = db
        self._cache = cache

    # -- reads -------------------------------------------------------------------------------

    def role_of(self, actor: Actor, team_id: uuid.UUID, user_id: uuid.UUID) -> Role | None:
        """The role of ``user_id`` in ``team_id``; None if not a member (or team/user deleted).

        This is the authorization primitive other services call on every request: it does not
        restrict what ``actor`` may ask, costs one round trip on a miss and none on a hit.
        """
        check_actor(actor)
        team_id = _as_uuid(team_id, "team_id")
        user_id = _as_uuid(user_id, "user_id")
        if self._cache is None:
            return self._load_role(actor, team_id, user_id)
        return cached(
            self._cache,
            role_cache_key(team_id, user_id),
            lambda: self._load_role(actor, team_id, user_id),
            str,
            Role,
        )

    def _load_role(self, actor: Actor, team_id: uuid.UUID, user_id: uuid.UUID) -> Role | None:
        with reading(self._db, actor) as conn:
            row = conn.execute(ROLE_OF_SQL, {"team_id": team_id, "user_id": user_id}).fetchone()
        return None if row is None else Role(row[0])

    def require_role(self, actor: Actor, team_id: uuid.UUID, minimum: Role = Role.MEMBER) -> Role:
        """The actor's role in the team if it is at least ``minimum``.

        System actors pass as OWNER. Raises NotFound for a non-member (the team's existence is
        not revealed) and Forbidden for a member whose role is too low.
        """
        check_actor(actor)
        args = validate(RoleCheck, team_id=team_id, minimum=minimum)
        if actor.is_system:
            return Role.OWNER
        assert actor.user_id is not None
        role = self.role_of(actor, args.team_id, actor.user_id)
        if role is None:
            raise NotFound(TEAM_NOT_FOUND)
        if _RANK[role] < _RANK[args.minimum]:
            raise Forbidden(f"this needs the {args.minimum.value} role in the team")
        return role

    def members(self, actor: Actor, team_id: uuid.UUID) -> list[MemberView]:
        """Live members of a live team, owners first; only members (and system actors) see it."""
        check_actor(actor)
        args = validate(TeamRef, team_id=team_id)
        params = {"team_id": args.team_id}
        with reading(self._db, actor) as conn:
            rows = fetch_all(conn, MEMBERS_SQL, args_row(_member_view), params)
            if (
                not rows
                and actor.is_system
                and fetch_one(conn, TEAM_IS_LIVE_SQL, scalar_row, params) is None
            ):
                raise NotFound(TEAM_NOT_FOUND)
        if not actor.is_system and all(m.user_id != actor.user_id for m in rows):
            raise NotFound(TEAM_NOT_FOUND)
        return rows

    # -- writes ------------------------------------------------------------------------------

    def add_member(
        self, actor: Actor, team_id: uuid.UUID, user_id: uuid.UUID, role: Role = Role.MEMBER
    ) -> TeamMembership:
        """Add a live user to the team with ``role`` (owners only).

        Raises:
            NotFound: the team (or, for an owner, the user) does not exist.
            Forbidden: the actor is a member but not an owner.
            Conflict: the user is a member already (field ``user_id``).
        """
        check_actor(actor)
        args = validate(MemberRole, team_id=team_id, user_id=user_id, role=role)

        def tx(uow: UnitOfWork) -> TeamMembership:
            conn = uow.conn
            # The user lock comes before the team lock, like in a user's removal.
            user_live = fetch_one(conn, USER_IS_LIVE_SQL, scalar_row, {"user_id": args.user_id})
            state = lock_team(conn, args.team_id, [actor.user_id])
            state.require_owner(actor)
            if user_live is None:
                raise NotFound("user not found")
            added = fetch_one(
                conn,
                INSERT_MEMBER_SQL,
                args_row(_membership),
                {"team_id": args.team_id, "user_id": args.user_id, "role": args.role},
            )
            if added is None:
                raise Conflict("the user is already a member of this team", field="user_id")
            return added

        result = in_transaction(self._db, actor, tx)
        self._invalidate(args.team_id, [args.user_id])
        return result

    def remove_member(self, actor: Actor, team_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Remove a member (owners only); Forbidden if it would leave the team without owner."""
        check_actor(actor)
        args = validate(MemberTarget, team_id=team_id, user_id=user_id)

        def tx(uow: UnitOfWork) -> None:
            state = lock_team(uow.conn, args.team_id, [actor.user_id, args.user_id])
            state.require_owner(actor)
            if state.role(args.user_id) is None:
                raise NotFound("the user is not a member of this team")
            state.require_owner_left(removed=[args.user_id])
            uow.conn.execute(DELETE_MEMBER_SQL, {"team_id": args.team_id, "user_id": args.user_id})

        in_transaction(self._db, actor, tx)
        self._invalidate(args.team_id, [args.user_id])

    def change_role(
        self, actor: Actor, team_id: uuid.UUID, user_id: uuid.UUID, role: Role
    ) -> TeamMembership:
        """Set a member's role (owners only); Forbidden if no owner would be left."""
        check_actor(actor)
        args = validate(MemberRole, team_id=team_id, user_id=user_id, role=role)

        def tx(uow: UnitOfWork) -> TeamMembership:
            state = lock_team(uow.conn, args.team_id, [actor.user_id, args.user_id])
            state.require_owner(actor)
            current = state.roles.get(args.user_id)
            if current is None:
                raise NotFound("the user is not a member of this team")
            if current.role is args.role:
                return current
            if args.role is Role.OWNER:
                state.require_owner_left(added=[args.user_id])
            else:
                state.require_owner_left(removed=[args.user_id])
            return _set_role(uow.conn, args.team_id, args.user_id, args.role)

        result = in_transaction(self._db, actor, tx)
        self._invalidate(args.team_id, [args.user_id])
        return result

    def leave(self, actor: Actor, team_id: uuid.UUID) -> None:
        """The acting user leaves the team; Forbidden for its last owner."""
        me = user_of(actor)
        args = validate(TeamRef, team_id=team_id)

        def tx(uow: UnitOfWork) -> None:
            state = lock_team(uow.conn, args.team_id, [me])
            if state.role(me) is None:
                raise NotFound(TEAM_NOT_FOUND)
            state.require_owner_left(removed=[me])
            uow.conn.execute(DELETE_MEMBER_SQL, {"team_id": args.team_id, "user_id": me})

        in_transaction(self._db, actor, tx)
        self._invalidate(args.team_id, [me])

    def transfer_ownership(
        self, actor: Actor, team_id: uuid.UUID, to_user_id: uuid.UUID
    ) -> TeamMembership:
        """Make ``to_user_id`` (a member) an OWNER and the acting owner a MEMBER, atomically.

        Returns the new owner's membership. A system actor cannot transfer (it owns nothing):
        it uses :meth:`change_role` instead.
        """
        me = user_of(actor)
        args = validate(MemberTarget, team_id=team_id, user_id=to_user_id)
        if args.user_id == me:
            raise InvalidInput("to_user_id: cannot transfer ownership to yourself", "to_user_id")

        def tx(uow: UnitOfWork) -> TeamMembership:
            state = lock_team(uow.conn, args.team_id, [me, args.user_id])
            if state.role(me) is None:
                raise NotFound(TEAM_NOT_FOUND)
            if state.role(me) is not Role.OWNER:
                raise Forbidden("only an owner can transfer ownership")
            if state.role(args.user_id) is None:
                raise NotFound("the new owner must be a member of the team")
            new_owner = _set_role(uow.conn, args.team_id, args.user_id, Role.OWNER)
            _set_role(uow.conn, args.team_id, me, Role.MEMBER)
            return new_owner

        result = in_transaction(self._db, actor, tx)
        self._invalidate(args.team_id, [args.user_id, me])
        return result

    def _invalidate(self, team_id: uuid.UUID, user_ids: Iterable[uuid.UUID]) -> None:
        """Drop cached role answers; runs after the commit (earlier, a reader could re-cache)."""
        if self._cache is not None:
            self._cache.delete([role_cache_key(team_id, u) for u in user_ids])


def _set_role(
    conn: psycopg.Connection[Any], team_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> TeamMembership:
    changed = fetch_one(
        conn,
        UPDATE_ROLE_SQL,
        args_row(_membership),
        {"team_id": team_id, "user_id": user_id, "role": role},
    )
    if changed is None:  # pragma: no cover - the row is locked by lock_team
        raise NotFound("the user is not a member of this team")
    return changed
