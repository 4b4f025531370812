"""Each team's member count, kept with its memberships: a team list costs the same for any size.

``teams.teams_of_user`` returns each team with its member count; it counted them per call (an
index-only scan of ``pk_team_members`` per team): 0.95-1.2 ms for a member of a 10,000-member
team against 0.15-0.2 ms in small teams, growing with the team (bench/bench_rls.py, issue 19).
Now ``team_member_counts (team_id, members)`` holds the count, one row per team that ever had a
member, and the statement reads one row per team.

The count is kept by statement-level triggers on ``team_members`` with transition tables (one
trigger run per statement, however many rows: a seeding ``COPY`` of millions of memberships
adds one grouped upsert): inserts add per team (``INSERT ... ON CONFLICT DO UPDATE``, in team
order), deletes subtract (the rows locked in team order first, so two statements that touch
several teams cannot deadlock on the counters), an update that moves a membership does both.
The row of a deleted team goes with it (``ON DELETE CASCADE``); a ``TRUNCATE`` of the
memberships empties the counts. Concurrent joins of one team
serialize on its counter row until commit: the price of a count that needs no scan.

The function is ``SECURITY DEFINER``: the application role may only read the counts (no
``INSERT``/``UPDATE`` privilege), and it cannot write them by hand. ``dbops roles setup`` gives
the function to ``dbops_policy`` (BYPASSRLS, a role the application cannot become), as the
policy functions; until then it runs as the migrating role, which the policy
``count_maintainer`` lets write the counts (``TO CURRENT_USER``; that role can read every
team's size, no tenant content). The table is under **forced** row-level security like the
tables it summarizes: a user actor reads the counts of their own teams (the ``teams`` read
rule), a system actor all of them.

The monitor's ``dbops_monitor.data_team_sizes`` (0009) reads the counts instead of grouping
every membership row.

Backfill: the triggers are created and the counts computed under ``SHARE ROW EXCLUSIVE`` on
``team_members`` (membership writes wait, reads go on; one grouped scan: about a second per
million memberships), in the revision's transaction, so no change falls between the two.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rules squawk may skip for this revision's SQL (scripts/lint_migrations.py), with the reason.
SQUAWK_IGNORE = {
    "require-statement-timeout": (
        "the backfill is one grouped scan of team_members that must finish under its lock; "
        "waits are bounded by the run's lock_timeout (decision 0003)"
    ),
    "prefer-robust-stmts": (
        "the revision runs in one transaction: a failure rolls every statement back, so a "
        "rerun starts from nothing"
    ),
}

MY_TEAMS = "ARRAY(SELECT t.team_id FROM public.rls_actor_teams AS t)"

#: The trigger function (one for the three events; each branch names only the transition
#: tables its event has).
COUNT_FUNCTION = """
CREATE FUNCTION public.count_team_members() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM public.team_member_counts;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO public.team_member_counts AS c (team_id, members)
        SELECT n.team_id, count(*) FROM new_rows AS n GROUP BY n.team_id ORDER BY n.team_id
        ON CONFLICT (team_id) DO UPDATE SET members = c.members + EXCLUDED.members;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM 1 FROM public.team_member_counts AS c
        WHERE c.team_id IN (SELECT o.team_id FROM old_rows AS o)
        ORDER BY c.team_id FOR UPDATE;
        UPDATE public.team_member_counts AS c SET members = c.members - d.n
        FROM (SELECT o.team_id, count(*) AS n FROM old_rows AS o GROUP BY o.team_id) AS d
        WHERE c.team_id = d.team_id;
    ELSIF EXISTS (
        SELECT FROM (
            SELECT n.team_id, 1 AS d FROM new_rows AS n
            UNION ALL SELECT o.team_id, -1 FROM old_rows AS o
        ) AS x GROUP BY team_id HAVING sum(d) <> 0
    ) THEN
        -- An UPDATE that moved memberships between teams (dbops never does; a hand edit may).
        PERFORM 1 FROM public.team_member_counts AS c
        WHERE c.team_id IN (SELECT n.team_id FROM new_rows AS n
                            UNION SELECT o.team_id FROM old_rows AS o)
        ORDER BY c.team_id FOR UPDATE;
        INSERT INTO public.team_member_counts AS c (team_id, members)
        SELECT x.team_id, sum(x.d) FROM (
            SELECT n.team_id, 1 AS d FROM new_rows AS n
            UNION ALL SELECT o.team_id, -1 FROM old_rows AS o
        ) AS x GROUP BY x.team_id HAVING sum(x.d) > 0 ORDER BY x.team_id
        ON CONFLICT (team_id) DO UPDATE SET members = c.members + EXCLUDED.members;
        UPDATE public.team_member_counts AS c SET members = c.members + d.n
        FROM (
            SELECT x.team_id, sum(x.d) AS n FROM (
                SELECT n.team_id, 1 AS d FROM new_rows AS n
                UNION ALL SELECT o.team_id, -1 FROM old_rows AS o
            ) AS x GROUP BY x.team_id HAVING sum(x.d) < 0
        ) AS d
        WHERE c.team_id = d.team_id;
    END IF;
    RETURN NULL;
END
$$
"""

#: Migration 0013's portable views called ``rls_actor_team_ids()`` as a plain argument, which the
#: planner evaluates while it plans (to estimate row counts): under an owner subject to RLS, the
#: function's own query on ``team_members`` planned the policy again, so any read of a tenant
#: table recursed until "stack depth limit exceeded", the backfill below included. As a
#: sub-select the call runs at execution only, once. Only the portable form is replaced:
#: ``dbops roles setup`` gives the views their planned form, which calls no function.
PORTABLE_VIEWS = {
    "rls_actor_teams": (
        "SELECT t.team_id FROM unnest((SELECT public.rls_actor_team_ids())) AS t(team_id)"
    ),
    "rls_actor_team_memberships": (
        "SELECT m.user_id, m.team_id FROM public.team_members AS m "
        "WHERE m.team_id = ANY ((SELECT public.rls_actor_team_ids())::uuid[])"
    ),
}
#: 0013's portable form, for the downgrade.
OLD_PORTABLE_VIEWS = {
    "rls_actor_teams": "SELECT unnest(public.rls_actor_team_ids()) AS team_id",
    "rls_actor_team_memberships": (
        "SELECT m.user_id, m.team_id FROM public.team_members AS m "
        "WHERE m.team_id = ANY (public.rls_actor_team_ids())"
    ),
}


def _portable(views: dict[str, str]) -> list[str]:
    """DO blocks that replace each view still in its portable form (it calls the function)."""
    return [
        f"""
        DO $$
        BEGIN
          IF pg_get_viewdef('public.{name}'::regclass) LIKE '%rls_actor_team_ids%' THEN
            CREATE OR REPLACE VIEW public.{name} WITH (security_barrier) AS {query};
          END IF;
        END
        $$
        """
        for name, query in views.items()
    ]


#: The monitor's team-size aggregate (migration 0009) reads the counts too: it grouped every
#: membership row (a second full scan of ``team_members`` in each data snapshot).
#: ``CREATE OR REPLACE`` keeps the function's owner (``dbops_policy``) and grants.
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
TEAM_SIZES = """
      SELECT least(coalesce(m.members, 0), least(greatest(size_cap, 1), 100)), count(*)
      FROM public.teams AS t
      LEFT JOIN public.team_member_counts AS m ON m.team_id = t.id
      WHERE t.deleted_at IS NULL
      GROUP BY 1
      ORDER BY 1"""
#: 0009's query, for the downgrade.
OLD_TEAM_SIZES = """
      SELECT least(coalesce(m.members, 0), least(greatest(size_cap, 1), 100)), count(*)
      FROM public.teams AS t
      LEFT JOIN (
        SELECT x.team_id, count(*) AS members FROM public.team_members AS x GROUP BY x.team_id
      ) AS m ON m.team_id = t.id
      WHERE t.deleted_at IS NULL
      GROUP BY 1
      ORDER BY 1"""


def _team_sizes(query: str) -> str:
    # The body's layout is 0009's to the byte: a downgrade must give back the same function.
    return f"""
            CREATE OR REPLACE FUNCTION dbops_monitor.data_team_sizes(size_cap integer)
            RETURNS TABLE (members bigint, teams bigint)
            LANGUAGE plpgsql STABLE SECURITY DEFINER
            SET search_path = pg_catalog, pg_temp
            AS $$
            {_AS_SYSTEM.format(query=query)}
            $$
            """


UPGRADE = (
    *_portable(PORTABLE_VIEWS),
    """
    CREATE TABLE public.team_member_counts (
        team_id uuid NOT NULL,
        members bigint NOT NULL,
        CONSTRAINT pk_team_member_counts PRIMARY KEY (team_id),
        CONSTRAINT fk_team_member_counts_team_id_teams FOREIGN KEY (team_id)
            REFERENCES public.teams (id) ON DELETE CASCADE
    )
    """,
    COUNT_FUNCTION,
    "REVOKE EXECUTE ON FUNCTION public.count_team_members() FROM PUBLIC",
    "COMMENT ON FUNCTION public.count_team_members() IS "
    "'dbops: keeps team_member_counts with team_members (migration 0014)'",
    f"""
    CREATE POLICY tenant_select ON public.team_member_counts AS PERMISSIVE FOR SELECT
    TO PUBLIC USING (team_id = ANY ({MY_TEAMS}))
    """,
    """
    CREATE POLICY count_maintainer ON public.team_member_counts AS PERMISSIVE FOR ALL
    TO CURRENT_USER USING (true) WITH CHECK (true)
    """,
    "ALTER TABLE public.team_member_counts ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE public.team_member_counts FORCE ROW LEVEL SECURITY",
    "LOCK TABLE public.team_members IN SHARE ROW EXCLUSIVE MODE",
    """
    CREATE TRIGGER count_members_inserted AFTER INSERT ON public.team_members
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.count_team_members()
    """,
    """
    CREATE TRIGGER count_members_deleted AFTER DELETE ON public.team_members
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.count_team_members()
    """,
    """
    CREATE TRIGGER count_members_truncated AFTER TRUNCATE ON public.team_members
    FOR EACH STATEMENT EXECUTE FUNCTION public.count_team_members()
    """,
    """
    CREATE TRIGGER count_members_moved AFTER UPDATE ON public.team_members
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.count_team_members()
    """,
    """
    INSERT INTO public.team_member_counts (team_id, members)
    SELECT team_id, count(*) FROM public.team_members GROUP BY team_id ORDER BY team_id
    """,
    _team_sizes(TEAM_SIZES),
)

DOWNGRADE = (
    _team_sizes(OLD_TEAM_SIZES),
    "DROP TRIGGER count_members_moved ON public.team_members",
    "DROP TRIGGER count_members_truncated ON public.team_members",
    "DROP TRIGGER count_members_deleted ON public.team_members",
    "DROP TRIGGER count_members_inserted ON public.team_members",
    "DROP FUNCTION public.count_team_members()",
    "DROP TABLE public.team_member_counts",
    *_portable(OLD_PORTABLE_VIEWS),
)


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
