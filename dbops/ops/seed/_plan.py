"""The seed plan: every size, pick and shared value decided before the first row (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime

from argon2 import PasswordHasher

from dbops.errors import InvalidInput
from dbops.ops.seed._vocabulary import PERSONAS

__all__ = [
    "DEMO_PASSWORD",
    "MARKER_EMAIL",
    "MAX_USERS",
    "SEED_FORMAT",
    "SeedPlan",
    "make_plan",
    "stream",
    "validate_arguments",
    "weighted",
]

#: The password of every seeded user (personas included). Demo data only.
DEMO_PASSWORD = "dbops-demo-password"  # noqa: S105 - documented demo password, not a secret
#: Largest ``users`` accepted: a guard against a typo turning into an hour-long load.
MAX_USERS = 10_000_000
#: Bumped whenever the generator changes, so a re-run replaces data made by older code.
#: (2: team locations.)
SEED_FORMAT = 2
#: The persona whose profile records the arguments of the last run.
MARKER_EMAIL = PERSONAS[0].email

#: Most members a generated team gets (the tail of the size distribution is cut here).
MAX_TEAM_SIZE = 5_000
#: Pareto shape of team sizes: ~75 % of teams have 1-2 members, ~1 in 400 has 100 or more.
TEAM_SIZE_ALPHA = 1.3
#: Share of teams with at least one invitation.
INVITING_TEAM_SHARE = 0.3
#: Most invitations of one team.
MAX_INVITATIONS_PER_TEAM = 20
#: Share of teams with a location (when the database has ``team_locations``).
LOCATED_TEAM_SHARE = 0.4


def stream(seed: int, name: str) -> random.Random:
    """An independent, reproducible random stream per table (str seeds hash with SHA-512)."""
    return random.Random(f"dbops-seed:{seed}:{name}")  # noqa: S311 - demo data, not crypto


def weighted(rng: random.Random, items: tuple[tuple[str, int], ...], size: int) -> list[str]:
    """A lookup pool of ``size`` entries in which each item appears in proportion to its weight."""
    names = [name for name, _ in items]
    return rng.choices(names, weights=[w for _, w in items], k=size)


@dataclass(frozen=True)
class SeedPlan:
    """Everything decided before the first row is written: sizes, picks and shared values."""

    seed: int
    users: int
    teams: int
    team_sizes: list[int]
    invitation_counts: list[int]
    persona_teams: list[list[int]]
    located_teams: list[int]
    password_hash: str
    now: datetime

    @property
    def today(self) -> date:
        """The day timestamps count back from."""
        return self.now.date()

    @property
    def all_users(self) -> int:
        """Generated users plus the personas."""
        return self.users + len(PERSONAS)

    @property
    def memberships(self) -> int:
        """Membership rows, personas' included."""
        return sum(self.team_sizes) + sum(len(picks) for picks in self.persona_teams)

    @property
    def invitations(self) -> int:
        """Invitation rows."""
        return sum(self.invitation_counts)

    @property
    def locations(self) -> int:
        """Team location rows (loaded only where the table exists)."""
        return len(self.located_teams)

    def table_rows(self, *, locations: bool) -> dict[str, int]:
        """Rows per table, in load order, with or without ``team_locations``."""
        totals = {
            "users": self.all_users,
            "teams": self.teams,
            "team_members": self.memberships,
            "invitations": self.invitations,
        }
        if locations:
            totals["team_locations"] = self.locations
        return totals

    def marker(self, *, locations: bool) -> dict[str, int]:
        """What the marker persona records about this run."""
        return {
            "seed": self.seed,
            "users": self.users,
            "teams": self.teams,
            "memberships": self.memberships,
            "invitations": self.invitations,
            "locations": self.locations if locations else 0,
            "format": SEED_FORMAT,
        }


def validate_arguments(users: int, teams: int, seed: int) -> None:
    """Refuse arguments out of range.

    Raises:
        InvalidInput: naming the first bad argument.
    """
    for name, value in (("users", users), ("teams", teams), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{name} must be a whole number", field=name)
    if users < 0:
        raise InvalidInput("users must be 0 or more", field="users")
    if users > MAX_USERS:
        raise InvalidInput(f"users must be at most {MAX_USERS:,}", field="users")
    if teams < 0:
        raise InvalidInput("teams must be 0 or more", field="teams")
    if teams > 0 and teams > users:
        raise InvalidInput(
            "teams must not exceed users: every team needs a seeded user as its owner",
            field="teams",
        )


def make_plan(users: int, teams: int, seed: int, *, now: datetime) -> SeedPlan:
    """Decide team sizes, invitations, persona teams, located teams and the password hash.

    Args:
        users: generated users (on top of the personas); validated already.
        teams: generated teams; validated already.
        seed: the random seed.
        now: the moment timestamps count back from (UTC, whole seconds).

    Returns:
        The plan; the same arguments always give the same plan.
    """
    rng = stream(seed, "plan")
    cap = min(users, MAX_TEAM_SIZE)
    sizes = [min(cap, int(rng.paretovariate(TEAM_SIZE_ALPHA))) for _ in range(teams)]
    invitations = [
        min(MAX_INVITATIONS_PER_TEAM, int(rng.paretovariate(1.5)))
        if rng.random() < INVITING_TEAM_SHARE
        else 0
        for _ in range(teams)
    ]
    persona_teams = [
        rng.sample(range(teams), min(teams, p.owner_of + p.member_of)) for p in PERSONAS
    ]
    place = stream(seed, "located-teams").random
    located = [team for team in range(teams) if place() < LOCATED_TEAM_SHARE]
    salt = stream(seed, "password").randbytes(16)
    password_hash = PasswordHasher().hash(DEMO_PASSWORD, salt=salt)
    return SeedPlan(
        seed=seed,
        users=users,
        teams=teams,
        team_sizes=sizes,
        invitation_counts=invitations,
        persona_teams=persona_teams,
        located_teams=located,
        password_hash=password_hash,
        now=now,
    )
