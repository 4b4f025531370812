"""The services' role rules in the write policies: only an OWNER changes its team.

0008's write policies let any member of a team write its memberships, invitations and the
team row (finer role rules were the services'); through plain SQL as the app role with its own
actor, a MEMBER could promote itself to OWNER. Now the database holds the same rules as the
services (docs/permissions.md):

- ``team_members``: an OWNER of the team inserts, updates (roles) and deletes memberships; any
  member deletes its own (``leave``, a user deleting itself).
- ``invitations``, ``team_locations``: only an OWNER of the team writes them.
- ``teams``: only an OWNER updates the team row (rename, slug, settings, soft delete, restore).

Only the *new row* check (``WITH CHECK``) and ``DELETE`` carry the owner rule; ``UPDATE``'s
``USING`` stays "member of the team", because ``SELECT ... FOR UPDATE`` (the team lock every
change takes first, and the owner rows a leaving member locks) is judged by the ``UPDATE``
policy's ``USING``: a member must still be able to lock the rows its own ``leave`` waits for.
A member's ``UPDATE`` of its team's rows is refused by the check ("new row violates row-level
security policy"). The owner set is computed once per statement, before the statement's own
changes (a ``STABLE`` function in an InitPlan), so an owner who hands ownership over and then
steps down passes both checks.

``rls_actor_owned_team_ids()`` is the third policy function (the teams where ``app.actor_id`` is
an OWNER), ``SECURITY DEFINER`` like 0008's; ``dbops roles setup`` gives all three to
``dbops_policy`` (NOLOGIN, BYPASSRLS, a role the application cannot become).

Catalog changes only (a function, policies): ``DROP/CREATE POLICY`` take an ``ACCESS
EXCLUSIVE`` lock briefly, bounded by the run's lock_timeout (decision 0003). The downgrade puts
0008's policies back.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rules squawk may skip for this revision's SQL (scripts/lint_migrations.py), with the reason.
SQUAWK_IGNORE = {
    "require-statement-timeout": (
        "catalog-only changes (a function, policies): no scan, no rewrite; waits are bounded "
        "by the run's lock_timeout (decision 0003)"
    ),
}

ACTOR_ID = "NULLIF(current_setting('app.actor_id', true), '')::uuid"

#: As 0008's functions: one query as an explicit system actor (needed only while the function
#: belongs to a role under RLS, before ``dbops roles setup``), then the caller's kind back.
FUNCTION = f"""
CREATE FUNCTION rls_actor_owned_team_ids() RETURNS uuid[]
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    DECLARE
      caller text := coalesce(current_setting('app.actor_kind', true), '');
      found uuid[];
    BEGIN
      PERFORM set_config('app.actor_kind', 'system', true);
      SELECT array_agg(m.team_id) INTO found FROM public.team_members AS m
      WHERE m.user_id = {ACTOR_ID} AND m.role = 'OWNER';
      PERFORM set_config('app.actor_kind', caller, true);
      RETURN coalesce(found, '{{}}');
    END
$$
"""
COMMENT = (
    "COMMENT ON FUNCTION rls_actor_owned_team_ids() IS "
    "'dbops RLS: the teams where app.actor_id is an OWNER (migration 0010)'"
)

MY_TEAMS = "(SELECT rls_actor_team_ids())::uuid[]"
OWNED = "(SELECT rls_actor_owned_team_ids())::uuid[]"
IN_MY_TEAMS = f"team_id = ANY ({MY_TEAMS})"
IN_OWNED = f"team_id = ANY ({OWNED})"

Policy = tuple[str, str, str, str | None, str | None]

#: 0008's write policies, replaced (the downgrade recreates them).
OLD: tuple[Policy, ...] = (
    ("teams", "tenant_update", "UPDATE", f"id = ANY ({MY_TEAMS})", f"id = ANY ({MY_TEAMS})"),
    ("team_members", "tenant_insert", "INSERT", None, IN_MY_TEAMS),
    ("team_members", "tenant_update", "UPDATE", IN_MY_TEAMS, IN_MY_TEAMS),
    ("team_members", "tenant_delete", "DELETE", IN_MY_TEAMS, None),
    ("invitations", "tenant_insert", "INSERT", None, IN_MY_TEAMS),
    ("invitations", "tenant_update", "UPDATE", IN_MY_TEAMS, IN_MY_TEAMS),
    ("invitations", "tenant_delete", "DELETE", IN_MY_TEAMS, None),
)

#: The same policies with the owner rule (see the module docstring).
NEW: tuple[Policy, ...] = (
    ("teams", "tenant_update", "UPDATE", f"id = ANY ({MY_TEAMS})", f"id = ANY ({OWNED})"),
    ("team_members", "tenant_insert", "INSERT", None, IN_OWNED),
    ("team_members", "tenant_update", "UPDATE", IN_MY_TEAMS, IN_OWNED),
    (
        "team_members",
        "tenant_delete",
        "DELETE",
        f"{IN_OWNED} OR user_id = {ACTOR_ID}",
        None,
    ),
    ("invitations", "tenant_insert", "INSERT", None, IN_OWNED),
    ("invitations", "tenant_update", "UPDATE", IN_MY_TEAMS, IN_OWNED),
    ("invitations", "tenant_delete", "DELETE", IN_OWNED, None),
)

#: team_locations (only with PostGIS): 0008's one ``tenant_all`` becomes a read policy for
#: members and write policies for owners.
LOCATIONS_OLD: tuple[Policy, ...] = (
    ("team_locations", "tenant_all", "ALL", IN_MY_TEAMS, IN_MY_TEAMS),
)
LOCATIONS_NEW: tuple[Policy, ...] = (
    ("team_locations", "tenant_select", "SELECT", IN_MY_TEAMS, None),
    ("team_locations", "tenant_insert", "INSERT", None, IN_OWNED),
    ("team_locations", "tenant_update", "UPDATE", IN_MY_TEAMS, IN_OWNED),
    ("team_locations", "tenant_delete", "DELETE", IN_OWNED, None),
)


def _create(policy: Policy) -> str:
    table, name, command, using, check = policy
    parts = [f"CREATE POLICY {name} ON {table} AS PERMISSIVE FOR {command} TO PUBLIC"]
    if using is not None:
        parts.append(f"USING ({using})")
    if check is not None:
        parts.append(f"WITH CHECK ({check})")
    return " ".join(parts)


def _drop(policy: Policy) -> str:
    return f"DROP POLICY {policy[1]} ON {policy[0]}"


def _swap(old: Sequence[Policy], new: Sequence[Policy]) -> None:
    for policy in old:
        op.execute(_drop(policy))
    for policy in new:
        op.execute(_create(policy))


def _swap_locations(old: Sequence[Policy], new: Sequence[Policy]) -> None:
    """The same for team_locations, when 0002 created it (a DO block: valid SQL offline)."""
    statements = [_drop(p) for p in old] + [_create(p) for p in new]
    body = "\n".join(f"    EXECUTE '{s.replace(chr(39), chr(39) * 2)}';" for s in statements)
    op.execute(
        f"""
        DO $$
        BEGIN
          IF to_regclass('public.team_locations') IS NOT NULL THEN
        {body}
          END IF;
        END
        $$
        """
    )


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute(COMMENT)
    _swap(OLD, NEW)
    _swap_locations(LOCATIONS_OLD, LOCATIONS_NEW)


def downgrade() -> None:
    _swap_locations(LOCATIONS_NEW, LOCATIONS_OLD)
    _swap(NEW, OLD)
    op.execute("DROP FUNCTION rls_actor_owned_team_ids()")
