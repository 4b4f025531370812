"""Aggregates of the tenant tables for the monitor role: SECURITY DEFINER functions.

The snapshot's data section (``dbops.monitoring.collectors.data``) counts users, teams,
memberships and invitations. The monitor role (the exporter, history capture) has no SELECT on
the tenant tables, and the tables FORCE row-level security (0008), so it gets these functions
instead, in schema ``dbops_monitor``. Each runs one of the data section's queries and returns
only aggregates: counts by state, by role, by UTC day and by team size. The one exception is
the integrity probe's sample of at most 10 ids of live teams without a live owner: team ids,
no user row, no name, no e-mail (docs/decisions/0008-monitor-aggregates.md says why).

Each function is ``SECURITY DEFINER``: it runs as its owner (the role that runs migrations,
the owner role), which is held by the FORCED policies too; like 0008's functions it sets
``app.actor_kind`` to ``system`` for its one query and puts the caller's value back (an error
aborts the statement, which rolls the setting back with it). A ``SET`` clause cannot carry a
custom setting for a non-superuser, but ``search_path`` can: ``pg_catalog, pg_temp`` (every
relation is schema-qualified, and ``pg_temp`` last so a caller's temporary table cannot stand
in for a tenant table). The arguments are clamped (days 1-366, size cap 1-100, sample 0-10).

``EXECUTE`` is revoked from ``PUBLIC``; ``dbops.ops.roles.grant_privileges`` grants it to the
monitor and read-only roles, never to the application role (cross-tenant numbers are not
the services' business).

Catalog changes only (new functions): no table is locked or scanned. The downgrade drops them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rules squawk may skip for this revision's SQL (scripts/lint_migrations.py), with the reason.
SQUAWK_IGNORE = {
    "require-statement-timeout": (
        "creates and drops functions only: no table lock, no scan; waits are bounded by the "
        "run's lock_timeout (decision 0003)"
    ),
}

#: Read the tenant tables as an explicit system actor for this one query, then put the
#: caller's actor kind back (0008's pattern). ``use_column``: the result columns are plpgsql
#: variables too; a bare name in the query means the table's column.
_AS_SYSTEM = """
    #variable_conflict use_column
    DECLARE
      caller text := coalesce(current_setting('app.actor_kind', true), '');
    BEGIN
      PERFORM set_config('app.actor_kind', 'system', true);
      RETURN QUERY {query};
      PERFORM set_config('app.actor_kind', caller, true);
    END
"""

_COUNTS = """
      SELECT u.live_users, u.deleted_users, t.live_teams, t.deleted_teams,
             i.pending_invitations, i.expired_invitations
      FROM (
        SELECT count(*) FILTER (WHERE deleted_at IS NULL) AS live_users,
               count(*) FILTER (WHERE deleted_at IS NOT NULL) AS deleted_users
        FROM public.users
      ) AS u,
      (
        SELECT count(*) FILTER (WHERE deleted_at IS NULL) AS live_teams,
               count(*) FILTER (WHERE deleted_at IS NOT NULL) AS deleted_teams
        FROM public.teams
      ) AS t,
      (
        SELECT count(*) FILTER (WHERE status = 'pending' AND expires_at > now())
                 AS pending_invitations,
               count(*) FILTER (
                 WHERE status = 'expired' OR (status = 'pending' AND expires_at <= now())
               ) AS expired_invitations
        FROM public.invitations
      ) AS i"""

_MEMBERSHIPS_BY_ROLE = """
      SELECT m.role::text, count(*)
      FROM public.team_members AS m
      GROUP BY m.role
      ORDER BY m.role"""

_SIGNUPS = """
      SELECT (u.created_at AT TIME ZONE 'UTC')::date, count(*)
      FROM public.users AS u
      WHERE u.created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                            - make_interval(days => least(greatest(days_back, 1), 366) - 1)
      GROUP BY 1
      ORDER BY 1"""

_TEAM_SIZES = """
      SELECT least(coalesce(m.members, 0), least(greatest(size_cap, 1), 100)), count(*)
      FROM public.teams AS t
      LEFT JOIN (
        SELECT x.team_id, count(*) AS members FROM public.team_members AS x GROUP BY x.team_id
      ) AS m ON m.team_id = t.id
      WHERE t.deleted_at IS NULL
      GROUP BY 1
      ORDER BY 1"""

_ZERO_OWNERS = """
      SELECT count(*),
             (array_agg(t.id::text ORDER BY t.id))[1:least(greatest(sample_size, 0), 10)]
      FROM public.teams AS t
      WHERE t.deleted_at IS NULL
        AND NOT EXISTS (
          SELECT 1
          FROM public.team_members AS m
          JOIN public.users AS u ON u.id = m.user_id AND u.deleted_at IS NULL
          WHERE m.team_id = t.id AND m.role = 'OWNER'
        )"""

#: (signature, result columns, body query, comment); every one in schema dbops_monitor.
FUNCTIONS: tuple[tuple[str, str, str, str], ...] = (
    (
        "data_counts()",
        "live_users bigint, deleted_users bigint, live_teams bigint, deleted_teams bigint, "
        "pending_invitations bigint, expired_invitations bigint",
        _COUNTS,
        "users, teams and invitations counted by state",
    ),
    (
        "data_memberships_by_role()",
        "key text, count bigint",
        _MEMBERSHIPS_BY_ROLE,
        "memberships per role",
    ),
    (
        "data_signups_per_day(days_back integer)",
        "day date, count bigint",
        _SIGNUPS,
        "new users per UTC day over the last days_back days (1-366)",
    ),
    (
        "data_team_sizes(size_cap integer)",
        "members bigint, teams bigint",
        _TEAM_SIZES,
        "live teams by member count; the last bucket is size_cap (1-100) or more",
    ),
    (
        "data_zero_owner_teams(sample_size integer)",
        "count bigint, sample text[]",
        _ZERO_OWNERS,
        "live teams without a live owner, and up to sample_size (0-10) of their ids",
    ),
)


def _identity(signature: str) -> str:
    """``data_team_sizes(size_cap integer)`` -> ``dbops_monitor.data_team_sizes(integer)``."""
    name, _, args = signature.partition("(")
    types = ", ".join(arg.split()[-1] for arg in args.rstrip(")").split(",") if arg.strip())
    return f"dbops_monitor.{name}({types})"


def upgrade() -> None:
    for signature, columns, query, comment in FUNCTIONS:
        op.execute(
            f"""
            CREATE FUNCTION dbops_monitor.{signature} RETURNS TABLE ({columns})
            LANGUAGE plpgsql STABLE SECURITY DEFINER
            SET search_path = pg_catalog, pg_temp
            AS $$
            {_AS_SYSTEM.format(query=query)}
            $$
            """
        )
        identity = _identity(signature)
        op.execute(f"REVOKE ALL ON FUNCTION {identity} FROM PUBLIC")
        op.execute(
            f"COMMENT ON FUNCTION {identity} IS "
            f"'dbops monitor: {comment}; aggregates only, read past RLS (decision 0008)'"
        )


def downgrade() -> None:
    for signature, *_ in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {_identity(signature)}")
