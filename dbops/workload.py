"""A small realistic workload through the services: sign-ins, lookups, role checks and writes.

:func:`run_workload` drives the service API (never SQL of its own) with a weighted mix of what a
team-based SaaS does all day, from a few threads, paced to a target rate. It picks existing
users and teams of the demo data (``dbops seed``), so its statements are the app's statements:
``pg_stat_statements``, the pool and the query cache have something real to show.

Expected domain errors (:class:`~dbops.errors.NotFound`, :class:`~dbops.errors.Conflict`,
:class:`~dbops.errors.Forbidden`: a wrong password, an invitation to a member, a race between
threads) are counted, not raised. Anything else is counted as unexpected, and the last message
is kept, so that a long-running workload survives a database restart.
"""

from __future__ import annotations

import collections
import contextlib
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dbops.errors import Conflict, DbopsError, Forbidden, NotFound
from dbops.models.base import Role
from dbops.ops.seed import DEMO_PASSWORD, PERSONAS
from dbops.services import (
    Actor,
    InvitationService,
    MembershipService,
    MemoryCache,
    QueryCache,
    TeamService,
    UserService,
)

if TYPE_CHECKING:
    from dbops.db import Database

__all__ = ["KINDS", "WORKLOAD_PROCESS", "WorkloadResult", "run_workload"]

#: What the dashboard and the exporter call the workload's process (its report,
#: :mod:`dbops.telemetry.report`), unless ``DBOPS_PROCESS_NAME`` says otherwise.
WORKLOAD_PROCESS = "dbops workload"

#: Operation kinds and their weights in the mix (reads dominate, as in a real app).
KINDS: Mapping[str, int] = {
    "login": 4,
    "user_by_email": 10,
    "teams_of_user": 14,
    "role_check_cached": 18,
    "role_check": 8,
    "team_by_slug": 10,
    "team_search": 10,
    "team_members": 6,
    "profile_update": 7,
    "invitation": 5,
    "membership": 5,
    "team_create": 3,
}
#: Share of sign-ins made with a wrong password (each one is an expected Forbidden): a few
#: mistyped passwords. At the default rate that is about 7 in 15 minutes, well below the
#: ``failed_logins`` check's and the ``DbopsFailedLogins`` alert's 20: the demo is healthy by
#: every consumer, and a burst of refused sign-ins (what those are for) still stands out.
WRONG_PASSWORD_SHARE = 0.01
#: Users and teams the workload picks from (read once through the services at start).
POPULATION_USERS = 200
POPULATION_TEAMS = 60
#: Teams the workload created that it keeps; older ones are soft-deleted again.
KEEP_CREATED_TEAMS = 5
#: A pacer this far behind starts again from now instead of bursting to catch up.
MAX_BACKLOG_S = 1.0
#: The errors a realistic mix runs into on purpose; they are counted, not raised.
EXPECTED_ERRORS: tuple[type[DbopsError], ...] = (NotFound, Conflict, Forbidden)
NO_DEMO_DATA = "no demo data to run a workload on: run `dbops seed` (or `dbops up`) first"


@dataclass(frozen=True)
class WorkloadResult:
    """What a :func:`run_workload` run did.

    Attributes:
        ops: operations finished, by kind (those that ended in an error included).
        errors: expected domain errors (NotFound, Conflict, Forbidden), by kind.
        unexpected: any other error, by kind (a healthy run has none).
        last_unexpected: the message of the last unexpected error, if any.
        duration_s: wall time of the run.
        target_rate: operations per second asked for.
    """

    ops: dict[str, int]
    errors: dict[str, int]
    unexpected: dict[str, int]
    last_unexpected: str | None
    duration_s: float
    target_rate: float
    threads: int = field(default=1)

    @property
    def total(self) -> int:
        """Operations finished, all kinds together."""
        return sum(self.ops.values())

    @property
    def rate(self) -> float:
        """Operations per second achieved."""
        return self.total / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(frozen=True)
class _Team:
    id: uuid.UUID
    slug: str
    name: str
    owners: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class _Population:
    """Existing users and teams to act as and on (a snapshot at start; drift is expected)."""

    user_ids: tuple[uuid.UUID, ...]
    emails: tuple[str, ...]
    teams: tuple[_Team, ...]
    words: tuple[str, ...]


class _Pacer:
    """Hands out evenly spaced start times to all threads: ``rate`` per second in all."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / rate
        self._clock = clock
        self._lock = threading.Lock()
        self._next = clock()

    def next_slot(self) -> float:
        with self._lock:
            now = self._clock()
            if self._next < now - MAX_BACKLOG_S:
                self._next = now
            slot = self._next
            self._next += self._interval
            return slot


class _Tally:
    """Counters shared by the threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ops: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.unexpected: collections.Counter[str] = collections.Counter()
        self.last_unexpected: str | None = None

    def record(self, kind: str, error: BaseException | None) -> None:
        with self._lock:
            self.ops[kind] += 1
            if error is None:
                return
            if isinstance(error, EXPECTED_ERRORS):
                self.errors[kind] += 1
            else:
                self.unexpected[kind] += 1
                self.last_unexpected = f"{kind}: {type(error).__name__}: {error}"


class _Mix:
    """The operations, over one set of services sharing one cache."""

    def __init__(self, db: Database, cache: QueryCache, population: _Population) -> None:
        self.users = UserService(db, cache)
        self.teams = TeamService(db, cache)
        self.members = MembershipService(db, cache)
        self.uncached = MembershipService(db)
        self.invitations = InvitationService(db, cache)
        self.pop = population
        self.system = Actor.system("workload")
        self._created: collections.deque[tuple[uuid.UUID, uuid.UUID]] = collections.deque()
        self._created_lock = threading.Lock()

    def run(self, kind: str, rng: random.Random) -> None:
        getattr(self, f"_{kind}")(rng)

    # -- picks -------------------------------------------------------------------------------
    def _user(self, rng: random.Random) -> tuple[uuid.UUID, str]:
        i = rng.randrange(len(self.pop.user_ids))
        return self.pop.user_ids[i], self.pop.emails[i]

    def _team(self, rng: random.Random) -> _Team:
        return rng.choice(self.pop.teams)

    # -- reads -------------------------------------------------------------------------------
    def _login(self, rng: random.Random) -> None:
        _, email = self._user(rng)
        wrong = rng.random() < WRONG_PASSWORD_SHARE
        password = "not-the-password" if wrong else DEMO_PASSWORD
        self.users.authenticate(self.system, email, password)

    def _user_by_email(self, rng: random.Random) -> None:
        _, email = self._user(rng)
        if rng.random() < 0.1:
            email = f"nobody.{rng.randrange(10**6)}@example.com"  # a lookup that misses
        self.users.get_by_email(self.system, email)

    def _teams_of_user(self, rng: random.Random) -> None:
        user_id, _ = self._user(rng)
        self.teams.teams_of_user(Actor.user(user_id), user_id)

    def _role_check_cached(self, rng: random.Random) -> None:
        team = self._team(rng)
        user_id = rng.choice(team.owners) if rng.random() < 0.5 else self._user(rng)[0]
        self.members.role_of(self.system, team.id, user_id)

    def _role_check(self, rng: random.Random) -> None:
        team = self._team(rng)
        user_id = rng.choice(team.owners) if rng.random() < 0.5 else self._user(rng)[0]
        self.uncached.require_role(Actor.user(user_id), team.id, Role.MEMBER)

    def _team_by_slug(self, rng: random.Random) -> None:
        self.teams.get_by_slug(self.system, self._team(rng).slug)

    def _team_search(self, rng: random.Random) -> None:
        word = _search_word(rng.choice(self.pop.words), rng)
        self.teams.search_teams(Actor.user(self._user(rng)[0]), word, limit=10)

    def _team_members(self, rng: random.Random) -> None:
        team = self._team(rng)
        self.members.members(Actor.user(rng.choice(team.owners)), team.id)

    # -- writes ------------------------------------------------------------------------------
    def _profile_update(self, rng: random.Random) -> None:
        user_id, _ = self._user(rng)
        patch = {
            "last_seen_at": datetime.now(UTC).isoformat(),
            "theme": rng.choice(("light", "dark", "system")),
        }
        self.users.update_profile(Actor.user(user_id), user_id, set=patch)

    def _invitation(self, rng: random.Random) -> None:
        """An owner invites a user; the invitee accepts it, or the owner revokes it."""
        team = self._team(rng)
        owner = Actor.user(rng.choice(team.owners))
        invitee_id, email = self._user(rng)
        issued = self.invitations.invite(owner, team.id, email)
        if rng.random() < 0.6:
            self.invitations.accept(Actor.user(invitee_id), issued.token)
        else:
            self.invitations.revoke(owner, issued.invitation_id)

    def _membership(self, rng: random.Random) -> None:
        """An owner promotes a member and demotes them again, or removes one."""
        team = self._team(rng)
        owner_id = rng.choice(team.owners)
        owner = Actor.user(owner_id)
        plain = [m.user_id for m in self.members.members(owner, team.id) if m.role is Role.MEMBER]
        if not plain:
            return
        user_id = rng.choice(plain)
        if rng.random() < 0.6:
            self.members.change_role(owner, team.id, user_id, Role.OWNER)
            self.members.change_role(owner, team.id, user_id, Role.MEMBER)
        else:
            self.members.remove_member(owner, team.id, user_id)

    def _team_create(self, rng: random.Random) -> None:
        """A user creates a team; the oldest of the workload's own teams is deleted again."""
        user_id, _ = self._user(rng)
        suffix = secrets.token_hex(4)
        name = f"{rng.choice(self.pop.words).title()} {suffix}"
        team = self.teams.create(Actor.user(user_id), name=name, slug=f"wl-{suffix}")
        with self._created_lock:
            self._created.append((team.id, user_id))
            old = self._created.popleft() if len(self._created) > KEEP_CREATED_TEAMS else None
        if old is not None:
            self.teams.delete(Actor.user(old[1]), old[0])

    def cleanup(self) -> None:
        """Soft-delete the teams this run created and still keeps."""
        with self._created_lock:
            created, self._created = list(self._created), collections.deque()
        for team_id, owner_id in created:
            with contextlib.suppress(*EXPECTED_ERRORS):
                self.teams.delete(Actor.user(owner_id), team_id)


def _thread_seed(seed: int, index: int) -> int:
    """Thread ``index``'s own stream of run ``seed`` (distinct for up to 1,000 threads)."""
    return seed * 1_000 + index


#: Share of searches for a word longer than four letters typed with a typo.
TYPO_SHARE = 0.3


def _search_word(word: str, rng: random.Random) -> str:
    """What a person types for ``word``: 3 times in 10 a long one loses an inner letter.

    Trigram similarity still finds the team; a word of four letters or fewer is typed right
    (without one letter it would match too little).
    """
    if len(word) > 4 and rng.random() < TYPO_SHARE:
        return _typo(word, rng)
    return word


def _typo(word: str, rng: random.Random) -> str:
    """``word`` with one inner letter left out (the first and the last stay)."""
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1 :]


def _population(db: Database, cache: QueryCache) -> _Population:
    """Existing users and teams (with their owners), read through the services."""
    system = Actor.system("workload")
    users = UserService(db, cache).list_users(system, limit=POPULATION_USERS).items
    persona_emails = {p.email for p in PERSONAS}
    # The personas' passwords work too; generated users come after them.
    picked = [u for u in users if u.email not in persona_emails] or list(users)
    teams = TeamService(db, cache).list_teams(system, limit=POPULATION_TEAMS).items
    members = MembershipService(db, cache)
    with_owners: list[_Team] = []
    for team in teams:
        owners = tuple(m.user_id for m in members.members(system, team.id) if m.role is Role.OWNER)
        if owners:
            with_owners.append(_Team(team.id, team.slug, team.name, owners))
    if not picked or not with_owners:
        raise NotFound(NO_DEMO_DATA)
    words = sorted({w.lower() for t in with_owners for w in t.name.split() if len(w) > 2})
    return _Population(
        user_ids=tuple(u.id for u in picked),
        emails=tuple(u.email for u in picked),
        teams=tuple(with_owners),
        words=tuple(words) or ("team",),
    )


def run_workload(
    db: Database,
    *,
    duration_s: float | None,
    rate: float,
    seed: int | None = None,
    stop: threading.Event | None = None,
    cache: QueryCache | None = None,
    threads: int = 2,
) -> WorkloadResult:
    """Run the service mix of :data:`KINDS` at ``rate`` operations per second.

    Args:
        db: an open database with demo data (``dbops seed``).
        duration_s: how long to run; ``None`` runs until ``stop`` is set.
        rate: operations per second over all threads (paced, no bursts to catch up).
        seed: seeds the choices (the same seed picks the same sequence per thread).
        stop: set it to end the run early (the threads finish their current operation).
        cache: the query cache the services share (pass the process's one to see its hit
            rate in the exporter); a private :class:`MemoryCache` by default.
        threads: worker threads; each holds at most one pooled connection at a time.

    Returns:
        The operations done, by kind, and the errors met.

    Raises:
        NotFound: there is no demo data to act on.
        InvalidInput: ``rate`` or ``threads`` is not positive, or neither a duration nor a
            stop event is given.
    """
    from dbops.errors import InvalidInput

    if rate <= 0:
        raise InvalidInput("rate: must be greater than 0", "rate")
    if threads < 1:
        raise InvalidInput("threads: must be at least 1", "threads")
    if duration_s is None and stop is None:
        raise InvalidInput("duration_s: give a duration or a stop event", "duration_s")
    stop = stop or threading.Event()
    cache = cache if cache is not None else MemoryCache(ttl_s=30)
    mix = _Mix(db, cache, _population(db, cache))
    tally = _Tally()
    pacer = _Pacer(rate)
    kinds, weights = list(KINDS), list(KINDS.values())
    started = time.monotonic()
    deadline = None if duration_s is None else started + duration_s

    def worker(index: int) -> None:
        rng = random.Random(None if seed is None else _thread_seed(seed, index))  # noqa: S311
        while not stop.is_set():
            slot = pacer.next_slot()
            if deadline is not None and slot >= deadline:
                return
            delay = slot - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            kind = rng.choices(kinds, weights)[0]
            try:
                mix.run(kind, rng)
            except Exception as exc:  # counted; a workload outlives a failing statement
                tally.record(kind, exc)
            else:
                tally.record(kind, None)

    workers = [
        threading.Thread(target=worker, args=(i,), name=f"dbops-workload-{i}", daemon=True)
        for i in range(threads)
    ]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    elapsed = time.monotonic() - started
    mix.cleanup()
    return WorkloadResult(
        ops=dict(tally.ops),
        errors=dict(tally.errors),
        unexpected=dict(tally.unexpected),
        last_unexpected=tally.last_unexpected,
        duration_s=elapsed,
        target_rate=rate,
        threads=threads,
    )
