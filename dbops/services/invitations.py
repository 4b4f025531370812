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
from typing import Annotated, Any

from psycopg.rows import args_row, scalar_row
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from dbops.db.engine import Database
from dbops.errors import Conflict, Forbidden, InvalidInput, NotFound
from dbops.models.accounts import InvitationStatus
from dbops.models.base import Role
from dbops.services._base import (
    Actor,
    UnitOfWork,
    check_actor,
    in_transaction,
    reading,
    user_of,
)
from dbops.services._cache import QueryCache
from dbops.services._query import fetch_all, fetch_one
from dbops.services.memberships import (
    INSERT_MEMBER_SQL,
    MembershipService,
    TeamMembership,
    lock_team,
    role_cache_key,
)
from dbops.services.schemas import Email, validate

__all__ = ["InvitationService", "InvitationView", "IssuedInvitation", "hash_token"]

#: Longest an invitation may stay valid.
MAX_TTL = timedelta(days=90)
DEFAULT_TTL = timedelta(days=7)

MEMBER_WITH_EMAIL_SQL = """
SELECT m.user_id
FROM team_members AS m
JOIN users AS u ON u.id = m.user_id
WHERE m.team_id = %(team_id)s
  AND lower(u.email) = %(email)s
  AND u.deleted_at IS NULL
"""

INSERT_INVITATION_SQL = """
INSERT INTO invitations (team_id, email, role, invited_by, token_hash, expires_at)
VALUES (
  %(team_id)s, %(email)s, %(role)s::role_enum, %(invited_by)s, %(token_hash)s, now() + %(ttl)s
)
RETURNING id, expires_at
"""

INVITATION_BY_HASH_SQL = "SELECT id, team_id FROM invitations WHERE token_hash = %(token_hash)s"
TEAM_OF_INVITATION_SQL = "SELECT team_id FROM invitations WHERE id = %(invitation_id)s"

#: Runs after the team lock (same order as every membership write: team, then rows under it).
LOCK_INVITATION_SQL = """
SELECT id, team_id, email, role, status, expires_at <= now() AS overdue
FROM invitations
WHERE id = %(invitation_id)s
FOR UPDATE
"""

#: ``FOR KEY SHARE``: the accepting user cannot be removed until the membership is in.
ACCEPTING_USER_SQL = """
SELECT email FROM users WHERE id = %(user_id)s AND deleted_at IS NULL FOR KEY SHARE
"""

MARK_ACCEPTED_SQL = """
UPDATE invitations SET status = 'accepted', accepted_at = now() WHERE id = %(invitation_id)s
"""

MARK_REVOKED_SQL = "UPDATE invitations SET status = 'revoked' WHERE id = %(invitation_id)s"

EXPIRE_OVERDUE_SQL = """
UPDATE invitations SET status = 'expired' WHERE status = 'pending' AND expires_at <= now()
"""

PENDING_FOR_TEAM_SQL = """
SELECT id, team_id, email, role, invited_by, status, expires_at, created_at
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


@dataclass(frozen=True)
class _LockedInvitation:
    invitation_id: uuid.UUID
    team_id: uuid.UUID
    email: str
    role: Role
    status: InvitationStatus
    overdue: bool


def _view(
    invitation_id: uuid.UUID,
    team_id: uuid.UUID,
    email: str,
    role: str,
    invited_by: uuid.UUID | None,
    status: str,
    expires_at: datetime,
    created_at: datetime,
) -> InvitationView:
    return InvitationView(
        invitation_id,
        team_id,
        email,
        Role(role),
        invited_by,
        InvitationStatus(status),
        expires_at,
        created_at,
    )


def _locked(
    invitation_id: uuid.UUID, team_id: uuid.UUID, email: str, role: str, status: str, overdue: bool
) -> _LockedInvitation:
    return _LockedInvitation(
        invitation_id, team_id, email, Role(role), InvitationStatus(status), overdue
    )


def _pair(first: Any, second: Any) -> tuple[Any, Any]:
    return first, second


def _membership(
    team_id: uuid.UUID, user_id: uuid.UUID, role: str, joined_at: datetime
) -> TeamMembership:
    return TeamMembership(team_id, user_id, Role(role), joined_at)


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InviteInput(_Input):
    """An invitation to issue; ``email`` is normalized (stripped, lowercased)."""

    team_id: uuid.UUID
    email: Email
    role: Role
    ttl: timedelta = Field(gt=timedelta(0), le=MAX_TTL)


class TokenInput(_Input):
    """A token as handed out by :meth:`InvitationService.invite`."""

    token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=16, max_length=128)]


class InvitationRef(_Input):
    """An invitation, by id."""

    invitation_id: uuid.UUID


class TeamRef(_Input):
    """A team, by id."""

    team_id: uuid.UUID


def hash_token(token: str) -> bytes:
    """The stored form of a token: its SHA-256 digest (32 bytes, the column's CHECK)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


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
        self._members = MembershipService(db, cache)

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
            if fetch_one(conn, MEMBER_WITH_EMAIL_SQL, scalar_row, params) is not None:
                raise Conflict("this email belongs to a member of the team already", "email")
            row = fetch_one(
                conn,
                INSERT_INVITATION_SQL,
                args_row(_pair),
                {
                    **params,
                    "role": args.role,
                    "invited_by": actor.user_id,
                    "token_hash": hash_token(token),
                    "ttl": args.ttl,
                },
            )
            assert row is not None
            return IssuedInvitation(row[0], token, row[1], args.team_id, args.email, args.role)

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
            user_email = fetch_one(conn, ACCEPTING_USER_SQL, scalar_row, {"user_id": me})
            if user_email is None:
                raise NotFound("user not found")
            found = fetch_one(
                conn, INVITATION_BY_HASH_SQL, args_row(_pair), {"token_hash": token_hash}
            )
            if found is None:
                raise NotFound(INVITATION_NOT_FOUND)
            invitation_id, team_id = found
            lock_team(conn, team_id, [])
            inv = fetch_one(
                conn, LOCK_INVITATION_SQL, args_row(_locked), {"invitation_id": invitation_id}
            )
            if inv is None:  # pragma: no cover - deleted by a concurrent cascade
                raise NotFound(INVITATION_NOT_FOUND)
            _check_acceptable(inv)
            if user_email.lower() != inv.email.lower():
                raise Forbidden("this invitation was sent to a different email address")
            joined = fetch_one(
                conn,
                INSERT_MEMBER_SQL,
                args_row(_membership),
                {"team_id": inv.team_id, "user_id": me, "role": inv.role},
            )
            if joined is None:
                raise Conflict("you are a member of this team already", "user_id")
            conn.execute(MARK_ACCEPTED_SQL, {"invitation_id": inv.invitation_id})
            return joined

        result = in_transaction(self._db, actor, tx)
        if self._cache is not None:
            self._cache.delete([role_cache_key(result.team_id, me)])
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
            team_id = fetch_one(conn, TEAM_OF_INVITATION_SQL, scalar_row, params)
            if team_id is None:
                raise NotFound(INVITATION_NOT_FOUND)
            state = lock_team(conn, team_id, [actor.user_id])
            state.require_owner(actor, hidden=INVITATION_NOT_FOUND)
            inv = fetch_one(conn, LOCK_INVITATION_SQL, args_row(_locked), params)
            if inv is None:  # pragma: no cover - deleted by a concurrent cascade
                raise NotFound(INVITATION_NOT_FOUND)
            if inv.status is InvitationStatus.REVOKED:
                return
            if inv.status is not InvitationStatus.PENDING:
                raise Conflict(f"the invitation is {inv.status.value} and cannot be revoked")
            conn.execute(MARK_REVOKED_SQL, params)

        in_transaction(self._db, actor, tx)

    def expire_overdue(self, actor: Actor) -> int:
        """Mark every overdue pending invitation expired; the count. System actors only."""
        check_actor(actor)
        if not actor.is_system:
            raise Forbidden("only a system job expires invitations in bulk")

        def tx(uow: UnitOfWork) -> int:
            return uow.conn.execute(EXPIRE_OVERDUE_SQL).rowcount

        return in_transaction(self._db, actor, tx)

    def pending_for_team(self, actor: Actor, team_id: uuid.UUID) -> list[InvitationView]:
        """Pending, not yet overdue invitations of a team, oldest first (owners only)."""
        args = validate(TeamRef, team_id=team_id)
        self._members.require_role(actor, args.team_id, Role.OWNER)
        with reading(self._db, actor) as conn:
            return fetch_all(conn, PENDING_FOR_TEAM_SQL, args_row(_view), {"team_id": args.team_id})


def _check_acceptable(inv: _LockedInvitation) -> None:
    """Refuse an invitation that cannot be accepted any more, with the reason."""
    if inv.status is InvitationStatus.ACCEPTED:
        raise Conflict("invitation was already used")
    if inv.status is InvitationStatus.REVOKED:
        raise InvalidInput("invitation was revoked")
    if inv.status is InvitationStatus.EXPIRED or inv.overdue:
        raise InvalidInput("invitation expired")
