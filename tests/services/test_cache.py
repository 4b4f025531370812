"""The role-check cache: read-through, hit/miss counters, no stale read after any service write.

Every test runs against the in-process MemoryCache and against Redis at 127.0.0.1:6379 (a unique
key prefix per test, removed afterwards); the Redis runs are skipped when no server answers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from dbops.db import Database
from dbops.errors import Forbidden
from dbops.models import Role
from dbops.services._base import Actor
from dbops.services._cache import MemoryCache, QueryCache, RedisCache
from dbops.services._keys import role_key
from dbops.services.invitations import InvitationService
from dbops.services.memberships import MembershipService
from tests.services._helpers import SYSTEM, as_system, make_team, make_user, user_email

pytestmark = pytest.mark.usefixtures("clean_db")


@pytest.fixture
def make_cache(request: pytest.FixtureRequest) -> Iterator[Callable[[], QueryCache]]:
    """A factory of caches of the parametrized backend; Redis ones share one fresh prefix."""
    backend = request.param
    if backend == "memory":
        yield MemoryCache
        return
    client, prefix = request.getfixturevalue("redis_client_and_prefix")
    yield lambda: RedisCache(client, prefix=prefix)


backends = pytest.mark.parametrize("make_cache", ["memory", "redis"], indirect=True)


@pytest.fixture
def team(clean_db: Database) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]:
    """(team, owner, member, outsider)."""
    owner, member, outsider = (make_user(clean_db) for _ in range(3))
    return make_team(clean_db, owners=[owner], members=[member]), owner, member, outsider


@backends
def test_miss_then_hit_then_write_then_fresh_answer(
    clean_db: Database, make_cache: Callable[[], QueryCache], team
) -> None:
    team_id, owner, member, _ = team
    cache = make_cache()
    svc = MembershipService(clean_db, cache)
    me = Actor.user(owner)

    # The member asks about itself: one key. (An owner asking about a member also checks its
    # own role first, a second key: tests/services/test_permissions.py.)
    as_member = Actor.user(member)
    assert svc.role_of(as_member, team_id, member) is Role.MEMBER
    assert (cache.stats().hits, cache.stats().misses) == (0, 1)
    assert svc.role_of(as_member, team_id, member) is Role.MEMBER
    assert (cache.stats().hits, cache.stats().misses) == (1, 1)

    svc.change_role(me, team_id, member, Role.OWNER)
    assert cache.stats().invalidations == 1
    assert svc.role_of(as_member, team_id, member) is Role.OWNER
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (1, 2)
    assert svc.role_of(as_member, team_id, member) is Role.OWNER
    assert cache.stats().hits == 2


@backends
def test_hits_do_not_reach_the_database(
    clean_db: Database, make_cache: Callable[[], QueryCache], team
) -> None:
    """A write that bypasses the service is not seen until the key is invalidated or expires."""
    team_id, owner, member, _ = team
    svc = MembershipService(clean_db, make_cache())
    assert svc.role_of(SYSTEM, team_id, member) is Role.MEMBER
    with as_system(clean_db) as conn:
        conn.execute(
            "UPDATE team_members SET role = 'OWNER' WHERE team_id = %s AND user_id = %s",
            (team_id, member),
        )
    assert svc.role_of(SYSTEM, team_id, member) is Role.MEMBER  # served from the cache
    svc.change_role(Actor.user(owner), team_id, member, Role.MEMBER)
    assert svc.role_of(SYSTEM, team_id, member) is Role.MEMBER


@backends
def test_absent_answers_are_cached_and_invalidated(
    clean_db: Database, make_cache: Callable[[], QueryCache], team
) -> None:
    team_id, owner, _, outsider = team
    cache = make_cache()
    svc = MembershipService(clean_db, cache)
    assert svc.role_of(SYSTEM, team_id, outsider) is None
    assert svc.role_of(SYSTEM, team_id, outsider) is None
    assert cache.stats().hits == 1
    svc.add_member(Actor.user(owner), team_id, outsider)
    assert svc.role_of(SYSTEM, team_id, outsider) is Role.MEMBER


@backends
def test_every_membership_write_invalidates(
    clean_db: Database, make_cache: Callable[[], QueryCache], team
) -> None:
    team_id, owner, member, outsider = team
    cache = make_cache()
    svc = MembershipService(clean_db, cache)
    me = Actor.user(owner)

    def role(user: uuid.UUID) -> Role | None:
        return svc.role_of(SYSTEM, team_id, user)

    steps: list[tuple[Callable[[], object], dict[uuid.UUID, Role | None]]] = [
        (lambda: svc.add_member(me, team_id, outsider), {outsider: Role.MEMBER}),
        (lambda: svc.change_role(me, team_id, outsider, Role.OWNER), {outsider: Role.OWNER}),
        (lambda: svc.remove_member(me, team_id, outsider), {outsider: None}),
        (
            lambda: svc.transfer_ownership(me, team_id, member),
            {member: Role.OWNER, owner: Role.MEMBER},
        ),
        (lambda: svc.leave(Actor.user(owner), team_id), {owner: None}),
    ]
    for write, expected in steps:
        for user in (owner, member, outsider):
            role(user)  # warm every key
        write()
        for user, answer in expected.items():
            assert role(user) is answer, (write, user)


@backends
def test_accepting_an_invitation_invalidates(
    clean_db: Database, make_cache: Callable[[], QueryCache], team
) -> None:
    team_id, owner, _, outsider = team
    cache = make_cache()
    members = MembershipService(clean_db, cache)
    invitations = InvitationService(clean_db, cache)
    issued = invitations.invite(Actor.user(owner), team_id, user_email(clean_db, outsider))
    assert members.role_of(SYSTEM, team_id, outsider) is None
    assert members.role_of(SYSTEM, team_id, outsider) is None
    invitations.accept(Actor.user(outsider), issued.token)
    assert members.role_of(SYSTEM, team_id, outsider) is Role.MEMBER


@backends
def test_invalidation_reaches_other_instances_of_a_shared_cache(
    clean_db: Database, make_cache: Callable[[], QueryCache], team
) -> None:
    """Redis: two processes (two cache clients, one prefix) never serve each other stale rows."""
    team_id, owner, member, _ = team
    writer_cache, reader_cache = make_cache(), make_cache()
    if isinstance(writer_cache, MemoryCache):
        reader_cache = writer_cache  # one process: one cache object shared by its services
    writer = MembershipService(clean_db, writer_cache)
    reader = MembershipService(clean_db, reader_cache)
    assert reader.role_of(SYSTEM, team_id, member) is Role.MEMBER
    writer.change_role(Actor.user(owner), team_id, member, Role.OWNER)
    assert reader.role_of(SYSTEM, team_id, member) is Role.OWNER


def test_memory_cache_ttl_and_lru(clean_db: Database, team) -> None:
    team_id, owner, member, outsider = team
    cache = MemoryCache(maxsize=2, ttl_s=0.2)
    svc = MembershipService(clean_db, cache)
    for user in (owner, member, outsider):  # the third key evicts the least recently used
        svc.role_of(SYSTEM, team_id, user)
    assert cache.stats().size == 2
    assert cache.get(role_key(team_id, owner)) is None
    assert cache.get(role_key(team_id, outsider)) is not None
    time.sleep(0.25)
    assert cache.stats().size == 0
    misses = cache.stats().misses
    assert svc.role_of(SYSTEM, team_id, member) is Role.MEMBER
    assert cache.stats().misses == misses + 1


def test_failed_write_keeps_the_cached_answer(clean_db: Database, team) -> None:
    """Nothing is invalidated when the transaction did not commit (the answer did not change)."""
    team_id, owner, _, _ = team
    cache = MemoryCache()
    svc = MembershipService(clean_db, cache)
    assert svc.role_of(SYSTEM, team_id, owner) is Role.OWNER
    with pytest.raises(Forbidden, match="at least one owner"):
        svc.leave(Actor.user(owner), team_id)
    assert cache.stats().invalidations == 0
    assert svc.role_of(SYSTEM, team_id, owner) is Role.OWNER
    assert cache.stats().hits == 1
