"""Schema tests on the real database: CRUD, constraints, cascades, triggers, generated columns."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from sqlalchemy import CheckConstraint, delete, func, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from dbops.db import Database
from dbops.errors import (
    CHECK_CONSTRAINTS,
    UNIQUE_CONSTRAINTS,
    Conflict,
    DbopsError,
    InvalidInput,
    translate_exception,
)
from dbops.models import UPDATED_AT_TABLES as MODEL_UPDATED_AT_TABLES
from dbops.models import Base, Invitation, InvitationStatus, Role, Team, TeamMember, User

INSERT_USER_WITH_ROLE = """
INSERT INTO users (email, password_hash, display_name, role)
VALUES (%(email)s, 'argon2$hash', 'Raw', %(role)s)
"""
INSERT_MEMBER_WITH_ROLE = """
INSERT INTO team_members (team_id, user_id, role)
VALUES (%(team_id)s, %(user_id)s, %(role)s)
"""
SELECT_TIMESTAMPS = "SELECT created_at, updated_at FROM {table} WHERE {key} = %(key)s"
SELECT_TRIGGERS = """
SELECT event_object_table
FROM information_schema.triggers
WHERE action_statement = 'EXECUTE FUNCTION set_updated_at()' AND event_manipulation = 'UPDATE'
"""
SELECT_UPDATED_AT_TABLES = """
SELECT table_name
FROM information_schema.columns
WHERE table_schema = 'public' AND column_name = 'updated_at'
"""
SELECT_CHECK_NAMES = """
SELECT conname
FROM pg_constraint
WHERE contype = 'c' AND connamespace = 'public'::regnamespace
  AND conrelid = ANY (%(tables)s::regclass[])
"""
FOUNDATION_TABLES = ("users", "teams", "team_members", "invitations")


class ConstraintNameMismatch(AssertionError):
    """The database named a different constraint than the model declares."""


# ---------------------------------------------------------------- builders
def _user(email: str = "ada@example.com", **kw: Any) -> User:
    return User(email=email, password_hash="argon2$hash", display_name="Ada", **kw)


def _team(slug: str = "acme", name: str = "Acme Rocket Works", **kw: Any) -> Team:
    return Team(name=name, slug=slug, **kw)


def _invitation(team_id: uuid.UUID, email: str = "bob@example.com", **kw: Any) -> Invitation:
    kw.setdefault("token_hash", os.urandom(32))
    kw.setdefault("expires_at", datetime.now(UTC) + timedelta(days=7))
    return Invitation(team_id=team_id, email=email, **kw)


def _add(db: Database, *rows: object) -> None:
    """Insert ``rows`` in a transaction of their own (committed)."""
    with db.session() as session:
        session.add_all(rows)


def _assert_utc(value: datetime) -> None:
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - value) < timedelta(minutes=5)


def _run_raw_session(db: Database, work: Callable[[Session], object]) -> None:
    """Run ``work`` in a plain SQLAlchemy session: driver errors come out untranslated."""
    with db.sessions() as session, session.begin():
        work(session)
        session.flush()


def _expect_violation(
    db: Database,
    work: Callable[[Session], object],
    *,
    constraint: str,
    error: type[DbopsError],
    field: str | None,
) -> DbopsError:
    """Run ``work`` in a transaction; check the database names ``constraint`` and its mapping."""
    with pytest.raises(sa_exc.IntegrityError) as info:
        _run_raw_session(db, work)
    orig = info.value.orig
    assert isinstance(
        orig, pg_errors.UniqueViolation if error is Conflict else pg_errors.CheckViolation
    )
    if orig.diag.constraint_name != constraint:
        raise ConstraintNameMismatch(f"{orig.diag.constraint_name!r} != {constraint!r}")
    translated = translate_exception(info.value)
    assert type(translated) is error
    assert getattr(translated, "field", None) == field
    registry = UNIQUE_CONSTRAINTS if error is Conflict else CHECK_CONSTRAINTS
    assert str(translated) == registry[constraint][1], "the human message of the constraint"
    return translated


def _count(db: Database, stmt: Any) -> int:
    with db.session() as session:
        return int(session.execute(stmt).scalar_one())


# -------------------------------------------------------------------- CRUD
def test_user_crud_with_server_defaults(clean_db: Database) -> None:
    user = _user(
        "Ada@Example.com",
        profile={"theme": "dark", "langs": ["en", "fr"], "nested": {"n": 1, "ok": True}, "é": "ü"},
        tags=["admin", "beta tester"],
    )
    assert user.id is None
    with clean_db.session() as session:
        session.add(user)
        session.flush()
        # Values the INSERT did not send come back from the database (RETURNING).
        assert isinstance(user.id, uuid.UUID)
        assert user.id.version == 4
        assert user.role is Role.MEMBER
        _assert_utc(user.created_at)
        assert user.updated_at == user.created_at
        assert user.deleted_at is None

    with clean_db.session() as session:
        loaded = session.get(User, user.id)
        assert loaded is not None
        assert loaded.email == "ada@example.com", "email is stored lowercase (migration 0012)"
        assert loaded.profile == {
            "theme": "dark",
            "langs": ["en", "fr"],
            "nested": {"n": 1, "ok": True},
            "é": "ü",
        }
        assert loaded.tags == ["admin", "beta tester"]
        assert loaded.role is Role.MEMBER
        _assert_utc(loaded.created_at)
        loaded.display_name = "Ada Lovelace"
        loaded.role = Role.OWNER
        loaded.tags = [*loaded.tags, "vip"]
        loaded.profile = {**loaded.profile, "theme": "light"}

    with clean_db.session() as session:
        again = session.get(User, user.id)
        assert again is not None
        assert (again.display_name, again.role) == ("Ada Lovelace", Role.OWNER)
        assert again.tags == ["admin", "beta tester", "vip"]
        assert again.profile["theme"] == "light"
        session.delete(again)

    with clean_db.session() as session:
        assert session.get(User, user.id) is None


def test_team_crud(clean_db: Database) -> None:
    team = _team(settings={"plan": "pro", "seats": 10, "features": ["sso"]})
    with clean_db.session() as session:
        session.add(team)
        session.flush()
        assert isinstance(team.id, uuid.UUID)
        _assert_utc(team.created_at)
        assert team.deleted_at is None

    with clean_db.session() as session:
        loaded = session.scalars(select(Team).where(Team.slug == "acme")).one()
        assert loaded.id == team.id
        assert loaded.settings == {"plan": "pro", "seats": 10, "features": ["sso"]}
        loaded.name = "Acme Inc"
        loaded.settings = {}

    with clean_db.session() as session:
        again = session.get(Team, team.id)
        assert again is not None
        assert (again.name, again.settings) == ("Acme Inc", {})
        session.delete(again)

    assert _count(clean_db, select(func.count()).select_from(Team)) == 0


def test_team_member_crud(clean_db: Database) -> None:
    user, team = _user(), _team()
    _add(clean_db, user, team)
    with clean_db.session() as session:
        member = TeamMember(team_id=team.id, user_id=user.id)
        session.add(member)
        session.flush()
        assert member.role is Role.MEMBER
        _assert_utc(member.created_at)

    with clean_db.session() as session:
        loaded_team = session.get(Team, team.id)
        assert loaded_team is not None
        assert [(m.user.email, m.role) for m in loaded_team.members] == [
            ("ada@example.com", Role.MEMBER)
        ]
        loaded_team.members[0].role = Role.OWNER

    with clean_db.session() as session:
        loaded = session.get(TeamMember, (team.id, user.id))
        assert loaded is not None
        assert loaded.role is Role.OWNER
        assert loaded.team.slug == "acme"
        session.delete(loaded)

    with clean_db.session() as session:
        assert session.get(TeamMember, (team.id, user.id)) is None
        assert session.get(User, user.id) is not None, "removing a membership keeps the user"
        assert session.get(Team, team.id) is not None


def test_invitation_crud(clean_db: Database) -> None:
    inviter, team = _user(), _team()
    _add(clean_db, inviter, team)
    token = os.urandom(32)
    expires = datetime.now(UTC) + timedelta(days=3)
    with clean_db.session() as session:
        invitation = _invitation(
            team.id, "Bob@Example.com", invited_by=inviter.id, token_hash=token, expires_at=expires
        )
        session.add(invitation)
        session.flush()
        assert isinstance(invitation.id, uuid.UUID)
        assert invitation.status is InvitationStatus.PENDING
        assert invitation.role is Role.MEMBER
        assert invitation.accepted_at is None

    with clean_db.session() as session:
        loaded = session.get(Invitation, invitation.id)
        assert loaded is not None
        assert loaded.token_hash == token
        assert isinstance(loaded.token_hash, bytes)
        assert loaded.expires_at == expires
        assert loaded.expires_at.utcoffset() == timedelta(0)
        assert loaded.invited_by == inviter.id
        loaded.status = InvitationStatus.ACCEPTED
        loaded.accepted_at = datetime.now(UTC)

    with clean_db.session() as session:
        again = session.get(Invitation, invitation.id)
        assert again is not None
        assert again.status is InvitationStatus.ACCEPTED
        assert again.accepted_at is not None
        _assert_utc(again.accepted_at)
        session.delete(again)

    with clean_db.session() as session:
        assert session.get(Invitation, invitation.id) is None


# ------------------------------------------------------------- constraints
def test_check_constraint_names_match_the_models(db: Database) -> None:
    declared = {
        constraint.name
        for table in (Base.metadata.tables[name] for name in FOUNDATION_TABLES)
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    }
    assert declared <= set(CHECK_CONSTRAINTS), "every check has a human message"
    with db.connection() as conn:
        in_db = {
            row[0] for row in conn.execute(SELECT_CHECK_NAMES, {"tables": list(FOUNDATION_TABLES)})
        }
    if in_db != declared:
        raise ConstraintNameMismatch(f"only in the database: {sorted(in_db - declared)}")


def test_duplicate_email_in_another_case_is_a_conflict(clean_db: Database) -> None:
    _add(clean_db, _user("Ada@Example.com"))
    _expect_violation(
        clean_db,
        lambda s: s.add(_user("ada@EXAMPLE.com")),
        constraint="uq_users_email_live",
        error=Conflict,
        field="email",
    )


def test_unit_of_work_raises_the_translated_error(clean_db: Database) -> None:
    """``Database.session()`` itself raises the dbops error, chained to the driver's."""
    _add(clean_db, _user())
    with pytest.raises(Conflict) as info, clean_db.session() as session:
        session.add(_user("ADA@example.com"))
    assert info.value.field == "email"
    assert isinstance(info.value.__cause__, sa_exc.IntegrityError)
    assert "INSERT" not in str(info.value)


def test_soft_deleted_user_frees_the_email(clean_db: Database) -> None:
    first = _user()
    _add(clean_db, first)
    with clean_db.session() as session:
        session.execute(update(User).where(User.id == first.id).values(deleted_at=func.now()))
    _add(clean_db, _user("ADA@example.com"))
    same_email = select(func.count()).where(func.lower(User.email) == "ada@example.com")
    assert _count(clean_db, same_email) == 2
    assert _count(clean_db, same_email.where(User.deleted_at.is_(None))) == 1
    # The new live user still blocks a third one.
    _expect_violation(
        clean_db,
        lambda s: s.add(_user("ada@example.com")),
        constraint="uq_users_email_live",
        error=Conflict,
        field="email",
    )


@pytest.mark.parametrize(
    "slug",
    ["Acme", "acme corp", "-acme", "acme-", "acme--corp", "a" * 64, "", "acme_corp", "acmé"],
    ids=[
        "uppercase",
        "space",
        "leading",
        "trailing",
        "double",
        "64chars",
        "empty",
        "underscore",
        "accent",
    ],
)
def test_bad_slug_is_rejected(clean_db: Database, slug: str) -> None:
    _expect_violation(
        clean_db,
        lambda s: s.add(_team(slug)),
        constraint="ck_teams_slug_format",
        error=InvalidInput,
        field="slug",
    )


def test_good_slugs_are_accepted(clean_db: Database) -> None:
    slugs = ["a", "a" * 63, "acme-2", "x-y-z", "2024"]
    _add(clean_db, *(_team(slug) for slug in slugs))
    assert _count(clean_db, select(func.count()).select_from(Team)) == len(slugs)


def test_duplicate_live_slug_conflicts_and_soft_delete_frees_it(clean_db: Database) -> None:
    first = _team()
    _add(clean_db, first)
    _expect_violation(
        clean_db,
        lambda s: s.add(_team(name="Other")),
        constraint="uq_teams_slug_live",
        error=Conflict,
        field="slug",
    )
    with clean_db.session() as session:
        session.execute(update(Team).where(Team.id == first.id).values(deleted_at=func.now()))
    second = _team(name="Acme Again")
    _add(clean_db, second)
    assert second.id != first.id


def test_second_pending_invitation_conflicts_until_revoked(clean_db: Database) -> None:
    team = _team()
    _add(clean_db, team)
    first = _invitation(team.id, "bob@example.com")
    _add(clean_db, first)
    _expect_violation(
        clean_db,
        lambda s: s.add(_invitation(team.id, "BOB@Example.COM")),
        constraint="uq_invitations_pending",
        error=Conflict,
        field="email",
    )
    # Another team may invite the same address.
    other = _team("other")
    _add(clean_db, other)
    _add(clean_db, _invitation(other.id, "bob@example.com"))
    with clean_db.session() as session:
        session.execute(
            update(Invitation)
            .where(Invitation.id == first.id)
            .values(status=InvitationStatus.REVOKED)
        )
    _add(clean_db, _invitation(team.id, "BOB@Example.COM"))
    pending = select(func.count()).where(
        Invitation.team_id == team.id, Invitation.status == InvitationStatus.PENDING
    )
    assert _count(clean_db, pending) == 1


def test_duplicate_token_hash_conflicts(clean_db: Database) -> None:
    team = _team()
    token = os.urandom(32)
    _add(clean_db, team)
    _add(clean_db, _invitation(team.id, "a@example.com", token_hash=token))
    _expect_violation(
        clean_db,
        lambda s: s.add(_invitation(team.id, "b@example.com", token_hash=token)),
        constraint="uq_invitations_token_hash",
        error=Conflict,
        field="token",
    )


def test_duplicate_membership_is_a_conflict(clean_db: Database) -> None:
    user, team = _user(), _team()
    _add(clean_db, user, team)
    _add(clean_db, TeamMember(team_id=team.id, user_id=user.id))
    _expect_violation(
        clean_db,
        lambda s: s.add(TeamMember(team_id=team.id, user_id=user.id, role=Role.OWNER)),
        constraint="pk_team_members",
        error=Conflict,
        field="user_id",
    )


@pytest.mark.parametrize("role", ["ADMIN", "owner", ""])
def test_unknown_role_is_invalid_input(
    clean_db: Database, raw_conn: psycopg.Connection[Any], role: str
) -> None:
    with pytest.raises(pg_errors.InvalidTextRepresentation) as info:
        raw_conn.execute(INSERT_USER_WITH_ROLE, {"email": "raw@example.com", "role": role})
    raw_conn.rollback()
    translated = translate_exception(info.value)
    assert isinstance(translated, InvalidInput)
    assert "role_enum" in str(translated)
    # An enum input error carries no column in its diagnostics, so no field can be named.
    assert translated.field is None


def test_unknown_member_role_is_invalid_input(
    clean_db: Database, raw_conn: psycopg.Connection[Any]
) -> None:
    user, team = _user(), _team()
    _add(clean_db, user, team)
    with pytest.raises(pg_errors.InvalidTextRepresentation) as info:
        raw_conn.execute(
            INSERT_MEMBER_WITH_ROLE, {"team_id": team.id, "user_id": user.id, "role": "ADMIN"}
        )
    raw_conn.rollback()
    assert isinstance(translate_exception(info.value), InvalidInput)


def test_orm_refuses_unknown_role_before_the_database() -> None:
    with pytest.raises(ValueError, match="ADMIN"):
        Role("ADMIN")


@pytest.mark.parametrize("value", [[], ["a"], "text", 42, True], ids=repr)
def test_profile_must_be_an_object(clean_db: Database, value: Any) -> None:
    _expect_violation(
        clean_db,
        lambda s: s.add(_user(profile=value)),
        constraint="ck_users_profile_is_object",
        error=InvalidInput,
        field="profile",
    )


@pytest.mark.parametrize("value", [[1, 2], "x", 0], ids=repr)
def test_team_settings_must_be_an_object(clean_db: Database, value: Any) -> None:
    _expect_violation(
        clean_db,
        lambda s: s.add(_team(settings=value)),
        constraint="ck_teams_settings_is_object",
        error=InvalidInput,
        field="settings",
    )


@pytest.mark.parametrize("email", ["no-at-sign", "two@@example.com", "sp ace@example.com", "a@"])
def test_user_email_format(clean_db: Database, email: str) -> None:
    _expect_violation(
        clean_db,
        lambda s: s.add(_user(email)),
        constraint="ck_users_email_format",
        error=InvalidInput,
        field="email",
    )


def test_invitation_must_expire_after_creation(clean_db: Database) -> None:
    team = _team()
    _add(clean_db, team)
    _expect_violation(
        clean_db,
        lambda s: s.add(_invitation(team.id, expires_at=datetime.now(UTC) - timedelta(hours=1))),
        constraint="ck_invitations_expires_after_created",
        error=InvalidInput,
        field="expires_at",
    )


@pytest.mark.parametrize(
    ("status", "accepted_at"),
    [
        (InvitationStatus.PENDING, datetime(2026, 1, 1, tzinfo=UTC)),
        (InvitationStatus.REVOKED, datetime(2026, 1, 1, tzinfo=UTC)),
        (InvitationStatus.ACCEPTED, None),
    ],
    ids=["pending-with-accepted_at", "revoked-with-accepted_at", "accepted-without-accepted_at"],
)
def test_accepted_at_matches_status(
    clean_db: Database, status: InvitationStatus, accepted_at: datetime | None
) -> None:
    team = _team()
    _add(clean_db, team)
    _expect_violation(
        clean_db,
        lambda s: s.add(_invitation(team.id, status=status, accepted_at=accepted_at)),
        constraint="ck_invitations_accepted_at_matches_status",
        error=InvalidInput,
        field="status",
    )


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_token_hash_must_be_32_bytes(clean_db: Database, size: int) -> None:
    team = _team()
    _add(clean_db, team)
    _expect_violation(
        clean_db,
        lambda s: s.add(_invitation(team.id, token_hash=os.urandom(size))),
        constraint="ck_invitations_token_hash_sha256",
        error=InvalidInput,
        field="token",
    )


# ---------------------------------------------------------------- cascades
def test_deleting_a_team_deletes_its_memberships_and_invitations(clean_db: Database) -> None:
    ada, bob, team, other = _user(), _user("bob@example.com"), _team(), _team("other")
    _add(clean_db, ada, bob, team, other)
    _add(
        clean_db,
        TeamMember(team_id=team.id, user_id=ada.id, role=Role.OWNER),
        TeamMember(team_id=team.id, user_id=bob.id),
        TeamMember(team_id=other.id, user_id=bob.id),
        _invitation(team.id, "carol@example.com", invited_by=ada.id),
        _invitation(other.id, "carol@example.com", invited_by=bob.id),
    )
    with clean_db.session() as session:
        loaded = session.get(Team, team.id)
        assert loaded is not None
        session.delete(loaded)  # passive_deletes: the database does the cascade

    assert _count(clean_db, select(func.count()).where(TeamMember.team_id == team.id)) == 0
    assert _count(clean_db, select(func.count()).where(Invitation.team_id == team.id)) == 0
    # The users and the other team's rows are untouched.
    assert _count(clean_db, select(func.count()).select_from(User)) == 2
    assert _count(clean_db, select(func.count()).where(TeamMember.team_id == other.id)) == 1
    assert _count(clean_db, select(func.count()).where(Invitation.team_id == other.id)) == 1


def test_deleting_a_user_deletes_memberships_and_orphans_invitations(clean_db: Database) -> None:
    ada, bob, team = _user(), _user("bob@example.com"), _team()
    _add(clean_db, ada, bob, team)
    invitation = _invitation(team.id, "carol@example.com", invited_by=ada.id)
    _add(
        clean_db,
        TeamMember(team_id=team.id, user_id=ada.id, role=Role.OWNER),
        TeamMember(team_id=team.id, user_id=bob.id),
        invitation,
    )
    with clean_db.session() as session:
        session.execute(delete(User).where(User.id == ada.id))

    with clean_db.session() as session:
        members = session.scalars(select(TeamMember.user_id).where(TeamMember.team_id == team.id))
        assert list(members) == [bob.id]
        kept = session.get(Invitation, invitation.id)
        assert kept is not None, "the invitation outlives its sender"
        assert kept.invited_by is None
        assert session.get(Team, team.id) is not None


# ------------------------------------------------------ updated_at trigger
def _make_user(db: Database) -> tuple[str, str, object]:
    user = _user()
    _add(db, user)
    return "users", "id", user.id


def _make_team(db: Database) -> tuple[str, str, object]:
    team = _team()
    _add(db, team)
    return "teams", "id", team.id


def _make_member(db: Database) -> tuple[str, str, object]:
    user, team = _user(), _team()
    _add(db, user, team)
    _add(db, TeamMember(team_id=team.id, user_id=user.id))
    return "team_members", "user_id", user.id


def _make_invitation(db: Database) -> tuple[str, str, object]:
    team = _team()
    _add(db, team)
    invitation = _invitation(team.id)
    _add(db, invitation)
    return "invitations", "id", invitation.id


UPDATES = {
    "users": "UPDATE users SET display_name = 'Changed' WHERE id = %(key)s",
    "teams": "UPDATE teams SET name = 'Changed' WHERE id = %(key)s",
    "team_members": "UPDATE team_members SET role = 'OWNER' WHERE user_id = %(key)s",
    "invitations": "UPDATE invitations SET status = 'revoked' WHERE id = %(key)s",
}
UPDATED_AT_FACTORIES = {
    "users": _make_user,
    "teams": _make_team,
    "team_members": _make_member,
    "invitations": _make_invitation,
}


def test_every_updated_at_table_has_the_trigger(db: Database) -> None:
    assert set(FOUNDATION_TABLES) <= set(MODEL_UPDATED_AT_TABLES)
    assert set(UPDATED_AT_FACTORIES) == set(FOUNDATION_TABLES)
    with db.connection() as conn:
        triggered = {row[0] for row in conn.execute(SELECT_TRIGGERS)}
        with_column = {row[0] for row in conn.execute(SELECT_UPDATED_AT_TABLES)}
    assert set(FOUNDATION_TABLES) <= with_column
    assert with_column - triggered == set(), "tables with updated_at but no trigger"


@pytest.mark.parametrize("table", sorted(UPDATED_AT_FACTORIES))
def test_updated_at_moves_on_update_and_created_at_does_not(clean_db: Database, table: str) -> None:
    name, key, value = UPDATED_AT_FACTORIES[table](clean_db)
    query = SELECT_TIMESTAMPS.format(table=name, key=key)  # fixed identifiers from this module
    with clean_db.connection() as conn:
        created, updated = conn.execute(query, {"key": value}).fetchone()  # type: ignore[misc]
    with clean_db.connection() as conn:  # a later transaction
        cur = conn.execute(UPDATES[table], {"key": value})
        assert cur.rowcount == 1
    with clean_db.connection() as conn:
        created_after, updated_after = conn.execute(query, {"key": value}).fetchone()  # type: ignore[misc]
    assert created_after == created
    assert updated_after > updated
    _assert_utc(updated_after)


def test_updated_at_moves_within_one_transaction(clean_db: Database) -> None:
    """The trigger uses clock_timestamp(), not now(): two updates in one transaction differ."""
    _name, _key, user_id = _make_user(clean_db)
    query = SELECT_TIMESTAMPS.format(table="users", key="id")
    with clean_db.connection() as conn:
        conn.execute(UPDATES["users"], {"key": user_id})
        first = conn.execute(query, {"key": user_id}).fetchone()
        conn.execute(UPDATES["users"], {"key": user_id})
        second = conn.execute(query, {"key": user_id}).fetchone()
    assert first is not None
    assert second is not None
    assert second[1] > first[1]


# ------------------------------------------------------- generated search
def test_team_search_vector_has_name_words_and_slug_parts(clean_db: Database) -> None:
    team = _team("acme-rockets", "Acme Rocket Works")
    _add(clean_db, team)
    words = select(func.tsvector_to_array(Team.search)).where(Team.id == team.id)
    with clean_db.session() as session:
        assert set(session.execute(words).scalar_one()) == {"acme", "rocket", "works", "rockets"}
        matches = select(Team.slug).where(
            Team.search.op("@@")(func.to_tsquery("simple", "rockets"))
        )
        assert session.scalars(matches).all() == ["acme-rockets"]
        session.execute(update(Team).where(Team.id == team.id).values(slug="globex-labs"))
    with clean_db.session() as session:
        assert set(session.execute(words).scalar_one()) == {
            "acme",
            "rocket",
            "works",
            "globex",
            "labs",
        }
