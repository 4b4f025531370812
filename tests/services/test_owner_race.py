"""The zero-owner invariant under real concurrency: owners demote/remove/leave at the same moment.

Each variant prepares many teams in one statement, then starts one thread per acting owner. The
threads meet at a barrier before every team, fire their operation at the same moment, and record
the outcome. After each race the team must still have an owner, and exactly the expected number
of operations must have won. Timings are recorded to show that the transactions really overlapped.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import pytest

from dbops.db import Database
from dbops.errors import DbopsError, Forbidden, NotFound
from dbops.models import Role
from dbops.services import _ownership
from dbops.services._base import Actor, unit_of_work
from dbops.services._ownership import remove_user_memberships
from dbops.services.memberships import MembershipService
from tests.services._helpers import (
    SOFT_DELETE_USER,
    SYSTEM,
    make_team,
    make_teams_owned_by,
    make_user,
    owners_of,
)

pytestmark = pytest.mark.usefixtures("clean_db")

#: Races per two-owner variant, and per many-owner variant.
PAIR_ROUNDS = 200
CROWD_ROUNDS = 40
CROWD = 4
REMOVAL_ROUNDS = 60

#: The control's team "lock" and member read: _ownership's statements written without locks.
UNLOCKED_TEAM_SQL = "SELECT id, slug, deleted_at FROM teams WHERE id = %(team_id)s"
UNLOCKED_TEAM_MEMBERS_SQL = """
SELECT m.team_id, m.user_id, m.role, m.created_at AS joined_at
FROM team_members AS m
JOIN users AS u ON u.id = m.user_id
WHERE m.team_id = %(team_id)s
  AND u.deleted_at IS NULL
  AND (m.role = 'OWNER' OR m.user_id = ANY(%(user_ids)s))
"""

Op = Callable[[uuid.UUID], object]


@dataclass
class Outcome:
    error: type[Exception] | None
    started: float
    ended: float


def race(ops: list[Op], teams: list[uuid.UUID]) -> list[list[Outcome]]:
    """Run ``ops[i](team)`` in thread i for every team, all threads released together per team."""
    barrier = threading.Barrier(len(ops), timeout=30)
    results: list[list[Outcome]] = [[] for _ in ops]
    crashes: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for team in teams:
                barrier.wait()
                started = time.perf_counter()
                try:
                    ops[i](team)
                    error: type[Exception] | None = None
                except (DbopsError, psycopg.errors.InsufficientPrivilege) as exc:
                    # The database's owner rule (migration 0010) can stop the control's
                    # unlocked writes too; the locked services never get that far.
                    error = type(exc)
                results[i].append(Outcome(error, started, time.perf_counter()))
        except BaseException as exc:  # pragma: no cover - reported below
            crashes.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(ops))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not crashes, crashes
    return [list(r) for r in zip(*results, strict=True)]


def overlapping(rounds: list[list[Outcome]]) -> int:
    """Rounds in which every transaction started before any of them had ended."""
    return sum(max(o.started for o in r) < min(o.ended for o in r) for r in rounds)


@pytest.fixture
def svc(clean_db: Database) -> MembershipService:
    return MembershipService(clean_db)


@pytest.fixture
def pair(clean_db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    return make_user(clean_db), make_user(clean_db)


def check_pair_rounds(
    db: Database,
    teams: list[uuid.UUID],
    rounds: list[list[Outcome]],
    loser_error: type[DbopsError],
) -> None:
    for team, (first, second) in zip(teams, rounds, strict=True):
        errors = sorted([first.error, second.error], key=lambda e: e is not None)
        assert errors == [None, loser_error], (team, errors)
        assert len(owners_of(db, team)) == 1
    assert overlapping(rounds) > 0


def test_owners_demote_each_other(
    clean_db: Database, svc: MembershipService, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = pair
    teams = make_teams_owned_by(clean_db, PAIR_ROUNDS, [a, b])
    rounds = race(
        [
            lambda t: svc.change_role(Actor.user(a), t, b, Role.MEMBER),
            lambda t: svc.change_role(Actor.user(b), t, a, Role.MEMBER),
        ],
        teams,
    )
    # The loser is a MEMBER by the time it holds the team lock: only owners change roles.
    check_pair_rounds(clean_db, teams, rounds, Forbidden)


def test_owners_remove_each_other(
    clean_db: Database, svc: MembershipService, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = pair
    teams = make_teams_owned_by(clean_db, PAIR_ROUNDS, [a, b])
    rounds = race(
        [
            lambda t: svc.remove_member(Actor.user(a), t, b),
            lambda t: svc.remove_member(Actor.user(b), t, a),
        ],
        teams,
    )
    # The loser is no longer a member at all, so the team is hidden from it: NotFound.
    check_pair_rounds(clean_db, teams, rounds, NotFound)


def test_owners_leave_together(
    clean_db: Database, svc: MembershipService, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = pair
    teams = make_teams_owned_by(clean_db, PAIR_ROUNDS, [a, b])
    rounds = race(
        [lambda t: svc.leave(Actor.user(a), t), lambda t: svc.leave(Actor.user(b), t)], teams
    )
    check_pair_rounds(clean_db, teams, rounds, Forbidden)


def test_user_removal_races_co_owner_leaving(
    clean_db: Database, svc: MembershipService, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    """The helper for user removal takes the team locks the membership writes take.

    Each team has two owners: ``b`` (shared) and a user of its own, who is removed (memberships
    deleted through ``remove_user_memberships``, then soft-deleted) while ``b`` leaves.
    """
    _, b = pair
    own = {}
    for _ in range(REMOVAL_ROUNDS):
        user = make_user(clean_db)
        own[make_team(clean_db, owners=[user, b])] = user
    teams = list(own)

    def remove_user(team: uuid.UUID) -> None:
        with unit_of_work(clean_db, SYSTEM) as uow:
            assert remove_user_memberships(uow.conn, own[team]) == [team]
            uow.conn.execute(SOFT_DELETE_USER, {"id": own[team]})

    rounds = race([remove_user, lambda t: svc.leave(Actor.user(b), t)], teams)
    check_pair_rounds(clean_db, teams, rounds, Forbidden)


def test_many_owners_leave_at_once(clean_db: Database, svc: MembershipService) -> None:
    owners = [make_user(clean_db) for _ in range(CROWD)]
    teams = make_teams_owned_by(clean_db, CROWD_ROUNDS, owners)

    def leave(user: uuid.UUID) -> Op:
        return lambda t: svc.leave(Actor.user(user), t)

    rounds = race([leave(u) for u in owners], teams)
    for team, outcomes in zip(teams, rounds, strict=True):
        assert sum(o.error is None for o in outcomes) == CROWD - 1
        assert [o.error for o in outcomes if o.error] == [Forbidden]
        assert len(owners_of(clean_db, team)) == 1
    assert overlapping(rounds) > 0


def test_many_owners_demote_and_remove_in_a_ring(
    clean_db: Database, svc: MembershipService
) -> None:
    """Owner i demotes (even i) or removes (odd i) owner i+1, all at once: some owner survives."""
    owners = [make_user(clean_db) for _ in range(CROWD)]
    teams = make_teams_owned_by(clean_db, CROWD_ROUNDS, owners)

    def op(i: int) -> Op:
        me, victim = owners[i], owners[(i + 1) % CROWD]
        if i % 2 == 0:
            return lambda t: svc.change_role(Actor.user(me), t, victim, Role.MEMBER) and None
        return lambda t: svc.remove_member(Actor.user(me), t, victim)

    rounds = race([op(i) for i in range(CROWD)], teams)
    for team, outcomes in zip(teams, rounds, strict=True):
        left = owners_of(clean_db, team)
        assert len(left) >= 1
        assert all(o.error in (None, Forbidden, NotFound) for o in outcomes)
        # Each successful op took exactly one owner away; everyone else was stopped.
        assert len(left) == CROWD - sum(o.error is None for o in outcomes)


def test_control_without_locks_the_race_breaks_the_invariant(
    clean_db: Database, pair: tuple[uuid.UUID, uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harness really races: with the row locks taken out, teams end up without owners."""
    # The unlocked texts must be the locked ones minus their locking clauses, nothing else.
    assert _ownership.LOCK_TEAM_SQL.split() == [*UNLOCKED_TEAM_SQL.split(), "FOR", "UPDATE"]
    assert _ownership.LOCK_TEAM_MEMBERS_SQL.split() == [
        *UNLOCKED_TEAM_MEMBERS_SQL.split(),
        *["FOR", "UPDATE", "OF", "m"],
    ]
    monkeypatch.setattr(_ownership, "LOCK_TEAM_SQL", UNLOCKED_TEAM_SQL)
    monkeypatch.setattr(_ownership, "LOCK_TEAM_MEMBERS_SQL", UNLOCKED_TEAM_MEMBERS_SQL)
    svc = MembershipService(clean_db)
    a, b = pair
    teams = make_teams_owned_by(clean_db, PAIR_ROUNDS, [a, b])
    race(
        [
            lambda t: svc.change_role(Actor.user(a), t, b, Role.MEMBER),
            lambda t: svc.change_role(Actor.user(b), t, a, Role.MEMBER),
        ],
        teams,
    )
    assert sum(not owners_of(clean_db, t) for t in teams) > 0
