"""Team memberships and roles: the cached role check and every membership change.

Rules, enforced inside one transaction per call (the shared ones live in
:mod:`dbops.services._ownership`):

* Only an OWNER of a team changes its membership (add, remove, change role, transfer); any
  member may leave. System actors (jobs, admin CLI) bypass the role rules.
* A live team never ends with zero (live) owners. Every write first locks the team row, which
  serializes all membership changes of one team, then locks the owner rows and checks that at
  least one owner is left after the change. Two owners who demote or remove each other at the
  same moment therefore run one after the other, and the second sees the first's result.
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
from typing import Any

import psycopg
from psycopg.rows import class_row, scalar_row

from dbops.db.engine import Database
from dbops.errors import Forbidden, InvalidInput, NotFound
from dbops.models.base import Role
from dbops.services._base import (
    Actor,
    UnitOfWork,
    check_actor,
    elevate,
    in_transaction,
    lag_tolerant,
    user_of,
)
from dbops.services._cache import QueryCache
from dbops.services._keys import role_key
from dbops.services._ownership import (
    MEMBERSHIP_ROW,
    TeamMembership,
    conflict_if_member,
    insert_member,
    load_role,
    load_role_seen_by,
    lock_team,
    require_role,
)
from dbops.services._query import fetch_all, fetch_one
from dbops.services._visibility import TEAM_NOT_FOUND
from dbops.services.inputs import MemberRole, MemberTarget, RoleCheck, TeamRef, validate
from dbops.telemetry.metrics import timed_methods

__all__ = ["MemberView", "MembershipService", "TeamMembership"]

SELECT_MEMBERS_SQL = """
SELECT m.team_id, m.user_id, u.email, u.display_name, m.role, m.created_at AS joined_at
FROM team_members AS m
JOIN teams AS t ON t.id = m.team_id
JOIN users AS u ON u.id = m.user_id
WHERE m.team_id = %(team_id)s
  AND t.deleted_at IS NULL
  AND u.deleted_at IS NULL
ORDER BY m.role, m.created_at, m.user_id
"""

SELECT_LIVE_TEAM_SQL = "SELECT id FROM teams WHERE id = %(team_id)s AND deleted_at IS NULL"

#: ``FOR KEY SHARE``: the user cannot be removed (see _ownership.LOCK_USER_SQL) until commit.
LOCK_LIVE_USER_SQL = """
SELECT id FROM users WHERE id = %(user_id)s AND deleted_at IS NULL FOR KEY SHARE
"""

UPDATE_ROLE_SQL = """
UPDATE team_members
SET role = %(role)s::role_enum
WHERE team_id = %(team_id)s AND user_id = %(user_id)s
RETURNING team_id, user_id, role, created_at AS joined_at
"""

DELETE_MEMBER_SQL = """
DELETE FROM team_members WHERE team_id = %(team_id)s AND user_id = %(user_id)s
"""


@dataclass(frozen=True)
class MemberView:
    """A member as listed by :meth:`MembershipService.members`."""

    team_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    display_name: str
    role: Role
    joined_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))  # psycopg hands the enum over as text


_MEMBER_ROW = class_row(MemberView)


def _as_uuid(value: Any, field: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{field}: must be a UUID", field) from None


@timed_methods("memberships")
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

        This is the authorization primitive other services call on every request: one round
        trip on a miss and none on a hit. A user actor asking about someone else must be a
        member of the team itself, else the answer is None, whatever the team holds (a
        non-member learns nothing of a team); that check is one more cached role lookup, read
        in the same statement when it is not cached (one round trip either way).
        """
        check_actor(actor)
        team_id = _as_uuid(team_id, "team_id")
        user_id = _as_uuid(user_id, "user_id")
        if actor.user_id is not None and actor.user_id != user_id:
            return load_role_seen_by(self._db, self._cache, actor, team_id, user_id)
        return load_role(self._db, self._cache, actor, team_id, user_id)

    def require_role(self, actor: Actor, team_id: uuid.UUID, minimum: Role = Role.MEMBER) -> Role:
        """The actor's role in the team if it is at least ``minimum``.

        System actors pass as OWNER. Raises NotFound for a non-member (the team's existence is
        not revealed) and Forbidden for a member whose role is too low.
        """
        check_actor(actor)
        args = validate(RoleCheck, team_id=team_id, minimum=minimum)
        return require_role(self._db, self._cache, actor, args.team_id, args.minimum)

    def members(self, actor: Actor, team_id: uuid.UUID) -> list[MemberView]:
        """Live members of a live team, owners first; only members (and system actors) see it."""
        check_actor(actor)
        args = validate(TeamRef, team_id=team_id)
        params = {"team_id": args.team_id}

        def load(conn: psycopg.Connection[Any]) -> list[MemberView]:
            rows = fetch_all(conn, SELECT_MEMBERS_SQL, _MEMBER_ROW, params)
            if (
                not rows
                and actor.is_system
                and fetch_one(conn, SELECT_LIVE_TEAM_SQL, scalar_row, params) is None
            ):
                raise NotFound(TEAM_NOT_FOUND)
            return rows

        rows = lag_tolerant(self._db, actor, load)
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
            # The new member is not a teammate yet (RLS hides them): a system step, whose
            # check is require_owner below (decision 0007).
            if not actor.is_system:
                elevate(uow, "memberships.add_member")
            # The user lock comes before the team lock, like in a user's removal.
            user_live = fetch_one(conn, LOCK_LIVE_USER_SQL, scalar_row, {"user_id": args.user_id})
            state = lock_team(conn, args.team_id, [actor.user_id])
            state.require_owner(actor)
            if user_live is None:
                raise NotFound("user not found")
            added = insert_member(conn, args.team_id, args.user_id, args.role)
            return conflict_if_member(added, "the user is already a member of this team")

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
            self._cache.delete([role_key(team_id, u) for u in user_ids])


def _set_role(
    conn: psycopg.Connection[Any], team_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> TeamMembership:
    params = {"team_id": team_id, "user_id": user_id, "role": role}
    changed = fetch_one(conn, UPDATE_ROLE_SQL, MEMBERSHIP_ROW, params)
    if changed is None:  # pragma: no cover - the row is locked by lock_team
        raise NotFound("the user is not a member of this team")
    return changed
