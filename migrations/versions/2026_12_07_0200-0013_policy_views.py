"""The read policies get the actor's teams from views, planned into the statement.

Every read policy asked ``rls_actor_team_ids()`` (0008) for the actor's teams: a ``SECURITY
DEFINER`` plpgsql function, opaque to the planner, whose one query runs through SPI with its
own executor start, locks and plan check on every statement, once per RLS table the statement
reads (2-4 times for the services' hot reads). On this machine that was 60-130 µs per statement
over the same statement as a superuser (bench/bench_rls.py, docs/benchmarks.md, issue 19). A
view is SQL the planner inlines: the actor's teams become one ``ix_team_members_user_id``
probe in the statement's own plan (an InitPlan).

- ``rls_actor_teams (team_id)``: the actor's teams.
- ``rls_actor_team_memberships (user_id, team_id)``: the memberships in the actor's teams
  (what ``team_members``' own read policy shows the actor). ``users``' read policy probes it
  per row, by the row's id: ``EXISTS (... WHERE v.user_id = users.id OFFSET 0)``; the
  ``OFFSET 0`` keeps the probe per row (without it the planner may turn the ``EXISTS`` into a
  hashed set of all the actor's teammates, which grows with team sizes: what 0012 removed).

Both filter on ``app.actor_id`` themselves, so what they return does not depend on their
owner, and both are ``security_barrier`` (a caller's function cannot see the rows they filter
out). ``SELECT`` on them is granted to ``PUBLIC`` like ``EXECUTE`` on the functions: every
role that reads the tables evaluates the policies, and only the actor's own rows come out.

This revision creates them in their **portable form**, correct under any owner: they read the
teams from ``rls_actor_team_ids()``, so ``team_members``' policy can use them without
recursion while their owner is subject to RLS (the migrating role, a single-role deployment).
``dbops roles setup`` (``dbops.ops.roles.grant_privileges``) then gives them to
``dbops_policy`` (BYPASSRLS, like the functions) and replaces their query with the **planned
form**, which reads ``team_members`` directly (``dbops.ops.roles.POLICY_VIEWS``): no function
call left in any read policy. The write checks keep ``rls_actor_owned_team_ids()``.

Every policy starts from the actor's teams, so that lookup should touch no table row:
``ix_team_members_user_id`` becomes ``(user_id, team_id)``, the same leading column (every
query it served before, it serves) with the team in the index, so the probe is an index-only
scan. ``team_members`` exists and takes writes: the new index is built ``CONCURRENTLY`` under a
temporary name, the old one dropped ``CONCURRENTLY``, the new one renamed (one autocommit
block, each step rerun-safe, decision 0003). The rest are catalog changes (``CREATE VIEW``,
``ALTER POLICY``: brief ``ACCESS EXCLUSIVE`` locks, bounded by the run's lock_timeout). The
downgrade puts 0008/0010/0012's policy expressions back, drops the views and rebuilds the
one-column index.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from dbops.ops.migrate import create_index_concurrently, drop_index_concurrently

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rules squawk may skip for this revision's SQL (scripts/lint_migrations.py), with the reason.
SQUAWK_IGNORE = {
    "require-statement-timeout": (
        "a statement_timeout would abort the CONCURRENTLY build halfway on a big table; the "
        "rest are catalog-only changes (views, policy expressions); waits are bounded by the "
        "run's lock_timeout (decision 0003)"
    ),
    "prefer-robust-stmts": (
        "create_index_concurrently is rerun-safe without IF NOT EXISTS (it keeps a valid index "
        "and drops an INVALID one); the rename runs only while the temporary name exists"
    ),
}

INDEX = "ix_team_members_user_id"
BUILDING = "ix_team_members_user_id_building"
#: The temporary index gets its final name once the old one is gone (rerun-safe).
RENAME_BUILT = f"""
DO $$
BEGIN
    IF to_regclass('public.{BUILDING}') IS NOT NULL THEN
        ALTER INDEX {BUILDING} RENAME TO {INDEX};
    END IF;
END
$$
"""

ACTOR_ID = "NULLIF(current_setting('app.actor_id', true), '')::uuid"

#: The portable views (see the module docstring); roles setup swaps in the planned form.
VIEWS = (
    """
    CREATE VIEW public.rls_actor_teams WITH (security_barrier) AS
    SELECT unnest(public.rls_actor_team_ids()) AS team_id
    """,
    """
    CREATE VIEW public.rls_actor_team_memberships WITH (security_barrier) AS
    SELECT m.user_id, m.team_id FROM public.team_members AS m
    WHERE m.team_id = ANY (public.rls_actor_team_ids())
    """,
    "COMMENT ON VIEW public.rls_actor_teams IS "
    "'dbops RLS: the teams of app.actor_id (migration 0013)'",
    "COMMENT ON VIEW public.rls_actor_team_memberships IS "
    "'dbops RLS: the memberships in the teams of app.actor_id (migration 0013)'",
    "GRANT SELECT ON public.rls_actor_teams, public.rls_actor_team_memberships TO PUBLIC",
)
DROP_VIEWS = "DROP VIEW public.rls_actor_team_memberships, public.rls_actor_teams"

OLD_TEAMS = "(SELECT rls_actor_team_ids())::uuid[]"
NEW_TEAMS = "ARRAY(SELECT t.team_id FROM public.rls_actor_teams AS t)"

#: (table, policy, USING with ``{teams}`` for the actor's teams): the read sides that name them.
TEAM_POLICIES: tuple[tuple[str, str, str], ...] = (
    ("teams", "tenant_select", "id = ANY ({teams})"),
    ("teams", "tenant_update", "id = ANY ({teams})"),
    ("team_members", "tenant_select", "team_id = ANY ({teams})"),
    ("team_members", "tenant_update", "team_id = ANY ({teams})"),
    ("invitations", "tenant_select", "team_id = ANY ({teams})"),
    ("invitations", "tenant_update", "team_id = ANY ({teams})"),
)
#: team_locations exists only with PostGIS (0002).
LOCATION_POLICIES = ("tenant_select", "tenant_update")

OLD_USERS = f"""
    id = {ACTOR_ID}
    OR EXISTS (
        SELECT 1 FROM public.team_members AS m
        WHERE m.user_id = users.id AND m.team_id = ANY ({OLD_TEAMS})
    )
"""
NEW_USERS = f"""
    id = {ACTOR_ID}
    OR EXISTS (
        SELECT 1 FROM public.rls_actor_team_memberships AS v
        WHERE v.user_id = users.id
        OFFSET 0
    )
"""


def _alter(table: str, policy: str, using: str) -> str:
    return f"ALTER POLICY {policy} ON {table} USING ({using})"


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def _locations(teams: str) -> str:
    statements = "\n".join(
        f"EXECUTE '{_quoted(_alter('team_locations', policy, f'team_id = ANY ({teams})'))}';"
        for policy in LOCATION_POLICIES
    )
    return f"""
        DO $$
        BEGIN
          IF to_regclass('public.team_locations') IS NOT NULL THEN
            {statements}
          END IF;
        END
        $$
    """


def _policies(teams: str, users: str) -> None:
    for table, policy, using in TEAM_POLICIES:
        op.execute(_alter(table, policy, using.format(teams=teams)))
    op.execute(_locations(teams))
    op.execute(_alter("users", "tenant_select", users))


def _swap_index(columns: list[str]) -> None:
    with op.get_context().autocommit_block():
        create_index_concurrently(BUILDING, "team_members", columns)
        drop_index_concurrently(INDEX, "team_members")
        op.execute(RENAME_BUILT)


def upgrade() -> None:
    _swap_index(["user_id", "team_id"])
    for statement in VIEWS:
        op.execute(statement)
    _policies(NEW_TEAMS, NEW_USERS)


def downgrade() -> None:
    _policies(OLD_TEAMS, OLD_USERS)
    op.execute(DROP_VIEWS)
    _swap_index(["user_id"])
