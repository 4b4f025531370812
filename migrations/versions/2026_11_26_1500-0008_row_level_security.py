"""Row-level security on the tenant tables: enabled and FORCED, policies on the acting user.

The services put the acting identity on every connection they use (``dbops.services._base``,
docs/decisions/0007-row-level-security.md): ``app.actor_kind`` (``user`` or ``system``),
``app.actor_id`` (the user's id) and ``app.actor_name``. The policies read them with
``current_setting(..., true)``; an unset or empty setting matches nothing, so a connection that
names no actor sees zero rows and can write none (fail closed). A system actor is explicit
(``app.actor_kind = 'system'``) and sees everything.

What a user actor sees and may change:

- ``teams``, ``team_members``, ``invitations``, ``team_locations``: the teams they are a
  member of (any role: finer role rules are the services'); their own membership rows.
- ``users``: themselves and their teammates (read); themselves (update). Creating and
  deleting users is for system actors (sign-up and erasure are system flows).

The policies need "the teams of the actor", which is a read of ``team_members`` from inside a
policy of ``team_members`` itself (infinite recursion if written as a sub-select). It is a
function instead, which sets ``app.actor_kind`` to ``system`` for its one query and back, so
it reads ``team_members`` past the policies, and returns only the caller's own team ids:
calling it directly reveals nothing the caller could not see. (A ``SET`` clause on the
function would be simpler, but PostgreSQL 15 lets only superusers put a custom setting there,
and migrations run as the owner.) It runs with the caller's rights (no SECURITY DEFINER).

``FORCE`` makes the policies apply to the owner role too: migrations run as the owner and act
as an explicit system actor (``migrations/env.py``).

Every statement is a catalog change on the four tables (an ``ACCESS EXCLUSIVE`` lock each for
``ALTER TABLE ... ROW LEVEL SECURITY`` and ``CREATE POLICY``, held briefly, bounded by the run's
lock_timeout: decision 0003). The downgrade drops policies and functions and disables RLS.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rules squawk may skip for this revision's SQL (scripts/lint_migrations.py), with the reason.
SQUAWK_IGNORE = {
    "require-statement-timeout": (
        "catalog-only changes (functions, policies, RLS flags): no scan, no rewrite; waits are "
        "bounded by the run's lock_timeout (decision 0003)"
    ),
}

#: The acting user's id, or NULL when none is set (fail closed).
ACTOR_ID = "NULLIF(current_setting('app.actor_id', true), '')::uuid"
#: True only for an explicit system actor.
IS_SYSTEM = "coalesce(current_setting('app.actor_kind', true), '') = 'system'"
#: Team ids the acting user is a member of (a hashed sub-plan: one call per statement).
IN_ACTOR_TEAMS = "team_id IN (SELECT rls_actor_team_ids())"

#: The body of both functions: read ``team_members`` as an explicit system actor for this one
#: query, then put the caller's actor kind back (an error aborts the statement, which rolls the
#: setting back with it).
_AS_SYSTEM = """
    DECLARE
      caller text := coalesce(current_setting('app.actor_kind', true), '');
    BEGIN
      PERFORM set_config('app.actor_kind', 'system', true);
      RETURN QUERY {query};
      PERFORM set_config('app.actor_kind', caller, true);
    END
"""

_OWN_TEAMS = f"SELECT m.team_id FROM public.team_members AS m WHERE m.user_id = {ACTOR_ID}"

FUNCTIONS = (
    f"""
    CREATE FUNCTION rls_actor_team_ids() RETURNS SETOF uuid
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, public
    AS $$
    {_AS_SYSTEM.format(query=_OWN_TEAMS)}
    $$
    """,
    "COMMENT ON FUNCTION rls_actor_team_ids() IS "
    "'dbops RLS: the teams of app.actor_id (read past the policies; decision 0007)'",
    f"""
    CREATE FUNCTION rls_actor_teammate_ids() RETURNS SETOF uuid
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, public
    AS $$
    {
        _AS_SYSTEM.format(
            query=f'''
      SELECT DISTINCT other.user_id
      FROM public.team_members AS mine
      JOIN public.team_members AS other ON other.team_id = mine.team_id
      WHERE mine.user_id = {ACTOR_ID}'''
        )
    }
    $$
    """,
    "COMMENT ON FUNCTION rls_actor_teammate_ids() IS "
    "'dbops RLS: users sharing a team with app.actor_id (decision 0007)'",
)

#: (table, policy name, command, USING, WITH CHECK); one permissive policy per command.
POLICIES: tuple[tuple[str, str, str, str | None, str | None], ...] = (
    (
        "teams",
        "teams_select",
        "SELECT",
        f"{IS_SYSTEM} OR id IN (SELECT rls_actor_team_ids())",
        None,
    ),
    ("teams", "teams_insert", "INSERT", None, f"{IS_SYSTEM}"),
    (
        "teams",
        "teams_update",
        "UPDATE",
        f"{IS_SYSTEM} OR id IN (SELECT rls_actor_team_ids())",
        f"{IS_SYSTEM} OR id IN (SELECT rls_actor_team_ids())",
    ),
    ("teams", "teams_delete", "DELETE", f"{IS_SYSTEM}", None),
    (
        "team_members",
        "team_members_select",
        "SELECT",
        f"{IS_SYSTEM} OR user_id = {ACTOR_ID} OR {IN_ACTOR_TEAMS}",
        None,
    ),
    ("team_members", "team_members_insert", "INSERT", None, f"{IS_SYSTEM} OR {IN_ACTOR_TEAMS}"),
    (
        "team_members",
        "team_members_update",
        "UPDATE",
        f"{IS_SYSTEM} OR {IN_ACTOR_TEAMS}",
        f"{IS_SYSTEM} OR {IN_ACTOR_TEAMS}",
    ),
    (
        "team_members",
        "team_members_delete",
        "DELETE",
        f"{IS_SYSTEM} OR user_id = {ACTOR_ID} OR {IN_ACTOR_TEAMS}",
        None,
    ),
    ("invitations", "invitations_select", "SELECT", f"{IS_SYSTEM} OR {IN_ACTOR_TEAMS}", None),
    ("invitations", "invitations_insert", "INSERT", None, f"{IS_SYSTEM} OR {IN_ACTOR_TEAMS}"),
    (
        "invitations",
        "invitations_update",
        "UPDATE",
        f"{IS_SYSTEM} OR {IN_ACTOR_TEAMS}",
        f"{IS_SYSTEM} OR {IN_ACTOR_TEAMS}",
    ),
    ("invitations", "invitations_delete", "DELETE", f"{IS_SYSTEM} OR {IN_ACTOR_TEAMS}", None),
    (
        "users",
        "users_select",
        "SELECT",
        f"{IS_SYSTEM} OR id = {ACTOR_ID} OR id IN (SELECT rls_actor_teammate_ids())",
        None,
    ),
    ("users", "users_insert", "INSERT", None, f"{IS_SYSTEM}"),
    (
        "users",
        "users_update",
        "UPDATE",
        f"{IS_SYSTEM} OR id = {ACTOR_ID}",
        f"{IS_SYSTEM} OR id = {ACTOR_ID}",
    ),
    ("users", "users_delete", "DELETE", f"{IS_SYSTEM}", None),
)

#: Tables whose rows belong to a team; team_locations exists only with PostGIS (0002).
TABLES = ("users", "teams", "team_members", "invitations")
LOCATIONS_POLICY = f"{IS_SYSTEM} OR {IN_ACTOR_TEAMS}"


def _create_policy(
    table: str, name: str, command: str, using: str | None, check: str | None
) -> str:
    parts = [f"CREATE POLICY {name} ON {table} AS PERMISSIVE FOR {command} TO PUBLIC"]
    if using is not None:
        parts.append(f"USING ({using})")
    if check is not None:
        parts.append(f"WITH CHECK ({check})")
    return " ".join(parts)


def upgrade() -> None:
    for statement in FUNCTIONS:
        op.execute(statement)
    for policy in POLICIES:
        op.execute(_create_policy(*policy))
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    # team_locations only when 0002 created it (PostGIS present); a DO block keeps the SQL
    # valid offline too.
    op.execute(
        f"""
        DO $$
        BEGIN
          IF to_regclass('public.team_locations') IS NOT NULL THEN
            EXECUTE 'CREATE POLICY team_locations_all ON team_locations AS PERMISSIVE FOR ALL '
                 || 'TO PUBLIC USING ({LOCATIONS_POLICY.replace("'", "''")}) '
                 || 'WITH CHECK ({LOCATIONS_POLICY.replace("'", "''")})';
            ALTER TABLE team_locations ENABLE ROW LEVEL SECURITY;
            ALTER TABLE team_locations FORCE ROW LEVEL SECURITY;
          END IF;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        BEGIN
          IF to_regclass('public.team_locations') IS NOT NULL THEN
            ALTER TABLE team_locations NO FORCE ROW LEVEL SECURITY;
            ALTER TABLE team_locations DISABLE ROW LEVEL SECURITY;
            DROP POLICY IF EXISTS team_locations_all ON team_locations;
          END IF;
        END
        $$
        """
    )
    for table in reversed(TABLES):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    for table, name, *_ in reversed(POLICIES):
        op.execute(f"DROP POLICY {name} ON {table}")
    op.execute("DROP FUNCTION rls_actor_teammate_ids()")
    op.execute("DROP FUNCTION rls_actor_team_ids()")
