"""Team invitations: issue (token shown once, only its SHA-256 kept), accept, revoke, expire.

Decisions:

* Only owners (and system actors) invite, revoke and list pending invitations; a non-member
  gets NotFound, as for every team-scoped call.
* :meth:`InvitationService.accept` runs in one transaction that locks the team and the
  invitation row. An expired invitation raises ``InvalidInput("invitation expired")`` and is left
  ``pending``: the transaction rolls back on the error, and :meth:`expire_overdue` (a system job)
  flips overdue rows in bulk. An overdue pending row therefore never works, whatever its status.
* The accepting user's email must equal the invited email, case-insensitively; else Forbidden.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from psycopg.rows import class_row, scalar_row

from dbops.db.engine import Database
from dbops.errors import Conflict, Forbidden, InvalidInput, NotFound
from dbops.models.accounts import InvitationStatus
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
    TeamMembership,
    conflict_if_member,
    insert_member,
    lock_team,
    require_role,
)
from dbops.services._query import fetch_all, fetch_one
from dbops.services.inputs import (
    INVITATION_MAX_TTL,
    InvitationRef,
    InviteInput,
    TeamRef,
    TokenInput,
    validate,
)
from dbops.telemetry.metrics import timed_methods

__all__ = ["InvitationService", "InvitationView", "IssuedInvitation", "hash_token"]

#: Longest an invitation may stay valid.
MAX_TTL = INVITATION_MAX_TTL
DEFAULT_TTL = timedelta(days=7)

SELECT_MEMBER_BY_EMAIL_SQL = """
SELECT m.user_id
FROM team_members AS m
JOIN users AS u ON u.id = m.user_id
WHERE m.team_id = %(team_id)s
  AND u.email = %(email)s
  AND u.deleted_at IS NULL
"""

INSERT_INVITATION_SQL = """
INSERT INTO invitations (team_id, email, role, invited_by, token_hash, expires_at)
VALUES (
  %(team_id)s, %(email)s, %(role)s::role_enum, %(invited_by)s, %(token_hash)s, now() + %(ttl)s
)
RETURNING id AS invitation_id, expires_at
"""

SELECT_INVITATION_BY_HASH_SQL = """
SELECT id AS invitation_id, team_id FROM invitations WHERE token_hash = %(token_hash)s
"""
SELECT_INVITATION_TEAM_SQL = "SELECT team_id FROM invitations WHERE id = %(invitation_id)s"

#: Runs after the team lock (same order as every membership write: team, then rows under it).
LOCK_INVITATION_SQL = """
SELECT id AS invitation_id, team_id, email, role, status, expires_at <= now() AS overdue
FROM invitations
WHERE id = %(invitation_id)s
FOR UPDATE
"""

#: ``FOR KEY SHARE``: the accepting user cannot be removed until the membership is in.
LOCK_ACCEPTING_USER_SQL = """
SELECT email FROM users WHERE id = %(user_id)s AND deleted_at IS NULL FOR KEY SHARE
"""

UPDATE_INVITATION_ACCEPTED_SQL = """
UPDATE invitations SET status = 'accepted', accepted_at = now() WHERE id = %(invitation_id)s
"""

UPDATE_INVITATION_REVOKED_SQL = """
UPDATE invitations SET status = 'revoked' WHERE id = %(invitation_id)s
"""

UPDATE_OVERDUE_INVITATIONS_SQL = """
UPDATE invitations SET status = 'expired' WHERE status = 'pending' AND expires_at <= now()
"""

SELECT_PENDING_INVITATIONS_SQL = """
SELECT id AS invitation_id, team_id, email, role, invited_by, status, expires_at, created_at
FROM invitations
WHERE team_id = %(team_id)s
  AND status = 'pending'
  AND expires_at > now()
ORDER BY created_at, id
"""

INVITATION_NOT_FOUND = "invitation not found"


@dataclass(frozen=True)
class IssuedInvitation:
    """A new invitation. ``token`` is shown here once: only its hash is stored."""

    invitation_id: uuid.UUID
    token: str = field(repr=False)
    expires_at: datetime
    team_id: uuid.UUID
    email: str
    role: Role


@dataclass(frozen=True)
class InvitationView:
    """An invitation as listed (never with its token)."""

    invitation_id: uuid.UUID
    team_id: uuid.UUID
    email: str
    role: Role
    invited_by: uuid.UUID | None
    status: InvitationStatus
    expires_at: datetime
    created_at: datetime

    def __post_init__(self) -> None:
        # psycopg hands the enums over as text.
        object.__setattr__(self, "role", Role(self.role))
        object.__setattr__(self, "status", InvitationStatus(self.status))


@dataclass(frozen=True)
class _LockedInvitation:
    invitation_id: uuid.UUID
    team_id: uuid.UUID
    email: str
    role: Role
    status: InvitationStatus
    overdue: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))
        object.__setattr__(self, "status", InvitationStatus(self.status))


@dataclass(frozen=True)
class _InvitationKey:
    invitation_id: uuid.UUID
    team_id: uuid.UUID


@dataclass(frozen=True)
class _NewInvitation:
    invitation_id: uuid.UUID
    expires_at: datetime


_VIEW_ROW = class_row(InvitationView)
_LOCKED_ROW = class_row(_LockedInvitation)
_KEY_ROW = class_row(_InvitationKey)
_NEW_ROW = class_row(_NewInvitation)


def hash_token(token: str) -> bytes:
    """The stored form of a token: its SHA-256 digest (32 bytes, the column's CHECK)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@timed_methods("invitations")
class InvitationService:
    """Issue, accept, revoke and expire invitations.

    Args:
        db: The process's database.
        cache: The role-check cache shared with :class:`MembershipService`; accepting an
            invitation deletes the new member's key.
    """

    def __init__(self, db: Database, cache: QueryCache | None = None) -> None:
        self._db = db
        self._cache = cache

    def invite(
        self,
        actor: Actor,
        team_id: uuid.UUID,
        email: str,
        role: Role = Role.MEMBER,
        ttl: timedelta = DEFAULT_TTL,
    ) -> IssuedInvitation:
        """Invite ``email`` into the team (owners only); the token is returned only here.

        Raises:
            NotFound: no such live team, or the actor is not a member.
            Forbidden: the actor is a member but not an owner.
            Conflict: (field ``email``) the email has a pending invitation, or is a member.
            InvalidInput: bad email, role or ttl (ttl must be in (0, 90 days]).
        """
        check_actor(actor)
        args = validate(InviteInput, team_id=team_id, email=email, role=role, ttl=ttl)
        token = secrets.token_urlsafe(32)

        def tx(uow: UnitOfWork) -> IssuedInvitation:
            conn = uow.conn
            lock_team(conn, args.team_id, [actor.user_id]).require_owner(actor)
            params = {"team_id": args.team_id, "email": args.email}
            if fetch_one(conn, SELECT_MEMBER_BY_EMAIL_SQL, scalar_row, params) is not None:
                raise Conflict("this email belongs to a member of the team already", "email")
            row = fetch_one(
                conn,
                INSERT_INVITATION_SQL,
                _NEW_ROW,
                {
                    **params,
                    "role": args.role,
                    "invited_by": actor.user_id,
                    "token_hash": hash_token(token),
                    "ttl": args.ttl,
                },
            )
            assert row is not None
            return IssuedInvitation(
                row.invitation_id, token, row.expires_at, args.team_id, args.email, args.role
            )

        return in_transaction(self._db, actor, tx)

    def accept(self, actor: Actor, token: str) -> TeamMembership:
        """The acting user joins the team with the invited role, in one transaction.

        Raises:
            NotFound: unknown token, or the team was deleted.
            Conflict: the invitation was already used, or the user is a member already.
            InvalidInput: the invitation was revoked or has expired; a system actor.
            Forbidden: the user's email is not the invited one.
        """
        me = user_of(actor)
        args = validate(TokenInput, token=token)
        token_hash = hash_token(args.token)

        def tx(uow: UnitOfWork) -> TeamMembership:
            conn = uow.conn
            # The user joins a team they cannot see yet: the token and the e-mail match
            # below are the checks, and RLS lets the join through as a system step (0007).
            elevate(uow, "invitations.accept")
            user_email = fetch_one(conn, LOCK_ACCEPTING_USER_SQL, scalar_row, {"user_id": me})
            if user_email is None:
                raise NotFound("user not found")
            found = fetch_one(
                conn, SELECT_INVITATION_BY_HASH_SQL, _KEY_ROW, {"token_hash": token_hash}
            )
            if found is None:
                raise NotFound(INVITATION_NOT_FOUND)
            lock_team(conn, found.team_id, [])
            inv = fetch_one(
                conn, LOCK_INVITATION_SQL, _LOCKED_ROW, {"invitation_id": found.invitation_id}
            )
            if inv is None:  # pragma: no cover - deleted by a concurrent cascade
                raise NotFound(INVITATION_NOT_FOUND)
            _check_acceptable(inv)
            if user_email.lower() != inv.email.lower():
                raise Forbidden("this invitation was sent to a different email address")
            joined = conflict_if_member(
                insert_member(conn, inv.team_id, me, inv.role),
                "you are a member of this team already",
            )
            conn.execute(UPDATE_INVITATION_ACCEPTED_SQL, {"invitation_id": inv.invitation_id})
            return joined

        result = in_transaction(self._db, actor, tx)
        if self._cache is not None:
            self._cache.delete([role_key(result.team_id, me)])
        return result

    def revoke(self, actor: Actor, invitation_id: uuid.UUID) -> None:
        """Revoke a pending invitation (owners only); revoking twice is a no-op.

        Raises:
            NotFound: unknown invitation, or the actor is not a member of its team.
            Forbidden: the actor is a member but not an owner.
            Conflict: the invitation was accepted or has expired already.
        """
        check_actor(actor)
        args = validate(InvitationRef, invitation_id=invitation_id)
        params = {"invitation_id": args.invitation_id}

        def tx(uow: UnitOfWork) -> None:
            conn = uow.conn
            team_id = fetch_one(conn, SELECT_INVITATION_TEAM_SQL, scalar_row, params)
            if team_id is None:
                raise NotFound(INVITATION_NOT_FOUND)
            state = lock_team(conn, team_id, [actor.user_id])
            state.require_owner(actor, hidden=INVITATION_NOT_FOUND)
            inv = fetch_one(conn, LOCK_INVITATION_SQL, _LOCKED_ROW, params)
            if inv is None:  # pragma: no cover - deleted by a concurrent cascade
                raise NotFound(INVITATION_NOT_FOUND)
            if inv.status is InvitationStatus.REVOKED:
                return
            if inv.status is not InvitationStatus.PENDING:
                raise Conflict(f"the invitation is {inv.status.value} and cannot be revoked")
            conn.execute(UPDATE_INVITATION_REVOKED_SQL, params)

        in_transaction(self._db, actor, tx)

    def expire_overdue(self, actor: Actor) -> int:
        """Mark every overdue pending invitation expired; the count. System actors only."""
        check_actor(actor)
        if not actor.is_system:
            raise Forbidden("only a system job expires invitations in bulk")

        def tx(uow: UnitOfWork) -> int:
            return uow.conn.execute(UPDATE_OVERDUE_INVITATIONS_SQL).rowcount

        return in_transaction(self._db, actor, tx)

    def pending_for_team(self, actor: Actor, team_id: uuid.UUID) -> list[InvitationView]:
        """Pending, not yet overdue invitations of a team, oldest first (owners only)."""
        check_actor(actor)
        args = validate(TeamRef, team_id=team_id)
        require_role(self._db, self._cache, actor, args.team_id, Role.OWNER)
        params = {"team_id": args.team_id}
        return lag_tolerant(
            self._db,
            actor,
            lambda conn: fetch_all(conn, SELECT_PENDING_INVITATIONS_SQL, _VIEW_ROW, params),
        )


def _check_acceptable(inv: _LockedInvitation) -> None:
    """Refuse an invitation that cannot be accepted any more, with the reason."""
    if inv.status is InvitationStatus.ACCEPTED:
        raise Conflict("invitation was already used")
    if inv.status is InvitationStatus.REVOKED:
        raise InvalidInput("invitation was revoked")
    if inv.status is InvitationStatus.EXPIRED or inv.overdue:
        raise InvalidInput("invitation expired")
