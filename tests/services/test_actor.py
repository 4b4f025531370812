"""The actor travels: every service call checks it and hands it to its connection's context."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from dbops.db import Database
from dbops.errors import InvalidInput
from dbops.models import Role
from dbops.services import _base
from dbops.services._base import Actor, check_actor, reading, unit_of_work, user_of
from dbops.services.invitations import InvitationService
from dbops.services.memberships import MembershipService
from dbops.services.teams import TeamService
from dbops.services.users import UserService
from tests.services._helpers import FAST_HASHER, PASSWORD, SYSTEM

pytestmark = pytest.mark.usefixtures("clean_db")

MALFORMED = Actor(kind="user")  # a user actor without its user id


@dataclass
class World:
    users: UserService
    teams: TeamService
    members: MembershipService
    invitations: InvitationService
    owner: uuid.UUID
    team: uuid.UUID
    slug: str
    email: str


@pytest.fixture
def world(clean_db: Database) -> World:
    users = UserService(clean_db, hasher=FAST_HASHER)
    teams = TeamService(clean_db)
    owner = users.create(SYSTEM, email="owner@example.com", password=PASSWORD, display_name="O")
    team = teams.create(Actor.user(owner.id), name="Acme", slug="acme")
    return World(
        users,
        teams,
        MembershipService(clean_db),
        InvitationService(clean_db),
        owner.id,
        team.id,
        "acme",
        owner.email,
    )


Call = Callable[[World, Actor], object]

#: Every read of the service API (a read that goes to the database).
READS: dict[str, Call] = {
    "users.get": lambda w, a: w.users.get(a, w.owner),
    "users.get_by_email": lambda w, a: w.users.get_by_email(a, w.email),
    "users.list_users": lambda w, a: w.users.list_users(a),
    "users.authenticate": lambda w, a: w.users.authenticate(a, w.email, PASSWORD),
    "teams.get": lambda w, a: w.teams.get(a, w.team),
    "teams.get_by_slug": lambda w, a: w.teams.get_by_slug(a, w.slug),
    "teams.teams_of_user": lambda w, a: w.teams.teams_of_user(a, w.owner),
    "teams.list_teams": lambda w, a: w.teams.list_teams(a),
    "teams.search_teams": lambda w, a: w.teams.search_teams(a, "acme"),
    "members.role_of": lambda w, a: w.members.role_of(a, w.team, w.owner),
    "members.require_role": lambda w, a: w.members.require_role(a, w.team),
    "members.members": lambda w, a: w.members.members(a, w.team),
    "invitations.pending_for_team": lambda w, a: w.invitations.pending_for_team(a, w.team),
}

#: Reads a user actor may not make at all (Forbidden before any connection): run as a system job.
SYSTEM_ONLY = {"users.list_users"}

#: A write of each service (each runs in a unit of work).
WRITES: dict[str, Call] = {
    "users.rename": lambda w, a: w.users.rename(a, w.owner, "Olga"),
    "teams.rename": lambda w, a: w.teams.rename(a, w.team, "Acme Inc"),
    "members.change_role": lambda w, a: w.members.change_role(a, w.team, w.owner, Role.OWNER),
    "invitations.invite": lambda w, a: w.invitations.invite(a, w.team, "new@example.com"),
}


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[Actor]:
    """The actors turned into connection settings (``actor_context``), in order.

    Every way a service reaches the server passes through it: ``reading`` (the autocommit
    path, ``Database.read(actor_context(actor))``), ``_apply_actor`` (transactions) and
    ``elevate``.
    """
    seen: list[Actor] = []
    real = _base.actor_context

    def spy(actor: Actor, system_role: str | None = None) -> tuple[str, str, str, str]:
        seen.append(actor)
        return real(actor, system_role)

    monkeypatch.setattr(_base, "actor_context", spy)
    return seen


@pytest.mark.parametrize("name", list(READS))
def test_every_read_applies_its_actor_to_its_connection(
    world: World, applied: list[Actor], name: str
) -> None:
    me = SYSTEM if name in SYSTEM_ONLY else Actor.user(world.owner)
    READS[name](world, me)
    assert applied, "the read did not go through reading()/read_transaction()"
    assert set(applied) == {me}


@pytest.mark.parametrize("call", list(WRITES.values()), ids=list(WRITES))
def test_every_write_applies_its_actor_in_its_unit_of_work(
    world: World, applied: list[Actor], call: Call
) -> None:
    me = Actor.user(world.owner)
    call(world, me)
    assert set(applied) == {me}


ALL: dict[str, Call] = {**READS, **WRITES}


@pytest.mark.parametrize("call", list(ALL.values()), ids=list(ALL))
def test_a_malformed_actor_is_refused_before_any_connection(
    world: World, applied: list[Actor], call: Call
) -> None:
    with pytest.raises(InvalidInput) as err:
        call(world, MALFORMED)
    assert err.value.field == "actor"
    assert applied == []


@pytest.mark.parametrize("bad", [MALFORMED, "alice", None, Actor(kind="user", name="x")])
def test_check_actor_and_user_of(bad: Any) -> None:
    with pytest.raises(InvalidInput, match="actor"):
        check_actor(bad)
    with pytest.raises(InvalidInput, match="actor"):
        user_of(bad)
    me = Actor.user(uuid.uuid4())
    assert check_actor(me) is me
    assert user_of(me) == me.user_id
    assert check_actor(SYSTEM) is SYSTEM
    with pytest.raises(InvalidInput, match="signed-in user"):
        user_of(SYSTEM)


def test_contexts_refuse_a_malformed_actor(clean_db: Database) -> None:
    with pytest.raises(InvalidInput), unit_of_work(clean_db, MALFORMED):
        pass
    with pytest.raises(InvalidInput), reading(clean_db, MALFORMED):
        pass
    # The connection went back to the pool: every one of them is still available.
    stats = clean_db.pool.get_stats()
    assert stats.get("pool_size", 0) == stats.get("pool_available", 0)


# -- the actor on the server (app.actor_*, transaction-local) -----------------------------------

ACTOR_SETTINGS = """
SELECT current_setting('app.actor_kind', true), current_setting('app.actor_id', true),
       current_setting('app.actor_name', true)
"""


@pytest.fixture
def one_connection(migrated: str) -> Any:
    """A database whose pool holds a single connection: every borrower gets the same one."""
    from dbops.db import open_database
    from tests.fixtures.db import make_settings

    single = open_database(make_settings(migrated, pool_min_size=1, pool_max_size=1), migrated)
    yield single
    single.close()


def _settings_now(db: Database) -> tuple[Any, ...]:
    with db.connection() as conn:
        row = conn.execute(ACTOR_SETTINGS).fetchone()
    assert row is not None
    return tuple(value or "" for value in row)


def test_a_unit_of_work_sends_its_actor_and_the_next_borrower_does_not_inherit_it(
    one_connection: Database,
) -> None:
    user = uuid.uuid4()
    with unit_of_work(one_connection, Actor.user(user)) as uow:
        assert uow.conn.execute(ACTOR_SETTINGS).fetchone() == ("user", str(user), "")
    # Same physical connection, next transaction: nothing left of the previous actor.
    assert _settings_now(one_connection) == ("", "", "")
    with unit_of_work(one_connection, Actor.system("expiry")) as uow:
        assert uow.conn.execute(ACTOR_SETTINGS).fetchone() == ("system", "", "expiry")
    with one_connection.read() as conn:
        row = conn.execute(ACTOR_SETTINGS).fetchone()
    assert row is not None
    assert tuple(v or "" for v in row) == ("", "", "")


def test_a_failed_unit_of_work_does_not_leak_its_actor_either(one_connection: Database) -> None:
    user = uuid.uuid4()

    def fail() -> None:
        with unit_of_work(one_connection, Actor.user(user)):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    assert _settings_now(one_connection) == ("", "", "")


def test_an_autocommit_read_sends_the_actor_only_when_it_changes(
    one_connection: Database,
) -> None:
    """The hot read path stays one statement for a run of reads by one actor; a new actor on
    the connection costs one ``set_config`` statement (decision 0007)."""
    from dbops.config import to_libpq_url
    from tests.services._helpers import statement_calls

    alice, bob = Actor.user(uuid.uuid4()), Actor.user(uuid.uuid4())
    with reading(one_connection, alice):
        pass  # warm: the pool's connection exists, is in autocommit mode and carries alice
    with psycopg.connect(to_libpq_url(one_connection.url), autocommit=True) as probe:
        before = statement_calls(probe)
        with reading(one_connection, alice):
            pass
        assert statement_calls(probe) - before == 0
        with reading(one_connection, bob) as conn:
            assert conn.execute(ACTOR_SETTINGS).fetchone() == ("user", str(bob.user_id), "")
        assert statement_calls(probe) - before == 2  # set_config, then the probe's read
        with unit_of_work(one_connection, alice):
            pass
        assert statement_calls(probe) - before >= 3  # the unit of work did send it


def test_reads_by_alternating_actors_each_get_the_connection_that_carries_them(
    migrated: str,
) -> None:
    """Actor affinity (``ActorPool``): with three idle connections, reads alternating between
    alice and bob each get the one that already carries their actor, so after the first read of
    each no ``set_config`` is sent. In rotation (psycopg_pool's own order: the oldest idle
    connection first) every one of these reads would send one."""
    from dbops.config import to_libpq_url
    from dbops.db import open_database
    from tests.fixtures.db import make_settings
    from tests.services._helpers import statement_calls

    two = open_database(make_settings(migrated, pool_min_size=3, pool_max_size=3), migrated)
    try:
        two.pool.wait()
        alice, bob = Actor.user(uuid.uuid4()), Actor.user(uuid.uuid4())
        used: dict[uuid.UUID | None, set[int]] = {alice.user_id: set(), bob.user_id: set()}
        for actor in (alice, bob):  # one set_config each, on two of the connections
            with reading(two, actor) as conn:
                used[actor.user_id].add(id(conn))
        reads = 20
        with psycopg.connect(to_libpq_url(two.url), autocommit=True) as probe:
            before = statement_calls(probe)
            for turn in range(reads):
                actor = (alice, bob)[turn % 2]
                with reading(two, actor) as conn:
                    row = conn.execute(ACTOR_SETTINGS).fetchone()
                    assert row == ("user", str(actor.user_id), "")
                    used[actor.user_id].add(id(conn))
            assert statement_calls(probe) - before == reads  # the reads alone: no set_config
        assert len(used[alice.user_id]) == len(used[bob.user_id]) == 1
        assert used[alice.user_id] != used[bob.user_id]
    finally:
        two.close()
