"""The service API: typed, validated, transactional access to the domain.

It owns the domain's reads and writes as the application runs them (monitoring counts rows
through migration 0009's aggregate functions; ops moves rows in bulk for seed and archive).

Every call names its :class:`Actor`. Reads return frozen dataclasses; errors are
:mod:`dbops.errors` types. Give the services of one process the same cache instance (or the
same Redis prefix) so that a write in one drops the answers another cached.
"""

from __future__ import annotations

from dbops.services._base import Actor, UnitOfWork, retrying, unit_of_work
from dbops.services._cache import CacheStats, MemoryCache, QueryCache, RedisCache
from dbops.services._query import Page
from dbops.services.invitations import InvitationService, InvitationView, IssuedInvitation
from dbops.services.memberships import MembershipService, MemberView, TeamMembership
from dbops.services.teams import TeamMatch, TeamNear, TeamOfUser, TeamService, TeamView
from dbops.services.users import UserService, UserView

__all__ = [
    "Actor",
    "CacheStats",
    "InvitationService",
    "InvitationView",
    "IssuedInvitation",
    "MemberView",
    "MembershipService",
    "MemoryCache",
    "Page",
    "QueryCache",
    "RedisCache",
    "TeamMatch",
    "TeamMembership",
    "TeamNear",
    "TeamOfUser",
    "TeamService",
    "TeamView",
    "UnitOfWork",
    "UserService",
    "UserView",
    "retrying",
    "unit_of_work",
]
