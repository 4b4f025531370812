"""The application's data: users, teams, memberships, invitations, and integrity probes.

Runs only when the dbops tables exist; otherwise the data section is ``None``. Each query has
two forms (:class:`DataQueries`): plain SQL on the tables (this package does not import the
models), and a call of the SECURITY DEFINER aggregate function of migration 0009 that runs the
same query past row-level security and returns only its aggregates. The functions are used
whenever the connected role may execute them (the monitor and read-only roles, a superuser);
the plain SQL otherwise (a database before 0009, a role granted SELECT on the tables). The
monitor role has no SELECT on the tables: before 0009 its data section is a privilege error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from dbops.config import MonitorSettings
from dbops.core.audit_head import read_head
from dbops.db.roles import DATA_FUNCTIONS
from dbops.monitoring._fetch import fetch, fetch_one
from dbops.monitoring.collectors._section import Part, Section, only
from dbops.monitoring.snapshot import CountBy, DataStat, DayCount, TeamSizeCount

__all__ = [
    "ON_TABLES",
    "SECTION",
    "SIGNUP_DAYS",
    "TEAM_SIZE_CAP",
    "THROUGH_FUNCTIONS",
    "ZERO_OWNER_SAMPLE",
    "DataQueries",
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
#: Ids of teams without an owner kept in a snapshot (the functions return at most 10).
ZERO_OWNER_SAMPLE = 10

#: Do the tables exist, and may this role execute every aggregate function (migration 0009)?
#: Schema first: looking a name up in a schema without USAGE is an error, not a NULL.
PRESENT_SQL = """
SELECT to_regclass('users') IS NOT NULL
       AND to_regclass('teams') IS NOT NULL
       AND to_regclass('team_members') IS NOT NULL
       AND to_regclass('invitations') IS NOT NULL AS present,
       CASE
         WHEN to_regnamespace('dbops_monitor') IS NULL THEN false
         WHEN NOT has_schema_privilege('dbops_monitor', 'USAGE') THEN false
         ELSE (
           SELECT coalesce(bool_and(coalesce(
                    has_function_privilege(to_regprocedure(f), 'EXECUTE'), false)), false)
           FROM unnest(%(functions)s::text[]) AS f
         )
       END AS aggregates
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
#: (services). This form is for a role with ``SELECT`` on the four tables only (an operator's
#: own exporter role); dbops' roles run ``data_team_sizes``, which reads the counts kept with
#: the memberships since migration 0014 instead of grouping every membership.
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
SELECT count(*) AS count, (array_agg(t.id::text ORDER BY t.id))[1:%(sample)s] AS sample
FROM teams AS t
WHERE t.deleted_at IS NULL
  AND NOT EXISTS (
    SELECT 1
    FROM team_members AS m
    JOIN users AS u ON u.id = m.user_id AND u.deleted_at IS NULL
    WHERE m.team_id = t.id AND m.role = 'OWNER'
  )
"""

#: The same five queries through the aggregate functions (migration 0009): they read past
#: row-level security as an explicit system actor and return only these columns.
COUNTS_FUNCTION_SQL = """
SELECT live_users, deleted_users, live_teams, deleted_teams, pending_invitations,
       expired_invitations
FROM dbops_monitor.data_counts()
"""

MEMBERSHIPS_BY_ROLE_FUNCTION_SQL = """
SELECT key, count FROM dbops_monitor.data_memberships_by_role()
"""

SIGNUPS_FUNCTION_SQL = """
SELECT day, count FROM dbops_monitor.data_signups_per_day(%(days)s::integer)
"""

TEAM_SIZES_FUNCTION_SQL = """
SELECT members, teams FROM dbops_monitor.data_team_sizes(%(cap)s::integer)
"""

ZERO_OWNERS_FUNCTION_SQL = """
SELECT count, sample FROM dbops_monitor.data_zero_owner_teams(%(sample)s::integer)
"""


@dataclass(frozen=True)
class DataQueries:
    """The data section's five queries in one form (same columns, same numbers)."""

    counts: str
    memberships_by_role: str
    signups: str
    team_sizes: str
    zero_owners: str


#: Plain SQL on the tables: for a role that may read them past row-level security.
ON_TABLES = DataQueries(
    counts=COUNTS_SQL,
    memberships_by_role=MEMBERSHIPS_BY_ROLE_SQL,
    signups=SIGNUPS_SQL,
    team_sizes=TEAM_SIZES_SQL,
    zero_owners=ZERO_OWNERS_SQL,
)
#: The aggregate functions of migration 0009: the monitor role's way (it reads no table).
THROUGH_FUNCTIONS = DataQueries(
    counts=COUNTS_FUNCTION_SQL,
    memberships_by_role=MEMBERSHIPS_BY_ROLE_FUNCTION_SQL,
    signups=SIGNUPS_FUNCTION_SQL,
    team_sizes=TEAM_SIZES_FUNCTION_SQL,
    zero_owners=ZERO_OWNERS_FUNCTION_SQL,
)


@dataclass(frozen=True)
class _Present:
    present: bool
    aggregates: bool


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


def _presence(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> _Present:
    row = fetch_one(
        conn,
        PRESENT_SQL,
        _Present,
        {"functions": list(DATA_FUNCTIONS)},
        timeout_ms=settings.collector_timeout_ms,
    )
    assert row is not None
    return row


def data_present(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> bool:
    """True when the dbops tables exist in this database."""
    return _presence(conn, settings=settings).present


def data_counts(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings, queries: DataQueries = ON_TABLES
) -> DataCounts:
    """Users, teams and invitations counted by state."""
    row = fetch_one(conn, queries.counts, DataCounts, timeout_ms=settings.collector_timeout_ms)
    assert row is not None
    return row


def memberships_by_role(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings, queries: DataQueries = ON_TABLES
) -> list[CountBy]:
    """Memberships per role."""
    return fetch(
        conn,
        queries.memberships_by_role,
        CountBy,
        timeout_ms=settings.collector_timeout_ms,
    )


def signups_per_day(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings, queries: DataQueries = ON_TABLES
) -> list[DayCount]:
    """New users per UTC day over the last :data:`SIGNUP_DAYS` days (days without any absent)."""
    return fetch(
        conn,
        queries.signups,
        DayCount,
        {"days": SIGNUP_DAYS},
        timeout_ms=settings.collector_timeout_ms,
    )


def team_sizes(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings, queries: DataQueries = ON_TABLES
) -> list[TeamSizeCount]:
    """Distribution of live team sizes."""
    return fetch(
        conn,
        queries.team_sizes,
        TeamSizeCount,
        {"cap": TEAM_SIZE_CAP},
        timeout_ms=settings.collector_timeout_ms,
    )


def zero_owner_teams(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings, queries: DataQueries = ON_TABLES
) -> tuple[int, tuple[str, ...]]:
    """How many live teams have no live owner, and up to :data:`ZERO_OWNER_SAMPLE` of their ids.

    Team ids only (no name, no member): the monitor role gets them too, so an operator can
    find the broken team (docs/decisions/0008-monitor-aggregates.md).
    """
    row = fetch_one(
        conn,
        queries.zero_owners,
        _ZeroOwners,
        {"sample": ZERO_OWNER_SAMPLE},
        timeout_ms=settings.collector_timeout_ms,
    )
    assert row is not None
    return row.count, tuple(row.sample or ())


def collect_data(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings, queries: DataQueries | None = None
) -> DataStat | None:
    """The data section, read in one transaction; ``None`` without the dbops tables.

    ``queries`` None picks the form this role may run: the aggregate functions when it may
    execute every one of them, else the plain SQL.
    """
    with conn.transaction():
        present = _presence(conn, settings=settings)
        if not present.present:
            return None
        if queries is None:
            queries = THROUGH_FUNCTIONS if present.aggregates else ON_TABLES
        counts = data_counts(conn, settings=settings, queries=queries)
        zero, sample = zero_owner_teams(conn, settings=settings, queries=queries)
        return DataStat(
            live_users=counts.live_users,
            deleted_users=counts.deleted_users,
            live_teams=counts.live_teams,
            deleted_teams=counts.deleted_teams,
            memberships_by_role=tuple(
                memberships_by_role(conn, settings=settings, queries=queries)
            ),
            pending_invitations=counts.pending_invitations,
            expired_invitations=counts.expired_invitations,
            signups_per_day=tuple(signups_per_day(conn, settings=settings, queries=queries)),
            team_sizes=tuple(team_sizes(conn, settings=settings, queries=queries)),
            zero_owner_teams=zero,
            zero_owner_team_sample=sample,
            # In this transaction, under its statement timeout.
            audit_last_id=head.record_id if (head := read_head(conn)) is not None else None,
        )


#: The snapshot's ``data``: aggregates of the domain tables.
SECTION = Section("data", (Part("data", collect_data),), only("data"))
