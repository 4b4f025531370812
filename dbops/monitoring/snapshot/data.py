"""The application's own data: users, teams, memberships, invitations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from dbops.monitoring.snapshot._base import CountBy

__all__ = [
    "DataStat",
    "DayCount",
    "TeamSizeCount",
]


@dataclass(frozen=True)
class DayCount:
    """A count for one UTC day."""

    day: date
    count: int


@dataclass(frozen=True)
class TeamSizeCount:
    """How many live teams have ``members`` live members (the last bucket is "or more")."""

    members: int
    teams: int


@dataclass(frozen=True)
class DataStat:
    """The application's own data: users, teams, memberships, invitations, integrity."""

    live_users: int
    deleted_users: int
    live_teams: int
    deleted_teams: int
    memberships_by_role: tuple[CountBy, ...]
    pending_invitations: int
    expired_invitations: int
    signups_per_day: tuple[DayCount, ...]
    team_sizes: tuple[TeamSizeCount, ...]
    zero_owner_teams: int
    zero_owner_team_sample: tuple[str, ...]
    #: The audit trail's last record id (``audit.head``); ``None``: no trail, or not readable.
    #: It only grows: a smaller value later means records were deleted (or a restore).
    audit_last_id: int | None = None
