"""InvitationService on real PostgreSQL: issue, accept (and each way it refuses), revoke, expire."""

from __future__ import annotations

import hashlib
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from dbops.db import Database
from dbops.errors import Conflict, DbopsError, Forbidden, InvalidInput, NotFound
from dbops.models import InvitationStatus, Role
from dbops.services._base import Actor
from dbops.services.invitations import InvitationService, InvitationView, IssuedInvitation
from dbops.services.memberships import MembershipService
from tests.services._helpers import (
    SYSTEM,
    as_system,
    make_team,
    make_user,
    role_in_table,
    soft_delete_team,
    unique,
    user_email,
)

pytestmark = pytest.mark.usefixtures("clean_db")

INVITATION_ROW = """
SELECT token_hash, status, accepted_at, email, role, invited_by
FROM invitations WHERE id = %(id)s
"""
#: Move an invitation into the past (created 8 days ago, expired 1 day ago); CHECKs still hold.
BACKDATE = """
UPDATE invitations
SET created_at = now() - interval '8 days', expires_at = now() - interval '1 day'
WHERE id = %(id)s
"""


@pytest.fixture
def svc(clean_db: Database) -> InvitationService:
    return InvitationService(clean_db)


@pytest.fixture
def team(clean_db: Database) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """(team, owner, member)."""
    owner, member = make_user(clean_db), make_user(clean_db)
    return make_team(clean_db, owners=[owner], members=[member]), owner, member


def row(db: Database, invitation_id: uuid.UUID) -> tuple:
    with as_system(db) as conn:
        found = conn.execute(INVITATION_ROW, {"id": invitation_id}).fetchone()
    assert found is not None
    return found


def backdate(db: Database, invitation_id: uuid.UUID) -> None:
    with as_system(db) as conn:
        conn.execute(BACKDATE, {"id": invitation_id})


def no_secret(err: DbopsError, token: str) -> None:
    assert token not in str(err)
    assert "SELECT" not in str(err)
    assert "UPDATE" not in str(err)


# -- invite ----------------------------------------------------------------------------------


def test_invite_returns_token_once_and_stores_only_its_hash(
    clean_db: Database, svc: InvitationService, team
) -> None:
    team_id, owner, _ = team
    before = datetime.now(UTC)
    issued = svc.invite(Actor.user(owner), team_id, "  New.Person@Example.COM ", Role.OWNER)
    assert isinstance(issued, IssuedInvitation)
    assert issued.email == "new.person@example.com"
    assert issued.role is Role.OWNER
    assert len(issued.token) >= 40
    assert issued.token not in repr(issued)
    assert before + timedelta(days=6, hours=23) < issued.expires_at < before + timedelta(days=8)
    token_hash, status, accepted_at, email, role, invited_by = row(clean_db, issued.invitation_id)
    assert bytes(token_hash) == hashlib.sha256(issued.token.encode()).digest()
    assert (status, accepted_at, email, role, invited_by) == (
        "pending",
        None,
        "new.person@example.com",
        "OWNER",
        owner,
    )
    with as_system(clean_db) as conn:
        dump = conn.execute("SELECT i::text FROM invitations AS i").fetchall()
    assert all(issued.token not in r[0] for r in dump)


def test_each_invitation_gets_a_new_token(svc: InvitationService, team) -> None:
    team_id, owner, _ = team
    tokens = {
        svc.invite(Actor.user(owner), team_id, f"{unique('p')}@example.com").token for _ in range(5)
    }
    assert len(tokens) == 5


def test_only_owners_and_system_invite(clean_db: Database, svc: InvitationService, team) -> None:
    team_id, _, member = team
    with pytest.raises(Forbidden):
        svc.invite(Actor.user(member), team_id, "x@example.com")
    with pytest.raises(NotFound, match="team not found"):
        svc.invite(Actor.user(make_user(clean_db)), team_id, "x@example.com")
    with pytest.raises(NotFound, match="team not found"):
        svc.invite(SYSTEM, uuid.uuid4(), "x@example.com")
    issued = svc.invite(SYSTEM, team_id, "x@example.com")
    assert row(clean_db, issued.invitation_id)[5] is None  # invited_by: no user


def test_second_pending_invitation_conflicts_on_email(svc: InvitationService, team) -> None:
    team_id, owner, _ = team
    svc.invite(Actor.user(owner), team_id, "dup@example.com")
    with pytest.raises(Conflict) as err:
        svc.invite(Actor.user(owner), team_id, "DUP@example.com")
    assert err.value.field == "email"
    assert "pending invitation" in str(err.value)
    other_team = make_team(svc._db, owners=[owner])
    svc.invite(Actor.user(owner), other_team, "dup@example.com")  # other team: fine


def test_inviting_a_member_conflicts(clean_db: Database, svc: InvitationService, team) -> None:
    team_id, owner, member = team
    with pytest.raises(Conflict, match="member of the team already") as err:
        svc.invite(Actor.user(owner), team_id, user_email(clean_db, member).upper())
    assert err.value.field == "email"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@example.com", "role": "ADMIN"}, "role"),
        ({"email": "a@example.com", "ttl": timedelta(0)}, "ttl"),
        ({"email": "a@example.com", "ttl": timedelta(days=91)}, "ttl"),
    ],
)
def test_invite_validates_input(svc: InvitationService, team, kwargs: dict, field: str) -> None:
    team_id, owner, _ = team
    with pytest.raises(InvalidInput) as err:
        svc.invite(Actor.user(owner), team_id, **kwargs)
    assert err.value.field == field


# -- accept ----------------------------------------------------------------------------------


def test_accept_creates_membership_and_marks_used(
    clean_db: Database, svc: InvitationService, team
) -> None:
    team_id, owner, _ = team
    joiner = make_user(clean_db, email=f"{unique('joiner')}@example.com")
    # The invitation names the address in other capitals: it is the same address.
    invited = user_email(clean_db, joiner).replace("joiner", "Joiner").replace("example", "Example")
    issued = svc.invite(Actor.user(owner), team_id, invited, Role.OWNER)
    joined = svc.accept(Actor.user(joiner), issued.token)
    assert (joined.team_id, joined.user_id, joined.role) == (team_id, joiner, Role.OWNER)
    assert role_in_table(clean_db, team_id, joiner) is Role.OWNER
    _, status, accepted_at, *_ = row(clean_db, issued.invitation_id)
    assert status == "accepted"
    assert accepted_at is not None


def test_reused_token_conflicts(clean_db: Database, svc: InvitationService, team) -> None:
    team_id, owner, _ = team
    joiner = make_user(clean_db)
    issued = svc.invite(Actor.user(owner), team_id, user_email(clean_db, joiner))
    svc.accept(Actor.user(joiner), issued.token)
    with pytest.raises(Conflict, match="already used") as err:
        svc.accept(Actor.user(joiner), issued.token)
    no_secret(err.value, issued.token)


def test_wrong_email_is_forbidden_and_changes_nothing(
    clean_db: Database, svc: InvitationService, team
) -> None:
    team_id, owner, _ = team
    issued = svc.invite(Actor.user(owner), team_id, "someone.else@example.com")
    intruder = make_user(clean_db)
    with pytest.raises(Forbidden, match="different email") as err:
        svc.accept(Actor.user(intruder), issued.token)
    no_secret(err.value, issued.token)
    assert role_in_table(clean_db, team_id, intruder) is None
    assert row(clean_db, issued.invitation_id)[1] == "pending"


def test_expired_invitation_is_refused_and_left_for_the_sweep(
    clean_db: Database, svc: InvitationService, team
) -> None:
    team_id, owner, _ = team
    joiner = make_user(clean_db)
    issued = svc.invite(Actor.user(owner), team_id, user_email(clean_db, joiner))
    backdate(clean_db, issued.invitation_id)
    with pytest.raises(InvalidInput, match="invitation expired"):
        svc.accept(Actor.user(joiner), issued.token)
    assert row(clean_db, issued.invitation_id)[1] == "pending"
    assert role_in_table(clean_db, team_id, joiner) is None
    assert svc.pending_for_team(Actor.user(owner), team_id) == []  # overdue: not listed
    assert svc.expire_overdue(SYSTEM) == 1
    with pytest.raises(InvalidInput, match="invitation expired"):
        svc.accept(Actor.user(joiner), issued.token)


def test_revoked_unknown_and_malformed_tokens(
    clean_db: Database, svc: InvitationService, team
) -> None:
    team_id, owner, _ = team
    joiner = make_user(clean_db)
    issued = svc.invite(Actor.user(owner), team_id, user_email(clean_db, joiner))
    svc.revoke(Actor.user(owner), issued.invitation_id)
    with pytest.raises(InvalidInput, match="revoked"):
        svc.accept(Actor.user(joiner), issued.token)
    with pytest.raises(NotFound, match="invitation not found"):
        svc.accept(Actor.user(joiner), issued.token[:-2] + "xx")
    with pytest.raises(InvalidInput, match="token") as err:
        svc.accept(Actor.user(joiner), "short")
    assert "short" not in str(err.value)
    with pytest.raises(InvalidInput, match="system actor"):
        svc.accept(SYSTEM, issued.token)


def test_accept_by_existing_member_conflicts(
    clean_db: Database, svc: InvitationService, team
) -> None:
    team_id, owner, _ = team
    joiner = make_user(clean_db)
    issued = svc.invite(Actor.user(owner), team_id, user_email(clean_db, joiner))
    MembershipService(clean_db).add_member(SYSTEM, team_id, joiner)
    with pytest.raises(Conflict, match="member of this team already"):
        svc.accept(Actor.user(joiner), issued.token)
    assert row(clean_db, issued.invitation_id)[1] == "pending"


def test_accept_into_deleted_team_is_not_found(
    clean_db: Database, svc: InvitationService, team
) -> None:
    team_id, owner, _ = team
    joiner = make_user(clean_db)
    issued = svc.invite(Actor.user(owner), team_id, user_email(clean_db, joiner))
    soft_delete_team(clean_db, team_id)
    with pytest.raises(NotFound):
        svc.accept(Actor.user(joiner), issued.token)


def test_concurrent_accepts_of_one_token_let_exactly_one_in(
    clean_db: Database, svc: InvitationService, team
) -> None:
    team_id, owner, _ = team
    joiner = make_user(clean_db)
    for _ in range(20):
        issued = svc.invite(Actor.user(owner), team_id, user_email(clean_db, joiner))
        barrier = threading.Barrier(2)
        outcomes: list[object] = []

        def accept(
            token: str = issued.token,
            barrier: threading.Barrier = barrier,
            outcomes: list[object] = outcomes,
        ) -> None:
            barrier.wait()
            try:
                outcomes.append(svc.accept(Actor.user(joiner), token).role)
            except DbopsError as exc:
                outcomes.append(type(exc))

        threads = [threading.Thread(target=accept) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes, key=str) == sorted([Role.MEMBER, Conflict], key=str)
        MembershipService(clean_db).remove_member(SYSTEM, team_id, joiner)


# -- revoke / expire / list ------------------------------------------------------------------


def test_revoke_rules(clean_db: Database, svc: InvitationService, team) -> None:
    team_id, owner, member = team
    issued = svc.invite(Actor.user(owner), team_id, "r@example.com")
    with pytest.raises(Forbidden):
        svc.revoke(Actor.user(member), issued.invitation_id)
    with pytest.raises(NotFound, match="invitation not found"):
        svc.revoke(Actor.user(make_user(clean_db)), issued.invitation_id)
    with pytest.raises(NotFound, match="invitation not found"):
        svc.revoke(Actor.user(owner), uuid.uuid4())
    svc.revoke(Actor.user(owner), issued.invitation_id)
    svc.revoke(Actor.user(owner), issued.invitation_id)  # twice: no-op
    assert row(clean_db, issued.invitation_id)[1] == "revoked"
    # The email is free for a new invitation once the old one is not pending.
    again = svc.invite(Actor.user(owner), team_id, "r@example.com")
    joiner = make_user(clean_db)
    accepted = svc.invite(Actor.user(owner), team_id, user_email(clean_db, joiner))
    svc.accept(Actor.user(joiner), accepted.token)
    with pytest.raises(Conflict, match="accepted"):
        svc.revoke(SYSTEM, accepted.invitation_id)
    assert row(clean_db, again.invitation_id)[1] == "pending"


def test_expire_overdue_in_bulk(clean_db: Database, svc: InvitationService, team) -> None:
    team_id, owner, _ = team
    issued = [svc.invite(Actor.user(owner), team_id, f"e{i}@example.com") for i in range(5)]
    for inv in issued[:3]:
        backdate(clean_db, inv.invitation_id)
    with pytest.raises(Forbidden, match="system job"):
        svc.expire_overdue(Actor.user(owner))
    assert svc.expire_overdue(SYSTEM) == 3
    assert svc.expire_overdue(SYSTEM) == 0
    statuses = [row(clean_db, inv.invitation_id)[1] for inv in issued]
    assert statuses == ["expired"] * 3 + ["pending"] * 2
    svc.invite(Actor.user(owner), team_id, "e0@example.com")  # expired frees the email


def test_pending_for_team(clean_db: Database, svc: InvitationService, team) -> None:
    team_id, owner, member = team
    first = svc.invite(Actor.user(owner), team_id, "p1@example.com")
    second = svc.invite(Actor.user(owner), team_id, "p2@example.com", Role.OWNER)
    revoked = svc.invite(Actor.user(owner), team_id, "p3@example.com")
    svc.revoke(Actor.user(owner), revoked.invitation_id)
    views = svc.pending_for_team(Actor.user(owner), team_id)
    assert all(isinstance(v, InvitationView) for v in views)
    assert [(v.invitation_id, v.role, v.status) for v in views] == [
        (first.invitation_id, Role.MEMBER, InvitationStatus.PENDING),
        (second.invitation_id, Role.OWNER, InvitationStatus.PENDING),
    ]
    assert svc.pending_for_team(SYSTEM, team_id) == views
    with pytest.raises(Forbidden):
        svc.pending_for_team(Actor.user(member), team_id)
    with pytest.raises(NotFound):
        svc.pending_for_team(Actor.user(make_user(clean_db)), team_id)
