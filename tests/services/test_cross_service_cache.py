"""Writes in one service drop the role-cache answers another service cached (no stale reads)."""

from __future__ import annotations

import pytest

from dbops.db import Database
from dbops.models import Role
from dbops.services import Actor
from dbops.services._cache import MemoryCache
from dbops.services.memberships import MembershipService
from dbops.services.teams import TeamService
from dbops.services.users import UserService

SYSTEM = Actor.system("tests")
PASSWORD = "correct horse battery"


@pytest.fixture
def cache() -> MemoryCache:
    return MemoryCache(ttl_s=300)


def test_team_delete_and_restore_refresh_cached_roles(
    clean_db: Database, cache: MemoryCache
) -> None:
    users, teams = UserService(clean_db, cache), TeamService(clean_db, cache)
    members = MembershipService(clean_db, cache)
    owner = users.create(SYSTEM, email="o@example.com", password=PASSWORD, display_name="O")
    member = users.create(SYSTEM, email="m@example.com", password=PASSWORD, display_name="M")
    team = teams.create(Actor.user(owner.id), name="Acme", slug="acme")
    members.add_member(Actor.user(owner.id), team.id, member.id)

    assert members.role_of(SYSTEM, team.id, member.id) is Role.MEMBER  # cached now
    assert members.role_of(SYSTEM, team.id, member.id) is Role.MEMBER
    teams.delete(Actor.user(owner.id), team.id)
    assert members.role_of(SYSTEM, team.id, member.id) is None
    assert members.role_of(SYSTEM, team.id, owner.id) is None  # cached "absent" now
    teams.restore(Actor.user(owner.id), team.id)
    assert members.role_of(SYSTEM, team.id, member.id) is Role.MEMBER
    assert members.role_of(SYSTEM, team.id, owner.id) is Role.OWNER


def test_user_delete_refreshes_cached_roles(clean_db: Database, cache: MemoryCache) -> None:
    users, teams = UserService(clean_db, cache), TeamService(clean_db, cache)
    members = MembershipService(clean_db, cache)
    owner = users.create(SYSTEM, email="o@example.com", password=PASSWORD, display_name="O")
    member = users.create(SYSTEM, email="m@example.com", password=PASSWORD, display_name="M")
    team = teams.create(Actor.user(owner.id), name="Acme", slug="acme")
    members.add_member(Actor.user(owner.id), team.id, member.id, Role.OWNER)

    assert members.role_of(SYSTEM, team.id, member.id) is Role.OWNER
    users.delete(Actor.user(member.id), member.id)
    assert members.role_of(SYSTEM, team.id, member.id) is None
    assert cache.stats().invalidations >= 1
