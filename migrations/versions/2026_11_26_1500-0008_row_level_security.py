"""Row-level security on the tenant tables: enabled and FORCED, policies on the acting user.

The services put the acting identity on every connection they use (``dbops.services._base``,
docs/decisions/0007-row-level-security.md): ``app.actor_kind`` (``user`` or ``system``),
``app.actor_id`` (the user's id) and ``app.actor_name``. An unset or empty ``app.actor_id``
matches nothing, so a connection that names no actor sees zero rows and writes none (fail
closed).

What a user actor sees and may change (policies ``tenant_*``, for every role):

- ``teams``, ``team_members``, ``invitations``, ``team_locations``: the teams they are a
  member of (any role: finer role rules are the services').
- ``users``: themselves and their teammates (read); themselves (update). Creating and
  deleting users and teams is for system actors.

Each policy compares the key with an array computed once per statement (an InitPlan,
``= ANY ((SELECT ...))``), so the primary key or the ``team_id`` index drives the scan: the
policy narrows a user's query to their own few rows before any other condition (operators
that are not LEAKPROOF, like ``lower()`` or ``@>``, may only run after the policy).

A **system actor** is explicit, and fast: the services switch to the ``dbops_system`` role
(BYPASSRLS, NOLOGIN, created by ``dbops roles setup``) for it, so system statements plan as
if RLS were off. Where that role is not set up (a single-role deployment), the policies
``a_system_*`` let the role that ran this migration (``TO CURRENT_USER``: the owner) act as a
system actor with ``app.actor_kind = 'system'``; migrations act so (``migrations/env.py``).

The arrays come from ``SECURITY DEFINER`` functions (a sub-select on ``team_members`` inside
its own policy would recurse). ``dbops roles setup`` gives them to ``dbops_system``, which
bypasses RLS; until then they run as this migration's role, as a system actor for their one
query (``a_system_*`` sorts first, so the check short-circuits before the recursion).

``FORCE`` makes the policies apply to the owner too: owning the tables is no bypass.

Every statement is a catalog change (``ALTER TABLE ... ROW LEVEL SECURITY`` and ``CREATE
POLICY`` take an ``ACCESS EXCLUSIVE`` lock, held briefly, bounded by the run's lock_timeout:
decision 0003). The downgrade drops policies and functions and disables RLS.

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

#: The body of the array functions: one query as an explicit system actor (only needed while
#: the functions belong to a role under RLS), then the caller's actor kind back.
_AS_SYSTEM = """
    DECLARE
      caller text := coalesce(current_setting('app.actor_kind', true), '');
      found uuid[];
    BEGIN
      PERFORM set_config('app.actor_kind', 'system', true);
      {query} INTO found;
      PERFORM set_config('app.actor_kind', caller, true);
      RETURN coalesce(found, '{{}}');
    END
"""

_OWN_TEAMS = f"""
      SELECT array_agg(m.team_id) FROM public.team_members AS m WHERE m.user_id = {ACTOR_ID}
"""
_VISIBLE_USERS = f"""
      SELECT array_agg(DISTINCT other.user_id) || {ACTOR_ID}
      FROM public.team_members AS mine
      JOIN public.team_members AS other ON other.team_id = mine.team_id
      WHERE mine.user_id = {ACTOR_ID}
"""

FUNCTIONS = (
    f"""
    CREATE FUNCTION rls_actor_team_ids() RETURNS uuid[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
    {_AS_SYSTEM.format(query=_OWN_TEAMS)}
    $$
    """,
    "COMMENT ON FUNCTION rls_actor_team_ids() IS "
    "'dbops RLS: the teams of app.actor_id (decision 0007)'",
    f"""
    CREATE FUNCTION rls_actor_user_ids() RETURNS uuid[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
    {_AS_SYSTEM.format(query=_VISIBLE_USERS)}
    $$
    """,
    "COMMENT ON FUNCTION rls_actor_user_ids() IS "
    "'dbops RLS: app.actor_id and the users sharing a team with it (decision 0007)'",
    # EXECUTE stays with PUBLIC: every role that reads these tables evaluates the policies
    # (without it a new role would get "permission denied" instead of zero rows), and only
    # the caller's own ids come out.
)

#: The actor's teams, computed once per statement (an InitPlan the index scan can use).
MY_TEAMS = "(SELECT rls_actor_team_ids())::uuid[]"
IN_MY_TEAMS = f"team_id = ANY ({MY_TEAMS})"

#: (table, policy name, command, USING, WITH CHECK) for every role; permissive.
POLICIES: tuple[tuple[str, str, str, str | None, str | None], ...] = (
    ("teams", "tenant_select", "SELECT", f"id = ANY ({MY_TEAMS})", None),
    ("teams", "tenant_update", "UPDATE", f"id = ANY ({MY_TEAMS})", f"id = ANY ({MY_TEAMS})"),
    ("team_members", "tenant_select", "SELECT", IN_MY_TEAMS, None),
    ("team_members", "tenant_insert", "INSERT", None, IN_MY_TEAMS),
    ("team_members", "tenant_update", "UPDATE", IN_MY_TEAMS, IN_MY_TEAMS),
    ("team_members", "tenant_delete", "DELETE", IN_MY_TEAMS, None),
    ("invitations", "tenant_select", "SELECT", IN_MY_TEAMS, None),
    ("invitations", "tenant_insert", "INSERT", None, IN_MY_TEAMS),
    ("invitations", "tenant_update", "UPDATE", IN_MY_TEAMS, IN_MY_TEAMS),
    ("invitations", "tenant_delete", "DELETE", IN_MY_TEAMS, None),
    ("users", "tenant_select", "SELECT", "id = ANY ((SELECT rls_actor_user_ids())::uuid[])", None),
    ("users", "tenant_update", "UPDATE", f"id = {ACTOR_ID}", f"id = {ACTOR_ID}"),
)

#: Tables under RLS; team_locations exists only with PostGIS (0002).
TABLES = ("users", "teams", "team_members", "invitations")


def _policy(table: str, name: str, command: str, using: str | None, check: str | None) -> str:
    parts = [f"CREATE POLICY {name} ON {table} AS PERMISSIVE FOR {command} TO PUBLIC"]
    if using is not None:
        parts.append(f"USING ({using})")
    if check is not None:
        parts.append(f"WITH CHECK ({check})")
    return " ".join(parts)


def _system_policy(table: str) -> str:
    return (
        f"CREATE POLICY a_system_all ON {table} AS PERMISSIVE FOR ALL TO CURRENT_USER "
        f"USING ({IS_SYSTEM}) WITH CHECK ({IS_SYSTEM})"
    )


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def upgrade() -> None:
    for statement in FUNCTIONS:
        op.execute(statement)
    for table in TABLES:
        op.execute(_system_policy(table))
    for policy in POLICIES:
        op.execute(_policy(*policy))
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
            EXECUTE '{_quoted(_system_policy("team_locations"))}';
            EXECUTE 'CREATE POLICY tenant_all ON team_locations AS PERMISSIVE FOR ALL TO PUBLIC '
                 || 'USING ({_quoted(IN_MY_TEAMS)}) WITH CHECK ({_quoted(IN_MY_TEAMS)})';
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
            DROP POLICY IF EXISTS tenant_all ON team_locations;
            DROP POLICY IF EXISTS a_system_all ON team_locations;
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
    for table in reversed(TABLES):
        op.execute(f"DROP POLICY a_system_all ON {table}")
    op.execute("DROP FUNCTION rls_actor_user_ids()")
    op.execute("DROP FUNCTION rls_actor_team_ids()")
