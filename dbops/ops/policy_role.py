"""What the tenant policies read, owned by ``dbops_policy`` (NOLOGIN, BYPASSRLS).

The policies (migrations 0008, 0010, 0012, 0013) find the actor's teams through functions and
views. ``dbops roles setup`` gives them all to ``dbops_policy``, a role granted to the owner only,
which the application cannot become (issue 15: owned by a role the app could become, they
could be dropped or rewritten).

The views get their **planned form** here (migration 0013 creates a portable one, correct
under any owner): a query on ``team_members`` the planner inlines into each statement, one
``ix_team_members_user_id`` probe instead of a plpgsql call per RLS table. Only a BYPASSRLS
owner may run it: under an owner subject to RLS, ``team_members``' own policy would reach the
view again ("infinite recursion detected in policy"). Both filter on ``app.actor_id``
themselves, so what comes out never depends on the owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from dbops.db.roles import POLICY_ROLE

__all__ = ["POLICY_VIEWS", "RLS_FUNCTIONS", "hand_to_policy_role"]

#: The functions behind the tenant policies (migrations 0008, 0010; ``rls_actor_user_ids`` only
#: from 0008 to 0011, dropped by 0012). dbops' roles may call them.
RLS_FUNCTIONS = ("rls_actor_team_ids()", "rls_actor_user_ids()", "rls_actor_owned_team_ids()")

ACTOR_ID = "NULLIF(current_setting('app.actor_id', true), '')::uuid"

#: Rows only for a caller that may read ``team_members`` itself. The views are ``SELECT`` to
#: ``PUBLIC`` (every role a policy judges reads them: the app, the read-only role, an operator's
#: own reporting role) and answer for whatever ``app.actor_id`` a session sets; without this
#: the monitor role (no tenant table) could set anyone's id and read their teams and teammates.
#: A caller with ``SELECT`` on ``team_members`` sees the same rows through its policy anyway.
#: Inside a view ``current_user`` is still the caller; the ``regclass`` literal is stored as an
#: OID, and a qual without columns is one filter per execution, not per row.
MAY_READ_MEMBERSHIPS = "has_table_privilege('public.team_members'::regclass, 'SELECT')"

#: The planned form of migration 0013's views: same columns, same rows, no function call.
POLICY_VIEWS: dict[str, str] = {
    "rls_actor_teams": (
        "SELECT m.team_id FROM public.team_members AS m "
        f"WHERE m.user_id = {ACTOR_ID} AND {MAY_READ_MEMBERSHIPS}"
    ),
    "rls_actor_team_memberships": (
        "SELECT o.user_id, o.team_id FROM public.team_members AS o "
        "WHERE o.team_id = ANY (ARRAY("
        f"SELECT m.team_id FROM public.team_members AS m WHERE m.user_id = {ACTOR_ID})) "
        f"AND {MAY_READ_MEMBERSHIPS}"
    ),
}

EXISTING_FUNCTIONS_SQL = """
SELECT f AS identity FROM unnest(%(functions)s::text[]) AS f WHERE to_regprocedure(f) IS NOT NULL
"""
EXISTING_VIEWS_SQL = """
SELECT v FROM unnest(%(views)s::text[]) AS v WHERE to_regclass('public.' || v) IS NOT NULL
"""
FUNCTION_OWNER_SQL = sql.SQL("ALTER FUNCTION {function} OWNER TO {role}")
GRANT_EXECUTE_SQL = sql.SQL("GRANT EXECUTE ON FUNCTION {function} TO {role}")
REVOKE_EXECUTE_SQL = sql.SQL("REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC")
VIEW_OWNER_SQL = sql.SQL("ALTER VIEW {view} OWNER TO {role}")
#: ``{query}`` is one of :data:`POLICY_VIEWS` (constants).
PLANNED_VIEW_SQL = sql.SQL("CREATE OR REPLACE VIEW {view} WITH (security_barrier) AS {query}")


def existing_functions(conn: psycopg.Connection[Any], functions: Sequence[str]) -> list[str]:
    """Those of ``functions`` (signatures) the database has: migrated far enough."""
    rows = conn.execute(EXISTING_FUNCTIONS_SQL, {"functions": list(functions)})
    return [r[0] for r in rows]


def hand_to_policy_role(conn: psycopg.Connection[Any], callers: Sequence[sql.Identifier]) -> None:
    """Give the policies' functions and views to ``dbops_policy``; the views get their planned form.

    Only ``callers`` (the roles whose writes the policies judge: owner, app, read-only) may
    execute the functions: they answer for whatever ``app.actor_id`` a session sets, and the
    migrations left them to ``PUBLIC`` (enough for a single-role deployment), so the monitor
    role could set anyone's id and read their teams. No read policy calls them any more (0013);
    the views stay ``PUBLIC`` and guard themselves (:data:`MAY_READ_MEMBERSHIPS`). Idempotent;
    the owner change comes first, so a view never runs its planned query under an owner subject
    to RLS.
    """
    policy = sql.Identifier(POLICY_ROLE)
    functions = [sql.SQL(f) for f in existing_functions(conn, RLS_FUNCTIONS)]  # fixed names
    for function in functions:  # none before migration 0008
        conn.execute(FUNCTION_OWNER_SQL.format(function=function, role=policy))
        for role in callers:
            conn.execute(GRANT_EXECUTE_SQL.format(function=function, role=role))
    views = conn.execute(EXISTING_VIEWS_SQL, {"views": list(POLICY_VIEWS)}).fetchall()
    for (name,) in views:  # none before migration 0013
        view = sql.Identifier("public", name)
        conn.execute(VIEW_OWNER_SQL.format(view=view, role=policy))
        query = sql.SQL(POLICY_VIEWS[name])  # a constant of this module
        conn.execute(PLANNED_VIEW_SQL.format(view=view, query=query))
    # Last: before the swap, a portable view still calls them for every role that reads it.
    for function in functions:
        conn.execute(REVOKE_EXECUTE_SQL.format(function=function))
