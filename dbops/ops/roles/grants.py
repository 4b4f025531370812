"""What each role may do on the objects that exist now (``grant_privileges``).

Run after every migration that adds a table or a function (``dbops up`` and the tests do);
idempotent. The role-by-role rules are in :mod:`dbops.ops.roles`.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from dbops.db.roles import (
    DATA_FUNCTIONS,
    POLICY_ROLE,
    ROLE_NAMES,
    SYSTEM_ROLE,
)
from dbops.ops.policy_role import (
    FUNCTION_OWNER_SQL,
    GRANT_EXECUTE_SQL,
    existing_functions,
    hand_to_policy_role,
)
from dbops.ops.roles.secrets import RELATION_EXISTS_SQL

#: Tables the application reads and writes (team_locations only exists with PostGIS).
APP_TABLES = ("users", "teams", "team_members", "invitations", "team_locations")


#: Columns the read-only role may not read: secrets and values only the application decrypts.
SECRET_COLUMNS = {
    "users": ("password_hash", "phone_ciphertext", "phone_blind_index"),
    "invitations": ("token_hash",),
}


#: What every application process calls to report its pools, caches and statements
#: (migration 0011, :mod:`dbops.telemetry.report`): the app role's only privilege in
#: ``dbops_monitor``.
REPORT_FUNCTION = (
    "dbops_monitor.report_process(text, text, text, integer, timestamp with time zone, jsonb)"
)


READ_ONLY_DEFAULT_SQL = sql.SQL("ALTER ROLE {role} SET default_transaction_read_only = on")


GRANT_MONITOR_SQL = sql.SQL("GRANT pg_monitor TO {role}")


GRANT_CONNECT_SQL = sql.SQL("GRANT CONNECT ON DATABASE {database} TO {role}")


GRANT_USAGE_SQL = sql.SQL("GRANT USAGE ON SCHEMA {schema} TO {role}")


GRANT_SELECT_SQL = sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")


DEFAULT_SELECT_SQL = sql.SQL(
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {role}"
)


CURRENT_DATABASE_SQL = """
SELECT current_database()::text AS name
"""


REVOKE_PUBLIC_CREATE_SQL = sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC")


EXISTING_TABLES_SQL = """
SELECT c.relname::text AS name
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname = ANY(%(tables)s)
"""


COLUMNS_SQL = """
SELECT attname::text AS name
FROM pg_attribute
WHERE attrelid = to_regclass(%(table)s) AND attnum > 0 AND NOT attisdropped
ORDER BY attnum
"""


EXISTING_SCHEMAS_SQL = """
SELECT nspname::text AS name FROM pg_namespace WHERE nspname = ANY(%(schemas)s)
"""


#: The trigger function that keeps ``team_member_counts`` (migration 0014).
COUNT_FUNCTION = "public.count_team_members()"


#: What the data aggregates (:data:`DATA_FUNCTIONS`) read, for their owner, the policy role.
DATA_TABLES_TO_POLICY_SQL = sql.SQL(
    "GRANT SELECT ON public.users, public.teams, public.team_members, public.invitations TO {role}"
)


def current_database(conn: psycopg.Connection[Any]) -> str:
    """The name of the database ``conn`` is connected to."""
    row = conn.execute(CURRENT_DATABASE_SQL).fetchone()
    assert row is not None
    return str(row[0])


SYSTEM_POLICIES_SQL = """
SELECT tablename::text FROM pg_policies
WHERE schemaname = 'public' AND policyname = 'a_system_all'
"""


def grant_privileges(conn: psycopg.Connection[Any]) -> None:
    """Grant each role what the module docstring says on the tables that exist now.

    Idempotent; run after every migration that adds a table or a function (``dbops up`` and
    the tests do).
    """
    owner = sql.Identifier(ROLE_NAMES["owner"])
    app = sql.Identifier(ROLE_NAMES["app"])
    readonly = sql.Identifier(ROLE_NAMES["readonly"])
    monitor = sql.Identifier(ROLE_NAMES["monitor"])
    database = sql.Identifier(current_database(conn))
    for role in (owner, app, readonly, monitor):
        conn.execute(GRANT_CONNECT_SQL.format(database=database, role=role))
    conn.execute(REVOKE_PUBLIC_CREATE_SQL)
    for role in (app, readonly):
        conn.execute(GRANT_USAGE_SQL.format(schema=sql.Identifier("public"), role=role))
    system = sql.Identifier(SYSTEM_ROLE)
    conn.execute(GRANT_USAGE_SQL.format(schema=sql.Identifier("public"), role=system))
    tables = [r[0] for r in conn.execute(EXISTING_TABLES_SQL, {"tables": list(APP_TABLES)})]
    for table in tables:
        ident = sql.Identifier(table)
        for role in (app, system):
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}").format(
                    table=ident, role=role
                )
            )
        hidden = SECRET_COLUMNS.get(table, ())
        columns = [r[0] for r in conn.execute(COLUMNS_SQL, {"table": f"public.{table}"})]
        visible = [sql.Identifier(c) for c in columns if c not in hidden]
        conn.execute(
            sql.SQL("REVOKE ALL ON {table} FROM {role}").format(table=ident, role=readonly)
        )
        conn.execute(
            sql.SQL("GRANT SELECT ({columns}) ON {table} TO {role}").format(
                columns=sql.SQL(", ").join(visible), table=ident, role=readonly
            )
        )
    # The owner's system-actor policies (0008, ``TO CURRENT_USER`` of the migration): to the
    # owner role, also when a superuser ran the migrations before the roles existed.
    for (table,) in conn.execute(SYSTEM_POLICIES_SQL).fetchall():
        conn.execute(
            sql.SQL("ALTER POLICY a_system_all ON {table} TO {role}").format(
                table=sql.Identifier(table), role=owner
            )
        )
    policy = sql.Identifier(POLICY_ROLE)
    conn.execute(GRANT_USAGE_SQL.format(schema=sql.Identifier("public"), role=policy))
    if "team_members" in tables:  # what the policy functions read, and nothing else
        conn.execute(sql.SQL("GRANT SELECT ON team_members TO {role}").format(role=policy))
    hand_to_policy_role(conn, (owner, app, readonly))
    counts = conn.execute(RELATION_EXISTS_SQL, {"name": "public.team_member_counts"}).fetchone()
    if counts and counts[0]:  # migration 0014
        # Read by the services and the operator; written only by the trigger function, which
        # the policy role (BYPASSRLS; the app cannot become it) owns from now on.
        for role in (app, system, readonly):
            conn.execute(sql.SQL("GRANT SELECT ON team_member_counts TO {role}").format(role=role))
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON team_member_counts TO {role}").format(
                role=policy
            )
        )
        conn.execute(FUNCTION_OWNER_SQL.format(function=sql.SQL(COUNT_FUNCTION), role=policy))
    for role in (readonly, monitor):
        conn.execute(GRANT_MONITOR_SQL.format(role=role))
    conn.execute(READ_ONLY_DEFAULT_SQL.format(role=readonly))
    schemas = {r[0] for r in conn.execute(EXISTING_SCHEMAS_SQL, {"schemas": ["dbops_monitor"]})}
    if "dbops_monitor" in schemas:
        history = sql.Identifier("dbops_monitor")
        for role in (readonly, monitor):
            conn.execute(GRANT_USAGE_SQL.format(schema=history, role=role))
        conn.execute(GRANT_SELECT_SQL.format(schema=history, role=readonly))
        conn.execute(
            sql.SQL(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"
            ).format(schema=history, role=monitor)
        )
        conn.execute(
            sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}").format(
                schema=history, role=monitor
            )
        )
    # The audit trail's head (one row: the last record's id and hash, no row data): what the
    # exporter publishes as dbops_audit_head_id, so that Prometheus keeps an outside anchor.
    head = conn.execute(RELATION_EXISTS_SQL, {"name": "audit.head"}).fetchone()
    if head and head[0]:
        for role in (readonly, monitor):
            conn.execute(GRANT_USAGE_SQL.format(schema=sql.Identifier("audit"), role=role))
            conn.execute(sql.SQL("GRANT SELECT ON audit.head TO {role}").format(role=role))
    data_functions = existing_functions(conn, DATA_FUNCTIONS)  # none before migration 0009
    if data_functions:
        # Owned by the policy role (BYPASSRLS; the app cannot become it), the aggregates read
        # the tables without the tenant policies. Owned by the owner (under forced RLS) they
        # passed the `a_system_all` policy row by row: at 1M users the counts took 3 s instead
        # of 0.15 s, and the data section timed out on a busy server.
        conn.execute(DATA_TABLES_TO_POLICY_SQL.format(role=policy))
    for function in data_functions:
        conn.execute(FUNCTION_OWNER_SQL.format(function=sql.SQL(function), role=policy))
        for role in (monitor, readonly):
            conn.execute(GRANT_EXECUTE_SQL.format(function=sql.SQL(function), role=role))
    for function in existing_functions(conn, (REPORT_FUNCTION,)):  # none before 0011
        conn.execute(GRANT_USAGE_SQL.format(schema=sql.Identifier("dbops_monitor"), role=app))
        conn.execute(GRANT_EXECUTE_SQL.format(function=sql.SQL(function), role=app))
