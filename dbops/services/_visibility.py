"""Who may see what: the one rule for NotFound vs Forbidden, and the visibility predicates.

The rule (docs/permissions.md): a row the actor may not see is :class:`~dbops.errors.NotFound`
with the very message of a row that does not exist (``"team not found"``, ``"user not
found"``), so a stranger cannot learn that it exists; a read whose answer is a value or a list
answers "nothing" (None, empty) instead. :class:`~dbops.errors.Forbidden` only when the actor
can see the row but lacks the role for the action (a MEMBER renaming their team, a teammate
reading another user's phone), and for actions no user may take whatever the data (system-only
actions, creating a team for someone else): its message then depends on the actor alone.

Who sees what: a system actor sees everything. A user actor sees the teams it is a live member
of (soft-deleted ones too, when a call asks for them: their owners restore them) and the users
who share a live team with it, and itself. The predicates below are the SQL form of that rule;
the services fold them into their reads (one statement), and the hot cached reads check them
after the cache lookup through the cached role check.
"""

from __future__ import annotations

import uuid

from psycopg.rows import scalar_row

from dbops.db.engine import Database
from dbops.errors import Forbidden, NotFound
from dbops.services._base import Actor, check_actor, reading
from dbops.services._query import fetch_one

__all__ = [
    "MEMBER_OF_TEAM",
    "SHARES_LIVE_TEAM_SQL",
    "TEAM_NOT_FOUND",
    "USER_NOT_FOUND",
    "VISIBLE_USER",
    "require_self_or_system",
    "shares_live_team",
]

TEAM_NOT_FOUND = "team not found"
USER_NOT_FOUND = "user not found"

#: "The actor ``%(actor_id)s`` is a live member of the team ``t``": a condition on a query over
#: ``teams AS t``. Served by pk_team_members (team_id, user_id) and pk_users.
MEMBER_OF_TEAM = """EXISTS (
    SELECT 1
    FROM team_members AS vm
    JOIN users AS vu ON vu.id = vm.user_id AND vu.deleted_at IS NULL
    WHERE vm.team_id = t.id AND vm.user_id = %(actor_id)s
)"""

#: "``{other}`` shares a live team with the actor ``%(actor_id)s``": the actor's memberships
#: (ix_team_members_user_id), then one pk_team_members probe each.
_SHARES_LIVE_TEAM = """
        SELECT 1
        FROM team_members AS mine
        JOIN teams AS vt ON vt.id = mine.team_id AND vt.deleted_at IS NULL
        JOIN team_members AS theirs ON theirs.team_id = mine.team_id AND theirs.user_id = {other}
        WHERE mine.user_id = %(actor_id)s"""

#: "The user ``u`` is the actor ``%(actor_id)s`` or shares a live team with it": a condition on a
#: query over ``users AS u``.
VISIBLE_USER = (
    "(\n    u.id = %(actor_id)s\n    OR EXISTS ("
    + _SHARES_LIVE_TEAM.format(other="u.id")
    + "\n    )\n)"
)

#: Whether the users ``%(actor_id)s`` and ``%(user_id)s`` share a live team.
SHARES_LIVE_TEAM_SQL = "\nSELECT EXISTS (" + _SHARES_LIVE_TEAM.format(other="%(user_id)s") + "\n)\n"


def shares_live_team(db: Database, actor: Actor, user_id: uuid.UUID) -> bool:
    """True if the user actor ``actor`` and ``user_id`` are members of one live team."""
    with reading(db, actor) as conn:
        found = fetch_one(
            conn,
            SHARES_LIVE_TEAM_SQL,
            scalar_row,
            {"actor_id": actor.user_id, "user_id": user_id},
        )
    return bool(found)


def require_self_or_system(
    db: Database,
    actor: Actor,
    user_id: uuid.UUID,
    *,
    forbidden: str,
    missing: str = USER_NOT_FOUND,
) -> None:
    """Pass for a system actor and for the user themselves; else refuse by the rule.

    A teammate of ``user_id`` sees the user, so it gets Forbidden(``forbidden``); anyone else
    gets NotFound(``missing``), the message the call gives for a user that does not exist. The
    lookup runs only on the refusing path.
    """
    if check_actor(actor).is_system or actor.user_id == user_id:
        return
    if shares_live_team(db, actor, user_id):
        raise Forbidden(forbidden)
    raise NotFound(missing)
