"""Database roles dbops runs with: owner, app, read-only and monitor (``dbops roles setup``).

===============  =========================================================================
role             what it may do
===============  =========================================================================
dbops_owner      owns the database, the schemas and every table; runs migrations. No
                 BYPASSRLS: the tenant tables FORCE row-level security, so it sees rows only
                 as an explicit system actor (migrations set one).
dbops_app        what the application's services connect as: reads and writes the tenant
                 tables under row-level security; owns nothing, no BYPASSRLS, no access to
                 ``archive``, ``audit``, ``dbops_monitor`` or ``alembic_version``.
dbops_readonly   the dashboard and the notebooks: SELECT on the tenant tables (BYPASSRLS: an
                 operator's view across tenants) without the secret columns (password hashes,
                 phone ciphertext, invitation token hashes), the monitoring history and the
                 statistics views (``pg_monitor``); ``default_transaction_read_only``; no audit.
dbops_monitor    the exporter and history capture: ``pg_monitor`` and the ``dbops_monitor``
                 schema; no SELECT on any tenant table. The data section's numbers come from
                 the aggregate functions of migration 0009 (:data:`DATA_FUNCTIONS`), which
                 return counts only (and at most 10 ids of teams without an owner).
dbops_system     NOLOGIN, BYPASSRLS, granted to dbops_app: the services switch to it for an
                 explicit system actor (``SET ROLE``), so system statements plan without the
                 tenant policies. It owns nothing: the app role can become it.
dbops_policy     NOLOGIN, BYPASSRLS, granted to the owner only: owns the policies' functions
                 and views (migrations 0008, 0010, 0013; :mod:`dbops.ops.policy_role`) and the
                 data aggregates (:data:`DATA_FUNCTIONS`, which read past RLS) and the
                 member counter's trigger function (migration 0014), which no role the
                 application can become may alter.
===============  =========================================================================

Role-level defaults (``ALTER ROLE ... SET``) are removed from every dbops role on each setup
(any role may set its own: ``SET role = 'dbops_system'`` would make every new app connection
bypass RLS); the read-only role's ``default_transaction_read_only`` is set again.

EXECUTE on :data:`DATA_FUNCTIONS` goes to the monitor and read-only roles; the migration
revokes it from ``PUBLIC``, and the application role never gets it (cross-tenant numbers are
no service's business).

Everything here is idempotent and runs as a role that may create roles and change ownership
(the embedded cluster's superuser; a DBA's role elsewhere). Passwords come from settings or
``*_FILE`` files, or are generated for the embedded cluster. Only a SCRAM-SHA-256 verifier
computed on the client (libpq's ``PQencryptPasswordConn``) is sent, never the password, and
the statements are kept out of pg_stat_statements and the statement log where the session
may (a superuser); statistics entries that hold a password literal (from earlier versions, or
anyone's ``ALTER ROLE ... PASSWORD``) are removed (:func:`purge_secret_statements`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from dbops.config import Settings
from dbops.db import Database
from dbops.db.roles import (
    ALL_ROLES,
    DATA_FUNCTIONS,
    EXPECTED_ROLE_DEFAULTS,
    POLICY_ROLE,
    ROLE_DEFAULTS_SQL,
    ROLE_NAMES,
    SYSTEM_ROLE,
    RoleName,
)
from dbops.ops.policy_role import (
    FUNCTION_OWNER_SQL,
    GRANT_EXECUTE_SQL,
    existing_functions,
    hand_to_policy_role,
)
from dbops.redact import SECRET_PATTERN_SQL, redact_sql

__all__ = [
    "APP_TABLES",
    "DATA_FUNCTIONS",
    "REPORT_FUNCTION",
    "ROLE_NAMES",
    "RoleName",
    "RoleState",
    "RolesReport",
    "ensure_readonly_role",
    "grant_privileges",
    "password_verifier",
    "purge_secret_statements",
    "role_passwords",
    "role_status",
    "setup_roles",
]


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

DATABASE_OWNER_SQL = sql.SQL("ALTER DATABASE {database} OWNER TO {role}")
REVOKE_PUBLIC_CREATE_SQL = sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC")

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

#: Extensions created here by the administrator when the server has them (none is a trusted
#: extension the owner role could create itself): ``pg_trgm`` and ``postgis`` for the
#: migrations (migration 0002 then finds them installed and leaves them alone, also on
#: downgrade), ``hypopg`` for planner-verified index advice (``dbops monitor advice``, the
#: dashboard's Indexes page): hypothetical indexes live in one session's memory and change
#: nothing on disk.
EXTENSIONS = ("pg_trgm", "postgis", "hypopg")

AVAILABLE_EXTENSION_SQL = """
SELECT count(*) AS n FROM pg_available_extensions WHERE name = %(name)s
"""

CREATE_EXTENSION_SQL = sql.SQL("CREATE EXTENSION IF NOT EXISTS {name}")

#: Whether a relation (``schema.name``) exists: a database not migrated that far has none.
RELATION_EXISTS_SQL = "SELECT to_regclass(%(name)s) IS NOT NULL"

EXISTING_SCHEMAS_SQL = """
SELECT nspname::text AS name FROM pg_namespace WHERE nspname = ANY(%(schemas)s)
"""

#: The trigger function that keeps ``team_member_counts`` (migration 0014).
COUNT_FUNCTION = "public.count_team_members()"

#: What the data aggregates (:data:`DATA_FUNCTIONS`) read, for their owner, the policy role.
DATA_TABLES_TO_POLICY_SQL = sql.SQL(
    "GRANT SELECT ON public.users, public.teams, public.team_members, public.invitations TO {role}"
)


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


def role_passwords(settings: Settings) -> tuple[dict[RoleName, str], tuple[RoleName, ...]]:
    """Each role's password, and which roles got a generated one.

    From settings (``DBOPS_<ROLE>_PASSWORD`` or its ``_FILE``); unset ones are random (32
    bytes) and never shown.
    """
    passwords: dict[RoleName, str] = {}
    generated: list[RoleName] = []
    for role in ROLE_NAMES:
        value = getattr(settings, f"{role}_password")
        if value is None:
            passwords[role] = secrets.token_urlsafe(32)
            generated.append(role)
        else:
            passwords[role] = value.get_secret_value()
    return passwords, tuple(generated)


def password_verifier(conn: psycopg.Connection[Any], role: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier of ``password`` for ``role``, computed here (libpq).

    What ``CREATE/ALTER ROLE ... PASSWORD`` is given instead of the password: the server
    stores it as is, and the statement text (statistics, logs) never holds the password.
    """
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    return verifier.decode("ascii")


#: Keeps this transaction's role statements out of pg_stat_statements and the statement log
#: (both superuser-only settings): the verifiers then leave no trace either. Transaction-local:
#: the connection goes back to a pool, which must not stay untracked.
QUIET_SESSION_SQL = """
SELECT set_config('pg_stat_statements.track', 'none', true),
       set_config('log_statement', 'none', true)
"""

IS_SUPERUSER_SQL = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"


def _quiet_session(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute(IS_SUPERUSER_SQL).fetchone()
    if row and row[0]:
        conn.execute(QUIET_SESSION_SQL)


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


def _current_database(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(CURRENT_DATABASE_SQL).fetchone()
    assert row is not None
    return str(row[0])


CREATE_SYSTEM_ROLE_SQL = sql.SQL("CREATE ROLE {role} NOLOGIN BYPASSRLS")
ALTER_SYSTEM_ROLE_SQL = sql.SQL(
    "ALTER ROLE {role} WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS"
)
GRANT_ROLE_SQL = sql.SQL("GRANT {role} TO {member}")

SYSTEM_POLICIES_SQL = """
SELECT tablename::text FROM pg_policies
WHERE schemaname = 'public' AND policyname = 'a_system_all'
"""


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


PGSS_INSTALLED_SQL = "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"
#: The server collects statement statistics (the library is preloaded) and has the extension.
PGSS_LOADED_SQL = """
SELECT 'pg_stat_statements' = ANY(string_to_array(
         replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements')
"""
#: Statistics entries (any database) whose text holds a secret-looking literal.
SECRET_ENTRIES_SQL = f"""
SELECT s.userid, s.dbid, s.queryid
FROM pg_stat_statements(true) AS s
WHERE s.query ~* '{SECRET_PATTERN_SQL}' AND s.queryid IS NOT NULL AND s.queryid <> 0
"""
RESET_ENTRY_SQL = "SELECT 1 FROM pg_stat_statements_reset(%s::oid, %s::oid, %s::bigint)"
#: Stored history texts from before they were redacted on the way in.
REDACT_HISTORY_SQL = f"""
UPDATE dbops_monitor.statements SET query = {redact_sql("query")}
WHERE query ~* '{SECRET_PATTERN_SQL}'
"""


def purge_secret_statements(conn: psycopg.Connection[Any]) -> int:
    """Remove the statistics entries that hold a password (or other secret) literal.

    pg_stat_statements keeps utility statements with their literals, readable by every
    ``pg_read_all_stats`` member; each such entry is reset on its own (the others keep their
    counters), and the history's stored texts are redacted. Creates the extension in this
    database when the server preloads it (the entries of every database are seen through
    it). Needs the right to call ``pg_stat_statements_reset`` (a superuser, or a grant).
    Returns the entries removed.
    """
    loaded = conn.execute(PGSS_LOADED_SQL).fetchone()
    if loaded and loaded[0]:  # the view is needed to see the entries, from any database
        conn.execute(CREATE_EXTENSION_SQL.format(name=sql.Identifier("pg_stat_statements")))
    row = conn.execute(PGSS_INSTALLED_SQL).fetchone()
    removed = 0
    if row and row[0]:
        entries = conn.execute(SECRET_ENTRIES_SQL).fetchall()
        for userid, dbid, queryid in entries:
            conn.execute(RESET_ENTRY_SQL, (userid, dbid, queryid))
        removed = len(entries)
    row = conn.execute(RELATION_EXISTS_SQL, {"name": "dbops_monitor.statements"}).fetchone()
    if row and row[0]:
        conn.execute(REDACT_HISTORY_SQL)
    return removed


def grant_privileges(conn: psycopg.Connection[Any]) -> None:
    """Grant each role what the module docstring says on the tables that exist now.

    Idempotent; run after every migration that adds a table or a function (``dbops up`` and
    the tests do).
    """
    owner = sql.Identifier(ROLE_NAMES["owner"])
    app = sql.Identifier(ROLE_NAMES["app"])
    readonly = sql.Identifier(ROLE_NAMES["readonly"])
    monitor = sql.Identifier(ROLE_NAMES["monitor"])
    database = sql.Identifier(_current_database(conn))
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
        _quiet_session(conn)
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
        database = sql.Identifier(_current_database(conn))
        conn.execute(DATABASE_OWNER_SQL.format(database=database, role=sql.Identifier(owner_name)))
        statements = [
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
        _quiet_session(conn)
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
            GRANT_CONNECT_SQL.format(database=sql.Identifier(_current_database(conn)), role=role)
        )
        target = sql.Identifier(schema)
        conn.execute(GRANT_USAGE_SQL.format(schema=target, role=role))
        conn.execute(GRANT_SELECT_SQL.format(schema=target, role=role))
        conn.execute(DEFAULT_SELECT_SQL.format(schema=target, role=role))
    return name


ROLE_STATE_SQL = """
SELECT rolname::text AS name, rolcanlogin AS login, rolbypassrls AS bypass_rls,
       rolsuper AS superuser
FROM pg_roles
WHERE rolname = ANY(%(names)s)
"""


@dataclass(frozen=True)
class RoleState:
    """One of dbops' roles as the server has it."""

    role: RoleName
    name: str
    exists: bool
    login: bool = False
    bypass_rls: bool = False
    superuser: bool = False


def role_status(db: Database) -> list[RoleState]:
    """Each of dbops' roles: does it exist, can it log in, does it bypass RLS (``dbops roles``)."""
    with db.read() as conn:
        rows = {
            r[0]: r[1:] for r in conn.execute(ROLE_STATE_SQL, {"names": list(ROLE_NAMES.values())})
        }
    states = []
    for role, name in ROLE_NAMES.items():
        found = rows.get(name)
        if found is None:
            states.append(RoleState(role, name, exists=False))
        else:
            states.append(
                RoleState(role, name, True, bool(found[0]), bool(found[1]), bool(found[2]))
            )
    return states
