"""The sole-owner rule: a user who is the last live owner of a live team cannot go.

The services refuse to delete such a user (:mod:`dbops.services.users`) and archiving skips
them (:mod:`dbops.ops.archive`): one statement, here, so that the two can never disagree.
"""

from __future__ import annotations

__all__ = ["SOLE_OWNERS_SQL", "SOLE_OWNER_CONDITION", "sole_owner_condition"]

#: The rule as a condition on a membership row ``m`` joined to its team ``{team}``: an OWNER row
#: of a live team that has no other owner who is a live user.
SOLE_OWNER_CONDITION = """m.role = 'OWNER'
  AND {team}.deleted_at IS NULL
  AND NOT EXISTS (
    SELECT 1
    FROM team_members AS o
    JOIN users AS ou ON ou.id = o.user_id
    WHERE o.team_id = m.team_id
      AND o.role = 'OWNER'
      AND o.user_id <> m.user_id
      AND ou.deleted_at IS NULL
  )"""


def sole_owner_condition(team: str) -> str:
    """:data:`SOLE_OWNER_CONDITION` for the team alias ``team`` (a constant of the caller)."""
    return SOLE_OWNER_CONDITION.format(team=team)


#: The last-owner rule in one statement: of the users ``ids``, those holding an OWNER row of a
#: live team with no other live owner, with those teams' slugs. Deleting a user (the services)
#: and archiving users (dbops.ops.archive) both refuse exactly these.
SOLE_OWNERS_SQL = f"""
SELECT m.user_id, u.email, array_agg(t.slug ORDER BY t.slug) AS team_slugs
FROM team_members AS m
JOIN teams AS t ON t.id = m.team_id
JOIN users AS u ON u.id = m.user_id
WHERE m.user_id = ANY(%(ids)s::uuid[])
  AND {sole_owner_condition("t")}
GROUP BY m.user_id, u.email
ORDER BY m.user_id
"""
