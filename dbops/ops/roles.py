"""Database roles dbops sets up: a read-only LOGIN role for the dashboard and notebooks."""

from __future__ import annotations

from psycopg import sql

from dbops.db import Database

__all__ = ["ensure_readonly_role"]

ROLE_EXISTS_SQL = """
SELECT count(*) AS n FROM pg_roles WHERE rolname = %(name)s
"""

CREATE_ROLE_SQL = sql.SQL("CREATE ROLE {role} LOGIN PASSWORD {password}")

ALTER_ROLE_SQL = sql.SQL(
    "ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
    "NOBYPASSRLS PASSWORD {password}"
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


def ensure_readonly_role(
    db: Database, name: str = "dbops_readonly", *, password: str, schema: str = "public"
) -> str:
    """Create or update a LOGIN role that can read the app's tables and the statistics only.

    The role gets ``pg_monitor`` (statistics views, ``pg_stat_statements`` text), CONNECT on
    the current database, USAGE and SELECT on every table of ``schema`` (and on tables created
    there later by the role running this), and ``default_transaction_read_only = on``. It gets
    no write privilege: an INSERT fails even in a transaction that turns read-only off.
    Running it again resets the password and privileges (idempotent).

    Args:
        db: a database opened with a role that may create roles and grant on ``schema``.
        name: the role's name.
        password: its new password.
        schema: the application schema.

    Returns:
        The role's name.
    """
    role = sql.Identifier(name)
    secret = sql.Literal(password)
    with db.connection() as conn:
        row = conn.execute(ROLE_EXISTS_SQL, {"name": name}).fetchone()
        exists = bool(row and row[0])
        statement = ALTER_ROLE_SQL if exists else CREATE_ROLE_SQL
        conn.execute(statement.format(role=role, password=secret))
        conn.execute(READ_ONLY_DEFAULT_SQL.format(role=role))
        conn.execute(GRANT_MONITOR_SQL.format(role=role))
        current = conn.execute(CURRENT_DATABASE_SQL).fetchone()
        assert current is not None
        conn.execute(GRANT_CONNECT_SQL.format(database=sql.Identifier(current[0]), role=role))
        target = sql.Identifier(schema)
        conn.execute(GRANT_USAGE_SQL.format(schema=target, role=role))
        conn.execute(GRANT_SELECT_SQL.format(schema=target, role=role))
        conn.execute(DEFAULT_SELECT_SQL.format(schema=target, role=role))
    return name
