"""Restoring an archived user (by e-mail) or team (by slug) into the live tables."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.rows import scalar_row

from dbops.db.engine import Database
from dbops.errors import ArchiveError, InvalidInput, NotFound
from dbops.ops.archive._sql import (
    ARCHIVED_LOCATIONS_OF_TEAM,
    ARCHIVED_MEMBERS_OF_TEAM,
    ARCHIVED_MEMBERS_OF_USER,
    ARCHIVED_OWNER_IDS,
    DELETE_ARCHIVED_TEAM,
    DELETE_ARCHIVED_USER,
    FIND_ARCHIVED_TEAMS_BY_SLUG,
    FIND_ARCHIVED_USERS_BY_EMAIL,
    KEEP_SENDERS_OF_TEAM,
    LIVE_TEAM_WITH_SLUG,
    LIVE_USER_WITH_EMAIL,
    LOCATIONS_TABLE,
    LOCK_ARCHIVED_TEAM,
    LOCK_ARCHIVED_USER,
    LOCK_TEAMS_OF_ARCHIVED_USER,
    RESTORE_INVITATIONS_OF_TEAM,
    RESTORE_LOCATION_OF_TEAM,
    RESTORE_MEMBERS_OF_TEAM,
    RESTORE_MEMBERS_OF_USER,
    RESTORE_SENDERS_OF_USER,
    RESTORE_TEAM,
    RESTORE_USER,
    RETURNING_OWNERS,
)
from dbops.ops.archive.moving import LOCK_TIMEOUT_MS, set_limits
from dbops.ops.archive.reports import RestoreReport, TableCounts


def one_id(
    conn: psycopg.Connection[Any], query: str, params: dict[str, Any], what: str
) -> uuid.UUID:
    """The single id ``query`` finds; NotFound for none, ArchiveError when several match."""
    with conn.cursor(row_factory=scalar_row) as cur:
        found: list[uuid.UUID] = cur.execute(query, params).fetchall()
    if not found:
        raise NotFound(f"no archived {what}")
    if len(found) > 1:
        listed = ", ".join(str(i) for i in found)
        raise ArchiveError(f"several archived {what}s match ({listed}): restore one by its id")
    return found[0]


def _restore_user(conn: psycopg.Connection[Any], user_id: uuid.UUID) -> RestoreReport:
    params = {"id": user_id}
    row = conn.execute(LOCK_ARCHIVED_USER, params).fetchone()
    if row is None:
        raise NotFound("no archived user with this id")
    email: str = row[1]
    taken = conn.execute(LIVE_USER_WITH_EMAIL, {"email": email}).fetchone()
    if taken is not None and taken[0]:
        raise ArchiveError(f"cannot restore user {user_id}: a live user now has the e-mail {email}")
    conn.execute(LOCK_TEAMS_OF_ARCHIVED_USER, params)
    users = conn.execute(RESTORE_USER, params).rowcount
    members = conn.execute(RESTORE_MEMBERS_OF_USER, params).rowcount
    senders = conn.execute(RESTORE_SENDERS_OF_USER, params).rowcount
    left = conn.execute(ARCHIVED_MEMBERS_OF_USER, params).fetchone()
    assert left is not None  # count(*) always returns a row
    conn.execute(DELETE_ARCHIVED_USER, params)
    return RestoreReport(
        kind="user",
        id=user_id,
        name=email,
        restored=TableCounts(users=users, team_members=members, invitation_senders=senders),
        left_in_archive=int(left[0]),
    )


def _restore_team(
    conn: psycopg.Connection[Any], team_id: uuid.UUID, locations: bool
) -> RestoreReport:
    params = {"id": team_id}
    row = conn.execute(LOCK_ARCHIVED_TEAM, params).fetchone()
    if row is None:
        raise NotFound("no archived team with this id")
    slug: str = row[1]
    taken = conn.execute(LIVE_TEAM_WITH_SLUG, {"slug": slug}).fetchone()
    if taken is not None and taken[0]:
        raise ArchiveError(f"cannot restore team {slug}: a live team now has this slug")
    owners = conn.execute(RETURNING_OWNERS, params).fetchone()
    if not owners or not owners[0]:
        with conn.cursor(row_factory=scalar_row) as cur:
            archived_owners = cur.execute(ARCHIVED_OWNER_IDS, params).fetchall()
        hint = (
            "restore its owner first (user " + ", ".join(str(o) for o in archived_owners) + ")"
            if archived_owners
            else "it had no owner when archived"
        )
        raise ArchiveError(
            f"cannot restore team {slug}: it would come back without an owner; {hint}"
        )
    has_location = conn.execute(ARCHIVED_LOCATIONS_OF_TEAM, params).fetchone()
    if has_location and has_location[0] and not locations:
        raise ArchiveError(
            f"cannot restore team {slug}: its location needs table team_locations (PostGIS)"
        )
    teams = conn.execute(RESTORE_TEAM, params).rowcount
    members = conn.execute(RESTORE_MEMBERS_OF_TEAM, params).rowcount
    conn.execute(KEEP_SENDERS_OF_TEAM, params)
    invitations = conn.execute(RESTORE_INVITATIONS_OF_TEAM, params).rowcount
    located = conn.execute(RESTORE_LOCATION_OF_TEAM, params).rowcount if locations else 0
    left = conn.execute(ARCHIVED_MEMBERS_OF_TEAM, params).fetchone()
    assert left is not None  # count(*) always returns a row
    conn.execute(DELETE_ARCHIVED_TEAM, params)
    return RestoreReport(
        kind="team",
        id=team_id,
        name=slug,
        restored=TableCounts(
            teams=teams, team_members=members, invitations=invitations, team_locations=located
        ),
        left_in_archive=int(left[0]),
    )


def restore(
    db: Database,
    *,
    user_email: str | None = None,
    user_id: uuid.UUID | None = None,
    team_slug: str | None = None,
    team_id: uuid.UUID | None = None,
) -> RestoreReport:
    """Move one archived user or team back into the live tables, in one transaction.

    Give exactly one of the four. The rows come back as they were archived (soft-deleted
    still); memberships come back where the other side (team or user) is in the live tables,
    the rest stay archived until it is. A user's sender links are put back on live invitations.

    Raises:
        InvalidInput: not exactly one of the arguments.
        NotFound: nothing archived matches.
        ArchiveError: the e-mail or slug is taken by a live row; several archived rows match
            the e-mail or slug (restore by id); the team would come back without an owner.
    """
    given = [v for v in (user_email, user_id, team_slug, team_id) if v is not None]
    if len(given) != 1:
        raise InvalidInput("give exactly one of user_email, user_id, team_slug, team_id")
    with db.connection() as conn:
        set_limits(conn, lock_timeout_ms=LOCK_TIMEOUT_MS)
        if user_email is not None or user_id is not None:
            if user_id is None:
                user_id = one_id(conn, FIND_ARCHIVED_USERS_BY_EMAIL, {"email": user_email}, "user")
            return _restore_user(conn, user_id)
        if team_id is None:
            team_id = one_id(conn, FIND_ARCHIVED_TEAMS_BY_SLUG, {"slug": team_slug}, "team")
        locations_row = conn.execute(LOCATIONS_TABLE).fetchone()
        return _restore_team(conn, team_id, bool(locations_row and locations_row[0]))
