"""UserService against real PostgreSQL: sign-up, sign-in, profile, tags, soft delete, listings."""

from __future__ import annotations

import threading
import uuid
from typing import Any, Literal

import psycopg
import pytest
from argon2 import PasswordHasher

from dbops.db import Database
from dbops.errors import Conflict, Forbidden, InvalidInput, NotFound
from dbops.models import Role
from dbops.services._base import Actor
from dbops.services.teams import TeamService
from dbops.services.users import UserService, UserView
from tests.services._helpers import (
    FAST_HASHER,
    PASSWORD,
    SYSTEM,
    SYSTEM_CONTEXT,
    add_member,
    as_system,
    make_team,
    statement_calls,
)


@pytest.fixture
def users(clean_db: Database) -> UserService:
    return UserService(clean_db, hasher=FAST_HASHER)


def make_user(users: UserService, n: int | str, **kw: Any) -> UserView:
    return users.create(
        SYSTEM, email=f"user{n}@example.com", password=PASSWORD, display_name=f"User {n}", **kw
    )


# -- create and get ---------------------------------------------------------------------------


def test_create_normalizes_email_and_hides_the_hash(users: UserService, db: Database) -> None:
    user = users.create(
        SYSTEM,
        email="  Ada.Lovelace@Example.COM ",
        password=PASSWORD,
        display_name=" Ada ",
        tags=["Math", "math", " history "],
        profile={"lang": "en"},
    )
    assert user.email == "ada.lovelace@example.com"
    assert user.display_name == "Ada"
    assert user.role is Role.MEMBER
    assert user.tags == ("math", "history")
    assert user.profile == {"lang": "en"}
    assert user.created_at.tzinfo is not None
    assert not hasattr(user, "password_hash")
    with db.read(SYSTEM_CONTEXT) as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE id = %s", (user.id,)).fetchone()
    assert row is not None
    assert row[0].startswith("$argon2id$")
    assert PASSWORD not in row[0]


def test_get_by_id_and_by_email_any_case(users: UserService) -> None:
    user = make_user(users, 1)
    assert users.get(SYSTEM, user.id) == user
    assert users.get_by_email(SYSTEM, "USER1@example.com ") == user
    with pytest.raises(NotFound):
        users.get_by_email(SYSTEM, "nobody@example.com")
    with pytest.raises(NotFound):
        users.get_by_email(SYSTEM, "not an email")
    with pytest.raises(NotFound):
        users.get(SYSTEM, uuid.uuid4())


def test_duplicate_email_in_any_case_is_a_conflict_on_email(users: UserService) -> None:
    make_user(users, 1)
    with pytest.raises(Conflict) as err:
        users.create(SYSTEM, email="USER1@EXAMPLE.com", password=PASSWORD, display_name="Twin")
    assert err.value.field == "email"
    assert "already exists" in str(err.value)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "no-at-sign"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"email": "a b@example.com"}, "email"),
        ({"email": "x" * 250 + "@example.com"}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "p" * 257}, "password"),
        ({"display_name": "   "}, "display_name"),
        ({"display_name": "n" * 201}, "display_name"),
        ({"tags": ["ok", ""]}, "tags"),
        ({"tags": [f"t{i}" for i in range(51)]}, "tags"),
    ],
)
def test_invalid_input_names_the_field_and_never_echoes_it(
    users: UserService, fields: dict[str, object], field: str
) -> None:
    data: dict[str, object] = {
        "email": "valid@example.com",
        "password": PASSWORD,
        "display_name": "Valid",
    } | fields
    with pytest.raises(InvalidInput) as err:
        users.create(SYSTEM, **data)  # type: ignore[arg-type]
    assert err.value.field == field
    assert str(err.value).startswith(field)
    for value in fields.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in str(err.value)
    assert err.value.__cause__ is None  # pydantic's error (with the input) is not chained
    assert users.list_users(SYSTEM).items == ()


# -- authenticate -----------------------------------------------------------------------------


def test_authenticate_accepts_the_password_and_nothing_else(users: UserService) -> None:
    user = make_user(users, 1)
    assert users.authenticate(SYSTEM, " User1@Example.com", PASSWORD) == user
    with pytest.raises(Forbidden) as wrong:
        users.authenticate(SYSTEM, "user1@example.com", PASSWORD + "!")
    with pytest.raises(Forbidden) as unknown:
        users.authenticate(SYSTEM, "ghost@example.com", PASSWORD)
    with pytest.raises(Forbidden) as malformed:
        users.authenticate(SYSTEM, "ghost", PASSWORD)
    # One message for every failure: it does not tell whether the email exists.
    assert str(wrong.value) == str(unknown.value) == str(malformed.value)
    assert PASSWORD not in str(wrong.value)


def test_authenticate_rehashes_when_parameters_change(clean_db: Database) -> None:
    old = UserService(clean_db, hasher=FAST_HASHER)
    user = make_user(old, 1)
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    new = UserService(clean_db, hasher=stronger)

    def stored_hash() -> str:
        with clean_db.read(SYSTEM_CONTEXT) as conn:
            row = conn.execute("SELECT password_hash FROM users WHERE id = %s", (user.id,))
            return str(row.fetchone()[0])  # type: ignore[index]

    before = stored_hash()
    assert "t=1" in before
    assert new.authenticate(SYSTEM, user.email, PASSWORD).id == user.id
    after = stored_hash()
    assert after != before
    assert "m=16,t=2,p=1" in after
    assert not stronger.check_needs_rehash(after)
    # Still the same password, under the new parameters.
    assert new.authenticate(SYSTEM, user.email, PASSWORD).id == user.id
    assert stored_hash() == after


def test_soft_deleted_user_cannot_authenticate(users: UserService) -> None:
    user = make_user(users, 1)
    users.delete(Actor.user(user.id), user.id)
    with pytest.raises(Forbidden):
        users.authenticate(SYSTEM, user.email, PASSWORD)


# -- profile, name, tags ----------------------------------------------------------------------


def test_update_profile_merges_and_removes_keys(users: UserService) -> None:
    user = make_user(users, 1, profile={"lang": "en", "theme": "dark", "tz": "UTC"})
    me = Actor.user(user.id)
    updated = users.update_profile(me, user.id, set={"lang": "fr", "n": [1, 2]}, remove=["tz"])
    assert updated.profile == {"lang": "fr", "theme": "dark", "n": [1, 2]}
    assert updated.updated_at > user.updated_at
    assert users.get(me, user.id).profile == updated.profile


def test_concurrent_profile_patches_of_different_keys_both_survive(users: UserService) -> None:
    """The merge runs in the database, so no patch overwrites another (no read-modify-write)."""
    user = make_user(users, 1)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def patch(i: int) -> None:
        try:
            barrier.wait()
            users.update_profile(SYSTEM, user.id, set={f"k{i}": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=patch, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert users.get(SYSTEM, user.id).profile == {f"k{i}": i for i in range(8)}


def test_only_the_user_or_a_system_actor_changes_an_account(
    users: UserService, clean_db: Database
) -> None:
    alice, bob, eve = make_user(users, "alice"), make_user(users, "bob"), make_user(users, "eve")
    make_team(clean_db, owners=[alice.id], members=[bob.id])
    # bob is alice's teammate: he sees her account, so he is refused (Forbidden); eve shares no
    # team with her: she gets the error of an account that does not exist (docs/permissions.md).
    for who, error, nobody in (
        (bob, Forbidden, None),
        (eve, NotFound, ("user not found", "no deleted user with this id")),
    ):
        actor = Actor.user(who.id)
        calls = (
            lambda me, a: users.update_profile(me, a, set={"x": 1}),
            lambda me, a: users.set_tags(me, a, ["x"]),
            lambda me, a: users.rename(me, a, "Mallory"),
            lambda me, a: users.delete(me, a),
            lambda me, a: users.restore(me, a),
        )
        for call in calls:
            with pytest.raises(error) as err:
                call(actor, alice.id)
            if nobody is not None:
                with pytest.raises(NotFound) as missing:
                    call(actor, uuid.uuid4())
                assert str(err.value) == str(missing.value) in nobody
    assert users.get(SYSTEM, alice.id) == alice


def test_rename_and_set_tags(users: UserService) -> None:
    user = make_user(users, 1, tags=["a"])
    me = Actor.user(user.id)
    assert users.rename(me, user.id, "  Grace  ").display_name == "Grace"
    assert users.set_tags(me, user.id, ["B", "c", "b"]).tags == ("b", "c")
    assert users.set_tags(me, user.id, []).tags == ()
    with pytest.raises(InvalidInput):
        users.rename(me, user.id, "")
    with pytest.raises(NotFound):
        users.set_tags(SYSTEM, uuid.uuid4(), ["x"])


def test_list_users_by_tags_any_and_all(users: UserService) -> None:
    a = make_user(users, "a", tags=["red", "blue"])
    b = make_user(users, "b", tags=["blue"])
    make_user(users, "c", tags=["green"])
    assert [u.id for u in users.list_users(SYSTEM, tags_any=["red", "blue"]).items] == [a.id, b.id]
    assert [u.id for u in users.list_users(SYSTEM, tags_all=["blue", "red"]).items] == [a.id]
    assert [u.id for u in users.list_users(SYSTEM, tags_any=["BLUE"], tags_all=["blue"]).items] == [
        a.id,
        b.id,
    ]
    assert users.list_users(SYSTEM, tags_any=["purple"]).items == ()


# -- soft delete and restore ------------------------------------------------------------------


def test_soft_delete_removes_memberships_and_frees_the_email(
    users: UserService, clean_db: Database
) -> None:
    teams = TeamService(clean_db)
    owner, member = make_user(users, "owner"), make_user(users, "member")
    team = teams.create(Actor.user(owner.id), name="Acme", slug="acme")
    add_member(clean_db, team.id, member.id, Role.MEMBER)

    users.delete(Actor.user(member.id), member.id)

    with pytest.raises(NotFound):
        users.get(SYSTEM, member.id)
    gone = users.get(SYSTEM, member.id, include_deleted=True)
    assert gone.deleted_at is not None
    assert teams.teams_of_user(SYSTEM, member.id) == []
    assert teams.teams_of_user(SYSTEM, owner.id)[0].member_count == 1
    assert member.id not in [u.id for u in users.list_users(SYSTEM).items]
    assert member.id in [u.id for u in users.list_users(SYSTEM, include_deleted=True).items]
    with pytest.raises(NotFound):
        users.delete(SYSTEM, member.id)

    # The email is free again; restoring the old account then collides with the new one.
    again = make_user(users, "member")
    with pytest.raises(Conflict) as err:
        users.restore(SYSTEM, member.id)
    assert err.value.field == "email"
    users.delete(SYSTEM, again.id)
    restored = users.restore(SYSTEM, member.id)
    assert restored.deleted_at is None
    assert restored.email == member.email
    with pytest.raises(NotFound):
        users.restore(SYSTEM, member.id)  # not deleted any more


def test_last_owner_of_a_live_team_cannot_be_deleted(
    users: UserService, clean_db: Database
) -> None:
    teams = TeamService(clean_db)
    owner, other = make_user(users, "owner"), make_user(users, "other")
    acme = teams.create(Actor.user(owner.id), name="Acme", slug="acme")
    teams.create(Actor.user(owner.id), name="Globex", slug="globex")
    add_member(clean_db, acme.id, other.id, Role.MEMBER)

    with pytest.raises(Forbidden) as err:
        users.delete(Actor.user(owner.id), owner.id)
    assert "acme" in str(err.value)
    assert "globex" in str(err.value)
    # Nothing half-done: the user is live and every membership is still there.
    assert users.get(SYSTEM, owner.id).deleted_at is None
    assert len(teams.teams_of_user(SYSTEM, owner.id)) == 2

    # A second owner in acme, and globex deleted: now the user may go.
    add_member(clean_db, acme.id, make_user(users, "co").id, Role.OWNER)
    with pytest.raises(Forbidden) as err:
        users.delete(SYSTEM, owner.id)
    assert "globex" in str(err.value)
    assert "acme" not in str(err.value)
    globex = teams.get_by_slug(SYSTEM, "globex")
    teams.delete(Actor.user(owner.id), globex.id)
    users.delete(SYSTEM, owner.id)
    assert teams.teams_of_user(SYSTEM, owner.id) == []
    assert teams.teams_of_user(SYSTEM, other.id)[0].member_count == 2


# -- keyset pagination ------------------------------------------------------------------------


def test_keyset_pages_cover_every_user_once(users: UserService) -> None:
    created = [make_user(users, i).id for i in range(11)]
    seen: list[uuid.UUID] = []
    cursor = None
    pages = 0
    while True:
        page = users.list_users(SYSTEM, limit=4, cursor=cursor)
        seen += [u.id for u in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == created  # oldest first, ties broken by id
    assert pages == 3


@pytest.mark.parametrize("cursor", ["garbage", "", "W10", "WyJ4IiwgInkiXQ"])
def test_a_forged_cursor_is_invalid_input(users: UserService, cursor: str) -> None:
    with pytest.raises(InvalidInput) as err:
        users.list_users(SYSTEM, cursor=cursor)
    assert err.value.field == "cursor"


def test_keyset_pagination_is_stable_under_concurrent_inserts(users: UserService) -> None:
    existing = {make_user(users, i).id for i in range(25)}
    stop = threading.Event()
    inserted: list[uuid.UUID] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            inserted.append(make_user(users, f"late{n}").id)
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen: list[uuid.UUID] = []
        cursor = None
        while True:
            page = users.list_users(SYSTEM, limit=3, cursor=cursor)
            seen += [u.id for u in page.items]
            if page.next_cursor is None or len(seen) > 200:
                break
            cursor = page.next_cursor
    finally:
        stop.set()
        thread.join()
    assert inserted, "the writer thread inserted nothing while paging"
    assert len(seen) == len(set(seen)), "a row was returned twice"
    assert existing <= set(seen), "a row that existed before paging was skipped"


# -- performance shape ------------------------------------------------------------------------


def test_get_by_email_is_one_prepared_statement(clean_db: Database, migrated: str) -> None:
    from dbops.config import to_libpq_url
    from dbops.db import open_database
    from tests.fixtures.db import make_settings

    users = UserService(clean_db, hasher=FAST_HASHER)
    user = make_user(users, 1)
    # One pooled connection, so the statement is prepared on the connection we inspect.
    single = open_database(make_settings(migrated, pool_min_size=1, pool_max_size=1), migrated)
    try:
        service = UserService(single, hasher=FAST_HASHER)
        for _ in range(3):
            service.get_by_email(SYSTEM, user.email)
        with psycopg.connect(to_libpq_url(single.url), autocommit=True) as probe:
            before = statement_calls(probe)
            assert service.get_by_email(SYSTEM, user.email) == user
            assert statement_calls(probe) - before == 1
        with single.read(SYSTEM_CONTEXT) as conn:
            prepared = [r[0] for r in conn.execute("SELECT statement FROM pg_prepared_statements")]
        assert any("WHERE email = $1" in s and "FROM users" in s for s in prepared)
    finally:
        single.close()


# -- promises held by a test each -------------------------------------------------------------


def test_a_soft_deleted_co_owner_does_not_count_as_an_owner(
    users: UserService, clean_db: Database
) -> None:
    """Deleting a user whose only co-owner is soft-deleted would leave no live owner."""
    teams = TeamService(clean_db)
    owner, ghost = make_user(users, "owner"), make_user(users, "ghost")
    acme = teams.create(Actor.user(owner.id), name="Acme", slug="acme")
    add_member(clean_db, acme.id, ghost.id, Role.OWNER)
    # Soft-deleted behind the service's back: the OWNER row stays.
    with as_system(clean_db) as conn:
        conn.execute("UPDATE users SET deleted_at = now() WHERE id = %s", (ghost.id,))
    with pytest.raises(Forbidden, match="acme"):
        users.delete(SYSTEM, owner.id)
    assert users.get(SYSTEM, owner.id).deleted_at is None
    assert [t.slug for t in teams.teams_of_user(SYSTEM, owner.id)] == ["acme"]


class CountingHasher(PasswordHasher):
    """FAST_HASHER's parameters, counting the argon2 work done."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified: list[str] = []
        self.hashed = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified.append(str(hash))
        return super().verify(hash, password)

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.hashed += 1
        return super().hash(password, salt=salt)


def test_a_wrong_password_costs_the_same_hashing_for_unknown_and_known_emails(
    clean_db: Database,
) -> None:
    """No account enumeration by timing: an unknown address still runs one argon2 verify."""
    hasher = CountingHasher()
    users = UserService(clean_db, hasher=hasher)
    user = make_user(users, 1)
    work: dict[str, tuple[int, int, set[str]]] = {}
    for _ in range(2):  # the second round: the dummy hash exists already
        for name, email in [
            ("known", user.email),
            ("unknown", "ghost@example.com"),
            ("malformed", "ghost"),
        ]:
            verified, hashed = len(hasher.verified), hasher.hashed
            with pytest.raises(Forbidden):
                users.authenticate(SYSTEM, email, PASSWORD + "!")
            params = {h.split("$")[3] for h in hasher.verified[verified:]}
            work[name] = (len(hasher.verified) - verified, hasher.hashed - hashed, params)
    # One verify each, no hashing on the request path (the dummy is made once), and the dummy
    # has the real hashes' argon2 parameters (same cost).
    assert work["known"] == work["unknown"] == work["malformed"] == (1, 0, {"m=8,t=1,p=1"})
