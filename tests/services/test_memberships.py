"""MembershipService against real PostgreSQL: role checks, every membership rule and its error."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from dbops.config import to_libpq_url
from dbops.db import Database
from dbops.errors import Conflict, DbopsError, Forbidden, InvalidInput, NotFound
from dbops.models import Role
from dbops.services import MemoryCache
from dbops.services import memberships as memberships_module
from dbops.services._base import Actor, unit_of_work
from dbops.services._keys import role_key
from dbops.services._ownership import (
    SELECT_ROLE_SQL,
    ensure_not_last_owner_anywhere,
    remove_user_memberships,
)
from dbops.services.memberships import MembershipService, MemberView, TeamMembership
from tests.services._helpers import (
    SYSTEM,
    SYSTEM_CONTEXT,
    make_team,
    make_user,
    owners_of,
    role_in_table,
    soft_delete_team,
    soft_delete_user,
    statement_calls,
)

pytestmark = pytest.mark.usefixtures("clean_db")


@pytest.fixture
def svc(clean_db: Database) -> MembershipService:
    return MembershipService(clean_db)


@pytest.fixture
def team(clean_db: Database) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]:
    """(team, owner, member, outsider)."""
    owner, member, outsider = (make_user(clean_db) for _ in range(3))
    return make_team(clean_db, owners=[owner], members=[member]), owner, member, outsider


def assert_clean_message(err: DbopsError) -> None:
    text = str(err)
    assert text
    assert "SELECT" not in text
    assert "INSERT" not in text
    assert "UPDATE" not in text


# -- role_of / require_role / members ---------------------------------------------------------


def test_role_of_reports_roles_and_non_members(svc: MembershipService, team) -> None:
    team_id, owner, member, outsider = team
    me = Actor.user(owner)
    assert svc.role_of(me, team_id, owner) is Role.OWNER
    assert svc.role_of(me, team_id, member) is Role.MEMBER
    assert svc.role_of(me, team_id, outsider) is None
    assert svc.role_of(me, uuid.uuid4(), owner) is None


def test_role_of_ignores_deleted_users_and_teams(
    clean_db: Database, svc: MembershipService, team
) -> None:
    team_id, owner, member, _ = team
    soft_delete_user(clean_db, member)
    assert svc.role_of(SYSTEM, team_id, member) is None
    assert svc.role_of(SYSTEM, team_id, owner) is Role.OWNER
    soft_delete_team(clean_db, team_id)
    assert svc.role_of(SYSTEM, team_id, owner) is None


def test_role_of_rejects_bad_ids_and_actors(svc: MembershipService, team) -> None:
    team_id, owner, _, _ = team
    with pytest.raises(InvalidInput, match="team_id: must be a UUID"):
        svc.role_of(SYSTEM, "not-a-uuid", owner)  # type: ignore[arg-type]
    assert svc.role_of(SYSTEM, str(team_id), str(owner)) is Role.OWNER  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="actor"):
        svc.role_of(Actor(kind="user"), team_id, owner)


def test_role_of_is_one_prepared_statement(
    clean_db: Database, svc: MembershipService, team
) -> None:
    """The hot read runs the module constant, and psycopg keeps it prepared on the connection."""
    team_id, owner, _, _ = team
    for _ in range(clean_db.settings.prepare_threshold + 3):
        svc.role_of(SYSTEM, team_id, owner)
    # The exact text psycopg prepares: the constant with its binds as $1, $2.
    expected = " ".join(
        SELECT_ROLE_SQL.replace("%(team_id)s", "$1").replace("%(user_id)s", "$2").split()
    )
    prepared = 0
    for _ in range(3):
        with clean_db.read(SYSTEM_CONTEXT) as conn:
            rows = conn.execute("SELECT statement FROM pg_prepared_statements").fetchall()
            prepared += sum(" ".join(r[0].split()) == expected for r in rows)
    assert prepared >= 1


def test_role_of_someone_else_is_one_statement_and_caches_both_roles(
    clean_db: Database, team
) -> None:
    """A member asking about another member: its own role and the other's in one round trip,
    both stored; the next questions about either are answered without the database."""
    team_id, owner, member, _ = team
    cache = MemoryCache(ttl_s=60)
    svc = MembershipService(clean_db, cache)
    MembershipService(clean_db).role_of(SYSTEM, team_id, owner)  # the connection's last actor
    with psycopg.connect(to_libpq_url(clean_db.url), autocommit=True) as probe:
        before = statement_calls(probe, actor_settings=False)
        assert svc.role_of(Actor.user(member), team_id, owner) is Role.OWNER
        assert statement_calls(probe, actor_settings=False) - before == 1
        assert svc.role_of(Actor.user(member), team_id, member) is Role.MEMBER
        assert svc.role_of(Actor.user(member), team_id, owner) is Role.OWNER
        assert statement_calls(probe, actor_settings=False) - before == 1
    assert cache.get(role_key(team_id, member)) == "MEMBER"
    assert cache.get(role_key(team_id, owner)) == "OWNER"


def test_a_non_members_question_stores_only_its_own_absence(clean_db: Database, team) -> None:
    """Under row-level security a non-member reads no membership of the team: its "none" about
    another user is its own answer, not everyone's, so only its own role (absent) is kept."""
    team_id, _, member, outsider = team
    cache = MemoryCache(ttl_s=60)
    svc = MembershipService(clean_db, cache)
    assert svc.role_of(Actor.user(outsider), team_id, member) is None
    assert cache.get(role_key(team_id, member)) is None
    assert cache.get(role_key(team_id, outsider)) is not None  # stored: absent
    assert svc.role_of(Actor.user(outsider), team_id, outsider) is None
    # The member's own answer is untouched by the outsider's question.
    assert svc.role_of(Actor.user(member), team_id, member) is Role.MEMBER


def test_require_role(svc: MembershipService, team) -> None:
    team_id, owner, member, outsider = team
    assert svc.require_role(Actor.user(owner), team_id, Role.OWNER) is Role.OWNER
    assert svc.require_role(Actor.user(member), team_id) is Role.MEMBER
    with pytest.raises(Forbidden, match="OWNER"):
        svc.require_role(Actor.user(member), team_id, Role.OWNER)
    with pytest.raises(NotFound, match="team not found"):
        svc.require_role(Actor.user(outsider), team_id)
    assert svc.require_role(SYSTEM, team_id, Role.OWNER) is Role.OWNER
    with pytest.raises(InvalidInput, match="minimum"):
        svc.require_role(SYSTEM, team_id, "ADMIN")  # type: ignore[arg-type]


def test_members_lists_views_owners_first(clean_db: Database, svc: MembershipService, team) -> None:
    team_id, owner, member, outsider = team
    gone = make_user(clean_db)
    svc.add_member(SYSTEM, team_id, gone)
    soft_delete_user(clean_db, gone)
    views = svc.members(Actor.user(member), team_id)
    assert all(isinstance(v, MemberView) for v in views)
    assert [(v.user_id, v.role) for v in views] == [(owner, Role.OWNER), (member, Role.MEMBER)]
    assert views[0].email.endswith("@example.com")
    assert views[0].joined_at.tzinfo is not None
    assert svc.members(SYSTEM, team_id) == views
    with pytest.raises(NotFound):
        svc.members(Actor.user(outsider), team_id)
    with pytest.raises(NotFound):
        svc.members(SYSTEM, uuid.uuid4())


# -- add_member ------------------------------------------------------------------------------


def test_owner_adds_member_with_role(clean_db: Database, svc: MembershipService, team) -> None:
    team_id, owner, _, outsider = team
    added = svc.add_member(Actor.user(owner), team_id, outsider, Role.OWNER)
    assert isinstance(added, TeamMembership)
    assert (added.team_id, added.user_id, added.role) == (team_id, outsider, Role.OWNER)
    assert role_in_table(clean_db, team_id, outsider) is Role.OWNER


def test_add_member_accepts_role_value_and_rejects_unknown(svc: MembershipService, team) -> None:
    team_id, owner, _, outsider = team
    with pytest.raises(InvalidInput, match="role") as err:
        svc.add_member(Actor.user(owner), team_id, outsider, "ADMIN")  # type: ignore[arg-type]
    assert err.value.field == "role"
    added = svc.add_member(Actor.user(owner), team_id, outsider, "MEMBER")  # type: ignore[arg-type]
    assert added.role is Role.MEMBER


def test_add_member_errors(clean_db: Database, svc: MembershipService, team) -> None:
    team_id, owner, member, outsider = team
    with pytest.raises(Forbidden, match="only an owner") as forbidden:
        svc.add_member(Actor.user(member), team_id, outsider)
    with pytest.raises(NotFound, match="team not found"):
        svc.add_member(Actor.user(outsider), team_id, outsider)
    with pytest.raises(NotFound, match="team not found"):
        svc.add_member(Actor.user(owner), uuid.uuid4(), outsider)
    with pytest.raises(NotFound, match="user not found"):
        svc.add_member(Actor.user(owner), team_id, uuid.uuid4())
    with pytest.raises(Conflict) as conflict:
        svc.add_member(Actor.user(owner), team_id, member)
    assert conflict.value.field == "user_id"
    assert "already a member" in str(conflict.value)
    for err in (forbidden.value, conflict.value):
        assert_clean_message(err)
    assert role_in_table(clean_db, team_id, outsider) is None


def test_add_member_refuses_deleted_team_and_user(
    clean_db: Database, svc: MembershipService, team
) -> None:
    team_id, owner, _, outsider = team
    soft_delete_user(clean_db, outsider)
    with pytest.raises(NotFound, match="user not found"):
        svc.add_member(Actor.user(owner), team_id, outsider)
    soft_delete_team(clean_db, team_id)
    with pytest.raises(NotFound, match="team not found"):
        svc.add_member(SYSTEM, team_id, make_user(clean_db))


# -- remove_member / change_role / leave -----------------------------------------------------


def test_remove_member(clean_db: Database, svc: MembershipService, team) -> None:
    team_id, owner, member, outsider = team
    with pytest.raises(Forbidden):
        svc.remove_member(Actor.user(member), team_id, owner)
    with pytest.raises(NotFound, match="not a member"):
        svc.remove_member(Actor.user(owner), team_id, outsider)
    svc.remove_member(Actor.user(owner), team_id, member)
    assert role_in_table(clean_db, team_id, member) is None


def test_last_owner_cannot_be_removed_or_demoted(
    clean_db: Database, svc: MembershipService, team
) -> None:
    team_id, owner, _, _ = team
    for call in (
        lambda: svc.remove_member(Actor.user(owner), team_id, owner),
        lambda: svc.change_role(Actor.user(owner), team_id, owner, Role.MEMBER),
        lambda: svc.leave(Actor.user(owner), team_id),
        lambda: svc.remove_member(SYSTEM, team_id, owner),
        lambda: svc.change_role(SYSTEM, team_id, owner, Role.MEMBER),
    ):
        with pytest.raises(Forbidden, match="at least one owner"):
            call()
    assert owners_of(clean_db, team_id) == [owner]


def test_deleted_user_does_not_count_as_owner(
    clean_db: Database, svc: MembershipService, team
) -> None:
    team_id, owner, member, _ = team
    ghost = make_user(clean_db)
    svc.add_member(SYSTEM, team_id, ghost, Role.OWNER)
    soft_delete_user(clean_db, ghost)
    with pytest.raises(Forbidden, match="at least one owner"):
        svc.leave(Actor.user(owner), team_id)
    svc.change_role(Actor.user(owner), team_id, member, Role.OWNER)
    svc.leave(Actor.user(owner), team_id)
    assert svc.role_of(SYSTEM, team_id, member) is Role.OWNER


def test_change_role(clean_db: Database, svc: MembershipService, team) -> None:
    team_id, owner, member, outsider = team
    with pytest.raises(Forbidden):
        svc.change_role(Actor.user(member), team_id, member, Role.OWNER)
    with pytest.raises(NotFound):
        svc.change_role(Actor.user(owner), team_id, outsider, Role.OWNER)
    promoted = svc.change_role(Actor.user(owner), team_id, member, Role.OWNER)
    assert promoted.role is Role.OWNER
    same = svc.change_role(Actor.user(owner), team_id, member, Role.OWNER)
    assert same == promoted
    demoted = svc.change_role(Actor.user(member), team_id, owner, Role.MEMBER)
    assert demoted.role is Role.MEMBER
    assert owners_of(clean_db, team_id) == [member]


def test_leave(clean_db: Database, svc: MembershipService, team) -> None:
    team_id, owner, member, outsider = team
    svc.leave(Actor.user(member), team_id)
    assert role_in_table(clean_db, team_id, member) is None
    with pytest.raises(NotFound, match="team not found"):
        svc.leave(Actor.user(outsider), team_id)
    with pytest.raises(InvalidInput, match="system actor"):
        svc.leave(SYSTEM, team_id)
    assert owners_of(clean_db, team_id) == [owner]


# -- transfer_ownership ----------------------------------------------------------------------


def test_transfer_ownership_swaps_roles(clean_db: Database, svc: MembershipService, team) -> None:
    team_id, owner, member, _ = team
    new_owner = svc.transfer_ownership(Actor.user(owner), team_id, member)
    assert (new_owner.user_id, new_owner.role) == (member, Role.OWNER)
    assert role_in_table(clean_db, team_id, owner) is Role.MEMBER
    assert owners_of(clean_db, team_id) == [member]


def test_transfer_ownership_errors(clean_db: Database, svc: MembershipService, team) -> None:
    team_id, owner, member, outsider = team
    with pytest.raises(Forbidden, match="only an owner"):
        svc.transfer_ownership(Actor.user(member), team_id, owner)
    with pytest.raises(NotFound, match="must be a member"):
        svc.transfer_ownership(Actor.user(owner), team_id, outsider)
    with pytest.raises(NotFound, match="team not found"):
        svc.transfer_ownership(Actor.user(outsider), team_id, member)
    with pytest.raises(InvalidInput, match="yourself"):
        svc.transfer_ownership(Actor.user(owner), team_id, owner)
    with pytest.raises(InvalidInput, match="system actor"):
        svc.transfer_ownership(SYSTEM, team_id, member)
    assert owners_of(clean_db, team_id) == [owner]


def test_transfer_is_all_or_nothing(
    clean_db: Database, svc: MembershipService, team, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the promotion rolls the promotion back: nothing half-done."""
    team_id, owner, member, _ = team
    real = memberships_module._set_role
    calls = []

    def fail_second(conn: psycopg.Connection, t: uuid.UUID, u: uuid.UUID, role: Role):
        calls.append(role)
        if len(calls) == 2:
            raise Conflict("simulated failure between the two updates")
        return real(conn, t, u, role)

    monkeypatch.setattr(memberships_module, "_set_role", fail_second)
    with pytest.raises(Conflict, match="simulated"):
        svc.transfer_ownership(Actor.user(owner), team_id, member)
    assert calls == [Role.OWNER, Role.MEMBER]
    assert role_in_table(clean_db, team_id, member) is Role.MEMBER
    assert owners_of(clean_db, team_id) == [owner]


# -- helpers for user removal ----------------------------------------------------------------


def test_ensure_not_last_owner_anywhere(clean_db: Database) -> None:
    sole, co, plain = (make_user(clean_db) for _ in range(3))
    solo_team = make_team(clean_db, owners=[sole], slug="solo-team")
    shared_team = make_team(clean_db, owners=[sole, co], members=[plain])
    with (
        pytest.raises(Forbidden, match="last owner of team\\(s\\) solo-team"),
        unit_of_work(clean_db, SYSTEM) as uow,
    ):
        ensure_not_last_owner_anywhere(uow.conn, sole)
    with unit_of_work(clean_db, SYSTEM) as uow:
        assert ensure_not_last_owner_anywhere(uow.conn, co) == [shared_team]
        assert ensure_not_last_owner_anywhere(uow.conn, plain) == [shared_team]
    soft_delete_team(clean_db, solo_team)
    with unit_of_work(clean_db, SYSTEM) as uow:
        assert ensure_not_last_owner_anywhere(uow.conn, sole) == [shared_team]


def test_remove_user_memberships(clean_db: Database) -> None:
    sole, co = make_user(clean_db), make_user(clean_db)
    t1 = make_team(clean_db, owners=[sole])
    t2 = make_team(clean_db, owners=[co], members=[sole])
    with pytest.raises(Forbidden), unit_of_work(clean_db, SYSTEM) as uow:
        remove_user_memberships(uow.conn, sole)
    assert role_in_table(clean_db, t2, sole) is Role.MEMBER  # rolled back
    MembershipService(clean_db).add_member(SYSTEM, t1, co, Role.OWNER)
    with unit_of_work(clean_db, SYSTEM) as uow:
        left = remove_user_memberships(uow.conn, sole)
    assert sorted(left) == sorted([t1, t2])
    assert role_in_table(clean_db, t1, sole) is None
    assert role_in_table(clean_db, t2, sole) is None
