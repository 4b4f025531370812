"""The encrypted phone of UserService against real PostgreSQL: set, read, find, who may."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from dbops.crypto import Keyring, generate_key
from dbops.db import Database
from dbops.errors import ConfigError, DecryptionError, Forbidden, InvalidInput, NotFound
from dbops.services._base import Actor
from dbops.services.users import UserService, UserView
from tests.services._helpers import (
    FAST_HASHER,
    PASSWORD,
    SYSTEM,
    SYSTEM_CONTEXT,
    as_system,
    make_team,
)

PHONE = "+14155550123"
SELECT_STORED = (
    "SELECT phone_ciphertext, phone_key_version, phone_blind_index FROM users WHERE id = %s"
)


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring({1: generate_key()}, generate_key())


@pytest.fixture
def users(clean_db: Database, keyring: Keyring) -> UserService:
    return UserService(clean_db, hasher=FAST_HASHER, keyring=keyring)


def make_user(users: UserService, n: int | str) -> UserView:
    return users.create(
        SYSTEM, email=f"phone{n}@example.com", password=PASSWORD, display_name=f"User {n}"
    )


def stored(db: Database, user_id: uuid.UUID) -> tuple:
    with db.read(SYSTEM_CONTEXT) as conn:
        row = conn.execute(SELECT_STORED, (user_id,)).fetchone()
    assert row is not None
    return row


def test_set_and_get_round_trip_stores_only_ciphertext(
    users: UserService, db: Database, keyring: Keyring
) -> None:
    user = make_user(users, 1)
    assert users.get_phone(Actor.user(user.id), user.id) is None
    assert users.set_phone(Actor.user(user.id), user.id, "+1 (415) 555-0123") == PHONE
    assert users.get_phone(Actor.user(user.id), user.id) == PHONE
    assert users.get_phone(SYSTEM, user.id) == PHONE

    ciphertext, version, blind = stored(db, user.id)
    assert version == keyring.current
    assert PHONE.encode() not in bytes(ciphertext)
    assert b"4155550123" not in bytes(ciphertext)
    assert bytes(blind) == keyring.blind_index(PHONE, table="users", column="phone")
    # The hot-path view is unchanged: no phone column in it.
    assert not hasattr(users.get(SYSTEM, user.id), "phone")


def test_clear_removes_all_three_columns(users: UserService, db: Database) -> None:
    user = make_user(users, 1)
    users.set_phone(SYSTEM, user.id, PHONE)
    users.clear_phone(SYSTEM, user.id)
    assert users.get_phone(SYSTEM, user.id) is None
    assert stored(db, user.id) == (None, None, None)


def test_only_the_user_or_a_system_actor(users: UserService, db: Database) -> None:
    user, mate, stranger = make_user(users, 1), make_user(users, 2), make_user(users, 3)
    make_team(db, owners=[user.id], members=[mate.id])
    users.set_phone(SYSTEM, user.id, PHONE)
    # A teammate sees the user, so it is refused; a stranger does not even see the user.
    for who, error, message in ((mate, Forbidden, "themselves"), (stranger, NotFound, "^user")):
        with pytest.raises(error, match=message):
            users.get_phone(Actor.user(who.id), user.id)
        with pytest.raises(error, match=message):
            users.set_phone(Actor.user(who.id), user.id, "+14155550999")
        with pytest.raises(error, match=message):
            users.clear_phone(Actor.user(who.id), user.id)
    with pytest.raises(NotFound, match=r"^user not found$"):
        users.get_phone(Actor.user(stranger.id), uuid.uuid4())
    with pytest.raises(Forbidden, match="system actor"):
        users.find_by_phone(Actor.user(user.id), PHONE)
    assert users.get_phone(SYSTEM, user.id) == PHONE


def test_invalid_phone_is_refused_before_any_sql(users: UserService, db: Database) -> None:
    user = make_user(users, 1)
    for bad in ("555-0123", "+1 555 CALL", "+1\x00415555", "+0 415 555 0123"):
        with pytest.raises(InvalidInput, match="phone") as caught:
            users.set_phone(SYSTEM, user.id, bad)
        assert bad not in str(caught.value)
    with pytest.raises(InvalidInput):
        users.find_by_phone(SYSTEM, "not a phone")
    assert stored(db, user.id) == (None, None, None)


def test_unknown_or_deleted_user_is_not_found(users: UserService) -> None:
    with pytest.raises(NotFound):
        users.set_phone(SYSTEM, uuid.uuid4(), PHONE)
    with pytest.raises(NotFound):
        users.get_phone(SYSTEM, uuid.uuid4())
    user = make_user(users, 1)
    users.set_phone(SYSTEM, user.id, PHONE)
    users.delete(SYSTEM, user.id)
    with pytest.raises(NotFound):
        users.get_phone(SYSTEM, user.id)
    assert users.find_by_phone(SYSTEM, PHONE) == []


def test_find_by_phone_finds_the_right_users(users: UserService) -> None:
    ada, bob, cyd = make_user(users, "ada"), make_user(users, "bob"), make_user(users, "cyd")
    users.set_phone(SYSTEM, ada.id, PHONE)
    users.set_phone(SYSTEM, bob.id, "+442079460958")
    users.set_phone(SYSTEM, cyd.id, "+1-415-555-0123")  # same number, other formatting

    found = users.find_by_phone(SYSTEM, "+1 415 555 0123")
    assert [u.id for u in found] == [ada.id, cyd.id]
    assert all(isinstance(u, UserView) and type(u) is UserView for u in found)
    assert [u.id for u in users.find_by_phone(SYSTEM, "0044 20 7946 0958")] == [bob.id]
    assert users.find_by_phone(SYSTEM, "+14155550100") == []


def test_find_by_phone_uses_the_blind_index(
    users: UserService, db: Database, raw_conn: psycopg.Connection[Any]
) -> None:
    """With statistics that say few users have a phone (on an empty table the planner may as
    well walk any partial index of live users)."""
    from dbops.services.users import SELECT_USERS_BY_PHONE_SQL

    users.set_phone(SYSTEM, make_user(users, "phoned").id, PHONE)
    for n in range(20):
        make_user(users, f"plain{n}")
    raw_conn.execute("ANALYZE users")
    raw_conn.commit()
    with db.read(SYSTEM_CONTEXT) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = conn.execute(
            "EXPLAIN " + SELECT_USERS_BY_PHONE_SQL, {"blind_index": b"\x00" * 32}
        ).fetchall()
        conn.execute("RESET enable_seqscan")
    assert "ix_users_phone_blind_index" in " ".join(str(line[0]) for line in plan)


def test_a_ciphertext_copied_to_another_row_is_a_clear_error(
    users: UserService, db: Database
) -> None:
    ada, bob = make_user(users, "ada"), make_user(users, "bob")
    users.set_phone(SYSTEM, ada.id, PHONE)
    with as_system(db) as conn:  # an attacker with write access copies Ada's phone to Bob
        conn.execute(
            "UPDATE users AS b SET phone_ciphertext = a.phone_ciphertext, "
            "phone_key_version = a.phone_key_version, phone_blind_index = a.phone_blind_index "
            "FROM users AS a WHERE a.id = %s AND b.id = %s",
            (ada.id, bob.id),
        )
    with pytest.raises(DecryptionError, match=f"users.phone of row {bob.id}") as caught:
        users.get_phone(SYSTEM, bob.id)
    assert PHONE not in str(caught.value)
    with pytest.raises(DecryptionError):
        users.find_by_phone(SYSTEM, PHONE)  # never a wrong answer


def test_the_three_columns_are_set_together(users: UserService, db: Database) -> None:
    from dbops.errors import translate_db_errors

    user = make_user(users, 1)
    with (
        pytest.raises(InvalidInput, match="set together"),
        translate_db_errors(),
        as_system(db) as conn,
    ):
        conn.execute("UPDATE users SET phone_key_version = 1 WHERE id = %s", (user.id,))


def test_without_keys_and_with_database_url_the_phone_is_a_config_error(
    clean_db: Database, db: Database
) -> None:
    users = UserService(clean_db, hasher=FAST_HASHER)  # keys from db.settings: none there
    assert not clean_db.settings.embedded
    user = make_user(users, 1)
    with pytest.raises(ConfigError, match="no keys are configured"):
        users.set_phone(SYSTEM, user.id, PHONE)
    with pytest.raises(ConfigError):
        users.find_by_phone(SYSTEM, PHONE)
    assert stored(db, user.id) == (None, None, None)  # never stored in plain text
    assert users.get_phone(SYSTEM, user.id) is None  # nothing to decrypt: no key needed
