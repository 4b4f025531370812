"""TeamService against real PostgreSQL: ownership, role rules, soft delete, cache, listings."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from dbops.config import to_libpq_url
from dbops.db import Database
from dbops.errors import Conflict, Forbidden, InvalidInput, NotFound
from dbops.models import Role
from dbops.services._base import Actor
from dbops.services._cache import MemoryCache, QueryCache
from dbops.services.teams import TeamService, TeamView
from dbops.services.users import UserService, UserView
from tests.services._helpers import (
    FAST_HASHER,
    PASSWORD,
    SYSTEM,
    SYSTEM_CONTEXT,
    add_member,
    statement_calls,
)


@pytest.fixture
def users(clean_db: Database) -> UserService:
    return UserService(clean_db, hasher=FAST_HASHER)


@pytest.fixture
def teams(clean_db: Database) -> TeamService:
    return TeamService(clean_db, MemoryCache())


@pytest.fixture
def owner(users: UserService) -> UserView:
    return make_user(users, "owner")


def make_user(users: UserService, n: int | str) -> UserView:
    return users.create(
        SYSTEM, email=f"{n}@example.com", password=PASSWORD, display_name=f"User {n}"
    )


def count_rows(db: Database, table: str) -> int:
    with db.read(SYSTEM_CONTEXT) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


# -- create -----------------------------------------------------------------------------------


def test_create_makes_the_creator_owner_in_the_same_transaction(
    teams: TeamService, owner: UserView
) -> None:
    team = teams.create(
        Actor.user(owner.id), name=" Acme Corp ", slug=" Acme-Corp", settings={"plan": "pro"}
    )
    assert (team.name, team.slug, team.settings) == ("Acme Corp", "acme-corp", {"plan": "pro"})
    [mine] = teams.teams_of_user(Actor.user(owner.id), owner.id)
    assert (mine.team_id, mine.slug, mine.role, mine.member_count) == (
        team.id,
        "acme-corp",
        Role.OWNER,
        1,
    )


def test_create_rolls_back_the_team_when_the_owner_is_not_a_live_user(
    teams: TeamService, users: UserService, clean_db: Database
) -> None:
    with pytest.raises(NotFound):
        teams.create(SYSTEM, name="Orphan", slug="orphan", owner_id=uuid.uuid4())
    gone = make_user(users, "gone")
    users.delete(SYSTEM, gone.id)
    with pytest.raises(NotFound):
        teams.create(SYSTEM, name="Orphan", slug="orphan", owner_id=gone.id)
    assert count_rows(clean_db, "teams") == 0
    # The slug was never taken.
    owner = make_user(users, "real")
    assert teams.create(SYSTEM, name="Orphan", slug="orphan", owner_id=owner.id).slug == "orphan"


def test_create_ownership_rules(teams: TeamService, owner: UserView, users: UserService) -> None:
    with pytest.raises(InvalidInput) as err:
        teams.create(SYSTEM, name="No owner", slug="no-owner")
    assert err.value.field == "owner_id"
    other = make_user(users, "other")
    with pytest.raises(Forbidden):
        teams.create(Actor.user(owner.id), name="For you", slug="for-you", owner_id=other.id)


def test_duplicate_slug_is_a_conflict_on_slug(teams: TeamService, owner: UserView) -> None:
    me = Actor.user(owner.id)
    teams.create(me, name="Acme", slug="acme")
    with pytest.raises(Conflict) as err:
        teams.create(me, name="Acme 2", slug="ACME")
    assert err.value.field == "slug"
    assert "slug" in str(err.value)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"slug": "no spaces"}, "slug"),
        ({"slug": "-leading"}, "slug"),
        ({"slug": "double--hyphen"}, "slug"),
        ({"slug": "x" * 64}, "slug"),
        ({"name": ""}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"settings": {"": 1}}, "settings"),
    ],
)
def test_invalid_team_input(
    teams: TeamService, owner: UserView, fields: dict[str, object], field: str
) -> None:
    data: dict[str, object] = {"name": "Valid", "slug": "valid"} | fields
    with pytest.raises(InvalidInput) as err:
        teams.create(Actor.user(owner.id), **data)  # type: ignore[arg-type]
    assert err.value.field == field


# -- role rules and updates -------------------------------------------------------------------


def test_only_owners_change_a_team(
    teams: TeamService, owner: UserView, users: UserService, clean_db: Database
) -> None:
    team = teams.create(Actor.user(owner.id), name="Acme", slug="acme")
    member, stranger = make_user(users, "member"), make_user(users, "stranger")
    add_member(clean_db, team.id, member.id, Role.MEMBER)
    # A member sees the team but lacks the role (Forbidden); a stranger does not see it at all
    # and gets the error of a team that does not exist (docs/permissions.md).
    for who, error, message in (
        (member, Forbidden, "only an owner"),
        (stranger, NotFound, "^team not found$"),
    ):
        actor = Actor.user(who.id)
        with pytest.raises(error, match=message):
            teams.rename(actor, team.id, "Mine now")
        with pytest.raises(error, match=message):
            teams.change_slug(actor, team.id, "mine")
        with pytest.raises(error, match=message):
            teams.update_settings(actor, team.id, set={"plan": "free"})
        with pytest.raises(error, match=message):
            teams.delete(actor, team.id)
        with pytest.raises(error, match=message):
            teams.set_location(actor, team.id, 0.0, 0.0)
    assert teams.get(SYSTEM, team.id) == team
    with pytest.raises(NotFound):
        teams.rename(Actor.user(owner.id), uuid.uuid4(), "Nothing")


def test_rename_slug_and_settings(teams: TeamService, owner: UserView) -> None:
    me = Actor.user(owner.id)
    team = teams.create(me, name="Acme", slug="acme", settings={"plan": "free", "seats": 3})
    assert teams.rename(me, team.id, "Acme Inc").name == "Acme Inc"
    assert teams.change_slug(me, team.id, "acme-inc").slug == "acme-inc"
    patched = teams.update_settings(me, team.id, set={"plan": "pro", "sso": True}, remove=["seats"])
    assert patched.settings == {"plan": "pro", "sso": True}
    assert patched.updated_at > team.updated_at
    # A system actor (a job) is not bound by role rules.
    assert teams.rename(SYSTEM, team.id, "Acme Ltd").name == "Acme Ltd"
    with pytest.raises(NotFound):
        teams.get_by_slug(me, "acme")
    assert teams.get_by_slug(me, "acme-inc").name == "Acme Ltd"


def test_change_slug_to_a_taken_one_is_a_conflict(teams: TeamService, owner: UserView) -> None:
    me = Actor.user(owner.id)
    teams.create(me, name="Acme", slug="acme")
    globex = teams.create(me, name="Globex", slug="globex")
    with pytest.raises(Conflict) as err:
        teams.change_slug(me, globex.id, "acme")
    assert err.value.field == "slug"
    assert teams.get(me, globex.id).slug == "globex"


def test_soft_delete_and_restore(teams: TeamService, owner: UserView, users: UserService) -> None:
    me = Actor.user(owner.id)
    team = teams.create(me, name="Acme", slug="acme")
    deleted = teams.delete(me, team.id)
    assert deleted.deleted_at is not None
    with pytest.raises(NotFound):
        teams.get_by_slug(me, "acme")
    with pytest.raises(NotFound):
        teams.get(me, team.id)
    assert teams.get(me, team.id, include_deleted=True).deleted_at is not None
    assert teams.teams_of_user(me, owner.id) == []
    with pytest.raises(NotFound):
        teams.rename(me, team.id, "Ghost")
    with pytest.raises(NotFound):
        teams.delete(me, team.id)

    # The slug is free while the team is deleted; restoring then collides.
    other = teams.create(me, name="New Acme", slug="acme")
    with pytest.raises(Conflict) as err:
        teams.restore(me, team.id)
    assert err.value.field == "slug"
    teams.change_slug(me, other.id, "new-acme")
    restored = teams.restore(me, team.id)
    assert restored.deleted_at is None
    assert teams.get_by_slug(me, "acme").id == team.id
    # Members were kept while deleted.
    assert [t.slug for t in teams.teams_of_user(me, owner.id)] == ["acme", "new-acme"]
    with pytest.raises(NotFound):
        teams.restore(me, team.id)


# -- teams of a user --------------------------------------------------------------------------


def test_teams_of_a_user_with_role_and_count_in_one_statement(
    teams: TeamService, users: UserService, clean_db: Database
) -> None:
    alice, bob = make_user(users, "alice"), make_user(users, "bob")
    expected = {}
    for i in range(6):
        owner = alice if i % 2 == 0 else bob
        team = teams.create(Actor.user(owner.id), name=f"Team {i}", slug=f"team-{i}")
        if owner is bob:
            add_member(clean_db, team.id, alice.id, Role.MEMBER)
        for j in range(i):
            add_member(clean_db, team.id, make_user(users, f"m{i}-{j}").id, Role.MEMBER)
        expected[team.slug] = (
            Role.OWNER if owner is alice else Role.MEMBER,
            1 + i + (owner is bob),
        )
    as_alice = Actor.user(alice.id)
    # Warm the pooled connection as another actor: the measured call then always sends its
    # actor first (decision 0007), which the count leaves out.
    teams.teams_of_user(SYSTEM, alice.id)
    with psycopg.connect(to_libpq_url(clean_db.url), autocommit=True) as probe:
        before = statement_calls(probe, actor_settings=False)
        mine = teams.teams_of_user(as_alice, alice.id)
        # Not counting a set_config when the pooled connection carried another actor (0007).
        statements = statement_calls(probe, actor_settings=False) - before
    assert statements == 1, "teams of a user must be one statement, not one per team"
    assert {t.slug: (t.role, t.member_count) for t in mine} == expected
    assert [t.name for t in mine] == sorted(t.name for t in mine)
    with pytest.raises(Forbidden):
        teams.teams_of_user(Actor.user(bob.id), alice.id)


# -- team by slug cache -----------------------------------------------------------------------


def test_team_by_slug_is_cached_with_hit_and_miss_counters(
    clean_db: Database, cache: QueryCache, owner: UserView
) -> None:
    teams = TeamService(clean_db, cache)
    me = Actor.user(owner.id)
    team = teams.create(me, name="Acme", slug="acme")
    # A miss: one statement that returns the team only to a member; the team is stored.
    assert teams.get_by_slug(me, "acme") == team
    assert (cache.stats().hits, cache.stats().misses) == (0, 1)
    # A hit, then the membership check through the cached role check (a miss the first time).
    assert teams.get_by_slug(me, "acme") == team
    assert (cache.stats().hits, cache.stats().misses) == (1, 2)
    # Both served from the cache now: no statement reaches the database.
    with psycopg.connect(to_libpq_url(clean_db.url), autocommit=True) as probe:
        before = statement_calls(probe)
        assert teams.get_by_slug(me, "ACME ") == team
        assert teams.get_by_slug(SYSTEM, "acme") == team
        assert statement_calls(probe) - before == 0
    assert (cache.stats().hits, cache.stats().misses) == (4, 2)
    # Absent slugs are cached too, when a system actor looked: a user actor's "no team" is its
    # own answer (it sees its teams only) and is not stored for others.
    for actor in (me, me, SYSTEM, SYSTEM, me):
        with pytest.raises(NotFound):
            teams.get_by_slug(actor, "nope")
    assert (cache.stats().hits, cache.stats().misses) == (6, 5)


@pytest.mark.parametrize("reader", ["owner", "system"])
def test_no_stale_read_after_any_write_through_the_service(
    clean_db: Database, cache: QueryCache, owner: UserView, reader: str
) -> None:
    teams = TeamService(clean_db, cache)
    me = Actor.user(owner.id)
    who = me if reader == "owner" else SYSTEM

    def read(slug: str) -> TeamView | None:
        try:
            return teams.get_by_slug(who, slug)
        except NotFound:
            return None

    assert read("acme") is None  # caches "absent"
    team = teams.create(me, name="Acme", slug="acme")
    assert read("acme") == team
    renamed = teams.rename(me, team.id, "Acme Inc")
    assert read("acme") == renamed
    patched = teams.update_settings(me, team.id, set={"plan": "pro"})
    assert read("acme") == patched
    assert read("acme-inc") is None  # caches "absent" for the new slug
    moved = teams.change_slug(me, team.id, "acme-inc")
    assert read("acme") is None
    assert read("acme-inc") == moved
    teams.delete(me, team.id)
    assert read("acme-inc") is None
    restored = teams.restore(me, team.id)
    assert read("acme-inc") == restored
    # A user actor's "no team" answers are not stored, so fewer keys are there to drop.
    assert cache.stats().invalidations >= (4 if reader == "owner" else 6)


# -- listings ---------------------------------------------------------------------------------


def test_list_teams_by_settings_containment_with_keyset_pages(
    teams: TeamService, owner: UserView
) -> None:
    me = Actor.user(owner.id)
    pro = [
        teams.create(me, name=f"Pro {i}", slug=f"pro-{i}", settings={"plan": "pro", "n": i}).id
        for i in range(5)
    ]
    teams.create(me, name="Free", slug="free", settings={"plan": "free"})
    gone = teams.create(me, name="Gone", slug="gone", settings={"plan": "pro"})
    teams.delete(me, gone.id)

    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = teams.list_teams(me, limit=2, cursor=cursor, settings_contains={"plan": "pro"})
        seen += [t.id for t in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == pro
    nested = teams.list_teams(me, settings_contains={"plan": "pro", "n": 3}).items
    assert [t.slug for t in nested] == ["pro-3"]
    everything = teams.list_teams(me, include_deleted=True, limit=500).items
    assert len(everything) == 7
    with pytest.raises(InvalidInput):
        teams.list_teams(me, limit=0)
