"""Creating and updating dbops' roles (``dbops roles setup``) and an operator's read-only role."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from dbops.db import Database
from dbops.db.roles import (
    ALL_ROLES,
    EXPECTED_ROLE_DEFAULTS,
    POLICY_ROLE,
    ROLE_DEFAULTS_SQL,
    ROLE_NAMES,
    SYSTEM_ROLE,
    RoleName,
)
from dbops.ops.roles.grants import (
    DEFAULT_SELECT_SQL,
    GRANT_CONNECT_SQL,
    GRANT_MONITOR_SQL,
    GRANT_SELECT_SQL,
    GRANT_USAGE_SQL,
    READ_ONLY_DEFAULT_SQL,
    current_database,
    grant_privileges,
)
from dbops.ops.roles.secrets import (
    CREATE_EXTENSION_SQL,
    password_verifier,
    purge_secret_statements,
    quiet_session,
)

#: Schemas dbops creates (their objects move to the owner role).
OWNED_SCHEMAS = ("public", "archive", "audit", "dbops_monitor")


#: Role attributes, after LOGIN and PASSWORD; every role gets NOSUPERUSER NOCREATEROLE.
_ATTRIBUTES: dict[RoleName, str] = {
    "owner": "NOBYPASSRLS",
    "app": "NOBYPASSRLS",
    "readonly": "BYPASSRLS",
    "monitor": "NOBYPASSRLS",
}


ROLE_EXISTS_SQL = """
SELECT count(*) AS n FROM pg_roles WHERE rolname = %(name)s
"""


CREATE_ROLE_SQL = sql.SQL("CREATE ROLE {role} LOGIN PASSWORD {password}")


ALTER_ROLE_SQL = sql.SQL(
    "ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
    "{attributes} PASSWORD {password}"
)


DATABASE_OWNER_SQL = sql.SQL("ALTER DATABASE {database} OWNER TO {role}")

#: PostgreSQL 14 creates schema ``public`` owned by the bootstrap superuser, with CREATE for
#: everyone; 15 and later give it to ``pg_database_owner`` (the database's owner: the owner
#: role) and revoke CREATE from PUBLIC, which dbops does on every version (``grants``). Without
#: this the owner role could create nothing in ``public`` on 14 (nor on a database upgraded
#: from 14). Only a schema the bootstrap superuser (oid 10) owns is handed over.
PUBLIC_SCHEMA_OWNER_SQL = """
SELECT format('ALTER SCHEMA public OWNER TO pg_database_owner')
FROM pg_namespace
WHERE nspname = 'public' AND nspowner = 10
"""


#: Objects of dbops' schemas not owned by ``owner`` and not part of an extension: statements
#: that give them to ``owner`` (schemas, tables/views/sequences, functions, types).
FOREIGN_OWNED_SQL = r"""
SELECT format('ALTER SCHEMA %%I OWNER TO %%I', n.nspname, %(owner)s::text) AS statement
FROM pg_namespace AS n
WHERE n.nspname = ANY(%(schemas)s) AND n.nspname <> 'public'
  AND n.nspowner <> (SELECT oid FROM pg_roles WHERE rolname = %(owner)s)
UNION ALL
SELECT format(
  'ALTER %%s %%I.%%I OWNER TO %%I',
  CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                 ELSE 'TABLE' END,
  n.nspname, c.relname, %(owner)s::text)
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s)
  AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = %(owner)s)
  AND NOT (c.relkind = 'v' AND c.relname LIKE 'rls\_%%')  -- the policies' views: policy role
  AND NOT EXISTS (
    SELECT 1 FROM pg_depend AS d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i')
  )
UNION ALL
SELECT format('ALTER ROUTINE %%s OWNER TO %%I', p.oid::regprocedure, %(owner)s::text)
FROM pg_proc AS p
JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname = ANY(%(schemas)s)
  AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = %(owner)s)
  AND NOT p.proname LIKE 'rls\_%%'  -- the policies' functions belong to the policy role
  AND NOT (n.nspname = 'dbops_monitor' AND p.proname LIKE 'data\_%%')  -- so do the aggregates
  AND NOT (n.nspname = 'public' AND p.proname = 'count_team_members')  -- and the counter
  AND NOT EXISTS (
    SELECT 1 FROM pg_depend AS d
    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  )
UNION ALL
SELECT format('ALTER TYPE %%I.%%I OWNER TO %%I', n.nspname, t.typname, %(owner)s::text)
FROM pg_type AS t
JOIN pg_namespace AS n ON n.oid = t.typnamespace
WHERE n.nspname = ANY(%(schemas)s)
  AND t.typtype IN ('e', 'd')
  AND t.typowner <> (SELECT oid FROM pg_roles WHERE rolname = %(owner)s)
  AND NOT EXISTS (
    SELECT 1 FROM pg_depend AS d
    WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e'
  )
"""


#: Extensions created here by the administrator when the server has them (none is a trusted
#: extension the owner role could create itself): ``pg_trgm`` and ``postgis`` for the
#: migrations (migration 0002 then finds them installed and leaves them alone, also on
#: downgrade), ``hypopg`` for planner-verified index advice (``dbops monitor checks
#: --advice``, the dashboard's Indexes page): hypothetical indexes live in one session's memory
#: and change nothing on disk.
EXTENSIONS = ("pg_trgm", "postgis", "hypopg")


AVAILABLE_EXTENSION_SQL = """
SELECT count(*) AS n FROM pg_available_extensions WHERE name = %(name)s
"""


@dataclass(frozen=True)
class RolesReport:
    """What :func:`setup_roles` did.

    ``defaults_removed``: role-level settings found on dbops' roles and removed
    (``role: name=value``; dbops' own read-only default left out). ``secret_statements``:
    statistics entries holding a password literal, removed.
    """

    created: tuple[str, ...]
    updated: tuple[str, ...]
    reowned: int
    defaults_removed: tuple[str, ...] = ()
    secret_statements: int = 0


def _ensure_role(
    conn: psycopg.Connection[Any], role: RoleName, password: str
) -> Literal["created", "updated"]:
    name = ROLE_NAMES[role]
    ident = sql.Identifier(name)
    row = conn.execute(ROLE_EXISTS_SQL, {"name": name}).fetchone()
    created = not (row and row[0])
    secret = sql.Literal(password_verifier(conn, name, password))
    if created:
        conn.execute(CREATE_ROLE_SQL.format(role=ident, password=secret))
    conn.execute(
        ALTER_ROLE_SQL.format(role=ident, attributes=sql.SQL(_ATTRIBUTES[role]), password=secret)
    )
    return "created" if created else "updated"


CREATE_SYSTEM_ROLE_SQL = sql.SQL("CREATE ROLE {role} NOLOGIN BYPASSRLS")


ALTER_SYSTEM_ROLE_SQL = sql.SQL(
    "ALTER ROLE {role} WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS"
)


GRANT_ROLE_SQL = sql.SQL("GRANT {role} TO {member}")


def _ensure_nologin_role(conn: psycopg.Connection[Any], name: str, member: str) -> None:
    """Create or update the NOLOGIN BYPASSRLS role ``name``, granted to ``member`` only."""
    ident = sql.Identifier(name)
    row = conn.execute(ROLE_EXISTS_SQL, {"name": name}).fetchone()
    if not (row and row[0]):
        conn.execute(CREATE_SYSTEM_ROLE_SQL.format(role=ident))
    conn.execute(ALTER_SYSTEM_ROLE_SQL.format(role=ident))
    for (other,) in conn.execute(OTHER_MEMBERS_SQL, {"role": name, "member": member}).fetchall():
        conn.execute(REVOKE_ROLE_SQL.format(role=ident, member=sql.Identifier(other)))
    conn.execute(GRANT_ROLE_SQL.format(role=ident, member=sql.Identifier(member)))


#: Members of ``role`` other than ``member`` (a grant dbops did not make: revoked).
OTHER_MEMBERS_SQL = """
SELECT m.rolname::text FROM pg_auth_members AS a
JOIN pg_roles AS r ON r.oid = a.roleid
JOIN pg_roles AS m ON m.oid = a.member
WHERE r.rolname = %(role)s AND m.rolname <> %(member)s AND NOT m.rolsuper
"""


REVOKE_ROLE_SQL = sql.SQL("REVOKE {role} FROM {member}")


RESET_ROLE_DEFAULTS_SQL = sql.SQL("ALTER ROLE {role} RESET ALL")


RESET_ROLE_DB_DEFAULTS_SQL = sql.SQL("ALTER ROLE {role} IN DATABASE {database} RESET ALL")


def _reset_role_defaults(conn: psycopg.Connection[Any]) -> list[str]:
    """Remove every role-level default of dbops' roles; returns the unexpected ones removed."""
    rows = conn.execute(ROLE_DEFAULTS_SQL, {"names": list(ALL_ROLES)}).fetchall()
    for role, database in {(r[0], r[1]) for r in rows}:
        if database is None:
            conn.execute(RESET_ROLE_DEFAULTS_SQL.format(role=sql.Identifier(role)))
        else:
            conn.execute(
                RESET_ROLE_DB_DEFAULTS_SQL.format(
                    role=sql.Identifier(role), database=sql.Identifier(database)
                )
            )
    return [
        f"{role}{f' in {database}' if database else ''}: {setting}"
        for role, database, setting in rows
        if (role, database, setting) not in EXPECTED_ROLE_DEFAULTS
    ]


def setup_roles(db: Database, passwords: Mapping[RoleName, str]) -> RolesReport:
    """Create or update the four roles, give dbops' objects to the owner, grant the rest.

    Also creates the extensions the migrations need (:data:`EXTENSIONS`), which only an
    administrator may create.

    Args:
        db: the database, opened with a role that may create roles (CREATEROLE and, for the
            read-only role's BYPASSRLS, superuser) and change the owner of dbops' objects.
        passwords: each role's password (all four).

    Returns:
        Which roles were created or updated, and how many objects changed owner.
    """
    created: list[str] = []
    updated: list[str] = []
    with db.connection() as conn:
        quiet_session(conn)
        for role in ROLE_NAMES:
            outcome = _ensure_role(conn, role, passwords[role])
            (created if outcome == "created" else updated).append(ROLE_NAMES[role])
        _ensure_nologin_role(conn, SYSTEM_ROLE, ROLE_NAMES["app"])
        _ensure_nologin_role(conn, POLICY_ROLE, ROLE_NAMES["owner"])
        defaults_removed = _reset_role_defaults(conn)
        for extension in EXTENSIONS:
            row = conn.execute(AVAILABLE_EXTENSION_SQL, {"name": extension}).fetchone()
            if row and row[0]:
                conn.execute(CREATE_EXTENSION_SQL.format(name=sql.Identifier(extension)))
        owner_name = ROLE_NAMES["owner"]
        database = sql.Identifier(current_database(conn))
        conn.execute(DATABASE_OWNER_SQL.format(database=database, role=sql.Identifier(owner_name)))
        statements = [r[0] for r in conn.execute(PUBLIC_SCHEMA_OWNER_SQL)]
        statements += [
            r[0]
            for r in conn.execute(
                FOREIGN_OWNED_SQL, {"owner": owner_name, "schemas": list(OWNED_SCHEMAS)}
            )
        ]
        for statement in statements:
            conn.execute(sql.SQL(statement))  # built by format() in FOREIGN_OWNED_SQL
        grant_privileges(conn)
        purged = purge_secret_statements(conn)
    return RolesReport(
        created=tuple(created),
        updated=tuple(updated),
        reowned=len(statements),
        defaults_removed=tuple(defaults_removed),
        secret_statements=purged,
    )


def ensure_readonly_role(
    db: Database, name: str = "dbops_readonly", *, password: str, schema: str = "public"
) -> str:
    """Create or update a LOGIN role that can read the app's tables and the statistics only.

    The role gets ``pg_monitor`` (statistics views, ``pg_stat_statements`` text), CONNECT on
    the current database, USAGE and SELECT on every table of ``schema`` (and on tables created
    there later by the role running this), and ``default_transaction_read_only = on``. It gets
    no write privilege: an INSERT fails even in a transaction that turns read-only off.
    Running it again resets the password and privileges (idempotent). For an external database
    without dbops' role set; :func:`setup_roles` makes the full set.

    Args:
        db: a database opened with a role that may create roles and grant on ``schema``.
        name: the role's name.
        password: its new password.
        schema: the application schema.

    Returns:
        The role's name.
    """
    role = sql.Identifier(name)
    with db.connection() as conn:
        quiet_session(conn)
        secret = sql.Literal(password_verifier(conn, name, password))
        row = conn.execute(ROLE_EXISTS_SQL, {"name": name}).fetchone()
        if not (row and row[0]):
            conn.execute(CREATE_ROLE_SQL.format(role=role, password=secret))
        conn.execute(
            ALTER_ROLE_SQL.format(role=role, attributes=sql.SQL("NOBYPASSRLS"), password=secret)
        )
        conn.execute(READ_ONLY_DEFAULT_SQL.format(role=role))
        conn.execute(GRANT_MONITOR_SQL.format(role=role))
        conn.execute(
            GRANT_CONNECT_SQL.format(database=sql.Identifier(current_database(conn)), role=role)
        )
        target = sql.Identifier(schema)
        conn.execute(GRANT_USAGE_SQL.format(schema=target, role=role))
        conn.execute(GRANT_SELECT_SQL.format(schema=target, role=role))
        conn.execute(DEFAULT_SELECT_SQL.format(schema=target, role=role))
    return name
