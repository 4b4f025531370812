"""The application's data: users, teams, memberships, invitations, and integrity probes.

Plain SQL on the dbops tables (this package does not import the models). Runs only when the
tables exist; otherwise the data section is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from dbops.config import Settings
from dbops.monitoring._fetch import fetch, fetch_one
from dbops.monitoring.snapshot import CountBy, DataStat, DayCount, TeamSizeCount

__all__ = [
    "SIGNUP_DAYS",
    "TEAM_SIZE_CAP",
    "collect_data",
    "data_counts",
    "data_present",
    "memberships_by_role",
    "signups_per_day",
    "team_sizes",
    "zero_owner_teams",
]

#: Days of signups kept in a snapshot.
SIGNUP_DAYS = 30
#: Team sizes at or above this fall into one "or more" bucket.
TEAM_SIZE_CAP = 10

PRESENT_SQL = """
SELECT to_regclass('users') IS NOT NULL
       AND to_regclass('teams') IS NOT NULL
       AND to_regclass('team_members') IS NOT NULL
       AND to_regclass('invitations') IS NOT NULL AS present
"""

#: One scan per table (``FILTER``), not one per count: on 1M users this halves the time.
COUNTS_SQL = """
SELECT u.live_users, u.deleted_users, t.live_teams, t.deleted_teams,
       i.pending_invitations, i.expired_invitations
FROM (
  SELECT count(*) FILTER (WHERE deleted_at IS NULL) AS live_users,
         count(*) FILTER (WHERE deleted_at IS NOT NULL) AS deleted_users
  FROM users
) AS u,
(
  SELECT count(*) FILTER (WHERE deleted_at IS NULL) AS live_teams,
         count(*) FILTER (WHERE deleted_at IS NOT NULL) AS deleted_teams
  FROM teams
) AS t,
(
  SELECT count(*) FILTER (WHERE status = 'pending' AND expires_at > now())
           AS pending_invitations,
         count(*) FILTER (WHERE status = 'expired' OR (status = 'pending' AND expires_at <= now()))
           AS expired_invitations
  FROM invitations
) AS i
"""

MEMBERSHIPS_BY_ROLE_SQL = """
SELECT m.role::text AS key, count(*) AS count
FROM team_members AS m
GROUP BY m.role
ORDER BY m.role
"""

SIGNUPS_SQL = """
SELECT (u.created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS count
FROM users AS u
WHERE u.created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                      - make_interval(days => %(days)s - 1)
GROUP BY 1
ORDER BY 1
"""

#: Live teams by number of members (the last bucket holds "cap or more"). Membership rows
#: only, no join to users: deleting a user removes its memberships in the same transaction
#: (services), and hashing every user doubled the cost on 1M users.
TEAM_SIZES_SQL = """
SELECT least(coalesce(m.members, 0), %(cap)s) AS members, count(*) AS teams
FROM teams AS t
LEFT JOIN (
  SELECT team_id, count(*) AS members FROM team_members GROUP BY team_id
) AS m ON m.team_id = t.id
WHERE t.deleted_at IS NULL
GROUP BY 1
ORDER BY 1
"""

#: Integrity probe: live teams without a live owner (must be 0), with a few of their ids.
ZERO_OWNERS_SQL = """
SELECT count(*) AS count, (array_agg(t.id::text ORDER BY t.id))[1:10] AS sample
FROM teams AS t
WHERE t.deleted_at IS NULL
  AND NOT EXISTS (
    SELECT 1
    FROM team_members AS m
    JOIN users AS u ON u.id = m.user_id AND u.deleted_at IS NULL
    WHERE m.team_id = t.id AND m.role = 'OWNER'
  )
"""


@dataclass(frozen=True)
class _Present:
    present: bool


@dataclass(frozen=True)
class DataCounts:
    """One row of :data:`COUNTS_SQL`."""

    live_users: int
    deleted_users: int
    live_teams: int
    deleted_teams: int
    pending_invitations: int
    expired_invitations: int


@dataclass(frozen=True)
class _ZeroOwners:
    count: int
    sample: list[str] | None


def data_present(conn: psycopg.Connection[Any], *, settings: Settings) -> bool:
    """True when the dbops tables exist in this database."""
    row = fetch_one(conn, PRESENT_SQL, _Present, timeout_ms=settings.monitor_collector_timeout_ms)
    return bool(row and row.present)


def data_counts(conn: psycopg.Connection[Any], *, settings: Settings) -> DataCounts:
    """Users, teams and invitations counted by state."""
    row = fetch_one(conn, COUNTS_SQL, DataCounts, timeout_ms=settings.monitor_collector_timeout_ms)
    assert row is not None
    return row


def memberships_by_role(conn: psycopg.Connection[Any], *, settings: Settings) -> list[CountBy]:
    """Memberships per role."""
    return fetch(
        conn, MEMBERSHIPS_BY_ROLE_SQL, CountBy, timeout_ms=settings.monitor_collector_timeout_ms
    )


def signups_per_day(conn: psycopg.Connection[Any], *, settings: Settings) -> list[DayCount]:
    """New users per UTC day over the last :data:`SIGNUP_DAYS` days (days without any absent)."""
    return fetch(
        conn,
        SIGNUPS_SQL,
        DayCount,
        {"days": SIGNUP_DAYS},
        timeout_ms=settings.monitor_collector_timeout_ms,
    )


def team_sizes(conn: psycopg.Connection[Any], *, settings: Settings) -> list[TeamSizeCount]:
    """Distribution of live team sizes."""
    return fetch(
        conn,
        TEAM_SIZES_SQL,
        TeamSizeCount,
        {"cap": TEAM_SIZE_CAP},
        timeout_ms=settings.monitor_collector_timeout_ms,
    )


def zero_owner_teams(
    conn: psycopg.Connection[Any], *, settings: Settings
) -> tuple[int, tuple[str, ...]]:
    """How many live teams have no live owner, and up to 10 of their ids."""
    row = fetch_one(
        conn, ZERO_OWNERS_SQL, _ZeroOwners, timeout_ms=settings.monitor_collector_timeout_ms
    )
    assert row is not None
    return row.count, tuple(row.sample or ())


def collect_data(conn: psycopg.Connection[Any], *, settings: Settings) -> DataStat | None:
    """The data section, read in one transaction; ``None`` without the dbops tables."""
    with conn.transaction():
        if not data_present(conn, settings=settings):
            return None
        counts = data_counts(conn, settings=settings)
        zero, sample = zero_owner_teams(conn, settings=settings)
        return DataStat(
            live_users=counts.live_users,
            deleted_users=counts.deleted_users,
            live_teams=counts.live_teams,
            deleted_teams=counts.deleted_teams,
            memberships_by_role=tuple(memberships_by_role(conn, settings=settings)),
            pending_invitations=counts.pending_invitations,
            expired_invitations=counts.expired_invitations,
            signups_per_day=tuple(signups_per_day(conn, settings=settings)),
            team_sizes=tuple(team_sizes(conn, settings=settings)),
            zero_owner_teams=zero,
            zero_owner_team_sample=sample,
        )
