"""Every cache key of the services, so that every read-through and invalidation is seen here.

Keys and who deletes them (always after the commit of the write that changed the answer):

* :func:`role_key` (``MembershipService.role_of``): every membership write
  (memberships), accepting an invitation (invitations), deleting a user (users), deleting or
  restoring a team (teams: the answer is for live teams only).
* :func:`team_slug_key` (``TeamService.get_by_slug``): creating a team, and every team write
  (the old and the new slug).
"""

from __future__ import annotations

import uuid
from functools import lru_cache

__all__ = ["role_key", "team_slug_key"]


@lru_cache(maxsize=65_536)
def role_key(team_id: uuid.UUID, user_id: uuid.UUID) -> str:
    """The key of the role of ``user_id`` in ``team_id``.

    Memoized: formatting two UUIDs costs more than the whole in-process cache lookup it names.
    """
    return f"role:{team_id}:{user_id}"


def team_slug_key(slug: str) -> str:
    """The key of "the live team with this slug"."""
    return "team:slug:" + slug
