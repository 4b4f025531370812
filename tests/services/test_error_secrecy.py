"""Key violations never show other tenants' rows: no DETAIL values in any message.

PostgreSQL's unique, exclusion and foreign-key errors carry ``DETAIL: Key (col)=(value)``, the
value of the row the change collided with (another tenant's e-mail, team id). Each case is
provoked for real; the driver's DETAIL is checked to hold the value (so the test means
something), and the dbops error's message, args and repr must not.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from dbops import errors
from dbops.db import Database
from dbops.errors import Conflict, DbopsError, NotFound
from dbops.services import InvitationService, TeamService, UserService, UserView
from dbops.services._base import Actor, unit_of_work
from tests.services._helpers import FAST_HASHER, PASSWORD, SYSTEM


def shown(err: DbopsError) -> str:
    """Everything of the error a caller may print or send back."""
    return " ".join([str(err), repr(err), repr(err.args), str(getattr(err, "field", ""))])


def assert_detail_hidden(err: DbopsError, *secrets: str) -> None:
    cause = err.__cause__
    assert isinstance(cause, psycopg.Error)
    detail = cause.diag.message_detail or ""
    # Under row-level security PostgreSQL leaves the key out of the DETAIL itself when the
    # role may not see every row (the services run as dbops_app); otherwise it is there.
    assert not detail or any(s in detail for s in secrets), f"unexpected DETAIL: {detail!r}"
    for secret in secrets:
        assert secret not in shown(err), f"{secret!r} leaked into {shown(err)!r}"
    assert "Key (" not in shown(err)
    assert "DETAIL" not in shown(err)


@pytest.fixture
def users(clean_db: Database) -> UserService:
    return UserService(clean_db, hasher=FAST_HASHER)


@pytest.fixture
def alice(users: UserService) -> UserView:
    return users.create(
        SYSTEM, email="Alice.Private@Example.com", password=PASSWORD, display_name="Alice"
    )


def test_signing_up_with_another_users_email_keeps_the_field_not_the_value(
    users: UserService, alice: UserView
) -> None:
    with pytest.raises(Conflict) as err:
        users.create(
            Actor.system("signup"),
            email="alice.private@example.com",
            password=PASSWORD,
            display_name="Mallory",
        )
    assert err.value.field == "email"
    assert str(err.value) == "a user with this email already exists"
    assert_detail_hidden(err.value, "alice.private@example.com")
    assert str(alice.id) not in shown(err.value)


def test_a_slug_another_tenant_owns_is_taken_without_saying_by_whom(
    clean_db: Database, users: UserService, alice: UserView
) -> None:
    teams = TeamService(clean_db)
    theirs = teams.create(Actor.user(alice.id), name="Secret Project", slug="secret")
    bob = users.create(SYSTEM, email="bob@example.com", password=PASSWORD, display_name="Bob")
    mine = teams.create(Actor.user(bob.id), name="Bob's", slug="bobs")
    for attempt in (
        lambda: teams.create(Actor.user(bob.id), name="Mine", slug="secret"),
        lambda: teams.change_slug(Actor.user(bob.id), mine.id, "secret"),
    ):
        with pytest.raises(Conflict) as err:
            attempt()
        assert err.value.field == "slug"
        assert str(err.value) == "a team with this slug already exists"
        assert_detail_hidden(err.value, "secret")
        for other in (str(theirs.id), theirs.name, alice.email):
            assert other not in shown(err.value)


def test_a_second_pending_invitation_names_the_field_only(
    clean_db: Database, alice: UserView
) -> None:
    teams, invitations = TeamService(clean_db), InvitationService(clean_db)
    team = teams.create(Actor.user(alice.id), name="Acme", slug="acme")
    invitations.invite(Actor.user(alice.id), team.id, "Carol.Secret@example.com")
    with pytest.raises(Conflict) as err:
        invitations.invite(Actor.user(alice.id), team.id, "carol.secret@example.com")
    assert err.value.field == "email"
    assert_detail_hidden(err.value, "carol.secret@example.com", str(team.id))


def test_a_foreign_key_violation_names_no_row(clean_db: Database, alice: UserView) -> None:
    ghost = uuid.uuid4()
    team = TeamService(clean_db).create(Actor.user(alice.id), name="Acme", slug="acme")
    with pytest.raises(NotFound) as err, unit_of_work(clean_db, SYSTEM) as uow:
        uow.conn.execute(
            "INSERT INTO team_members (team_id, user_id, role) VALUES (%s, %s, 'MEMBER')",
            (team.id, ghost),
        )
    assert str(err.value) == "a referenced row does not exist"
    assert_detail_hidden(err.value, str(ghost))


def test_an_unregistered_unique_constraint_gives_the_column_only(
    clean_db: Database, alice: UserView, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback for a constraint with no human message reads the column from the DETAIL,
    and nothing after its ``=``."""
    monkeypatch.setattr(errors, "UNIQUE_CONSTRAINTS", {})
    with pytest.raises(Conflict) as err, unit_of_work(clean_db, SYSTEM) as uow:
        uow.conn.execute(
            "INSERT INTO users (email, password_hash, display_name) VALUES (%s, 'h', 'x')",
            ("alice.private@example.com",),
        )
    assert (str(err.value), err.value.field) == ("email is already taken", "email")
    assert_detail_hidden(err.value, "alice.private@example.com")


#: An exclusion constraint on a temporary table, then the same value twice (one statement).
EXCLUSION_TWICE = """
CREATE TEMP TABLE slots (owner_email text, EXCLUDE USING btree (owner_email WITH =));
INSERT INTO slots VALUES ('dora.secret@example.com'), ('dora.secret@example.com');
"""


def test_other_integrity_errors_are_generic_too(clean_db: Database) -> None:
    """An exclusion constraint (none in the schema today) says which column, not which value."""
    with pytest.raises(Conflict) as err, unit_of_work(clean_db, SYSTEM) as uow:
        uow.conn.execute(EXCLUSION_TWICE)
    assert err.value.field == "owner_email"
    assert_detail_hidden(err.value, "dora.secret@example.com")
